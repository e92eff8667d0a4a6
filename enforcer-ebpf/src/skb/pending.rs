//! The queries each socket sent, kept on the socket (see
//! `enforcer_common::dns::PendingQueries`): remembered for every query
//! that leaves, looked up for every answer that would teach an address.

use aya_ebpf::{
    bindings::BPF_SK_STORAGE_GET_F_CREATE,
    helpers::{bpf_ktime_get_boot_ns, bpf_sk_storage_get},
    programs::SkBuffContext,
};
use enforcer_common::{
    dns::{PendingQueries, PendingQuery, Question, name_digest},
    domain::Name,
};

use super::learn::NANOS_PER_SECOND;
use crate::{
    headers::{Headers, full_socket},
    maps::PENDING_QUERIES,
    repeat::BpfLoop,
};

/// Remembers the query `id` with `question`, whose name is `name`, on
/// the socket that sends it. A socket the kernel gives no storage to
/// (out of memory) remembers nothing, so its answers for listed names are
/// dropped: the lookup fails closed.
// A function of its own: see `STACK` in `skb`.
#[inline(never)]
pub(crate) fn remember_query(
    ctx: &SkBuffContext,
    packet: &Headers,
    id: u16,
    question: &Question,
    name: &Name<'_>,
) {
    let Some(pending) = pending_queries(ctx, true) else {
        return;
    };
    let query = PendingQuery {
        resolver: packet.daddr,
        name_digest: name_digest(name, &BpfLoop),
        sent: 0,
        id,
        qtype: question.qtype,
    };
    // SAFETY: the socket's storage, valid for this run; two CPUs writing
    // it at once can at worst spoil a slot, which drops that answer.
    unsafe { (*pending).remember(query, now_seconds()) };
}

/// Whether an answer from `packet`'s source, with `id`, `qtype` and a
/// question whose name has `name_digest`, answers a query its socket sent.
// Inlined: as a function of its own, the compiler would pass it more
// arguments than a BPF call has registers.
#[inline(always)]
pub(crate) fn was_asked(
    ctx: &SkBuffContext,
    packet: &Headers,
    id: u16,
    qtype: u16,
    name_digest: u64,
) -> bool {
    let Some(pending) = pending_queries(ctx, false) else {
        return false;
    };
    let answer = PendingQuery {
        resolver: packet.saddr,
        name_digest,
        sent: 0,
        id,
        qtype,
    };
    // SAFETY: the socket's storage, valid for this run.
    unsafe { (*pending).asked(&answer, now_seconds()) }
}

/// The packet's socket's queries; with `create`, made empty when it has
/// none yet.
#[inline(always)]
fn pending_queries(ctx: &SkBuffContext, create: bool) -> Option<*mut PendingQueries> {
    let full = full_socket(ctx)?;
    let flags = if create {
        u64::from(BPF_SK_STORAGE_GET_F_CREATE)
    } else {
        0
    };
    // SAFETY: the map and a full socket, as the helper expects; no initial
    // value, so a new entry is zeroed, which is an empty list.
    let pending = unsafe {
        bpf_sk_storage_get(
            core::ptr::from_ref(&PENDING_QUERIES).cast_mut().cast(),
            full.cast(),
            core::ptr::null_mut(),
            flags,
        )
    }
    .cast::<PendingQueries>();
    (!pending.is_null()).then_some(pending)
}

#[inline(always)]
fn now_seconds() -> u32 {
    // SAFETY: a helper without arguments.
    (unsafe { bpf_ktime_get_boot_ns() } / NANOS_PER_SECOND) as u32
}
