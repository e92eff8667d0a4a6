//! The learned-address map from userspace: deleting what has expired and
//! recounting each owner's entries (the kernel never evicts; see
//! `enforcer_common::learned`), and carrying entries over at a takeover.

use std::{collections::BTreeMap, path::Path};

use aya::{
    Pod,
    maps::{HashMap, Map, MapData, MapError},
};
use enforcer_common::{
    learned::{LearnedAddress, LearnedKey, SHARED_OWNER},
    names::{MAP_LEARNED, MAP_LEARNED_OWNERS},
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
    owners: HashMap<MapData, u32, u64>,
}

/// What a sweep found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// Expired entries deleted.
    pub expired: usize,
    /// Entries still listed, by owner.
    pub live: BTreeMap<u32, u64>,
}

impl LearnedMaps {
    /// The maps pinned in the instance directory `instance`.
    pub fn open(instance: &Path) -> Result<Self, LearnedError> {
        Ok(Self {
            entries: open_hash(instance, MAP_LEARNED)?,
            owners: open_hash(instance, MAP_LEARNED_OWNERS)?,
        })
    }

    /// Deletes the entries that expired by `now_boot_ns` and sets each
    /// owner's count to what is left. The shared owner is always counted,
    /// so that its count exists even when the owners map is full.
    ///
    /// A sweep races the kernel: an entry an answer refreshes between its
    /// read here and its deletion is deleted all the same, and an address
    /// the kernel adds during the sweep is counted at the next one.
    pub fn sweep(&mut self, now_boot_ns: u64) -> Sweep {
        let mut sweep = Sweep::default();
        sweep.live.insert(SHARED_OWNER, 0);
        let keys: Vec<LearnedKey> = self.entries.keys().flatten().collect();
        for key in keys {
            let Ok(entry) = self.entries.get(&key, 0) else {
                continue;
            };
            if entry.expires_boot_ns <= now_boot_ns {
                if self.entries.remove(&key).is_ok() {
                    sweep.expired += 1;
                }
            } else {
                *sweep.live.entry(key.owner).or_default() += 1;
            }
        }
        let counted: Vec<u32> = self.owners.keys().flatten().collect();
        for owner in counted {
            if !sweep.live.contains_key(&owner) {
                let _ = self.owners.remove(&owner);
            }
        }
        for (&owner, &entries) in &sweep.live {
            let _ = self.owners.insert(owner, entries, 0);
        }
        sweep
    }

    /// Copies `earlier`'s entries into these maps, and returns how many
    /// were copied; the next sweep counts them.
    pub fn copy_from(&mut self, earlier: &Self) -> usize {
        earlier
            .entries
            .iter()
            .flatten()
            .filter(|(key, entry)| self.entries.insert(key, entry, 0).is_ok())
            .count()
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
