//! Records the kernel programs put in the events ring buffer.

use core::mem::{offset_of, size_of};

/// Which hook saw the traffic.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Connect4 = 1,
    Connect6 = 2,
    Sendmsg4 = 3,
    Sendmsg6 = 4,
}

impl Hook {
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
pub const FAMILY_V6: u8 = 6;

/// One verdict on a connect or a datagram. `verdict` holds the
/// [`crate::decision::Action`] (block or audit).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NetEvent {
    /// `CLOCK_BOOTTIME` in nanoseconds.
    pub boot_ns: u64,
    pub cgroup_id: u64,
    pub generation: u64,
    pub rule: u32,
    /// Thread group id: what userspace calls the pid.
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    pub verdict: u32,
    /// IPv4 in the first four bytes, network order.
    pub daddr: [u8; 16],
    pub dport: u16,
    pub hook: u8,
    pub family: u8,
    /// The socket's IP protocol number.
    pub protocol: u8,
    pub _reserved: [u8; 3],
    pub comm: [u8; 16],
}

const _: () = {
    assert!(size_of::<NetEvent>() == 88);
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
    assert!(offset_of!(NetEvent, _reserved) == 69);
    assert!(offset_of!(NetEvent, comm) == 72);
};

#[cfg(feature = "user")]
// SAFETY: plain old data, every bit pattern valid, no padding (checked above).
unsafe impl aya::Pod for NetEvent {}
