//! The targets of the benchmark issue, each next to what this run
//! measured, with PASS or MISS. A target whose measurement did not run,
//! or ran at another size than the target names (as with `--quick`), is
//! shown with what was measured and marked as not judged, never as a pass.

use serde_json::{Value, json};

use super::{apply, events, net, stats::median};

#[derive(Default)]
pub(crate) struct Exec {
    /// (exec rules, ratio to the baseline)
    pub enforcer: Vec<(usize, f64)>,
    pub fapolicyd: Option<f64>,
    /// The enforcer with `exec_trusted_only`.
    pub enforcer_trust: Option<f64>,
    /// fapolicyd judging the storm's binary by its trust database.
    pub fapolicyd_trust: Option<f64>,
    pub fapolicyd_missing: Option<String>,
}

#[derive(Default)]
pub(crate) struct Measured {
    pub exec: Option<Exec>,
    pub net: Vec<net::SizeResult>,
    pub apply: Option<apply::ApplyResult>,
    pub events: Option<events::EventResult>,
    /// (prefixes, slowest connect during switches in ms)
    pub switch_stall_ms: Option<(usize, f64)>,
}

struct Row {
    target: String,
    measured: String,
    /// `None`: not judged (not measured, or not at the target's size).
    pass: Option<bool>,
}

const MILLION: usize = 1_000_000;

impl Measured {
    fn at(&self, size: usize) -> Option<&net::SizeResult> {
        self.net.iter().find(|result| result.size == size)
    }

    /// The result at `size`, or else the largest measured, with whether
    /// it is the one the target names.
    fn at_or_largest(&self, size: usize) -> Option<(&net::SizeResult, bool)> {
        self.at(size).map(|result| (result, true)).or_else(|| {
            self.net
                .iter()
                .max_by_key(|result| result.size)
                .map(|result| (result, false))
        })
    }
}

fn judged(exact: bool, pass: bool) -> Option<bool> {
    exact.then_some(pass)
}

fn at_label(size: usize, exact: bool) -> String {
    if exact {
        String::new()
    } else {
        format!(
            " (at {} CIDRs, not the target's size)",
            net::size_label(size)
        )
    }
}

pub(crate) fn report(measured: &Measured, quick: bool) -> Vec<Value> {
    let mut rows = Vec::new();
    let not_run = |target: &str| Row {
        target: target.to_string(),
        measured: "not measured in this run".to_string(),
        pass: None,
    };

    let target = "connect4 program ≤ 150 ns per run at 1M prefixes";
    rows.push(match measured.at_or_largest(MILLION) {
        Some((result, exact)) => match result.program_ns("connect4") {
            Some(ns) => Row {
                target: target.into(),
                measured: format!(
                    "{ns:.0} ns{}{}",
                    at_label(result.size, exact),
                    result
                        .empty_hook_ns("connect4")
                        .map_or(String::new(), |floor| format!(
                            "; an empty connect4 program: {floor:.0} ns"
                        ))
                ),
                pass: judged(exact, ns <= 150.0),
            },
            None => not_run(target),
        },
        None => not_run(target),
    });

    let target = "TCP connect loop enforcer / baseline ≤ 1.03 at 1M CIDRs";
    rows.push(
        match measured
            .at_or_largest(MILLION)
            .and_then(|(result, exact)| Some((result.ratio(2, net::ENFORCER)?, result, exact)))
        {
            Some((ratio, result, exact)) => Row {
                target: target.into(),
                measured: format!("{ratio:.3}{}", at_label(result.size, exact)),
                pass: judged(exact, ratio <= 1.03),
            },
            None => not_run(target),
        },
    );

    let target = "UDP connect added latency < 0.3 µs at 100k CIDRs";
    rows.push(
        match measured
            .at(100_000)
            .and_then(|result| result.added(0, net::ENFORCER))
        {
            Some(added) => Row {
                target: target.into(),
                measured: format!("{:+.0} ns (IPv4)", added),
                pass: Some(added < 300.0),
            },
            None => not_run(target),
        },
    );

    let target = "exec storm enforcer / baseline ≤ 1.02 with 10k rules";
    rows.push(
        match measured.exec.as_ref().and_then(|exec| {
            exec.enforcer
                .iter()
                .find(|(rules, _)| *rules == 10_000)
                .map(|&(_, ratio)| ratio)
        }) {
            Some(ratio) => Row {
                target: target.into(),
                measured: format!("{ratio:.3}"),
                pass: Some(ratio <= 1.02),
            },
            None => not_run(target),
        },
    );

    for (workload, (_, label, _)) in net::WORKLOADS.iter().enumerate() {
        let target = format!("{label}: enforcer at or below nftables at every size");
        let compared: Vec<(usize, f64, f64)> = measured
            .net
            .iter()
            .filter_map(|result| {
                Some((
                    result.size,
                    result.ratio(workload, net::ENFORCER)?,
                    result.ratio(workload, net::NFTABLES)?,
                ))
            })
            .collect();
        let missing: Vec<String> = measured
            .net
            .iter()
            .filter(|result| result.median(workload, net::NFTABLES).is_none())
            .map(|result| net::size_label(result.size))
            .collect();
        if compared.is_empty() {
            rows.push(not_run(&target));
            continue;
        }
        let text: Vec<String> = compared
            .iter()
            .map(|&(size, enf, nft)| format!("{}: {enf:.3} vs {nft:.3}", net::size_label(size)))
            .collect();
        let mut measured_text = format!(
            "ratio to baseline, enforcer vs nftables: {}",
            text.join(", ")
        );
        if !missing.is_empty() {
            measured_text.push_str(&format!(
                "; nftables not measured at {}",
                missing.join(", ")
            ));
        }
        // Within 1% (about the noise of a median here), "at or below" holds.
        let pass = compared.iter().all(|&(_, enf, nft)| enf <= nft + 0.01);
        rows.push(Row {
            target,
            measured: measured_text,
            pass: if missing.is_empty() || !pass {
                Some(pass)
            } else {
                None
            },
        });
    }

    let target = "exec: enforcer faster than fapolicyd";
    rows.push(match &measured.exec {
        Some(exec) => match (exec.fapolicyd, &exec.fapolicyd_missing) {
            (Some(fapolicyd), _) => {
                let worst = exec
                    .enforcer
                    .iter()
                    .map(|&(_, ratio)| ratio)
                    .fold(0.0, f64::max);
                Row {
                    target: target.into(),
                    measured: format!(
                        "ratio to baseline: enforcer ≤ {worst:.3} (any rule count), fapolicyd {fapolicyd:.3}"
                    ),
                    pass: Some(worst < fapolicyd),
                }
            }
            (None, Some(reason)) => Row {
                target: target.into(),
                measured: format!("fapolicyd could not run: {reason}"),
                pass: None,
            },
            (None, None) => not_run(target),
        },
        None => not_run(target),
    });

    let target =
        "exec with trust: enforcer (exec_trusted_only) faster than fapolicyd (trust database)";
    rows.push(match &measured.exec {
        Some(exec) => match (
            exec.enforcer_trust,
            exec.fapolicyd_trust,
            &exec.fapolicyd_missing,
        ) {
            (Some(enforcer), Some(fapolicyd), _) => Row {
                target: target.into(),
                measured: format!(
                    "ratio to baseline: enforcer {enforcer:.3}, fapolicyd {fapolicyd:.3}"
                ),
                pass: Some(enforcer < fapolicyd),
            },
            (_, None, Some(reason)) => Row {
                target: target.into(),
                measured: format!("fapolicyd could not run: {reason}"),
                pass: None,
            },
            _ => not_run(target),
        },
        None => not_run(target),
    });

    let target = "1M CIDRs applied in ≤ 3 s (daemon start to ready)";
    rows.push(match measured.at_or_largest(MILLION) {
        Some((result, exact)) => Row {
            target: target.into(),
            measured: format!("{:.2} s{}", result.ready_s, at_label(result.size, exact)),
            pass: judged(exact, result.ready_s <= 3.0),
        },
        None => not_run(target),
    });
    let target = "1M CIDRs applied in ≤ 3 s (policy apply onto a small policy)";
    rows.push(match &measured.apply {
        Some(apply) => {
            let ms = median(&apply.onto_small_ms);
            let exact = apply.size == MILLION;
            Row {
                target: target.into(),
                measured: format!("{:.2} s{}", ms / 1000.0, at_label(apply.size, exact)),
                pass: judged(exact, ms <= 3000.0),
            }
        }
        None => not_run(target),
    });
    let target = "a 1k-entry change (to a 1M policy) in ≤ 50 ms";
    rows.push(match &measured.apply {
        Some(apply) => {
            let ms = median(&apply.change_ms);
            let exact = apply.size == MILLION;
            Row {
                target: target.into(),
                measured: format!("{ms:.0} ms{}", at_label(apply.size, exact)),
                pass: judged(exact, ms <= 50.0),
            }
        }
        None => not_run(target),
    });
    let target = "switch stall ≤ 50 ms";
    rows.push(match measured.switch_stall_ms {
        Some((prefixes, ms)) => Row {
            target: target.into(),
            measured: format!(
                "slowest connect {ms:.2} ms while switching {} CIDRs",
                net::size_label(prefixes)
            ),
            pass: Some(ms <= 50.0),
        },
        None => not_run(target),
    });

    let target = "zero drops at 100k events/s, daemon under one core";
    rows.push(match &measured.events {
        Some(storm) => {
            let lost = storm.kernel_blocked.saturating_sub(storm.received);
            let reached = storm.achieved_rate >= 0.95 * 100_000.0;
            Row {
                target: target.into(),
                measured: format!(
                    "{:.0} events/s reached, {} ring buffer drops, {} of {} events not received, \
                     daemon {:.0}% of a core",
                    storm.achieved_rate,
                    storm.ring_drops,
                    lost,
                    storm.kernel_blocked,
                    storm.daemon_cpu_percent
                ),
                pass: if reached {
                    Some(storm.ring_drops == 0 && lost == 0 && storm.daemon_cpu_percent < 100.0)
                } else {
                    None
                },
            }
        }
        None => not_run(target),
    });

    let target = "daemon RSS < 30 MB with 1M CIDRs loaded";
    rows.push(match measured.at_or_largest(MILLION) {
        Some((result, exact)) => {
            let mb = |kib: u64| kib as f64 * 1024.0 / 1e6;
            let own = mb(result.rss.own_kib());
            Row {
                target: target.into(),
                measured: format!(
                    "{own:.1} MB at start{} (VmRSS {:.1} MB less the mapped event ring); \
                     kernel maps {:.1} MB separately",
                    at_label(result.size, exact),
                    mb(result.rss.total_kib),
                    result.kernel_bytes() as f64 / 1e6
                ),
                pass: judged(exact, own < 30.0),
            }
        }
        None => not_run(target),
    });

    println!("\nTargets (issue 7):\n");
    println!("| target | measured | result |");
    println!("|---|---|---|");
    let mut json = Vec::new();
    for row in &rows {
        let result = match row.pass {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "not judged",
        };
        println!("| {} | {} | {result} |", row.target, row.measured);
        json.push(json!({
            "scenario": "target",
            "target": row.target,
            "measured": row.measured,
            "result": result,
        }));
    }
    if quick {
        println!(
            "\n--quick measures smaller sizes: targets named for 1M show the largest size \
             measured and are not judged. Run without --quick for the verdicts."
        );
    }
    json
}
