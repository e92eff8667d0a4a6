//! Every key a `[[block]]` or `[[allow]]` table may have, in one table.
//!
//! The parser, `policy check`'s errors, the changes `policy apply` lists
//! and the key list of `policies/README.md` (a test compares them) all
//! follow from [`RULE_KEYS`]. A new rule key is a field of [`Rule`] and one
//! entry there.

use std::collections::BTreeSet;

use super::context::{FileCx, Value};
use super::model::{Rule, RuleKind};
use super::values::{
    check_cidrs, check_domains, check_exec_names, check_exec_paths, check_exec_sha256, check_mode,
    check_name, check_ports, check_protocols, check_switch,
};

/// One rule key: its name, which rules may have it, what it does, and how
/// its value is checked and stored.
pub(super) struct RuleKey {
    pub key: &'static str,
    /// `Some(why)`: block rules only; an allow rule that has the key gets
    /// the error `` `KEY` why ``.
    pub block_only: Option<&'static str>,
    pub role: Role,
    /// Checks the key's value, reporting what is wrong with it, and stores
    /// it in the rule when it is right.
    pub check: fn(&mut FileCx<'_>, &Value<'_>, &mut Rule),
}

/// What a key does in a rule, and so how the parser requires it and how
/// `policy apply` shows it.
pub(super) enum Role {
    /// Required. Errors and events call the rule by it, and two policies'
    /// rules are paired by it.
    Name,
    /// Optional and single-valued; a summary shows it beside the rule's
    /// kind.
    Setting { shown: fn(&Rule) -> String },
    /// A list of what the rule matches; a rule needs at least one target.
    /// A summary counts its entries, a change lists those added and
    /// removed in its `group`.
    Target {
        /// How many entries the rule has; cheaper than `entries`.
        count: fn(&Rule) -> usize,
        entries: fn(&Rule) -> Vec<String>,
        one: &'static str,
        many: &'static str,
        group: &'static ChangeGroup,
    },
    /// Narrows what the target `of` matches, so a rule that has it needs
    /// that target. `None` for every value.
    Qualifier {
        of: &'static str,
        shown: fn(&Rule) -> Option<Vec<String>>,
    },
    /// Turns something the target `of` does on or off, so a rule that has
    /// it needs that target. A summary shows it when it is off.
    Switch {
        of: &'static str,
        on: fn(&Rule) -> bool,
    },
}

impl Role {
    /// The target a qualifier or switch needs.
    pub(super) fn needs(&self) -> Option<&'static str> {
        match *self {
            Role::Qualifier { of, .. } | Role::Switch { of, .. } => Some(of),
            Role::Name | Role::Setting { .. } | Role::Target { .. } => None,
        }
    }
}

/// Target keys whose entries a change lists together; the same `name` is
/// the same group.
pub(super) struct ChangeGroup {
    /// Names the change's `NAME_added` and `NAME_removed` lists.
    pub name: &'static str,
    /// As counted in a change's line: `+2 CIDRs`.
    pub counted: &'static str,
}

const CIDRS: ChangeGroup = ChangeGroup {
    name: "cidrs",
    counted: "CIDRs",
};
const DOMAINS: ChangeGroup = ChangeGroup {
    name: "domains",
    counted: "domains",
};
const EXECS: ChangeGroup = ChangeGroup {
    name: "exec",
    counted: "exec",
};

/// Why an allow rule may not have an exec key other than `exec_paths`.
const ALLOW_EXEC_PATHS_ONLY: &str = "cannot be allowed; allow specific `exec_paths` instead";

/// Why an allow rule may not have `learn_addresses`.
const ALLOW_LEARNS_NOTHING: &str = "is not allowed on allow rules: allowed names list no addresses";

/// Every rule key, in the order errors and the README list them.
pub(super) const RULE_KEYS: &[RuleKey] = &[
    RuleKey {
        key: "name",
        block_only: None,
        role: Role::Name,
        check: |cx, value, rule| {
            if let Some(name) = check_name(cx, value) {
                rule.name = name;
            }
        },
    },
    RuleKey {
        key: "mode",
        block_only: Some("is not allowed on allow rules; a matching allow rule always wins"),
        role: Role::Setting {
            shown: |rule| rule.mode.to_string(),
        },
        check: |cx, value, rule| {
            if let Some(mode) = check_mode(cx, value) {
                rule.mode = mode;
            }
        },
    },
    RuleKey {
        key: "cidrs",
        block_only: None,
        role: Role::Target {
            count: |rule| rule.cidrs.len(),
            entries: |rule| listed(&rule.cidrs),
            one: "CIDR",
            many: "CIDRs",
            group: &CIDRS,
        },
        check: |cx, value, rule| {
            if let Some(cidrs) = check_cidrs(cx, value) {
                rule.cidrs = cidrs;
            }
        },
    },
    RuleKey {
        key: "domains",
        block_only: None,
        role: Role::Target {
            count: |rule| rule.domains.len(),
            entries: |rule| listed(&rule.domains),
            one: "domain",
            many: "domains",
            group: &DOMAINS,
        },
        check: |cx, value, rule| {
            if let Some(domains) = check_domains(cx, value) {
                rule.domains = domains;
            }
        },
    },
    RuleKey {
        key: "ports",
        block_only: None,
        role: Role::Qualifier {
            of: "cidrs",
            shown: |rule| shown(rule.ports.as_deref()),
        },
        check: |cx, value, rule| rule.ports = check_ports(cx, value),
    },
    RuleKey {
        key: "protocols",
        block_only: None,
        role: Role::Qualifier {
            of: "cidrs",
            shown: |rule| rule.protocols.map(|set| set.names()),
        },
        check: |cx, value, rule| rule.protocols = check_protocols(cx, value),
    },
    RuleKey {
        key: "learn_addresses",
        block_only: Some(ALLOW_LEARNS_NOTHING),
        role: Role::Switch {
            of: "domains",
            on: |rule| rule.domain_switches.learn_addresses,
        },
        check: |cx, value, rule| {
            if let Some(on) = check_switch(cx, "learn_addresses", value) {
                rule.domain_switches.learn_addresses = on;
            }
        },
    },
    RuleKey {
        key: "sni",
        block_only: Some("is not allowed on allow rules: an allowed name is never refused"),
        role: Role::Switch {
            of: "domains",
            on: |rule| rule.domain_switches.sni,
        },
        check: |cx, value, rule| {
            if let Some(on) = check_switch(cx, "sni", value) {
                rule.domain_switches.sni = on;
            }
        },
    },
    RuleKey {
        key: "exec_paths",
        block_only: None,
        role: Role::Target {
            count: |rule| rule.exec_paths.len(),
            entries: |rule| listed(rule.exec_paths.iter().map(|path| format!("path {path}"))),
            one: "exec path",
            many: "exec paths",
            group: &EXECS,
        },
        check: |cx, value, rule| {
            if let Some(paths) = check_exec_paths(cx, value) {
                rule.exec_paths = paths;
            }
        },
    },
    RuleKey {
        key: "exec_names",
        block_only: Some(ALLOW_EXEC_PATHS_ONLY),
        role: Role::Target {
            count: |rule| rule.exec_names.len(),
            entries: |rule| listed(rule.exec_names.iter().map(|name| format!("name {name}"))),
            one: "exec name",
            many: "exec names",
            group: &EXECS,
        },
        check: |cx, value, rule| {
            if let Some(names) = check_exec_names(cx, value) {
                rule.exec_names = names;
            }
        },
    },
    RuleKey {
        key: "exec_sha256",
        block_only: Some(ALLOW_EXEC_PATHS_ONLY),
        role: Role::Target {
            count: |rule| rule.exec_sha256.len(),
            entries: |rule| listed(rule.exec_sha256.iter().map(|hash| format!("sha256 {hash}"))),
            one: "exec hash",
            many: "exec hashes",
            group: &EXECS,
        },
        check: |cx, value, rule| {
            if let Some(hashes) = check_exec_sha256(cx, value) {
                rule.exec_sha256 = hashes;
            }
        },
    },
];

impl RuleKey {
    pub(super) fn allowed_on(&self, kind: RuleKind) -> bool {
        kind == RuleKind::Block || self.block_only.is_none()
    }
}

/// The keys a rule of `kind` may have, for error messages.
pub(super) fn keys_of(kind: RuleKind) -> impl Iterator<Item = &'static RuleKey> {
    RULE_KEYS.iter().filter(move |key| key.allowed_on(kind))
}

/// A target's entries as a change lists them: sorted, each once.
fn listed<T: Ord + ToString>(items: impl IntoIterator<Item = T>) -> Vec<String> {
    let sorted: BTreeSet<T> = items.into_iter().collect();
    sorted.iter().map(ToString::to_string).collect()
}

fn shown<T: ToString>(items: Option<&[T]>) -> Option<Vec<String>> {
    items.map(|items| items.iter().map(ToString::to_string).collect())
}
