//! The bench's own cgroup, and the ones it makes below it.

use std::{fs, path::PathBuf};

use anyhow::{Context, Result};

pub(crate) struct BenchCgroup {
    pub path: PathBuf,
}

impl BenchCgroup {
    pub(crate) fn create() -> Result<Self> {
        let mount = crate::mounts::cgroup2_mount().context("no cgroup v2 hierarchy is mounted")?;
        let path = mount.join(format!("enforcer-bench-{}", std::process::id()));
        fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    /// A cgroup below this one; drop it before its parent.
    pub(crate) fn child(&self, name: &str) -> Result<Self> {
        let path = self.path.join(name);
        fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for BenchCgroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.path);
    }
}
