//! `cargo xtask fresh`: README's first command as a new machine runs it.
//! The eBPF toolchain is bootstrapped into a throwaway cache
//! (`XDG_CACHE_HOME` in a temporary directory) and everything is built into
//! a throwaway target directory, so nothing an earlier build left behind
//! can hide a broken bootstrap. The daemon built there then enforces
//! the shipped ban list, `policies/ban/`, on a cgroup of its own, and every program
//! family must have loaded within its verifier budget.
//!
//! Only the nightly itself comes from rustup's own store: like rustup's
//! stable, it is installed once per machine.

use std::{
    env, fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitCode, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{bpffs, workspace::workspace_root};

/// Half the verifier's limit of a million processed instructions: a
/// kernel point release can move a program's count, and one at the edge
/// would stop loading.
const VERIFIER_BUDGET: u64 = 500_000;

/// How long the daemon may take to verify its programs and start.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// The program families the shipped policy needs, by the name `status`
/// gives them.
const REQUIRED_FAMILIES: [&str; 3] = ["network", "exec", "domains"];

pub(crate) fn fresh() -> Result<ExitCode> {
    let scratch = Scratch::new()?;
    let started = Instant::now();
    let status = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["xtask", "build"])
        .current_dir(workspace_root())
        .env("XDG_CACHE_HOME", scratch.path.join("cache"))
        .env("CARGO_TARGET_DIR", scratch.path.join("target"))
        .status()
        .context("starting `cargo xtask build`")?;
    if !status.success() {
        bail!("`cargo xtask build` from an empty cache failed ({status})");
    }
    let built = started.elapsed();
    let enforcer = scratch.path.join("target/debug/enforcer");
    let _bpffs = bpffs::MountedDuringRun::mount();
    let report = Enforcement::start(&enforcer, &scratch)?.check()?;
    println!(
        "xtask fresh: bootstrap and build from an empty cache {:.0} s, start to ready {:.1} s",
        built.as_secs_f64(),
        report.ready_after.as_secs_f64()
    );
    for line in &report.programs {
        println!("  {line}");
    }
    if report.failures.is_empty() {
        println!("xtask fresh: every program family loaded within its budget");
        return Ok(ExitCode::SUCCESS);
    }
    for failure in &report.failures {
        eprintln!("xtask fresh: {failure}");
    }
    Ok(ExitCode::FAILURE)
}

/// A temporary directory and a cgroup of this run, removed when dropped.
struct Scratch {
    path: PathBuf,
    cgroup: PathBuf,
}

impl Scratch {
    fn new() -> Result<Self> {
        let name = format!("enforcer-fresh-{}", std::process::id());
        let path = env::temp_dir().join(&name);
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        let mount = crate::mounts::cgroup2_mount().context("no cgroup v2 hierarchy is mounted")?;
        let cgroup = mount.join(&name);
        fs::create_dir_all(&cgroup).with_context(|| format!("creating {}", cgroup.display()))?;
        Ok(Self { path, cgroup })
    }

    fn pin_dir(&self) -> PathBuf {
        Path::new("/sys/fs/bpf").join(self.path.file_name().expect("a named directory"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.cgroup);
        let _ = fs::remove_dir_all(self.pin_dir());
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A daemon enforcing the shipped policy on the scratch cgroup.
struct Enforcement<'a> {
    enforcer: &'a Path,
    scratch: &'a Scratch,
    daemon: Child,
    ready_after: Duration,
}

struct Report {
    ready_after: Duration,
    programs: Vec<String>,
    failures: Vec<String>,
}

impl<'a> Enforcement<'a> {
    fn start(enforcer: &'a Path, scratch: &'a Scratch) -> Result<Self> {
        let socket = scratch.path.join("control.sock");
        let started = Instant::now();
        let mut daemon = Command::new(enforcer)
            .arg("run")
            .arg("--policy-dir")
            .arg(workspace_root().join("policies/ban"))
            .arg("--cgroup")
            .arg(&scratch.cgroup)
            .arg("--socket")
            .arg(&socket)
            .arg("--pin-dir")
            .arg(scratch.pin_dir())
            .arg("--state-dir")
            .arg(scratch.path.join("state"))
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", enforcer.display()))?;
        let stdout = daemon.stdout.take().expect("piped");
        let (lines, received) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut enforcement = Self {
            enforcer,
            scratch,
            daemon,
            ready_after: Duration::ZERO,
        };
        loop {
            let left = READY_TIMEOUT.saturating_sub(started.elapsed());
            let line = received.recv_timeout(left).map_err(|_| {
                anyhow::anyhow!(
                    "the daemon did not print its ready event within {} s",
                    READY_TIMEOUT.as_secs()
                )
            })?;
            if line.contains(r#""kind":"ready""#) {
                enforcement.ready_after = started.elapsed();
                return Ok(enforcement);
            }
        }
    }

    fn check(mut self) -> Result<Report> {
        let output = Command::new(self.enforcer)
            .args(["status", "--json", "--socket"])
            .arg(self.scratch.path.join("control.sock"))
            .output()
            .context("running enforcer status --json")?;
        if !output.status.success() {
            bail!(
                "enforcer status --json failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let status: Value =
            serde_json::from_slice(&output.stdout).context("enforcer status --json")?;
        let ready_after = self.ready_after;
        let report = judge(&status, ready_after);
        self.stop();
        Ok(report)
    }

    fn stop(&mut self) {
        let unloaded = Command::new(self.enforcer)
            .args(["unload", "--confirm", "--socket"])
            .arg(self.scratch.path.join("control.sock"))
            .arg("--pin-dir")
            .arg(self.scratch.pin_dir())
            .stdout(Stdio::null())
            .status();
        if !unloaded.is_ok_and(|status| status.success()) {
            let _ = self.daemon.kill();
        }
        let _ = self.daemon.wait();
    }
}

impl Drop for Enforcement<'_> {
    fn drop(&mut self) {
        if self.daemon.try_wait().ok().flatten().is_none() {
            self.stop();
        }
    }
}

/// Every required family loaded, and every program within the budget.
fn judge(status: &Value, ready_after: Duration) -> Report {
    let mut programs = Vec::new();
    let mut failures = Vec::new();
    let mut loaded_families = Vec::new();
    for program in status["programs_verified"].as_array().into_iter().flatten() {
        let name = program["name"].as_str().unwrap_or("?");
        let family = program["family"].as_str().unwrap_or("?");
        loaded_families.push(family.to_string());
        match program["verified_insns"].as_u64() {
            Some(count) => {
                programs.push(format!(
                    "{name} ({family}): {count} verified instructions, {:.0}% of the budget",
                    count as f64 * 100.0 / VERIFIER_BUDGET as f64
                ));
                if count > VERIFIER_BUDGET {
                    failures.push(format!(
                        "{name} took {count} verified instructions, over the budget of {VERIFIER_BUDGET}"
                    ));
                }
            }
            None => failures.push(format!("{name} reports no verified instruction count")),
        }
    }
    for family in REQUIRED_FAMILIES {
        if !loaded_families.iter().any(|loaded| loaded == family) {
            failures.push(format!(
                "the {family} programs did not load; loaded: {loaded_families:?}"
            ));
        }
    }
    Report {
        ready_after,
        programs,
        failures,
    }
}
