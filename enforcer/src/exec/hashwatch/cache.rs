//! What the hash watch knows about file versions. One cache serves the
//! close-write hasher, the scanner and the exec permission thread, so a
//! version one of them hashed is not hashed again by another.

use std::{
    collections::{HashMap, HashSet},
    fs::Metadata,
    os::unix::fs::MetadataExt as _,
    sync::{Mutex, MutexGuard, PoisonError},
};

/// Past this many remembered files the cache starts over rather than grow
/// without bound on a busy filesystem; forgetting costs only re-hashing.
const MAX_ENTRIES: usize = 1 << 20;

/// How long, in nanoseconds, a file's ctime must precede the start of its
/// hash for the verdict to be trusted.
///
/// File timestamps come from a clock that moves in ticks (milliseconds),
/// and on some filesystems in whole seconds (two for FAT), so a rewrite
/// within the tick of the previous change can leave size, mtime and ctime
/// all as they were. A verdict is therefore trusted only when every change
/// made after its hash began is bound to give a later ctime: a version that
/// changed less than this long before its hash is hashed again at each look
/// until a hash begins this long after the change. ctime rather than mtime,
/// because only ctime cannot be set from user space.
const RACY_NS: i128 = 2_000_000_000;

/// (st_dev, inode).
pub(super) type Key = (u64, u64);

/// What says a file's content may have changed since it was hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Stamp {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    pub(super) fn of(metadata: &Metadata) -> Self {
        Self {
            size: metadata.size(),
            mtime: (metadata.mtime(), metadata.mtime_nsec()),
            ctime: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }
}

/// What a version of a file was found to be. Files that could not run
/// (neither an exec bit nor an ELF or `#!` header) and files too large to
/// hash are clean too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Clean,
    Banned([u8; 32]),
}

struct Entry {
    stamp: Stamp,
    verdict: Verdict,
    /// See [`RACY_NS`].
    trusted: bool,
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    /// Versions a thread is hashing right now.
    busy: HashSet<(Key, Stamp)>,
}

#[derive(Default)]
pub(super) struct Cache {
    state: Mutex<State>,
}

pub(super) enum Lookup<'a> {
    /// Examined already, and nothing since can have changed it unseen.
    Known(Verdict),
    /// Not known; the caller hashes it, and other threads see it as busy
    /// until the claim is dropped.
    Claimed(Claim<'a>),
    /// Not known, and another thread is hashing this very version.
    Busy,
}

/// Marks a version as being hashed while it lives.
pub(super) struct Claim<'a> {
    cache: &'a Cache,
    version: (Key, Stamp),
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.cache.state().busy.remove(&self.version);
    }
}

impl Cache {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, and a map cut short would
        // cost only re-hashing anyway.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the version needs no hash from the caller: known, or being
    /// hashed by someone else. Answers from a stat alone.
    pub(super) fn settled(&self, key: Key, stamp: Stamp) -> bool {
        let state = self.state();
        known(&state, key, stamp).is_some() || state.busy.contains(&(key, stamp))
    }

    pub(super) fn lookup(&self, key: Key, stamp: Stamp) -> Lookup<'_> {
        let mut state = self.state();
        if let Some(verdict) = known(&state, key, stamp) {
            return Lookup::Known(verdict);
        }
        if !state.busy.insert((key, stamp)) {
            return Lookup::Busy;
        }
        Lookup::Claimed(Claim {
            cache: self,
            version: (key, stamp),
        })
    }

    /// Remembers what a hash found. `hashed_at` is the coarse realtime
    /// clock read before `stamp` was taken ([`coarse_now`]), or `None` when
    /// the file changed while it was read, so that the verdict belongs to
    /// no single version and is not kept. True when the verdict is banned
    /// and this version was not known to be banned with this digest: the
    /// one time it is to be reported.
    pub(super) fn record(
        &self,
        key: Key,
        stamp: Stamp,
        verdict: Verdict,
        hashed_at: Option<(i64, i64)>,
    ) -> bool {
        let mut state = self.state();
        let previous = state
            .entries
            .get(&key)
            .filter(|entry| entry.stamp == stamp)
            .map(|entry| entry.verdict);
        let news = matches!(verdict, Verdict::Banned(_)) && previous != Some(verdict);
        if let Some(hashed_at) = hashed_at {
            if state.entries.len() >= MAX_ENTRIES && !state.entries.contains_key(&key) {
                state.entries.clear();
            }
            let trusted = nanos(stamp.ctime) + RACY_NS <= nanos(hashed_at);
            state.entries.insert(
                key,
                Entry {
                    stamp,
                    verdict,
                    trusted,
                },
            );
        }
        news
    }
}

fn known(state: &State, key: Key, stamp: Stamp) -> Option<Verdict> {
    state
        .entries
        .get(&key)
        .filter(|entry| entry.stamp == stamp && entry.trusted)
        .map(|entry| entry.verdict)
}

fn nanos((seconds, nanoseconds): (i64, i64)) -> i128 {
    i128::from(seconds) * 1_000_000_000 + i128::from(nanoseconds)
}

/// The clock inode timestamps are taken from, as (seconds, nanoseconds).
pub(super) fn coarse_now() -> (i64, i64) {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) } != 0 {
        // Never happens for this clock; the epoch trusts nothing.
        return (0, 0);
    }
    // Both are i64 on 64-bit targets, narrower on some 32-bit ones.
    #[allow(clippy::useless_conversion)]
    (i64::from(now.tv_sec), i64::from(now.tv_nsec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ctime: i64) -> Stamp {
        Stamp {
            size: 10,
            mtime: (ctime, 0),
            ctime: (ctime, 5),
        }
    }

    #[test]
    fn a_version_hashed_soon_after_its_change_is_looked_at_again() {
        let cache = Cache::default();
        let key = (1, 2);
        let banned = Verdict::Banned([7; 32]);
        // Hashed one second after the change: racy, so a lookup asks for a
        // hash again, and the same finding is not news the second time.
        assert!(cache.record(key, stamp(100), banned, Some((101, 5))));
        assert!(!cache.settled(key, stamp(100)));
        assert!(matches!(cache.lookup(key, stamp(100)), Lookup::Claimed(_)));
        assert!(!cache.record(key, stamp(100), banned, Some((102, 5))));
        // Two seconds after: trusted.
        assert!(cache.settled(key, stamp(100)));
        assert!(
            matches!(cache.lookup(key, stamp(100)), Lookup::Known(verdict) if verdict == banned)
        );
        // Another version of the same file is not known.
        assert!(matches!(cache.lookup(key, stamp(200)), Lookup::Claimed(_)));
        // Other content under the same stamp is news.
        assert!(cache.record(key, stamp(100), Verdict::Banned([8; 32]), Some((103, 0))));
        // A clean verdict never is.
        assert!(!cache.record(key, stamp(300), Verdict::Clean, Some((400, 0))));
        assert!(matches!(
            cache.lookup(key, stamp(300)),
            Lookup::Known(Verdict::Clean)
        ));
    }

    #[test]
    fn a_version_changed_during_its_hash_is_not_kept() {
        let cache = Cache::default();
        let key = (1, 2);
        assert!(cache.record(key, stamp(100), Verdict::Banned([7; 32]), None));
        assert!(matches!(cache.lookup(key, stamp(100)), Lookup::Claimed(_)));
    }

    #[test]
    fn a_claimed_version_is_busy_until_the_claim_ends() {
        let cache = Cache::default();
        let key = (1, 2);
        let claim = cache.lookup(key, stamp(100));
        assert!(matches!(claim, Lookup::Claimed(_)));
        assert!(matches!(cache.lookup(key, stamp(100)), Lookup::Busy));
        assert!(cache.settled(key, stamp(100)));
        // Busy is per version.
        assert!(matches!(cache.lookup(key, stamp(200)), Lookup::Claimed(_)));
        drop(claim);
        assert!(!cache.settled(key, stamp(100)));
    }
}
