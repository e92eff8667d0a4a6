//! Strict mode: the kernel asks before every exec on the watched
//! filesystems (`FAN_OPEN_EXEC_PERM`), and the answer comes from the hash
//! of the file as it is being executed, so banned content written a moment
//! ago is refused before the exec hooks have heard of it.
//!
//! Every event is answered, each exactly once, and before its descriptor
//! is closed: a process whose exec is not answered waits until the group
//! is released.
//!
//! The kernel releases a group, and lets every exec waiting on it through,
//! on the last close of its descriptor, which need not be ours: a child
//! this process forks holds a copy of the descriptor table, close-on-exec
//! descriptors included, until its exec has passed the very check that
//! waits on this group. Closing ours while such an exec waits would release
//! nothing, and that exec, then every later one on the marked filesystems,
//! would wait on a group nobody reads until the child is killed. So however
//! the thread ends ([`Group`]'s drop, panics included), the marks go first,
//! then everything queued is answered, then the descriptor is closed. The
//! daemon forks no children; tests do. One case is left: should this
//! process die without unwinding (SIGKILL, abort) while a child of its own
//! is in the middle of an exec, that child holds the group until it is
//! killed.

use std::{
    fs::{self, File},
    io::Read as _,
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
};

use super::{
    cache::{Lookup, Stamp, Verdict},
    fanotify::{self, EVENT_METADATA_LEN, Wait},
    judge::{Shared, judge},
};

/// Events read at once. The kernel opens a descriptor in this process for
/// each event while filling the read, and denies an exec whose descriptor
/// it cannot open (EMFILE): a small batch keeps this thread's share of the
/// descriptor table small next to the hasher's queue and the reader's
/// batches. Execs rarely arrive this many at a time.
const BATCH: usize = 32;

/// How long a group being torn down is watched for events that found a
/// mark just before it was removed and are queued a moment later.
const STRAGGLERS_MS: libc::c_int = 20;

/// A permission group: a fanotify descriptor of class `FAN_CLASS_CONTENT`.
/// Dropping it removes its marks and answers what is queued before the
/// descriptor is closed; see the module documentation.
pub(super) struct Group(pub(super) File);

impl Drop for Group {
    fn drop(&mut self) {
        fanotify::flush_marks(&self.0);
        let mut buffer = [0u8; BATCH * EVENT_METADATA_LEN];
        while fanotify::readable(&self.0, STRAGGLERS_MS) {
            // A failed read has consumed its event (the kernel answered
            // it); the loop ends once nothing more arrives.
            let Ok(length) = (&self.0).read(&mut buffer) else {
                continue;
            };
            for event in fanotify::parse_events(&buffer[..length]).0 {
                // Let through, as the kernel does when it releases a group.
                if let Some(fd) = event.fd {
                    fanotify::respond(&self.0, fd.as_raw_fd(), libc::FAN_ALLOW);
                }
            }
        }
    }
}

/// The permission thread: answers every exec `group` is asked about until
/// the watch stops, then tears the group down.
pub(super) fn answer_execs(shared: &Shared, group: Group, wake: &File) {
    let own_pid = std::process::id() as i32;
    let group = &group.0;
    let mut buffer = vec![0u8; BATCH * EVENT_METADATA_LEN];
    loop {
        if shared.stopped() {
            return;
        }
        match fanotify::wait(group, wake) {
            Wait::Readable => {}
            Wait::Stop => return,
            Wait::Again => continue,
        }
        let length = match (&*group).read(&mut buffer) {
            Ok(length) => length,
            // Nothing there (WouldBlock, Interrupted), or the kernel could
            // not hand an event over (for instance it could not open a
            // descriptor for it) and has answered that event itself, with
            // a denial; nothing here can change that.
            Err(_) => continue,
        };
        let (events, complete) = fanotify::parse_events(&buffer[..length]);
        // Every event is wrapped in its answer, allow until decided
        // otherwise, before any is decided: a panic part way still answers
        // the whole batch.
        let answers: Vec<Answer> = events
            .into_iter()
            // Only a queue overflow comes without a descriptor, and it
            // needs no answer: the kernel lets through the execs it could
            // not queue.
            .filter_map(|event| {
                Some(Answer {
                    group,
                    file: File::from(event.fd?),
                    response: libc::FAN_ALLOW,
                    asked: event.pid != own_pid
                        && event.mask & libc::FAN_OPEN_EXEC_PERM != 0
                        && shared
                            .scope
                            .as_ref()
                            .is_some_and(|scope| scope.covers(event.pid)),
                })
            })
            .collect();
        // Each is sent as soon as it is decided, when it is dropped.
        for mut answer in answers {
            if answer.asked {
                answer.response = decide(shared, &answer.file);
            }
        }
        if !complete {
            // Events this code cannot read cannot be answered; the group is
            // torn down, and its release lets them through.
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
    /// Whether the exec is to be examined at all. The daemon's own execs
    /// are let through unexamined: it trusts itself, and none of them may
    /// depend on the health of one of its own threads.
    asked: bool,
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
