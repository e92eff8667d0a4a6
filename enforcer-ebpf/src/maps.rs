//! The maps the programs share. Names must match `enforcer_common::names`.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    btf_maps::{Array, ArrayOfMaps, HashMap, PerCpuArray, ProgramArray, SkStorage},
    macros::btf_map,
};
use core::{
    intrinsics::{AtomicOrdering, atomic_and, atomic_or},
    mem::MaybeUninit,
};

use enforcer_common::{
    claim::{self, ClaimWord},
    dns::{Cnames, Learned, MAX_ANSWERS, PendingQueries, Response},
    domain::NAME_BYTES,
    exec::MAX_NAME_LEN,
    image::{ANY_SIZE_IMAGE_MAP_FLAGS, SIZED_IMAGE_MAP_FLAGS},
    learned::{LEARNED_CAPACITY, LearnedAddress, LearnedKey, MAX_OWNERS},
    names::{ANY_SIZE_SLOT_INDEX, SIZED_SLOT_INDEX},
    packet::{PACKET_BYTES, Packet},
};

use crate::headers::Headers;

/// A generation image (see `enforcer_common::image`) in the sized slot. The
/// size declared here is never used: userspace creates `GENERATION_SIZED`
/// itself, with a template of the capacity it chose, before loading.
pub(crate) type SizedImage = Array<u64, 1, { SIZED_IMAGE_MAP_FLAGS as usize }>;

/// A generation image of any size: `BPF_F_INNER_MAP` admits them all.
pub(crate) type AnySizeImage = Array<u64, 1, { ANY_SIZE_IMAGE_MAP_FLAGS as usize }>;

/// Slot 0 holds the live image when it fits the capacity. Userspace
/// replaces it in one syscall.
#[btf_map]
pub(crate) static GENERATION_SIZED: ArrayOfMaps<SizedImage, 1> = ArrayOfMaps::new();

/// Slot 0 holds the live image when it does not fit the sized slot, which
/// is then empty.
#[btf_map]
pub(crate) static GENERATION: ArrayOfMaps<AnySizeImage, 1> = ArrayOfMaps::new();

/// Addresses learned from DNS answers and TLS server names, by owner (see
/// `enforcer_common::learned`). Nothing is ever evicted to make room: the
/// daemon deletes what has expired. Entries are allocated as they are
/// learned, not all at load.
#[btf_map]
pub(crate) static LEARNED: HashMap<
    LearnedKey,
    LearnedAddress,
    { LEARNED_CAPACITY as usize },
    { BPF_F_NO_PREALLOC as usize },
> = HashMap::new();

/// How many entries of `LEARNED` the programs added for each owner. Only
/// the programs write it (see `enforcer_common::learned::held`).
#[btf_map]
pub(crate) static LEARNED_ADDED: HashMap<u32, u64, { MAX_OWNERS as usize }> = HashMap::new();

/// How many of each owner's entries the daemon deleted, less those it
/// copied in. Only the daemon writes it.
#[btf_map]
pub(crate) static LEARNED_ADJUSTED: HashMap<u32, i64, { MAX_OWNERS as usize }> = HashMap::new();

/// The DNS queries each socket of the enforced cgroup sent, on the socket
/// itself: only an answer to one of them teaches an address (see
/// `skb::pending`). It dies with the socket, and with the programs.
#[btf_map]
pub(crate) static PENDING_QUERIES: SkStorage<PendingQueries> = SkStorage::new();

/// Room to copy a payload and a name into: far more than the 512-byte
/// stack holds.
pub(crate) struct Scratch {
    pub(crate) packet: [u8; PACKET_BYTES],
    pub(crate) name: [u8; NAME_BYTES],
    /// Bytes of `packet` in use.
    pub(crate) copied: usize,
    /// The word on the DNS response being judged, too big for the stack.
    pub(crate) response: MaybeUninit<Response>,
    /// Where that response's CNAME targets are.
    pub(crate) cnames: MaybeUninit<Cnames>,
    /// The addresses of that response, collected before they are learned,
    /// and how many there are.
    pub(crate) learned: [Learned; MAX_ANSWERS as usize],
    pub(crate) collected: usize,
    /// The digest of that response's question name, taken before the
    /// name buffer moves on to its CNAME targets.
    pub(crate) question_digest: u64,
}

/// The copied payload and the name buffer of a [`Scratch`], borrowed
/// apart.
pub(crate) struct Parts<'a> {
    pub(crate) payload: Packet<'a>,
    pub(crate) name: &'a mut [u8; NAME_BYTES],
}

impl Scratch {
    #[inline(always)]
    pub(crate) fn parts(&mut self) -> Option<Parts<'_>> {
        // SAFETY: a plain read of a field of this map value. Read back from
        // memory, the length is unknown to the verifier (see `Packet::new`).
        let len = unsafe { core::ptr::read_volatile(&self.copied) };
        Some(Parts {
            payload: Packet::new(&self.packet, len)?,
            name: &mut self.name,
        })
    }
}

/// What a cgroup_skb program judges one packet with.
pub(crate) struct Workspace {
    pub(crate) headers: Headers,
    pub(crate) scratch: Scratch,
}

/// Buffers per CPU in each pool: one for a run in process context, one for
/// a softirq that interrupts it, and two for runs of tasks that preempt
/// them (see `enforcer_common::claim`).
const POOL_SLOTS: usize = 4;

#[btf_map]
static WORKSPACES: PerCpuArray<Workspace, POOL_SLOTS> = PerCpuArray::new();

/// Room for an executable's file name, too large for the BPF stack.
pub(crate) type NameBuffer = [u8; MAX_NAME_LEN + 1];

#[btf_map]
static NAME_BUFFERS: PerCpuArray<NameBuffer, POOL_SLOTS> = PerCpuArray::new();

/// This CPU's claims: bit `n` of word `Pool::word` is set while buffer `n`
/// of that pool is in use.
#[btf_map]
static CLAIMS: PerCpuArray<u64, 2> = PerCpuArray::new();

/// A pool of per-CPU buffers, each claimed by one program run at a time.
enum Pool {
    Workspaces,
    NameBuffers,
}

impl Pool {
    #[inline(always)]
    const fn word(&self) -> u32 {
        match self {
            Pool::Workspaces => 0,
            Pool::NameBuffers => 1,
        }
    }
}

/// This CPU's claims on one pool.
///
/// Not `AtomicU64`: the kernel has atomic or and and on map values (Linux
/// 5.12), but Rust's BPF target declares no compare-and-swap, so `core`
/// leaves out every read-modify-write. The intrinsics emit the kernel's
/// instructions.
#[derive(Clone, Copy)]
struct Claims(*mut u64);

impl ClaimWord for Claims {
    #[inline(always)]
    fn fetch_or(&self, bits: u64) -> u64 {
        // SAFETY: an aligned u64 of a map value that outlives the program
        // run, only ever changed atomically.
        unsafe { atomic_or::<u64, u64, { AtomicOrdering::AcqRel }>(self.0, bits) }
    }

    #[inline(always)]
    fn fetch_and(&self, bits: u64) -> u64 {
        // SAFETY: as in `fetch_or`.
        unsafe { atomic_and::<u64, u64, { AtomicOrdering::AcqRel }>(self.0, bits) }
    }
}

/// A buffer that is this run's alone until it is dropped.
pub(crate) struct Claimed<T: 'static> {
    claims: Claims,
    slot: u32,
    buffer: &'static mut T,
}

impl<T> Claimed<T> {
    /// A free buffer of this CPU's in `buffers`, or `None` when every one is
    /// claimed.
    #[inline(always)]
    fn claim(pool: Pool, buffers: &'static PerCpuArray<T, POOL_SLOTS>) -> Option<Self> {
        let claims = Claims(CLAIMS.get_ptr_mut(pool.word())?);
        let slot = claim::claim(&claims, POOL_SLOTS as u32)?;
        let Some(buffer) = buffers.get_ptr_mut(slot) else {
            claim::release(&claims, slot);
            return None;
        };
        Some(Self {
            claims,
            slot,
            // SAFETY: the claim makes this slot ours until `drop`.
            buffer: unsafe { &mut *buffer },
        })
    }

    #[inline(always)]
    pub(crate) fn get(&mut self) -> &mut T {
        self.buffer
    }
}

impl Claimed<Workspace> {
    #[inline(always)]
    pub(crate) fn workspace() -> Option<Self> {
        Self::claim(Pool::Workspaces, &WORKSPACES)
    }
}

impl Claimed<NameBuffer> {
    #[inline(always)]
    pub(crate) fn name_buffer() -> Option<Self> {
        Self::claim(Pool::NameBuffers, &NAME_BUFFERS)
    }
}

impl<T> Drop for Claimed<T> {
    #[inline(always)]
    fn drop(&mut self) {
        claim::release(&self.claims, self.slot);
    }
}

/// The live image, as the shared lookup code reads it.
///
/// Each variant has lookup calls of its own: the verifier inlines a lookup
/// only at a call that always reads maps of one capacity.
#[derive(Clone, Copy)]
pub(crate) enum LiveImage<'a> {
    Sized(&'a SizedImage),
    AnySize(&'a AnySizeImage),
}

impl LiveImage<'static> {
    /// The image of the generation in force; `None` before the first.
    #[inline(always)]
    pub(crate) fn get() -> Option<Self> {
        SizedSlot::image().or_else(AnySizeSlot::image)
    }
}

/// One of the two slots the live image may be in. A program that reads
/// only one is checked by the verifier for that slot alone.
pub(crate) trait ImageSlot {
    /// Where the variant of a packet program for this slot sits in its
    /// program array.
    const INDEX: u32;

    /// The live image, if it is in this slot.
    fn image() -> Option<LiveImage<'static>>;
}

pub(crate) struct SizedSlot;
pub(crate) struct AnySizeSlot;

impl ImageSlot for SizedSlot {
    const INDEX: u32 = SIZED_SLOT_INDEX;

    #[inline(always)]
    fn image() -> Option<LiveImage<'static>> {
        GENERATION_SIZED.get(0).map(LiveImage::Sized)
    }
}

impl ImageSlot for AnySizeSlot {
    const INDEX: u32 = ANY_SIZE_SLOT_INDEX;

    #[inline(always)]
    fn image() -> Option<LiveImage<'static>> {
        GENERATION.get(0).map(LiveImage::AnySize)
    }
}

impl LiveImage<'_> {
    /// The index of the slot this image is in.
    #[inline(always)]
    pub(crate) fn slot_index(&self) -> u32 {
        match self {
            Self::Sized(_) => SizedSlot::INDEX,
            Self::AnySize(_) => AnySizeSlot::INDEX,
        }
    }
}

/// The variants of the egress and ingress programs, by slot. Userspace
/// fills both before it attaches either program, and keeps them pinned:
/// the kernel empties a program array when no file holds it.
#[btf_map]
pub(crate) static EGRESS_VARIANTS: ProgramArray<2> = ProgramArray::new();
#[btf_map]
pub(crate) static INGRESS_VARIANTS: ProgramArray<2> = ProgramArray::new();

impl enforcer_common::lookup::Words for LiveImage<'_> {
    #[inline(always)]
    fn word(&self, index: u32) -> Option<u64> {
        match self {
            Self::Sized(image) => image.get(index).copied(),
            Self::AnySize(image) => image.get(index).copied(),
        }
    }
}
