//! Cuts one family's address space into maximal ranges covered by the same
//! set of rules.

use std::collections::BTreeMap;

use enforcer_common::image::EMPTY_CLASS;

use super::classes::ClassTable;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Family {
    V4,
    V6,
}

impl Family {
    pub(super) fn bits(self) -> u32 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    pub(super) fn last_address(self) -> u128 {
        match self {
            Family::V4 => u32::MAX as u128,
            Family::V6 => u128::MAX,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// The whole address space of a family as `(start, class)` pairs, sorted
/// by start. The first starts at 0 and each runs up to the next one's
/// start; neighbours always differ in class.
#[derive(Debug)]
pub(super) struct Segments {
    pub family: Family,
    pub starts: Vec<(u128, u32)>,
}

impl Segments {
    pub(super) fn is_empty(&self) -> bool {
        self.starts.iter().all(|&(_, class)| class == EMPTY_CLASS)
    }
}

/// `prefixes` holds (first address, last address, rule index) triples.
pub(super) fn cover(
    family: Family,
    prefixes: Vec<(u128, u128, u32)>,
    classes: &mut ClassTable,
) -> Segments {
    // +1 where a prefix begins, -1 just past its end. A rule may list
    // overlapping prefixes, so coverage is counted, not flagged.
    let mut edges: Vec<(u128, i32, u32)> = Vec::with_capacity(prefixes.len() * 2);
    for (first, last, rule) in prefixes {
        edges.push((first, 1, rule));
        if last < family.last_address() {
            edges.push((last + 1, -1, rule));
        }
    }
    edges.sort_unstable();

    let mut starts = vec![(0u128, EMPTY_CLASS)];
    let mut coverage: BTreeMap<u32, u32> = BTreeMap::new();
    let mut rules = Vec::new();
    let mut index = 0;
    while index < edges.len() {
        let position = edges[index].0;
        while index < edges.len() && edges[index].0 == position {
            let (_, delta, rule) = edges[index];
            let count = coverage.entry(rule).or_insert(0);
            *count = count
                .checked_add_signed(delta)
                .expect("every end follows its start");
            if *count == 0 {
                coverage.remove(&rule);
            }
            index += 1;
        }
        rules.clear();
        rules.extend(coverage.keys().copied());
        let class = classes.intern(&rules);
        let last = starts.last_mut().expect("starts with the segment at 0");
        if last.0 == position {
            last.1 = class;
        } else if last.1 != class {
            starts.push((position, class));
        }
    }
    // Overwriting the segment at 0 may leave it equal to its successor.
    starts.dedup_by(|next, previous| next.1 == previous.1);
    Segments { family, starts }
}
