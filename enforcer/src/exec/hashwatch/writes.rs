//! The reader and hasher threads: files closed after writing, from
//! fanotify, hashed in the order they come.

use std::{
    fs::{self, File},
    io::{self, Read as _},
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
    sync::mpsc::{Receiver, SyncSender},
};

use super::{
    digest::MAX_FILE_SIZE,
    fanotify::{self, Wait},
    judge::{Shared, examine},
};

/// Room for a few hundred events per read.
const READ_BUFFER: usize = 16 * 1024;

/// The hasher thread: files the reader saw closed after writing.
pub(super) fn hash_written(shared: &Shared, files: Receiver<File>) {
    for file in files {
        if shared.stopped() {
            return;
        }
        let fd = file.as_raw_fd();
        examine(shared, &file, || {
            fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default()
        });
    }
}

/// The reader thread: turns fanotify events into files for the hasher.
pub(super) fn read_events(
    shared: &Shared,
    fanotify: &File,
    wake: &File,
    files: &SyncSender<File>,
    rescan: &SyncSender<()>,
) {
    let own_pid = std::process::id() as i32;
    let mut buffer = vec![0u8; READ_BUFFER];
    loop {
        if shared.stopped() {
            return;
        }
        match fanotify::wait(fanotify, wake) {
            Wait::Readable => {}
            Wait::Stop => return,
            Wait::Again => continue,
        }
        let length = match (&*fanotify).read(&mut buffer) {
            Ok(length) => length,
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            // The kernel drops the event it could not open a descriptor
            // for (EMFILE, ENFILE, ...), so the scan has to find it.
            Err(_) => {
                request_rescan(rescan);
                continue;
            }
        };
        for event in fanotify::parse_events(&buffer[..length]).0 {
            if event.mask & libc::FAN_Q_OVERFLOW != 0 {
                request_rescan(rescan);
            }
            let Some(fd) = event.fd else {
                continue;
            };
            let file = File::from(fd);
            // Our own writes are not someone putting content in place.
            if event.pid == own_pid {
                continue;
            }
            let worth_hashing = file
                .metadata()
                .is_ok_and(|metadata| metadata.is_file() && metadata.size() <= MAX_FILE_SIZE);
            // Waiting here when the hasher is behind is deliberate: the
            // kernel queue takes the slack, and an overflow there is noticed
            // and answered with a rescan.
            if worth_hashing && files.send(file).is_err() {
                return;
            }
        }
    }
}

fn request_rescan(rescan: &SyncSender<()>) {
    // Full means a rescan is already pending, and it will see this change.
    // Disconnected means the scanner is gone, which happens only when
    // stopping.
    let _ = rescan.try_send(());
}
