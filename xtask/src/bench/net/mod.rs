//! Scenario `net`: what a policy of N CIDRs costs connections that it
//! does not list, with the enforcer and with nftables holding the same
//! CIDRs, next to no enforcement at all.
//!
//! Three cgroups below the bench's own: `base` (nothing attached), `enf`
//! (an enforcer attached there with the policy of N CIDRs) and `nft` (an
//! nftables rule matches its sockets). For each size the enforcer and the
//! nftables sets are loaded once, then the rounds run. The nftables chain
//! exists only while nftables is being measured, so the other turns run
//! with no netfilter hook of ours. The workloads:
//! - UDP `connect()` of one socket to an unlisted loopback address, over
//!   and over (IPv4, then IPv6 to `::1`): ns per connect. A socket is
//!   judged by the cgroup it was made in, so one child makes a socket in
//!   each of the three cgroups and interleaves batches of connects on
//!   them: the three configurations share the same moments, and the
//!   machine's drift cancels. No packet is sent, so nftables, which
//!   judges packets, has nothing to do here;
//! - TCP connect + accept + close on loopback (IPv4): µs per iteration.
//!   Both ends are in the cgroup, so every segment passes the hooks. The
//!   child makes a listener and the client sockets in each cgroup first
//!   (making a socket is hooked by neither tool), then interleaves batches
//!   as for UDP. Here the nftables chain matters to every segment, so one
//!   child measures baseline and enforcer with no chain, and another
//!   measures baseline and nftables with the chain in place; each ratio is
//!   to the baseline of its own child. (The second baseline pays what the
//!   chain costs traffic of other cgroups, which favours nftables.)
//!
//! After the rounds, [`STATS_PASSES`] more passes in `enf` with
//! `kernel.bpf_stats_enabled` give every program's run time per run, the
//! median of the passes (statistics cost time of their own, so the timed
//! rounds run without them), and the daemon's memory is read.

mod children;
mod measured;
mod report;

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, ensure};
use serde_json::Value;

pub(crate) use children::{probe_child, tcp_storm_child, udp_storm_child};
pub(crate) use measured::{
    BASELINE, ENFORCER, NFTABLES, STATS_PASSES, Settings, SizeResult, WORKLOADS,
};
pub(crate) use report::{report, size_label};

use super::{
    cgroup::BenchCgroup, cidrs::Prefixes, cidrs::SENTINEL_V4, daemon::Daemon, floor, kernel, nft,
    storm::storm_output,
};

/// The size of the live image's map: in the sized slot, the slot's
/// capacity, whatever the image uses of it.
fn image_map_words(status: &Value) -> Option<u64> {
    match status["image_slot"]["slot"].as_str() {
        Some("sized") => status["image_slot"]["sized_capacity_words"].as_u64(),
        _ => status["image"]["words"].as_u64(),
    }
}

pub(crate) struct Cgroups {
    pub base: BenchCgroup,
    pub enf: BenchCgroup,
    pub nft: BenchCgroup,
}

impl Cgroups {
    pub(crate) fn create(parent: &BenchCgroup) -> Result<Self> {
        Ok(Self {
            base: parent.child("base")?,
            enf: parent.child("enf")?,
            nft: parent.child("nft")?,
        })
    }
}

pub(crate) fn policy_file(work: &Path, prefixes: &Prefixes, tag: &str) -> Result<PathBuf> {
    let file = work.join(format!("policy-net-{tag}.toml"));
    prefixes.write_policy(&file)?;
    Ok(file)
}

pub(crate) fn run(
    enforcer: &Path,
    work: &Path,
    cgroups: &Cgroups,
    settings: &Settings,
) -> Result<Vec<SizeResult>> {
    nft::ensure_installed()?;
    nft::remove_stale();
    let mut results = Vec::new();
    for &size in &settings.sizes {
        eprintln!("net: {size} CIDRs: writing the policy and the nftables sets");
        let prefixes = Prefixes::generate(size);
        let policy = policy_file(work, &prefixes, &size.to_string())?;
        let (daemon, _events) = Daemon::start(enforcer, work, &cgroups.enf.path, &policy, &[])?;
        let ready_s = daemon.ready_in.as_secs_f64();
        eprintln!("net: {size} CIDRs: enforcer ready in {ready_s:.2} s; loading nftables");
        let mut table =
            match nft::NftTable::load(work, &prefixes, &cgroups.nft.path, settings.nft_timeout) {
                Ok((table, loaded)) => {
                    eprintln!("net: {size} CIDRs: nft -f took {:.2} s", loaded.seconds);
                    Ok((table, loaded))
                }
                Err(error) => {
                    eprintln!("net: {size} CIDRs: nftables not measured: {error:#}");
                    Err(format!("{error:#}"))
                }
            };
        if size > 0 {
            check_enforcement(cgroups, table.as_mut().ok().map(|(table, _)| table))?;
        }
        let mut samples: [[Vec<f64>; 3]; 3] = Default::default();
        let mut nft_baseline: [Vec<f64>; 3] = Default::default();
        let all = [&cgroups.base, &cgroups.enf, &cgroups.nft];
        for round in 0..settings.rounds {
            // UDP: one child, sockets in all three cgroups, interleaved.
            let nft_loaded = table.is_ok();
            if let Ok((table, _)) = &mut table {
                table.enable()?;
            }
            let udp = udp_storm(
                &all[..if nft_loaded { 3 } else { 2 }],
                settings.udp_connects,
            );
            if let Ok((table, _)) = &mut table {
                table.disable()?;
            }
            let udp = udp?;
            for (config, [v4, v6]) in udp.iter().enumerate() {
                samples[0][config].push(*v4);
                samples[1][config].push(*v6);
            }
            if nft_loaded {
                nft_baseline[0].push(udp[BASELINE][0]);
                nft_baseline[1].push(udp[BASELINE][1]);
            }
            // TCP: baseline and enforcer with no chain; baseline and
            // nftables with it.
            let tcp = tcp_storm(&[&cgroups.base, &cgroups.enf], settings.tcp_loops)?;
            samples[2][BASELINE].push(tcp[0]);
            samples[2][ENFORCER].push(tcp[1]);
            let mut line = format!("TCP {:.1}, {:.1}", tcp[0], tcp[1]);
            if let Ok((table, _)) = &mut table {
                table.enable()?;
                let tcp = tcp_storm(&[&cgroups.base, &cgroups.nft], settings.tcp_loops);
                table.disable()?;
                let tcp = tcp?;
                nft_baseline[2].push(tcp[0]);
                samples[2][NFTABLES].push(tcp[1]);
                line.push_str(&format!(
                    "; baseline, nftables {:.1}, {:.1}",
                    tcp[0], tcp[1]
                ));
            }
            eprintln!(
                "round {}/{}: {size} CIDRs: baseline, enforcer, nftables: UDP4 {:?} ns, \
                 UDP6 {:?} ns; baseline, enforcer: {line} µs",
                round + 1,
                settings.rounds,
                udp.iter().map(|[v4, _]| v4.round()).collect::<Vec<_>>(),
                udp.iter().map(|[_, v6]| v6.round()).collect::<Vec<_>>(),
            );
        }
        let (programs, empty_hooks) = {
            let _stats = kernel::BpfStats::enable()?;
            let empty = floor::EmptyHooks::attach(&cgroups.base.path)?;
            let (mut enforcer_passes, mut empty_passes) = (Vec::new(), Vec::new());
            for _ in 0..STATS_PASSES {
                let before = (kernel::programs(daemon.pid())?, empty.programs()?);
                udp_storm(
                    &[&cgroups.base, &cgroups.enf],
                    settings.udp_connects / STATS_PASSES,
                )?;
                tcp_storm(
                    &[&cgroups.base, &cgroups.enf],
                    settings.tcp_loops / STATS_PASSES,
                )?;
                enforcer_passes.push((before.0, kernel::programs(daemon.pid())?));
                empty_passes.push((before.1, empty.programs()?));
            }
            (
                kernel::over_passes(&enforcer_passes),
                kernel::over_passes(&empty_passes),
            )
        };
        let status = daemon.status()?;
        let image_bytes = image_map_words(&status).map(|words| words * 8);
        results.push(SizeResult {
            size,
            samples,
            nft_baseline,
            programs,
            empty_hooks,
            ready_s,
            rss: kernel::rss(daemon.pid())?,
            maps: kernel::map_memory(daemon.pid())?,
            image_bytes,
            nft: table.map(|(_, loaded)| loaded),
        });
    }
    Ok(results)
}

/// Sends to the sentinel from `enf` and `nft` (refused) and from `base`
/// (let through): the numbers are worth nothing if the rules do not act.
fn check_enforcement(cgroups: &Cgroups, table: Option<&mut nft::NftTable>) -> Result<()> {
    let probe = |cgroup: &Path| storm_output(&["probe".as_ref(), cgroup.as_os_str()]);
    ensure!(
        probe(&cgroups.base.path)? == "sent",
        "a datagram to {SENTINEL_V4} from the baseline cgroup was not sent"
    );
    let refused = probe(&cgroups.enf.path)?;
    ensure!(
        refused == "refused",
        "the enforcer let a datagram to the listed {SENTINEL_V4} through ({refused})"
    );
    if let Some(table) = table {
        table.enable()?;
        let refused = probe(&cgroups.nft.path);
        table.disable()?;
        let refused = refused?;
        ensure!(
            refused == "refused",
            "nftables let a datagram to the listed {SENTINEL_V4} through ({refused})"
        );
    }
    Ok(())
}

/// UDP connects on a socket per cgroup, interleaved: ns per connect for
/// each cgroup, `[IPv4, IPv6]`.
fn udp_storm(cgroups: &[&BenchCgroup], connects: usize) -> Result<Vec<[f64; 2]>> {
    let connects = connects.to_string();
    let mut args = vec!["udp".as_ref(), connects.as_ref()];
    args.extend(cgroups.iter().map(|cgroup| cgroup.path.as_os_str()));
    let values = storm_numbers(&args, 2 * cgroups.len())?;
    Ok(values.chunks(2).map(|pair| [pair[0], pair[1]]).collect())
}

/// µs per TCP connect + accept + close for each cgroup, interleaved.
fn tcp_storm(cgroups: &[&BenchCgroup], loops: usize) -> Result<Vec<f64>> {
    let loops = loops.to_string();
    let mut args = vec!["tcp".as_ref(), loops.as_ref()];
    args.extend(cgroups.iter().map(|cgroup| cgroup.path.as_os_str()));
    storm_numbers(&args, cgroups.len())
}

/// The `count` numbers a storm child printed, for the storm `args` name.
fn storm_numbers(args: &[&OsStr], count: usize) -> Result<Vec<f64>> {
    let output = storm_output(args)?;
    let values: Vec<f64> = output
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{:?} storm output {output:?}", args[0]))?;
    ensure!(
        values.len() == count,
        "{:?} storm output {output:?}",
        args[0]
    );
    Ok(values)
}
