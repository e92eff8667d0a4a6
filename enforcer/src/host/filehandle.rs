//! File handles (`name_to_handle_at`): a way to name a file that, unlike a
//! (device, inode) pair, stops working once the file is deleted, even if
//! its inode number is handed to a new file. Bans that outlive the path
//! they were found at are kept only while their handle still opens.

use std::{
    collections::BTreeMap,
    ffi::CString,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::Path,
};

use crate::host::mountinfo;

/// A `name_to_handle_at` handle: names an inode together with its
/// generation, so it stops opening once that file is gone.
#[derive(Debug, Clone)]
pub(crate) struct FileHandle {
    mount_id: i32,
    handle_type: i32,
    bytes: Vec<u8>,
}

/// `struct file_handle` with room for any filesystem's handle.
#[repr(C)]
struct RawHandle {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; MAX_HANDLE_SZ],
}

const MAX_HANDLE_SZ: usize = 128;

impl FileHandle {
    pub(crate) fn of(path: &Path) -> Option<Self> {
        let name = CString::new(path.as_os_str().as_bytes()).ok()?;
        let mut raw = RawHandle {
            handle_bytes: MAX_HANDLE_SZ as u32,
            handle_type: 0,
            f_handle: [0; MAX_HANDLE_SZ],
        };
        let mut mount_id = 0;
        // SAFETY: a NUL-terminated path and a handle buffer of the size
        // announced in handle_bytes.
        let result = unsafe {
            libc::syscall(
                libc::SYS_name_to_handle_at,
                libc::AT_FDCWD,
                name.as_ptr(),
                (&raw mut raw).cast::<libc::c_void>(),
                &mut mount_id as *mut libc::c_int,
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if result != 0 {
            return None;
        }
        let length = (raw.handle_bytes as usize).min(MAX_HANDLE_SZ);
        Some(Self {
            mount_id,
            handle_type: raw.handle_type,
            bytes: raw.f_handle[..length].to_vec(),
        })
    }
}

/// Descriptors of mount points, opened once per resolution, that
/// `open_by_handle_at` needs to find a handle's filesystem.
#[derive(Default)]
pub(crate) struct MountFds {
    by_id: BTreeMap<i32, Option<OwnedFd>>,
}

impl MountFds {
    pub(crate) fn still_exists(&mut self, handle: &FileHandle) -> bool {
        let Some(mount) = self.fd(handle.mount_id) else {
            return false;
        };
        let mut raw = RawHandle {
            handle_bytes: handle.bytes.len() as u32,
            handle_type: handle.handle_type,
            f_handle: [0; MAX_HANDLE_SZ],
        };
        raw.f_handle[..handle.bytes.len()].copy_from_slice(&handle.bytes);
        // SAFETY: a valid mount fd and handle; the returned fd is closed.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_open_by_handle_at,
                mount,
                (&raw mut raw).cast::<libc::c_void>(),
                libc::O_PATH | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return false;
        }
        // SAFETY: a fresh descriptor we own.
        drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        true
    }

    fn fd(&mut self, mount_id: i32) -> Option<i32> {
        self.by_id
            .entry(mount_id)
            .or_insert_with(|| {
                let mounts = mountinfo::read().ok()?;
                let mount = mounts.iter().find(|mount| mount.id == mount_id)?;
                let path = CString::new(mount.mount_point.as_os_str().as_bytes()).ok()?;
                // SAFETY: a NUL-terminated path; the descriptor is owned below.
                // Not O_PATH: open_by_handle_at refuses such a mount fd.
                let fd = unsafe {
                    libc::open(
                        path.as_ptr(),
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                    )
                };
                // SAFETY: as above.
                (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
            })
            .as_ref()
            .map(|fd| fd.as_raw_fd())
    }
}
