//! The headers of a packet, as the packet programs read them: its
//! transport protocol, ports and payload for every packet, and its
//! addresses and socket for one they judge.

use aya_ebpf::{
    bindings::bpf_sock,
    helpers::{bpf_get_socket_cookie, bpf_sk_fullsock, bpf_skb_cgroup_id, bpf_tcp_sock},
    programs::SkBuffContext,
};
use enforcer_common::{
    event::{FAMILY_V4, FAMILY_V6},
    proto::{IPPROTO_TCP, IPPROTO_UDP},
    tls,
};

/// The socket a packet belongs to, as the skb tells it: packets may be
/// sent or received outside the context of the process that owns it.
#[derive(Clone, Copy)]
pub(crate) struct Socket {
    pub(crate) cgroup_id: u64,
    pub(crate) uid: u32,
    /// What the daemon needs, with the addresses, to reset the connection.
    pub(crate) cookie: u64,
}

/// What is read of every packet: its transport protocol, ports and
/// payload. Only a packet that may be DNS or a ClientHello gets its
/// addresses and socket read too, into [`Headers`].
#[derive(Clone, Copy)]
pub(crate) struct Transport {
    /// Where the transport header starts.
    pub(crate) header: u32,
    pub(crate) payload: u32,
    pub(crate) payload_len: u32,
    pub(crate) sport: u16,
    pub(crate) dport: u16,
    pub(crate) family: u8,
    pub(crate) protocol: u8,
}

/// The headers of a packet being judged. Addresses are in network order,
/// IPv4 in the first four bytes.
pub(crate) struct Headers {
    pub(crate) saddr: [u8; 16],
    pub(crate) daddr: [u8; 16],
    pub(crate) transport: Transport,
    /// Who the packet's socket belongs to.
    pub(crate) socket: Socket,
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
pub(crate) fn transport(ctx: &SkBuffContext) -> Option<Transport> {
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
        header,
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
// A function of its own: see `STACK` in `skb`.
#[inline(never)]
pub(crate) fn read_addresses(ctx: &SkBuffContext, transport: &Transport, packet: &mut Headers) -> bool {
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
        // SAFETY: as above.
        cookie: unsafe { bpf_get_socket_cookie(ctx.skb.skb.cast()) },
    };
    true
}

/// IPv6 extension headers walked before giving up on finding the transport.
const MAX_EXTENSION_HEADERS: usize = 4;

/// Whether the payload starts like a TLS ClientHello. Payload bytes sit in
/// page fragments more often than not, so this takes a helper call; only
/// TCP packets with a payload get here.
#[inline(always)]
pub(crate) fn starts_client_hello(ctx: &SkBuffContext, payload: u32) -> bool {
    ctx.load::<[u8; tls::SIGNATURE_LEN]>(payload as usize)
        .is_ok_and(tls::looks_like_client_hello)
}

/// Whether a TCP payload too short for [`starts_client_hello`] could be
/// the first bytes of a ClientHello, sent first on its connection: a
/// splitter's first segment, which the packet programs hold back (see
/// `skb::egress`).
#[inline(always)]
pub(crate) fn starts_short_client_hello(ctx: &SkBuffContext, transport: &Transport) -> bool {
    let len = transport.payload_len as usize;
    if transport.protocol != IPPROTO_TCP || len >= tls::SIGNATURE_LEN {
        return false;
    }
    let payload = transport.payload as usize;
    let Ok(first) = ctx.load::<u8>(payload) else {
        return false;
    };
    let second = if len >= 2 {
        ctx.load::<u8>(payload + 1).ok()
    } else {
        None
    };
    tls::could_start_client_hello(first, second) && at_stream_start(ctx, transport)
}

/// `SYN` in the TCP header's flags byte.
const TCP_SYN: u8 = 0x02;

/// Whether a TCP segment carries the first bytes its socket sends: a SYN
/// with data (TCP Fast Open), or a segment whose sequence number follows
/// the SYN's. Where the socket cannot be read, it is taken for one, so a
/// short segment that may start a ClientHello is held back.
#[inline(always)]
fn at_stream_start(ctx: &SkBuffContext, transport: &Transport) -> bool {
    let header = transport.header as usize;
    let (Some(sequence), Some(flags)) = (read::<u32>(ctx, header + 4), read::<u8>(ctx, header + 13))
    else {
        return true;
    };
    if flags & TCP_SYN != 0 {
        return true;
    }
    let Some(full) = full_socket(ctx) else {
        return true;
    };
    // SAFETY: a helper that takes a full socket and returns null when it
    // is not a TCP one.
    let tcp = unsafe { bpf_tcp_sock(full) };
    if tcp.is_null() {
        return true;
    }
    // SAFETY: a TCP socket the helper returned, valid for this run.
    let (unacknowledged, acknowledged) = unsafe { ((*tcp).snd_una, (*tcp).bytes_acked) };
    // `bytes_acked` counts the SYN, so this is the initial sequence number.
    let initial = unacknowledged.wrapping_sub(acknowledged as u32);
    u32::from_be(sequence) == initial.wrapping_add(1)
}

/// The packet's socket, when it is a full socket (not a request or
/// time-wait one): what the socket helpers take.
#[inline(always)]
pub(crate) fn full_socket(ctx: &SkBuffContext) -> Option<*mut bpf_sock> {
    // SAFETY: the context's socket field, checked for null below, as
    // cgroup_skb programs may read it.
    let sock = unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk };
    if sock.is_null() {
        return None;
    }
    // SAFETY: a helper that returns null for anything but a full socket.
    let full = unsafe { bpf_sk_fullsock(sock) };
    (!full.is_null()).then_some(full)
}
