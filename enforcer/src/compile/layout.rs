//! Writes segments and classes into one image (layout documented in
//! `enforcer_common::image`).

use enforcer_common::{
    domain::{DOMAIN_SLOT_WORDS, entry},
    image::{
        BUCKET_BITS, BUCKETS, EMPTY_CLASS, EXEC_ENTRY_WORDS, HEADER_WORDS, MAGIC,
        MAX_EXEC_DIRECTORIES, MAX_SEARCH_ENTRIES, V6_RANGE_WORDS, header, pack,
    },
};
use serde::{Deserialize, Serialize};

use super::{
    classes::ClassDecision,
    domains::{self, DomainTable},
    error::CompileError,
    exec::ExecTables,
    segments::{Family, Segments},
};

/// Sizes of an image's sections, for status output and diffs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ImageStats {
    pub v4_ranges: usize,
    pub v6_ranges: usize,
    pub classes: usize,
    pub port_entries: usize,
    pub exec_files: usize,
    pub exec_directories: usize,
    pub exec_names: usize,
    #[serde(default)]
    pub domains: usize,
    pub words: usize,
}

/// One family's bucket index and ranges, not yet placed in the image.
struct FamilyTable {
    /// `(first range, count)` per bucket.
    buckets: Vec<(u32, u32)>,
    ranges: Vec<(u128, u32)>,
}

pub(super) fn write(
    v4: &Segments,
    v6: &Segments,
    classes: &[ClassDecision],
    exec: &ExecTables,
    domains: &DomainTable,
) -> Result<(Vec<u64>, ImageStats), CompileError> {
    let v4 = bucketize(v4)?;
    let v6 = bucketize(v6)?;
    let exec_counts = [
        ("files", exec.files.len(), MAX_SEARCH_ENTRIES),
        ("directories", exec.directories.len(), MAX_EXEC_DIRECTORIES),
        ("names", exec.names.len(), MAX_SEARCH_ENTRIES),
    ];
    for (what, entries, limit) in exec_counts {
        if entries > limit as usize {
            return Err(CompileError::TooManyExecEntries {
                what,
                entries,
                limit,
            });
        }
    }

    let mut next_free = HEADER_WORDS as usize;
    let mut section = |words: usize| {
        let at = next_free;
        next_free += words;
        at
    };
    let (v4_buckets, v4_ranges) = match &v4 {
        Some(table) => (section(BUCKETS as usize), section(table.ranges.len())),
        None => (0, 0),
    };
    let (v6_buckets, v6_ranges) = match &v6 {
        Some(table) => (
            section(BUCKETS as usize),
            section(table.ranges.len() * V6_RANGE_WORDS as usize),
        ),
        None => (0, 0),
    };
    let classes_at = section(classes.len());
    let port_tables_at = section(port_table_words(classes));
    let exec_files_at = section(exec.files.len() * EXEC_ENTRY_WORDS as usize);
    let exec_directories_at = section(exec.directories.len() * EXEC_ENTRY_WORDS as usize);
    let exec_names_at = section(exec.names.len() * EXEC_ENTRY_WORDS as usize);
    let domain_slots_at = section(domains.slot_count * DOMAIN_SLOT_WORDS as usize);
    let domain_texts_at = section(
        domains
            .entries
            .iter()
            .map(|(_, _, domain, _)| domains::text_word_count(domain))
            .sum(),
    );
    let total_words = section(0);
    // Domain entries address their text in 30 bits, below their switches
    // (8 GiB of image, far beyond what the kernel gives one map).
    if total_words > entry::TEXT_MASK as usize {
        return Err(CompileError::ImageTooLarge(total_words));
    }

    let mut image = Vec::with_capacity(total_words);
    image.resize(HEADER_WORDS as usize, 0);
    image[header::MAGIC as usize] = MAGIC;
    image[header::V4_BUCKETS as usize] = v4_buckets as u64;
    image[header::V4_RANGES as usize] = v4_ranges as u64;
    image[header::V6_BUCKETS as usize] = v6_buckets as u64;
    image[header::V6_RANGES as usize] = v6_ranges as u64;
    image[header::CLASSES as usize] = classes_at as u64;
    image[header::PORT_TABLES as usize] = port_tables_at as u64;
    image[header::EXEC_FILES as usize] = exec_files_at as u64;
    image[header::EXEC_FILE_COUNT as usize] = exec.files.len() as u64;
    image[header::EXEC_DIRECTORIES as usize] = exec_directories_at as u64;
    image[header::EXEC_DIRECTORY_COUNT as usize] = exec.directories.len() as u64;
    image[header::EXEC_NAMES as usize] = exec_names_at as u64;
    image[header::EXEC_NAME_COUNT as usize] = exec.names.len() as u64;
    image[header::EXEC_OPTIONS as usize] = exec.options;
    image[header::DOMAIN_SLOTS as usize] = domain_slots_at as u64;
    image[header::DOMAIN_SLOT_COUNT as usize] = domains.slot_count as u64;
    image[header::DOMAIN_SEED as usize] = domains.seed;
    image[header::DNS_OPTIONS as usize] = domains.options;
    image[header::DNS_TTL_MIN as usize] = domains.ttl_min;
    image[header::DNS_TTL_MAX as usize] = domains.ttl_max;
    image[header::SNI_LEARNED_SECONDS as usize] = domains.sni_learned_seconds;
    image[header::LEARNED_SHARED_BELOW_UID as usize] = domains.learned_shared_below_uid;
    image[header::LEARNED_PER_USER as usize] = domains.learned_per_user;

    if let Some(table) = &v4 {
        image.extend(
            table
                .buckets
                .iter()
                .map(|&(first, count)| pack(first, count)),
        );
        image.extend(
            table
                .ranges
                .iter()
                .map(|&(start, class)| pack(start as u32, class)),
        );
    }
    if let Some(table) = &v6 {
        image.extend(
            table
                .buckets
                .iter()
                .map(|&(first, count)| pack(first, count)),
        );
        for &(start, class) in &table.ranges {
            image.extend([(start >> 64) as u64, start as u64, class as u64]);
        }
    }
    debug_assert_eq!(image.len(), classes_at);

    let mut port_tables = Vec::new();
    let mut port_entries = 0;
    for class in classes {
        match class {
            ClassDecision::Uniform(decision) => image.push(pack(0, decision.0)),
            ClassDecision::ByPort(table) => {
                let at = port_tables_at + port_tables.len();
                image.push(pack(at as u32, 0));
                port_tables.push(table.len() as u64);
                port_tables.extend(table.iter().map(|&(key, decision)| pack(key, decision.0)));
                port_entries += table.len();
            }
        }
    }
    image.extend(port_tables);
    for &(dev, ino, decision) in exec.files.iter().chain(&exec.directories) {
        image.extend([ino, pack(dev, decision.0)]);
    }
    for &(hash, decision) in &exec.names {
        image.extend([hash, decision.0 as u64]);
    }
    debug_assert_eq!(image.len(), domain_slots_at);
    image.resize(domain_texts_at, 0);
    for (slot, hash, domain, found) in &domains.entries {
        let text = image.len() as u32;
        let at = domain_slots_at + slot * DOMAIN_SLOT_WORDS as usize;
        image[at] = *hash;
        image[at + 1] = pack(text | found.switches, found.decision.0);
        image.extend(domains::text_words(domain));
    }
    debug_assert_eq!(image.len(), total_words);

    let stats = ImageStats {
        v4_ranges: v4.as_ref().map_or(0, |t| t.ranges.len()),
        v6_ranges: v6.as_ref().map_or(0, |t| t.ranges.len()),
        classes: classes.len(),
        port_entries,
        exec_files: exec.files.len(),
        exec_directories: exec.directories.len(),
        exec_names: exec.names.len(),
        domains: domains.entries.len(),
        words: image.len(),
    };
    Ok((image, stats))
}

fn port_table_words(classes: &[ClassDecision]) -> usize {
    classes
        .iter()
        .map(|class| match class {
            ClassDecision::Uniform(_) => 0,
            ClassDecision::ByPort(table) => 1 + table.len(),
        })
        .sum()
}

/// Splits the segments by bucket. Each non-empty bucket gets its own
/// ranges, the first clipped to the bucket's first address, so a search
/// never has to look outside its bucket.
fn bucketize(segments: &Segments) -> Result<Option<FamilyTable>, CompileError> {
    if segments.is_empty() {
        return Ok(None);
    }
    let shift = segments.family.bits() - BUCKET_BITS;
    let starts = &segments.starts;
    let mut table = FamilyTable {
        buckets: Vec::with_capacity(BUCKETS as usize),
        ranges: Vec::new(),
    };
    // Index of the segment that covers the current bucket's first address.
    let mut covering = 0;
    for bucket in 0..BUCKETS as u128 {
        let base = bucket << shift;
        let next_base = (bucket + 1 < BUCKETS as u128).then(|| (bucket + 1) << shift);
        while covering + 1 < starts.len() && starts[covering + 1].0 <= base {
            covering += 1;
        }
        let inside = starts[covering + 1..]
            .iter()
            .take_while(|&&(start, _)| next_base.is_none_or(|next| start < next));
        let first = table.ranges.len();
        table.ranges.push((base, starts[covering].1));
        table.ranges.extend(inside);
        let count = table.ranges.len() - first;
        if count == 1 && starts[covering].1 == EMPTY_CLASS {
            table.ranges.pop();
            table.buckets.push((0, 0));
            continue;
        }
        if count > MAX_SEARCH_ENTRIES as usize {
            return Err(CompileError::BucketTooLarge {
                family: segments.family.name(),
                bucket_start: format_address(segments.family, base),
                entries: count,
                limit: MAX_SEARCH_ENTRIES,
            });
        }
        table.buckets.push((first as u32, count as u32));
    }
    Ok(Some(table))
}

fn format_address(family: Family, address: u128) -> String {
    match family {
        Family::V4 => std::net::Ipv4Addr::from(address as u32).to_string(),
        Family::V6 => std::net::Ipv6Addr::from(address).to_string(),
    }
}
