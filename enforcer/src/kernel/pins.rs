//! Pins in the BPF filesystem: what keeps enforcement in force while no
//! daemon runs.
//!
//! Every link the daemon attaches, and the maps a later daemon needs to
//! take over (the generation slot, the events ring, the learned
//! addresses), is pinned under one instance directory:
//!
//! ```text
//! PIN_DIR/v{PIN_LAYOUT}/{instance}/links/NAME
//! PIN_DIR/v{PIN_LAYOUT}/{instance}/maps/NAME
//! ```
//!
//! A pinned link keeps its program attached after every descriptor to it
//! is closed, so a daemon that dies, however it dies, leaves its programs
//! enforcing its last generation. A daemon that starts attaches its own
//! programs beside the ones it finds (every one of them must pass traffic,
//! so nothing gets through in between), reads what the earlier instance
//! left, and only then removes the earlier pins, which detaches those
//! programs. Removing an instance's pins is also how enforcement ends.
//!
//! The layout version is part of the path: pins of another version are
//! never read, only removed once the new programs are attached.

use std::{
    ffi::CString,
    fs, io,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use aya::{maps::Map, programs::links::FdLink};

/// Bump when a pinned object changes meaning. 2: event records start with
/// a kind tag, so an older instance's ring cannot be read as ours. 3:
/// learned addresses are keyed by owner as well (`enforcer_common::learned`).
/// 4: name event records carry the socket's cookie and own address. 5:
/// the exec and mapping hooks tail-call variants through pinned arrays.
pub const PIN_LAYOUT: u32 = 5;
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/enforcer";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
pub const BPF_FS_MOUNT: &str = "/sys/fs/bpf";

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error(
        "{0} is not on a BPF filesystem (bpffs); mount one there \
         (mount -t bpf bpf DIR) or choose a --pin-dir under {BPF_FS_MOUNT}"
    )]
    NotBpfFs(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("pinning {path}: {source}")]
    Pin {
        path: PathBuf,
        #[source]
        source: aya::pin::PinError,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> PinError + '_ {
    move |source| PinError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// This daemon's instance directory.
#[derive(Debug)]
pub struct Pins {
    instance: PathBuf,
}

/// An instance directory left by an earlier daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earlier {
    pub path: PathBuf,
    /// `None` when its layout version is not this build's.
    pub layout: Option<u32>,
}

impl Earlier {
    pub fn is_current_layout(&self) -> bool {
        self.layout == Some(PIN_LAYOUT)
    }

    pub fn map_path(&self, name: &str) -> PathBuf {
        self.path.join("maps").join(name)
    }
}

impl Pins {
    /// Makes a fresh instance directory under `root`, mounting bpffs at
    /// its usual place first when `root` is below it and nothing is
    /// mounted there.
    pub fn create(root: &Path) -> Result<Self, PinError> {
        ensure_bpf_fs(root)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        let instance = root
            .join(format!("v{PIN_LAYOUT}"))
            .join(format!("{nanos}-{}", std::process::id()));
        for directory in ["links", "maps"] {
            let path = instance.join(directory);
            fs::create_dir_all(&path).map_err(io_error(&path))?;
        }
        Ok(Self { instance })
    }

    pub fn path(&self) -> &Path {
        &self.instance
    }

    /// Pins `link`: its program stays attached until the pin is removed.
    /// Returns the pin's path.
    pub fn link(&self, name: &str, link: FdLink) -> Result<PathBuf, PinError> {
        let path = self.instance.join("links").join(name);
        match link.pin(&path) {
            Ok(_) => Ok(path),
            Err(source) => Err(PinError::Pin { path, source }),
        }
    }

    pub fn has_link(&self, name: &str) -> bool {
        self.instance.join("links").join(name).exists()
    }

    /// Removes the pin of link `name`, which detaches its program.
    pub fn unlink(&self, name: &str) -> Result<(), PinError> {
        let path = self.instance.join("links").join(name);
        fs::remove_file(&path).map_err(io_error(&path))
    }

    /// Where map `name` is pinned.
    pub fn map_path(&self, name: &str) -> PathBuf {
        self.instance.join("maps").join(name)
    }

    /// Pins `map`, and returns the pin's path.
    pub fn map(&self, name: &str, map: &Map) -> Result<PathBuf, PinError> {
        let path = self.map_path(name);
        match map.pin(&path) {
            Ok(()) => Ok(path),
            Err(source) => Err(PinError::Pin { path, source }),
        }
    }

    /// The instance directory and the directories in it.
    pub fn directories(&self) -> [PathBuf; 3] {
        [
            self.instance.clone(),
            self.instance.join("links"),
            self.instance.join("maps"),
        ]
    }

    /// The instance directories under `root` other than this one.
    pub fn earlier(&self, root: &Path) -> Vec<Earlier> {
        instances(root)
            .into_iter()
            .filter(|earlier| earlier.path != self.instance)
            .collect()
    }
}

/// Every instance directory under `root`, of any layout version: the
/// directories below `v<number>` directories. Nothing else under `root` is
/// the enforcer's, so nothing else is ever taken for an instance (a pin
/// dir may be shared with other tools, or be the bpffs root itself).
pub fn instances(root: &Path) -> Vec<Earlier> {
    let mut found = Vec::new();
    let Ok(versions) = fs::read_dir(root) else {
        return found;
    };
    for version in versions.flatten() {
        let name = version.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|name| name.strip_prefix('v'))
            .and_then(|number| number.parse::<u32>().ok())
        else {
            continue;
        };
        let layout = (number == PIN_LAYOUT).then_some(number);
        let Ok(entries) = fs::read_dir(version.path()) else {
            continue;
        };
        found.extend(entries.flatten().map(|entry| Earlier {
            path: entry.path(),
            layout,
        }));
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// Removes every pin below `path` and the directories themselves, which
/// detaches every pinned link there. Returns how many pins were removed.
pub fn remove_tree(path: &Path) -> Result<usize, PinError> {
    let mut removed = 0;
    let entries = fs::read_dir(path).map_err(io_error(path))?;
    for entry in entries {
        let entry = entry.map_err(io_error(path))?;
        let child = entry.path();
        if entry.file_type().map_err(io_error(&child))?.is_dir() {
            removed += remove_tree(&child)?;
        } else {
            fs::remove_file(&child).map_err(io_error(&child))?;
            removed += 1;
        }
    }
    fs::remove_dir(path).map_err(io_error(path))?;
    Ok(removed)
}

/// Removes an instance directory, then its version directory and the pin
/// directory above that when they are left empty.
pub fn remove_instance(instance: &Path) -> Result<usize, PinError> {
    let removed = remove_tree(instance)?;
    for parent in instance.ancestors().skip(1).take(2) {
        // Fails, harmlessly, while something else is still there.
        if fs::remove_dir(parent).is_err() {
            break;
        }
    }
    Ok(removed)
}

fn ensure_bpf_fs(root: &Path) -> Result<(), PinError> {
    let existing = root
        .ancestors()
        .find(|ancestor| ancestor.exists())
        .unwrap_or(Path::new("/"));
    if is_bpf_fs(existing) {
        return Ok(());
    }
    if root.starts_with(BPF_FS_MOUNT) && !is_bpf_fs(Path::new(BPF_FS_MOUNT)) {
        crate::host::mountinfo::mount_pseudo_fs(c"bpf", c"/sys/fs/bpf");
        if is_bpf_fs(Path::new(BPF_FS_MOUNT)) {
            return Ok(());
        }
    }
    Err(PinError::NotBpfFs(existing.to_path_buf()))
}

fn is_bpf_fs(path: &Path) -> bool {
    let Ok(path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a zeroed statfs is a valid out-buffer for statfs(2).
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid out-pointer.
    let status = unsafe { libc::statfs(path.as_ptr(), &mut stat) };
    status == 0 && stat.f_type as i64 == BPF_FS_MAGIC
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::ScratchDir;

    #[test]
    fn instances_are_found_with_their_layout() {
        let root = ScratchDir::new("pins");
        let ours = format!("v{PIN_LAYOUT}");
        let older = format!("v{}", PIN_LAYOUT - 1);
        for path in [
            format!("{ours}/100-1"),
            format!("{ours}/200-2"),
            format!("{older}/50-3"),
            "vx/1-1".into(),
            "tc/globals".into(),
        ] {
            fs::create_dir_all(root.join(path)).unwrap();
        }
        let found = instances(&root);
        let layouts: Vec<(String, Option<u32>)> = found
            .iter()
            .map(|earlier| {
                let relative = earlier.path.strip_prefix(&*root).unwrap();
                (relative.display().to_string(), earlier.layout)
            })
            .collect();
        assert_eq!(
            layouts,
            [
                (format!("{older}/50-3"), None),
                (format!("{ours}/100-1"), Some(PIN_LAYOUT)),
                (format!("{ours}/200-2"), Some(PIN_LAYOUT)),
            ],
            "directories of other tools are not instances"
        );
    }

    #[test]
    fn removing_an_instance_removes_its_version_directory_when_empty() {
        let root = ScratchDir::new("pins-remove");
        let instance = root.join("v1/1-1");
        fs::create_dir_all(instance.join("links")).unwrap();
        fs::write(instance.join("links/connect4"), b"").unwrap();
        fs::create_dir_all(root.join("v1/2-2")).unwrap();
        assert_eq!(remove_instance(&instance).unwrap(), 1);
        assert!(!instance.exists());
        assert!(root.join("v1").exists(), "another instance remains");
        assert_eq!(remove_instance(&root.join("v1/2-2")).unwrap(), 0);
        assert!(!root.join("v1").exists());
    }
}
