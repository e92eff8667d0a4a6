//! Judges of outgoing packets: DNS queries and TLS ClientHellos.

use aya_ebpf::programs::SkBuffContext;
use enforcer_common::{
    counters::Counter,
    decision::Action,
    dns::{self, Learned, Stop},
    domain::{DomainMatch, NAME_BYTES, Name, options},
    event::{DomainEventKind, FAMILY_V4},
    lookup::{Fault, Generation},
    packet::{PACKET_BYTES, Packet},
    proto::IPPROTO_UDP,
    repeat::Plain,
    tls,
};

use super::{
    judge::{DROP, PASS, generation_and_payload},
    learn::{Learning, learn},
    pending::remember_query,
};
use crate::{
    counters::{count, hit},
    headers::Headers,
    maps::{ImageSlot, LiveImage, Parts, Scratch},
    repeat::BpfLoop,
    report::{NameVerdict, report_name},
};

/// A DNS query over UDP or TCP: dropped when it asks for a blocked name
/// and queries are blocked, else remembered on its socket.
// A function of its own: see `STACK` in `skb`.
#[inline(never)]
pub(crate) fn judge_query<S: ImageSlot>(
    ctx: &SkBuffContext,
    packet: &Headers,
    scratch: &mut Scratch,
) -> Result<i32, Fault> {
    let Some(image) = generation_and_payload::<S>(ctx, packet, scratch)? else {
        return Ok(PASS);
    };
    let generation = Generation::new(&image);
    // Read even when queries are not blocked: each one that leaves is
    // remembered, so that its answer may teach addresses.
    let blocks = generation.dns_options()? & options::BLOCK_QUERIES != 0;
    let Some(Parts { payload, name, .. }) = scratch.parts() else {
        return Ok(PASS);
    };
    let verdict = if packet.transport.protocol == IPPROTO_UDP {
        judge_message(ctx, &generation, blocks, &payload, 0, name, packet)
            .map(|pass| if pass { PASS } else { DROP })
    } else if packet.transport.payload_len as usize > PACKET_BYTES {
        Err(Stop::Malformed)
    } else {
        let mut verdict = PASS;
        // Unrolled: judging a message runs `bpf_loop` callbacks, and a
        // callback within a callback would not fit the stack.
        dns::tcp_messages(&payload, &Plain, |message| {
            let pass = judge_message(ctx, &generation, blocks, &payload, message, name, packet)?;
            if !pass {
                verdict = DROP;
            }
            Ok(pass)
        })
        .map(|()| verdict)
    };
    match verdict {
        Ok(verdict) => Ok(verdict),
        Err(Stop::Fault) => Err(Fault),
        // Without query blocking an unreadable query goes out, unremembered:
        // an answer to it teaches nothing.
        Err(Stop::Malformed) => {
            count(Counter::Malformed);
            Ok(if blocks { DROP } else { PASS })
        }
    }
}

/// One query message; `Ok(true)` lets it through, remembered on its
/// socket so that its answer may teach addresses. With `blocks`, a query
/// for a blocked name is refused, and one for an audited name reported.
#[inline(always)]
fn judge_message(
    ctx: &SkBuffContext,
    generation: &Generation<'_, LiveImage<'_>>,
    blocks: bool,
    payload: &Packet<'_>,
    message: usize,
    name: &mut [u8; NAME_BYTES],
    packet: &Headers,
) -> Result<bool, Stop> {
    let id = payload.u16(message)?;
    let question = dns::question(payload, message, false, name, &BpfLoop)?;
    let name = Name {
        bytes: name,
        len: question.name_len,
    };
    let found = generation.domain(&name, &BpfLoop)?;
    let action = found.decision.action();
    let pass = !(blocks && action == Action::Block);
    if pass {
        remember_query(ctx, packet, id, &question, &name);
    }
    // Without query blocking, queries are not judged.
    if !blocks || action == Action::None {
        return Ok(pass);
    }
    let number = generation.number()?;
    hit(number, found.decision.rule(), action);
    if action == Action::Allow {
        return Ok(pass);
    }
    if !pass {
        count(Counter::DnsQueriesBlocked);
    }
    report_name(&NameVerdict {
        kind: DomainEventKind::Query,
        generation: number,
        found: &found,
        packet,
        name: &name,
        qtype: question.qtype,
        learned: None,
        ttl: 0,
    });
    Ok(pass)
}

/// A TLS ClientHello: dropped when it names a blocked server, whose
/// address is then blocked as if a DNS answer had named it, unless the
/// deciding rule turns `sni` or `learn_addresses` off.
// A function of its own: see `STACK` in `skb`.
#[inline(never)]
pub(crate) fn judge_server_name<S: ImageSlot>(
    ctx: &SkBuffContext,
    packet: &Headers,
    scratch: &mut Scratch,
) -> Result<i32, Fault> {
    let Some(image) = generation_and_payload::<S>(ctx, packet, scratch)? else {
        return Ok(PASS);
    };
    let generation = Generation::new(&image);
    let Some(Parts { payload, name, .. }) = scratch.parts() else {
        return Ok(PASS);
    };
    let name_len = match tls::server_name(&payload, name, &BpfLoop) {
        Ok(Some(len)) => len,
        Ok(None) => return Ok(PASS),
        Err(_) => {
            count(Counter::Malformed);
            return Ok(DROP);
        }
    };
    let name = Name {
        bytes: name,
        len: name_len,
    };
    let found = generation.domain(&name, &BpfLoop)?;
    if !found.judges_server_name() {
        return Ok(PASS);
    }
    let action = found.decision.action();
    let verdict = match action {
        Action::Block => {
            count(Counter::ServerNamesBlocked);
            DROP
        }
        Action::Audit | Action::Allow => PASS,
        Action::None => return Ok(PASS),
    };
    let number = generation.number()?;
    hit(number, found.decision.rule(), action);
    if action == Action::Allow {
        return Ok(PASS);
    }
    let ttl = if found.learns_addresses() {
        match learn_destination(&generation, &found, packet) {
            Learning::Listed => generation.sni_learned_seconds()? as u32,
            Learning::Kept | Learning::Unstored => 0,
            Learning::Fault => return Err(Fault),
        }
    } else {
        0
    };
    report_name(&NameVerdict {
        kind: DomainEventKind::ServerName,
        generation: number,
        found: &found,
        packet,
        name: &name,
        qtype: 0,
        learned: None,
        ttl,
    });
    Ok(verdict)
}

/// Lists the destination of a refused ClientHello for the uid that sent
/// it alone, and for the policy's short `sni_learned_seconds`: the
/// destination may be a proxy that carries everyone's traffic.
// A function of its own: inlined, the entry it builds would sit in the
// judge's frame, which is on the deepest chain of calls (see `STACK` in
// `skb`; Linux 6.1 refused egress at 544 bytes).
#[inline(never)]
fn learn_destination(
    generation: &Generation<'_, LiveImage<'_>>,
    found: &DomainMatch,
    packet: &Headers,
) -> Learning {
    let mut address = [0u8; 16];
    let v4 = packet.transport.family == FAMILY_V4;
    if v4 {
        address[10] = 0xff;
        address[11] = 0xff;
        address[12..].copy_from_slice(&packet.daddr[..4]);
    } else {
        address = packet.daddr;
    }
    let Ok(seconds) = generation.sni_learned_seconds() else {
        return Learning::Fault;
    };
    learn(
        generation,
        found,
        &Learned {
            address,
            v4,
            ttl: seconds as u32,
        },
        packet.socket.uid,
        seconds,
    )
}
