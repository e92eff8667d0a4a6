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

use std::{
    ffi::OsStr,
    fs,
    io::ErrorKind,
    net::{SocketAddr, TcpListener, UdpSocket},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use super::{
    BenchCgroup, Daemon, cidrs::Prefixes, cidrs::SENTINEL_V4, floor, kernel, median, nft,
    storm_output,
};

pub struct Settings {
    pub sizes: Vec<usize>,
    pub rounds: usize,
    /// Per socket (so per configuration and family) and round.
    pub udp_connects: usize,
    /// Per configuration and round.
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
/// Passes with statistics on, after the rounds: a pass the host slowed
/// down moves the median of five less than the mean of one long pass.
const STATS_PASSES: usize = 5;

pub struct SizeResult {
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

/// The size of the live image's map: in the sized slot, the slot's
/// capacity, whatever the image uses of it.
fn image_map_words(status: &Value) -> Option<u64> {
    match status["image_slot"]["slot"].as_str() {
        Some("sized") => status["image_slot"]["sized_capacity_words"].as_u64(),
        _ => status["image"]["words"].as_u64(),
    }
}

impl SizeResult {
    /// Kernel memory of the maps: those the daemon holds, plus the image.
    pub fn kernel_bytes(&self) -> u64 {
        self.maps.1 + self.image_bytes.unwrap_or(0)
    }

    pub fn median(&self, workload: usize, config: usize) -> Option<f64> {
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
    pub fn ratio(&self, workload: usize, config: usize) -> Option<f64> {
        let ratios: Vec<f64> = self
            .pairs(workload, config)?
            .into_iter()
            .map(|(value, baseline)| value / baseline)
            .collect();
        Some(median(&ratios))
    }

    /// The median over rounds of each round's difference to its baseline.
    pub fn added(&self, workload: usize, config: usize) -> Option<f64> {
        let differences: Vec<f64> = self
            .pairs(workload, config)?
            .into_iter()
            .map(|(value, baseline)| value - baseline)
            .collect();
        Some(median(&differences))
    }

    pub fn program_ns(&self, name: &str) -> Option<f64> {
        self.programs
            .iter()
            .find(|program| program.name == name)?
            .ns_per_run()
    }

    /// What an empty program on the same hook cost per run.
    pub fn empty_hook_ns(&self, name: &str) -> Option<f64> {
        self.empty_hooks
            .iter()
            .find(|program| program.name.strip_prefix("empty_") == Some(name))?
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

/// The enforcer's programs, then the empty ones that show the floor.
fn all_programs(result: &SizeResult) -> impl Iterator<Item = &kernel::Program> {
    result.programs.iter().chain(&result.empty_hooks)
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

/// Connects per batch on one socket before the next socket's turn.
const UDP_BATCH: usize = 500;

/// `bench --storm udp CONNECTS CGROUP...`: makes an IPv4 and an IPv6 UDP
/// socket in each cgroup (joining each in turn), then connects them to
/// unlisted loopback addresses, `CONNECTS` times each, in interleaved
/// batches. Prints ns per connect, IPv4 and IPv6, for each cgroup.
pub fn udp_storm_child(args: &[String]) -> Result<ExitCode> {
    let [connects, cgroups @ ..] = args else {
        bail!("usage: --storm udp CONNECTS CGROUP...");
    };
    let connects: usize = connects.parse()?;
    let peers: [SocketAddr; 2] = ["127.0.0.91:9".parse()?, "[::1]:9".parse()?];
    let mut sockets = Vec::new();
    for cgroup in cgroups {
        fs::write(Path::new(cgroup).join("cgroup.procs"), "0").context("joining a cgroup")?;
        sockets.push([
            UdpSocket::bind("127.0.0.92:0")?,
            UdpSocket::bind("[::1]:0")?,
        ]);
    }
    // Warm up: the first connect fills caches.
    for pair in &sockets {
        for (socket, peer) in pair.iter().zip(peers) {
            for _ in 0..UDP_BATCH {
                socket.connect(peer)?;
            }
        }
    }
    let mut nanos = vec![[0u128; 2]; sockets.len()];
    let batches = connects.div_ceil(UDP_BATCH);
    for batch in 0..batches {
        for (family, peer) in peers.into_iter().enumerate() {
            // Rotate who goes first, so no cgroup always follows another.
            for turn in 0..sockets.len() {
                let index = (turn + batch) % sockets.len();
                let socket = &sockets[index][family];
                let started = Instant::now();
                for _ in 0..UDP_BATCH {
                    socket.connect(peer)?;
                }
                nanos[index][family] += started.elapsed().as_nanos();
            }
        }
    }
    let per = (batches * UDP_BATCH) as f64;
    let line: Vec<String> = nanos
        .iter()
        .flat_map(|[v4, v6]| [*v4 as f64 / per, *v6 as f64 / per])
        .map(|ns| format!("{ns:.1}"))
        .collect();
    println!("{}", line.join(" "));
    Ok(ExitCode::SUCCESS)
}

/// Iterations per batch in one cgroup before the next cgroup's turn.
const TCP_BATCH: usize = 50;

/// `bench --storm tcp LOOPS CGROUP...`: in each cgroup (joining each in
/// turn) makes a listener on loopback and `LOOPS` client sockets, then
/// runs connect + accept + close with them, in interleaved batches.
/// Prints µs per iteration for each cgroup.
pub fn tcp_storm_child(args: &[String]) -> Result<ExitCode> {
    let [loops, cgroups @ ..] = args else {
        bail!("usage: --storm tcp LOOPS CGROUP...");
    };
    let loops: usize = loops.parse()?;
    let warm = TCP_BATCH;
    let mut sides = Vec::new();
    for cgroup in cgroups {
        fs::write(Path::new(cgroup).join("cgroup.procs"), "0").context("joining a cgroup")?;
        let listener = TcpListener::bind("127.0.0.93:0")?;
        let clients = (0..loops + warm)
            .map(|_| tcp_socket())
            .collect::<Result<Vec<_>>>()?;
        sides.push((listener, clients));
    }
    let once = |listener: &TcpListener, client: OwnedFd| -> Result<()> {
        tcp_connect(&client, listener.local_addr()?)?;
        let (server, _) = listener.accept()?;
        drop(client);
        drop(server);
        Ok(())
    };
    let mut queues: Vec<_> = sides
        .into_iter()
        .map(|(listener, clients)| (listener, clients.into_iter()))
        .collect();
    for (listener, clients) in &mut queues {
        for client in clients.by_ref().take(warm) {
            once(listener, client)?;
        }
    }
    let mut nanos = vec![0u128; queues.len()];
    let batches = loops / TCP_BATCH;
    for batch in 0..batches {
        for turn in 0..queues.len() {
            let index = (turn + batch) % queues.len();
            let (listener, clients) = &mut queues[index];
            let started = Instant::now();
            for client in clients.by_ref().take(TCP_BATCH) {
                once(listener, client)?;
            }
            nanos[index] += started.elapsed().as_nanos();
        }
    }
    let per = (batches * TCP_BATCH).max(1) as f64;
    let line: Vec<String> = nanos
        .iter()
        .map(|&ns| format!("{:.3}", ns as f64 / per / 1000.0))
        .collect();
    println!("{}", line.join(" "));
    Ok(ExitCode::SUCCESS)
}

/// An IPv4 TCP socket, not yet connected: made in the current cgroup,
/// judged by it wherever the process is when it connects.
fn tcp_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned from here on.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        bail!("socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn tcp_connect(socket: &OwnedFd, peer: SocketAddr) -> Result<()> {
    let SocketAddr::V4(peer) = peer else {
        bail!("an IPv4 peer");
    };
    let address = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: peer.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*peer.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: a valid sockaddr_in of the size given.
    let result = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            (&raw const address).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if result != 0 {
        bail!("connect: {}", std::io::Error::last_os_error());
    }
    Ok(())
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
