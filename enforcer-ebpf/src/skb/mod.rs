//! cgroup_skb hooks for domain rules: DNS queries and TLS ClientHellos on
//! the way out, DNS responses on the way in.
//!
//! Most packets are neither, and leave after reading their headers: the
//! programs touch the generation only for traffic to or from port 53 and
//! for TCP payloads that start like a ClientHello.
//!
//! What happens to a message the parsers cannot read (see README, "Domain
//! rules"): an outgoing DNS query or ClientHello is dropped, because a
//! client can only make one unreadable on purpose; an incoming response is
//! let through after learning what it could, because the query it answers
//! already passed.

mod judge;
mod learn;
mod outgoing;
mod pending;
mod response;

use aya_ebpf::{btf_maps::ProgramArray, macros::cgroup_skb, programs::SkBuffContext};
use enforcer_common::{
    counters::Counter,
    dns,
    lookup::Fault,
    proto::{IPPROTO_TCP, IPPROTO_UDP},
};

pub(crate) use self::learn::learned_decision;
use self::{
    judge::{DROP, PASS},
    outgoing::{judge_query, judge_server_name},
    response::judge_response,
};
use crate::{
    counters::count,
    headers::{
        Headers, Transport, read_addresses, starts_client_hello, starts_short_client_hello,
        transport,
    },
    maps::{
        AnySizeSlot, Claimed, EGRESS_VARIANTS, INGRESS_VARIANTS, ImageSlot, LiveImage, Scratch,
        SizedSlot, Workspace,
    },
};

// STACK: the verifier allows 512 bytes of stack across a chain of calls,
// and `bpf_loop` callbacks count as calls. Inlined into the entry point,
// the three judges would each add their locals to one frame; as functions
// of their own they share the space.

/// A TCP connection's first segment that is too short to show whether it
/// starts a ClientHello, but could (a splitter's 1 to 5 bytes), is held
/// back: dropped, and counted as unreadable. TCP keeps a segment its
/// egress hook refused unsent, and the bytes the client writes next join
/// it, so the ClientHello leaves whole and is judged; a client that writes
/// nothing more never gets its first bytes through.
#[cgroup_skb(egress)]
pub(crate) fn egress(ctx: SkBuffContext) -> i32 {
    let Some(transport) = transport(&ctx) else {
        return PASS;
    };
    match outgoing_judged(&ctx, &transport) {
        None if starts_short_client_hello(&ctx, &transport) => {
            count(Counter::Malformed);
            return DROP;
        }
        None => return PASS,
        Some(Outgoing::DnsQuery) if several_datagrams(&ctx, &transport) => {
            count(Counter::Malformed);
            return DROP;
        }
        Some(_) => {}
    }
    // Unjudged, a query or ClientHello may not leave.
    tail_call_variant(&ctx, &EGRESS_VARIANTS, DROP)
}

#[cgroup_skb(egress)]
pub(crate) fn egress_sized(ctx: SkBuffContext) -> i32 {
    egress_reading::<SizedSlot>(&ctx)
}

#[cgroup_skb(egress)]
pub(crate) fn egress_any_size(ctx: SkBuffContext) -> i32 {
    egress_reading::<AnySizeSlot>(&ctx)
}

/// What `egress` sends to a variant: a DNS query, or a TCP payload that
/// starts like a ClientHello.
#[derive(Clone, Copy)]
enum Outgoing {
    DnsQuery,
    ClientHello,
}

#[inline(always)]
fn outgoing_judged(ctx: &SkBuffContext, transport: &Transport) -> Option<Outgoing> {
    if transport.dport == dns::PORT {
        return Some(Outgoing::DnsQuery);
    }
    (transport.protocol == IPPROTO_TCP && starts_client_hello(ctx, transport.payload))
        .then_some(Outgoing::ClientHello)
}

#[inline(always)]
fn egress_reading<S: ImageSlot>(ctx: &SkBuffContext) -> i32 {
    let Some(transport) = transport(ctx) else {
        return PASS;
    };
    let Some(outgoing) = outgoing_judged(ctx, &transport) else {
        return PASS;
    };
    judge_in_workspace(ctx, &transport, |packet, scratch| match outgoing {
        Outgoing::DnsQuery => judge_query::<S>(ctx, packet, scratch),
        Outgoing::ClientHello => judge_server_name::<S>(ctx, packet, scratch),
    })
}

#[cgroup_skb(ingress)]
pub(crate) fn ingress(ctx: SkBuffContext) -> i32 {
    let Some(transport) = transport(&ctx) else {
        return PASS;
    };
    if transport.sport != dns::PORT {
        return PASS;
    }
    if several_datagrams(&ctx, &transport) {
        count(Counter::Malformed);
        return DROP;
    }
    // An unjudged response goes through, as one the judges cannot read
    // does (see the top of this file).
    tail_call_variant(&ctx, &INGRESS_VARIANTS, PASS)
}

/// Whether a UDP packet is several datagrams at once: a send with
/// `UDP_SEGMENT`, or datagrams merged on receive for a socket with
/// `UDP_GRO`. The judges read one DNS message per datagram, so a packet
/// to or from port 53 that holds more is dropped, counted as unreadable:
/// a harmless query first would carry a listed one past them.
#[inline(always)]
fn several_datagrams(ctx: &SkBuffContext, transport: &Transport) -> bool {
    // SAFETY: a field of the context, which cgroup_skb programs may read.
    transport.protocol == IPPROTO_UDP && unsafe { (*ctx.skb.skb).gso_segs } > 1
}

/// Tail-calls the variant in `variants` for the slot the live image is
/// in. Returns only when there is no image yet, and nothing is listed, or
/// no variant, which userspace never lets happen while a packet program is
/// attached: then `unjudged`, counted.
#[inline(always)]
fn tail_call_variant(ctx: &SkBuffContext, variants: &ProgramArray<2>, unjudged: i32) -> i32 {
    let Some(slot) = LiveImage::get().map(|image| image.slot_index()) else {
        return PASS;
    };
    // SAFETY: a tail call with this program's own context.
    unsafe { variants.tail_call(ctx, slot) };
    count(Counter::LookupFaults);
    unjudged
}

#[cgroup_skb(ingress)]
pub(crate) fn ingress_sized(ctx: SkBuffContext) -> i32 {
    ingress_reading::<SizedSlot>(&ctx)
}

#[cgroup_skb(ingress)]
pub(crate) fn ingress_any_size(ctx: SkBuffContext) -> i32 {
    ingress_reading::<AnySizeSlot>(&ctx)
}

#[inline(always)]
fn ingress_reading<S: ImageSlot>(ctx: &SkBuffContext) -> i32 {
    let Some(transport) = transport(ctx) else {
        return PASS;
    };
    if transport.sport != dns::PORT {
        return PASS;
    }
    judge_in_workspace(ctx, &transport, |packet, scratch| {
        judge_response::<S>(ctx, packet, scratch)
    })
}

/// Claims a workspace of this CPU for a packet to judge, reads its headers
/// into it and judges it there.
///
/// A packet that finds every workspace in use, which takes four runs
/// interrupted or preempted on one CPU at once, is dropped: let through, a
/// query or ClientHello would escape its judge, and a response would not
/// teach the addresses it gives. The sender retries.
#[inline(always)]
fn judge_in_workspace(
    ctx: &SkBuffContext,
    transport: &Transport,
    judge: impl FnOnce(&Headers, &mut Scratch) -> Result<i32, Fault>,
) -> i32 {
    let Some(mut workspace) = Claimed::workspace() else {
        count(Counter::BuffersBusy);
        return DROP;
    };
    let Workspace {
        headers: packet,
        scratch,
    } = workspace.get();
    if !read_addresses(ctx, transport, packet) {
        return PASS;
    }
    outcome(judge(packet, scratch))
}

/// The judges' verdict as the program's return value. Spelled out, because
/// the verifier cannot see that a judge, a function of its own, only
/// returns one of the two.
#[inline(always)]
fn outcome(verdict: Result<i32, Fault>) -> i32 {
    match verdict {
        Ok(DROP) => DROP,
        Ok(_) => PASS,
        Err(Fault) => {
            count(Counter::LookupFaults);
            PASS
        }
    }
}
