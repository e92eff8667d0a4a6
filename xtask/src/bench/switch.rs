//! Scenario `switch`: how long a policy switch can hold up a `connect()`.
//! A process in the bench cgroup connects a UDP socket over and over to
//! an address no rule lists, recording the slowest connect, while the
//! bench applies large policies back and forth. The same loop without
//! switches gives the baseline. The switch itself is one map update that
//! waits for running programs (`synchronize_rcu`); the hooks never wait
//! on it, which is what this checks.

use std::{
    fs,
    net::UdpSocket,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};

use super::daemon::Daemon;

/// Runs the scenario and prints its lines; returns the JSON record.
pub(crate) fn run(
    enforcer: &Path,
    work: &Path,
    cgroup: &Path,
    prefixes: usize,
    switches: usize,
) -> Result<String> {
    let policies = [
        cidr_policy(work, prefixes, 0)?,
        cidr_policy(work, prefixes, 1)?,
    ];
    let (daemon, _events) = Daemon::start(enforcer, work, cgroup, &policies[0], &[])?;
    let quiet = storm(cgroup, Duration::from_secs(2))?;
    let child = Command::new(std::env::current_exe()?)
        .arg("connect-storm")
        .arg(cgroup)
        .arg("0")
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the connect storm")?;
    let mut apply_ms = Vec::new();
    for switch in 0..switches {
        let started = Instant::now();
        let status = Command::new(enforcer)
            .args(["policy", "apply"])
            .arg(&policies[(switch + 1) % 2])
            .arg("--socket")
            .arg(daemon.socket())
            .stdout(Stdio::null())
            .status()?;
        ensure!(status.success(), "policy apply failed");
        apply_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    // SAFETY: signalling our own child, which reports and exits on SIGTERM.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output()?;
    let busy = parse(&String::from_utf8_lossy(&output.stdout))?;
    drop(daemon);
    let longest_apply = apply_ms.iter().copied().fold(0.0, f64::max);
    println!(
        "\npolicy switch under a connect storm ({prefixes} prefixes, {switches} applies, each \
         {:.0}–{longest_apply:.0} ms end to end): slowest connect {:.2} ms during the switches, \
         {:.2} ms without ({} and {} connects)",
        apply_ms.iter().copied().fold(f64::INFINITY, f64::min),
        busy.slowest_ms,
        quiet.slowest_ms,
        busy.connects,
        quiet.connects
    );
    Ok(format!(
        r#"{{"scenario":"switch","prefixes":{prefixes},"switches":{switches},"slowest_connect_ms":{:.3},"slowest_connect_quiet_ms":{:.3},"apply_ms":{apply_ms:?}}}"#,
        busy.slowest_ms, quiet.slowest_ms
    ))
}

struct Storm {
    slowest_ms: f64,
    connects: u64,
}

fn storm(cgroup: &Path, duration: Duration) -> Result<Storm> {
    let output = Command::new(std::env::current_exe()?)
        .arg("connect-storm")
        .arg(cgroup)
        .arg(duration.as_millis().to_string())
        .output()?;
    if !output.status.success() {
        bail!(
            "connect storm failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse(&String::from_utf8_lossy(&output.stdout))
}

fn parse(output: &str) -> Result<Storm> {
    let mut fields = output.split_whitespace();
    let (Some(slowest), Some(connects)) = (fields.next(), fields.next()) else {
        bail!("connect storm output: {output:?}");
    };
    Ok(Storm {
        slowest_ms: slowest.parse::<f64>()? / 1e6,
        connects: connects.parse()?,
    })
}

/// The storm (`xtask connect-storm CGROUP MILLIS`): joins the cgroup, then
/// connects a fresh UDP socket again and again for MILLIS ms (0: until
/// SIGTERM), and prints the slowest connect in ns and the count.
pub(crate) fn connect_storm_child(cgroup: &Path, millis: u64) -> Result<ExitCode> {
    fs::write(cgroup.join("cgroup.procs"), "0").context("joining the bench cgroup")?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    stop_on_sigterm(&stop);
    let deadline = (millis > 0).then(|| Instant::now() + Duration::from_millis(millis));
    let (mut slowest, mut connects) = (Duration::ZERO, 0u64);
    while !stop.load(std::sync::atomic::Ordering::Relaxed)
        && deadline.is_none_or(|deadline| Instant::now() < deadline)
    {
        let socket = UdpSocket::bind("127.0.0.92:0")?;
        let started = Instant::now();
        socket.connect("127.0.0.91:9")?;
        slowest = slowest.max(started.elapsed());
        connects += 1;
    }
    println!("{} {connects}", slowest.as_nanos());
    Ok(ExitCode::SUCCESS)
}

/// Sets `stop` on SIGTERM, without a signal-handling crate: a handler that
/// only stores to a static atomic is async-signal-safe.
fn stop_on_sigterm(stop: &std::sync::Arc<std::sync::atomic::AtomicBool>) {
    static STOP: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicBool>> =
        std::sync::OnceLock::new();
    extern "C" fn on_term(_: libc::c_int) {
        if let Some(stop) = STOP.get() {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let _ = STOP.set(stop.clone());
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe { libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t) };
}

/// A policy of `prefixes` IPv4 /24s spread over the address space, none
/// covering the storm's address; `variant` shifts them so that two
/// policies differ everywhere.
fn cidr_policy(work: &Path, prefixes: usize, variant: u32) -> Result<PathBuf> {
    let mut text = String::from("version = 1\n[[block]]\nname = \"many\"\ncidrs = [\n");
    for index in 0..prefixes as u32 {
        // An odd multiplier and an offset permute the /24s: no duplicates.
        let block = index
            .wrapping_mul(2_654_435_761)
            .wrapping_add(variant * 7_919)
            & 0x00ff_ffff;
        let address = block << 8;
        if address >> 24 == 127 {
            continue;
        }
        let [a, b, c, _] = address.to_be_bytes();
        text.push_str(&format!("\"{a}.{b}.{c}.0/24\",\n"));
    }
    text.push_str("]\n");
    let file = work.join(format!("policy-switch-{prefixes}-{variant}.toml"));
    fs::write(&file, text)?;
    Ok(file)
}
