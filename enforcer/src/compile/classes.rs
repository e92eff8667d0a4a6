//! Classes: one per distinct set of rules covering some address. A class
//! carries its whole decision precomputed, so the kernel never weighs
//! rules against each other.
//!
//! Precedence, for the rules that match an (address, protocol, port):
//! any allow wins; otherwise an enforcing block refuses; otherwise an audit
//! block reports. Among rules of the same standing the first in policy
//! order names the verdict.

use std::collections::HashMap;

use enforcer_common::{
    decision::{Action, Decision},
    image::EMPTY_CLASS,
    proto::{self, port_key},
};

use crate::policy::{Mode, Rule, RuleKind};

/// A class's decision: the same for every protocol and port, or a table of
/// `(first key, decision)` sorted by key, the first at key 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ClassDecision {
    Uniform(Decision),
    ByPort(Vec<(u32, Decision)>),
}

pub(super) struct ClassTable<'a> {
    rules: &'a [Rule],
    by_rules: HashMap<Vec<u32>, u32>,
    decisions: Vec<ClassDecision>,
}

impl<'a> ClassTable<'a> {
    pub(super) fn new(rules: &'a [Rule]) -> Self {
        let mut table = ClassTable {
            rules,
            by_rules: HashMap::new(),
            decisions: Vec::new(),
        };
        let empty = table.intern(&[]);
        debug_assert_eq!(empty, EMPTY_CLASS);
        table
    }

    /// The class of a sorted set of rule indices.
    pub(super) fn intern(&mut self, rules: &[u32]) -> u32 {
        if let Some(&class) = self.by_rules.get(rules) {
            return class;
        }
        let class = self.decisions.len() as u32;
        self.decisions.push(decide(self.rules, rules));
        self.by_rules.insert(rules.to_vec(), class);
        class
    }

    /// Decisions indexed by class.
    pub(super) fn finish(self) -> Vec<ClassDecision> {
        self.decisions
    }
}

fn decide(rules: &[Rule], set: &[u32]) -> ClassDecision {
    let unqualified = set.iter().all(|&index| {
        let rule = &rules[index as usize];
        rule.ports.is_none() && rule.protocols.is_none()
    });
    if unqualified {
        return ClassDecision::Uniform(precedence(rules, set.iter().copied()));
    }

    // The same sweep as for addresses, over the (protocol, port) key space.
    let mut edges: Vec<(u32, i32, u32)> = Vec::new();
    for &index in set {
        let rule = &rules[index as usize];
        for class in protocol_classes(rule) {
            for (first, last) in port_spans(rule) {
                edges.push((port_key(class, first), 1, index));
                edges.push((port_key(class, last) + 1, -1, index));
            }
        }
    }
    edges.sort_unstable();

    let mut table = vec![(0u32, Decision::NONE)];
    let mut covering: Vec<u32> = Vec::new();
    let mut position = 0;
    while position < edges.len() {
        let key = edges[position].0;
        while position < edges.len() && edges[position].0 == key {
            let (_, delta, rule) = edges[position];
            if delta > 0 {
                covering.push(rule);
            } else if let Some(at) = covering.iter().position(|&r| r == rule) {
                covering.swap_remove(at);
            }
            position += 1;
        }
        let decision = precedence(rules, covering.iter().copied());
        let last = table.last_mut().expect("starts with key 0");
        if last.0 == key {
            last.1 = decision;
        } else if last.1 != decision {
            table.push((key, decision));
        }
    }
    table.dedup_by(|next, previous| next.1 == previous.1);
    // A key past the last protocol class is never looked up.
    table.retain(|&(key, _)| key < port_key(proto::CLASSES, 0));
    match table.as_slice() {
        [(_, decision)] => ClassDecision::Uniform(*decision),
        _ => ClassDecision::ByPort(table),
    }
}

pub(super) fn precedence(rules: &[Rule], matching: impl Iterator<Item = u32>) -> Decision {
    // Indices come unordered from the port sweep, so keep the lowest of each.
    let (mut allow, mut block, mut audit) = (None, None, None);
    for index in matching {
        let rule = &rules[index as usize];
        let slot = match (rule.kind, rule.mode) {
            (RuleKind::Allow, _) => &mut allow,
            (RuleKind::Block, Mode::Enforce) => &mut block,
            (RuleKind::Block, Mode::Audit) => &mut audit,
        };
        *slot = Some(slot.map_or(index, |lowest: u32| lowest.min(index)));
    }
    match (allow, block, audit) {
        (Some(rule), _, _) => Decision::new(Action::Allow, rule),
        (None, Some(rule), _) => Decision::new(Action::Block, rule),
        (None, None, Some(rule)) => Decision::new(Action::Audit, rule),
        (None, None, None) => Decision::NONE,
    }
}

fn protocol_classes(rule: &Rule) -> Vec<u32> {
    match rule.protocols {
        None => vec![proto::TCP, proto::UDP, proto::OTHER],
        Some(set) => {
            let mut classes = Vec::new();
            if set.tcp {
                classes.push(proto::TCP);
            }
            if set.udp {
                classes.push(proto::UDP);
            }
            classes
        }
    }
}

fn port_spans(rule: &Rule) -> Vec<(u16, u16)> {
    match &rule.ports {
        None => vec![(0, u16::MAX)],
        Some(ranges) => ranges
            .iter()
            .map(|range| (range.first, range.last))
            .collect(),
    }
}
