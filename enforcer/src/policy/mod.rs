//! Policy files: parsing and validation into typed rules.
//!
//! The format is described in `policies/README.md`. Everything here is pure
//! except [`load_files`], which only reads the files and hands them to
//! [`parse`]. Validation reports every problem it can find, each as
//! `FILE:LINE:COL: message`, so one `enforcer policy check` run is enough to
//! fix a file.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod cidr;
pub mod diff;
mod domain;
mod exec;
mod parse;
mod span;
#[cfg(test)]
mod tests;

pub use cidr::CidrError;
pub use domain::{Domain, DomainError, MAX_DOMAIN_BYTES, MAX_LABEL_BYTES};
pub use exec::{ExecError, MAX_EXEC_NAME_BYTES, MAX_EXEC_PATH_BYTES};

/// One policy file's text. `name` is what errors show as the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// All rules of a policy: files in the given order, rules in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub rules: Vec<Rule>,
    /// The `[options]` of all files together. Policies serialized before
    /// options existed read as the defaults.
    #[serde(default)]
    pub options: Options,
}

/// Policy-wide settings, from the `[options]` tables of the policy's files.
/// `policies/README.md` says what each does; [`Options::default`] gives
/// their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Options {
    /// Also stop executables that have no name in any directory (memfd,
    /// `O_TMPFILE`, deleted after being opened).
    pub exec_block_anonymous: bool,
    /// Also stop banned files started through the dynamic loader, when
    /// they are mapped executable.
    pub exec_block_loader: bool,
    /// Make every exec of a not-yet-hashed file wait for its hash, so
    /// `exec_sha256` rules have no window.
    pub exec_hash_strict: bool,
    /// Refuse DNS over TLS and over QUIC (port 853) to every address.
    pub block_dot: bool,
    /// Refuse QUIC (UDP 443) to every address, so that browsers fall back
    /// to TCP.
    pub block_quic: bool,
    /// Drop DNS queries for the names that rules block, whichever resolver
    /// they go to. Off, the kernel still learns the addresses of those
    /// names from the answers and checks TLS server names.
    pub dns_block_queries: bool,
    /// Addresses learned from a DNS answer for a blocked name stay blocked
    /// for the answer's TTL, but at least this long: a short TTL must not
    /// let the client reconnect as soon as it expires.
    pub dns_ttl_min_seconds: u32,
    /// ...and at most this long, so that an address the name moved away
    /// from is released. Never less than `dns_ttl_min_seconds`.
    pub dns_ttl_max_seconds: u32,
}

/// The largest `dns_ttl_*_seconds`: a week, which is what resolvers keep
/// an answer at most (BIND's `max-cache-ttl`).
pub const MAX_DNS_TTL_SECONDS: u32 = 604_800;

/// The value of one `[options]` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionValue {
    Bool(bool),
    /// A duration, 1 to [`MAX_DNS_TTL_SECONDS`] seconds.
    Seconds(u32),
}

/// Where the value of one `[options]` key lives, by its type.
#[derive(Clone, Copy)]
enum OptionField {
    Bool(fn(&mut Options) -> &mut bool),
    Seconds(fn(&mut Options) -> &mut u32),
}

impl Default for Options {
    /// The switches that cost something or can break programs are off;
    /// dropping queries for blocked names is on, since a rule that lists
    /// domains asks for it. The TTL bounds keep a blocked address at least
    /// five minutes and at most a day after its last answer.
    fn default() -> Self {
        Self {
            exec_block_anonymous: false,
            exec_block_loader: false,
            exec_hash_strict: false,
            block_dot: false,
            block_quic: false,
            dns_block_queries: true,
            dns_ttl_min_seconds: 300,
            dns_ttl_max_seconds: 86_400,
        }
    }
}

impl Options {
    /// Every `[options]` key, in the order errors and the README list them.
    /// A new option is a field above, its default, and one line here.
    const FIELDS: &[(&'static str, OptionField)] = &[
        (
            "exec_block_anonymous",
            OptionField::Bool(|o| &mut o.exec_block_anonymous),
        ),
        (
            "exec_block_loader",
            OptionField::Bool(|o| &mut o.exec_block_loader),
        ),
        (
            "exec_hash_strict",
            OptionField::Bool(|o| &mut o.exec_hash_strict),
        ),
        ("block_dot", OptionField::Bool(|o| &mut o.block_dot)),
        ("block_quic", OptionField::Bool(|o| &mut o.block_quic)),
        (
            "dns_block_queries",
            OptionField::Bool(|o| &mut o.dns_block_queries),
        ),
        (
            "dns_ttl_min_seconds",
            OptionField::Seconds(|o| &mut o.dns_ttl_min_seconds),
        ),
        (
            "dns_ttl_max_seconds",
            OptionField::Seconds(|o| &mut o.dns_ttl_max_seconds),
        ),
    ];

    /// The names of all keys `[options]` accepts.
    pub fn keys() -> impl Iterator<Item = &'static str> {
        Self::FIELDS.iter().map(|&(key, _)| key)
    }

    /// Every option with its value, in [`Options::keys`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, OptionValue)> + '_ {
        Self::FIELDS.iter().map(|&(key, field)| {
            let mut copy = *self;
            let value = match field {
                OptionField::Bool(field) => OptionValue::Bool(*field(&mut copy)),
                OptionField::Seconds(field) => OptionValue::Seconds(*field(&mut copy)),
            };
            (key, value)
        })
    }

    /// The option named `key`, or `None` when there is no such option.
    pub fn get(&self, key: &str) -> Option<OptionValue> {
        self.iter()
            .find_map(|(name, value)| (name == key).then_some(value))
    }

    /// Sets the option named `key`, and tells whether it did: nothing
    /// changes when there is no such option or `value` is of another type.
    /// Ranges are not checked here; [`parse()`] checks them.
    pub fn set(&mut self, key: &str, value: OptionValue) -> bool {
        let Some(&(_, field)) = Self::FIELDS.iter().find(|&&(name, _)| name == key) else {
            return false;
        };
        match (field, value) {
            (OptionField::Bool(field), OptionValue::Bool(value)) => *field(self) = value,
            (OptionField::Seconds(field), OptionValue::Seconds(value)) => *field(self) = value,
            _ => return false,
        }
        true
    }
}

impl Policy {
    /// Whether any rule names domains: only then do the packet programs
    /// run.
    pub fn lists_domains(&self) -> bool {
        self.rules.iter().any(|rule| !rule.domains.is_empty())
    }

    /// The rules the kernel enforces: the policy's own, then one for each
    /// network switch of `[options]` that is on. Events name the latter
    /// `options.KEY`.
    pub fn enforced_rules(&self) -> Vec<Rule> {
        let everywhere: Vec<Cidr> = vec![
            Cidr::V4 {
                addr: std::net::Ipv4Addr::UNSPECIFIED,
                prefix_len: 0,
            },
            Cidr::V6 {
                addr: std::net::Ipv6Addr::UNSPECIFIED,
                prefix_len: 0,
            },
        ];
        let switch = |key: &str, port: u16, protocols: ProtocolSet| Rule {
            name: format!("options.{key}"),
            kind: RuleKind::Block,
            mode: Mode::Enforce,
            cidrs: everywhere.clone(),
            domains: Vec::new(),
            ports: Some(vec![PortRange {
                first: port,
                last: port,
            }]),
            protocols: Some(protocols),
            exec_paths: Vec::new(),
            exec_names: Vec::new(),
            exec_sha256: Vec::new(),
            origin: Origin {
                file: "[options]".into(),
                line: 0,
            },
        };
        let mut rules = self.rules.clone();
        if self.options.block_dot {
            // DNS over TLS is TCP 853; DNS over QUIC is UDP 853.
            rules.push(switch(
                "block_dot",
                853,
                ProtocolSet {
                    tcp: true,
                    udp: true,
                },
            ));
        }
        if self.options.block_quic {
            rules.push(switch(
                "block_quic",
                443,
                ProtocolSet {
                    tcp: false,
                    udp: true,
                },
            ));
        }
        rules
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rule {
    pub name: String,
    pub kind: RuleKind,
    /// Effective mode: the rule's own `mode`, else the file's. Allow rules
    /// carry the file's mode, but nothing reads it.
    pub mode: Mode,
    /// Destination networks. Empty when the rule only names domains or
    /// executables.
    pub cidrs: Vec<Cidr>,
    /// Destination names (block and allow rules): each covers itself and
    /// all its subdomains. Rules serialized before domains existed have
    /// none.
    #[serde(default)]
    pub domains: Vec<Domain>,
    /// Executable files and directories (block and allow rules).
    pub exec_paths: Vec<ExecPath>,
    /// Executable file names, in any directory (block rules only).
    pub exec_names: Vec<String>,
    /// Executable contents, any copy anywhere (block rules only).
    pub exec_sha256: Vec<Sha256>,
    /// `None`: every port. Only set when `cidrs` is not empty.
    pub ports: Option<Vec<PortRange>>,
    /// `None`: every IP protocol, not only TCP and UDP. Only set when
    /// `cidrs` is not empty.
    pub protocols: Option<ProtocolSet>,
    pub origin: Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    Block,
    Allow,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Refuse matching connections.
    #[default]
    Enforce,
    /// Let matching connections through and report them.
    Audit,
}

/// A network, always with its host bits clear. IPv4-mapped IPv6 networks
/// (`::ffff:0:0/96` and narrower) are stored as their IPv4 equivalent.
/// Serializes as its text form, e.g. `"10.0.0.0/8"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Cidr {
    V4 { addr: Ipv4Addr, prefix_len: u8 },
    V6 { addr: Ipv6Addr, prefix_len: u8 },
}

/// An absolute executable path: a file, or with `directory` every file
/// under that directory at any depth. `path` is absolute, has no empty,
/// `.` or `..` components, no trailing `/` and is never `/` itself.
/// Displays and serializes as written in a policy, with a trailing `/` for a
/// directory, e.g. `"/opt/Telegram/"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ExecPath {
    pub path: PathBuf,
    pub directory: bool,
}

/// A SHA-256 digest. Displays and serializes as 64 lowercase hex digits;
/// parses from either case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Sha256(pub [u8; 32]);

/// Inclusive port range; a single port has `first == last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProtocolSet {
    pub tcp: bool,
    pub udp: bool,
}

/// Where a rule's table starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Origin {
    pub file: String,
    /// 1-based.
    pub line: u32,
}

/// One problem in a policy. `line` and `column` are 1-based (0 when the file
/// could not be read at all); the column counts characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct PolicyError {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// Every problem found, in file order; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", one_per_line(.0))]
pub struct PolicyErrors(pub Vec<PolicyError>);

fn one_per_line(errors: &[PolicyError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses and validates `sources` as one policy. Rule names must be unique
/// across all of them.
pub fn parse(sources: &[Source]) -> Result<Policy, PolicyErrors> {
    let mut checker = parse::Checker::default();
    for source in sources {
        checker.check(source);
    }
    checker.finish()
}

/// Reads `paths` as the files of one policy, without parsing them. Files
/// that cannot be read are reported as [`load_files`] reports them.
pub fn read_files(paths: &[PathBuf]) -> Result<Vec<Source>, PolicyErrors> {
    let mut checker = parse::Checker::default();
    let mut sources = Vec::with_capacity(paths.len());
    for path in paths {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => sources.push(Source { name, text }),
            Err(error) => checker.unreadable(name, &error),
        }
    }
    checker.finish().map(|_| sources)
}

/// Reads `paths` and parses them as one policy. A file that cannot be read
/// is reported (at line 0, column 0) alongside the other files' errors.
pub fn load_files(paths: &[PathBuf]) -> Result<Policy, PolicyErrors> {
    let mut checker = parse::Checker::default();
    for path in paths {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => checker.check(&Source { name, text }),
            Err(error) => checker.unreadable(name, &error),
        }
    }
    checker.finish()
}

impl fmt::Display for OptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::Bool(on) => write!(f, "{on}"),
            OptionValue::Seconds(seconds) => write!(f, "{seconds}"),
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        })
    }
}

impl fmt::Display for RuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleKind::Block => "block",
            RuleKind::Allow => "allow",
        })
    }
}
