//! Strict mode: the kernel asks before every exec on the watched
//! filesystems (`FAN_OPEN_EXEC_PERM`), and the answer comes from the hash
//! of the file as it is being executed, so banned content written a moment
//! ago is refused before the exec hooks have heard of it.
//!
//! Every event is answered, each exactly once, and before its descriptor
//! is closed: a process whose exec is not answered waits until the group
//! is closed. Should this thread end for any reason, panics included, the
//! group descriptor it owns is closed with it, and the kernel then lets
//! every pending and future exec through.

use std::{
    fs::{self, File},
    io::Read as _,
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
};

use super::{
    Shared,
    cache::{Lookup, Stamp, Verdict},
    fanotify::{self, EVENT_METADATA_LEN, Wait},
    judge,
};

/// Events read at once. The kernel opens a descriptor in this process for
/// each event while filling the read, and denies an exec whose descriptor
/// it cannot open (EMFILE): a small batch keeps this thread's share of the
/// descriptor table small next to the hasher's queue and the reader's
/// batches. Execs rarely arrive this many at a time.
const BATCH: usize = 32;

/// The permission thread; `group` is closed when it returns.
pub(super) fn answer_execs(shared: &Shared, group: File, wake: &File) {
    let own_pid = std::process::id() as i32;
    let mut buffer = vec![0u8; BATCH * EVENT_METADATA_LEN];
    loop {
        if shared.stopped() {
            return;
        }
        match fanotify::wait(&group, wake) {
            Wait::Readable => {}
            Wait::Stop => return,
            Wait::Again => continue,
        }
        let length = match (&group).read(&mut buffer) {
            Ok(length) => length,
            // Nothing there (WouldBlock, Interrupted), or the kernel could
            // not hand an event over (for instance it could not open a
            // descriptor for it) and has answered that event itself, with
            // a denial; nothing here can change that.
            Err(_) => continue,
        };
        let (events, complete) = fanotify::parse_events(&buffer[..length]);
        for event in events {
            // Only a queue overflow comes without a descriptor, and it
            // needs no answer: the kernel lets through the execs it could
            // not queue.
            let Some(fd) = event.fd else {
                continue;
            };
            let mut answer = Answer {
                group: &group,
                file: File::from(fd),
                response: libc::FAN_ALLOW,
            };
            // Our own execs are allowed unexamined: a hash here could wait
            // on this very thread.
            if event.pid != own_pid && event.mask & libc::FAN_OPEN_EXEC_PERM != 0 {
                answer.response = decide(shared, &answer.file);
            }
        }
        if !complete {
            // Events this code cannot read cannot be answered. Closing the
            // group is what lets them, and every later exec, through.
            return;
        }
    }
}

/// Answers its event when dropped, then closes the event's descriptor, so
/// no path out of the loop, an unwinding panic included, leaves an exec
/// waiting.
struct Answer<'a> {
    group: &'a File,
    file: File,
    response: u32,
}

impl Drop for Answer<'_> {
    fn drop(&mut self) {
        fanotify::respond(self.group, self.file.as_raw_fd(), self.response);
    }
}

/// FAN_DENY for banned content, FAN_ALLOW for anything else.
///
/// Internal errors (the file cannot be stat'ed or read, the watch is
/// stopping) answer FAN_ALLOW: failing closed would make every exec on the
/// machine depend on the daemon's health, while the eBPF exec hooks remain
/// the primary enforcement and this answer only closes the window before a
/// match reaches them.
fn decide(shared: &Shared, file: &File) -> u32 {
    let Ok(metadata) = file.metadata() else {
        return libc::FAN_ALLOW;
    };
    if !metadata.is_file() {
        return libc::FAN_ALLOW;
    }
    let key = (metadata.dev(), metadata.ino());
    let claim = match shared.cache.lookup(key, Stamp::of(&metadata)) {
        Lookup::Known(verdict) => return response(Some(verdict)),
        Lookup::Claimed(claim) => Some(claim),
        // The hasher or the scanner is on this very version. Waiting for
        // it would tie exec answers to those threads' progress; hashing it
        // here too costs only the CPU of a second hash, and only when the
        // two meet on one version.
        Lookup::Busy => None,
    };
    let fd = file.as_raw_fd();
    let verdict = judge(shared, file, || {
        fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default()
    });
    drop(claim);
    response(verdict)
}

fn response(verdict: Option<Verdict>) -> u32 {
    match verdict {
        Some(Verdict::Banned(_)) => libc::FAN_DENY,
        Some(Verdict::Clean) | None => libc::FAN_ALLOW,
    }
}
