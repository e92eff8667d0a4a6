//! What a file's current content is found to be, shared by the threads
//! that look: the hasher, the scanner and the permission thread.

use std::{
    collections::BTreeSet,
    fs::{self, File},
    os::unix::fs::MetadataExt as _,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc::Sender,
    },
};

use super::{
    cache::{Cache, Lookup, Stamp, Verdict, coarse_now},
    digest::runnable_digest,
};
use crate::exec::resolve::kernel_dev;

/// A file whose content matches a banned digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Match {
    /// The device in the kernel's encoding ([`kernel_dev`]), as the exec
    /// hooks compare it.
    pub dev: u32,
    pub ino: u64,
    /// Where the file was seen; informational only, since the file may be
    /// renamed or unlinked by the time anyone reads this.
    pub path: PathBuf,
    pub sha256: [u8; 32],
}

/// Strict mode's reach: the cgroup v2 path (as `/proc/PID/cgroup` shows
/// it, `/` for everything) whose processes' execs wait for a verdict. The
/// permission events come from the whole filesystem; execs outside the
/// enforced cgroup are let through at once, as the eBPF hooks would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StrictScope(pub String);

impl StrictScope {
    pub(super) fn covers(&self, pid: i32) -> bool {
        if self.0 == "/" {
            return true;
        }
        let Ok(cgroups) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            return false;
        };
        cgroups
            .lines()
            .filter_map(|line| line.strip_prefix("0::"))
            .any(|path| {
                path == self.0
                    || path
                        .strip_prefix(self.0.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
    }
}

pub(super) struct Shared {
    pub(super) digests: BTreeSet<[u8; 32]>,
    pub(super) matches: Sender<Match>,
    /// `Some` in strict mode.
    pub(super) scope: Option<StrictScope>,
    /// What each version of a file was found to be, for the hasher, the
    /// scanner and the permission thread alike; ctime is in the stamp, so
    /// a chmod makes an entry stale.
    pub(super) cache: Cache,
    pub(super) stop: AtomicBool,
}

impl Shared {
    pub(super) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// For the hasher and the scanner: hashes `file` unless this version is
/// known or another thread is hashing it, and reports it if it is banned.
pub(super) fn examine(shared: &Shared, file: &File, path: impl FnOnce() -> PathBuf) {
    let Ok(metadata) = file.metadata() else {
        return;
    };
    if !metadata.is_file() {
        return;
    }
    let key = (metadata.dev(), metadata.ino());
    let Lookup::Claimed(claim) = shared.cache.lookup(key, Stamp::of(&metadata)) else {
        return;
    };
    judge(shared, file, path);
    drop(claim);
}

/// Hashes `file` as it is now if it could be executed, remembers the
/// verdict and reports a banned one that is news. `None` when the file
/// could not be read to its end (unreadable, or the watch is stopping).
pub(super) fn judge(
    shared: &Shared,
    file: &File,
    path: impl FnOnce() -> PathBuf,
) -> Option<Verdict> {
    // Read before the stamp is taken; see `cache::RACY_NS`.
    let hashed_at = coarse_now();
    let before = file.metadata().ok()?;
    let stamp = Stamp::of(&before);
    // An error means stopping, or unreadable: nothing to remember, the
    // next look tries again.
    let digest = runnable_digest(file, &before, &shared.stop).ok()?;
    let verdict = match digest.filter(|digest| shared.digests.contains(digest)) {
        Some(digest) => Verdict::Banned(digest),
        None => Verdict::Clean,
    };
    // A write during the hash means the digest may mix two versions; such a
    // digest is not remembered, and the write's own close brings the file
    // back. A banned digest is still reported: all of it was read, so the
    // file held banned content at least for a moment.
    let stable = file
        .metadata()
        .is_ok_and(|after| Stamp::of(&after) == stamp);
    let key = (before.dev(), before.ino());
    // Threads can meet on one version; one report is enough.
    if shared
        .cache
        .record(key, stamp, verdict, stable.then_some(hashed_at))
        && let Verdict::Banned(sha256) = verdict
    {
        let found = Match {
            dev: kernel_dev(key.0),
            ino: key.1,
            path: path(),
            sha256,
        };
        if shared.matches.send(found).is_err() {
            // Nobody listens any more: the work has no purpose.
            shared.stop.store(true, Ordering::SeqCst);
        }
    }
    Some(verdict)
}
