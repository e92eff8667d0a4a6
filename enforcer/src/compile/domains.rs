//! The domain table: every listed domain with the decision of the rules
//! that name it, in the open-addressed hash table the kernel probes once
//! per label of a name (see `enforcer_common::domain`).

use std::collections::BTreeMap;

use enforcer_common::{
    decision::Decision,
    domain::{MAX_PROBES, options, suffix_hash},
};

use super::{CompileError, classes::precedence};
use crate::policy::{Options, Policy};

/// The most domains one policy may list. The table has at least twice as
/// many slots, and a slot index must fit the kernel's 32-bit arithmetic.
pub const MAX_DOMAINS: usize = 1 << 22;

#[derive(Debug, Default)]
pub struct DomainTable {
    /// A power of two, or 0 when nothing is listed.
    pub slot_count: usize,
    /// `(slot, hash, domain, decision)`, by slot.
    pub entries: Vec<(usize, u64, String, Decision)>,
    pub seed: u64,
    /// Bits of `enforcer_common::domain::options`.
    pub options: u64,
    pub ttl_min: u64,
    pub ttl_max: u64,
}

pub fn table(policy: &Policy, seed: u64) -> Result<DomainTable, CompileError> {
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
    let listed: Vec<(u64, &str, Decision)> = named
        .into_iter()
        .map(|(domain, indices)| {
            let decision = precedence(rules, indices.into_iter());
            (suffix_hash(seed, domain.as_bytes()), domain, decision)
        })
        .collect();
    let Options {
        dns_block_queries,
        dns_ttl_min_seconds,
        dns_ttl_max_seconds,
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
    listed: &[(u64, &str, Decision)],
    slot_count: usize,
) -> Option<Vec<(usize, u64, String, Decision)>> {
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
                let (hash, domain, decision) = listed[entry?];
                Some((slot, hash, domain.to_owned(), decision))
            })
            .collect(),
    )
}

/// The words of a domain's text: its length, then its bytes eight to a
/// word, little-endian.
pub fn text_words(domain: &str) -> impl Iterator<Item = u64> + '_ {
    let bytes = domain.as_bytes();
    std::iter::once(bytes.len() as u64).chain(bytes.chunks(8).map(|chunk| {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        u64::from_le_bytes(word)
    }))
}

pub fn text_word_count(domain: &str) -> usize {
    1 + domain.len().div_ceil(8)
}
