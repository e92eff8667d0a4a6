//! The fanotify and eventfd calls the hash watch makes.

use std::{
    ffi::CStr,
    fs::File,
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
    thread,
    time::Duration,
};

/// Only a safety net: the eventfd wakes the readers as soon as the watch is
/// dropped.
const POLL_TIMEOUT_MS: libc::c_int = 1000;

/// Bytes an event occupies in fd mode (`struct fanotify_event_metadata`).
pub(super) const EVENT_METADATA_LEN: usize = 24;

pub(super) struct Event {
    pub(super) mask: u64,
    /// Owned at once, so every descriptor the kernel opened for us is
    /// closed whatever happens to the event.
    pub(super) fd: Option<OwnedFd>,
    pub(super) pid: i32,
}

/// Splits a read from a fanotify descriptor into events. Parsed by offsets
/// rather than by casting, so the buffer needs no alignment. The flag is
/// false when part of the buffer could not be understood, so that events
/// in it, and their descriptors, were left out.
pub(super) fn parse_events(buffer: &[u8]) -> (Vec<Event>, bool) {
    let mut events = Vec::new();
    let mut rest = buffer;
    while rest.len() >= EVENT_METADATA_LEN {
        let bytes = |at: usize, out: &mut [u8]| out.copy_from_slice(&rest[at..at + out.len()]);
        let (mut len, mut mask, mut fd, mut pid) = ([0; 4], [0; 8], [0; 4], [0; 4]);
        bytes(0, &mut len);
        bytes(8, &mut mask);
        bytes(16, &mut fd);
        bytes(20, &mut pid);
        let event_len = u32::from_ne_bytes(len) as usize;
        // Metadata version 3 has not changed since 2.6.37; with another, the
        // fields cannot be trusted, descriptors included.
        if rest[4] != libc::FANOTIFY_METADATA_VERSION
            || event_len < EVENT_METADATA_LEN
            || event_len > rest.len()
        {
            break;
        }
        let (mask, fd, pid) = (
            u64::from_ne_bytes(mask),
            i32::from_ne_bytes(fd),
            i32::from_ne_bytes(pid),
        );
        events.push(Event {
            mask,
            // SAFETY: a non-negative fd in an event is a descriptor the
            // kernel opened for this process and nothing else owns.
            fd: (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) }),
            pid,
        });
        rest = &rest[event_len..];
    }
    (events, rest.is_empty())
}

/// A new fanotify group of `class`, non-blocking, whose event descriptors
/// are opened read-only.
pub(super) fn init(class: libc::c_uint) -> io::Result<File> {
    let flags = class | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK;
    let event_flags = libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC;
    let init = |event_flags: libc::c_int| {
        // SAFETY: plain syscall with integer arguments.
        let fd = unsafe { libc::fanotify_init(flags, event_flags as libc::c_uint) };
        if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            // SAFETY: fanotify_init returned a new descriptor we own.
            Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
        }
    };
    // O_NOATIME keeps our reads from dirtying inodes; a kernel that does not
    // take it in event flags gets the plain open.
    match init(event_flags | libc::O_NOATIME) {
        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => init(event_flags),
        result => result,
    }
}

/// Marks the filesystem that holds `path` for `mask`, or, where the kernel
/// refuses that, the mount. On failure, both errors: the filesystem mark's
/// and the mount mark's.
pub(super) fn mark(group: &File, path: &CStr, mask: u64) -> Result<(), (io::Error, io::Error)> {
    let mark = |kind: libc::c_uint| {
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        let result = unsafe {
            libc::fanotify_mark(
                group.as_raw_fd(),
                libc::FAN_MARK_ADD | kind,
                mask,
                libc::AT_FDCWD,
                path.as_ptr(),
            )
        };
        if result < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    let Err(filesystem) = mark(libc::FAN_MARK_FILESYSTEM) else {
        return Ok(());
    };
    mark(libc::FAN_MARK_MOUNT).map_err(|mount| (filesystem, mount))
}

/// Removes every filesystem and mount mark of `group`, so that no new
/// events are queued to it; events already on their way may still be.
pub(super) fn flush_marks(group: &File) {
    for kind in [libc::FAN_MARK_FILESYSTEM, libc::FAN_MARK_MOUNT] {
        // SAFETY: plain syscall; a flush reads neither mask nor path. A
        // kernel without filesystem marks refuses that kind (EINVAL), and
        // then there are none to remove.
        unsafe {
            libc::fanotify_mark(
                group.as_raw_fd(),
                libc::FAN_MARK_FLUSH | kind,
                0,
                libc::AT_FDCWD,
                std::ptr::null(),
            );
        }
    }
}

/// Answers the permission event whose descriptor is `fd`. Must come before
/// that descriptor is closed: the kernel finds the event by its number.
pub(super) fn respond(group: &File, fd: RawFd, response: u32) {
    let reply = libc::fanotify_response { fd, response };
    loop {
        // SAFETY: `reply` is a valid fanotify_response for the call to read.
        let written = unsafe {
            libc::write(
                group.as_raw_fd(),
                (&raw const reply).cast(),
                size_of::<libc::fanotify_response>(),
            )
        };
        // The only other failure is ENOENT, for an event no longer pending
        // (its process was killed): nothing is waiting for the answer.
        if written >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

pub(super) enum Wait {
    Readable,
    Stop,
    /// Woken for nothing, or poll failed; the caller checks its stop flag
    /// and waits again.
    Again,
}

/// Waits until `group` has events or `wake` is written.
pub(super) fn wait(group: &File, wake: &File) -> Wait {
    let mut fds = [
        libc::pollfd {
            fd: group.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: `fds` is a valid array of two pollfd for the call.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, POLL_TIMEOUT_MS) };
    if ready < 0 {
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // ENOMEM and the like pass; do not spin on them.
            thread::sleep(Duration::from_millis(100));
        }
        return Wait::Again;
    }
    // Nobody reads the eventfd, so once written it wakes every waiter.
    if fds[1].revents != 0 {
        Wait::Stop
    } else if fds[0].revents != 0 {
        Wait::Readable
    } else {
        Wait::Again
    }
}

/// Whether `group` has events, waiting at most `timeout_ms` for one.
pub(super) fn readable(group: &File, timeout_ms: libc::c_int) -> bool {
    let mut fd = libc::pollfd {
        fd: group.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `fd` is a valid pollfd for the call.
    let ready = unsafe { libc::poll(&mut fd, 1, timeout_ms) };
    ready > 0 && fd.revents != 0
}

pub(super) fn eventfd() -> io::Result<File> {
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: eventfd returned a new descriptor we own.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}
