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

use aya_ebpf::{
    btf_maps::ProgramArray,
    helpers::{bpf_ktime_get_boot_ns, bpf_skb_cgroup_id, bpf_skb_load_bytes},
    macros::cgroup_skb,
    programs::SkBuffContext,
};
use enforcer_common::{
    counters::Counter,
    decision::Action,
    dns::{self, Learned, Stop},
    domain::{DomainMatch, NAME_BYTES, Name, options},
    event::{DomainEventKind, FAMILY_V4, FAMILY_V6, LearnedAddress},
    lookup::{Fault, Generation},
    packet::{PACKET_BYTES, Packet},
    proto::{IPPROTO_TCP, IPPROTO_UDP},
    repeat::{Plain, Repeat},
    tls,
};

use crate::{
    maps::{
        AnySizeSlot, Claimed, EGRESS_VARIANTS, INGRESS_VARIANTS, ImageSlot, LEARNED, LiveImage,
        Parts, Scratch, SizedSlot, Workspace,
    },
    repeat::BpfLoop,
    report::{NameVerdict, Socket, count, report_name},
};

/// What a cgroup_skb program returns.
const DROP: i32 = 0;
const PASS: i32 = 1;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

// STACK: the verifier allows 512 bytes of stack across a chain of calls,
// and `bpf_loop` callbacks count as calls. Inlined into the entry point,
// the three judges would each add their locals to one frame; as functions
// of their own they share the space.
/// IPv6 extension headers walked before giving up on finding the transport.
const MAX_EXTENSION_HEADERS: usize = 4;

#[cgroup_skb(egress)]
pub fn egress(ctx: SkBuffContext) -> i32 {
    let Some(transport) = transport(&ctx) else {
        return PASS;
    };
    if outgoing_judged(&ctx, &transport).is_none() {
        return PASS;
    }
    // Unjudged, a query or ClientHello may not leave.
    tail_call_variant(&ctx, &EGRESS_VARIANTS, DROP)
}

#[cgroup_skb(egress)]
pub fn egress_sized(ctx: SkBuffContext) -> i32 {
    egress_reading::<SizedSlot>(&ctx)
}

#[cgroup_skb(egress)]
pub fn egress_any_size(ctx: SkBuffContext) -> i32 {
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
pub fn ingress(ctx: SkBuffContext) -> i32 {
    let Some(transport) = transport(&ctx) else {
        return PASS;
    };
    if transport.sport != dns::PORT {
        return PASS;
    }
    // An unjudged response goes through, as one the judges cannot read
    // does (see the top of this file).
    tail_call_variant(&ctx, &INGRESS_VARIANTS, PASS)
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
pub fn ingress_sized(ctx: SkBuffContext) -> i32 {
    ingress_reading::<SizedSlot>(&ctx)
}

#[cgroup_skb(ingress)]
pub fn ingress_any_size(ctx: SkBuffContext) -> i32 {
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

/// What is read of every packet: its transport protocol, ports and
/// payload. Only a packet that may be DNS or a ClientHello gets its
/// addresses and socket read too, into [`Headers`].
#[derive(Clone, Copy)]
pub struct Transport {
    pub payload: u32,
    pub payload_len: u32,
    pub sport: u16,
    pub dport: u16,
    pub family: u8,
    pub protocol: u8,
}

/// The headers of a packet being judged. Addresses are in network order,
/// IPv4 in the first four bytes.
pub struct Headers {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub transport: Transport,
    /// Who the packet's socket belongs to.
    pub socket: Socket,
}

/// Header bytes are read from the packet's linear data when they are
/// there (they always are for packets the local stack builds), which costs
/// a bounds check; from anywhere else with a helper call. The bound keeps
/// offsets small enough for the verifier to follow.
const MAX_LINEAR_OFFSET: usize = 255;
const _: () = assert!((MAX_LINEAR_OFFSET + 1).is_power_of_two());

#[inline(always)]
fn read<T: Copy>(ctx: &SkBuffContext, offset: usize) -> Option<T> {
    let skb = ctx.skb.skb;
    // SAFETY: `data` and `data_end` are context fields the verifier turns
    // into packet pointers; the read is checked against the end below.
    let (data, end) = unsafe { ((*skb).data as usize, (*skb).data_end as usize) };
    // A mask test rather than `offset <= MAX_LINEAR_OFFSET`, which the
    // compiler writes as `256 > offset` with the constant in a register:
    // Linux 6.1's verifier cannot decide that branch, follows it with an
    // impossible range, and loses the packet pointer.
    if offset & !MAX_LINEAR_OFFSET == 0 {
        let at = data + offset;
        // SAFETY: a read of a local. Volatile, so the compiler cannot turn
        // `at + size <= end` into `at + size - 1 < end`: the verifier only
        // learns that the bytes are there from the first form.
        let limit = unsafe { core::ptr::read_volatile(&(at + size_of::<T>())) };
        if limit <= end {
            // SAFETY: within the linear data, as checked.
            return Some(unsafe { (at as *const T).read_unaligned() });
        }
    }
    ctx.load(offset).ok()
}

/// Reads the transport of the packet.
///
/// The skb starts at the network header in both directions. Fragments and
/// IPv6 packets with many extension headers are not read: the hook sees
/// outgoing packets before fragmentation and incoming ones after
/// reassembly, so neither carries a DNS message or a ClientHello.
#[inline(always)]
fn transport(ctx: &SkBuffContext) -> Option<Transport> {
    let first: u8 = read(ctx, 0)?;
    let (family, protocol, header) = match first >> 4 {
        4 => {
            let header_len = (first & 0x0f) as u32 * 4;
            let fragment = u16::from_be(read::<u16>(ctx, 6)?);
            if header_len < 20 || fragment & 0x3fff != 0 {
                return None;
            }
            (FAMILY_V4, read::<u8>(ctx, 9)?, header_len)
        }
        6 => {
            let mut next: u8 = read(ctx, 6)?;
            let mut offset = 40u32;
            for _ in 0..MAX_EXTENSION_HEADERS {
                // Hop-by-hop options, routing, destination options.
                if !matches!(next, 0 | 43 | 60) {
                    break;
                }
                let [header, len]: [u8; 2] = read(ctx, offset as usize)?;
                next = header;
                offset += (len as u32 + 1) * 8;
            }
            (FAMILY_V6, next, offset)
        }
        _ => return None,
    };
    let payload = match protocol {
        IPPROTO_UDP => header + 8,
        IPPROTO_TCP => header + (read::<u8>(ctx, header as usize + 12)? >> 4) as u32 * 4,
        _ => return None,
    };
    let ports: [u8; 4] = read(ctx, header as usize)?;
    let len = ctx.len();
    if len <= payload {
        return None;
    }
    Some(Transport {
        payload,
        payload_len: len - payload,
        sport: u16::from_be_bytes([ports[0], ports[1]]),
        dport: u16::from_be_bytes([ports[2], ports[3]]),
        family,
        protocol,
    })
}

/// Fills the headers of a packet to judge: its transport, addresses and
/// socket; `false` when they cannot be read.
// A function of its own: see `STACK`.
#[inline(never)]
fn read_addresses(ctx: &SkBuffContext, transport: &Transport, packet: &mut Headers) -> bool {
    packet.transport = *transport;
    if transport.family == FAMILY_V4 {
        let (Some(source), Some(destination)) =
            (read::<[u8; 4]>(ctx, 12), read::<[u8; 4]>(ctx, 16))
        else {
            return false;
        };
        packet.saddr = [0; 16];
        packet.daddr = [0; 16];
        packet.saddr[..4].copy_from_slice(&source);
        packet.daddr[..4].copy_from_slice(&destination);
    } else {
        let (Some(source), Some(destination)) = (read(ctx, 8), read(ctx, 24)) else {
            return false;
        };
        packet.saddr = source;
        packet.daddr = destination;
    }
    packet.socket = Socket {
        // SAFETY: the context's skb, as the helper expects.
        cgroup_id: unsafe { bpf_skb_cgroup_id(ctx.skb.skb.cast()) },
        uid: ctx.get_socket_uid(),
    };
    true
}

/// Whether the payload starts like a TLS ClientHello. Payload bytes sit in
/// page fragments more often than not, so this takes a helper call; only
/// TCP packets with a payload get here.
#[inline(always)]
fn starts_client_hello(ctx: &SkBuffContext, payload: u32) -> bool {
    ctx.load::<[u8; 6]>(payload as usize)
        .is_ok_and(tls::looks_like_client_hello)
}

/// The live generation, if it lists any domain, and the packet's payload
/// copied into the scratch buffer: what every judge starts from.
///
/// The dispatcher found the image in slot `S`. Missing there now, it moved
/// to the other slot in between, with an apply: a fault, counted.
#[inline(always)]
fn generation_and_payload<S: ImageSlot>(
    ctx: &SkBuffContext,
    packet: &Headers,
    scratch: &mut Scratch,
) -> Result<Option<LiveImage<'static>>, Fault> {
    let image = S::image().ok_or(Fault)?;
    if !Generation::new(&image).has_domains()? {
        return Ok(None);
    }
    Ok(copy_payload(ctx, packet, scratch).then_some(image))
}

/// Copies the payload, or as much as the scratch buffer holds; `false`
/// when it cannot be read.
#[inline(always)]
fn copy_payload(ctx: &SkBuffContext, packet: &Headers, scratch: &mut Scratch) -> bool {
    let len = (packet.transport.payload_len as usize).min(PACKET_BYTES);
    // SAFETY: a read of a local. It is volatile so that the compiler checks
    // the very value it passes to the helper: proving bounds of its own,
    // it would drop the check, and the verifier could not follow the proof.
    // The check is on `len - 1` against a constant, because Linux 6.1's
    // verifier learns nothing from `len != 0`, and the helper refuses a
    // length that may be zero.
    let last = unsafe { core::ptr::read_volatile(&len.wrapping_sub(1)) };
    if last >= PACKET_BYTES {
        return false;
    }
    let len = last + 1;
    // SAFETY: `len` bytes, 1 to PACKET_BYTES, fit in the buffer.
    let copied = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb.cast(),
            packet.transport.payload,
            scratch.packet.as_mut_ptr().cast(),
            len as u32,
        )
    };
    if copied != 0 {
        return false;
    }
    scratch.copied = len;
    true
}

/// A DNS query over UDP or TCP: dropped when it asks for a blocked name.
// A function of its own: see `STACK`.
#[inline(never)]
fn judge_query<S: ImageSlot>(
    ctx: &SkBuffContext,
    packet: &Headers,
    scratch: &mut Scratch,
) -> Result<i32, Fault> {
    let Some(image) = generation_and_payload::<S>(ctx, packet, scratch)? else {
        return Ok(PASS);
    };
    let generation = Generation::new(&image);
    if generation.dns_options()? & options::BLOCK_QUERIES == 0 {
        return Ok(PASS);
    }
    let Some(Parts { payload, name, .. }) = scratch.parts() else {
        return Ok(PASS);
    };
    let verdict = if packet.transport.protocol == IPPROTO_UDP {
        judge_message(&generation, &payload, 0, name, packet)
            .map(|pass| if pass { PASS } else { DROP })
    } else if packet.transport.payload_len as usize > PACKET_BYTES {
        Err(Stop::Malformed)
    } else {
        let mut verdict = PASS;
        // Unrolled: judging a message runs `bpf_loop` callbacks, and a
        // callback within a callback would not fit the stack.
        dns::tcp_messages(&payload, &Plain, |message| {
            let pass = judge_message(&generation, &payload, message, name, packet)?;
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
        Err(Stop::Malformed) => {
            count(Counter::Malformed);
            Ok(DROP)
        }
    }
}

/// One query message; `Ok(true)` lets it through.
#[inline(always)]
fn judge_message(
    generation: &Generation<'_, LiveImage<'_>>,
    payload: &Packet<'_>,
    message: usize,
    name: &mut [u8; NAME_BYTES],
    packet: &Headers,
) -> Result<bool, Stop> {
    let question = dns::question(payload, message, false, name, &BpfLoop)?;
    let name = Name {
        bytes: name,
        len: question.name_len,
    };
    let found = generation.domain(&name, &BpfLoop)?;
    let pass = match found.decision.action() {
        Action::Block => {
            count(Counter::DnsQueriesBlocked);
            false
        }
        Action::Audit => true,
        Action::None | Action::Allow => return Ok(true),
    };
    report_name(&NameVerdict {
        kind: DomainEventKind::Query,
        generation: generation.number()?,
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
/// address is then blocked as if a DNS answer had named it.
// A function of its own: see `STACK`.
#[inline(never)]
fn judge_server_name<S: ImageSlot>(
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
    let verdict = match found.decision.action() {
        Action::Block => {
            count(Counter::ServerNamesBlocked);
            DROP
        }
        Action::Audit => PASS,
        Action::None | Action::Allow => return Ok(PASS),
    };
    let mut address = [0u8; 16];
    let v4 = packet.transport.family == FAMILY_V4;
    if v4 {
        address[10] = 0xff;
        address[11] = 0xff;
        address[12..].copy_from_slice(&packet.daddr[..4]);
    } else {
        address = packet.daddr;
    }
    let ttl = learn(
        &generation,
        &found,
        &Learned {
            address,
            v4,
            ttl: u32::MAX,
        },
    )?;
    report_name(&NameVerdict {
        kind: DomainEventKind::ServerName,
        generation: generation.number()?,
        found: &found,
        packet,
        name: &name,
        qtype: 0,
        learned: None,
        ttl,
    });
    Ok(verdict)
}

/// A DNS response: the addresses it gives for blocked names are learned,
/// and with query blocking on the response itself is dropped.
// A function of its own: see `STACK`.
#[inline(never)]
fn judge_response<S: ImageSlot>(
    ctx: &SkBuffContext,
    packet: &Headers,
    scratch: &mut Scratch,
) -> Result<i32, Fault> {
    let Some(image) = generation_and_payload::<S>(ctx, packet, scratch)? else {
        return Ok(PASS);
    };
    let generation = Generation::new(&image);
    // Over TCP, only a segment's first message is read: a response that
    // spans segments is read as far as this one goes.
    let message = if packet.transport.protocol == IPPROTO_TCP { 2 } else { 0 };
    let Some(learns) = read_response(&generation, scratch, message)? else {
        return Ok(PASS);
    };
    if learns {
        // Collecting and learning are separate calls: together they would
        // not fit the stack (see `STACK`).
        let collected = collect_answers(scratch);
        if !learn_collected(&generation, scratch, packet) {
            return Err(Fault);
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

/// Puts the policy's word on the copied response in the scratch buffer,
/// and returns whether its addresses are to be learned, or `None`
/// (counted) when the response cannot be read. The word stays in a map, as
/// it does not fit on the stack (see `STACK`).
///
/// Each pass of `dns::judge_response` is a call of its own from here, so
/// that the domain lookup of one never sits below the state of another.
#[inline(always)]
fn read_response(
    generation: &Generation<'_, LiveImage<'_>>,
    scratch: &mut Scratch,
    message: usize,
) -> Result<Option<bool>, Fault> {
    if !readable(read_question(generation, scratch, message))?
        || !readable(read_cnames(scratch))?
        || !readable(read_cname_targets(generation, scratch, message))?
    {
        return Ok(None);
    }
    // SAFETY: `read_question` wrote it.
    Ok(Some(unsafe { scratch.response.assume_init_ref() }.learns()))
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
// A function of its own: see `STACK`.
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
    report_name(&NameVerdict {
        kind: DomainEventKind::Answer,
        generation: generation.number()?,
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
// A function of its own: see `STACK`.
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

/// Learns and reports the addresses `collect_answers` collected; `false`
/// on a fault.
// A function of its own: see `STACK`.
#[inline(never)]
fn learn_collected(
    generation: &Generation<'_, LiveImage<'_>>,
    scratch: &Scratch,
    packet: &Headers,
) -> bool {
    // SAFETY: only called after `read_response` wrote it.
    let response = unsafe { scratch.response.assume_init_ref() };
    let name = Name {
        bytes: &scratch.name,
        len: response.name_len,
    };
    for (index, learned) in scratch.learned.iter().enumerate() {
        if index >= scratch.collected {
            break;
        }
        if !learn_answer(generation, &response.chain, &name, learned, packet) {
            return false;
        }
    }
    true
}

/// Learns one address of an answer and reports it; `false` on a fault.
// A function of its own: see `STACK`.
#[inline(never)]
fn learn_answer(
    generation: &Generation<'_, LiveImage<'_>>,
    found: &DomainMatch,
    name: &Name<'_>,
    learned: &Learned,
    packet: &Headers,
) -> bool {
    let (Ok(ttl), Ok(number)) = (learn(generation, found, learned), generation.number()) else {
        return false;
    };
    report_name(&NameVerdict {
        kind: DomainEventKind::Learned,
        generation: number,
        found,
        packet,
        name,
        qtype: 0,
        learned: Some(learned),
        ttl,
    });
    true
}

/// Lists `learned` for the domain `found`, for its TTL bounded by the
/// policy, and returns the seconds it stays listed.
#[inline(always)]
fn learn(
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
pub fn learned_decision(
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
    Ok(match found.decision.action() {
        Action::Block | Action::Audit => Some(found),
        Action::None | Action::Allow => None,
    })
}
