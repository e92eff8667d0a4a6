//! The only code that writes the kernel's maps.
//!
//! A generation is installed by creating a fresh image map, filling it
//! through a shared mapping, and putting it into the one slot of an
//! array-of-maps. That step is a single syscall, and the kernel returns
//! from it only once no program is still running on the image it replaced,
//! so every hook sees one whole generation and the old one is gone when
//! `install` returns.
//!
//! There are two slots. The sized slot holds images of one capacity, chosen
//! when the daemon starts, so the verifier inlines every lookup the hooks
//! make in it. An image that outgrows that capacity goes to the slot of any
//! size, where each lookup is a helper call, until a restart sizes the
//! sized slot anew. The hooks read the sized slot first.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
    path::Path,
    ptr::NonNull,
};

use aya::maps::{Map, MapData, MapError, PerCpuArray};
use aya_obj::generated::{bpf_attr, bpf_cmd};
use enforcer_common::{
    counters::{COUNTERS_LEN, Counter},
    image::{ANY_SIZE_IMAGE_MAP_FLAGS, SIZED_IMAGE_MAP_FLAGS, header},
    names::{MAP_GENERATION, MAP_GENERATION_SIZED},
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
        words: u32,
        #[source]
        source: MapError,
    },
    #[error("cannot create the sized generation slot for {words}-word images: {source}")]
    CreateSizedSlot {
        words: u32,
        #[source]
        source: io::Error,
    },
    #[error("cannot pin the sized generation slot at {path}: {source}")]
    PinSizedSlot {
        path: String,
        #[source]
        source: aya::pin::PinError,
    },
    #[error("map {0} is not an array of maps")]
    NotArrayOfMaps(&'static str),
    #[error("cannot put the image into the generation slot {name}: {source}")]
    SetSlot {
        name: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot empty the generation slot {name}: {source}")]
    ClearSlot {
        name: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot map the image for writing: {0}")]
    MapImage(#[source] io::Error),
    #[error("the compiled image is empty")]
    EmptyImage,
}

const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_ARRAY_OF_MAPS: u32 = 12;
const IMAGE_MAP_NAME: &str = "enf_image";

/// Images of fewer words get a sized slot of this many: smaller would save
/// little, and a policy that lists both address families already needs
/// 131,072 words of bucket index.
const MIN_SIZED_WORDS: u32 = 1 << 16;
/// No sized slot holds more (256 MiB); larger images go to the slot of any
/// size.
const MAX_SIZED_WORDS: u32 = 1 << 25;

/// The capacity of the sized slot for a daemon whose first image has
/// `image_words` words: room for it to grow by a quarter, rounded up to a
/// power of two, so an image in that slot uses at most 2.5 times its own
/// words of kernel memory.
pub fn sized_capacity(image_words: usize) -> u32 {
    let wanted = image_words.saturating_add(image_words / 4);
    u32::try_from(wanted)
        .ok()
        .and_then(u32::checked_next_power_of_two)
        .unwrap_or(MAX_SIZED_WORDS)
        .clamp(MIN_SIZED_WORDS, MAX_SIZED_WORDS)
}

/// Creates the sized slot for images of `capacity` words and pins it at
/// `pin`, where the loader finds it: the verifier learns the capacity from
/// the template this map was created with, not from the eBPF object.
pub fn create_sized_slot(capacity: u32, pin: &Path) -> Result<(), MapsError> {
    let template =
        create_image_map(Slot::Sized, capacity).map_err(|source| MapsError::CreateImage {
            words: capacity,
            source,
        })?;
    let outer =
        create_outer_map(template.fd().as_fd()).map_err(|source| MapsError::CreateSizedSlot {
            words: capacity,
            source,
        })?;
    let outer = MapData::from_fd(outer).map_err(|source| MapsError::Map {
        name: MAP_GENERATION_SIZED,
        source,
    })?;
    outer.pin(pin).map_err(|source| MapsError::PinSizedSlot {
        path: pin.display().to_string(),
        source,
    })
}

/// The two generation slots (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Slot {
    Sized,
    AnySize,
}

/// The live generation's slot.
pub struct GenerationSlot {
    /// The image maps themselves need no handle here: a slot holds the
    /// live one, and the kernel frees each when the slot lets go of it.
    sized: MapData,
    any_size: MapData,
    /// The words of every image in the sized slot.
    capacity: u32,
    /// Which slots hold an image. Both may, for a moment, or after the
    /// sized slot took over and emptying the other failed.
    sized_holds: bool,
    any_size_holds: bool,
}

/// Where an installed image went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Installed {
    pub map_id: u32,
    pub slot: Slot,
}

impl GenerationSlot {
    pub fn new(sized: Map, any_size: Map, capacity: u32) -> Result<Self, MapsError> {
        let outer = |map: Map, name: &'static str| match map {
            Map::ArrayOfMaps(data) => Ok(data),
            _ => Err(MapsError::NotArrayOfMaps(name)),
        };
        Ok(Self {
            sized: outer(sized, MAP_GENERATION_SIZED)?,
            any_size: outer(any_size, MAP_GENERATION)?,
            capacity,
            sized_holds: false,
            any_size_holds: false,
        })
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Makes `image` (with `generation` stamped into it) the policy every
    /// hook sees, and says where it went. `before_live` sees the id of its
    /// map while the image is complete but not yet live. On error the
    /// previous generation stays in force.
    pub fn install<E: From<MapsError>>(
        &mut self,
        image: &[u64],
        generation: u64,
        before_live: impl FnOnce(u32) -> Result<(), E>,
    ) -> Result<Installed, E> {
        if image.is_empty() {
            return Err(MapsError::EmptyImage.into());
        }
        let slot = if image.len() <= self.capacity as usize {
            Slot::Sized
        } else {
            Slot::AnySize
        };
        let words = match slot {
            Slot::Sized => self.capacity,
            Slot::AnySize => u32::try_from(image.len()).unwrap_or(u32::MAX),
        };
        let map = create_image_map(slot, words)
            .map_err(|source| MapsError::CreateImage { words, source })?;
        {
            let mut mapping = SharedMapping::new(&map, image.len())?;
            let target = mapping.words_mut();
            target.copy_from_slice(image);
            target[header::GENERATION as usize] = generation;
        }
        let map_id = map
            .info()
            .map_err(|source| MapsError::Map {
                name: IMAGE_MAP_NAME,
                source,
            })?
            .id();
        before_live(map_id)?;
        // The hooks read the sized slot first. Moving into it, the new
        // image is live once it is set there; moving out, only once the
        // sized slot is empty. Either way no hook sees a mix.
        match slot {
            Slot::Sized => {
                set_slot(&self.sized, MAP_GENERATION_SIZED, &map)?;
                self.sized_holds = true;
                // The new generation is in force whatever happens here; an
                // image left behind is unseen, and the next install that
                // moves out of the sized slot replaces it.
                if self.any_size_holds && clear_slot(&self.any_size, MAP_GENERATION).is_ok() {
                    self.any_size_holds = false;
                }
            }
            Slot::AnySize => {
                set_slot(&self.any_size, MAP_GENERATION, &map)?;
                self.any_size_holds = true;
                if self.sized_holds {
                    clear_slot(&self.sized, MAP_GENERATION_SIZED)?;
                    self.sized_holds = false;
                }
            }
        }
        Ok(Installed { map_id, slot })
    }
}

/// Puts `image` into slot 0 of `outer`. The kernel returns once no
/// program still runs on the image the slot held.
fn set_slot(outer: &MapData, name: &'static str, image: &MapData) -> Result<(), MapsError> {
    let image_fd = image.fd().as_fd().as_raw_fd() as u32;
    slot_command(outer, bpf_cmd::BPF_MAP_UPDATE_ELEM, Some(&image_fd))
        .map_err(|source| MapsError::SetSlot { name, source })
}

/// Empties slot 0 of `outer`; like setting it, this returns once no
/// program still runs on the image it held.
fn clear_slot(outer: &MapData, name: &'static str) -> Result<(), MapsError> {
    slot_command(outer, bpf_cmd::BPF_MAP_DELETE_ELEM, None)
        .map_err(|source| MapsError::ClearSlot { name, source })
}

/// An element command on slot 0 of `outer`, with `value` for an update.
/// aya's own update would do, but it has no delete for maps of maps.
fn slot_command(outer: &MapData, command: bpf_cmd, value: Option<&u32>) -> io::Result<()> {
    let key = 0u32;
    // SAFETY: an all-zero bpf_attr is the kernel's "unset" for every field.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing the fields of the element member of the union; `key`
    // and `value` outlive the syscall.
    unsafe {
        let element = &mut attr.__bindgen_anon_2;
        element.map_fd = outer.fd().as_fd().as_raw_fd() as u32;
        element.key = std::ptr::from_ref(&key) as u64;
        if let Some(value) = value {
            element.__bindgen_anon_1.value = std::ptr::from_ref(value) as u64;
        }
    }
    bpf(command, &mut attr).map(drop)
}

/// An empty image map of `words` words for `slot`.
pub fn create_image_map(slot: Slot, words: u32) -> Result<MapData, MapError> {
    let flags = match slot {
        Slot::Sized => SIZED_IMAGE_MAP_FLAGS,
        Slot::AnySize => ANY_SIZE_IMAGE_MAP_FLAGS,
    };
    let obj = aya_obj::Map::new_from_params(
        BPF_MAP_TYPE_ARRAY,
        size_of::<u32>() as u32,
        size_of::<u64>() as u32,
        words,
        flags,
    );
    MapData::create(obj, IMAGE_MAP_NAME, None)
}

/// A one-slot array-of-maps for maps like `template`. aya creates such a
/// map only from the eBPF object, whose template cannot know the capacity.
fn create_outer_map(template: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: an all-zero bpf_attr is the kernel's "unset" for every field.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing the fields of the map-create member of the union.
    unsafe {
        let create = &mut attr.__bindgen_anon_1;
        create.map_type = BPF_MAP_TYPE_ARRAY_OF_MAPS;
        create.key_size = size_of::<u32>() as u32;
        create.value_size = size_of::<u32>() as u32;
        create.max_entries = 1;
        create.inner_map_fd = template.as_raw_fd() as u32;
        for (to, from) in create.map_name.iter_mut().zip(b"enf_gen_sized") {
            *to = *from as libc::c_char;
        }
    }
    let fd = bpf(bpf_cmd::BPF_MAP_CREATE, &mut attr)?;
    // SAFETY: BPF_MAP_CREATE returned a new descriptor that nothing owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bpf(command: bpf_cmd, attr: &mut bpf_attr) -> io::Result<i32> {
    // SAFETY: `attr` is a whole bpf_attr, valid for the call.
    let result = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command as libc::c_long,
            std::ptr::from_mut(attr),
            size_of::<bpf_attr>(),
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    i32::try_from(result).map_err(|_| io::Error::other("descriptor out of range"))
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

/// Builds [`CounterTotals`] from [`enforcer_common::counter_table!`].
macro_rules! counter_totals {
    ($($(#[doc = $doc:literal])* $variant:ident = $index:literal, $name:ident;)*) => {
        /// Totals of the kernel's per-CPU counters. A counter absent from
        /// the status of an older daemon, which did not have it yet, is 0.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct CounterTotals {
            $($(#[doc = $doc])* #[serde(default)] pub $name: u64,)*
        }

        impl CounterTotals {
            fn total_mut(&mut self, counter: Counter) -> &mut u64 {
                match counter {
                    $(Counter::$variant => &mut self.$name,)*
                }
            }
        }
    };
}

enforcer_common::counter_table!(counter_totals);

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
            *totals.total_mut(counter) = sum;
        }
        Ok(totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sized_slot_has_room_for_a_quarter_more_rounded_to_a_power_of_two() {
        assert_eq!(sized_capacity(0), MIN_SIZED_WORDS);
        assert_eq!(sized_capacity(65_560), 1 << 17);
        assert_eq!(sized_capacity(3_000_000), 1 << 22);
        assert_eq!(sized_capacity(3_400_000), 1 << 23);
        assert_eq!(sized_capacity(usize::MAX), MAX_SIZED_WORDS);
    }

    #[test]
    fn the_totals_keep_the_names_status_json_has_always_shown() {
        let mut totals = CounterTotals::default();
        for counter in Counter::ALL {
            *totals.total_mut(counter) = u64::from(counter as u32) + 1;
        }
        let json = serde_json::to_value(totals).unwrap();
        let names = [
            "blocked",
            "audited",
            "allowed",
            "events_dropped",
            "lookup_faults",
            "exec_blocked",
            "exec_audited",
            "exec_allowed",
            "dns_queries_blocked",
            "malformed",
            "addresses_learned",
            "server_names_blocked",
            "tamper_refused",
            "buffers_busy",
            "answers_unsolicited",
            "learned_unstored",
            "chains_cut",
            "hits_uncounted",
        ];
        assert_eq!(json.as_object().unwrap().len(), names.len());
        for (index, name) in names.into_iter().enumerate() {
            assert_eq!(json[name], index as u64 + 1, "{name}");
        }
    }
}
