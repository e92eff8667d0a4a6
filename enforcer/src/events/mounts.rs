//! The kernel names an executable by the dentries from it up to its own
//! filesystem's root; where that filesystem is mounted completes the path.

use crate::host::mountinfo::{self, Mount};

/// `within` prefixed with the mount point of device `dev` (kernel
/// encoding), or `within` alone when no mount of it shows that file.
pub(super) fn full_path(dev: u32, within: &str) -> String {
    match mountinfo::read() {
        Ok(mounts) => join(&mounts, dev, within),
        Err(_) => within.to_string(),
    }
}

fn join(mounts: &[Mount], dev: u32, within: &str) -> String {
    let (major, minor) = crate::exec::resolve::dev_numbers(dev);
    let visible = mounts.iter().find_map(|mount| {
        if (mount.major, mount.minor) != (major, minor) {
            return None;
        }
        // A mount may show only part of its filesystem (a bind mount, a
        // btrfs subvolume): the path must lie below that part.
        let rest = if mount.root == "/" {
            Some(within)
        } else {
            within.strip_prefix(mount.root.as_str())
        }?;
        let mount_point = mount.mount_point.to_string_lossy();
        Some(format!("{}{rest}", mount_point.trim_end_matches('/')))
    });
    visible.unwrap_or_else(|| within.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::mountinfo::parse;

    const TABLE: &str = "\
20 1 8:1 / / rw - ext4 /dev/sda1 rw
40 20 8:2 /@home /home rw - btrfs /dev/sda2 rw
41 20 0:45 / /tmp rw - tmpfs tmpfs rw
";

    #[test]
    fn completes_paths_by_mount_point() {
        let mounts = parse(TABLE);
        assert_eq!(join(&mounts, (8 << 20) | 1, "/usr/bin/app"), "/usr/bin/app");
        assert_eq!(join(&mounts, 45, "/x/app"), "/tmp/x/app");
        assert_eq!(
            join(&mounts, (8 << 20) | 2, "/@home/ann/app"),
            "/home/ann/app"
        );
        assert_eq!(
            join(&mounts, (9 << 20) | 9, "/app"),
            "/app",
            "unknown device"
        );
    }
}
