//! `cargo xtask test`: the layout check, unit tests everywhere, then the
//! kernel integration suite, which needs root and a kernel with cgroup
//! BPF. Without those it is skipped with the reason, and under CI a skip
//! is a failure.

use std::{env, process::ExitCode};

use anyhow::Result;

use crate::{bpffs, build, fuzz, layout};

/// The layout check goes first but does not stop the suite: its findings
/// and the tests' results are both worth seeing in one run. Fuzzing, when
/// asked for, comes last.
pub(crate) fn test(args: &[String], fuzz_seconds: Option<u64>) -> Result<ExitCode> {
    let layout_clean = layout::report_workspace()?;
    let suite = suite(args)?;
    if !layout_clean {
        eprintln!("xtask: the layout check failed; its findings are above");
        return Ok(ExitCode::FAILURE);
    }
    if suite == ExitCode::SUCCESS
        && let Some(seconds) = fuzz_seconds
    {
        fuzz::fuzz(seconds)?;
    }
    Ok(suite)
}

fn suite(args: &[String]) -> Result<ExitCode> {
    let built = build::build(false)?;

    let mut unit = built.cargo("test");
    unit.args([
        "--workspace",
        "--exclude",
        "enforcer-integration-tests",
        "--no-fail-fast",
    ]);
    if !args.is_empty() {
        unit.arg("--").args(args);
    }
    build::run_checked(&mut unit, "unit tests")?;

    if let Some(reason) = kernel_tests_unavailable() {
        if env::var("CI").is_ok_and(|ci| ci == "true") {
            eprintln!(
                "xtask: the kernel integration tests cannot run here: {reason}; under CI that is a failure"
            );
            return Ok(ExitCode::FAILURE);
        }
        eprintln!("xtask: skipping the kernel integration tests: {reason}");
        return Ok(ExitCode::SUCCESS);
    }
    let _bpffs = bpffs::MountedDuringRun::mount();
    let mut kernel = built.cargo("test");
    kernel
        .args(["--package", "enforcer-integration-tests", "--no-fail-fast"])
        .env("ENFORCER_BIN", &built.enforcer);
    if !args.is_empty() {
        kernel.arg("--").args(args);
    }
    build::run_checked(&mut kernel, "kernel integration tests")?;
    Ok(ExitCode::SUCCESS)
}

fn kernel_tests_unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "they load eBPF programs and need root (run `sudo -E cargo xtask test`)".into(),
        );
    }
    if crate::mounts::cgroup2_mount().is_none() {
        return Some("no cgroup v2 hierarchy is mounted".into());
    }
    None
}
