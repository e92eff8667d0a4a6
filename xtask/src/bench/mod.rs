//! `cargo xtask bench`: what enforcement costs, measured side by side with
//! a baseline and with the tools an administrator would use instead, in
//! one run. Scenarios alternate round by round (A B C A B C ...), so drift
//! in a noisy VM falls on all of them alike, and the report gives medians
//! and each scenario's ratio to the baseline, then the issue's targets
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
    env,
    ffi::OsStr,
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitCode, Stdio},
    sync::mpsc::{self, Receiver},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::{build, toolchain};

pub mod apply;
pub mod cidrs;
pub mod events;
pub mod fapolicyd;
pub mod floor;
pub mod kernel;
pub mod net;
pub mod nft;
pub mod packets;
pub mod switch;
pub mod targets;

const SCENARIOS: [&str; 7] = [
    "exec", "hash", "packets", "net", "apply", "events", "switch",
];

#[derive(Args)]
pub struct BenchArgs {
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

enum Enforcement {
    None,
    /// An enforcer with this many exec rules.
    Enforcer(usize),
    Fapolicyd,
}

struct Scenario {
    name: String,
    enforcement: Enforcement,
}

pub fn bench(args: &BenchArgs) -> Result<ExitCode> {
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
    let work = build::target_dir().join("bench");
    fs::create_dir_all(&work)?;
    let _bpffs = crate::bpffs::MountedDuringRun::mount();
    let cgroup = BenchCgroup::create()?;
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
        let target = static_noop(&work)?;
        if runs("exec") {
            let outcome = exec_scenario(args, &built.enforcer, &work, &cgroup, &target).map(
                |(records, exec)| {
                    json.extend(records);
                    results.exec = Some(exec);
                },
            );
            attempt("exec", &mut json, outcome);
        }
        if runs("hash") {
            let outcome = hash_scenario(args, &built.enforcer, &work, &cgroup, &target)
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

/// The exec storm: enforcers with exec rules and fapolicyd (when it can
/// run here; otherwise the reason is reported), each between two batches
/// with no enforcement.
fn exec_scenario(
    args: &BenchArgs,
    enforcer: &Path,
    work: &Path,
    cgroup: &BenchCgroup,
    target: &Path,
) -> Result<(Vec<Value>, targets::Exec)> {
    let (rounds, execs) = if args.quick { (3, 1_000) } else { (7, 5_000) };
    let mut scenarios: Vec<Scenario> = [None, Some(0), Some(100), Some(10_000)]
        .into_iter()
        .map(|rules| Scenario {
            name: rules.map_or("no enforcer".to_string(), |n| {
                format!("enforcer, {n} exec rules")
            }),
            enforcement: rules.map_or(Enforcement::None, Enforcement::Enforcer),
        })
        .collect();
    let banned_dir = work.join("fapolicyd-banned");
    fs::create_dir_all(&banned_dir)?;
    let banned = banned_dir.join("noop");
    fs::copy(target, &banned)?;
    let fapolicyd = fapolicyd::Config::prepare(target, &banned);
    let fapolicyd_status = match &fapolicyd {
        Ok(config) => {
            scenarios.push(Scenario {
                name: "fapolicyd, 1 deny rule".to_string(),
                enforcement: Enforcement::Fapolicyd,
            });
            json!({"scenario": "fapolicyd", "available": true, "note": config.note})
        }
        Err(error) => {
            eprintln!("exec: fapolicyd cannot run here: {error:#}");
            json!({"scenario": "fapolicyd", "available": false, "reason": format!("{error:#}")})
        }
    };
    // The exec hooks are global, so the baseline cannot run beside an
    // enforcer in another cgroup as in `net`. Instead every batch under
    // enforcement runs between two baseline batches, and is compared with
    // their mean: the VM's drift over a round then cancels.
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); scenarios.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); scenarios.len()];
    for round in 0..rounds {
        let mut before = exec_storm(&cgroup.path, target, execs)?;
        samples[0].push(before);
        for (index, scenario) in scenarios.iter().enumerate().skip(1) {
            let per_exec = {
                let mut _daemon = None;
                let mut _fapolicyd = None;
                match scenario.enforcement {
                    Enforcement::None => {}
                    Enforcement::Enforcer(rules) => {
                        let policy = exec_rules_policy(work, rules)?;
                        _daemon = Some(Daemon::start(enforcer, work, &cgroup.path, &policy, &[])?);
                    }
                    Enforcement::Fapolicyd => _fapolicyd = Some(fapolicyd::Fapolicyd::start()?),
                }
                exec_storm(&cgroup.path, target, execs)?
            };
            let after = exec_storm(&cgroup.path, target, execs)?;
            let ratio = per_exec / ((before + after) / 2.0);
            eprintln!(
                "round {}/{rounds}: {}: {per_exec:.1} µs per exec, baseline {before:.1} before \
                 and {after:.1} after: {ratio:.3}",
                round + 1,
                scenario.name,
            );
            samples[0].push(after);
            samples[index].push(per_exec);
            ratios[index].push(ratio);
            before = after;
        }
    }
    drop(fapolicyd);

    println!("| scenario | median µs per exec | ratio to baseline |");
    println!("|---|---|---|");
    let mut json = vec![fapolicyd_status.clone()];
    let mut exec = targets::Exec::default();
    for ((scenario, results), ratios) in scenarios.iter().zip(&samples).zip(&ratios) {
        let value = median(results);
        let ratio = if ratios.is_empty() {
            1.0
        } else {
            median(ratios)
        };
        println!("| {} | {value:.1} | {ratio:.3} |", scenario.name);
        match scenario.enforcement {
            Enforcement::Enforcer(rules) => exec.enforcer.push((rules, ratio)),
            Enforcement::Fapolicyd => exec.fapolicyd = Some(ratio),
            Enforcement::None => {}
        }
        json.push(json!({
            "scenario": "exec",
            "name": scenario.name,
            "rules": match scenario.enforcement {
                Enforcement::Enforcer(rules) => Some(rules),
                Enforcement::Fapolicyd => Some(1),
                Enforcement::None => None,
            },
            "median_us": value,
            "ratio": ratio,
            "samples_us": results,
            "ratios": ratios,
        }));
    }
    println!(
        "\n{rounds} rounds. In each, batches of {execs} posix_spawn + wait: a baseline batch, \
         then each scenario's batch followed by another baseline batch. A ratio is the median \
         over the rounds of a batch's time against the mean of the baseline batches on either \
         side of it."
    );
    match &fapolicyd_status["reason"] {
        Value::String(reason) => {
            println!("fapolicyd: not measured: {reason}");
            exec.fapolicyd_missing = Some(reason.clone());
        }
        _ => {
            if let Some(note) = fapolicyd_status["note"].as_str() {
                println!("fapolicyd: {note}");
            }
        }
    }
    Ok((json, exec))
}

fn hash_scenario(
    args: &BenchArgs,
    enforcer: &Path,
    work: &Path,
    cgroup: &BenchCgroup,
    target: &Path,
) -> Result<Value> {
    let windows = hash_window(
        enforcer,
        work,
        &cgroup.path,
        target,
        if args.quick { 10 } else { 50 },
    )?;
    let mut sorted = windows.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "\nexec_sha256 window (close of a new banned copy -> generation banning it in force): \
         median {:.1} ms, max {:.1} ms over {} copies",
        median(&windows),
        sorted.last().copied().unwrap_or_default(),
        windows.len()
    );
    Ok(json!({
        "scenario": "hash_window",
        "median_ms": median(&windows),
        "max_ms": sorted.last().copied().unwrap_or_default(),
        "samples_ms": windows,
    }))
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// A static binary that exits at once: the cheapest exec there is, so the
/// enforcer's share of it is as large as it can be.
fn static_noop(work: &Path) -> Result<PathBuf> {
    let source = work.join("noop.c");
    let binary = work.join("noop");
    fs::write(&source, "int main(void) { return 0; }\n")?;
    let status = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .context("the exec benchmark builds its target with a C compiler (cc); install gcc")?;
    if !status.success() {
        bail!("cc -static failed; the exec benchmark needs a static C library (Debian: libc6-dev)");
    }
    Ok(binary)
}

/// Runs the storm in a child that first joins the cgroup, since exec
/// enforcement is scoped to it. Returns microseconds per exec.
fn exec_storm(cgroup: &Path, target: &Path, execs: usize) -> Result<f64> {
    let count = execs.to_string();
    let args = [cgroup.as_os_str(), target.as_os_str(), OsStr::new(&count)];
    Ok(storm("exec-storm", &args)? / execs as f64 / 1000.0)
}

/// Runs the hidden xtask subcommand `name` with `args`, which prints the
/// nanoseconds its storm took, and returns them.
fn storm(name: &str, args: &[&OsStr]) -> Result<f64> {
    let output = Command::new(env::current_exe()?)
        .arg(name)
        .args(args)
        .output()
        .with_context(|| format!("running {name}"))?;
    if !output.status.success() {
        bail!("{name} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .with_context(|| format!("{name} output"))
}

/// Runs `xtask bench --storm ARGS...` and returns what it printed.
fn storm_output(args: &[&OsStr]) -> Result<String> {
    let output = Command::new(env::current_exe()?)
        .args(["bench", "--storm"])
        .args(args)
        .output()
        .context("running a bench child")?;
    if !output.status.success() {
        bail!(
            "bench child {:?} failed: {}",
            args.first(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The storm itself (`xtask exec-storm CGROUP TARGET COUNT`): prints the
/// nanoseconds `COUNT` spawn + wait cycles took.
pub fn exec_storm_child(cgroup: &Path, target: &Path, count: usize) -> Result<ExitCode> {
    fs::write(cgroup.join("cgroup.procs"), "0").context("joining the bench cgroup")?;
    let path = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())?;
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let started = Instant::now();
    for _ in 0..count {
        let mut pid = 0;
        // SAFETY: valid NUL-terminated argv and envp; glibc spawns with
        // CLONE_VM | CLONE_VFORK, the vfork + execve this measures.
        let spawned = unsafe {
            libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                argv.as_ptr().cast(),
                envp.as_ptr().cast(),
            )
        };
        let mut status = 0;
        // SAFETY: waiting for the child just made.
        if spawned != 0 || unsafe { libc::waitpid(pid, &mut status, 0) } != pid || status != 0 {
            bail!(
                "exec of {} failed (spawn {spawned}, status {status})",
                target.display()
            );
        }
    }
    println!("{}", started.elapsed().as_nanos());
    Ok(ExitCode::SUCCESS)
}

pub struct BenchCgroup {
    path: PathBuf,
}

impl BenchCgroup {
    fn create() -> Result<Self> {
        let mount = crate::cgroup2_mount().context("no cgroup v2 hierarchy is mounted")?;
        let path = mount.join(format!("enforcer-bench-{}", std::process::id()));
        fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    /// A cgroup below this one; drop it before its parent.
    fn child(&self, name: &str) -> Result<Self> {
        let path = self.path.join(name);
        fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for BenchCgroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.path);
    }
}

/// A policy of `rules` exec rules that match nothing the storm runs: half
/// names, half files (identities), and one banned directory so that every
/// exec walks its parents.
fn exec_rules_policy(work: &Path, rules: usize) -> Result<PathBuf> {
    let files = work.join("banned-files");
    fs::create_dir_all(&files)?;
    let mut policy = String::from("version = 1\n");
    for index in 0..rules {
        if index % 2 == 0 {
            policy.push_str(&format!(
                "[[block]]\nname = \"name-{index}\"\nexec_names = [\"not-run-{index}\"]\n"
            ));
        } else {
            let file = files.join(format!("f{index}"));
            if !file.exists() {
                fs::write(&file, b"")?;
            }
            policy.push_str(&format!(
                "[[block]]\nname = \"file-{index}\"\nexec_paths = [{:?}]\n",
                file.display().to_string()
            ));
        }
    }
    if rules > 0 {
        policy.push_str(&format!(
            "[[block]]\nname = \"dir\"\nexec_paths = [\"{}/\"]\n",
            files.display()
        ));
    }
    let policy_file = work.join(format!("policy-{rules}.toml"));
    fs::write(&policy_file, policy)?;
    Ok(policy_file)
}

/// An enforcer attached to the bench cgroup; its event lines arrive on the
/// receiver. Unloaded when dropped, as an administrator would.
struct Daemon {
    child: Child,
    enforcer: PathBuf,
    socket: PathBuf,
    pin_dir: PathBuf,
    /// From spawning the daemon to its `ready` line.
    ready_in: Duration,
}

impl Daemon {
    fn start(
        enforcer: &Path,
        work: &Path,
        cgroup: &Path,
        policy_file: &Path,
        extra: &[&std::ffi::OsStr],
    ) -> Result<(Self, Receiver<String>)> {
        let pin_dir = PathBuf::from(format!("/sys/fs/bpf/enforcer-bench-{}", std::process::id()));
        let socket = work.join("control.sock");
        let started = Instant::now();
        let mut child = Command::new(enforcer)
            .args(["run", "--policy"])
            .arg(policy_file)
            .arg("--cgroup")
            .arg(cgroup)
            .arg("--socket")
            .arg(&socket)
            .arg("--pin-dir")
            .arg(&pin_dir)
            // The bench's own stored policy, not the machine's.
            .arg("--state-dir")
            .arg(work.join("state"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the enforcer")?;
        let mut stdout = BufReader::new(child.stdout.take().context("piped stdout")?);
        let mut first = String::new();
        stdout.read_line(&mut first)?;
        if !first.contains(r#""kind":"ready""#) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the enforcer did not become ready: {first}");
        }
        let ready_in = started.elapsed();
        // Keep reading, so the daemon never blocks on a full pipe.
        let (lines, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let daemon = Self {
            child,
            enforcer: enforcer.to_path_buf(),
            socket,
            pin_dir,
            ready_in,
        };
        Ok((daemon, receiver))
    }
}

/// How long a banned copy can run after it is written: from the close of
/// a new copy to the event saying a generation banning it is in force.
fn hash_window(
    enforcer: &Path,
    work: &Path,
    cgroup: &Path,
    target: &Path,
    samples: usize,
) -> Result<Vec<f64>> {
    let root = work.join("hash-window");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root)?;
    let digest = toolchain::output(Command::new("sha256sum").arg(target))?;
    let digest = digest
        .split_whitespace()
        .next()
        .context("sha256sum output")?
        .to_string();
    let policy_file = work.join("policy-hash.toml");
    fs::write(
        &policy_file,
        format!("version = 1\n[[block]]\nname = \"content\"\nexec_sha256 = [\"{digest}\"]\n"),
    )?;
    let (_daemon, events) = Daemon::start(
        enforcer,
        work,
        cgroup,
        &policy_file,
        &[std::ffi::OsStr::new("--hash-root"), root.as_os_str()],
    )?;
    let mut windows = Vec::new();
    for sample in 0..samples {
        let copy = root.join(format!("copy-{sample}"));
        let name = copy.display().to_string();
        let written = Instant::now();
        fs::copy(target, &copy)?;
        loop {
            let line = events
                .recv_timeout(Duration::from_secs(10))
                .context("no exec_content_found event within 10 s")?;
            if line.contains(r#""kind":"exec_content_found""#) && line.contains(&name) {
                break;
            }
        }
        windows.push(written.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(windows)
}

impl Daemon {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn socket(&self) -> &Path {
        &self.socket
    }

    /// `enforcer status --json`.
    fn status(&self) -> Result<Value> {
        let output = Command::new(&self.enforcer)
            .args(["status", "--json", "--socket"])
            .arg(&self.socket)
            .output()?;
        if !output.status.success() {
            bail!("status: {}", String::from_utf8_lossy(&output.stderr));
        }
        serde_json::from_slice(&output.stdout).context("status --json output")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // `unload` stops the daemon, or removes its pins when it is gone.
        let _ = Command::new(&self.enforcer)
            .args(["unload", "--confirm", "--socket"])
            .arg(&self.socket)
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .stdout(Stdio::null())
            .status();
        wait_or_kill(&mut self.child, Duration::from_secs(10));
    }
}

/// Waits up to `timeout` for `child` to exit, then kills it.
pub(crate) fn wait_or_kill(child: &mut Child, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
