//! Addresses learned from DNS answers and TLS server names: listing them,
//! and the word on one for the socket hooks.

use aya_ebpf::helpers::bpf_ktime_get_boot_ns;
use enforcer_common::{
    counters::Counter,
    decision::Action,
    dns::Learned,
    domain::DomainMatch,
    event::LearnedAddress,
    lookup::{Fault, Generation},
};

use crate::{
    counters::count,
    maps::{LEARNED, LiveImage},
};

pub(super) const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Lists `learned` for the domain `found`, for its TTL bounded by the
/// policy, and returns the seconds it stays listed.
#[inline(always)]
pub(crate) fn learn(
    generation: &Generation<'_, LiveImage<'_>>,
    found: &DomainMatch,
    learned: &Learned,
) -> Result<u32, Fault> {
    let seconds = generation.learned_seconds(learned.ttl)?;
    let entry = LearnedAddress {
        // SAFETY: a helper without arguments.
        expires_boot_ns: unsafe { bpf_ktime_get_boot_ns() } + seconds * NANOS_PER_SECOND,
        domain_hash: generation.domain_hash(found.slot)?,
    };
    // A full LRU map evicts; an insert fails only without memory, and then
    // the event still reports the address.
    if LEARNED.insert(learned.address, entry, 0).is_ok() {
        count(Counter::AddressesLearned);
    }
    Ok(seconds as u32)
}

/// The live word on a learned address, if it is listed and not expired:
/// the socket hooks check destinations here after the policy's CIDRs.
#[inline(always)]
pub(crate) fn learned_decision(
    generation: &Generation<'_, LiveImage<'_>>,
    address: &[u8; 16],
) -> Result<Option<DomainMatch>, Fault> {
    let Some(entry) = LEARNED.get_ptr(address) else {
        return Ok(None);
    };
    // SAFETY: the map value stays valid for this program run (RCU).
    let entry = unsafe { *entry };
    // SAFETY: a helper without arguments.
    if entry.expires_boot_ns <= unsafe { bpf_ktime_get_boot_ns() } {
        return Ok(None);
    }
    let found = generation.domain_by_hash(entry.domain_hash)?;
    // A policy that turned learning off for the domain since releases it.
    if !found.learns_addresses() {
        return Ok(None);
    }
    Ok(match found.decision.action() {
        Action::Block | Action::Audit => Some(found),
        Action::None | Action::Allow => None,
    })
}
