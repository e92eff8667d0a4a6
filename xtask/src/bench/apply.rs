//! Scenario `apply`: how long `enforcer policy apply` takes, end to end
//! (the client reads and sends the files, the daemon parses, compiles,
//! stores and switches, the client prints the diff), for a large policy
//! onto a small one, and for a change of 1,000 CIDRs to the large one
//! (policy B is policy A with 1,000 CIDRs replaced). The daemon's start to
//! ready with the large policy is measured by the `net` scenario.

use std::{path::Path, process::Command, process::Stdio, time::Instant};

use anyhow::{Result, ensure};
use serde_json::{Value, json};

use super::{cidrs::Prefixes, daemon::Daemon, kernel, net, stats::median};

pub(crate) const CHANGES: usize = 1000;

pub(crate) struct ApplyResult {
    pub size: usize,
    pub onto_small_ms: Vec<f64>,
    pub change_ms: Vec<f64>,
    pub rss_after: kernel::Rss,
}

pub(crate) fn run(
    enforcer: &Path,
    work: &Path,
    cgroup: &Path,
    size: usize,
    repeats: usize,
) -> Result<ApplyResult> {
    let small = net::policy_file(work, &Prefixes::generate(1000), "apply-small")?;
    let large = Prefixes::generate(size);
    let a = net::policy_file(work, &large, "apply-a")?;
    let b = net::policy_file(work, &large.changed(CHANGES), "apply-b")?;
    let (daemon, _) = Daemon::start(enforcer, work, cgroup, &small, &[])?;
    let apply = |file: &Path| -> Result<f64> {
        let started = Instant::now();
        let status = Command::new(enforcer)
            .args(["policy", "apply"])
            .arg(file)
            .arg("--socket")
            .arg(daemon.socket())
            .stdout(Stdio::null())
            .status()?;
        ensure!(status.success(), "policy apply {} failed", file.display());
        Ok(started.elapsed().as_secs_f64() * 1000.0)
    };
    let (mut onto_small_ms, mut change_ms) = (Vec::new(), Vec::new());
    for repeat in 0..repeats {
        onto_small_ms.push(apply(&a)?);
        change_ms.push(apply(&b)?);
        change_ms.push(apply(&a)?);
        if repeat + 1 < repeats {
            apply(&small)?;
        }
        eprintln!(
            "apply {}/{repeats}: {size} CIDRs onto 1k: {:.0} ms; {CHANGES} changed: {:.0} ms, {:.0} ms",
            repeat + 1,
            onto_small_ms[repeat],
            change_ms[2 * repeat],
            change_ms[2 * repeat + 1]
        );
    }
    Ok(ApplyResult {
        size,
        onto_small_ms,
        change_ms,
        rss_after: kernel::rss(daemon.pid())?,
    })
}

pub(crate) fn report(result: &ApplyResult) -> Value {
    println!(
        "\nPolicy apply, end to end (`enforcer policy apply`, client included), {} CIDRs:\n",
        result.size
    );
    println!("| apply | median ms | samples ms |");
    println!("|---|---|---|");
    println!(
        "| {} CIDRs onto a policy of 1k | {:.0} | {:?} |",
        result.size,
        median(&result.onto_small_ms),
        rounded(&result.onto_small_ms)
    );
    println!(
        "| {CHANGES} of {} CIDRs changed | {:.0} | {:?} |",
        result.size,
        median(&result.change_ms),
        rounded(&result.change_ms)
    );
    println!(
        "\nDaemon RSS after these applies: {:.1} MiB, of which {:.1} MiB mapped kernel maps.",
        result.rss_after.total_kib as f64 / 1024.0,
        result.rss_after.kernel_maps_kib as f64 / 1024.0
    );
    json!({
        "scenario": "apply",
        "cidrs": result.size,
        "changes": CHANGES,
        "onto_small_ms": result.onto_small_ms,
        "change_ms": result.change_ms,
        "onto_small_median_ms": median(&result.onto_small_ms),
        "change_median_ms": median(&result.change_ms),
        "rss_after_kib": result.rss_after.total_kib,
        "rss_after_mapped_kernel_maps_kib": result.rss_after.kernel_maps_kib,
    })
}

fn rounded(values: &[f64]) -> Vec<i64> {
    values.iter().map(|value| value.round() as i64).collect()
}
