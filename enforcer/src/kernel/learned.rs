//! The learned-address map from userspace: deleting what has expired (the
//! kernel never evicts; see `enforcer_common::learned`) and carrying
//! entries over at a takeover. Either one changes owners' counts only
//! through `LEARNED_ADJUSTED`, which the programs never write, so no count
//! the programs keep is ever overwritten.

use std::{collections::BTreeMap, path::Path};

use aya::{
    Pod,
    maps::{HashMap, Map, MapData, MapError},
};
use enforcer_common::{
    learned::{LearnedAddress, LearnedKey, SHARED_OWNER, held},
    names::{MAP_LEARNED, MAP_LEARNED_ADDED, MAP_LEARNED_ADJUSTED},
};

#[derive(Debug, thiserror::Error)]
pub enum LearnedError {
    #[error("learned-address map {name} at {path}: {source}")]
    Open {
        name: &'static str,
        path: String,
        #[source]
        source: MapError,
    },
}

/// One instance's learned addresses and its owners' counts, through their
/// pins.
pub struct LearnedMaps {
    entries: HashMap<MapData, LearnedKey, LearnedAddress>,
    added: HashMap<MapData, u32, u64>,
    adjusted: HashMap<MapData, u32, i64>,
}

/// What a sweep left: the entries still listed, by owner.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sweep {
    pub live: BTreeMap<u32, u64>,
}

impl LearnedMaps {
    /// The maps pinned in the instance directory `instance`.
    pub fn open(instance: &Path) -> Result<Self, LearnedError> {
        Ok(Self {
            entries: open_hash(instance, MAP_LEARNED)?,
            added: open_hash(instance, MAP_LEARNED_ADDED)?,
            adjusted: open_hash(instance, MAP_LEARNED_ADJUSTED)?,
        })
    }

    /// Deletes the entries that expired by `now_boot_ns`, and gives their
    /// owners the room back. An owner left with nothing is forgotten, so
    /// that the owners map makes room for others; the shared owner is
    /// always kept, so that it can learn even when that map is full.
    ///
    /// A sweep races the kernel in two places, each a few microseconds
    /// long: an entry an answer refreshes between its read here and its
    /// deletion is deleted all the same, and an entry learned for an owner
    /// as it is forgotten is not counted against its quota.
    pub fn sweep(&mut self, now_boot_ns: u64) -> Sweep {
        let mut sweep = Sweep::default();
        let mut deleted: BTreeMap<u32, i64> = BTreeMap::new();
        let keys: Vec<LearnedKey> = self.entries.keys().flatten().collect();
        for key in keys {
            let Ok(entry) = self.entries.get(&key, 0) else {
                continue;
            };
            if entry.expires_boot_ns <= now_boot_ns {
                if self.entries.remove(&key).is_ok() {
                    *deleted.entry(key.owner).or_default() += 1;
                }
            } else {
                *sweep.live.entry(key.owner).or_default() += 1;
            }
        }
        for (owner, count) in deleted {
            self.adjust(owner, count);
        }
        let _ = self
            .added
            .insert(SHARED_OWNER, 0, u64::from(aya_obj::generated::BPF_NOEXIST));
        let owners: Vec<u32> = self.added.keys().flatten().collect();
        for owner in owners {
            if owner == SHARED_OWNER || sweep.live.contains_key(&owner) {
                continue;
            }
            let added = self.added.get(&owner, 0).unwrap_or_default();
            if held(added, self.adjusted.get(&owner, 0).unwrap_or_default()) == 0 {
                let _ = self.added.remove(&owner);
                let _ = self.adjusted.remove(&owner);
            }
        }
        sweep
    }

    /// Copies `earlier`'s entries into these maps, counts them against
    /// their owners' quotas, and returns how many were copied.
    pub fn copy_from(&mut self, earlier: &Self) -> usize {
        let mut copied: BTreeMap<u32, i64> = BTreeMap::new();
        for (key, entry) in earlier.entries.iter().flatten() {
            if self.entries.insert(key, entry, 0).is_ok() {
                *copied.entry(key.owner).or_default() += 1;
            }
        }
        let total = copied.values().sum::<i64>();
        for (owner, count) in copied {
            self.adjust(owner, -count);
        }
        usize::try_from(total).unwrap_or_default()
    }

    /// Adds `count` to `owner`'s adjustment: what the daemon took back
    /// (positive) or brought in (negative).
    fn adjust(&mut self, owner: u32, count: i64) {
        let now = self.adjusted.get(&owner, 0).unwrap_or_default();
        let _ = self.adjusted.insert(owner, now.saturating_add(count), 0);
    }
}

fn open_hash<K: Pod, V: Pod>(
    instance: &Path,
    name: &'static str,
) -> Result<HashMap<MapData, K, V>, LearnedError> {
    let path = instance.join("maps").join(name);
    MapData::from_pin(&path)
        .and_then(|data| HashMap::try_from(Map::HashMap(data)))
        .map_err(|source| LearnedError::Open {
            name,
            path: path.display().to_string(),
            source,
        })
}

/// `CLOCK_BOOTTIME` in nanoseconds, the clock the kernel stamps entries
/// with.
pub fn now_boot_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer for clock_gettime, which cannot fail for
    // this clock on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
