//! Kernel records to events.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::{Duration, Instant, SystemTime},
};

use enforcer_common::{
    decision::Action,
    event::{DomainEvent, DomainEventKind, FAMILY_V4, Hook, NetEvent, Source},
    exec::{ExecEvent, ExecMethod, OPTIONS_RULE, Trigger, Untrusted},
    guard::{Attempt, TamperEvent},
    proto::{IPPROTO_TCP, IPPROTO_UDP},
    record::{Record, RecordBody, RecordHeader, RecordKind},
};

use crate::host::sock_diag::TcpConnection;

use super::{
    event::{
        Event, EventBody, ExecVerdict, NameVerdict, NetVerdict, Process, TamperAttempt, Verdict,
    },
    mounts,
    rules::RuleBook,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum DecodeError {
    #[error("a ring buffer record of {0} bytes, too short for a record header")]
    NoHeader(usize),
    #[error("a ring buffer record with unknown tag {0}")]
    Tag(u32),
    #[error("a {kind:?} record of {len} bytes; the kernel programs write {expected}")]
    Length {
        kind: RecordKind,
        len: usize,
        expected: usize,
    },
    #[error("a record with unknown tamper attempt {0}")]
    Attempt(u32),
    #[error("a record with unknown name event kind {0}")]
    NameKind(u8),
    #[error("a record with unknown hook {0}")]
    Hook(u8),
    #[error("a record with unknown exec method {0}")]
    Method(u8),
    #[error("a record with unknown exec trigger {0}")]
    Trigger(u8),
    #[error("a record with verdict {0}, which is never reported")]
    Verdict(u32),
}

/// Hands the record to the decoder of the kind its header names.
pub(crate) fn decode(
    record: &[u8],
    rules: &RuleBook,
    processes: &mut ProcessCache,
) -> Result<Event, DecodeError> {
    let header = header(record)?;
    match RecordKind::from_u32(header.kind).ok_or(DecodeError::Tag(header.kind))? {
        RecordKind::Net => decode_net(&body(record)?, rules, processes),
        RecordKind::Exec => decode_exec(&body(record)?, rules),
        RecordKind::Domain => decode_name(&body(record)?, rules, processes),
        RecordKind::Tamper => decode_tamper(&body(record)?, processes),
    }
}

fn header(record: &[u8]) -> Result<RecordHeader, DecodeError> {
    if record.len() < size_of::<RecordHeader>() {
        return Err(DecodeError::NoHeader(record.len()));
    }
    // SAFETY: the length was checked and every bit pattern is a valid
    // header; ring buffer records are only 8-byte aligned.
    Ok(unsafe { std::ptr::read_unaligned(record.as_ptr().cast()) })
}

/// The body of a record whose tag names `B`. Its length must be that of
/// the kernel's record exactly: anything else was written by programs of
/// another layout.
fn body<B: RecordBody>(record: &[u8]) -> Result<B, DecodeError> {
    let expected = size_of::<Record<B>>();
    if record.len() != expected {
        return Err(DecodeError::Length {
            kind: B::KIND,
            len: record.len(),
            expected,
        });
    }
    // SAFETY: as in `header`; every record body is plain data for which
    // every bit pattern is valid.
    let record: Record<B> = unsafe { std::ptr::read_unaligned(record.as_ptr().cast()) };
    Ok(record.body)
}

fn decode_tamper(raw: &TamperEvent, processes: &mut ProcessCache) -> Result<Event, DecodeError> {
    let attempt = Attempt::from_u32(raw.attempt).ok_or(DecodeError::Attempt(raw.attempt))?;
    let seen = processes.of(raw.pid);
    Ok(Event::at(
        wall_time(raw.boot_ns),
        EventBody::Tamper(TamperAttempt {
            attempt: attempt.name().to_string(),
            target: raw.target,
            detail: raw.detail,
            process: Process {
                pid: raw.pid,
                ppid: seen.ppid,
                exe: seen.exe,
                tid: raw.tid,
                uid: raw.uid,
                gid: raw.gid,
                comm: c_string(&raw.comm),
                cgroup_id: raw.cgroup_id,
            },
        }),
    ))
}

fn decode_name(
    raw: &DomainEvent,
    rules: &RuleBook,
    processes: &mut ProcessCache,
) -> Result<Event, DecodeError> {
    let kind = DomainEventKind::from_u8(raw.kind).ok_or(DecodeError::NameKind(raw.kind))?;
    // An answer is judged on receive, in no process.
    let seen = if raw.pid == 0 {
        Seen::default()
    } else {
        processes.of(raw.pid)
    };
    let len = (raw.name_len as usize).min(raw.name.len());
    let name = String::from_utf8_lossy(&raw.name[..len]).into_owned();
    let domain =
        String::from_utf8_lossy(&raw.name[(raw.domain_start as usize).min(len)..len]).into_owned();
    let decided = verdict(raw.verdict)?;
    let client = (kind == DomainEventKind::ServerName).then(|| ip(raw.family, raw.saddr));
    let verdict = NameVerdict {
        verdict: decided,
        rule: rules.name(raw.generation, raw.rule),
        domain,
        name,
        process: Process {
            pid: raw.pid,
            ppid: seen.ppid,
            exe: seen.exe,
            tid: raw.tid,
            uid: raw.uid,
            gid: raw.gid,
            comm: c_string(&raw.comm),
            cgroup_id: raw.cgroup_id,
        },
        daddr: address(raw.family, raw.daddr),
        dport: raw.dport,
        proto: proto_name(raw.protocol),
        direction: match kind {
            DomainEventKind::Query => Some("query".to_string()),
            DomainEventKind::Answer => Some("response".to_string()),
            DomainEventKind::Learned | DomainEventKind::ServerName => None,
        },
        qtype: matches!(kind, DomainEventKind::Query | DomainEventKind::Answer)
            .then(|| qtype_name(raw.qtype)),
        // A server name whose rule learns no addresses lists none: no TTL.
        ttl: match kind {
            DomainEventKind::Learned => Some(raw.ttl),
            DomainEventKind::ServerName => (raw.ttl != 0).then_some(raw.ttl),
            DomainEventKind::Query | DomainEventKind::Answer => None,
        },
        saddr: client.map(|address| address.to_string()),
        sport: client.map(|_| raw.sport),
        connection: None,
        to_end: client
            .filter(|_| decided == Verdict::Blocked && raw.protocol == IPPROTO_TCP)
            .map(|address| TcpConnection {
                local: SocketAddr::new(address, raw.sport),
                remote: SocketAddr::new(ip(raw.family, raw.daddr), raw.dport),
                cookie: raw.socket_cookie,
            }),
        generation: raw.generation,
    };
    let body = match kind {
        DomainEventKind::Query | DomainEventKind::Answer => EventBody::Dns(verdict),
        DomainEventKind::ServerName => EventBody::Sni(verdict),
        DomainEventKind::Learned => EventBody::Learned(verdict),
    };
    Ok(Event::at(wall_time(raw.boot_ns), body))
}

/// The mnemonic of the DNS types clients ask for, else the number.
fn qtype_name(qtype: u16) -> String {
    match qtype {
        1 => "A".to_string(),
        2 => "NS".to_string(),
        5 => "CNAME".to_string(),
        6 => "SOA".to_string(),
        12 => "PTR".to_string(),
        15 => "MX".to_string(),
        16 => "TXT".to_string(),
        28 => "AAAA".to_string(),
        33 => "SRV".to_string(),
        64 => "SVCB".to_string(),
        65 => "HTTPS".to_string(),
        255 => "ANY".to_string(),
        other => other.to_string(),
    }
}

fn address(family: u8, bytes: [u8; 16]) -> String {
    ip(family, bytes).to_string()
}

fn ip(family: u8, bytes: [u8; 16]) -> IpAddr {
    if family == FAMILY_V4 {
        Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).into()
    } else {
        Ipv6Addr::from(bytes).into()
    }
}

fn proto_name(protocol: u8) -> String {
    match protocol {
        IPPROTO_TCP => "tcp".to_string(),
        IPPROTO_UDP => "udp".to_string(),
        other => other.to_string(),
    }
}

fn verdict(raw: u32) -> Result<Verdict, DecodeError> {
    match raw {
        v if v == Action::Block as u32 => Ok(Verdict::Blocked),
        v if v == Action::Audit as u32 => Ok(Verdict::Audit),
        other => Err(DecodeError::Verdict(other)),
    }
}

fn decode_exec(raw: &ExecEvent, rules: &RuleBook) -> Result<Event, DecodeError> {
    let method = match ExecMethod::from_u8(raw.method).ok_or(DecodeError::Method(raw.method))? {
        ExecMethod::Lsm => "lsm",
        ExecMethod::Signal => "signal",
    };
    let trigger = match Trigger::from_u8(raw.trigger).ok_or(DecodeError::Trigger(raw.trigger))? {
        Trigger::Exec => "exec",
        Trigger::Anonymous => "anonymous",
        Trigger::Mapping => "mapping",
        Trigger::Script => "script",
    };
    let untrusted = Untrusted::from_u8(raw.untrusted);
    let rule = match (raw.rule == OPTIONS_RULE, untrusted) {
        (true, Some(_)) => "options.exec_trusted_only".to_string(),
        (true, None) => "options.exec_block_anonymous".to_string(),
        (false, _) => rules.name(raw.generation, raw.rule),
    };
    let within_filesystem = path_from_leaf(&raw.path, raw.path_components, raw.path_truncated != 0);
    let exec = ExecVerdict {
        verdict: verdict(raw.verdict)?,
        rule,
        trigger: trigger.to_string(),
        process: Process {
            pid: raw.pid,
            ppid: (raw.ppid != 0).then_some(raw.ppid),
            // The image is the judged file, in `path`: by the time the
            // event is read it may have been replaced or killed.
            exe: None,
            tid: raw.tid,
            uid: raw.uid,
            gid: raw.gid,
            comm: c_string(&raw.comm),
            cgroup_id: raw.cgroup_id,
        },
        path: mounts::full_path(raw.dev, &within_filesystem),
        filename: c_string(&raw.filename),
        dev: crate::exec::resolve::dev_label(raw.dev),
        ino: raw.ino,
        method: method.to_string(),
        sha256: rules.digest(raw.dev, raw.ino),
        reason: untrusted.map(|_| "untrusted".to_string()),
        check: untrusted.map(|untrusted| untrusted.name().to_string()),
        generation: raw.generation,
    };
    Ok(Event::at(wall_time(raw.boot_ns), EventBody::Exec(exec)))
}

/// The kernel writes dentry names from the executable up to its
/// filesystem's root (`/`), each ending in NUL; this turns them around.
fn path_from_leaf(buffer: &[u8], components: u8, truncated: bool) -> String {
    let names: Vec<&[u8]> = buffer
        .split(|&b| b == 0)
        .take(components as usize)
        .collect();
    let mut path = String::new();
    if truncated {
        path.push_str("...");
    }
    for name in names.iter().rev().filter(|name| **name != b"/") {
        path.push('/');
        path.push_str(&String::from_utf8_lossy(name));
    }
    if path.is_empty() {
        "/".to_string()
    } else {
        path
    }
}

fn decode_net(
    raw: &NetEvent,
    rules: &RuleBook,
    processes: &mut ProcessCache,
) -> Result<Event, DecodeError> {
    let hook = Hook::from_u8(raw.hook).ok_or(DecodeError::Hook(raw.hook))?;
    let seen = processes.of(raw.pid);
    let verdict = verdict(raw.verdict)?;
    let daddr = address(raw.family, raw.daddr);
    let domain = (raw.source == Source::Learned as u8).then(|| {
        rules
            .domain(raw.generation, raw.domain_slot)
            .unwrap_or_else(|| format!("#{} (generation {})", raw.domain_slot, raw.generation))
    });
    let net = NetVerdict {
        verdict,
        rule: rules.name(raw.generation, raw.rule),
        process: Process {
            pid: raw.pid,
            ppid: seen.ppid,
            exe: seen.exe,
            tid: raw.tid,
            uid: raw.uid,
            gid: raw.gid,
            comm: c_string(&raw.comm),
            cgroup_id: raw.cgroup_id,
        },
        daddr,
        dport: raw.dport,
        proto: proto_name(raw.protocol),
        hook: hook_name(hook).to_string(),
        domain,
        generation: raw.generation,
    };
    let body = match hook {
        Hook::Connect4 | Hook::Connect6 => EventBody::Connect(net),
        Hook::Sendmsg4 | Hook::Sendmsg6 => EventBody::Sendmsg(net),
    };
    Ok(Event::at(wall_time(raw.boot_ns), body))
}

fn hook_name(hook: Hook) -> &'static str {
    match hook {
        Hook::Connect4 => enforcer_common::names::PROG_CONNECT4,
        Hook::Connect6 => enforcer_common::names::PROG_CONNECT6,
        Hook::Sendmsg4 => enforcer_common::names::PROG_SENDMSG4,
        Hook::Sendmsg6 => enforcer_common::names::PROG_SENDMSG6,
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The kernel stamps `CLOCK_BOOTTIME`, which keeps counting through
/// suspend; wall time is derived by the distance from now.
fn wall_time(boot_ns: u64) -> SystemTime {
    let now = SystemTime::now();
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer for clock_gettime.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return now;
    }
    let boot_now = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
    let age = boot_now.saturating_sub(Duration::from_nanos(boot_ns));
    now.checked_sub(age).unwrap_or(now)
}

/// The parent and the executable of recently reported processes. A burst
/// of verdicts mostly comes from one process, and reading `/proc` for
/// each event cost more than all the rest of its handling. An entry is
/// trusted for [`PROCESS_KEPT`]: no read of `/proc` was ever more exact
/// than that, as the process may be gone or its pid reused by the time it
/// is read.
#[derive(Default)]
pub(crate) struct ProcessCache {
    known: HashMap<u32, (Seen, Instant)>,
}

/// What `/proc` told of a process; `None` where it could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    pub ppid: Option<u32>,
    pub exe: Option<String>,
}

const PROCESS_KEPT: Duration = Duration::from_secs(1);
/// Distinct processes remembered at most; a flood of them empties the table.
const PROCESSES_KEPT: usize = 4096;

impl ProcessCache {
    pub(crate) fn of(&mut self, pid: u32) -> Seen {
        let now = Instant::now();
        if let Some((seen, read_at)) = self.known.get(&pid)
            && now.duration_since(*read_at) < PROCESS_KEPT
        {
            return seen.clone();
        }
        if self.known.len() >= PROCESSES_KEPT {
            self.known
                .retain(|_, (_, read_at)| now.duration_since(*read_at) < PROCESS_KEPT);
            if self.known.len() >= PROCESSES_KEPT {
                self.known.clear();
            }
        }
        let seen = Seen {
            ppid: parent_pid(pid),
            exe: std::fs::read_link(format!("/proc/{pid}/exe"))
                .ok()
                .map(|path| path.display().to_string()),
        };
        self.known.insert(pid, (seen.clone(), now));
        seen
    }
}

/// The parent from `/proc/PID/stat`, whose fourth field follows the
/// parenthesised command name (which may itself contain spaces and ')').
fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_ppid(&stat)
}

fn parse_stat_ppid(stat: &str) -> Option<u32> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests;
