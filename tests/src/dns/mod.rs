//! DNS for the domain tests: a real server on a loopback address
//! ([`DnsServer`]) and real queries from inside a test's cgroup
//! ([`dns_query`], [`dns_flood`]), by a fresh `netprobe` process.

mod server;

use std::net::{IpAddr, Ipv4Addr};

pub use self::server::{
    DnsServer, ReceivedQuery, Zone, forged_answers, framed_answer, numbered_answers,
};
use crate::{
    cgroup::TestCgroup,
    net::{Outcome, outcome, run_netprobe},
};

/// The port the server listens on, UDP and TCP.
pub const DNS_PORT: u16 = 53;

/// How a query reached the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// The name `netprobe dns-query` takes.
    pub(crate) fn arg(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// What `netprobe dns-query` saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsOutcome {
    /// A reply with rcode 0, and its answer records as `TYPE=VALUE`:
    /// `A=192.0.2.7`, `AAAA=::1`, `CNAME=b.example.`; empty for an empty
    /// answer section.
    Answer(Vec<String>),
    /// A reply with this non-zero rcode (3 is NXDOMAIN).
    Rcode(u16),
    /// Sending the query (over TCP, also connecting) failed with this
    /// errno.
    Errno(i32),
    /// No reply within 2 seconds.
    Timeout,
    /// Over TCP: the server closed the connection before a whole reply.
    Closed,
    /// A reply came that is no DNS message.
    Malformed,
}

impl DnsOutcome {
    /// A reply with at least one answer record.
    pub fn is_answered(&self) -> bool {
        matches!(self, DnsOutcome::Answer(records) if !records.is_empty())
    }

    /// What a query the kernel refuses gets: it fails at `sendmsg` (UDP)
    /// or never gets a reply (TCP).
    pub fn is_refused(&self) -> bool {
        matches!(
            self,
            DnsOutcome::Errno(libc::EPERM) | DnsOutcome::Timeout | DnsOutcome::Closed
        )
    }
}

/// Sends one DNS query (recursion desired, random id) for `name` and
/// `qtype` (`A`, `AAAA`, another type's name or a number) to `server`:53
/// over `transport`, from a fresh `netprobe` process inside `cgroup`, and
/// reports the first reply. An IPv6 `server` (such as a
/// [`mapped`](crate::net::mapped) one) gets an AF_INET6 socket.
pub fn dns_query(
    cgroup: &TestCgroup,
    transport: Transport,
    server: impl Into<IpAddr>,
    name: &str,
    qtype: &str,
) -> DnsOutcome {
    dns_query_by(cgroup, None, transport, server.into(), name, qtype)
}

/// [`dns_query`] of an A record by a process that has dropped to `uid`.
pub fn dns_query_as(
    cgroup: &TestCgroup,
    uid: u32,
    server: impl Into<IpAddr>,
    name: &str,
) -> DnsOutcome {
    dns_query_by(cgroup, Some(uid), Transport::Udp, server.into(), name, "A")
}

fn dns_query_by(
    cgroup: &TestCgroup,
    uid: Option<u32>,
    transport: Transport,
    server: IpAddr,
    name: &str,
    qtype: &str,
) -> DnsOutcome {
    let args = [
        "dns-query".to_owned(),
        transport.arg().to_owned(),
        server.to_string(),
        name.to_owned(),
        qtype.to_owned(),
    ];
    let (_, line) = run_netprobe(cgroup, &args, uid);
    dns_outcome(&line).unwrap_or_else(|| panic!("netprobe {} printed {line:?}", args.join(" ")))
}

/// Sends A queries for `names`, all of one length, from a fresh
/// `netprobe` in `cgroup` to `server`:53 in one send of a socket with
/// `UDP_SEGMENT`: as many datagrams, which the kernel's hooks see as one
/// packet. Ask the server what arrived.
pub fn dns_segmented(cgroup: &TestCgroup, server: Ipv4Addr, names: &[&str]) -> Outcome {
    let mut args = vec!["dns-gso".to_owned(), server.to_string()];
    args.extend(names.iter().map(|name| (*name).to_owned()));
    let (_, line) = run_netprobe(cgroup, &args, None);
    outcome(&line, "sent").unwrap_or_else(|| panic!("netprobe {} printed {line:?}", args.join(" ")))
}

/// Asks `server` for the A records of `N.SUFFIX` for each N in `names`,
/// from one `netprobe` in `cgroup` (dropped to `uid`, if given), and
/// returns how many were answered.
pub fn dns_flood(
    cgroup: &TestCgroup,
    uid: Option<u32>,
    server: Ipv4Addr,
    suffix: &str,
    names: std::ops::Range<u32>,
) -> u32 {
    let args = [
        "dns-flood".to_owned(),
        server.to_string(),
        suffix.to_owned(),
        names.start.to_string(),
        names.len().to_string(),
    ];
    let (_, line) = run_netprobe(cgroup, &args, uid);
    line.strip_prefix("answered ")
        .and_then(|answered| answered.parse().ok())
        .unwrap_or_else(|| panic!("netprobe {} printed {line:?}", args.join(" ")))
}

fn dns_outcome(line: &str) -> Option<DnsOutcome> {
    Some(match line.split_once(' ').unwrap_or((line, "")) {
        ("answer", records) => {
            DnsOutcome::Answer(records.split_whitespace().map(str::to_owned).collect())
        }
        ("rcode", rcode) => DnsOutcome::Rcode(rcode.parse().ok()?),
        ("errno", errno) => DnsOutcome::Errno(errno.parse().ok()?),
        ("timeout", "") => DnsOutcome::Timeout,
        ("closed", "") => DnsOutcome::Closed,
        ("malformed", "") => DnsOutcome::Malformed,
        _ => return None,
    })
}
