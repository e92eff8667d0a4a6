//! What changes between two policies, rule by rule, for `policy apply`.

use std::{collections::BTreeSet, fmt};

use serde::{Deserialize, Serialize};

use super::{Cidr, Policy, Rule};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDiff {
    pub added: Vec<RuleSummary>,
    pub removed: Vec<RuleSummary>,
    pub changed: Vec<RuleChange>,
    pub unchanged: usize,
}

/// A rule in a line: what it does and how much it lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSummary {
    pub name: String,
    pub kind: String,
    pub mode: String,
    pub cidrs: usize,
    pub ports: Option<Vec<String>>,
    pub protocols: Option<Vec<String>>,
}

impl RuleSummary {
    pub fn of(rule: &Rule) -> Self {
        Self {
            name: rule.name.clone(),
            kind: rule.kind.to_string(),
            mode: rule.mode.to_string(),
            cidrs: rule.cidrs.len(),
            ports: rule
                .ports
                .as_ref()
                .map(|ports| ports.iter().map(ToString::to_string).collect()),
            protocols: rule.protocols.map(|set| {
                [("tcp", set.tcp), ("udp", set.udp)]
                    .into_iter()
                    .filter(|&(_, on)| on)
                    .map(|(name, _)| name.to_string())
                    .collect()
            }),
        }
    }
}

impl fmt::Display for RuleSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list =
            |items: &Option<Vec<String>>| items.as_ref().map_or("all".to_string(), |v| v.join(","));
        write!(
            f,
            "{} ({} {}, {} CIDR{}, ports {}, protocols {})",
            self.name,
            self.kind,
            self.mode,
            self.cidrs,
            if self.cidrs == 1 { "" } else { "s" },
            list(&self.ports),
            list(&self.protocols)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleChange {
    pub name: String,
    pub cidrs_added: Vec<String>,
    pub cidrs_removed: Vec<String>,
    /// Other keys that changed, as `key: old -> new`.
    pub settings: Vec<String>,
}

impl PolicyDiff {
    pub fn between(old: &Policy, new: &Policy) -> Self {
        let mut diff = PolicyDiff::default();
        for rule in &new.rules {
            match old.rules.iter().find(|r| r.name == rule.name) {
                None => diff.added.push(RuleSummary::of(rule)),
                Some(before) if before == rule || same_but_origin(before, rule) => {
                    diff.unchanged += 1
                }
                Some(before) => diff.changed.push(change(before, rule)),
            }
        }
        for rule in &old.rules {
            if !new.rules.iter().any(|r| r.name == rule.name) {
                diff.removed.push(RuleSummary::of(rule));
            }
        }
        diff
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

fn same_but_origin(a: &Rule, b: &Rule) -> bool {
    Rule {
        origin: b.origin.clone(),
        ..a.clone()
    } == *b
}

fn change(before: &Rule, after: &Rule) -> RuleChange {
    let old: BTreeSet<&Cidr> = before.cidrs.iter().collect();
    let new: BTreeSet<&Cidr> = after.cidrs.iter().collect();
    let (was, is) = (RuleSummary::of(before), RuleSummary::of(after));
    let mut settings = Vec::new();
    let mut note = |key: &str, old: String, new: String| {
        if old != new {
            settings.push(format!("{key}: {old} -> {new}"));
        }
    };
    note("kind", was.kind, is.kind);
    note("mode", was.mode, is.mode);
    note(
        "ports",
        format!("{:?}", was.ports),
        format!("{:?}", is.ports),
    );
    note(
        "protocols",
        format!("{:?}", was.protocols),
        format!("{:?}", is.protocols),
    );
    RuleChange {
        name: after.name.clone(),
        cidrs_added: new.difference(&old).map(ToString::to_string).collect(),
        cidrs_removed: old.difference(&new).map(ToString::to_string).collect(),
        settings,
    }
}

impl fmt::Display for PolicyDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no rule changed ({} unchanged)", self.unchanged);
        }
        for rule in &self.added {
            writeln!(f, "+ {rule}")?;
        }
        for rule in &self.removed {
            writeln!(f, "- {rule}")?;
        }
        for change in &self.changed {
            writeln!(
                f,
                "~ {}: +{} CIDRs, -{} CIDRs{}",
                change.name,
                change.cidrs_added.len(),
                change.cidrs_removed.len(),
                change
                    .settings
                    .iter()
                    .map(|s| format!(", {s}"))
                    .collect::<String>()
            )?;
            const SHOWN: usize = 10;
            for cidr in change.cidrs_added.iter().take(SHOWN) {
                writeln!(f, "    + {cidr}")?;
            }
            for cidr in change.cidrs_removed.iter().take(SHOWN) {
                writeln!(f, "    - {cidr}")?;
            }
            let hidden = change.cidrs_added.len().saturating_sub(SHOWN)
                + change.cidrs_removed.len().saturating_sub(SHOWN);
            if hidden > 0 {
                writeln!(f, "    ({hidden} more)")?;
            }
        }
        writeln!(
            f,
            "{} rule{} unchanged",
            self.unchanged,
            if self.unchanged == 1 { "" } else { "s" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Source, parse};

    fn policy(text: &str) -> Policy {
        parse(&[Source {
            name: "p.toml".into(),
            text: text.into(),
        }])
        .unwrap()
    }

    #[test]
    fn reports_added_removed_changed_and_unchanged_rules() {
        let old = policy(
            r#"
version = 1
[[block]]
name = "telegram"
cidrs = ["149.154.160.0/20", "91.108.4.0/22"]
[[block]]
name = "skype"
cidrs = ["52.112.0.0/14"]
[[allow]]
name = "relay"
cidrs = ["149.154.167.99/32"]
"#,
        );
        let new = policy(
            r#"
version = 1
[[allow]]
name = "relay"
cidrs = ["149.154.167.99/32"]
[[block]]
name = "telegram"
ports = ["443"]
cidrs = ["149.154.160.0/20", "91.108.8.0/22"]
[[block]]
name = "zoom"
cidrs = ["3.7.35.0/25"]
"#,
        );
        let diff = PolicyDiff::between(&old, &new);
        assert_eq!(
            diff.added
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            ["zoom"]
        );
        assert_eq!(
            diff.removed
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            ["skype"]
        );
        assert_eq!(diff.unchanged, 1, "moving a rule changes nothing");
        let [telegram] = diff.changed.as_slice() else {
            panic!("{diff:?}")
        };
        assert_eq!(telegram.cidrs_added, ["91.108.8.0/22"]);
        assert_eq!(telegram.cidrs_removed, ["91.108.4.0/22"]);
        assert_eq!(telegram.settings, [r#"ports: None -> Some(["443"])"#]);
        let text = diff.to_string();
        assert!(text.contains("+ zoom (block enforce, 1 CIDR"), "{text}");
        assert!(text.contains("~ telegram: +1 CIDRs, -1 CIDRs"), "{text}");
    }

    #[test]
    fn the_same_policy_changes_nothing() {
        let text = "version = 1\n[[block]]\nname = \"a\"\ncidrs = [\"10.0.0.0/8\"]\n";
        let diff = PolicyDiff::between(&policy(text), &policy(text));
        assert!(diff.is_empty());
        assert_eq!(diff.to_string(), "no rule changed (1 unchanged)\n");
    }
}
