//! Records the kernel programs put in the events ring buffer.

use core::mem::{offset_of, size_of};

/// Which hook saw the traffic.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// `connect` of an IPv4 socket.
    Connect4 = 1,
    /// `connect` of an IPv6 socket.
    Connect6 = 2,
    /// A datagram sent from an IPv4 socket.
    Sendmsg4 = 3,
    /// A datagram sent from an IPv6 socket.
    Sendmsg6 = 4,
}

impl Hook {
    /// The hook a record's `hook` byte names, if any.
    pub const fn from_u8(value: u8) -> Option<Hook> {
        match value {
            1 => Some(Hook::Connect4),
            2 => Some(Hook::Connect6),
            3 => Some(Hook::Sendmsg4),
            4 => Some(Hook::Sendmsg6),
            _ => None,
        }
    }
}

/// Address family of [`NetEvent::daddr`]: the family the decision was made
/// in, so an IPv4-mapped IPv6 destination is reported as IPv4.
pub const FAMILY_V4: u8 = 4;
/// See [`FAMILY_V4`].
pub const FAMILY_V6: u8 = 6;

/// One verdict on a connect or a datagram. `verdict` holds the
/// [`crate::decision::Action`] (block or audit).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NetEvent {
    /// `CLOCK_BOOTTIME` in nanoseconds.
    pub boot_ns: u64,
    /// The cgroup of the process.
    pub cgroup_id: u64,
    /// The policy generation that decided.
    pub generation: u64,
    /// The rule's index in that generation.
    pub rule: u32,
    /// Thread group id: what userspace calls the pid.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// See the struct.
    pub verdict: u32,
    /// IPv4 in the first four bytes, network order.
    pub daddr: [u8; 16],
    /// Destination port, host order.
    pub dport: u16,
    /// A [`Hook`].
    pub hook: u8,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// The socket's IP protocol number.
    pub protocol: u8,
    /// A [`Source`]: what listed the destination.
    pub source: u8,
    /// Zero.
    pub _reserved: [u8; 2],
    /// The thread's name, NUL-padded.
    pub comm: [u8; 16],
    /// For a learned destination, the domain table slot of the listed
    /// domain it was learned for, in this event's generation.
    pub domain_slot: u32,
    /// Zero.
    pub _reserved2: u32,
}

/// What listed a refused or audited destination.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A CIDR of the policy.
    Cidr = 0,
    /// An address learned from a DNS answer or a TLS server name.
    Learned = 1,
}

/// What a [`DomainEvent`] reports.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainEventKind {
    /// A DNS query for a listed name: `daddr` is the resolver.
    Query = 1,
    /// An address from an answer for a listed name is now blocked (or
    /// audited) for `ttl` seconds: `daddr` is that address.
    Learned = 2,
    /// A TLS ClientHello named a listed server: `daddr` is where it went.
    ServerName = 3,
    /// A DNS response for a listed name was dropped: `daddr` is the
    /// resolver it came from.
    Answer = 4,
}

impl DomainEventKind {
    /// The kind a record's `kind` byte names, if any.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Query),
            2 => Some(Self::Learned),
            3 => Some(Self::ServerName),
            4 => Some(Self::Answer),
            _ => None,
        }
    }
}

/// A verdict on a name: a DNS query or answer, or a TLS server name.
/// Events seen on receive carry no process: `pid`, `tid` and `comm` are 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DomainEvent {
    /// `CLOCK_BOOTTIME` in nanoseconds.
    pub boot_ns: u64,
    /// The cgroup of the packet's socket.
    pub cgroup_id: u64,
    /// The policy generation that decided.
    pub generation: u64,
    /// The rule's index in that generation.
    pub rule: u32,
    /// Thread group id of the sender, or 0.
    pub pid: u32,
    /// Thread id of the sender, or 0.
    pub tid: u32,
    /// The socket owner's user id.
    pub uid: u32,
    /// Zero: the socket tells no group.
    pub gid: u32,
    /// A [`crate::decision::Action`]: block or audit.
    pub verdict: u32,
    /// See [`DomainEventKind`]; IPv4 in the first four bytes.
    pub daddr: [u8; 16],
    /// The port of `daddr`'s side, host order.
    pub dport: u16,
    /// A [`DomainEventKind`].
    pub kind: u8,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// The packet's IP protocol number.
    pub protocol: u8,
    /// Zero.
    pub _reserved: u8,
    /// The DNS question's type; 0 for a TLS server name.
    pub qtype: u16,
    /// Seconds a learned address stays listed.
    pub ttl: u32,
    /// Bytes of `name` in use.
    pub name_len: u16,
    /// Where in `name` the listed domain that matched starts.
    pub domain_start: u16,
    /// The sender's thread name, NUL-padded, or zeros.
    pub comm: [u8; 16],
    /// The kernel's cookie for the packet's socket (`bpf_get_socket_cookie`):
    /// with the addresses, it names the one connection to reset.
    pub socket_cookie: u64,
    /// The packet's source, in the packet's family: for a sent one
    /// (`Query`, `ServerName`) the socket's own side. IPv4 in the first
    /// four bytes.
    pub saddr: [u8; 16],
    /// The port of `saddr`'s side, host order.
    pub sport: u16,
    /// Zero.
    pub _reserved2: [u8; 6],
    /// The name as seen, in text form (see `crate::domain`).
    pub name: [u8; crate::domain::NAME_BYTES],
}

const _: () = {
    assert!(size_of::<DomainEvent>() == 128 + crate::domain::NAME_BYTES);
    assert!(offset_of!(DomainEvent, verdict) == 44);
    assert!(offset_of!(DomainEvent, daddr) == 48);
    assert!(offset_of!(DomainEvent, dport) == 64);
    assert!(offset_of!(DomainEvent, kind) == 66);
    assert!(offset_of!(DomainEvent, family) == 67);
    assert!(offset_of!(DomainEvent, protocol) == 68);
    assert!(offset_of!(DomainEvent, qtype) == 70);
    assert!(offset_of!(DomainEvent, ttl) == 72);
    assert!(offset_of!(DomainEvent, name_len) == 76);
    assert!(offset_of!(DomainEvent, domain_start) == 78);
    assert!(offset_of!(DomainEvent, comm) == 80);
    assert!(offset_of!(DomainEvent, socket_cookie) == 96);
    assert!(offset_of!(DomainEvent, saddr) == 104);
    assert!(offset_of!(DomainEvent, sport) == 120);
    assert!(offset_of!(DomainEvent, name) == 128);
};

const _: () = {
    assert!(size_of::<NetEvent>() == 96);
    assert!(offset_of!(NetEvent, boot_ns) == 0);
    assert!(offset_of!(NetEvent, cgroup_id) == 8);
    assert!(offset_of!(NetEvent, generation) == 16);
    assert!(offset_of!(NetEvent, rule) == 24);
    assert!(offset_of!(NetEvent, pid) == 28);
    assert!(offset_of!(NetEvent, tid) == 32);
    assert!(offset_of!(NetEvent, uid) == 36);
    assert!(offset_of!(NetEvent, gid) == 40);
    assert!(offset_of!(NetEvent, verdict) == 44);
    assert!(offset_of!(NetEvent, daddr) == 48);
    assert!(offset_of!(NetEvent, dport) == 64);
    assert!(offset_of!(NetEvent, hook) == 66);
    assert!(offset_of!(NetEvent, family) == 67);
    assert!(offset_of!(NetEvent, protocol) == 68);
    assert!(offset_of!(NetEvent, source) == 69);
    assert!(offset_of!(NetEvent, comm) == 72);
    assert!(offset_of!(NetEvent, domain_slot) == 88);
};

#[cfg(feature = "user")]
// SAFETY: plain old data, every bit pattern valid, no padding (checked above).
unsafe impl aya::Pod for NetEvent {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for DomainEvent {}
