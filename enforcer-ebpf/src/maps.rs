//! The maps the programs share. Names must match `enforcer_common::names`.

use aya_ebpf::{
    btf_maps::{Array, ArrayOfMaps, PerCpuArray, RingBuf},
    macros::btf_map,
};
use enforcer_common::{counters::COUNTERS_LEN, event::NetEvent, image::IMAGE_MAP_FLAGS};

/// One generation image (see `enforcer_common::image`). The declared size
/// is only the template's: `BPF_F_INNER_MAP` admits images of any size.
pub type Image = Array<u64, 1, { IMAGE_MAP_FLAGS as usize }>;

/// Slot 0 holds the live image; userspace replaces it in one syscall.
#[btf_map]
pub static GENERATION: ArrayOfMaps<Image, 1> = ArrayOfMaps::new();

/// Userspace sizes the ring at load time; this is only the default.
#[btf_map]
pub static EVENTS: RingBuf<NetEvent, { 4 << 20 }> = RingBuf::new();

#[btf_map]
pub static COUNTERS: PerCpuArray<u64, { COUNTERS_LEN as usize }> = PerCpuArray::new();

/// The live image, as the shared lookup code reads it.
pub struct LiveImage<'a>(pub &'a Image);

impl enforcer_common::lookup::Words for LiveImage<'_> {
    #[inline(always)]
    fn word(&self, index: u32) -> Option<u64> {
        self.0.get(index).copied()
    }
}
