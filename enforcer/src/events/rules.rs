//! Rule and domain names by generation. The kernel reports rule indices
//! and domain table slots; an event can still sit in the ring buffer after
//! the next generation is in force, so the names of a few recent
//! generations are kept.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
};

/// How many generations' names are kept for events still in flight.
const KEPT_GENERATIONS: usize = 8;

#[derive(Default)]
pub(crate) struct RuleBook {
    generations: RwLock<BTreeMap<u64, Arc<Names>>>,
    /// Content digests of the files found by hash, by (dev, ino).
    digests: RwLock<BTreeMap<(u32, u64), String>>,
}

/// One generation's names: rules by index, listed domains by slot.
struct Names {
    rules: Vec<String>,
    domains: BTreeMap<u32, String>,
}

impl RuleBook {
    pub(crate) fn insert(
        &self,
        generation: u64,
        rules: Vec<String>,
        domains: BTreeMap<u32, String>,
    ) {
        let mut generations = self.generations.write().expect("rule book lock");
        generations.insert(generation, Arc::new(Names { rules, domains }));
        while generations.len() > KEPT_GENERATIONS {
            generations.pop_first();
        }
    }

    pub(crate) fn set_digests(&self, digests: BTreeMap<(u32, u64), String>) {
        *self.digests.write().expect("rule book lock") = digests;
    }

    pub(crate) fn digest(&self, dev: u32, ino: u64) -> Option<String> {
        self.digests
            .read()
            .expect("rule book lock")
            .get(&(dev, ino))
            .cloned()
    }

    pub(crate) fn name(&self, generation: u64, rule: u32) -> String {
        let generations = self.generations.read().expect("rule book lock");
        generations
            .get(&generation)
            .and_then(|names| names.rules.get(rule as usize))
            .cloned()
            .unwrap_or_else(|| format!("#{rule} (generation {generation})"))
    }

    /// The listed domain in `slot` of `generation`'s domain table.
    pub(crate) fn domain(&self, generation: u64, slot: u32) -> Option<String> {
        let generations = self.generations.read().expect("rule book lock");
        generations.get(&generation)?.domains.get(&slot).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_rules_of_recent_generations_only() {
        let book = RuleBook::default();
        for generation in 1..=10 {
            let domains = BTreeMap::from([(3, format!("d{generation}.example"))]);
            book.insert(generation, vec![format!("rule-of-{generation}")], domains);
        }
        assert_eq!(book.name(10, 0), "rule-of-10");
        assert_eq!(book.name(3, 0), "rule-of-3");
        assert_eq!(book.name(2, 0), "#0 (generation 2)");
        assert_eq!(book.name(10, 5), "#5 (generation 10)");
        assert_eq!(book.domain(10, 3).as_deref(), Some("d10.example"));
        assert_eq!(book.domain(10, 4), None);
        assert_eq!(book.domain(2, 3), None);
    }
}
