//! The judge of incoming DNS responses, in passes that each fit the
//! stack.

use aya_ebpf::programs::SkBuffContext;
use enforcer_common::{
    counters::Counter,
    decision::Action,
    dns::{self, Learned, Stop},
    domain::{Name, options},
    event::DomainEventKind,
    learned::SHARED_OWNER,
    lookup::{Fault, Generation},
    packet::Packet,
    proto::IPPROTO_TCP,
    repeat::Repeat,
};

use super::{
    judge::{DROP, PASS, generation_and_payload},
    learn::{Learning, learn},
    pending::was_asked,
};
use crate::{
    counters::{count, hit},
    headers::Headers,
    maps::{ImageSlot, LiveImage, Scratch},
    repeat::BpfLoop,
    report::{NameVerdict, report_name},
};

/// A DNS response: the addresses it gives for blocked names are learned,
/// and with query blocking on the response itself is dropped.
// A function of its own: see `STACK` in `skb`.
#[inline(never)]
pub(crate) fn judge_response<S: ImageSlot>(
    ctx: &SkBuffContext,
    packet: &Headers,
    scratch: &mut Scratch,
) -> Result<i32, Fault> {
    let Some(image) = generation_and_payload::<S>(ctx, packet, scratch)? else {
        return Ok(PASS);
    };
    let generation = Generation::new(&image);
    // Over TCP, a segment's first message is read. A segment that carries
    // another message after it is dropped, as that one would go unread.
    let message = if packet.transport.protocol == IPPROTO_TCP {
        if response_extent(packet, scratch) == Extent::Followed {
            count(Counter::Malformed);
            return Ok(DROP);
        }
        2
    } else {
        0
    };
    let Some(learns) = read_response(&generation, scratch, message)? else {
        return Ok(PASS);
    };
    if holds_part_of_a_blocked_response(packet, scratch) {
        count(Counter::Malformed);
        return Ok(DROP);
    }
    if learns && !answers_a_query(ctx, packet, scratch, message) {
        count(Counter::AnswersUnsolicited);
        // SAFETY: `read_response` wrote it.
        let chain = unsafe { scratch.response.assume_init_ref() }.chain;
        // An audit rule refuses nothing, forged answers included.
        return Ok(match chain.decision.action() {
            Action::Block => DROP,
            Action::Audit | Action::Allow | Action::None => PASS,
        });
    }
    if learns {
        // Collecting and learning are separate calls: together they would
        // not fit the stack (see `STACK` in `skb`).
        let collected = collect_answers(scratch);
        let stored = match learn_collected(&generation, scratch, packet) {
            Stored::All => true,
            Stored::NotAll => false,
            Stored::Fault => return Err(Fault),
        };
        // SAFETY: `read_response` wrote it.
        let chain = unsafe { scratch.response.assume_init_ref() }.chain;
        // An address that could not be stored leaves a blocked name
        // reachable, or an allowed one unreachable: the answer is dropped
        // rather than half-learned. An audit rule refuses nothing.
        if !stored && chain.decision.action() != Action::Audit {
            return Ok(DROP);
        }
        match collected {
            Ok(()) => {}
            Err(Stop::Fault) => return Err(Fault),
            // What was learned stays learned.
            Err(Stop::Malformed) => {
                count(Counter::Malformed);
                return Ok(PASS);
            }
        }
    }
    let blocks_queries = generation.dns_options()? & options::BLOCK_QUERIES != 0;
    if !blocks_queries || !report_answer(&generation, scratch, packet)? {
        return Ok(PASS);
    }
    Ok(DROP)
}

/// How much of a DNS response the copied payload holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Extent {
    /// All of it, and nothing after it.
    Whole,
    /// Part of it: the rest is in later TCP segments, or past the bytes
    /// copied. A TCP segment too short for the length prefix is cut too.
    Cut,
    /// All of it, then another message in the same TCP segment.
    Followed,
}

/// Where the response ends, by its TCP length prefix or the datagram's
/// length, against the bytes copied and the payload's length.
// A function of its own: see `answers_a_query`.
#[inline(never)]
fn response_extent(packet: &Headers, scratch: &Scratch) -> Extent {
    let payload_len = packet.transport.payload_len;
    let end = if packet.transport.protocol == IPPROTO_TCP {
        let length = Packet::new(&scratch.packet, scratch.copied).map(|payload| payload.u16(0));
        match length {
            Some(Ok(length)) => 2 + u32::from(length),
            _ => return Extent::Cut,
        }
    } else {
        payload_len
    };
    if end > scratch.copied as u32 {
        Extent::Cut
    } else if end < payload_len {
        Extent::Followed
    } else {
        Extent::Whole
    }
}

/// Whether the response `read_response` read is for a blocked name and
/// the packet holds only part of it (the rest in later TCP segments, or
/// past the bytes copied). That part would teach part of the addresses and
/// let the client reach the others, so the packet is dropped; the query
/// was let through, and the client asks again.
///
/// Counts a response whose chain was cut, too: let through, as dropping
/// them would break the long chains of some CDNs (Microsoft's sign-in has
/// four CNAMEs), but counted, so that an administrator can see how often a
/// chain went unjudged.
// A function of its own, and one for both: their locals would sit in the
// judge's frame, on the deepest chain of calls (see `STACK` in `skb`;
// Linux 6.1 refused ingress at 544 bytes).
#[inline(never)]
fn holds_part_of_a_blocked_response(packet: &Headers, scratch: &Scratch) -> bool {
    // SAFETY: only called after `read_response` wrote it.
    let response = unsafe { scratch.response.assume_init_ref() };
    if response.chain_cut {
        count(Counter::ChainsCut);
    }
    response.learns()
        && response.chain.decision.action() == Action::Block
        && response_extent(packet, scratch) == Extent::Cut
}

/// Puts the policy's word on the copied response in the scratch buffer,
/// and returns whether its addresses are to be learned, or `None`
/// (counted) when the response cannot be read. The word stays in a map, as
/// it does not fit on the stack (see `STACK` in `skb`).
///
/// Each pass of `dns::judge_response` is a call of its own from here, so
/// that the domain lookup of one never sits below the state of another.
#[inline(always)]
fn read_response(
    generation: &Generation<'_, LiveImage<'_>>,
    scratch: &mut Scratch,
    message: usize,
) -> Result<Option<bool>, Fault> {
    if !readable(read_question(generation, scratch, message))? {
        return Ok(None);
    }
    digest_question(scratch);
    if !readable(read_cnames(scratch))?
        || !readable(read_cname_targets(generation, scratch, message))?
    {
        return Ok(None);
    }
    // SAFETY: `read_question` wrote it.
    Ok(Some(unsafe { scratch.response.assume_init_ref() }.learns()))
}

/// Whether the response `read_response` read answers a query its socket
/// sent: the same resolver, transaction id and question.
// A function of its own: inlined, its locals would sit in the judge's
// frame, on the deepest chain of calls (see `STACK` in `skb`).
#[inline(never)]
fn answers_a_query(
    ctx: &SkBuffContext,
    packet: &Headers,
    scratch: &Scratch,
    message: usize,
) -> bool {
    let Some(payload) = Packet::new(&scratch.packet, scratch.copied) else {
        return false;
    };
    let Ok(id) = payload.u16(message) else {
        return false;
    };
    // SAFETY: `read_response` wrote it.
    let qtype = unsafe { scratch.response.assume_init_ref() }.question.qtype;
    was_asked(ctx, packet, id, qtype, scratch.question_digest)
}

/// Whether a pass read its part of the response: a fault stops the judge,
/// and an unreadable response is counted.
#[inline(always)]
fn readable(pass: Result<(), Stop>) -> Result<bool, Fault> {
    match pass {
        Ok(()) => Ok(true),
        Err(Stop::Fault) => Err(Fault),
        Err(Stop::Malformed) => {
            count(Counter::Malformed);
            Ok(false)
        }
    }
}

/// The question and the word on its name, into the scratch buffer.
// A function of its own: see `read_response`.
#[inline(never)]
fn read_question(
    generation: &Generation<'_, LiveImage<'_>>,
    scratch: &mut Scratch,
    message: usize,
) -> Result<(), Stop> {
    // Borrowed field by field rather than through `Scratch::parts`: this
    // frame is on the deepest chain of calls.
    let payload = Packet::new(&scratch.packet, scratch.copied).ok_or(Stop::Malformed)?;
    let response =
        dns::judge_question(generation, &payload, message, &mut scratch.name, &BpfLoop, &BpfLoop)?;
    scratch.response.write(response);
    Ok(())
}

/// The digest of the question's name, into the scratch buffer, while the
/// name buffer still holds it (`read_cname_targets` moves it on).
// A function of its own, called after `read_question` returns: inside it,
// its loop would lengthen the deepest chain of calls.
#[inline(never)]
fn digest_question(scratch: &mut Scratch) {
    // SAFETY: `read_question` wrote it.
    let len = unsafe { scratch.response.assume_init_ref() }.name_len;
    scratch.question_digest = dns::name_digest(
        &Name {
            bytes: &scratch.name,
            len,
        },
        &BpfLoop,
    );
}

/// Where the CNAME targets are, into the scratch buffer.
// A function of its own: see `read_response`.
#[inline(never)]
fn read_cnames(scratch: &mut Scratch) -> Result<(), Stop> {
    let payload = Packet::new(&scratch.packet, scratch.copied).ok_or(Stop::Malformed)?;
    // SAFETY: `read_question` wrote it.
    let response = unsafe { scratch.response.assume_init_ref() };
    let cnames = dns::find_cnames(&payload, response, &BpfLoop, &BpfLoop)?;
    scratch.cnames.write(cnames);
    Ok(())
}

/// The word on the CNAME targets, into the response in the scratch buffer.
// A function of its own: see `read_response`.
#[inline(never)]
fn read_cname_targets(
    generation: &Generation<'_, LiveImage<'_>>,
    scratch: &mut Scratch,
    message: usize,
) -> Result<(), Stop> {
    let payload = Packet::new(&scratch.packet, scratch.copied).ok_or(Stop::Malformed)?;
    // SAFETY: `read_question` and `read_cnames` wrote them.
    let (response, cnames) = unsafe {
        (
            scratch.response.assume_init_mut(),
            scratch.cnames.assume_init_ref(),
        )
    };
    dns::judge_cnames(
        generation,
        &payload,
        message,
        &mut scratch.name,
        &BpfLoop,
        cnames,
        response,
    )
}

/// Reports the response `read_response` read when its chain is blocked,
/// and returns whether it was.
// A function of its own: see `STACK` in `skb`.
#[inline(never)]
fn report_answer(
    generation: &Generation<'_, LiveImage<'_>>,
    scratch: &mut Scratch,
    packet: &Headers,
) -> Result<bool, Fault> {
    // SAFETY: only called after `read_response` wrote it.
    let response = unsafe { scratch.response.assume_init_ref() };
    if response.chain.decision.action() != Action::Block {
        return Ok(false);
    }
    let number = generation.number()?;
    hit(number, response.chain.decision.rule(), Action::Block);
    report_name(&NameVerdict {
        kind: DomainEventKind::Answer,
        generation: number,
        found: &response.chain,
        packet,
        name: &Name {
            bytes: &scratch.name,
            len: response.name_len,
        },
        qtype: response.question.qtype,
        learned: None,
        ttl: 0,
    });
    Ok(true)
}

/// Collects the addresses of the response `read_response` read into the
/// scratch buffer, for `learn_collected`.
// A function of its own: see `STACK` in `skb`.
#[inline(never)]
fn collect_answers(scratch: &mut Scratch) -> Result<(), Stop> {
    // Borrowed field by field, as in `read_response`.
    let payload = Packet::new(&scratch.packet, scratch.copied).ok_or(Stop::Malformed)?;
    // SAFETY: only called after `read_response` wrote it.
    let response = unsafe { scratch.response.assume_init_ref() };
    let found = &mut scratch.learned;
    let mut collected = BpfLoop.opaque(0);
    let scanned = dns::learn_addresses(
        &payload,
        response,
        &scratch.name,
        &BpfLoop,
        |_, _, learned| {
            found[collected % found.len()] = learned;
            collected += 1;
        },
    );
    scratch.collected = collected;
    scanned
}

/// Whether `learn_collected` stored every address.
enum Stored {
    All,
    NotAll,
    Fault,
}

/// Learns and reports the addresses `collect_answers` collected, for the
/// owner that the receiving socket's uid makes (see
/// `enforcer_common::learned`).
// A function of its own: see `STACK` in `skb`.
#[inline(never)]
fn learn_collected(
    generation: &Generation<'_, LiveImage<'_>>,
    scratch: &Scratch,
    packet: &Headers,
) -> Stored {
    let Ok(owner) = generation.answer_owner(packet.socket.uid) else {
        return Stored::Fault;
    };
    // SAFETY: only called after `read_response` wrote it.
    let action = unsafe { scratch.response.assume_init_ref() }.chain.decision.action();
    // A user can run a resolver that gives any address for an allowed
    // name: only an answer that binds everyone, which a resolver daemon
    // received from its upstream, opens an address.
    if action == Action::Allow && owner != SHARED_OWNER {
        return Stored::All;
    }
    let mut stored = Stored::All;
    for (index, learned) in scratch.learned.iter().enumerate() {
        if index >= scratch.collected {
            break;
        }
        match learn_answer(generation, scratch, learned, owner, packet) {
            Stored::All => {}
            Stored::NotAll => stored = Stored::NotAll,
            Stored::Fault => return Stored::Fault,
        }
    }
    stored
}

/// Learns one address of an answer for `owner` and reports it.
// A function of its own: see `STACK` in `skb`.
#[inline(never)]
fn learn_answer(
    generation: &Generation<'_, LiveImage<'_>>,
    scratch: &Scratch,
    learned: &Learned,
    owner: u32,
    packet: &Headers,
) -> Stored {
    // SAFETY: only called after `read_response` wrote it.
    let response = unsafe { scratch.response.assume_init_ref() };
    let found = &response.chain;
    let Ok(seconds) = generation.learned_seconds(learned.ttl) else {
        return Stored::Fault;
    };
    let ttl = match learn(generation, found, learned, owner, seconds) {
        Learning::Listed => seconds as u32,
        // Nothing new to report.
        Learning::Kept => return Stored::All,
        Learning::Unstored => return Stored::NotAll,
        Learning::Fault => return Stored::Fault,
    };
    let Ok(number) = generation.number() else {
        return Stored::Fault;
    };
    // What an allow opens is the traffic the policy wants: not reported,
    // as allowed connects are not.
    if found.decision.action() == Action::Allow {
        return Stored::All;
    }
    report_name(&NameVerdict {
        kind: DomainEventKind::Learned,
        generation: number,
        found,
        packet,
        name: &Name {
            bytes: &scratch.name,
            len: response.name_len,
        },
        qtype: 0,
        learned: Some(learned),
        ttl,
    });
    Stored::All
}
