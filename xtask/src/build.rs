//! Building the kernel programs and the binary that embeds them.

use std::{
    env,
    path::PathBuf,
    process::{Command, ExitCode, Stdio},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{
    bpffs, toolchain,
    workspace::{target_dir, workspace_root},
};

pub(crate) const EBPF_TARGET: &str = "bpfel-unknown-none";

/// Environment for every userspace cargo call, so that builds and tests
/// embed the same object and never rebuild each other's artifacts.
pub(crate) struct Built {
    pub ebpf_object: PathBuf,
    pub enforcer: PathBuf,
    /// The nightly it was built with, when not the pinned one.
    pub untested_nightly: Option<String>,
}

impl Built {
    pub(crate) fn cargo(&self, subcommand: &str) -> Command {
        let mut command = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        command
            .arg(subcommand)
            .current_dir(workspace_root())
            .env("ENFORCER_EBPF_OBJECT", &self.ebpf_object);
        command
    }
}

pub(crate) fn build(release: bool) -> Result<Built> {
    let toolchain = toolchain::ensure()?;
    let ebpf_object = build_ebpf(&toolchain)?;
    let built = Built {
        enforcer: target_dir()
            .join(if release { "release" } else { "debug" })
            .join("enforcer"),
        ebpf_object,
        untested_nightly: (!toolchain.pinned()).then(|| toolchain.channel.clone()),
    };
    let mut cargo = built.cargo("build");
    cargo.args(["--package", "enforcer"]);
    if release {
        cargo.arg("--release");
    }
    run_checked(&mut cargo, "building enforcer")?;
    Ok(built)
}

/// The kernel programs are always built optimised: unoptimised BPF code
/// trips the verifier's limits.
fn build_ebpf(toolchain: &toolchain::Toolchain) -> Result<PathBuf> {
    let root = workspace_root();
    let target_dir = target_dir().join("ebpf");
    let path = env::join_paths(
        std::iter::once(toolchain.linker_dir.clone())
            .chain(env::split_paths(&env::var_os("PATH").unwrap_or_default())),
    )?;
    let mut cargo = Command::new("rustup");
    cargo
        .args([
            "run",
            &toolchain.channel,
            "cargo",
            "build",
            "--release",
            "--target",
            EBPF_TARGET,
        ])
        .args(["-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(root.join("enforcer-ebpf"))
        .env("PATH", path)
        // BTF-defined maps need BTF in the object. The export keeps the
        // programs' one global function global (see `counters::hit`).
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            [
                "-Cdebuginfo=2",
                "-Clink-arg=--btf",
                "-Clink-arg=--export=enforcer_rule_hit",
            ]
            .join("\x1f"),
        );
    // Variables the outer (stable) cargo set for xtask would steer the
    // nightly build to the wrong compiler or flags.
    for variable in [
        "RUSTC",
        "RUSTDOC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTUP_TOOLCHAIN",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO",
    ] {
        cargo.env_remove(variable);
    }
    let built = run_checked(&mut cargo, "building the eBPF programs");
    if !toolchain.pinned() {
        built.with_context(|| toolchain::untested(&toolchain.channel))?;
    } else {
        built?;
    }
    Ok(target_dir
        .join(EBPF_TARGET)
        .join("release")
        .join("enforcer"))
}

/// Prints how much verifier work each kernel program takes on this
/// kernel, from `enforcer probe --json`, against its budget. With the
/// pinned nightly it only informs (`cargo xtask test` fails on the
/// budget); a build with another nightly fails when this kernel's verifier
/// refuses a program the pin's build loads, or one is over the budget.
pub(crate) fn report_verifier_work(built: &Built) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "xtask: verifier summary skipped: `enforcer probe` loads the programs into the \
             kernel, which takes root (run `sudo -E cargo xtask build` to see it)"
        );
        return Ok(());
    }
    let _bpffs = bpffs::MountedDuringRun::mount();
    let output = Command::new(&built.enforcer)
        .args(["probe", "--json"])
        .stderr(Stdio::inherit())
        .output();
    let report = match output
        .map_err(|error| error.to_string())
        .and_then(|output| {
            serde_json::from_slice::<Value>(&output.stdout).map_err(|error| error.to_string())
        }) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("xtask: verifier summary unavailable: enforcer probe: {error}");
            return Ok(());
        }
    };
    let budget = report["budget"].as_u64().unwrap_or(0);
    let mut failing = Vec::new();
    eprintln!(
        "xtask: verified instructions on kernel {}, budget {budget} (half the verifier's limit):",
        report["kernel"].as_str().unwrap_or("?")
    );
    for program in report["programs"].as_array().into_iter().flatten() {
        let name = program["name"].as_str().unwrap_or("?");
        let family = program["family"].as_str().unwrap_or("?");
        let line = match (
            program["verified_insns"].as_u64(),
            program["error"].as_str(),
        ) {
            (Some(count), _) => {
                let verdict = if count > budget { "OVER BUDGET" } else { "ok" };
                format!("{count:>8} / {budget}  {verdict}")
            }
            (None, Some(error)) if program["too_large"] == true => {
                format!("refused as too large, OVER BUDGET: {error}")
            }
            (None, Some(error)) => format!("refused here: {error}"),
            (None, None) => "loaded; this kernel does not count (before 5.16)".to_string(),
        };
        // Wide enough for the longest name, `bprm_check_security_by_file`.
        eprintln!("  {name:<27} {family:<18} {line}");
        // The verifier's own refusals; a kernel without BPF trampolines
        // refuses LSM programs whatever the compiler made of them.
        let verifier_refused = program["error"]
            .as_str()
            .is_some_and(|error| error.contains("; verifier: "));
        let over = program["verified_insns"]
            .as_u64()
            .is_some_and(|count| count > budget);
        if program["too_large"] == true || verifier_refused || over {
            failing.push(name.to_string());
        }
    }
    match &built.untested_nightly {
        Some(channel) if !failing.is_empty() => bail!(
            "built with {channel}, this kernel's verifier refuses or overruns {}; {}",
            failing.join(", "),
            toolchain::untested(channel)
        ),
        _ => Ok(()),
    }
}

pub(crate) fn run(release: bool, args: &[String]) -> Result<ExitCode> {
    let built = build(release)?;
    let status = Command::new(&built.enforcer)
        .args(args)
        .status()
        .with_context(|| format!("starting {}", built.enforcer.display()))?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}

/// Installs a Debian package the host lacks, retrying once after
/// `apt-get update` (a fresh machine's lists may be missing or stale).
pub(crate) fn apt_install(package: &str) -> Result<()> {
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if install() {
        return Ok(());
    }
    eprintln!("xtask: retrying after apt-get update");
    run_checked(Command::new("apt-get").arg("update"), "apt-get update")?;
    if !install() {
        bail!("apt-get install {package} failed");
    }
    Ok(())
}

pub(crate) fn run_checked(command: &mut Command, what: &str) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("{what}: starting {command:?}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
