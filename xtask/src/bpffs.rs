//! The bpffs at `/sys/fs/bpf`. Where a machine has none, the daemons that
//! the tests and the bench start mount it for their pins, as `enforcer run`
//! does, and the kernel puts its own iterator files into every new bpffs
//! (`maps.debug` and `progs.debug`, with `CONFIG_BPF_PRELOAD`). A run that
//! found no bpffs there takes the one its daemons made away again.

use std::{fs, path::Path};

const MOUNT_POINT: &str = "/sys/fs/bpf";
/// What the kernel itself puts into a new bpffs.
const KERNEL_ENTRIES: [&str; 2] = ["maps.debug", "progs.debug"];

/// Unmounts, when dropped, a bpffs that was not mounted when it was made,
/// unless something other than the kernel's own files is in it by then.
pub struct MountedDuringRun {
    was_mounted: bool,
}

impl MountedDuringRun {
    pub fn note() -> Self {
        Self {
            was_mounted: is_mounted(),
        }
    }
}

impl Drop for MountedDuringRun {
    fn drop(&mut self) {
        if self.was_mounted || !is_mounted() || !holds_only_kernel_entries() {
            return;
        }
        // SAFETY: a NUL-terminated path.
        if unsafe { libc::umount(c"/sys/fs/bpf".as_ptr()) } == 0 {
            eprintln!(
                "xtask: unmounted the bpffs at {MOUNT_POINT} that this run's daemons mounted"
            );
        } else {
            eprintln!(
                "xtask: cannot unmount the bpffs at {MOUNT_POINT} that this run's daemons mounted: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

fn is_mounted() -> bool {
    crate::mounts()
        .into_iter()
        .any(|(mount_point, fs_type)| mount_point == Path::new(MOUNT_POINT) && fs_type == "bpf")
}

fn holds_only_kernel_entries() -> bool {
    fs::read_dir(MOUNT_POINT).is_ok_and(|entries| {
        entries
            .flatten()
            .all(|entry| KERNEL_ENTRIES.iter().any(|name| entry.file_name() == *name))
    })
}
