//! Program families: the groups of kernel programs that load, or are
//! refused, together, and what each enforces of a policy. A host whose
//! kernel refuses a family still enforces everything the other families
//! cover, and reports the gap (see `crate::kernel::programs` and the `degraded`
//! event).

use std::{fmt, str::FromStr};

use enforcer_common::names::{
    EGRESS_VARIANTS, EXEC_PROGRAMS, GUARD_PROGRAMS, INGRESS_VARIANTS, MAPPING_PROGRAMS,
    SOCKET_PROGRAMS,
};
use serde::{Deserialize, Serialize};

use crate::policy::{Policy, Trust};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// The socket programs: connect4/6 and sendmsg4/6, for CIDR rules.
    Network,
    /// The exec hook: BPF LSM `bprm_check_security`, or the
    /// `sched_process_exec` tracepoint.
    Exec,
    /// The exec hook judging file names (`exec_names`). Its `_by_file`
    /// variant, which a kernel without the name hashing's atomics (before
    /// Linux 5.12) falls back to, judges by file and directory alone.
    ExecNames,
    /// The mapping hook of the `exec_block_loader` option, which
    /// `exec_trusted_only` needs too: BPF LSM `mmap_file` and
    /// `file_mprotect`, or the `sys_enter_mmap` tracepoint.
    ExecBlockLoader,
    /// The egress and ingress packet programs of domain rules.
    Domains,
    /// The guard's BPF LSM programs.
    SelfProtection,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Network,
        Family::Exec,
        Family::ExecNames,
        Family::ExecBlockLoader,
        Family::Domains,
        Family::SelfProtection,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Network => "network",
            Family::Exec => "exec",
            Family::ExecNames => "exec_names",
            Family::ExecBlockLoader => "exec_block_loader",
            Family::Domains => "domains",
            Family::SelfProtection => "self_protection",
        }
    }

    /// The family of the object's program `name`.
    pub fn of_program(name: &str) -> Option<Family> {
        if SOCKET_PROGRAMS.contains(&name) {
            Some(Family::Network)
        } else if EXEC_PROGRAMS.contains(&name) {
            Some(Family::Exec)
        } else if MAPPING_PROGRAMS.contains(&name) {
            Some(Family::ExecBlockLoader)
        } else if [EGRESS_VARIANTS, INGRESS_VARIANTS].iter().any(|variants| {
            [variants.dispatcher, variants.sized, variants.any_size].contains(&name)
        }) {
            Some(Family::Domains)
        } else if GUARD_PROGRAMS.contains(&name) {
            Some(Family::SelfProtection)
        } else {
            None
        }
    }

    /// What of `policy` this family enforces: the rules with parts that
    /// only its programs judge, and the options that only they act on.
    /// Self-protection guards the enforcer, not the policy: nothing.
    pub fn coverage(self, policy: &Policy) -> Coverage {
        let rules = policy.rules.iter().filter(|rule| match self {
            Family::Network => !rule.cidrs.is_empty(),
            Family::Exec => {
                !rule.exec_paths.is_empty()
                    || !rule.exec_names.is_empty()
                    || !rule.exec_sha256.is_empty()
            }
            Family::ExecNames => !rule.exec_names.is_empty(),
            Family::Domains => !rule.domains.is_empty(),
            Family::ExecBlockLoader | Family::SelfProtection => false,
        });
        let options = &policy.options;
        let trusted_only = options.exec_trusted_only != Trust::Off;
        let switches: &[(&str, bool)] = match self {
            Family::Network => &[
                ("block_dot", options.block_dot),
                ("block_quic", options.block_quic),
            ],
            // The mapping hook judges with the exec rules, so it goes with
            // the exec hook too.
            Family::Exec => &[
                ("exec_block_anonymous", options.exec_block_anonymous),
                ("exec_block_loader", options.exec_block_loader),
                ("exec_trusted_only", trusted_only),
            ],
            // Trust holds for what the loader maps only with this hook.
            Family::ExecBlockLoader => &[
                ("exec_block_loader", options.exec_block_loader),
                ("exec_trusted_only", trusted_only),
            ],
            // Trust is judged by the hooks that judge names: the by-file
            // variants hold no `bpf_loop`.
            Family::ExecNames => &[("exec_trusted_only", trusted_only)],
            Family::Domains | Family::SelfProtection => &[],
        };
        Coverage {
            rules: rules.map(|rule| rule.name.clone()).collect(),
            options: switches
                .iter()
                .filter(|(_, on)| *on)
                .map(|(name, _)| format!("options.{name}"))
                .collect(),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown program family `{0}`; the families are {list}", list = family_list())]
pub struct UnknownFamily(String);

fn family_list() -> String {
    Family::ALL.map(Family::name).join(", ")
}

impl FromStr for Family {
    type Err = UnknownFamily;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Family::ALL
            .into_iter()
            .find(|family| family.name() == name)
            .ok_or_else(|| UnknownFamily(name.to_string()))
    }
}

/// Where a family stands on this host: the one answer status, the `ready`
/// event and the `degraded` event render. The daemon holds why a family
/// is unavailable as the loader's refusal; a report carries its text, the
/// default `R`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FamilyState<R = String> {
    /// Loaded and attached.
    Enforcing,
    /// Loaded, so the kernel accepts it; attached when a policy needs it.
    Loaded,
    /// Loads when a policy first needs it; until then nobody asked the
    /// kernel.
    NotCheckedYet,
    Unavailable {
        reason: R,
    },
}

impl<R> FamilyState<R> {
    /// Loaded (not yet attached), or unavailable for the load's refusal.
    pub fn loaded(outcome: Result<(), R>) -> Self {
        match outcome {
            Ok(()) => Self::Loaded,
            Err(reason) => Self::Unavailable { reason },
        }
    }

    /// Why the kernel will not run it, if it will not.
    pub fn refusal(&self) -> Option<&R> {
        match self {
            Self::Unavailable { reason } => Some(reason),
            Self::Enforcing | Self::Loaded | Self::NotCheckedYet => None,
        }
    }
}

impl<R: fmt::Display> FamilyState<R> {
    /// The form a report carries: the reason as its text.
    pub fn rendered(&self) -> FamilyState {
        match self {
            Self::Enforcing => FamilyState::Enforcing,
            Self::Loaded => FamilyState::Loaded,
            Self::NotCheckedYet => FamilyState::NotCheckedYet,
            Self::Unavailable { reason } => FamilyState::Unavailable {
                reason: reason.to_string(),
            },
        }
    }
}

/// The line `enforcer status` shows for a family.
impl<R: fmt::Display> fmt::Display for FamilyState<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Enforcing => f.write_str("enforcing"),
            Self::Loaded => f.write_str("loaded, attached when a policy needs it"),
            Self::NotCheckedYet => {
                f.write_str("not checked yet, loads when a policy first needs it")
            }
            Self::Unavailable { reason } => write!(f, "unavailable: {reason}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyStatus {
    pub family: Family,
    #[serde(flatten)]
    pub state: FamilyState,
}

/// A loaded program and the verifier's work on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedProgram {
    pub name: String,
    pub family: Family,
    /// `verified_insns` of its fdinfo: the instructions the verifier
    /// processed, against a limit of a million. `None` before Linux 5.16.
    pub verified_insns: Option<u32>,
}

/// The parts of a policy one family enforces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// Names of rules with parts only this family judges.
    pub rules: Vec<String>,
    /// `options.KEY` for each option that is on and only this family acts on.
    pub options: Vec<String>,
}

impl Coverage {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.options.is_empty()
    }
}

/// A family this host cannot run, and what of the policy in force it
/// leaves unenforced: the body of a `degraded` event, and a line of an
/// apply's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Degradation {
    /// The generation whose policy `not_enforced` is part of.
    pub generation: u64,
    pub family: Family,
    pub reason: String,
    /// What of the policy is not enforced for it.
    pub not_enforced: Coverage,
}

impl fmt::Display for Degradation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} unavailable ({})", self.family, self.reason)?;
        let Coverage { rules, options } = &self.not_enforced;
        if self.not_enforced.is_empty() {
            return Ok(());
        }
        f.write_str(": not enforced:")?;
        let mut sep = " ";
        for rule in rules {
            write!(f, "{sep}rule {rule}")?;
            sep = ", ";
        }
        for option in options {
            write!(f, "{sep}{option}")?;
            sep = ", ";
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_an_unknown_one_lists_the_families() {
        for family in Family::ALL {
            assert_eq!(family.name().parse::<Family>(), Ok(family));
            assert_eq!(
                serde_json::to_value(family).unwrap(),
                serde_json::json!(family.name())
            );
        }
        let error = "dns".parse::<Family>().unwrap_err().to_string();
        assert!(
            error.contains("`dns`") && error.contains("exec, exec_names, exec_block_loader"),
            "{error}"
        );
    }

    #[test]
    fn every_program_of_the_object_has_a_family() {
        for name in SOCKET_PROGRAMS {
            assert_eq!(Family::of_program(name), Some(Family::Network));
        }
        for name in ["egress", "ingress_sized", "ingress_any_size"] {
            assert_eq!(Family::of_program(name), Some(Family::Domains));
        }
        for name in EXEC_PROGRAMS {
            assert_eq!(Family::of_program(name), Some(Family::Exec));
        }
        for name in MAPPING_PROGRAMS {
            assert_eq!(Family::of_program(name), Some(Family::ExecBlockLoader));
        }
        assert_eq!(Family::of_program("bpf_map"), Some(Family::SelfProtection));
        assert_eq!(Family::of_program("nothing"), None);
    }

    #[test]
    fn coverage_names_the_rules_and_options_of_a_family() {
        let policy = crate::policy::parse(&[crate::policy::Source {
            name: "p.toml".into(),
            text: r#"
version = 1
[options]
exec_block_loader = true
[[block]]
name = "net"
cidrs = ["127.0.0.9/32"]
[[block]]
name = "names"
domains = ["example.com"]
[[block]]
name = "both"
cidrs = ["127.0.0.10/32"]
exec_names = ["banned"]
"#
            .into(),
        }])
        .unwrap();
        assert_eq!(Family::Domains.coverage(&policy).rules, ["names"]);
        assert_eq!(Family::Network.coverage(&policy).rules, ["net", "both"]);
        let exec = Family::Exec.coverage(&policy);
        assert_eq!(exec.rules, ["both"]);
        assert_eq!(exec.options, ["options.exec_block_loader"]);
        assert_eq!(Family::ExecNames.coverage(&policy).rules, ["both"]);
        assert!(Family::ExecNames.coverage(&policy).options.is_empty());
        assert!(Family::SelfProtection.coverage(&policy).is_empty());
        let degradation = Degradation {
            generation: 1,
            family: Family::Domains,
            reason: "refused".into(),
            not_enforced: Family::Domains.coverage(&policy),
        };
        assert_eq!(
            degradation.to_string(),
            "domains unavailable (refused): not enforced: rule names"
        );
    }
}
