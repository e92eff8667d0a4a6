//! `cargo xtask bench`: what enforcement costs, measured side by side with
//! a baseline and with the tools an administrator would use instead, in
//! one run. Scenarios alternate round by round (A B C A B C ...), so drift
//! in a noisy VM falls on all of them alike, and the report gives medians
//! and each scenario's ratio to the baseline, then the targets
//! next to what was measured.
//!
//! Scenario `exec`: posix_spawn (vfork + execve) of a tiny static binary, in a cgroup of
//! the bench's own, with no enforcer, with an enforcer holding exec rules
//! of several sizes that do not match the binary (the cost every allowed
//! exec pays), and with fapolicyd denying one path the storm never runs.
//! Each of those runs between two baseline batches and is compared with
//! their mean.
//!
//! Then the `exec_sha256` window: how long after a banned copy is written
//! the generation that bans it is in force, the `packets` scenario (see
//! `packets`), the network scenarios against nftables (`net`), policy
//! apply times (`apply`), the event storm (`events`) and the longest
//! connect stall during policy switches (`switch`).

use std::{
    fs,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::build;

pub(crate) mod apply;
pub(crate) mod cgroup;
pub(crate) mod cidrs;
pub(crate) mod daemon;
pub(crate) mod events;
pub(crate) mod exec;
pub(crate) mod fapolicyd;
pub(crate) mod floor;
pub(crate) mod kernel;
pub(crate) mod net;
pub(crate) mod nft;
pub(crate) mod packets;
pub(crate) mod stats;
pub(crate) mod storm;
pub(crate) mod switch;
pub(crate) mod targets;

const SCENARIOS: [&str; 7] = [
    "exec", "hash", "packets", "net", "apply", "events", "switch",
];

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Fewer rounds, smaller sizes: the whole run in under two minutes.
    #[arg(long)]
    quick: bool,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "target/bench/results.json")]
    json: PathBuf,
    /// Policy sizes (CIDRs) of the network scenarios [default: 0,1000,100000,1000000;
    /// with --quick 0,1000,100000]. The largest is also the size of `apply`.
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Blocked connects per second in the event storm.
    #[arg(long, default_value_t = 100_000)]
    event_rate: u64,
    /// Scenarios to run [default: all]: exec, hash, packets, net, apply,
    /// events, switch.
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// Internal: run one of the bench's child workloads (inside a cgroup).
    #[arg(long, hide = true, num_args = 1.., allow_hyphen_values = true)]
    storm: Vec<String>,
}

pub(crate) fn bench(args: &BenchArgs) -> Result<ExitCode> {
    if let Some((kind, rest)) = args.storm.split_first() {
        return match kind.as_str() {
            "udp" => net::udp_storm_child(rest),
            "tcp" => net::tcp_storm_child(rest),
            "probe" => net::probe_child(rest),
            "events" => events::event_storm_child(rest),
            other => bail!("unknown storm {other}"),
        };
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the benchmark loads eBPF programs and needs root");
    }
    let selected: Vec<String> = args
        .only
        .clone()
        .unwrap_or_else(|| SCENARIOS.iter().map(|name| name.to_string()).collect());
    if let Some(unknown) = selected
        .iter()
        .find(|name| !SCENARIOS.contains(&name.as_str()))
    {
        bail!("unknown scenario {unknown}; the scenarios are {SCENARIOS:?}");
    }
    let runs = |name: &str| selected.iter().any(|selected| selected == name);
    let started = Instant::now();
    let built = build::build(true)?;
    let work = crate::workspace::target_dir().join("bench");
    fs::create_dir_all(&work)?;
    let _bpffs = crate::bpffs::MountedDuringRun::mount();
    let cgroup = cgroup::BenchCgroup::create()?;
    let mut json: Vec<Value> = Vec::new();
    let mut results = targets::Measured::default();
    let mut failed = Vec::new();
    let mut attempt = |name: &str, json: &mut Vec<Value>, outcome: Result<()>| {
        if let Err(error) = outcome {
            println!(
                "
**scenario {name} failed: {error:#}**"
            );
            json.push(json!({"scenario": name, "error": format!("{error:#}")}));
            failed.push(name.to_string());
        }
    };

    if runs("exec") || runs("hash") {
        let target = exec::static_noop(&work)?;
        if runs("exec") {
            let outcome = exec::exec_scenario(args.quick, &built.enforcer, &work, &cgroup, &target)
                .map(|(records, exec)| {
                    json.extend(records);
                    results.exec = Some(exec);
                });
            attempt("exec", &mut json, outcome);
        }
        if runs("hash") {
            let outcome = exec::hash_scenario(args.quick, &built.enforcer, &work, &cgroup, &target)
                .map(|record| json.push(record));
            attempt("hash", &mut json, outcome);
        }
    }
    if runs("packets") {
        let (packet_rounds, round_trips) = if args.quick { (3, 5_000) } else { (7, 30_000) };
        let outcome = packets::run(
            &built.enforcer,
            &work,
            &cgroup.path,
            packet_rounds,
            round_trips,
        )
        .map(|records| {
            json.extend(
                records
                    .iter()
                    .filter_map(|record| serde_json::from_str(record).ok()),
            )
        });
        attempt("packets", &mut json, outcome);
    }
    let sizes = args.sizes.clone().unwrap_or_else(|| {
        if args.quick {
            vec![0, 1_000, 100_000]
        } else {
            vec![0, 1_000, 100_000, 1_000_000]
        }
    });
    let largest = sizes.iter().copied().max().unwrap_or(0);
    if runs("net") || runs("apply") || runs("events") {
        let cgroups = net::Cgroups::create(&cgroup)?;
        if runs("net") {
            let settings = if args.quick {
                net::Settings {
                    sizes: sizes.clone(),
                    rounds: 7,
                    udp_connects: 20_000,
                    tcp_loops: 500,
                    nft_timeout: Duration::from_secs(60),
                }
            } else {
                net::Settings {
                    sizes: sizes.clone(),
                    rounds: 15,
                    udp_connects: 100_000,
                    tcp_loops: 2_000,
                    nft_timeout: Duration::from_secs(300),
                }
            };
            let outcome = net::run(&built.enforcer, &work, &cgroups, &settings).map(|sizes| {
                json.extend(net::report(&sizes, &settings));
                results.net = sizes;
            });
            attempt("net", &mut json, outcome);
        }
        if runs("apply") {
            let outcome = apply::run(
                &built.enforcer,
                &work,
                &cgroups.enf.path,
                largest,
                if args.quick { 2 } else { 3 },
            )
            .map(|apply| {
                json.push(apply::report(&apply));
                results.apply = Some(apply);
            });
            attempt("apply", &mut json, outcome);
        }
        if runs("events") {
            let seconds = if args.quick { 1 } else { 5 };
            let outcome = events::run(
                &built.enforcer,
                &work,
                &cgroups.enf.path,
                args.event_rate,
                Duration::from_secs(seconds),
            )
            .map(|storm| {
                json.push(events::report(&storm));
                results.events = Some(storm);
            });
            attempt("events", &mut json, outcome);
        }
    }
    if runs("switch") {
        let (prefixes, switches) = if args.quick {
            (100_000, 3)
        } else {
            (1_000_000, 5)
        };
        let outcome = switch::run(&built.enforcer, &work, &cgroup.path, prefixes, switches)
            .and_then(|record| {
                let record: Value = serde_json::from_str(&record)?;
                results.switch_stall_ms = record["slowest_connect_ms"]
                    .as_f64()
                    .map(|ms| (prefixes, ms));
                json.push(record);
                Ok(())
            });
        attempt("switch", &mut json, outcome);
    }

    json.extend(targets::report(&results, args.quick));
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "
Whole run: {elapsed:.0} s (build included)."
    );
    json.push(
        json!({"scenario": "run", "quick": args.quick, "seconds": elapsed, "failed": failed}),
    );
    if let Some(dir) = args.json.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(&args.json, serde_json::to_string_pretty(&json)? + "\n")?;
    println!("JSON: {}", args.json.display());
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
