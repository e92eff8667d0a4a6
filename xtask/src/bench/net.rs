//! Scenario `net`: what a policy of N CIDRs costs connections that it
//! does not list, with the enforcer and with nftables holding the same
//! CIDRs, next to no enforcement at all.
//!
//! Three cgroups below the bench's own: `base` (nothing attached), `enf`
//! (an enforcer attached there with the policy of N CIDRs) and `nft` (an
//! nftables rule matches its sockets). For each size the enforcer and the
//! nftables sets are loaded once; then in every round a child process
//! runs the workloads in `base`, in `enf` and in `nft`, in turn. The
//! nftables chain exists only during its turn, so the other turns run
//! with no netfilter hook of ours. The workloads:
//! - UDP `connect()` of one socket to an unlisted loopback address, over
//!   and over (IPv4, then IPv6 to `::1`): ns per connect. No packet is
//!   sent, so nftables, which judges packets, has nothing to do here;
//! - TCP connect + accept + close on loopback (IPv4): µs per iteration.
//!   Both ends are in the cgroup, so every segment passes the hooks.
//!
//! After the rounds, one more pass in `enf` with `kernel.bpf_stats_enabled`
//! gives every program's run time per run (statistics cost time of their
//! own, so the timed rounds run without them), and the daemon's memory is
//! read.

use std::{
    fs,
    io::ErrorKind,
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use super::{
    BenchCgroup, Daemon, cidrs::Prefixes, cidrs::SENTINEL_V4, kernel, median, nft, storm_output,
};

pub struct Settings {
    pub sizes: Vec<usize>,
    pub rounds: usize,
    pub udp_connects: usize,
    pub tcp_loops: usize,
    /// How long `nft -f` may take to load one size.
    pub nft_timeout: Duration,
}

pub const WORKLOADS: [(&str, &str, &str); 3] = [
    ("udp4_connect", "UDP connect, IPv4", "ns"),
    ("udp6_connect", "UDP connect, IPv6", "ns"),
    ("tcp_loop", "TCP connect+accept+close, IPv4", "µs"),
];
pub const BASELINE: usize = 0;
pub const ENFORCER: usize = 1;
pub const NFTABLES: usize = 2;
const CONFIGS: [&str; 3] = ["baseline", "enforcer", "nftables"];

pub struct SizeResult {
    pub size: usize,
    /// `samples[workload][config]`, one per round.
    pub samples: [[Vec<f64>; 3]; 3],
    pub programs: Vec<kernel::Program>,
    pub ready_s: f64,
    pub rss_kib: u64,
    pub maps: (usize, u64),
    pub image_kib: Option<u64>,
    pub nft: std::result::Result<nft::Loaded, String>,
}

impl SizeResult {
    pub fn median(&self, workload: usize, config: usize) -> Option<f64> {
        let samples = &self.samples[workload][config];
        (!samples.is_empty()).then(|| median(samples))
    }

    pub fn ratio(&self, workload: usize, config: usize) -> Option<f64> {
        Some(self.median(workload, config)? / self.median(workload, BASELINE)?)
    }

    pub fn program_ns(&self, name: &str) -> Option<f64> {
        self.programs
            .iter()
            .find(|program| program.name == name)?
            .ns_per_run()
    }
}

pub struct Cgroups {
    pub base: BenchCgroup,
    pub enf: BenchCgroup,
    pub nft: BenchCgroup,
}

impl Cgroups {
    pub fn create(parent: &BenchCgroup) -> Result<Self> {
        Ok(Self {
            base: parent.child("base")?,
            enf: parent.child("enf")?,
            nft: parent.child("nft")?,
        })
    }
}

pub fn policy_file(work: &Path, prefixes: &Prefixes, tag: &str) -> Result<PathBuf> {
    let file = work.join(format!("policy-net-{tag}.toml"));
    prefixes.write_policy(&file)?;
    Ok(file)
}

pub fn run(
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
        for round in 0..settings.rounds {
            for (config, cgroup) in [&cgroups.base, &cgroups.enf, &cgroups.nft]
                .into_iter()
                .enumerate()
            {
                if config == NFTABLES {
                    match &mut table {
                        Ok((table, _)) => table.enable()?,
                        Err(_) => continue,
                    }
                }
                let measured = net_storm(&cgroup.path, settings);
                if config == NFTABLES
                    && let Ok((table, _)) = &mut table
                {
                    table.disable()?;
                }
                let measured = measured?;
                eprintln!(
                    "round {}/{}: {size} CIDRs, {}: UDP4 {:.0} ns, UDP6 {:.0} ns, TCP {:.1} µs",
                    round + 1,
                    settings.rounds,
                    CONFIGS[config],
                    measured[0],
                    measured[1],
                    measured[2]
                );
                for (workload, value) in measured.into_iter().enumerate() {
                    samples[workload][config].push(value);
                }
            }
        }
        let programs = {
            let _stats = kernel::BpfStats::enable()?;
            net_storm(&cgroups.enf.path, settings)?;
            kernel::programs(daemon.pid())?
        };
        let status = daemon.status()?;
        let image_kib = status["image"]["words"]
            .as_u64()
            .map(|words| words * 8 / 1024);
        results.push(SizeResult {
            size,
            samples,
            programs,
            ready_s,
            rss_kib: kernel::rss_kib(daemon.pid())?,
            maps: kernel::map_memory(daemon.pid())?,
            image_kib,
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

/// One pass of the three workloads in `cgroup`: UDP4 ns, UDP6 ns, TCP µs.
fn net_storm(cgroup: &Path, settings: &Settings) -> Result<[f64; 3]> {
    let output = storm_output(&[
        "net".as_ref(),
        cgroup.as_os_str(),
        settings.udp_connects.to_string().as_ref(),
        settings.tcp_loops.to_string().as_ref(),
    ])?;
    let values: Vec<f64> = output
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("net storm output {output:?}"))?;
    ensure!(values.len() == 3, "net storm output {output:?}");
    Ok([values[0], values[1], values[2]])
}

/// `bench --storm net CGROUP UDP_CONNECTS TCP_LOOPS`: joins the cgroup and
/// prints ns per UDP connect (IPv4, IPv6) and µs per TCP iteration.
pub fn net_storm_child(args: &[String]) -> Result<ExitCode> {
    let [cgroup, udp, tcp] = args else {
        bail!("usage: --storm net CGROUP UDP_CONNECTS TCP_LOOPS");
    };
    let (udp, tcp): (usize, usize) = (udp.parse()?, tcp.parse()?);
    fs::write(Path::new(cgroup).join("cgroup.procs"), "0").context("joining the cgroup")?;
    let udp4 = udp_connects("127.0.0.92:0", "127.0.0.91:9", udp)?;
    let udp6 = udp_connects("[::1]:0", "[::1]:9", udp)?;
    let tcp = tcp_loops(tcp)?;
    println!("{udp4:.1} {udp6:.1} {tcp:.3}");
    Ok(ExitCode::SUCCESS)
}

fn udp_connects(local: &str, peer: &str, count: usize) -> Result<f64> {
    let peer: SocketAddr = peer.parse()?;
    let socket = UdpSocket::bind(local)?;
    for _ in 0..count / 10 {
        socket.connect(peer)?;
    }
    let started = Instant::now();
    for _ in 0..count {
        socket.connect(peer)?;
    }
    Ok(started.elapsed().as_nanos() as f64 / count as f64)
}

fn tcp_loops(count: usize) -> Result<f64> {
    // A fresh listener (so a fresh port) per pass: connections of earlier
    // passes in TIME_WAIT never collide with this one's.
    let listener = TcpListener::bind("127.0.0.93:0")?;
    let address = listener.local_addr()?;
    let once = || -> Result<()> {
        let client = TcpStream::connect(address)?;
        let (server, _) = listener.accept()?;
        drop(client);
        drop(server);
        Ok(())
    };
    for _ in 0..count / 10 {
        once()?;
    }
    let started = Instant::now();
    for _ in 0..count {
        once()?;
    }
    Ok(started.elapsed().as_nanos() as f64 / count as f64 / 1000.0)
}

/// `bench --storm probe CGROUP`: joins the cgroup, sends one datagram to
/// the sentinel, and prints `sent`, `refused` (EPERM) or the error.
pub fn probe_child(args: &[String]) -> Result<ExitCode> {
    let [cgroup] = args else {
        bail!("usage: --storm probe CGROUP");
    };
    fs::write(Path::new(cgroup).join("cgroup.procs"), "0").context("joining the cgroup")?;
    let socket = UdpSocket::bind("127.0.0.92:0")?;
    match socket.send_to(b"x", (SENTINEL_V4, 9)) {
        Ok(_) => println!("sent"),
        Err(error) if error.kind() == ErrorKind::PermissionDenied => println!("refused"),
        Err(error) => println!("{error}"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn size_label(size: usize) -> String {
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

/// Prints the tables; returns the JSON records.
pub fn report(results: &[SizeResult], settings: &Settings) -> Vec<Value> {
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
            let added = enf.zip(base).map(|(enf, base)| enf - base);
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
                }));
            }
        }
    }
    println!(
        "\n{} rounds, each running baseline, enforcer and nftables in turn; {} UDP connects \
         per family and {} TCP iterations per turn. A UDP connect sends no packet, so \
         nftables (which judges packets) costs it nothing by construction.",
        settings.rounds, settings.udp_connects, settings.tcp_loops
    );

    // Per-program cost: one row per program, one column per size.
    let mut names: Vec<&str> = results
        .iter()
        .flat_map(|result| result.programs.iter().map(|program| program.name.as_str()))
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
                |result| match result.programs.iter().find(|program| program.name == *name) {
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
        for program in &result.programs {
            json.push(json!({
                "scenario": "program",
                "cidrs": result.size,
                "program": program.name,
                "prog_type": program.prog_type,
                "run_time_ns": program.run_time_ns,
                "run_cnt": program.run_cnt,
                "ns_per_run": program.ns_per_run(),
            }));
        }
    }
    println!(
        "\nOne pass of the workloads in the enforcer's cgroup per size, statistics on only then. \
         The exec hook is global: it counts every exec on the machine in that time."
    );

    println!("\nPolicy load and memory per size:\n");
    println!(
        "| CIDRs | enforcer start to ready s | daemon RSS MiB | maps (memlock) MiB | image KiB | nft -f s | nft peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    for result in results {
        let (nft_s, nft_rss) = match &result.nft {
            Ok(loaded) => (
                format!("{:.2}", loaded.seconds),
                format!("{:.1}", loaded.peak_rss_kib as f64 / 1024.0),
            ),
            Err(error) => (format!("failed: {error}"), "-".to_string()),
        };
        println!(
            "| {} | {:.2} | {:.1} | {:.1} ({} maps) | {} | {nft_s} | {nft_rss} |",
            size_label(result.size),
            result.ready_s,
            result.rss_kib as f64 / 1024.0,
            result.maps.1 as f64 / 1048576.0,
            result.maps.0,
            result
                .image_kib
                .map_or("-".to_string(), |kib| kib.to_string()),
        );
        json.push(json!({
            "scenario": "memory",
            "cidrs": result.size,
            "ready_s": result.ready_s,
            "daemon_rss_kib": result.rss_kib,
            "maps": result.maps.0,
            "maps_memlock_bytes": result.maps.1,
            "image_kib": result.image_kib,
            "nft_load_s": result.nft.as_ref().ok().map(|loaded| loaded.seconds),
            "nft_peak_rss_kib": result.nft.as_ref().ok().map(|loaded| loaded.peak_rss_kib),
            "nft_error": result.nft.as_ref().err(),
        }));
    }
    println!(
        "\nMaps: the sum of `memlock:` over the map descriptors the daemon holds (each map \
         once). Image: the live generation's size from `status`."
    );
    json
}
