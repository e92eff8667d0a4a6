//! Per-CPU counters the kernel programs keep. The index is the counter.

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Connects and datagrams refused by an enforcing block rule.
    Blocked = 0,
    /// Connects and datagrams let through by an audit block rule.
    Audited = 1,
    /// Connects and datagrams let through because an allow exception matched.
    Allowed = 2,
    /// A verdict whose event did not fit in the ring buffer. The verdict
    /// itself was still applied.
    EventsDropped = 3,
    /// A lookup left the generation image. Userspace validates every image
    /// it writes, so a non-zero count means a bug; the traffic went through.
    LookupFaults = 4,
    /// Execs stopped.
    ExecBlocked = 5,
    /// Execs let through by an audit rule.
    ExecAudited = 6,
    /// Execs let through because an allow exception matched.
    ExecAllowed = 7,
    /// DNS queries dropped because they asked for a blocked name.
    DnsQueriesBlocked = 8,
    /// DNS messages to or from port 53, and TLS ClientHellos, that the
    /// parsers could not read; see the README for what happens to them.
    Malformed = 9,
    /// Addresses learned from DNS answers and TLS server names.
    AddressesLearned = 10,
    /// TLS ClientHellos dropped because they named a blocked server.
    ServerNamesBlocked = 11,
    /// Attempts on the enforcer's own objects, pins or daemon that the
    /// guard refused (see `crate::guard`).
    TamperRefused = 12,
    /// Packets to judge for domain rules that were dropped, and execs judged
    /// without their file name, because every buffer of that kind on their
    /// CPU was in use (see `crate::claim`).
    BuffersBusy = 13,
}

impl Counter {
    pub const ALL: [Counter; 14] = [
        Counter::Blocked,
        Counter::Audited,
        Counter::Allowed,
        Counter::EventsDropped,
        Counter::LookupFaults,
        Counter::ExecBlocked,
        Counter::ExecAudited,
        Counter::ExecAllowed,
        Counter::DnsQueriesBlocked,
        Counter::Malformed,
        Counter::AddressesLearned,
        Counter::ServerNamesBlocked,
        Counter::TamperRefused,
        Counter::BuffersBusy,
    ];
}

/// Entries in the counters map.
pub const COUNTERS_LEN: u32 = Counter::ALL.len() as u32;
