//! What the `net` scenario was asked to do and what it measured at each
//! policy size: the settings, the samples, and the figures derived from them.

use std::time::Duration;

use crate::bench::{kernel, nft, stats::median};

pub(crate) struct Settings {
    pub sizes: Vec<usize>,
    pub rounds: usize,
    /// Per socket (so per configuration and family) and round.
    pub udp_connects: usize,
    /// Per configuration and round.
    pub tcp_loops: usize,
    /// How long `nft -f` may take to load one size.
    pub nft_timeout: Duration,
}

pub(crate) const WORKLOADS: [(&str, &str, &str); 3] = [
    ("udp4_connect", "UDP connect, IPv4", "ns"),
    ("udp6_connect", "UDP connect, IPv6", "ns"),
    ("tcp_loop", "TCP connect+accept+close, IPv4", "µs"),
];
pub(crate) const BASELINE: usize = 0;
pub(crate) const ENFORCER: usize = 1;
pub(crate) const NFTABLES: usize = 2;
/// Passes with statistics on, after the rounds: a pass the host slowed
/// down moves the median of five less than the mean of one long pass.
pub(crate) const STATS_PASSES: usize = 5;

pub(crate) struct SizeResult {
    pub size: usize,
    /// `samples[workload][config]`, one per round.
    pub samples: [[Vec<f64>; 3]; 3],
    /// The baseline measured beside nftables, per workload.
    pub nft_baseline: [Vec<f64>; 3],
    pub programs: Vec<kernel::Program>,
    /// The empty programs on the baseline cgroup in the same pass: the
    /// floor under `programs` (see `floor`).
    pub empty_hooks: Vec<kernel::Program>,
    pub ready_s: f64,
    pub rss: kernel::Rss,
    pub maps: (usize, u64),
    /// The live generation image's map (from `status`). The daemon holds
    /// no descriptor of it (it lives in the outer map), so it is not in
    /// `maps`.
    pub image_bytes: Option<u64>,
    pub nft: std::result::Result<nft::Loaded, String>,
}

impl SizeResult {
    /// Kernel memory of the maps: those the daemon holds, plus the image.
    pub(crate) fn kernel_bytes(&self) -> u64 {
        self.maps.1 + self.image_bytes.unwrap_or(0)
    }

    pub(crate) fn median(&self, workload: usize, config: usize) -> Option<f64> {
        let samples = &self.samples[workload][config];
        (!samples.is_empty()).then(|| median(samples))
    }

    /// Each round's value and the baseline measured beside it, in the
    /// same process at the same moments.
    fn pairs(&self, workload: usize, config: usize) -> Option<Vec<(f64, f64)>> {
        let baseline = if config == NFTABLES {
            &self.nft_baseline[workload]
        } else {
            &self.samples[workload][BASELINE]
        };
        let values = &self.samples[workload][config];
        (!values.is_empty() && values.len() == baseline.len()).then(|| {
            values
                .iter()
                .copied()
                .zip(baseline.iter().copied())
                .collect()
        })
    }

    /// The median over rounds of each round's ratio to its own baseline.
    pub(crate) fn ratio(&self, workload: usize, config: usize) -> Option<f64> {
        let ratios: Vec<f64> = self
            .pairs(workload, config)?
            .into_iter()
            .map(|(value, baseline)| value / baseline)
            .collect();
        Some(median(&ratios))
    }

    /// The median over rounds of each round's difference to its baseline.
    pub(crate) fn added(&self, workload: usize, config: usize) -> Option<f64> {
        let differences: Vec<f64> = self
            .pairs(workload, config)?
            .into_iter()
            .map(|(value, baseline)| value - baseline)
            .collect();
        Some(median(&differences))
    }

    pub(crate) fn program_ns(&self, name: &str) -> Option<f64> {
        self.programs
            .iter()
            .find(|program| program.name == name)?
            .ns_per_run()
    }

    /// What an empty program on the same hook cost per run.
    pub(crate) fn empty_hook_ns(&self, name: &str) -> Option<f64> {
        self.empty_hooks
            .iter()
            .find(|program| program.name.strip_prefix("empty_") == Some(name))?
            .ns_per_run()
    }
}
