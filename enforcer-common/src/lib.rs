//! Everything that crosses the boundary between the kernel programs and the
//! userspace daemon: map and program names, the layout of a policy
//! generation in kernel memory, verdict encodings and event records.
//!
//! Both sides compile this crate; nothing else is shared. Layouts are
//! `#[repr(C)]` without implicit padding and checked at compile time.
#![warn(missing_docs)]
#![no_std]

pub mod bounds;
pub mod claim;
pub mod counters;
pub mod decision;
pub mod dns;
pub mod domain;
pub mod event;
pub mod exec;
pub mod guard;
pub mod hits;
pub mod image;
pub mod learned;
pub mod lookup;
pub mod names;
pub mod packet;
pub mod record;
pub mod repeat;
pub mod tls;

/// Protocol classes the policy distinguishes. Port tables are keyed by
/// `class << 16 | port`, so the class is part of one sorted key space.
pub mod proto {
    /// TCP.
    pub const TCP: u32 = 0;
    /// UDP.
    pub const UDP: u32 = 1;
    /// Any other IP protocol that reaches a socket hook (SCTP, UDP-Lite, ...).
    pub const OTHER: u32 = 2;
    /// How many classes there are.
    pub const CLASSES: u32 = 3;

    /// TCP's IP protocol number.
    pub const IPPROTO_TCP: u8 = 6;
    /// UDP's IP protocol number.
    pub const IPPROTO_UDP: u8 = 17;

    /// The class of an IP protocol number.
    #[inline(always)]
    pub const fn class_of(ipproto: u32) -> u32 {
        match ipproto {
            6 => TCP,
            17 => UDP,
            _ => OTHER,
        }
    }

    /// The key a port table is sorted by.
    #[inline(always)]
    pub const fn port_key(class: u32, port: u16) -> u32 {
        (class << 16) | port as u32
    }
}
