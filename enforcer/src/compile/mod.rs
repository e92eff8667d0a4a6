//! Compiles a validated [`Policy`] into a generation image: the flat word
//! array the kernel programs search (layout in `enforcer_common::image`).
//!
//! Compilation is pure and deterministic: the same policy gives the same
//! image, word for word, so tests, diffs and content hashes can rely on it.
//!
//! The steps, one module each:
//! 1. [`segments`]: every address of a family is cut into maximal ranges
//!    covered by the same set of rules;
//! 2. [`classes`]: each distinct rule set becomes a class, whose decision
//!    for a (protocol, port) is precomputed, allow rules first;
//! 3. [`exec`]: exec identities (resolved by [`crate::exec::resolve`]) and file
//!    names get their decisions the same way;
//! 4. [`domains`]: each listed domain gets its decision the same way, in
//!    a hash table keyed by the domain's text;
//! 5. [`layout`]: ranges go into buckets by their top 16 bits, and all
//!    sections are written into one image.

mod classes;
mod domains;
mod error;
mod exec;
mod layout;
mod segments;

use std::collections::BTreeMap;

use enforcer_common::decision::MAX_RULES;

use crate::{
    exec::resolve::ExecIdentity,
    policy::{Cidr, Policy, Rule},
};
use classes::ClassTable;
use segments::Family;

pub use error::CompileError;
pub use layout::ImageStats;

/// A compiled policy: the image to load and what is needed to explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// The image without its generation number, which the map owner stamps
    /// when it installs the image.
    pub image: Vec<u64>,
    pub stats: ImageStats,
    /// The listed domains by their slot in the image's domain table, for
    /// naming the domain of an event.
    pub domain_slots: BTreeMap<u32, String>,
}

/// `exec` holds the files and directories the policy's exec rules name
/// on this host: its exec paths as [`crate::exec::resolve::resolve`] found them,
/// and the files whose content an `exec_sha256` rule bans.
///
/// `domain_seed` seeds the hashes of the domain table. The daemon draws it
/// at random once, so that nobody who cannot read the image can build
/// names whose hashes collide with a listed domain.
///
/// Rule indices in the image follow [`Policy::enforced_rules`].
pub fn compile(
    policy: &Policy,
    exec: &[ExecIdentity],
    domain_seed: u64,
) -> Result<Compiled, CompileError> {
    let rules = policy.enforced_rules();
    if rules.len() >= MAX_RULES as usize {
        return Err(CompileError::TooManyRules(rules.len()));
    }
    let mut classes = ClassTable::new(&rules);
    let v4 = segments::cover(Family::V4, prefixes(&rules, Family::V4), &mut classes);
    let v6 = segments::cover(Family::V6, prefixes(&rules, Family::V6), &mut classes);
    let exec = exec::tables(policy, exec);
    let domains = domains::table(policy, domain_seed)?;
    let (image, stats) = layout::write(&v4, &v6, &classes.finish(), &exec, &domains)?;
    let domain_slots = domains
        .entries
        .into_iter()
        .map(|(slot, _, domain, _)| (slot as u32, domain))
        .collect();
    Ok(Compiled {
        image,
        stats,
        domain_slots,
    })
}

/// Every prefix of one family as (first address, last address, rule index).
fn prefixes(rules: &[Rule], family: Family) -> Vec<(u128, u128, u32)> {
    let mut out = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        for cidr in &rule.cidrs {
            let (addr, prefix_len, bits) = match (*cidr, family) {
                (Cidr::V4 { addr, prefix_len }, Family::V4) => {
                    (u32::from(addr) as u128, prefix_len, 32)
                }
                (Cidr::V6 { addr, prefix_len }, Family::V6) => (u128::from(addr), prefix_len, 128),
                _ => continue,
            };
            let host_bits = bits - u32::from(prefix_len);
            let span = if host_bits == 128 {
                u128::MAX
            } else {
                (1u128 << host_bits) - 1
            };
            out.push((addr, addr | span, index as u32));
        }
    }
    out
}

#[cfg(test)]
mod tests;
