//! Scenario `packets`: what the domain programs cost traffic that is not
//! DNS and not a ClientHello. A process in the bench cgroup makes round
//! trips of a small message over loopback TCP to itself (each message one
//! segment, passing the cgroup_skb hooks on the way out and in), with no
//! enforcer, with one whose policy lists no domain (the programs are then
//! not attached, which this checks), and with one listing a thousand
//! domains. While an enforcer runs, kernel
//! BPF statistics are on, and the programs' own run time per packet is
//! read from the daemon's program descriptors.

use std::{
    ffi::OsStr,
    fs,
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    path::Path,
    process::ExitCode,
    time::Instant,
};

use anyhow::{Context, Result, ensure};

use super::{daemon::Daemon, kernel, stats::median, storm::storm};

const PROG_TYPE_CGROUP_SKB: u32 = 8;
const MESSAGE_BYTES: usize = 64;

struct Scenario {
    name: &'static str,
    /// `None` runs no enforcer.
    domains: Option<usize>,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "no enforcer",
        domains: None,
    },
    Scenario {
        name: "enforcer, no domains",
        domains: Some(0),
    },
    Scenario {
        name: "enforcer, 1000 domains",
        domains: Some(1000),
    },
];

/// Runs the rounds and prints the table; returns the JSON records.
pub(crate) fn run(
    enforcer: &Path,
    work: &Path,
    cgroup: &Path,
    rounds: usize,
    round_trips: usize,
) -> Result<Vec<String>> {
    let stats = kernel::BpfStats::enable()?;
    let mut per_write: Vec<Vec<f64>> = vec![Vec::new(); SCENARIOS.len()];
    let mut per_run: Vec<Vec<f64>> = vec![Vec::new(); SCENARIOS.len()];
    for round in 0..rounds {
        for (index, scenario) in SCENARIOS.iter().enumerate() {
            let daemon = match scenario.domains {
                Some(domains) => Some(Daemon::start(
                    enforcer,
                    work,
                    cgroup,
                    &domains_policy(work, domains)?,
                    &[],
                )?),
                None => None,
            };
            let micros = packet_storm(cgroup, round_trips)?;
            if let Some((daemon, _)) = &daemon {
                let (time, runs) = cgroup_skb_totals(daemon.pid())?;
                if scenario.domains == Some(0) {
                    // Loaded but not attached while no domain is listed.
                    ensure!(
                        runs == 0,
                        "the cgroup_skb programs ran though the policy lists no domain"
                    );
                } else {
                    ensure!(runs > 0, "the cgroup_skb programs did not run");
                    per_run[index].push(time as f64 / runs as f64);
                }
            }
            eprintln!(
                "round {}/{rounds}: {}: {micros:.2} µs per round trip",
                round + 1,
                scenario.name
            );
            per_write[index].push(micros);
        }
    }
    drop(stats);

    let baseline = median(&per_write[0]);
    println!("\n| scenario | median µs per round trip | ratio | cgroup_skb ns per run |");
    println!("|---|---|---|---|");
    let mut json = Vec::new();
    for (index, scenario) in SCENARIOS.iter().enumerate() {
        let value = median(&per_write[index]);
        let program = (!per_run[index].is_empty()).then(|| median(&per_run[index]));
        println!(
            "| {} | {value:.2} | {:.3} | {} |",
            scenario.name,
            value / baseline,
            program.map_or("-".to_string(), |ns| format!("{ns:.0}"))
        );
        json.push(format!(
            r#"{{"scenario":"packets","name":{:?},"median_us":{value:.4},"ratio":{:.4},"program_ns":{},"samples_us":{:?}}}"#,
            scenario.name,
            value / baseline,
            program.map_or("null".to_string(), |ns| format!("{ns:.1}")),
            per_write[index]
        ));
    }
    println!(
        "\n{rounds} rounds of {round_trips} round trips of {MESSAGE_BYTES} bytes over loopback TCP, \
         scenarios alternating; program time from kernel.bpf_stats_enabled (run time / run \
         count, both directions)."
    );
    Ok(json)
}

/// A policy listing `domains` names that the storm never uses.
fn domains_policy(work: &Path, domains: usize) -> Result<std::path::PathBuf> {
    let mut policy = String::from("version = 1\n");
    if domains == 0 {
        policy.push_str("[[block]]\nname = \"unused\"\ncidrs = [\"192.0.2.0/24\"]\n");
    } else {
        let names: Vec<String> = (0..domains)
            .map(|index| format!("\"service-{index}.example\""))
            .collect();
        policy.push_str(&format!(
            "[[block]]\nname = \"names\"\ndomains = [{}]\n",
            names.join(", ")
        ));
    }
    let file = work.join(format!("policy-domains-{domains}.toml"));
    fs::write(&file, policy)?;
    Ok(file)
}

/// Microseconds per round trip, from a child in the bench cgroup.
fn packet_storm(cgroup: &Path, round_trips: usize) -> Result<f64> {
    let count = round_trips.to_string();
    let args = [cgroup.as_os_str(), OsStr::new(&count)];
    Ok(storm("packet-storm", &args)? / round_trips as f64 / 1000.0)
}

/// The storm itself (`xtask packet-storm CGROUP COUNT`): joins the cgroup,
/// then makes `COUNT` round trips of a small message to an echo server of
/// its own, over one TCP connection, and prints the nanoseconds they took.
/// Round trips, not a stream: each message is then exactly one segment
/// each way, where a stream would let the kernel merge writes.
pub(crate) fn packet_storm_child(cgroup: &Path, count: usize) -> Result<ExitCode> {
    fs::write(cgroup.join("cgroup.procs"), "0").context("joining the bench cgroup")?;
    let listener = TcpListener::bind("127.0.0.90:0").context("listening on 127.0.0.90")?;
    let address = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut message = [0u8; MESSAGE_BYTES];
        loop {
            match stream.read_exact(&mut message) {
                Ok(()) => stream.write_all(&message)?,
                Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(error) => return Err(error),
            }
        }
    });
    let mut stream = TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    let message = [0x42u8; MESSAGE_BYTES];
    let mut reply = [0u8; MESSAGE_BYTES];
    let started = Instant::now();
    for _ in 0..count {
        stream.write_all(&message)?;
        stream.read_exact(&mut reply)?;
    }
    let elapsed = started.elapsed();
    stream.shutdown(Shutdown::Write)?;
    echo.join()
        .map_err(|_| anyhow::anyhow!("the echo server panicked"))??;
    ensure!(reply == message, "the echo came back changed");
    println!("{}", elapsed.as_nanos());
    Ok(ExitCode::SUCCESS)
}

/// Run time and run count of the cgroup_skb programs the process `pid`
/// holds.
fn cgroup_skb_totals(pid: u32) -> Result<(u64, u64)> {
    Ok(kernel::programs(pid)?
        .iter()
        .filter(|program| program.prog_type == PROG_TYPE_CGROUP_SKB)
        .fold((0, 0), |(time, runs), program| {
            (time + program.run_time_ns, runs + program.run_cnt)
        }))
}
