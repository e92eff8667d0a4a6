//! The mounts of this process's namespace: the bench, the tests and
//! `fresh` look up where cgroup v2 and bpffs are rather than assume it.

use std::{fs, path::PathBuf};

/// The cgroup v2 mount point, from the mount table (never assumed).
pub(crate) fn cgroup2_mount() -> Option<PathBuf> {
    mounts()
        .into_iter()
        .find_map(|(mount_point, fs_type)| (fs_type == "cgroup2").then_some(mount_point))
}

/// Every mount of this process's namespace: its mount point and its
/// filesystem type, from `/proc/self/mountinfo`.
pub(crate) fn mounts() -> Vec<(PathBuf, String)> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mount_point = before.split_whitespace().nth(4)?;
            let fs_type = after.split_whitespace().next()?;
            Some((PathBuf::from(mount_point), fs_type.to_string()))
        })
        .collect()
}
