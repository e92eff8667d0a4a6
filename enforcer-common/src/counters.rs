//! Per-CPU counters the kernel programs keep. The index is the counter.
//!
//! [`counter_table!`] is the one list of them: the kernel's [`Counter`]
//! and the userspace totals (`enforcer`'s `CounterTotals`, whose fields
//! are the names `status --json` shows) are both built from it, so a
//! counter added here has its index, its name and its doc on both sides.

/// Hands the counter table to the macro `$then`, as one entry per counter:
/// its doc, `Variant = index, userspace_name;`.
#[macro_export]
macro_rules! counter_table {
    ($then:ident) => {
        $then! {
            /// Connects and datagrams refused by an enforcing block rule.
            Blocked = 0, blocked;
            /// Connects and datagrams let through by an audit block rule.
            Audited = 1, audited;
            /// Connects and datagrams let through because an allow exception matched.
            Allowed = 2, allowed;
            /// A verdict whose event did not fit in the ring buffer. The verdict
            /// itself was still applied.
            EventsDropped = 3, events_dropped;
            /// A lookup left the generation image. Userspace validates every image
            /// it writes, so a non-zero count means a bug; the traffic went through.
            LookupFaults = 4, lookup_faults;
            /// Execs stopped.
            ExecBlocked = 5, exec_blocked;
            /// Execs let through by an audit rule.
            ExecAudited = 6, exec_audited;
            /// Execs let through because an allow exception matched.
            ExecAllowed = 7, exec_allowed;
            /// DNS queries dropped because they asked for a blocked name.
            DnsQueriesBlocked = 8, dns_queries_blocked;
            /// DNS messages to or from port 53, and TLS ClientHellos, that the
            /// parsers could not read; see the README for what happens to them.
            Malformed = 9, malformed;
            /// Addresses learned from DNS answers and TLS server names.
            AddressesLearned = 10, addresses_learned;
            /// TLS ClientHellos dropped because they named a blocked server.
            ServerNamesBlocked = 11, server_names_blocked;
            /// Attempts on the enforcer's own objects, pins or daemon that the
            /// guard refused (see `enforcer_common::guard`).
            TamperRefused = 12, tamper_refused;
            /// Packets to judge for domain rules that were dropped, and execs judged
            /// without their file name, because every buffer of that kind on their
            /// CPU was in use (see `enforcer_common::claim`).
            BuffersBusy = 13, buffers_busy;
            /// DNS answers for listed names that no query on their socket asked
            /// for, forged or unsolicited: dropped, and nothing learned.
            AnswersUnsolicited = 14, answers_unsolicited;
            /// Addresses that could not be learned because their owner's quota
            /// or the learned map was full: the DNS answer or ClientHello that
            /// gave them was dropped (see `enforcer_common::learned`).
            LearnedUnstored = 15, learned_unstored;
            /// DNS responses let through unjudged because their answer has more
            /// CNAMEs than the first three, none of which is listed.
            ChainsCut = 16, chains_cut;
            /// Verdicts whose rule hit could not be counted because the hit
            /// map was full (see `enforcer_common::hits`). The verdict itself
            /// was still applied.
            HitsUncounted = 17, hits_uncounted;
        }
    };
}

macro_rules! counter_enum {
    ($($(#[doc = $doc:literal])* $variant:ident = $index:literal, $name:ident;)*) => {
        /// A counter, as the kernel programs index the counters map.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Counter {
            $($(#[doc = $doc])* $variant = $index,)*
        }

        impl Counter {
            /// Every counter, in index order.
            pub const ALL: [Counter; [$(stringify!($name)),*].len()] = [$(Counter::$variant),*];
        }
    };
}

counter_table!(counter_enum);

/// Entries in the counters map.
pub const COUNTERS_LEN: u32 = Counter::ALL.len() as u32;

// The index is the counter: the table lists them in index order.
const _: () = {
    let mut index = 0;
    while index < Counter::ALL.len() {
        assert!(Counter::ALL[index] as usize == index);
        index += 1;
    }
};
