//! Scenario `exec`: what an allowed exec pays under exec rules of several
//! sizes and under fapolicyd, each batch timed between two baseline
//! batches; and scenario `hash`: the `exec_sha256` window, from the close
//! of a new banned copy to the generation that bans it in force.

use std::{
    ffi::{CString, OsStr},
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{cgroup::BenchCgroup, daemon::Daemon, fapolicyd, stats::median, storm::storm, targets};
use crate::toolchain;

#[derive(Clone, Copy)]
enum Enforcement {
    None,
    /// An enforcer with this many exec rules.
    Enforcer(usize),
    /// An enforcer with `exec_trusted_only` and no rule.
    EnforcerTrust,
    Fapolicyd(fapolicyd::Rules),
}

struct Scenario {
    name: String,
    enforcement: Enforcement,
}

/// The exec storm: enforcers with exec rules and fapolicyd (when it can
/// run here; otherwise the reason is reported), each between two batches
/// with no enforcement.
pub(crate) fn exec_scenario(
    quick: bool,
    enforcer: &Path,
    work: &Path,
    cgroup: &BenchCgroup,
    target: &Path,
) -> Result<(Vec<Value>, targets::Exec)> {
    let (rounds, execs) = if quick { (3, 1_000) } else { (7, 5_000) };
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
    scenarios.push(Scenario {
        name: "enforcer, exec_trusted_only".to_string(),
        enforcement: Enforcement::EnforcerTrust,
    });
    let fapolicyd = fapolicyd::Config::prepare(target, &banned);
    let fapolicyd_status = match &fapolicyd {
        Ok(config) => {
            scenarios.push(Scenario {
                name: "fapolicyd, 1 deny rule".to_string(),
                enforcement: Enforcement::Fapolicyd(fapolicyd::Rules::DenyPath),
            });
            scenarios.push(Scenario {
                name: "fapolicyd, trust database".to_string(),
                enforcement: Enforcement::Fapolicyd(fapolicyd::Rules::Trust),
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
                    Enforcement::EnforcerTrust => {
                        let policy = work.join("policy-trust.toml");
                        fs::write(
                            &policy,
                            "version = 1\n[options]\nexec_trusted_only = true\n",
                        )?;
                        _daemon = Some(Daemon::start(enforcer, work, &cgroup.path, &policy, &[])?);
                    }
                    Enforcement::Fapolicyd(rules) => {
                        let config = fapolicyd
                            .as_ref()
                            .map_err(|error| anyhow::anyhow!("{error:#}"))?;
                        _fapolicyd = Some(config.start(rules)?);
                    }
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
            Enforcement::EnforcerTrust => exec.enforcer_trust = Some(ratio),
            Enforcement::Fapolicyd(fapolicyd::Rules::DenyPath) => exec.fapolicyd = Some(ratio),
            Enforcement::Fapolicyd(fapolicyd::Rules::Trust) => exec.fapolicyd_trust = Some(ratio),
            Enforcement::None => {}
        }
        json.push(json!({
            "scenario": "exec",
            "name": scenario.name,
            "rules": match scenario.enforcement {
                Enforcement::Enforcer(rules) => Some(rules),
                Enforcement::Fapolicyd(fapolicyd::Rules::DenyPath) => Some(1),
                Enforcement::EnforcerTrust
                | Enforcement::Fapolicyd(fapolicyd::Rules::Trust)
                | Enforcement::None => None,
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

pub(crate) fn hash_scenario(
    quick: bool,
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
        if quick { 10 } else { 50 },
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

/// A static binary that exits at once: the cheapest exec there is, so the
/// enforcer's share of it is as large as it can be.
pub(crate) fn static_noop(work: &Path) -> Result<PathBuf> {
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

/// The storm itself (`xtask exec-storm CGROUP TARGET COUNT`): prints the
/// nanoseconds `COUNT` spawn + wait cycles took.
pub(crate) fn exec_storm_child(cgroup: &Path, target: &Path, count: usize) -> Result<ExitCode> {
    fs::write(cgroup.join("cgroup.procs"), "0").context("joining the bench cgroup")?;
    let path = CString::new(target.as_os_str().as_encoded_bytes())?;
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
        &[OsStr::new("--hash-root"), root.as_os_str()],
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
