//! The domain table: every listed domain with the decision of the rules
//! that name it, in the open-addressed hash table the kernel probes once
//! per label of a name (see `enforcer_common::domain`).

use std::collections::BTreeMap;

use enforcer_common::{
    decision::Decision,
    domain::{MAX_PROBES, entry, options, suffix_hash},
};

use super::{classes::precedence, error::CompileError};
use crate::policy::{DomainSwitches, Options, Policy};

/// The most domains one policy may list. The table has at least twice as
/// many slots, and a slot index must fit the kernel's 32-bit arithmetic.
pub(super) const MAX_DOMAINS: usize = 1 << 22;

#[derive(Debug, Default)]
pub(super) struct DomainTable {
    /// A power of two, or 0 when nothing is listed.
    pub slot_count: usize,
    /// `(slot, hash, domain, entry)`, by slot.
    pub entries: Vec<(usize, u64, String, Entry)>,
    pub seed: u64,
    /// Bits of `enforcer_common::domain::options`.
    pub options: u64,
    pub ttl_min: u64,
    pub ttl_max: u64,
    pub sni_learned_seconds: u64,
    /// See `enforcer_common::learned`.
    pub learned_shared_below_uid: u64,
    pub learned_per_user: u64,
}

/// What a slot says about its domain: the decision of the rules that name
/// it, and the switches of the rule that decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub decision: Decision,
    /// Bits of `enforcer_common::domain::entry`.
    pub switches: u32,
}

fn switches(rule: &DomainSwitches) -> u32 {
    let mut switches = 0;
    if !rule.learn_addresses {
        switches |= entry::NO_LEARNING;
    }
    if !rule.sni {
        switches |= entry::NO_SNI;
    }
    switches
}

pub(super) fn table(policy: &Policy, seed: u64) -> Result<DomainTable, CompileError> {
    // The policy's own rules come first among the enforced ones, so their
    // indices are the same in both.
    let rules = &policy.rules;
    let mut named: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (index, rule) in rules.iter().enumerate() {
        for domain in &rule.domains {
            named.entry(domain.as_str()).or_default().push(index as u32);
        }
    }
    if named.len() > MAX_DOMAINS {
        return Err(CompileError::TooManyDomains {
            domains: named.len(),
            limit: MAX_DOMAINS,
        });
    }
    let listed: Vec<(u64, &str, Entry)> = named
        .into_iter()
        .map(|(domain, indices)| {
            let decision = precedence(rules, indices.into_iter());
            let entry = Entry {
                decision,
                switches: switches(&rules[decision.rule() as usize].domain_switches),
            };
            (suffix_hash(seed, domain.as_bytes()), domain, entry)
        })
        .collect();
    let Options {
        dns_block_queries,
        dns_ttl_min_seconds,
        dns_ttl_max_seconds,
        sni_learned_seconds,
        learned_shared_below_uid,
        learned_per_user,
        ..
    } = policy.options;
    let mut table = DomainTable {
        seed,
        options: if dns_block_queries {
            options::BLOCK_QUERIES
        } else {
            0
        },
        ttl_min: dns_ttl_min_seconds.into(),
        ttl_max: dns_ttl_max_seconds.into(),
        sni_learned_seconds: sni_learned_seconds.into(),
        learned_shared_below_uid: learned_shared_below_uid.into(),
        learned_per_user: learned_per_user.into(),
        ..DomainTable::default()
    };
    if listed.is_empty() {
        return Ok(table);
    }
    let mut slot_count = (2 * listed.len()).next_power_of_two();
    loop {
        if let Some(entries) = place(&listed, slot_count) {
            table.slot_count = slot_count;
            table.entries = entries;
            return Ok(table);
        }
        // Clustering put some domain too far from its home slot; a bigger
        // table spreads them out.
        slot_count *= 2;
    }
}

/// Linear probing in `slot_count` slots, or `None` when some domain would
/// sit more than `MAX_PROBES` slots from its home.
fn place(
    listed: &[(u64, &str, Entry)],
    slot_count: usize,
) -> Option<Vec<(usize, u64, String, Entry)>> {
    let mask = slot_count - 1;
    let mut slots: Vec<Option<usize>> = vec![None; slot_count];
    for (index, &(hash, _, _)) in listed.iter().enumerate() {
        // The kernel takes the home slot from the hash's low 32 bits.
        let home = (hash as u32 as usize) & mask;
        let free = (0..MAX_PROBES as usize)
            .map(|distance| (home + distance) & mask)
            .find(|&slot| slots[slot].is_none())?;
        slots[free] = Some(index);
    }
    Some(
        slots
            .into_iter()
            .enumerate()
            .filter_map(|(slot, entry)| {
                let (hash, domain, found) = listed[entry?];
                Some((slot, hash, domain.to_owned(), found))
            })
            .collect(),
    )
}

/// The words of a domain's text: its length, then its bytes eight to a
/// word, little-endian.
pub(super) fn text_words(domain: &str) -> impl Iterator<Item = u64> + '_ {
    let bytes = domain.as_bytes();
    std::iter::once(bytes.len() as u64).chain(bytes.chunks(8).map(|chunk| {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        u64::from_le_bytes(word)
    }))
}

pub(super) fn text_word_count(domain: &str) -> usize {
    1 + domain.len().div_ceil(8)
}

#[cfg(test)]
mod tests {
    use enforcer_common::{
        decision::Action,
        domain::{DomainMatch, NAME_BYTES, Name},
        lookup::Generation,
        repeat::Plain,
    };

    use crate::{
        compile::compile,
        policy::{Source, parse},
    };

    fn found(generation: &Generation<'_, [u64]>, name: &str) -> DomainMatch {
        let mut bytes = [0u8; NAME_BYTES];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        generation
            .domain(
                &Name {
                    bytes: &bytes,
                    len: name.len(),
                },
                &Plain,
            )
            .unwrap()
    }

    fn lookup(generation: &Generation<'_, [u64]>, name: &str) -> (Action, u32) {
        let found = found(generation, name);
        (found.decision.action(), found.start())
    }

    #[test]
    fn every_one_of_many_domains_is_found_within_the_probe_bound() {
        let domains: Vec<String> = (0..20_000).map(|i| format!("\"d{i}.example\"")).collect();
        let text = format!(
            "version = 1\n[[block]]\nname = \"many\"\ndomains = [{}]\n",
            domains.join(", ")
        );
        let policy = parse(&[Source {
            name: "many.toml".into(),
            text,
        }])
        .unwrap();
        // Any seed must place every domain; try a few.
        for seed in [0, 1, u64::MAX, 0x9e37_79b9_7f4a_7c15] {
            let compiled = compile(&policy, &[], seed).unwrap();
            assert_eq!(compiled.stats.domains, 20_000);
            assert_eq!(compiled.domain_slots.len(), 20_000);
            let generation = Generation::new(compiled.image.as_slice());
            for i in (0..20_000).step_by(97) {
                assert_eq!(
                    lookup(&generation, &format!("d{i}.example")),
                    (Action::Block, 0)
                );
                assert_eq!(
                    lookup(&generation, &format!("www.d{i}.example")),
                    (Action::Block, 4)
                );
            }
            assert_eq!(lookup(&generation, "example").0, Action::None);
            assert_eq!(lookup(&generation, "d20000.example").0, Action::None);
        }
    }

    #[test]
    fn each_domain_carries_the_switches_of_the_rule_that_decides_it() {
        let text = r#"version = 1
[[block]]
name = "docs"
domains = ["docs.google.com", "shared.example"]
learn_addresses = false
[[block]]
name = "telegram"
domains = ["telegram.org"]
sni = false
[[block]]
name = "plain"
domains = ["shared.example", "t.me"]
[[allow]]
name = "mirror"
domains = ["corp.telegram.org"]
"#;
        let policy = parse(&[Source {
            name: "p.toml".into(),
            text: text.into(),
        }])
        .unwrap();
        let compiled = compile(&policy, &[], 11).unwrap();
        let generation = Generation::new(compiled.image.as_slice());
        let switches = |name: &str| {
            let found = found(&generation, name);
            let by_hash = generation
                .domain_by_hash(generation.domain_hash(found.slot).unwrap())
                .unwrap();
            assert_eq!(
                (by_hash.learns_addresses(), by_hash.judges_server_name()),
                (found.learns_addresses(), found.judges_server_name()),
                "{name}: by hash"
            );
            (
                found.decision.action(),
                found.learns_addresses(),
                found.judges_server_name(),
            )
        };
        assert_eq!(switches("docs.google.com"), (Action::Block, false, true));
        assert_eq!(switches("a.docs.google.com"), (Action::Block, false, true));
        assert_eq!(switches("telegram.org"), (Action::Block, true, false));
        assert_eq!(switches("t.me"), (Action::Block, true, true));
        // Two block rules: the first decides, and its switches apply.
        assert_eq!(switches("shared.example"), (Action::Block, false, true));
        // An allow decides with its own switches, which are all on.
        assert_eq!(switches("corp.telegram.org"), (Action::Allow, true, true));
        assert_eq!(found(&generation, "www.google.com"), DomainMatch::NONE);
    }

    #[test]
    fn a_policy_without_domains_has_no_domain_table() {
        let policy = parse(&[Source {
            name: "p.toml".into(),
            text: "version = 1\n".into(),
        }])
        .unwrap();
        let compiled = compile(&policy, &[], 5).unwrap();
        let generation = Generation::new(compiled.image.as_slice());
        assert_eq!(generation.has_domains(), Ok(false));
        assert_eq!(lookup(&generation, "example.com").0, Action::None);
    }
}
