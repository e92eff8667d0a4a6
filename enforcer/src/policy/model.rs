//! What a policy is once parsed: its rules, and what each rule holds.

use std::{collections::BTreeSet, fmt};

use serde::{Deserialize, Serialize};

use super::cidr::Cidr;
use super::domain::Domain;
use super::exec::{ExecPath, Sha256};
use super::options::Options;

/// All rules of a policy: files in the given order, rules in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub rules: Vec<Rule>,
    /// The `[options]` of all files together. Policies serialized before
    /// options existed read as the defaults.
    #[serde(default)]
    pub options: Options,
    /// The `[options]` network switches that only files included in audit
    /// mode turn on (`block_dot`, `block_quic`): their rules report and
    /// let through.
    #[serde(default)]
    pub audited_switches: BTreeSet<String>,
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
            mode: if self.audited_switches.contains(key) {
                Mode::Audit
            } else {
                Mode::Enforce
            },
            cidrs: everywhere.clone(),
            ports: Some(vec![PortRange {
                first: port,
                last: port,
            }]),
            protocols: Some(protocols),
            origin: Origin {
                file: "[options]".into(),
                line: 0,
            },
            ..Rule::default()
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

/// One `[[block]]` or `[[allow]]` table. The table of rule keys
/// (`rule_keys::RULE_KEYS`) says how each key fills its field; the default
/// is a block rule that has no key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// What a block rule's `domains` act on besides DNS queries.
    #[serde(default)]
    pub domain_switches: DomainSwitches,
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

/// A block rule's switches for its `domains` (see `policies/README.md`,
/// "Names on shared addresses"). Both are on unless the rule turns them
/// off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct DomainSwitches {
    /// Answers for the rule's names, and ClientHellos naming them, list
    /// their addresses as refused. Off, a shared front end stays
    /// reachable for the other names it serves.
    pub learn_addresses: bool,
    /// ClientHellos naming the rule's names are judged.
    pub sni: bool,
}

impl Default for DomainSwitches {
    fn default() -> Self {
        Self {
            learn_addresses: true,
            sni: true,
        }
    }
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    #[default]
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

impl ProtocolSet {
    /// The protocols in the set, as a policy names them.
    pub fn names(self) -> Vec<String> {
        [("tcp", self.tcp), ("udp", self.udp)]
            .into_iter()
            .filter(|&(_, on)| on)
            .map(|(name, _)| name.to_owned())
            .collect()
    }
}

/// Where a rule's table starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Origin {
    pub file: String,
    /// 1-based.
    pub line: u32,
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
