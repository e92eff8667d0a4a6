//! Policies of many CIDRs for the network scenarios: a mix of IPv4 and
//! IPv6 prefix lengths shaped like a routing table or a large blocklist,
//! spread over the unicast space, never overlapping (so nftables takes
//! them in an interval set as they are) and never covering loopback, so
//! the workloads' destinations stay unlisted. The one exception is the
//! sentinel `127.0.0.77/32`, listed in every non-empty policy, which the
//! bench uses to check that enforcement is live and to make blocked
//! connects for the event storm.

use std::{fmt::Write as _, fs, net::Ipv4Addr, net::Ipv6Addr, path::Path};

use anyhow::Result;

/// Listed in every non-empty policy: refused, on loopback.
pub(crate) const SENTINEL_V4: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 77);

/// Share of IPv4 prefixes, in percent (roughly that of a full routing table).
const V4_PERCENT: usize = 80;

/// IPv4 prefix lengths and their weights per thousand: mostly /24s, as in
/// a routing table, with aggregates up to /16 and a few host routes.
const V4_MIX: [(u8, u32); 11] = [
    (16, 5),
    (17, 5),
    (18, 10),
    (19, 30),
    (20, 60),
    (21, 70),
    (22, 120),
    (23, 100),
    (24, 550),
    (28, 10),
    (32, 40),
];

/// IPv6 prefix lengths per thousand: mostly /48s, with /32 allocations,
/// /64 subnets and host addresses.
const V6_MIX: [(u8, u32); 9] = [
    (29, 5),
    (32, 80),
    (36, 20),
    (40, 40),
    (44, 80),
    (48, 500),
    (56, 80),
    (64, 145),
    (128, 50),
];

/// A deterministic generator (splitmix64): the same policy every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u128) -> u128 {
        if bound == 0 {
            return 0;
        }
        let wide = (u128::from(self.next()) << 64) | u128::from(self.next());
        wide % bound
    }

    fn length(&mut self, mix: &[(u8, u32)]) -> u8 {
        let mut pick = (self.next() % 1000) as u32;
        for &(length, weight) in mix {
            if pick < weight {
                return length;
            }
            pick -= weight;
        }
        mix[mix.len() - 1].0
    }
}

/// Non-overlapping prefixes, in ascending order per family.
#[derive(Clone)]
pub(crate) struct Prefixes {
    pub v4: Vec<(u32, u8)>,
    pub v6: Vec<(u128, u8)>,
}

impl Prefixes {
    /// `count` CIDRs in all (the sentinel is one of them when `count > 0`).
    pub(crate) fn generate(count: usize) -> Self {
        if count == 0 {
            return Self {
                v4: Vec::new(),
                v6: Vec::new(),
            };
        }
        let mut rng = Rng(0x656e_666f_7263_6572 ^ count as u64);
        let v6_count = (count - 1) * (100 - V4_PERCENT) / 100;
        let v4_count = count - 1 - v6_count;
        // IPv4 unicast 1.0.0.0 - 223.255.255.255, skipping 127/8.
        let v4 = place(
            &mut rng,
            v4_count,
            &V4_MIX,
            32,
            1 << 24,
            224 << 24,
            Some((127 << 24, 128 << 24)),
        )
        .into_iter()
        .map(|(start, length)| (start as u32, length))
        .collect::<Vec<_>>();
        // Global unicast 2000::/3: far from ::1.
        let v6 = place(&mut rng, v6_count, &V6_MIX, 128, 1 << 125, 1 << 126, None);
        let mut prefixes = Self { v4, v6 };
        // The sentinel sits inside the skipped 127/8, so it overlaps nothing.
        let sentinel = (u32::from(SENTINEL_V4), 32);
        let at = prefixes.v4.partition_point(|&prefix| prefix < sentinel);
        prefixes.v4.insert(at, sentinel);
        prefixes
    }

    pub(crate) fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// The same prefixes with `changes` of them replaced by their first
    /// half (one CIDR removed and another added, each time), spread evenly
    /// over both families. The sentinel stays.
    pub(crate) fn changed(&self, changes: usize) -> Self {
        let mut changed = self.clone();
        let total = self.len();
        if total == 0 || changes == 0 {
            return changed;
        }
        let step = (total / changes).max(1);
        let mut done = 0;
        let mut index = step / 2;
        while done < changes && index < total {
            let v4_len = changed.v4.len();
            let editable = if index < v4_len {
                let (start, length) = changed.v4[index];
                length < 32 && start != u32::from(SENTINEL_V4)
            } else {
                changed.v6[index - v4_len].1 < 128
            };
            if editable {
                if index < v4_len {
                    changed.v4[index].1 += 1;
                } else {
                    changed.v6[index - v4_len].1 += 1;
                }
                done += 1;
                index += step;
            } else {
                index += 1;
            }
        }
        changed
    }

    fn cidrs(&self) -> impl Iterator<Item = String> + '_ {
        let v4 = self
            .v4
            .iter()
            .map(|&(start, length)| format!("{}/{length}", Ipv4Addr::from(start)));
        let v6 = self
            .v6
            .iter()
            .map(|&(start, length)| format!("{}/{length}", Ipv6Addr::from(start)));
        v4.chain(v6)
    }

    /// The enforcer policy: block rules of up to 10,000 CIDRs each, the
    /// way a large list would be kept in several named parts.
    pub(crate) fn write_policy(&self, file: &Path) -> Result<()> {
        let mut text = String::from("version = 1\n");
        let cidrs: Vec<String> = self.cidrs().collect();
        for (part, chunk) in cidrs.chunks(10_000).enumerate() {
            let _ = write!(text, "[[block]]\nname = \"list-{part}\"\ncidrs = [\n");
            for cidr in chunk {
                let _ = writeln!(text, "\"{cidr}\",");
            }
            text.push_str("]\n");
        }
        fs::write(file, text)?;
        Ok(())
    }

    /// An `nft -f` file making `table inet NAME` with the sets `v4` and
    /// `v6` (flags interval) holding the same prefixes. No chain: the
    /// bench adds the rule only while nftables is the scenario under test.
    pub(crate) fn write_nft(&self, file: &Path, table: &str) -> Result<()> {
        let mut text = format!("table inet {table} {{\n");
        for (name, kind, cidrs) in [
            (
                "v4",
                "ipv4_addr",
                self.cidrs().take(self.v4.len()).collect::<Vec<_>>(),
            ),
            (
                "v6",
                "ipv6_addr",
                self.cidrs().skip(self.v4.len()).collect::<Vec<_>>(),
            ),
        ] {
            let _ = writeln!(text, "  set {name} {{\n    type {kind}\n    flags interval");
            if !cidrs.is_empty() {
                text.push_str("    elements = {\n");
                for cidr in cidrs {
                    let _ = writeln!(text, "      {cidr},");
                }
                text.push_str("    }\n");
            }
            text.push_str("  }\n");
        }
        text.push_str("}\n");
        fs::write(file, text)?;
        Ok(())
    }
}

/// `count` aligned prefixes in `[low, high)`, ascending, none overlapping
/// `skip`: each placed after the last at a random gap sized so that the
/// whole list fits in the space.
fn place(
    rng: &mut Rng,
    count: usize,
    mix: &[(u8, u32)],
    bits: u8,
    low: u128,
    high: u128,
    skip: Option<(u128, u128)>,
) -> Vec<(u128, u8)> {
    let mean_size: f64 = mix
        .iter()
        .map(|&(length, weight)| (1u128 << (bits - length)) as f64 * f64::from(weight) / 1000.0)
        .sum();
    let mut prefixes = Vec::with_capacity(count);
    let mut cursor = low;
    while prefixes.len() < count {
        // The mean gap that still fits the rest in what is left, with a
        // margin for alignment (about half a prefix per prefix).
        let left = count - prefixes.len();
        let skipped = skip.map_or(0, |(from, to)| to.saturating_sub(from.max(cursor)));
        let room = (high - cursor - skipped) as f64;
        let mean_gap = ((room * 0.9 - 1.5 * mean_size * left as f64) / left as f64)
            .clamp(0.0, room * 0.45 / left as f64);
        let length = rng.length(mix);
        let size = 1u128 << (bits - length);
        let gap = rng.below((2.0 * mean_gap) as u128 + 1);
        let mut start = (cursor + gap).div_ceil(size) * size;
        if let Some((from, to)) = skip
            && start + size > from
            && start < to
        {
            start = to.div_ceil(size) * size;
        }
        if start + size > high {
            // Out of room: stop short. The margin above keeps this from
            // happening with these mixes; the test checks the counts.
            break;
        }
        prefixes.push((start, length));
        cursor = start + size;
    }
    prefixes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_disjoint_sorted_and_miss_loopback() {
        for count in [1, 10, 1000, 100_000] {
            let prefixes = Prefixes::generate(count);
            assert_eq!(prefixes.len(), count);
            let ends = |start: u128, length: u8, bits: u8| (start, start + (1 << (bits - length)));
            for pair in prefixes.v4.windows(2) {
                let (_, end) = ends(pair[0].0.into(), pair[0].1, 32);
                assert!(end <= pair[1].0.into(), "{pair:?}");
            }
            for pair in prefixes.v6.windows(2) {
                let (_, end) = ends(pair[0].0, pair[0].1, 128);
                assert!(end <= pair[1].0, "{pair:?}");
            }
            for &(start, length) in &prefixes.v4 {
                let (start, end) = ends(start.into(), length, 32);
                if start != u128::from(u32::from(SENTINEL_V4)) {
                    assert!(end <= 127 << 24 || start >= 128 << 24);
                }
            }
            let changed = prefixes.changed(count / 10);
            assert_eq!(changed.len(), count);
        }
    }
}
