//! What changes between two policies, rule by rule, for `policy apply`.

use std::{collections::BTreeSet, fmt};

use serde::{Deserialize, Serialize};

use super::{Cidr, Domain, Policy, Rule};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDiff {
    pub added: Vec<RuleSummary>,
    pub removed: Vec<RuleSummary>,
    pub changed: Vec<RuleChange>,
    pub unchanged: usize,
    /// Options whose value changed, as `key: old -> new`, in the order of
    /// [`Options::keys`](super::Options::keys).
    #[serde(default)]
    pub options_changed: Vec<String>,
}

/// A rule in a line: what it does and how much it lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSummary {
    pub name: String,
    pub kind: String,
    pub mode: String,
    pub cidrs: usize,
    /// From a daemon that predates domains: 0.
    #[serde(default)]
    pub domains: usize,
    pub ports: Option<Vec<String>>,
    pub protocols: Option<Vec<String>>,
    pub exec_paths: usize,
    pub exec_names: usize,
    pub exec_sha256: usize,
}

impl RuleSummary {
    pub fn of(rule: &Rule) -> Self {
        Self {
            name: rule.name.clone(),
            kind: rule.kind.to_string(),
            mode: rule.mode.to_string(),
            cidrs: rule.cidrs.len(),
            domains: rule.domains.len(),
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
            exec_paths: rule.exec_paths.len(),
            exec_names: rule.exec_names.len(),
            exec_sha256: rule.exec_sha256.len(),
        }
    }
}

impl fmt::Display for RuleSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list =
            |items: &Option<Vec<String>>| items.as_ref().map_or("all".to_string(), |v| v.join(","));
        let count =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let execs = [
            (self.exec_paths, "exec path", "exec paths"),
            (self.exec_names, "exec name", "exec names"),
            (self.exec_sha256, "exec hash", "exec hashes"),
        ];
        let mut parts = Vec::new();
        // Ports and protocols only qualify CIDRs, so a rule of domains or
        // executables only leaves all three out.
        if self.cidrs > 0 || (self.domains == 0 && execs.iter().all(|&(n, _, _)| n == 0)) {
            parts.push(count(self.cidrs, "CIDR", "CIDRs"));
            parts.push(format!("ports {}", list(&self.ports)));
            parts.push(format!("protocols {}", list(&self.protocols)));
        }
        if self.domains > 0 {
            parts.push(count(self.domains, "domain", "domains"));
        }
        for (n, one, many) in execs {
            if n > 0 {
                parts.push(count(n, one, many));
            }
        }
        write!(
            f,
            "{} ({} {}, {})",
            self.name,
            self.kind,
            self.mode,
            parts.join(", ")
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleChange {
    pub name: String,
    pub cidrs_added: Vec<String>,
    pub cidrs_removed: Vec<String>,
    /// Sorted. From a daemon that predates domains: empty.
    #[serde(default)]
    pub domains_added: Vec<String>,
    #[serde(default)]
    pub domains_removed: Vec<String>,
    /// Exec entries, each as `path /opt/x`, `path /opt/dir/`, `name x` or
    /// `sha256 <hex>`; paths first, then names, then hashes, each sorted.
    pub exec_added: Vec<String>,
    pub exec_removed: Vec<String>,
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
        diff.options_changed = old
            .options
            .iter()
            .zip(new.options.iter())
            .filter(|((_, was), (_, is))| was != is)
            .map(|((key, was), (_, is))| format!("{key}: {was} -> {is}"))
            .collect();
        diff
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.options_changed.is_empty()
    }
}

fn same_but_origin(a: &Rule, b: &Rule) -> bool {
    Rule {
        origin: b.origin.clone(),
        ..a.clone()
    } == *b
}

/// A rule's exec entries as `RuleChange` shows them, in its order.
fn exec_entries(rule: &Rule) -> BTreeSet<(u8, String)> {
    let paths = rule.exec_paths.iter().map(|p| (0, format!("path {p}")));
    let names = rule.exec_names.iter().map(|n| (1, format!("name {n}")));
    let hashes = rule.exec_sha256.iter().map(|h| (2, format!("sha256 {h}")));
    paths.chain(names).chain(hashes).collect()
}

fn change(before: &Rule, after: &Rule) -> RuleChange {
    let old: BTreeSet<&Cidr> = before.cidrs.iter().collect();
    let new: BTreeSet<&Cidr> = after.cidrs.iter().collect();
    let old_domains: BTreeSet<&Domain> = before.domains.iter().collect();
    let new_domains: BTreeSet<&Domain> = after.domains.iter().collect();
    let (old_execs, new_execs) = (exec_entries(before), exec_entries(after));
    let entries =
        |set: BTreeSet<&(u8, String)>| set.into_iter().map(|(_, text)| text.clone()).collect();
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
        domains_added: new_domains
            .difference(&old_domains)
            .map(ToString::to_string)
            .collect(),
        domains_removed: old_domains
            .difference(&new_domains)
            .map(ToString::to_string)
            .collect(),
        exec_added: entries(new_execs.difference(&old_execs).collect()),
        exec_removed: entries(old_execs.difference(&new_execs).collect()),
        settings,
    }
}

impl fmt::Display for PolicyDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no rule changed ({} unchanged)", self.unchanged);
        }
        for option in &self.options_changed {
            writeln!(f, "~ option {option}")?;
        }
        for rule in &self.added {
            writeln!(f, "+ {rule}")?;
        }
        for rule in &self.removed {
            writeln!(f, "- {rule}")?;
        }
        for change in &self.changed {
            let counts = |added: &[String], removed: &[String], what: &str| {
                if added.is_empty() && removed.is_empty() {
                    String::new()
                } else {
                    format!(", +{} {what}, -{} {what}", added.len(), removed.len())
                }
            };
            let domains = counts(&change.domains_added, &change.domains_removed, "domains");
            let execs = counts(&change.exec_added, &change.exec_removed, "exec");
            writeln!(
                f,
                "~ {}: +{} CIDRs, -{} CIDRs{domains}{execs}{}",
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
            let mut hidden = 0;
            for (sign, entries) in [
                ('+', &change.cidrs_added),
                ('-', &change.cidrs_removed),
                ('+', &change.domains_added),
                ('-', &change.domains_removed),
                ('+', &change.exec_added),
                ('-', &change.exec_removed),
            ] {
                for entry in entries.iter().take(SHOWN) {
                    writeln!(f, "    {sign} {entry}")?;
                }
                hidden += entries.len().saturating_sub(SHOWN);
            }
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
    fn reports_exec_changes() {
        let hash = "AB".repeat(32);
        let old = policy(&format!(
            r#"
version = 1
[[block]]
name = "telegram"
cidrs = ["149.154.160.0/20"]
exec_paths = ["/opt/Telegram/Telegram"]
exec_names = ["telegram-desktop"]
[[allow]]
name = "updater"
exec_paths = ["/opt/Telegram/updater"]
[[block]]
name = "hashes"
exec_sha256 = ["{hash}"]
"#
        ));
        let new = policy(
            r#"
version = 1
[[block]]
name = "telegram"
cidrs = ["149.154.160.0/20"]
exec_paths = ["/opt/Telegram/", "/opt/Telegram/Telegram"]
exec_sha256 = ["0000000000000000000000000000000000000000000000000000000000000000"]
[[allow]]
name = "updater"
exec_paths = ["/opt/Telegram/updater"]
[[block]]
name = "names"
exec_names = ["Telegram", "telegram-desktop"]
"#,
        );
        let diff = PolicyDiff::between(&old, &new);
        assert_eq!(diff.unchanged, 1);
        let [added] = diff.added.as_slice() else {
            panic!("{diff:?}")
        };
        assert_eq!((added.cidrs, added.exec_names), (0, 2));
        let [removed] = diff.removed.as_slice() else {
            panic!("{diff:?}")
        };
        assert_eq!((removed.exec_paths, removed.exec_sha256), (0, 1));
        let [telegram] = diff.changed.as_slice() else {
            panic!("{diff:?}")
        };
        assert!(telegram.cidrs_added.is_empty() && telegram.cidrs_removed.is_empty());
        assert_eq!(
            telegram.exec_added,
            [
                "path /opt/Telegram/",
                "sha256 0000000000000000000000000000000000000000000000000000000000000000",
            ]
        );
        assert_eq!(telegram.exec_removed, ["name telegram-desktop"]);
        assert!(telegram.settings.is_empty(), "{:?}", telegram.settings);

        let text = diff.to_string();
        assert!(
            text.contains("+ names (block enforce, 2 exec names)\n"),
            "{text}"
        );
        assert!(
            text.contains("- hashes (block enforce, 1 exec hash)\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "~ telegram: +0 CIDRs, -0 CIDRs, +2 exec, -1 exec\n    + path /opt/Telegram/\n"
            ),
            "{text}"
        );
        assert!(text.contains("    - name telegram-desktop\n"), "{text}");
    }

    #[test]
    fn reports_domain_changes() {
        let old = policy(
            r#"
version = 1
[[block]]
name = "telegram"
domains = ["telegram.org", "t.me"]
exec_names = ["telegram-desktop"]
[[allow]]
name = "mirror"
domains = ["corp-mirror.telegram.org"]
"#,
        );
        let new = policy(
            r#"
version = 1
[[block]]
name = "telegram"
domains = ["Telegram.org.", "telegram.me"]
exec_names = ["telegram-desktop"]
[[allow]]
name = "mirror"
domains = ["corp-mirror.telegram.org"]
[[block]]
name = "whatsapp"
domains = ["whatsapp.com", "whatsapp.net"]
"#,
        );
        let diff = PolicyDiff::between(&old, &new);
        assert_eq!(diff.unchanged, 1);
        let [telegram] = diff.changed.as_slice() else {
            panic!("{diff:?}")
        };
        assert_eq!(telegram.domains_added, ["telegram.me"]);
        assert_eq!(telegram.domains_removed, ["t.me"]);
        assert!(telegram.cidrs_added.is_empty() && telegram.exec_added.is_empty());
        assert!(telegram.settings.is_empty(), "{:?}", telegram.settings);
        assert_eq!(
            diff.to_string(),
            "+ whatsapp (block enforce, 2 domains)\n\
             ~ telegram: +0 CIDRs, -0 CIDRs, +1 domains, -1 domains\n    \
             + telegram.me\n    \
             - t.me\n\
             1 rule unchanged\n"
        );

        // A diff from a daemon that predates domains still reads.
        let json = r#"{"added":[{"name":"a","kind":"block","mode":"enforce","cidrs":1,
            "ports":null,"protocols":null,"exec_paths":0,"exec_names":0,"exec_sha256":0}],
            "removed":[],"changed":[{"name":"b","cidrs_added":["10.0.0.0/8"],
            "cidrs_removed":[],"exec_added":[],"exec_removed":[],"settings":[]}],
            "unchanged":0}"#;
        let old_diff: PolicyDiff = serde_json::from_str(json).unwrap();
        assert_eq!(old_diff.added[0].domains, 0);
        assert!(old_diff.changed[0].domains_added.is_empty());
    }

    #[test]
    fn summary_of_a_rule_with_networks_and_executables() {
        let policy = policy(
            r#"
version = 1
[[block]]
name = "t"
cidrs = ["10.0.0.0/8"]
ports = [443]
exec_paths = ["/opt/t/"]
"#,
        );
        assert_eq!(
            RuleSummary::of(&policy.rules[0]).to_string(),
            "t (block enforce, 1 CIDR, ports 443, protocols all, 1 exec path)"
        );
    }

    #[test]
    fn summary_of_a_rule_with_domains() {
        let policy = policy(
            r#"
version = 1
[[block]]
name = "d"
domains = ["telegram.org"]
exec_paths = ["/opt/t/"]
[[block]]
name = "n"
cidrs = ["10.0.0.0/8"]
domains = ["telegram.org", "t.me"]
"#,
        );
        assert_eq!(
            RuleSummary::of(&policy.rules[0]).to_string(),
            "d (block enforce, 1 domain, 1 exec path)"
        );
        assert_eq!(
            RuleSummary::of(&policy.rules[1]).to_string(),
            "n (block enforce, 1 CIDR, ports all, protocols all, 2 domains)"
        );
    }

    #[test]
    fn reports_option_changes() {
        let rule = "[[block]]\nname = \"a\"\ncidrs = [\"10.0.0.0/8\"]\n";
        let old = policy(&format!(
            "version = 1\n[options]\nexec_hash_strict = true\nexec_block_loader = false\n{rule}"
        ));
        let new = policy(&format!(
            "version = 1\n[options]\nexec_block_anonymous = true\nexec_block_loader = false\n{rule}"
        ));
        let diff = PolicyDiff::between(&old, &new);
        assert!(!diff.is_empty());
        assert_eq!(
            diff.options_changed,
            [
                "exec_block_anonymous: false -> true",
                "exec_hash_strict: true -> false",
            ]
        );
        assert_eq!(diff.unchanged, 1);
        assert_eq!(
            diff.to_string(),
            "~ option exec_block_anonymous: false -> true\n\
             ~ option exec_hash_strict: true -> false\n\
             1 rule unchanged\n"
        );
        assert!(PolicyDiff::between(&new, &new).options_changed.is_empty());

        // A diff from a daemon that predates options still reads.
        let json = r#"{"added":[],"removed":[],"changed":[],"unchanged":2}"#;
        let old_diff: PolicyDiff = serde_json::from_str(json).unwrap();
        assert!(old_diff.is_empty() && old_diff.options_changed.is_empty());
    }

    #[test]
    fn reports_dns_option_changes() {
        let old = policy("version = 1\n");
        let new =
            policy("version = 1\n[options]\ndns_ttl_min_seconds = 60\ndns_block_queries = false\n");
        assert_eq!(
            PolicyDiff::between(&old, &new).options_changed,
            [
                "dns_block_queries: true -> false",
                "dns_ttl_min_seconds: 300 -> 60"
            ]
        );
    }

    #[test]
    fn the_same_policy_changes_nothing() {
        let text = "version = 1\n[[block]]\nname = \"a\"\ncidrs = [\"10.0.0.0/8\"]\n";
        let diff = PolicyDiff::between(&policy(text), &policy(text));
        assert!(diff.is_empty());
        assert_eq!(diff.to_string(), "no rule changed (1 unchanged)\n");
    }
}
