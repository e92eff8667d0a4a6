//! What changes between two policies, rule by rule, for `policy apply`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::model::{Policy, Rule};
use super::rule_keys::{ChangeGroup, RULE_KEYS, Role};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDiff {
    pub added: Vec<RuleSummary>,
    pub removed: Vec<RuleSummary>,
    pub changed: Vec<RuleChange>,
    pub unchanged: usize,
    /// Options whose value changed, as `key: old -> new`, in the order of
    /// [`Options::keys`](super::options::Options::keys).
    #[serde(default)]
    pub options_changed: Vec<String>,
}

/// A rule in a line: what it does and how much it lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSummary {
    pub name: String,
    pub kind: String,
    /// Every rule key but `name`, as [`KeySummary`]. A key that a daemon
    /// predates is missing, and reads as nothing listed.
    #[serde(flatten)]
    pub keys: BTreeMap<String, KeySummary>,
}

/// One key of a [`RuleSummary`], as its role in the table of rule keys
/// shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeySummary {
    /// A target's number of entries.
    Count(usize),
    /// A qualifier's values; `None` for every value.
    Values(Option<Vec<String>>),
    /// A setting's value.
    Setting(String),
    /// A switch the rule turns off (`false`); one that is on is left out.
    Switch(bool),
}

impl RuleSummary {
    pub fn of(rule: &Rule) -> Self {
        let keys = RULE_KEYS.iter().filter_map(|key| {
            let summary = match key.role {
                Role::Name => return None,
                Role::Setting { shown } => KeySummary::Setting(shown(rule)),
                Role::Target { count, .. } => KeySummary::Count(count(rule)),
                Role::Qualifier { shown, .. } => KeySummary::Values(shown(rule)),
                // Shown only when off, so summaries of rules that turn
                // nothing off keep their fields.
                Role::Switch { on, .. } if on(rule) => return None,
                Role::Switch { .. } => KeySummary::Switch(false),
            };
            Some((key.key.to_owned(), summary))
        });
        Self {
            name: rule.name.clone(),
            kind: rule.kind.to_string(),
            keys: keys.collect(),
        }
    }

    /// How many entries the target `key` has.
    pub fn count(&self, key: &str) -> usize {
        match self.keys.get(key) {
            Some(&KeySummary::Count(count)) => count,
            _ => 0,
        }
    }

    fn values(&self, key: &str) -> Option<&[String]> {
        match self.keys.get(key) {
            Some(KeySummary::Values(values)) => values.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Display for RuleSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut header = vec![self.kind.clone()];
        let mut parts = Vec::new();
        let targets = RULE_KEYS
            .iter()
            .filter(|key| matches!(key.role, Role::Target { .. }));
        // A rule that lists nothing still says what it is about: its first
        // target, with that target's qualifiers.
        let listless = targets.clone().all(|key| self.count(key.key) == 0);
        let first_target = targets.clone().next().map(|key| key.key);
        for key in RULE_KEYS {
            match key.role {
                Role::Setting { .. } => {
                    if let Some(KeySummary::Setting(value)) = self.keys.get(key.key) {
                        header.push(value.clone());
                    }
                }
                Role::Target { one, many, .. } => {
                    let count = self.count(key.key);
                    if count == 0 && !(listless && first_target == Some(key.key)) {
                        continue;
                    }
                    parts.push(format!("{count} {}", if count == 1 { one } else { many }));
                    // Qualifiers only narrow their target, so they show
                    // beside it.
                    for qualifier in RULE_KEYS {
                        match qualifier.role {
                            Role::Qualifier { of, .. } if of == key.key => {
                                let values = self
                                    .values(qualifier.key)
                                    .map_or("all".to_owned(), |values| values.join(","));
                                parts.push(format!("{} {values}", qualifier.key));
                            }
                            // A switch that a daemon predates reads as on.
                            Role::Switch { of, .. }
                                if of == key.key
                                    && self.keys.get(qualifier.key)
                                        == Some(&KeySummary::Switch(false)) =>
                            {
                                parts.push(format!("{} off", qualifier.key));
                            }
                            _ => {}
                        }
                    }
                }
                Role::Name | Role::Qualifier { .. } | Role::Switch { .. } => {}
            }
        }
        write!(
            f,
            "{} ({}, {})",
            self.name,
            header.join(" "),
            parts.join(", ")
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleChange {
    pub name: String,
    /// For each change group of target keys, its entries added, as
    /// `GROUP_added`, and removed, as `GROUP_removed`: the keys in
    /// the table's order, each key's entries sorted. A group that a
    /// daemon predates is missing, and reads as empty.
    #[serde(flatten)]
    pub entries: BTreeMap<String, Vec<String>>,
    /// Other keys that changed, as `key: old -> new`.
    pub settings: Vec<String>,
}

impl RuleChange {
    /// The entries of `group` added (`"added"`) or removed (`"removed"`).
    pub fn entries(&self, group: &str, how: &str) -> &[String] {
        self.entries
            .get(&format!("{group}_{how}"))
            .map_or(&[], Vec::as_slice)
    }
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

/// The change groups of [`RULE_KEYS`], in order, each once.
fn change_groups() -> Vec<&'static ChangeGroup> {
    let mut groups: Vec<&'static ChangeGroup> = Vec::new();
    for key in RULE_KEYS {
        if let Role::Target { group, .. } = key.role
            && !groups.iter().any(|known| known.name == group.name)
        {
            groups.push(group);
        }
    }
    groups
}

/// The entries of a rule's targets in `group`, in the order a change
/// lists them.
fn group_entries(rule: &Rule, group: &ChangeGroup) -> Vec<String> {
    RULE_KEYS
        .iter()
        .flat_map(|key| match key.role {
            Role::Target {
                entries, group: of, ..
            } if of.name == group.name => entries(rule),
            _ => Vec::new(),
        })
        .collect()
}

fn change(before: &Rule, after: &Rule) -> RuleChange {
    let mut entries = BTreeMap::new();
    for group in change_groups() {
        let (old, new) = (group_entries(before, group), group_entries(after, group));
        // Policies list up to millions of CIDRs, so no pairwise comparison.
        let missing = |from: &[String], of: &[String]| -> Vec<String> {
            let of: HashSet<&String> = of.iter().collect();
            from.iter()
                .filter(|entry| !of.contains(entry))
                .cloned()
                .collect()
        };
        entries.insert(format!("{}_added", group.name), missing(&new, &old));
        entries.insert(format!("{}_removed", group.name), missing(&old, &new));
    }
    let mut settings = Vec::new();
    let mut note = |key: &str, old: String, new: String| {
        if old != new {
            settings.push(format!("{key}: {old} -> {new}"));
        }
    };
    note("kind", before.kind.to_string(), after.kind.to_string());
    for key in RULE_KEYS {
        match key.role {
            Role::Setting { shown } => note(key.key, shown(before), shown(after)),
            Role::Qualifier { shown, .. } => note(
                key.key,
                format!("{:?}", shown(before)),
                format!("{:?}", shown(after)),
            ),
            Role::Switch { on, .. } => note(key.key, on(before).to_string(), on(after).to_string()),
            Role::Name | Role::Target { .. } => {}
        }
    }
    RuleChange {
        name: after.name.clone(),
        entries,
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
        let groups = change_groups();
        for change in &self.changed {
            // The first group is always counted, so that a change of
            // settings only still reads as a change of that rule's lists.
            let counts = groups.iter().enumerate().filter_map(|(number, group)| {
                let added = change.entries(group.name, "added").len();
                let removed = change.entries(group.name, "removed").len();
                let what = group.counted;
                (number == 0 || added + removed > 0)
                    .then(|| format!("+{added} {what}, -{removed} {what}"))
            });
            let line = counts.chain(change.settings.iter().cloned());
            writeln!(
                f,
                "~ {}: {}",
                change.name,
                line.collect::<Vec<_>>().join(", ")
            )?;
            const SHOWN: usize = 10;
            let mut hidden = 0;
            for group in &groups {
                for (sign, how) in [('+', "added"), ('-', "removed")] {
                    let entries = change.entries(group.name, how);
                    for entry in entries.iter().take(SHOWN) {
                        writeln!(f, "    {sign} {entry}")?;
                    }
                    hidden += entries.len().saturating_sub(SHOWN);
                }
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
mod tests;
