//! `cargo xtask test --fuzz SECONDS`: the `parsers` target of `fuzz/`,
//! built with libFuzzer's coverage instrumentation (the flags cargo-fuzz
//! passes, without needing it or a nightly) and run for a bounded time
//! over the committed seeds. New inputs go to a scratch corpus, so the
//! committed one changes only when someone copies a finding in.

use std::{env, fs, process::Command};

use anyhow::{Context, Result, bail};

use crate::{
    build::run_checked,
    workspace::{target_dir, workspace_root},
};

/// The host target, named so that the instrumentation reaches the fuzzed
/// code and not build scripts or proc macros.
const HOST_TARGET: &str = "x86_64-unknown-linux-gnu";

const INSTRUMENTATION: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    -Cdebug-assertions -Coverflow-checks --cfg fuzzing";

pub(crate) fn fuzz(seconds: u64) -> Result<()> {
    let root = workspace_root();
    let target = target_dir().join("fuzz");
    let mut build = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    build
        .current_dir(root.join("fuzz"))
        .args([
            "build",
            "--release",
            "--locked",
            "--bin",
            "parsers",
            "--target",
            HOST_TARGET,
        ])
        .env("CARGO_TARGET_DIR", &target)
        .env("RUSTFLAGS", INSTRUMENTATION);
    run_checked(&mut build, "building the fuzz target")?;

    let scratch = target.join("corpus-run");
    let artifacts = target.join("artifacts");
    for dir in [&scratch, &artifacts] {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let status = Command::new(target.join(HOST_TARGET).join("release").join("parsers"))
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1")
        .arg(&scratch)
        .arg(root.join("fuzz/corpus/parsers"))
        .status()
        .context("starting the fuzz target")?;
    if !status.success() {
        bail!(
            "the fuzz target found a failing input ({status}); it is in {}",
            artifacts.display()
        );
    }
    eprintln!("xtask: {seconds} s of fuzzing the parsers found nothing");
    Ok(())
}
