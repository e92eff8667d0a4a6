//! Hit counts per rule (see `enforcer_common::hits`). The programs count
//! by generation, rule index and action; here each key's count is summed
//! over the CPUs and put under its rule's name, so that a rule keeps its
//! count across applies, for as long as the daemon runs.
//!
//! Once a generation is replaced, its counts are folded into totals by
//! name and its keys deleted, which keeps room in the map for the live
//! one. That is safe only then: the switch returns once no program still
//! runs on the image it replaced (see `crate::kernel::maps`), so no count
//! can arrive on a deleted key.

use std::{collections::BTreeMap, fmt, time::SystemTime};

use aya::maps::{Map, MapData, MapError, PerCpuHashMap};
use enforcer_common::{decision::Action, hits::RuleHitKey, names::MAP_RULE_HITS};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum HitsError {
    #[error("the rule hit map {MAP_RULE_HITS}: {0}")]
    Map(#[source] MapError),
}

/// A key and its hits on every CPU together.
type Hits = (RuleHitKey, u64);

/// A rule's hits, by verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HitCounts {
    /// Let through by an allow exception.
    pub allowed: u64,
    /// Refused by an enforcing block rule.
    pub blocked: u64,
    /// Let through and reported by an audit block rule.
    pub audited: u64,
}

impl HitCounts {
    fn add(&mut self, action: u32, hits: u64) {
        let total = match action {
            a if a == Action::Allow as u32 => &mut self.allowed,
            a if a == Action::Block as u32 => &mut self.blocked,
            a if a == Action::Audit as u32 => &mut self.audited,
            _ => return,
        };
        *total = total.saturating_add(hits);
    }
}

/// One rule name's hits, over every generation that had a rule of that
/// name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleHits {
    pub rule: String,
    /// Whether the policy in force has a rule of this name.
    pub in_policy: bool,
    #[serde(flatten)]
    pub hits: HitCounts,
}

/// What `status` shows of the hits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleHitsReport {
    /// When the daemon started (RFC 3339): the counts begin there, as the
    /// totals of earlier generations lived in the daemon that kept them.
    pub since: String,
    /// The policy's rules in its order, every one even with no hits,
    /// then the other names that were hit, in name order.
    pub rules: Vec<RuleHits>,
    /// Hits that found the map full, of no rule in particular (the
    /// counter `hits_uncounted`).
    pub uncounted: u64,
}

/// The map, and the totals of the generations folded out of it.
pub struct RuleHitTotals {
    map: PerCpuHashMap<MapData, RuleHitKey, u64>,
    folded: BTreeMap<String, HitCounts>,
    since: SystemTime,
}

impl RuleHitTotals {
    pub fn new(map: Map) -> Result<Self, HitsError> {
        Ok(Self {
            map: PerCpuHashMap::try_from(map).map_err(HitsError::Map)?,
            folded: BTreeMap::new(),
            since: SystemTime::now(),
        })
    }

    /// Folds the counts of every generation before `live` into the totals,
    /// under the names `name` gives their rules, and deletes their keys.
    /// Call only once `live` is in force. A key that cannot be deleted
    /// stays in the map, where [`Self::report`] still counts it, and the
    /// next fold tries again; the first such error is returned.
    pub fn fold_replaced(
        &mut self,
        live: u64,
        name: impl Fn(&RuleHitKey) -> String,
    ) -> Result<(), HitsError> {
        let mut result = Ok(());
        for (key, hits) in self.read()? {
            if key.generation >= live {
                continue;
            }
            match self.map.remove(&key) {
                Ok(()) => fold(&mut self.folded, &[(key, hits)], &name),
                Err(error) => {
                    if result.is_ok() {
                        result = Err(HitsError::Map(error));
                    }
                }
            }
        }
        result
    }

    /// The totals with the counts still in the map, for the policy in
    /// force whose rules are `live_rules`.
    pub fn report(
        &self,
        live_rules: &[String],
        name: impl Fn(&RuleHitKey) -> String,
        uncounted: u64,
    ) -> Result<RuleHitsReport, HitsError> {
        Ok(RuleHitsReport {
            since: humantime::format_rfc3339_seconds(self.since).to_string(),
            rules: rows(&self.folded, &self.read()?, live_rules, name),
            uncounted,
        })
    }

    /// Every key the programs have counted under.
    fn read(&self) -> Result<Vec<Hits>, HitsError> {
        let mut hits = Vec::new();
        for key in self.map.keys() {
            let key = key.map_err(HitsError::Map)?;
            match self.map.get(&key, 0) {
                Ok(values) => {
                    let sum = values
                        .iter()
                        .fold(0u64, |sum, &cpu| sum.saturating_add(cpu));
                    hits.push((key, sum));
                }
                // Deleted since it was listed.
                Err(MapError::KeyNotFound) => {}
                Err(error) => return Err(HitsError::Map(error)),
            }
        }
        Ok(hits)
    }
}

/// Adds `hits` to `totals`, each under its rule's name.
fn fold(
    totals: &mut BTreeMap<String, HitCounts>,
    hits: &[Hits],
    name: impl Fn(&RuleHitKey) -> String,
) {
    for (key, count) in hits {
        totals.entry(name(key)).or_default().add(key.action, *count);
    }
}

/// The rows of [`RuleHitsReport::rules`]: `folded` and `current` summed
/// by name.
fn rows(
    folded: &BTreeMap<String, HitCounts>,
    current: &[Hits],
    live_rules: &[String],
    name: impl Fn(&RuleHitKey) -> String,
) -> Vec<RuleHits> {
    let mut totals = folded.clone();
    fold(&mut totals, current, name);
    let mut rows: Vec<RuleHits> = live_rules
        .iter()
        .map(|rule| RuleHits {
            rule: rule.clone(),
            in_policy: true,
            hits: totals.remove(rule).unwrap_or_default(),
        })
        .collect();
    rows.extend(totals.into_iter().map(|(rule, hits)| RuleHits {
        rule,
        in_policy: false,
        hits,
    }));
    rows
}

impl fmt::Display for RuleHitsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "rule hits since the daemon started ({}), by rule name over every generation:",
            self.since
        )?;
        let labels: Vec<String> = self
            .rules
            .iter()
            .map(|row| {
                if row.in_policy {
                    row.rule.clone()
                } else {
                    format!("{} (not in the policy now)", row.rule)
                }
            })
            .collect();
        let width = labels.iter().map(String::len).max().unwrap_or(0).max(4);
        writeln!(
            f,
            "  {:width$}  {:>9}  {:>9}  {:>9}",
            "rule", "allowed", "blocked", "audited"
        )?;
        for (label, row) in labels.iter().zip(&self.rules) {
            let HitCounts {
                allowed,
                blocked,
                audited,
            } = row.hits;
            writeln!(
                f,
                "  {label:width$}  {allowed:>9}  {blocked:>9}  {audited:>9}"
            )?;
        }
        if self.uncounted != 0 {
            writeln!(
                f,
                "  and {} hits of no rule in particular: the hit map was full",
                self.uncounted
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(generation: u64, rule: u32, action: Action) -> RuleHitKey {
        RuleHitKey::new(generation, rule, action)
    }

    /// Names as the rule tables of two generations give them: generation
    /// 1 had `a`, `b`; generation 2 has `b`, `c` (so index 0 is `a` in one
    /// and `b` in the other).
    fn name(key: &RuleHitKey) -> String {
        let table: &[&str] = match key.generation {
            1 => &["a", "b"],
            2 => &["b", "c"],
            _ => &[],
        };
        table
            .get(key.rule as usize)
            .map_or_else(|| format!("#{}", key.rule), |name| name.to_string())
    }

    fn counts(allowed: u64, blocked: u64, audited: u64) -> HitCounts {
        HitCounts {
            allowed,
            blocked,
            audited,
        }
    }

    #[test]
    fn a_rule_keeps_its_hits_across_generations_by_name_not_by_index() {
        let mut folded = BTreeMap::new();
        fold(
            &mut folded,
            &[
                (key(1, 0, Action::Block), 3),
                (key(1, 1, Action::Allow), 5),
                (key(1, 1, Action::Audit), 1),
            ],
            name,
        );
        let current = [(key(2, 0, Action::Allow), 2), (key(2, 1, Action::Block), 7)];
        let live = ["b".to_string(), "c".to_string(), "d".to_string()];
        let rows = rows(&folded, &current, &live, name);
        let row = |rule: &str, in_policy: bool, hits: HitCounts| RuleHits {
            rule: rule.into(),
            in_policy,
            hits,
        };
        assert_eq!(
            rows,
            [
                row("b", true, counts(7, 0, 1)),
                row("c", true, counts(0, 7, 0)),
                row("d", true, counts(0, 0, 0)),
                row("a", false, counts(0, 3, 0)),
            ]
        );
    }

    #[test]
    fn folding_adds_to_what_was_folded_before_and_ignores_no_action() {
        let mut folded = BTreeMap::new();
        fold(&mut folded, &[(key(1, 0, Action::Block), 3)], name);
        fold(
            &mut folded,
            &[
                (key(2, 0, Action::Block), 4),
                (key(2, 0, Action::None), 100),
                (key(2, 1, Action::Block), u64::MAX),
                (key(2, 1, Action::Block), 1),
            ],
            name,
        );
        assert_eq!(folded["a"], counts(0, 3, 0));
        assert_eq!(folded["b"], counts(0, 4, 0));
        assert_eq!(folded["c"], counts(0, u64::MAX, 0), "saturates");
    }

    #[test]
    fn the_report_shows_counts_flat_in_json_and_as_a_table() {
        let report = RuleHitsReport {
            since: "2026-12-08T01:02:03Z".into(),
            rules: vec![
                RuleHits {
                    rule: "telegram".into(),
                    in_policy: true,
                    hits: counts(0, 12, 0),
                },
                RuleHits {
                    rule: "old".into(),
                    in_policy: false,
                    hits: counts(1, 0, 2),
                },
            ],
            uncounted: 0,
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["rules"][0],
            serde_json::json!({"rule": "telegram", "in_policy": true, "allowed": 0, "blocked": 12, "audited": 0})
        );
        let back: RuleHitsReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
        assert_eq!(
            report.to_string(),
            "rule hits since the daemon started (2026-12-08T01:02:03Z), by rule name over every generation:\n\
             \x20 rule                           allowed    blocked    audited\n\
             \x20 telegram                             0         12          0\n\
             \x20 old (not in the policy now)          1          0          2\n"
        );
    }
}
