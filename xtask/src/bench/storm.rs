//! Running the bench's child workloads: each is this same binary, run
//! again with a hidden subcommand, which prints what it measured.

use std::{env, ffi::OsStr, process::Command};

use anyhow::{Context, Result, bail};

/// Runs the hidden xtask subcommand `name` with `args`, which prints the
/// nanoseconds its storm took, and returns them.
pub(crate) fn storm(name: &str, args: &[&OsStr]) -> Result<f64> {
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
pub(crate) fn storm_output(args: &[&OsStr]) -> Result<String> {
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
