//! The bpffs at `/sys/fs/bpf`. Where a machine has none, `enforcer run`
//! mounts it for its pins. The tests start many daemons at once, and two
//! that both find none both mount one, the second over the first; so a
//! run mounts it once itself, before any daemon starts, and takes it away
//! again at the end. The kernel puts its own iterator files into every new
//! bpffs (`maps.debug` and `progs.debug`, with `CONFIG_BPF_PRELOAD`).

use std::{fs, io, path::Path};

const MOUNT_POINT: &str = "/sys/fs/bpf";
/// What the kernel itself puts into a new bpffs.
const KERNEL_ENTRIES: [&str; 2] = ["maps.debug", "progs.debug"];

/// A bpffs at `/sys/fs/bpf` for the length of a run: mounted when there is
/// none, and unmounted when dropped, with any mounted over it, unless
/// something other than the kernel's own files is in it by then.
pub(crate) struct MountedDuringRun {
    mounted_here: bool,
}

impl MountedDuringRun {
    pub(crate) fn mount() -> Self {
        if is_mounted() {
            return Self {
                mounted_here: false,
            };
        }
        // SAFETY: NUL-terminated strings and no mount data.
        let mounted = unsafe {
            libc::mount(
                c"bpf".as_ptr(),
                c"/sys/fs/bpf".as_ptr(),
                c"bpf".as_ptr(),
                0,
                std::ptr::null(),
            )
        } == 0;
        if !mounted {
            // The daemons will say why they cannot pin.
            eprintln!(
                "xtask: cannot mount a bpffs at {MOUNT_POINT}: {}",
                io::Error::last_os_error()
            );
        }
        Self {
            mounted_here: mounted,
        }
    }
}

impl Drop for MountedDuringRun {
    fn drop(&mut self) {
        if !self.mounted_here {
            return;
        }
        while is_mounted() && holds_only_kernel_entries() {
            // SAFETY: a NUL-terminated path.
            if unsafe { libc::umount(c"/sys/fs/bpf".as_ptr()) } != 0 {
                eprintln!(
                    "xtask: cannot unmount the bpffs at {MOUNT_POINT} that this run mounted: {}",
                    io::Error::last_os_error()
                );
                return;
            }
        }
        if is_mounted() {
            eprintln!(
                "xtask: left the bpffs at {MOUNT_POINT} mounted: something other than the kernel's own files is in it"
            );
        }
    }
}

fn is_mounted() -> bool {
    crate::mounts::mounts()
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
