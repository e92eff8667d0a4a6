//! Addresses learned from DNS answers and TLS server names: listing them
//! for their owner within its quota, and the word on one for the socket
//! hooks (see `enforcer_common::learned`).

use aya_ebpf::{
    bindings::{BPF_EXIST, BPF_NOEXIST},
    helpers::bpf_ktime_get_boot_ns,
};
use core::intrinsics::{AtomicOrdering, atomic_xadd, atomic_xsub};
use enforcer_common::{
    counters::Counter,
    decision::Action,
    dns::Learned,
    domain::DomainMatch,
    learned::{LearnedAddress, LearnedKey, SHARED_OWNER, held},
    lookup::{Fault, Generation},
};

use crate::{
    counters::count,
    maps::{LEARNED, LEARNED_ADDED, LEARNED_ADJUSTED, LiveImage},
};

pub(super) const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// What became of an address to learn.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Learning {
    /// Listed for the seconds asked.
    Listed,
    /// The owner holds the address for a name whose action outranks this
    /// one's (see `LearnedAddress::yields_to`), and keeps it.
    Kept,
    /// The owner's quota or the map is full, and nothing was listed: what
    /// carried the address is to be dropped.
    Unstored,
    /// A lookup left the image. A variant, and no variant carries data,
    /// so that the word comes back in a register: a BPF call has five
    /// argument registers and no room for a pointer to a result.
    Fault,
}

/// Lists `learned` for `owner` and the domain `found`, for `seconds`.
// A function of its own: inlined, the key and entry it builds would sit in
// its caller's frame, on the deepest chain of calls (see `STACK` in `skb`;
// Linux 6.1 refused ingress at 544 bytes).
#[inline(never)]
pub(crate) fn learn(
    generation: &Generation<'_, LiveImage<'_>>,
    found: &DomainMatch,
    learned: &Learned,
    owner: u32,
    seconds: u64,
) -> Learning {
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let action = found.decision.action();
    let key = LearnedKey {
        owner,
        address: learned.address,
    };
    let Ok(domain_hash) = generation.domain_hash(found.slot) else {
        return Learning::Fault;
    };
    let entry = LearnedAddress {
        expires_boot_ns: now + seconds * NANOS_PER_SECOND,
        domain_hash,
        action: action as u32,
        reserved: 0,
    };
    if let Some(existing) = LEARNED.get_ptr(&key) {
        // SAFETY: the map value stays valid for this program run (RCU).
        if !unsafe { *existing }.yields_to(action, now) {
            return Learning::Kept;
        }
        // A replacement, whole for every reader. It fails only when the
        // daemon deleted the entry since, as expired; it is added anew.
        if LEARNED
            .insert(&key, &entry, u64::from(BPF_EXIST))
            .is_ok()
        {
            count(Counter::AddressesLearned);
            return Learning::Listed;
        }
    }
    let Ok(quota) = generation.learned_quota(owner) else {
        return Learning::Fault;
    };
    let Some(added) = reserve(owner, quota) else {
        count(Counter::LearnedUnstored);
        return Learning::Unstored;
    };
    if LEARNED
        .insert(&key, &entry, u64::from(BPF_NOEXIST))
        .is_ok()
    {
        count(Counter::AddressesLearned);
        return Learning::Listed;
    }
    release(added);
    // Another CPU listed the same address for the same owner in between,
    // or the map is full.
    if LEARNED.get_ptr(&key).is_some() {
        return Learning::Listed;
    }
    count(Counter::LearnedUnstored);
    Learning::Unstored
}

/// Takes one entry of `owner`'s quota: its count of added entries, raised
/// by one, or `None` when the quota is used up or the owners map is full.
#[inline(always)]
fn reserve(owner: u32, quota: u64) -> Option<*mut u64> {
    let added = match LEARNED_ADDED.get_ptr_mut(owner) {
        Some(added) => added,
        None => {
            // Another CPU may add it first; either way it is there after.
            let _ = LEARNED_ADDED.insert(owner, 0, u64::from(BPF_NOEXIST));
            LEARNED_ADDED.get_ptr_mut(owner)?
        }
    };
    let adjusted = match LEARNED_ADJUSTED.get_ptr(owner) {
        // SAFETY: the map value stays valid for this program run (RCU).
        Some(adjusted) => unsafe { core::ptr::read_volatile(adjusted) },
        None => 0,
    };
    // Added, then read: the BPF target has no 64-bit fetch-and-add. Two
    // CPUs that both read past the quota both give their entry back.
    // SAFETY: an aligned u64 of a map value that outlives the program run,
    // only ever changed atomically by the programs.
    let after = unsafe {
        atomic_xadd::<u64, u64, { AtomicOrdering::AcqRel }>(added, 1);
        core::ptr::read_volatile(added)
    };
    if held(after, adjusted) > quota {
        release(added);
        return None;
    }
    Some(added)
}

/// Gives back an entry [`reserve`] took.
#[inline(always)]
fn release(added: *mut u64) {
    // SAFETY: as in `reserve`.
    unsafe { atomic_xsub::<u64, u64, { AtomicOrdering::AcqRel }>(added, 1) };
}

/// The live word on `address` for a socket of `uid`, if an entry that
/// binds everyone or one that binds `uid` lists it and has not expired:
/// the socket hooks check destinations here after the policy's CIDRs.
/// The stronger of the two decides.
#[inline(always)]
pub(crate) fn learned_decision(
    generation: &Generation<'_, LiveImage<'_>>,
    address: &[u8; 16],
    uid: u32,
) -> Result<Option<DomainMatch>, Fault> {
    let shared = held_decision(generation, SHARED_OWNER, address)?;
    let own = held_decision(generation, uid, address)?;
    // Matches rather than options: an `Option` here left a register unset
    // on one path, which the verifier refuses to read.
    let stronger = if own.decision.outranks(shared.decision) {
        own
    } else {
        shared
    };
    Ok((stronger.decision.action() != Action::None).then_some(stronger))
}

/// The live word on `owner`'s entry for `address`: nothing listed when it
/// has none, or it has expired.
#[inline(always)]
fn held_decision(
    generation: &Generation<'_, LiveImage<'_>>,
    owner: u32,
    address: &[u8; 16],
) -> Result<DomainMatch, Fault> {
    let key = LearnedKey {
        owner,
        address: *address,
    };
    let Some(entry) = LEARNED.get_ptr(&key) else {
        return Ok(DomainMatch::NONE);
    };
    // SAFETY: the map value stays valid for this program run (RCU).
    let entry = unsafe { *entry };
    // SAFETY: a helper without arguments.
    if entry.expires_boot_ns <= unsafe { bpf_ktime_get_boot_ns() } {
        return Ok(DomainMatch::NONE);
    }
    let found = generation.domain_by_hash(entry.domain_hash)?;
    // A policy that turned learning off for the domain since releases it.
    if !found.learns_addresses() {
        return Ok(DomainMatch::NONE);
    }
    Ok(found)
}
