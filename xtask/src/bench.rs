//! `cargo xtask bench`: what enforcement costs, measured side by side with
//! a baseline in one run. Scenarios alternate round by round (A B C A B C
//! ...), so drift in a noisy VM falls on all of them alike, and the report
//! gives medians and each scenario's ratio to the baseline.
//!
//! Scenario `exec`: posix_spawn (vfork + execve) of a tiny static binary, in a cgroup of
//! the bench's own, with no enforcer, and with an enforcer holding exec
//! rules of several sizes that do not match the binary (the cost every
//! allowed exec pays).
//!
//! Then the `exec_sha256` window: how long after a banned copy is written
//! the generation that bans it is in force, and the `packets` scenario
//! (see `packets`).

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

use crate::{build, toolchain};

pub mod packets;
pub mod switch;

#[derive(Args)]
pub struct BenchArgs {
    /// Fewer rounds and execs, for a look in well under two minutes.
    #[arg(long)]
    quick: bool,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "target/bench/results.json")]
    json: PathBuf,
}

struct Scenario {
    name: String,
    /// Exec rules in the policy; `None` runs no enforcer.
    rules: Option<usize>,
}

pub fn bench(args: &BenchArgs) -> Result<ExitCode> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the benchmark loads eBPF programs and needs root");
    }
    let built = build::build(true)?;
    let work = build::target_dir().join("bench");
    fs::create_dir_all(&work)?;
    let target = static_noop(&work)?;
    let (rounds, execs) = if args.quick { (3, 2_000) } else { (7, 10_000) };

    let scenarios: Vec<Scenario> = [None, Some(0), Some(100), Some(10_000)]
        .into_iter()
        .map(|rules| Scenario {
            name: rules.map_or("no enforcer".to_string(), |n| {
                format!("enforcer, {n} exec rules")
            }),
            rules,
        })
        .collect();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); scenarios.len()];
    let cgroup = BenchCgroup::create()?;
    for round in 0..rounds {
        for (scenario, results) in scenarios.iter().zip(&mut samples) {
            let _daemon = match scenario.rules {
                Some(rules) => {
                    let policy = exec_rules_policy(&work, rules)?;
                    Some(Daemon::start(
                        &built.enforcer,
                        &work,
                        &cgroup.path,
                        &policy,
                        &[],
                    )?)
                }
                None => None,
            };
            let per_exec = exec_storm(&cgroup.path, &target, execs)?;
            eprintln!(
                "round {}/{rounds}: {}: {:.1} µs per exec",
                round + 1,
                scenario.name,
                per_exec
            );
            results.push(per_exec);
        }
    }

    let baseline = median(&samples[0]);
    println!("| scenario | median µs per exec | ratio to baseline |");
    println!("|---|---|---|");
    let mut json = Vec::new();
    for (scenario, results) in scenarios.iter().zip(&samples) {
        let value = median(results);
        println!(
            "| {} | {value:.1} | {:.3} |",
            scenario.name,
            value / baseline
        );
        json.push(format!(
            r#"{{"scenario":"exec","name":{:?},"rules":{},"median_us":{value:.3},"ratio":{:.4},"samples_us":{:?}}}"#,
            scenario.name,
            scenario.rules.map_or("null".to_string(), |n| n.to_string()),
            value / baseline,
            results
        ));
    }
    println!(
        "\n{rounds} rounds of {execs} posix_spawn + wait each, scenarios alternating within every round."
    );
    if let Some(dir) = args.json.parent() {
        fs::create_dir_all(dir)?;
    }

    let windows = hash_window(
        &built.enforcer,
        &work,
        &cgroup.path,
        &target,
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
    json.push(format!(
        r#"{{"scenario":"hash_window","median_ms":{:.3},"max_ms":{:.3},"samples_ms":{:?}}}"#,
        median(&windows),
        sorted.last().copied().unwrap_or_default(),
        windows
    ));
    let (packet_rounds, round_trips) = if args.quick { (3, 5_000) } else { (7, 30_000) };
    json.extend(packets::run(
        &built.enforcer,
        &work,
        &cgroup.path,
        packet_rounds,
        round_trips,
    )?);
    let (prefixes, switches) = if args.quick {
        (100_000, 3)
    } else {
        (1_000_000, 5)
    };
    json.push(switch::run(
        &built.enforcer,
        &work,
        &cgroup.path,
        prefixes,
        switches,
    )?);
    fs::write(&args.json, format!("[{}]\n", json.join(",\n")))?;
    println!("JSON: {}", args.json.display());
    Ok(ExitCode::SUCCESS)
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

struct BenchCgroup {
    path: PathBuf,
}

impl BenchCgroup {
    fn create() -> Result<Self> {
        let mount = crate::cgroup2_mount().context("no cgroup v2 hierarchy is mounted")?;
        let path = mount.join(format!("enforcer-bench-{}", std::process::id()));
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
        let mut child = Command::new(enforcer)
            .args(["run", "--policy"])
            .arg(policy_file)
            .arg("--cgroup")
            .arg(cgroup)
            .arg("--socket")
            .arg(&socket)
            .arg("--pin-dir")
            .arg(&pin_dir)
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
            bail!("the enforcer did not become ready: {first}");
        }
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
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
