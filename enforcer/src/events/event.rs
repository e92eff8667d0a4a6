//! The events the daemon publishes: what every sink and follower receives,
//! one JSON object per line.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::host::sock_diag::{Ending, TcpConnection};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339, UTC.
    pub ts: String,
    #[serde(flatten)]
    pub body: EventBody,
}

impl Event {
    pub fn now(body: EventBody) -> Self {
        Self::at(SystemTime::now(), body)
    }

    pub fn at(time: SystemTime, body: EventBody) -> Self {
        Self {
            ts: humantime::format_rfc3339_micros(time).to_string(),
            body,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// Enforcement is active: programs attached, first policy in force.
    Ready {
        generation: u64,
        cgroup: String,
        programs: Vec<String>,
        /// "lsm", "signal", or why exec rules cannot be enforced here.
        exec_enforcement: String,
        /// "lsm", or why self-protection cannot run here.
        self_protection: String,
        rules: usize,
        /// Every program family and its state; an unavailable one says
        /// why (a `degraded` event follows for each).
        #[serde(default)]
        families: Vec<crate::kernel::family::FamilyStatus>,
        /// Every loaded program with the verifier's instruction count.
        #[serde(default)]
        programs_verified: Vec<crate::kernel::family::VerifiedProgram>,
    },
    /// A program family this kernel refused: at start for each, and at an
    /// apply for each whose rules or options the new policy has. Those
    /// parts are not enforced; the rest of the policy is.
    Degraded(crate::kernel::family::Degradation),
    Connect(NetVerdict),
    Sendmsg(NetVerdict),
    /// Self-protection refused a process something that would end or
    /// blind enforcement.
    Tamper(TamperAttempt),
    Exec(ExecVerdict),
    /// A DNS query for a listed name, or a response to one.
    Dns(NameVerdict),
    /// A TLS ClientHello whose server name is listed.
    Sni(NameVerdict),
    /// An address from a DNS answer for a listed name is now refused (or
    /// audited) for `ttl` seconds.
    Learned(NameVerdict),
    /// A policy pushed over the control socket was refused for its
    /// signature (missing, untrusted or not matching); nothing changed.
    PolicyRefused {
        reason: String,
        /// The content hash of the refused files.
        sha256: String,
        uid: u32,
        pid: Option<u32>,
    },
    /// Enforcement was removed (`enforcer unload --confirm`).
    Unloaded {
        generation: u64,
        pins_removed: usize,
        uid: u32,
        pid: Option<u32>,
    },
    /// Addresses from DNS answers or ClientHellos for listed names could
    /// not be learned, because their owner's quota or the map was full:
    /// what carried them was dropped. Reported at most once a minute.
    LearnedFull {
        /// Addresses not stored since the last report.
        unstored: u64,
        /// The owners at their quota now.
        full: Vec<LearnedOwner>,
    },
    /// This daemon took over from the ones that ran before it.
    Takeover(TakeoverReport),
    /// A new policy generation is in force.
    PolicyApplied {
        generation: u64,
        rules: usize,
        /// The content hash of the policy's files (as in `status`).
        sha256: String,
        uid: Option<u32>,
        pid: Option<u32>,
    },
    /// The policy's exec paths now name other files (an upgrade replaced
    /// one, or a missing one appeared), and a generation with them is in
    /// force.
    ExecPathsResolved {
        generation: u64,
        files: usize,
        directories: usize,
        missing: Vec<String>,
    },
    /// A file with banned content was found; a generation banning it is
    /// in force.
    ExecContentFound {
        generation: u64,
        path: String,
        sha256: String,
        dev: String,
        ino: u64,
    },
    /// The daemon is stopping. Its programs stay attached through their
    /// pins, unless it was unloaded.
    Shutdown {
        reason: String,
    },
}

/// An owner of learned addresses (see `enforcer_common::learned`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedOwner {
    /// `None` for the entries that bind everyone.
    pub uid: Option<u32>,
    pub entries: u64,
    pub quota: u64,
}

/// What taking over found and did, for the `takeover` event.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeoverReport {
    /// Instances of this build's pin layout that were taken over.
    pub instances: usize,
    /// Instance directories of another pin layout: their programs were
    /// detached without reading anything of theirs.
    pub other_layouts: Vec<String>,
    /// Events the earlier instances' programs raised while no daemon ran.
    pub events_recovered: usize,
    /// Learned addresses carried over.
    pub addresses_kept: usize,
    /// Pins removed, which detached the earlier programs.
    pub pins_removed: usize,
    /// Anything that could not be read or removed; taking over went on.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Blocked,
    Audit,
}

/// One connect or datagram the policy matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetVerdict {
    pub verdict: Verdict,
    pub rule: String,
    #[serde(flatten)]
    pub process: Process,
    pub daddr: String,
    pub dport: u16,
    /// "tcp", "udp" or the IP protocol number.
    pub proto: String,
    pub hook: String,
    /// When the destination was refused because a DNS answer or a TLS
    /// server name tied it to a listed domain: that domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub generation: u64,
}

/// Something self-protection refused, with EPERM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TamperAttempt {
    /// "map", "program" or "link": a descriptor of one of the enforcer's
    /// objects; "pin": a lookup in its pin directory; "unmount": of its
    /// pin filesystem; "signal" or "ptrace": aimed at its daemon.
    pub attempt: String,
    /// The object id, the pin's inode number, the filesystem's device, or
    /// the daemon's pid.
    pub target: u64,
    /// The signal number (signal) or access mask (pin, ptrace).
    pub detail: u32,
    #[serde(flatten)]
    pub process: Process,
}

/// A verdict on a name: a DNS question or CNAME target, or a TLS server
/// name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameVerdict {
    pub verdict: Verdict,
    pub rule: String,
    /// The listed domain that matched: `name` itself or a parent of it.
    pub domain: String,
    /// The name as the packet carried it, in lowercase.
    pub name: String,
    /// Who sent the packet. Packets are judged when they are sent or
    /// received, not always in the sender's context: a received answer
    /// names no process (pid 0), and a retransmitted query may name
    /// another one.
    #[serde(flatten)]
    pub process: Process,
    /// dns: the resolver; sni: the server; learned: the address learned.
    pub daddr: String,
    pub dport: u16,
    pub proto: String,
    /// dns only: "query" when the query was refused (or audited),
    /// "response" when a response for the name was dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// dns only: the type asked for, e.g. "A", "AAAA", "HTTPS", or its
    /// number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qtype: Option<String>,
    /// learned and sni: seconds the address stays listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    /// sni: the client's side of the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saddr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<u16>,
    /// sni, blocked: what became of the connection whose ClientHello was
    /// dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Ending>,
    /// sni, blocked: the connection to end, which the daemon does before it
    /// sends the event on.
    #[serde(skip)]
    pub to_end: Option<TcpConnection>,
    pub generation: u64,
}

/// Who a verdict concerns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    /// `None` when it could not be told: for connects, the process was gone
    /// before the event was read.
    pub ppid: Option<u32>,
    /// The executable the process runs, from `/proc/PID/exe` when the
    /// event is read; `None` when it was gone, and on exec events, whose
    /// `path` is the judged file.
    #[serde(default)]
    pub exe: Option<String>,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: String,
    pub cgroup_id: u64,
}

/// One exec the policy matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecVerdict {
    pub verdict: Verdict,
    pub rule: String,
    /// "exec": the file was executed; "anonymous": a file with no name was
    /// executed (option `exec_block_anonymous`); "mapping": the file was
    /// mapped executable, as the dynamic loader does (option
    /// `exec_block_loader`).
    pub trigger: String,
    /// `ppid` is the parent as the kernel saw it at exec time.
    #[serde(flatten)]
    pub process: Process,
    /// The executable as the kernel resolved it (its file, not the name
    /// the caller used).
    pub path: String,
    /// The file name as the caller passed it to exec.
    pub filename: String,
    /// "major:minor" of the executable's filesystem.
    pub dev: String,
    pub ino: u64,
    /// "lsm": the exec failed with EPERM; "signal": the new image was
    /// killed with SIGKILL before it ran.
    pub method: String,
    pub sha256: Option<String>,
    /// "untrusted" when `exec_trusted_only` decided rather than a rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// With `reason`: the check the file failed, "owner", "mode",
    /// "directory_owner", "directory_mode", "filesystem", "user_namespace",
    /// "anonymous" or "too_deep".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    pub generation: u64,
}
