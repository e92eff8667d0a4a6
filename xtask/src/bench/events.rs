//! Scenario `events`: a storm of blocked connects at a target rate. A
//! child in the enforcer's cgroup connects a UDP socket to the listed
//! sentinel address over and over, paced to the rate; every attempt is
//! refused and reported. An `enforcer events --follow` client counts what
//! reaches it, `status` gives the kernel's verdict and drop counters
//! before and after, and the daemon's CPU time (utime + stime) over the
//! storm and the drain after it gives its load, as a share of one core.

use std::{
    fs,
    io::{BufRead, BufReader, ErrorKind},
    net::{SocketAddr, UdpSocket},
    path::Path,
    process::{Command, ExitCode, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{
    cidrs::Prefixes, cidrs::SENTINEL_V4, daemon::Daemon, kernel, net, storm::storm_output,
};

pub(crate) struct EventResult {
    pub target_rate: u64,
    pub seconds: f64,
    pub attempts: u64,
    pub refused: u64,
    pub achieved_rate: f64,
    pub kernel_blocked: u64,
    pub received: u64,
    pub follower_missed: u64,
    pub ring_drops: u64,
    pub daemon_cpu_percent: f64,
}

pub(crate) fn run(
    enforcer: &Path,
    work: &Path,
    cgroup: &Path,
    rate: u64,
    duration: Duration,
) -> Result<EventResult> {
    let policy = net::policy_file(work, &Prefixes::generate(1000), "events")?;
    // The daemon's own event lines are read and dropped by `Daemon`.
    let (daemon, _) = Daemon::start(enforcer, work, cgroup, &policy, &[])?;
    let received = Arc::new(AtomicU64::new(0));
    let missed = Arc::new(AtomicU64::new(0));
    let mut follower = Command::new(enforcer)
        .args(["events", "--follow", "--socket"])
        .arg(daemon.socket())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting enforcer events --follow")?;
    let stdout = follower.stdout.take().context("follower stdout")?;
    let stderr = follower.stderr.take().context("follower stderr")?;
    let counter = received.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(r#""verdict":"blocked""#) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let lag = missed.clone();
    std::thread::spawn(move || {
        // "enforcer: fell behind and missed N events"
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(count) = line
                .split_once("missed ")
                .and_then(|(_, rest)| rest.split_whitespace().next()?.parse::<u64>().ok())
            {
                lag.fetch_add(count, Ordering::Relaxed);
            }
        }
    });
    let result = (|| {
        // The follower is live once a probe's event reaches it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while received.load(Ordering::Relaxed) == 0 {
            if Instant::now() > deadline {
                bail!("the events follower saw no event within 10 s");
            }
            storm_output(&["probe".as_ref(), cgroup.as_os_str()])?;
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(200));
        let received_before = received.load(Ordering::Relaxed);
        let before = daemon.status()?;
        let cpu_before = kernel::cpu_seconds(daemon.pid())?;
        let started = Instant::now();
        let output = storm_output(&[
            "events".as_ref(),
            cgroup.as_os_str(),
            rate.to_string().as_ref(),
            duration.as_millis().to_string().as_ref(),
        ])?;
        let fields: Vec<u64> = output
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("event storm output {output:?}"))?;
        let [attempts, refused, elapsed_ns] = fields[..] else {
            bail!("event storm output {output:?}");
        };
        // Drain: until nothing more arrives for half a second.
        let mut last = received.load(Ordering::Relaxed);
        let mut quiet_since = Instant::now();
        let drain_deadline = Instant::now() + Duration::from_secs(30);
        while quiet_since.elapsed() < Duration::from_millis(500) && Instant::now() < drain_deadline
        {
            std::thread::sleep(Duration::from_millis(50));
            let now = received.load(Ordering::Relaxed);
            if now != last {
                last = now;
                quiet_since = Instant::now();
            }
        }
        let busy = started.elapsed().as_secs_f64() - quiet_since.elapsed().as_secs_f64();
        let cpu = kernel::cpu_seconds(daemon.pid())? - cpu_before;
        let after = daemon.status()?;
        let counter = |status: &Value, name: &str| status["counters"][name].as_u64().unwrap_or(0);
        Ok(EventResult {
            target_rate: rate,
            seconds: elapsed_ns as f64 / 1e9,
            attempts,
            refused,
            achieved_rate: attempts as f64 / (elapsed_ns as f64 / 1e9),
            kernel_blocked: counter(&after, "blocked") - counter(&before, "blocked"),
            received: last - received_before,
            follower_missed: missed.load(Ordering::Relaxed),
            ring_drops: counter(&after, "events_dropped") - counter(&before, "events_dropped"),
            daemon_cpu_percent: 100.0 * cpu / busy.max(1e-3),
        })
    })();
    let _ = follower.kill();
    let _ = follower.wait();
    result
}

pub(crate) fn report(result: &EventResult) -> Value {
    println!(
        "\nEvent storm (blocked UDP connects to {SENTINEL_V4}, paced to {} /s for {:.1} s):\n",
        result.target_rate, result.seconds
    );
    println!(
        "| achieved /s | refused | kernel verdicts | events received | follower missed | ring buffer drops | daemon CPU % of one core |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {:.0} | {} of {} | {} | {} | {} | {} | {:.1} |",
        result.achieved_rate,
        result.refused,
        result.attempts,
        result.kernel_blocked,
        result.received,
        result.follower_missed,
        result.ring_drops,
        result.daemon_cpu_percent
    );
    println!(
        "\nEvents received: lines an `enforcer events --follow` client printed. Daemon CPU: its \
         utime + stime from /proc over the storm and until the last event arrived."
    );
    json!({
        "scenario": "events",
        "target_rate": result.target_rate,
        "seconds": result.seconds,
        "attempts": result.attempts,
        "refused": result.refused,
        "achieved_rate": result.achieved_rate,
        "kernel_blocked": result.kernel_blocked,
        "events_received": result.received,
        "follower_missed": result.follower_missed,
        "events_dropped": result.ring_drops,
        "daemon_cpu_percent": result.daemon_cpu_percent,
    })
}

/// `bench --storm events CGROUP RATE MILLIS`: joins the cgroup, connects
/// to the sentinel `RATE` times a second for `MILLIS` ms (in small bursts,
/// sleeping between them), and prints attempts, refusals and the ns taken.
pub(crate) fn event_storm_child(args: &[String]) -> Result<ExitCode> {
    let [cgroup, rate, millis] = args else {
        bail!("usage: --storm events CGROUP RATE MILLIS");
    };
    let (rate, millis): (u64, u64) = (rate.parse()?, millis.parse()?);
    fs::write(Path::new(cgroup).join("cgroup.procs"), "0").context("joining the cgroup")?;
    let socket = UdpSocket::bind("127.0.0.92:0")?;
    let peer = SocketAddr::from((SENTINEL_V4, 9));
    let total = rate * millis / 1000;
    let (mut attempts, mut refused) = (0u64, 0u64);
    let started = Instant::now();
    while attempts < total {
        let due = (started.elapsed().as_nanos() as u64 * rate / 1_000_000_000).min(total);
        while attempts < due {
            match socket.connect(peer) {
                Err(error) if error.kind() == ErrorKind::PermissionDenied => refused += 1,
                Err(error) => bail!("connect: {error}"),
                Ok(()) => {}
            }
            attempts += 1;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    println!("{attempts} {refused} {}", started.elapsed().as_nanos());
    Ok(ExitCode::SUCCESS)
}
