//! The maps the programs share. Names must match `enforcer_common::names`.

use aya_ebpf::{
    btf_maps::{Array, ArrayOfMaps, LruHashMap, PerCpuArray, RingBuf},
    macros::btf_map,
};
use core::mem::MaybeUninit;

use enforcer_common::{
    counters::COUNTERS_LEN,
    dns::{Learned, MAX_ANSWERS, Response},
    domain::NAME_BYTES,
    event::{LearnedAddress, NetEvent},
    image::{ANY_SIZE_IMAGE_MAP_FLAGS, SIZED_IMAGE_MAP_FLAGS},
    packet::{PACKET_BYTES, Packet},
};

/// A generation image (see `enforcer_common::image`) in the sized slot. The
/// size declared here is never used: userspace creates `GENERATION_SIZED`
/// itself, with a template of the capacity it chose, before loading.
pub type SizedImage = Array<u64, 1, { SIZED_IMAGE_MAP_FLAGS as usize }>;

/// A generation image of any size: `BPF_F_INNER_MAP` admits them all.
pub type AnySizeImage = Array<u64, 1, { ANY_SIZE_IMAGE_MAP_FLAGS as usize }>;

/// Slot 0 holds the live image when it fits the capacity. Userspace
/// replaces it in one syscall.
#[btf_map]
pub static GENERATION_SIZED: ArrayOfMaps<SizedImage, 1> = ArrayOfMaps::new();

/// Slot 0 holds the live image when it does not fit the sized slot, which
/// is then empty.
#[btf_map]
pub static GENERATION: ArrayOfMaps<AnySizeImage, 1> = ArrayOfMaps::new();

/// Userspace sizes the ring at load time; this is only the default.
#[btf_map]
pub static EVENTS: RingBuf<NetEvent, { 4 << 20 }> = RingBuf::new();

#[btf_map]
pub static COUNTERS: PerCpuArray<u64, { COUNTERS_LEN as usize }> = PerCpuArray::new();

/// Addresses learned from DNS answers and TLS server names, keyed by the
/// address as IPv6 in network order. Least recently used entries make
/// room for new ones, so a flood of answers cannot fill it for good.
#[btf_map]
pub static LEARNED: LruHashMap<[u8; 16], LearnedAddress, 65536> = LruHashMap::new();

/// Room to copy a payload and a name into: far more than the 512-byte
/// stack holds.
pub struct Scratch {
    pub packet: [u8; PACKET_BYTES],
    pub name: [u8; NAME_BYTES],
    /// Bytes of `packet` in use.
    pub copied: usize,
    /// The word on the DNS response being judged, too big for the stack.
    pub response: MaybeUninit<Response>,
    /// The addresses of that response, collected before they are learned,
    /// and how many there are.
    pub learned: [Learned; MAX_ANSWERS as usize],
    pub collected: usize,
}

#[btf_map]
pub static SCRATCH: PerCpuArray<Scratch, 1> = PerCpuArray::new();

/// The copied payload and the name buffer of a [`Scratch`], borrowed
/// apart.
pub struct Parts<'a> {
    pub payload: Packet<'a>,
    pub name: &'a mut [u8; NAME_BYTES],
}

impl Scratch {
    #[inline(always)]
    pub fn parts(&mut self) -> Option<Parts<'_>> {
        // SAFETY: a plain read of a field of this map value. Read back from
        // memory, the length is unknown to the verifier (see `Packet::new`).
        let len = unsafe { core::ptr::read_volatile(&self.copied) };
        Some(Parts {
            payload: Packet::new(&self.packet, len)?,
            name: &mut self.name,
        })
    }
}

/// The headers of the packet a cgroup_skb program is judging.
#[btf_map]
pub static HEADERS: PerCpuArray<crate::skb::Headers, 1> = PerCpuArray::new();

/// The live image, as the shared lookup code reads it.
///
/// Each variant has lookup calls of its own: the verifier inlines a lookup
/// only at a call that always reads maps of one capacity.
#[derive(Clone, Copy)]
pub enum LiveImage<'a> {
    Sized(&'a SizedImage),
    AnySize(&'a AnySizeImage),
}

impl LiveImage<'static> {
    /// The image of the generation in force; `None` before the first.
    #[inline(always)]
    pub fn get() -> Option<Self> {
        if let Some(image) = GENERATION_SIZED.get(0) {
            return Some(Self::Sized(image));
        }
        GENERATION.get(0).map(Self::AnySize)
    }
}

impl enforcer_common::lookup::Words for LiveImage<'_> {
    #[inline(always)]
    fn word(&self, index: u32) -> Option<u64> {
        match self {
            Self::Sized(image) => image.get(index).copied(),
            Self::AnySize(image) => image.get(index).copied(),
        }
    }
}
