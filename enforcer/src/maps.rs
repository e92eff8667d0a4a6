//! The only code that writes the kernel's maps.
//!
//! A generation is installed by creating a fresh image map of exactly the
//! size it needs, filling it through a shared mapping, and putting it into
//! the one slot of the `GENERATION` array-of-maps. That last step is a
//! single syscall, and the kernel returns from it only once no program is
//! still running on the image it replaced, so every hook sees one whole
//! generation and the old one is gone when `install` returns.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
};

use aya::maps::{ArrayOfMaps, Map, MapData, MapError, PerCpuArray};
use enforcer_common::{
    counters::{COUNTERS_LEN, Counter},
    image::{IMAGE_MAP_FLAGS, header},
};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum MapsError {
    #[error("the eBPF object has no map named {0}")]
    Missing(&'static str),
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error(
        "cannot create a {words}-word image map (is the memlock limit or kernel memory too low?): {source}"
    )]
    CreateImage {
        words: usize,
        #[source]
        source: MapError,
    },
    #[error("cannot map the image for writing: {0}")]
    MapImage(#[source] io::Error),
    #[error("the compiled image is empty")]
    EmptyImage,
}

const BPF_MAP_TYPE_ARRAY: u32 = 2;
const IMAGE_MAP_NAME: &str = "enf_image";

/// The live generation slot.
pub struct GenerationSlot {
    /// The image maps themselves need no handle here: the slot holds the
    /// live one, and the kernel frees each when the slot lets go of it.
    outer: ArrayOfMaps<MapData, MapData>,
}

impl GenerationSlot {
    pub fn new(map: Map) -> Result<Self, MapsError> {
        let outer = ArrayOfMaps::try_from(map).map_err(|source| MapsError::Map {
            name: enforcer_common::names::MAP_GENERATION,
            source,
        })?;
        Ok(Self { outer })
    }

    /// Makes `image` (with `generation` stamped into it) the policy every
    /// hook sees, and returns the id of its map. `before_live` sees that id
    /// while the image is complete but not yet live. On error the previous
    /// generation stays in force.
    pub fn install<E: From<MapsError>>(
        &mut self,
        image: &[u64],
        generation: u64,
        before_live: impl FnOnce(u32) -> Result<(), E>,
    ) -> Result<u32, E> {
        if image.is_empty() {
            return Err(MapsError::EmptyImage.into());
        }
        let map = create_image_map(image.len()).map_err(|source| MapsError::CreateImage {
            words: image.len(),
            source,
        })?;
        {
            let mut mapping = SharedMapping::new(&map, image.len())?;
            let words = mapping.words_mut();
            words.copy_from_slice(image);
            words[header::GENERATION as usize] = generation;
        }
        let id = map
            .info()
            .map_err(|source| MapsError::Map {
                name: IMAGE_MAP_NAME,
                source,
            })?
            .id();
        before_live(id)?;
        self.outer
            .set(0, &map, 0)
            .map_err(|source| MapsError::Map {
                name: enforcer_common::names::MAP_GENERATION,
                source,
            })?;
        Ok(id)
    }
}

/// An empty image map of `words` words, as every generation gets one.
pub fn create_image_map(words: usize) -> Result<MapData, MapError> {
    let obj = aya_obj::Map::new_from_params(
        BPF_MAP_TYPE_ARRAY,
        size_of::<u32>() as u32,
        size_of::<u64>() as u32,
        u32::try_from(words).unwrap_or(u32::MAX),
        IMAGE_MAP_FLAGS,
    );
    MapData::create(obj, IMAGE_MAP_NAME, None)
}

/// A writable mapping of an mmapable array map's values.
struct SharedMapping {
    address: NonNull<u64>,
    words: usize,
    bytes: usize,
}

impl SharedMapping {
    fn new(map: &MapData, words: usize) -> Result<Self, MapsError> {
        let page = page_size();
        let bytes = (words * size_of::<u64>()).div_ceil(page) * page;
        // SAFETY: a fresh shared mapping of a map we own; checked below.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if address == libc::MAP_FAILED {
            return Err(MapsError::MapImage(io::Error::last_os_error()));
        }
        let address = NonNull::new(address.cast())
            .ok_or(MapsError::MapImage(io::Error::other("null mapping")))?;
        Ok(Self {
            address,
            words,
            bytes,
        })
    }

    fn words_mut(&mut self) -> &mut [u64] {
        // SAFETY: the mapping spans at least `words` u64 values, is aligned
        // to a page, and lives as long as `self`.
        unsafe { std::slice::from_raw_parts_mut(self.address.as_ptr(), self.words) }
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe { libc::munmap(self.address.as_ptr().cast(), self.bytes) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// Totals of the kernel's per-CPU counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterTotals {
    pub blocked: u64,
    pub audited: u64,
    pub allowed: u64,
    pub events_dropped: u64,
    pub lookup_faults: u64,
    pub exec_blocked: u64,
    pub exec_audited: u64,
    pub exec_allowed: u64,
    pub dns_queries_blocked: u64,
    pub malformed: u64,
    pub addresses_learned: u64,
    pub server_names_blocked: u64,
    /// Absent from the status of a daemon older than self-protection.
    #[serde(default)]
    pub tamper_refused: u64,
}

pub struct Counters {
    map: PerCpuArray<MapData, u64>,
}

impl Counters {
    pub fn new(map: Map) -> Result<Self, MapsError> {
        let map = PerCpuArray::try_from(map).map_err(|source| MapsError::Map {
            name: enforcer_common::names::MAP_COUNTERS,
            source,
        })?;
        Ok(Self { map })
    }

    pub fn totals(&self) -> Result<CounterTotals, MapsError> {
        let mut totals = CounterTotals::default();
        for counter in Counter::ALL {
            debug_assert!((counter as u32) < COUNTERS_LEN);
            let sum = self
                .map
                .get(&(counter as u32), 0)
                .map_err(|source| MapsError::Map {
                    name: enforcer_common::names::MAP_COUNTERS,
                    source,
                })?
                .iter()
                .sum();
            let slot = match counter {
                Counter::Blocked => &mut totals.blocked,
                Counter::Audited => &mut totals.audited,
                Counter::Allowed => &mut totals.allowed,
                Counter::EventsDropped => &mut totals.events_dropped,
                Counter::LookupFaults => &mut totals.lookup_faults,
                Counter::ExecBlocked => &mut totals.exec_blocked,
                Counter::ExecAudited => &mut totals.exec_audited,
                Counter::ExecAllowed => &mut totals.exec_allowed,
                Counter::DnsQueriesBlocked => &mut totals.dns_queries_blocked,
                Counter::Malformed => &mut totals.malformed,
                Counter::AddressesLearned => &mut totals.addresses_learned,
                Counter::ServerNamesBlocked => &mut totals.server_names_blocked,
                Counter::TamperRefused => &mut totals.tamper_refused,
            };
            *slot = sum;
        }
        Ok(totals)
    }
}
