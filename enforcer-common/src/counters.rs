//! Per-CPU counters the kernel programs keep. The index is the counter.

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Refused by an enforcing block rule.
    Blocked = 0,
    /// Let through by an audit block rule.
    Audited = 1,
    /// Let through because an allow exception matched.
    Allowed = 2,
    /// A verdict whose event did not fit in the ring buffer. The verdict
    /// itself was still applied.
    EventsDropped = 3,
    /// A lookup left the generation image. Userspace validates every image
    /// it writes, so a non-zero count means a bug; the traffic went through.
    LookupFaults = 4,
}

impl Counter {
    pub const ALL: [Counter; 5] = [
        Counter::Blocked,
        Counter::Audited,
        Counter::Allowed,
        Counter::EventsDropped,
        Counter::LookupFaults,
    ];
}

/// Entries in the counters map.
pub const COUNTERS_LEN: u32 = Counter::ALL.len() as u32;
