//! `cargo xtask vm-test`: the privileged integration suite on distribution
//! kernels. Each kernel (a Debian cloud kernel, fetched with
//! `apt-get download` and cached) boots under `qemu-system-x86_64 -accel
//! tcg` with an initramfs holding the test binaries, the daemon, the host
//! programs the tests run and their shared libraries. The guest's init
//! (`vm/init.sh`) reports the kernel, its active LSMs and the exec method a
//! daemon picks, runs every test binary and powers off. The serial console
//! is kept in `target/vm/<kernel>.log` and read for markers; the report
//! ends in a markdown table. Any failed test, binary or boot fails the run.

mod cpio;
mod guest;
mod kernels;
mod qemu;

use std::{
    fs::{self, File},
    io::{self, BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;

use crate::toolchain;

#[derive(Args)]
pub(crate) struct VmTestArgs {
    /// A kernel to boot; repeat for several (default: every kernel).
    /// `--list` names them.
    #[arg(long = "kernel", value_name = "NAME")]
    kernels: Vec<String>,
    /// List the kernels and exit.
    #[arg(long)]
    list: bool,
    /// Wall-clock limit for one kernel's whole run, in minutes (on two host
    /// cores under qemu 10, debian-6.1 took 29, debian-6.12 16 and
    /// debian-5.10, whose exec and domain tests fail at the daemon's start,
    /// 11).
    #[arg(long, default_value_t = 90)]
    timeout_minutes: u64,
    /// Limit for one test binary inside the guest, in minutes (the
    /// slowest, domains, took 9 on debian-6.1 under qemu 10).
    #[arg(long, default_value_t = 30)]
    binary_timeout_minutes: u64,
    /// `--test-threads` for the test binaries; 0 leaves it to libtest (one
    /// per guest CPU, as on the host). One by default: with two, the
    /// control tests took 434 s instead of 150 s under TCG on two host
    /// cores, the emulated CPUs contending for them.
    #[arg(long, default_value_t = 1)]
    test_threads: usize,
    /// qemu's CPU model.
    #[arg(long, default_value = "qemu64")]
    cpu: String,
    /// Guest CPUs.
    #[arg(long, default_value_t = 2)]
    smp: usize,
    /// Guest memory, as qemu's `-m` takes it.
    #[arg(long, default_value = "2G")]
    memory: String,
    /// Ask apt for newer kernels even when the package lists are less than
    /// a day old.
    #[arg(long)]
    refresh: bool,
    /// Show the whole serial console, boot messages included.
    #[arg(long)]
    verbose: bool,
    /// Arguments for every test binary, after `--` (a name filter, say).
    #[arg(last = true)]
    args: Vec<String>,
}

pub(crate) fn vm_test(args: &VmTestArgs) -> Result<ExitCode> {
    if args.list {
        for kernel in kernels::KERNELS {
            println!("{:<12} {}", kernel.name, kernel.about);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let specs = if args.kernels.is_empty() {
        kernels::KERNELS.iter().collect()
    } else {
        args.kernels
            .iter()
            .map(|name| kernels::spec(name))
            .collect::<Result<Vec<_>>>()?
    };
    let vm_cache = toolchain::cache_dir()?.join("vm");
    qemu::ensure(&vm_cache)?;
    let kernels = specs
        .into_iter()
        .map(|spec| kernels::ensure(spec, &vm_cache, args.refresh))
        .collect::<Result<Vec<_>>>()?;

    let work = crate::workspace::target_dir().join("vm");
    fs::create_dir_all(&work)?;
    let guest = guest::build(
        &work,
        &guest::Options {
            test_threads: Some(args.test_threads).filter(|threads| *threads > 0),
            per_binary_timeout_secs: args.binary_timeout_minutes * 60,
            args: &args.args,
        },
    )?;
    eprintln!(
        "xtask: initramfs {} ({} MiB, {} test binaries)",
        guest.initramfs.display(),
        guest.bytes >> 20,
        guest.tests.len()
    );

    let mut runs = Vec::new();
    for kernel in &kernels {
        let run = boot(kernel, &guest, args, &work)?;
        eprintln!(
            "xtask: {}: {} in {:.0} s",
            kernel.spec.name,
            if run.ok(&guest) { "passed" } else { "FAILED" },
            run.wall.as_secs_f64()
        );
        runs.push(run);
    }
    report(&runs, &guest);
    Ok(if runs.iter().all(|run| run.ok(&guest)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What one test binary did in the guest.
#[derive(Default)]
struct BinaryRun {
    /// Its exit status; 124 is the per-binary timeout.
    exit: Option<i32>,
    started: Option<f64>,
    seconds: Option<f64>,
    passed: usize,
    failed: usize,
    ignored: usize,
    /// `test NAME ... FAILED` lines, by name.
    failures: Vec<String>,
}

/// One kernel's boot and test run, as read from its console.
struct Run {
    name: &'static str,
    package: String,
    log: PathBuf,
    wall: Duration,
    timed_out: bool,
    /// Guest uptime when init started.
    booted: Option<f64>,
    release: Option<String>,
    lsm: Option<String>,
    /// `exec_enforcement` of the probe daemon's ready line.
    exec: Option<String>,
    /// `domain enforcement:` of its status.
    domain: Option<String>,
    probe_problems: Vec<String>,
    /// The probe daemon's stderr, shown when it did not become ready.
    probe_stderr: Vec<String>,
    /// `enforcer probe`'s lines: each program's verified instructions.
    verified: Vec<String>,
    panic: Option<String>,
    done: bool,
    binaries: Vec<BinaryRun>,
    current: Option<usize>,
}

impl Run {
    fn ok(&self, guest: &guest::Guest) -> bool {
        self.booted.is_some()
            && self.done
            && !self.timed_out
            && self.binaries.len() == guest.tests.len()
            && self.binaries.iter().all(|binary| binary.exit == Some(0))
            && self.exec_method_expected()
    }

    /// The exec method the daemon should pick: BPF LSM wherever `bpf` is an
    /// active LSM (the Debian kernels allow its trampolines), else the
    /// signal.
    fn expected_exec_method(&self) -> &'static str {
        let bpf_lsm = self
            .lsm
            .as_deref()
            .is_some_and(|lsm| lsm.split(',').any(|name| name == "bpf"));
        if bpf_lsm { "lsm" } else { "signal" }
    }

    fn exec_method_expected(&self) -> bool {
        self.exec.as_deref() == Some(self.expected_exec_method())
    }

    /// Reads one console line.
    fn line(&mut self, line: &str) {
        if line.contains("Kernel panic") && self.panic.is_none() {
            self.panic = Some(line.trim().to_string());
        }
        if let Some(marker) = line.strip_prefix("@@vm ") {
            self.marker(marker);
            return;
        }
        let Some(binary) = self.current.and_then(|index| self.binaries.get_mut(index)) else {
            return;
        };
        if let Some(result) = line.strip_prefix("test result: ") {
            for part in result.split(';') {
                let mut words = part.split_whitespace().rev();
                let (Some(what), Some(count)) = (words.next(), words.next()) else {
                    continue;
                };
                let count = count.parse().unwrap_or(0);
                match what {
                    "passed" => binary.passed += count,
                    "failed" => binary.failed += count,
                    "ignored" => binary.ignored += count,
                    _ => {}
                }
            }
        } else if let Some(name) = line
            .strip_prefix("test ")
            .and_then(|rest| rest.strip_suffix(" ... FAILED"))
        {
            binary.failures.push(name.to_string());
        }
    }

    fn marker(&mut self, marker: &str) {
        let (key, rest) = marker.split_once(' ').unwrap_or((marker, ""));
        let uptime = |text: &str| text.split_whitespace().last()?.parse::<f64>().ok();
        match key {
            "init" => self.booted = uptime(rest),
            "kernel" => self.release = Some(rest.to_string()),
            "lsm" => self.lsm = Some(rest.to_string()),
            "ready" => {
                self.exec = serde_json::from_str::<Value>(rest)
                    .ok()
                    .and_then(|ready| ready["exec_enforcement"].as_str().map(str::to_owned));
            }
            "status" => {
                if let Some(domain) = rest.strip_prefix("domain enforcement: ") {
                    // The verifier's log follows the reason; the log file has it.
                    let reason = domain.split(". Verifier output").next().unwrap_or(domain);
                    self.domain = Some(reason.to_string());
                }
            }
            "probe-stderr" => self.probe_stderr.push(rest.to_string()),
            "verified" => self.verified.push(rest.to_string()),
            "ready-missing"
            | "probe-unload-failed"
            | "mount-failed"
            | "lo-failed"
            | "no-package-dir" => {
                self.probe_problems.push(marker.to_string());
            }
            "begin" => {
                let index: Option<usize> =
                    rest.split_whitespace().next().and_then(|i| i.parse().ok());
                if let Some(index) = index {
                    while self.binaries.len() <= index {
                        self.binaries.push(BinaryRun::default());
                    }
                    self.binaries[index].started = uptime(rest);
                }
                self.current = index;
            }
            "end" => {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                if let [index, status, end] = fields[..]
                    && let Some(binary) = index
                        .parse::<usize>()
                        .ok()
                        .and_then(|index| self.binaries.get_mut(index))
                {
                    binary.exit = status.parse().ok();
                    binary.seconds = end
                        .parse::<f64>()
                        .ok()
                        .zip(binary.started)
                        .map(|(end, start)| end - start);
                }
                self.current = None;
            }
            "done" => self.done = true,
            _ => {}
        }
    }
}

/// The guest's initramfs with `kernel`'s modules under `/vm/modules/`,
/// numbered in the order init loads them: a second archive after the
/// first, which the kernel unpacks over it.
fn with_modules(kernel: &kernels::Kernel, guest: &guest::Guest, work: &Path) -> Result<PathBuf> {
    let mut modules = cpio::Tree::default();
    modules.dir("/vm/modules");
    for (index, module) in kernel.modules.iter().enumerate() {
        let name = module.file_name().context("a module path has no name")?;
        let guest_path =
            Path::new("/vm/modules").join(format!("{index}-{}", name.to_string_lossy()));
        modules.file(guest_path, module)?;
    }
    let appended = work.join(format!("{}-modules.cpio", kernel.spec.name));
    modules.write(&appended)?;
    let initramfs = work.join(format!("{}-initramfs.cpio", kernel.spec.name));
    let mut out = File::create(&initramfs)?;
    io::copy(&mut File::open(&guest.initramfs)?, &mut out)?;
    io::copy(&mut File::open(&appended)?, &mut out)?;
    Ok(initramfs)
}

/// Boots `kernel` with the guest, streams its console to the log (and,
/// from init on, to stdout), and reads the markers.
fn boot(
    kernel: &kernels::Kernel,
    guest: &guest::Guest,
    args: &VmTestArgs,
    work: &Path,
) -> Result<Run> {
    let name = kernel.spec.name;
    let log_path = work.join(format!("{name}.log"));
    let mut log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut append = String::from("console=ttyS0 panic=-1 rdinit=/init");
    // BPF LSM must be in the active list; a kernel built with it but
    // without it in CONFIG_LSM (Debian 11's 5.10) gets it on the command
    // line.
    if let Some(lsm) = &kernel.config_lsm
        && !lsm.split(',').any(|name| name == "bpf")
    {
        append.push_str(&format!(" lsm={lsm},bpf"));
    }
    let initramfs = with_modules(kernel, guest, work)?;
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-accel", "tcg", "-cpu", &args.cpu])
        .args(["-smp", &args.smp.to_string(), "-m", &args.memory])
        .args(["-nodefaults", "-no-reboot", "-display", "none"])
        .args(["-serial", "stdio"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(&initramfs)
        .args(["-append", &append])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!(
        "xtask: {name}: booting {} under TCG (log: {})",
        kernel.package,
        log_path.display()
    );
    writeln!(log, "# {qemu:?}")?;
    let started = Instant::now();
    let mut child = qemu.spawn().context("starting qemu-system-x86_64")?;
    let (lines, received) = mpsc::channel();
    let readers = [
        reader(child.stdout.take().expect("piped"), "", lines.clone()),
        reader(child.stderr.take().expect("piped"), "qemu: ", lines),
    ];

    let mut run = Run {
        name,
        package: kernel.package.clone(),
        log: log_path.clone(),
        wall: Duration::ZERO,
        timed_out: false,
        booted: None,
        release: None,
        lsm: None,
        exec: None,
        domain: None,
        probe_problems: Vec::new(),
        probe_stderr: Vec::new(),
        verified: Vec::new(),
        panic: None,
        done: false,
        binaries: Vec::new(),
        current: None,
    };
    let deadline = started + Duration::from_secs(args.timeout_minutes * 60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => {
                writeln!(log, "{line}")?;
                run.line(&line);
                if args.verbose || run.booted.is_some() || line.starts_with("qemu: ") {
                    println!("[{name}] {line}");
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                run.timed_out = true;
                eprintln!(
                    "xtask: {name}: no power-off within {} minutes; stopping qemu",
                    args.timeout_minutes
                );
                writeln!(
                    log,
                    "# xtask: timed out after {} minutes",
                    args.timeout_minutes
                )?;
                let _ = child.kill();
                break;
            }
        }
    }
    let status = child.wait()?;
    for reader in readers {
        let _ = reader.join();
    }
    // Lines that arrived after a timeout.
    while let Ok(line) = received.try_recv() {
        writeln!(log, "{line}")?;
    }
    run.wall = started.elapsed();
    writeln!(
        log,
        "# qemu exited: {status}; {:.1} s",
        run.wall.as_secs_f64()
    )?;
    if run.booted.is_none() {
        let text = fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        eprintln!("xtask: {name}: init never started; the console ended with:");
        for line in tail.into_iter().rev() {
            eprintln!("  {line}");
        }
    }
    Ok(run)
}

fn reader(
    pipe: impl Read + Send + 'static,
    prefix: &'static str,
    lines: mpsc::Sender<String>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut bytes = Vec::new();
        loop {
            bytes.clear();
            match reader.read_until(b'\n', &mut bytes) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&bytes);
                    let line = text.trim_end_matches(['\n', '\r']).replace('\r', "");
                    if lines.send(format!("{prefix}{line}")).is_err() {
                        break;
                    }
                }
            }
        }
    })
}

fn report(runs: &[Run], guest: &guest::Guest) {
    println!();
    println!("## Kernel matrix");
    println!();
    println!(
        "| kernel | package | boot | active LSMs | exec method | domain rules | tests passed | failed | result | wall time |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for run in runs {
        let passed: usize = run.binaries.iter().map(|binary| binary.passed).sum();
        let failed: usize = run.binaries.iter().map(|binary| binary.failed).sum();
        let boot = match (run.booted, &run.panic) {
            (Some(seconds), _) => format!("ok ({seconds:.1} s)"),
            (None, Some(_)) => "panic".to_string(),
            (None, None) => "no init".to_string(),
        };
        let result = if run.ok(guest) {
            "pass".to_string()
        } else if run.timed_out {
            "TIMEOUT".to_string()
        } else if !run.done {
            "INCOMPLETE".to_string()
        } else {
            "FAIL".to_string()
        };
        println!(
            "| {} | {} | {boot} | {} | {} | {} | {passed} | {failed} | {result} | {:.0} s |",
            run.name,
            run.release.as_deref().unwrap_or(&run.package),
            run.lsm.as_deref().unwrap_or("?"),
            match &run.exec {
                Some(method) if run.exec_method_expected() => method.clone(),
                // A refused hook's reason ends in the verifier's log, over
                // several lines: the cell keeps the first, which names the
                // refusal, and the log file has the rest.
                Some(method) => format!(
                    "{} (EXPECTED {})",
                    method.lines().next().unwrap_or_default(),
                    run.expected_exec_method()
                ),
                None => "? (no ready line)".to_string(),
            },
            run.domain.as_deref().unwrap_or("?"),
            run.wall.as_secs_f64(),
        );
    }
    println!();
    print!("| test binary |");
    for run in runs {
        print!(" {} |", run.name);
    }
    println!();
    println!("|---|{}", "---|".repeat(runs.len()));
    for (index, test) in guest.tests.iter().enumerate() {
        print!("| {} |", test.label);
        for run in runs {
            let cell = match run.binaries.get(index) {
                None => "not run".to_string(),
                Some(binary) => {
                    let time = binary
                        .seconds
                        .map(|seconds| format!(" in {seconds:.0} s"))
                        .unwrap_or_default();
                    match binary.exit {
                        Some(0) => format!("ok: {} passed{time}", binary.passed),
                        Some(124) => format!(
                            "TIMEOUT: {} passed, {} failed",
                            binary.passed, binary.failed
                        ),
                        Some(code) => format!(
                            "FAILED (exit {code}): {} passed, {} failed{time}",
                            binary.passed, binary.failed
                        ),
                        None => "no exit (guest stopped)".to_string(),
                    }
                }
            };
            print!(" {cell} |");
        }
        println!();
    }
    for run in runs {
        let failures: Vec<String> = run
            .binaries
            .iter()
            .zip(&guest.tests)
            .flat_map(|(binary, test)| {
                binary
                    .failures
                    .iter()
                    .map(move |name| format!("{}: {name}", test.label))
            })
            .collect();
        if failures.is_empty() && run.probe_problems.is_empty() && run.panic.is_none() {
            continue;
        }
        println!();
        println!("{} ({}):", run.name, run.log.display());
        for failure in failures {
            println!("- failed: {failure}");
        }
        for problem in &run.probe_problems {
            println!("- {problem}");
            if problem == "ready-missing" {
                for line in &run.probe_stderr {
                    println!("  - daemon: {line}");
                }
            }
        }
        if let Some(panic) = &run.panic {
            println!("- {panic}");
        }
    }
    println!();
    println!("## Verified instructions (`enforcer probe` in each guest)");
    for run in runs {
        println!();
        println!("{}:", run.name);
        println!("```");
        for line in &run.verified {
            println!("{line}");
        }
        println!("```");
    }
}
