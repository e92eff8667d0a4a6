//! Finding the cgroup v2 hierarchy. Hosts mount it in different places
//! (`/sys/fs/cgroup` on most distributions, `/sys/fs/cgroup/unified` on
//! hybrid hosts), so it is read from the mount table, never assumed.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use crate::host::mountinfo::{self, Mount};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot read /proc/self/mountinfo: {0}")]
    MountInfo(#[source] io::Error),
    #[error(
        "no cgroup v2 hierarchy is mounted; mount one (`mount -t cgroup2 none /sys/fs/cgroup/unified`) \
         or boot with systemd.unified_cgroup_hierarchy=1"
    )]
    NotMounted,
    #[error("{path}: {source}")]
    Path {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0} is not inside a cgroup v2 hierarchy (mounted at {1})")]
    NotCgroup2(PathBuf, PathBuf),
}

/// The mount point of the cgroup v2 hierarchy.
pub fn cgroup2_mount() -> Result<PathBuf, CgroupError> {
    let mounts = mountinfo::read().map_err(CgroupError::MountInfo)?;
    find_cgroup2(&mounts).ok_or(CgroupError::NotMounted)
}

fn find_cgroup2(mounts: &[Mount]) -> Option<PathBuf> {
    mounts
        .iter()
        .find(|mount| mount.fstype == "cgroup2")
        .map(|mount| mount.mount_point.clone())
}

/// The cgroup to attach to: `requested`, checked to lie in the v2
/// hierarchy mounted at `mount`, or the hierarchy's root.
pub fn attach_target(mount: &Path, requested: Option<&Path>) -> Result<PathBuf, CgroupError> {
    let Some(requested) = requested else {
        return Ok(mount.to_path_buf());
    };
    let canonical = fs::canonicalize(requested).map_err(|source| CgroupError::Path {
        path: requested.to_path_buf(),
        source,
    })?;
    if !canonical.starts_with(mount) || !canonical.join("cgroup.procs").exists() {
        return Err(CgroupError::NotCgroup2(
            requested.to_path_buf(),
            mount.to_path_buf(),
        ));
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::mountinfo::parse;

    const HYBRID: &str = "\
25 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
32 31 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
33 31 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
";

    #[test]
    fn finds_the_v2_mount_on_a_hybrid_host() {
        assert_eq!(
            find_cgroup2(&parse(HYBRID)),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn reports_no_mount_when_only_v1_is_there() {
        let v1_only: String = HYBRID
            .lines()
            .filter(|l| !l.contains("cgroup2"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(find_cgroup2(&parse(&v1_only)), None);
    }
}
