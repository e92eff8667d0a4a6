//! The `net` scenario's tables and JSON records.

use serde_json::{Value, json};

use super::{
    children::{TCP_BATCH, UDP_BATCH},
    measured::{BASELINE, ENFORCER, NFTABLES, STATS_PASSES, Settings, SizeResult, WORKLOADS},
};
use crate::bench::kernel;

const CONFIGS: [&str; 3] = ["baseline", "enforcer", "nftables"];

pub(crate) fn size_label(size: usize) -> String {
    match size {
        0 => "0".to_string(),
        n if n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

fn cell(value: Option<f64>, digits: usize) -> String {
    value.map_or("-".to_string(), |value| format!("{value:.digits$}"))
}

/// The enforcer's programs, then the empty ones that show the floor.
fn all_programs(result: &SizeResult) -> impl Iterator<Item = &kernel::Program> {
    result.programs.iter().chain(&result.empty_hooks)
}

/// Prints the tables; returns the JSON records.
pub(crate) fn report(results: &[SizeResult], settings: &Settings) -> Vec<Value> {
    let mut json = Vec::new();
    for (workload, (key, label, unit)) in WORKLOADS.iter().enumerate() {
        let digits = if *unit == "ns" { 0 } else { 1 };
        println!(
            "\n{label} (median {unit} per {}):\n",
            if workload == 2 {
                "iteration"
            } else {
                "connect"
            }
        );
        println!(
            "| CIDRs | baseline | enforcer | ratio | nftables | ratio | enforcer − baseline |"
        );
        println!("|---|---|---|---|---|---|---|");
        for result in results {
            let base = result.median(workload, BASELINE);
            let enf = result.median(workload, ENFORCER);
            let added = result.added(workload, ENFORCER);
            println!(
                "| {} | {} | {} | {} | {} | {} | {} {unit} |",
                size_label(result.size),
                cell(base, digits),
                cell(enf, digits),
                cell(result.ratio(workload, ENFORCER), 3),
                cell(result.median(workload, NFTABLES), digits),
                cell(result.ratio(workload, NFTABLES), 3),
                cell(added, digits + 1),
            );
            for (config, name) in CONFIGS.iter().enumerate() {
                if result.samples[workload][config].is_empty() {
                    continue;
                }
                json.push(json!({
                    "scenario": "net",
                    "workload": key,
                    "cidrs": result.size,
                    "config": name,
                    "unit": unit,
                    "median": result.median(workload, config),
                    "ratio": result.ratio(workload, config),
                    "samples": result.samples[workload][config],
                    "baseline_samples": if config == NFTABLES {
                        &result.nft_baseline[workload]
                    } else {
                        &result.samples[workload][BASELINE]
                    },
                    "added_median": result.added(workload, config),
                }));
            }
        }
    }
    println!(
        "\n{} rounds. UDP: per round, {} connects per family on a socket in each \
         configuration's cgroup, interleaved in batches of {UDP_BATCH} in one process. A UDP \
         connect sends no packet, so nftables (which judges packets) costs it nothing by \
         construction. TCP: {} iterations per configuration and round, interleaved in batches \
         of {TCP_BATCH}: baseline and enforcer in one process with no nftables chain, baseline \
         and nftables in another with the chain. Ratios and differences are medians over the \
         rounds of each round's value against the baseline measured in the same process.",
        settings.rounds, settings.udp_connects, settings.tcp_loops
    );

    // Per-program cost: one row per program, one column per size.
    let mut names: Vec<&str> = results
        .iter()
        .flat_map(all_programs)
        .map(|program| program.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    println!("\nEnforcer programs, ns per run (run count) with kernel.bpf_stats_enabled:\n");
    println!(
        "| program | {} |",
        results
            .iter()
            .map(|result| format!("{} CIDRs", size_label(result.size)))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(results.len()));
    for name in &names {
        let cells: Vec<String> = results
            .iter()
            .map(
                |result| match all_programs(result).find(|program| program.name == *name) {
                    Some(program) => match program.ns_per_run() {
                        Some(ns) => format!("{ns:.0} ({})", program.run_cnt),
                        None => "not run".to_string(),
                    },
                    None => "-".to_string(),
                },
            )
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
    for result in results {
        let scenarios = [
            ("program", &result.programs),
            ("empty_hook", &result.empty_hooks),
        ];
        for (scenario, programs) in scenarios {
            for program in programs {
                json.push(json!({
                    "scenario": scenario,
                    "cidrs": result.size,
                    "program": program.name,
                    "prog_type": program.prog_type,
                    "run_time_ns": program.run_time_ns,
                    "run_cnt": program.run_cnt,
                    "ns_per_run": program.ns_per_run(),
                    "pass_ns_per_run": program.pass_ns,
                }));
            }
        }
    }
    println!(
        "\n{STATS_PASSES} passes of the workloads per size, as long as one round together, in \
         the enforcer's cgroup and in the baseline's, statistics on only then: ns per run is the \
         median of the passes' values, the run count their total. `empty_connect4` and `empty_connect6` are the bench's own: \
         programs that let everything through, on the baseline cgroup's hooks in that pass. \
         They show what a hook costs with no work (the call of the program and the statistics \
         included), the floor under the enforcer's numbers. The exec hook is global: it counts \
         every exec on the machine in that time."
    );

    println!("\nPolicy load and memory per size:\n");
    println!(
        "| CIDRs | enforcer start to ready s | daemon RSS MiB | of which mapped kernel maps MiB | kernel maps MiB | of which image MiB | nft -f s | nft peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for result in results {
        let (nft_s, nft_rss) = match &result.nft {
            Ok(loaded) => (
                format!("{:.2}", loaded.seconds),
                format!("{:.1}", loaded.peak_rss_kib as f64 / 1024.0),
            ),
            Err(error) => (format!("failed: {error}"), "-".to_string()),
        };
        println!(
            "| {} | {:.2} | {:.1} | {:.1} | {:.1} | {} | {nft_s} | {nft_rss} |",
            size_label(result.size),
            result.ready_s,
            result.rss.total_kib as f64 / 1024.0,
            result.rss.kernel_maps_kib as f64 / 1024.0,
            result.kernel_bytes() as f64 / 1048576.0,
            result.image_bytes.map_or("-".to_string(), |bytes| format!(
                "{:.1}",
                bytes as f64 / 1048576.0
            )),
        );
        json.push(json!({
            "scenario": "memory",
            "cidrs": result.size,
            "ready_s": result.ready_s,
            "daemon_rss_kib": result.rss.total_kib,
            "daemon_rss_mapped_kernel_maps_kib": result.rss.kernel_maps_kib,
            "maps_held": result.maps.0,
            "maps_held_memlock_bytes": result.maps.1,
            "image_bytes": result.image_bytes,
            "kernel_maps_bytes": result.kernel_bytes(),
            "nft_load_s": result.nft.as_ref().ok().map(|loaded| loaded.seconds),
            "nft_peak_rss_kib": result.nft.as_ref().ok().map(|loaded| loaded.peak_rss_kib),
            "nft_error": result.nft.as_ref().err(),
        }));
    }
    println!(
        "\nKernel maps: the sum of `memlock:` over the map descriptors the daemon holds (each \
         map once), plus the live generation image, which it holds no descriptor of (it lives \
         in the outer map; its size from `status`). nft: the `nft -f` that loaded the sets, \
         its wall time and peak RSS; the kernel's memory for the sets is not counted. Daemon RSS \
         includes the event ring buffer, a kernel map the daemon maps to read; its pages are \
         shown apart and counted with the kernel maps."
    );
    json
}
