//! The `policy` subcommands: what the CLI does with policy files offline
//! (check, explain, sign) and what it asks the daemon (apply, rollback).
//! Each prints for a person, or with `--json` one JSON object for
//! automation.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result};

use super::{PolicyCommand, PolicyFiles};
use crate::{
    compile::ImageStats,
    control::{Client, Request, Response},
    explain::{Explainer, Target},
    policy::{self, PolicyErrors},
    store::saved::PolicyStore,
};

/// Runs one `policy` subcommand.
pub async fn run(command: PolicyCommand) -> Result<ExitCode> {
    match command {
        PolicyCommand::Check { policy, output } => Ok(check(&policy.paths()?, output.json)),
        PolicyCommand::Apply {
            files,
            dir,
            bundle: None,
            mode,
            socket,
            output,
        } => {
            let files = PolicyFiles { files, dir }.paths()?;
            apply(&files, mode, &socket.path, output.json).await
        }
        PolicyCommand::Apply {
            bundle: Some(bundle),
            socket,
            output,
            ..
        } => apply_bundle(&bundle, &socket.path, output.json).await,
        PolicyCommand::Keygen { out } => keygen(&out),
        PolicyCommand::Sign { key, policy } => sign(&key, &policy.paths()?),
        PolicyCommand::Rollback { socket, output } => rollback(&socket.path, output.json).await,
        PolicyCommand::Explain {
            targets,
            policy,
            dir,
            state_dir,
            json,
        } => explain(
            &targets,
            PolicyFiles { files: policy, dir },
            &state_dir,
            json,
        ),
    }
}

fn check(files: &[PathBuf], json: bool) -> ExitCode {
    let policy = match policy::load_files(files) {
        Ok(policy) => policy,
        Err(errors) => return invalid(&errors, json),
    };
    let warnings: Vec<String> = policy::shared_targets(&policy)
        .iter()
        .map(ToString::to_string)
        .collect();
    if json {
        let report = serde_json::json!({
            "valid": true,
            "rules": policy.rules.len(),
            "files": files.len(),
            "warnings": warnings,
        });
        println!("{report}");
    } else {
        for warning in &warnings {
            eprintln!("{warning}");
        }
        println!(
            "{} rule(s) in {} file(s): valid",
            policy.rules.len(),
            files.len()
        );
    }
    ExitCode::SUCCESS
}

/// Explains each target against the given files, or the stored policy.
fn explain(
    targets: &[Target],
    files: PolicyFiles,
    state_dir: &Path,
    json: bool,
) -> Result<ExitCode> {
    let sources = if files.files.is_empty() && files.dir.is_none() {
        let store = PolicyStore::new(state_dir);
        match store.load()? {
            Some(stored) => stored.sources,
            None => anyhow::bail!(
                "no policy is stored in {}; give --policy FILE or --dir DIR",
                state_dir.display()
            ),
        }
    } else {
        match policy::read_files(&files.paths()?) {
            Ok(sources) => sources,
            Err(errors) => return Ok(invalid(&errors, json)),
        }
    };
    let policy = match policy::parse(&sources) {
        Ok(policy) => policy,
        Err(errors) => return Ok(invalid(&errors, json)),
    };
    let explainer = Explainer::new(policy)?;
    for target in targets {
        let explanation = explainer.explain(target)?;
        if json {
            println!("{}", serde_json::to_string(&explanation)?);
        } else {
            print!("{explanation}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Every error, one per line on stderr, or as `{"valid": false, "errors":
/// [...]}` on stdout; exit 1 either way.
fn invalid(errors: &PolicyErrors, json: bool) -> ExitCode {
    if json {
        println!(
            "{}",
            serde_json::json!({ "valid": false, "errors": errors.0 })
        );
    } else {
        eprintln!("{errors}");
    }
    ExitCode::FAILURE
}

async fn apply(
    files: &[PathBuf],
    mode: Option<policy::Mode>,
    socket: &Path,
    json: bool,
) -> Result<ExitCode> {
    let sources = match policy::read_files(files) {
        Ok(sources) => match mode {
            Some(mode) => policy::in_mode(sources, files, mode),
            None => sources,
        },
        Err(errors) => return Ok(invalid(&errors, json)),
    };
    let mut client = Client::request(socket, &Request::Apply { sources }).await?;
    applied(client.receive().await?, json)
}

async fn apply_bundle(file: &Path, socket: &Path, json: bool) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let bundle: crate::store::signing::Bundle = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a policy bundle", file.display()))?;
    let mut client = Client::request(socket, &Request::ApplySigned { bundle }).await?;
    applied(client.receive().await?, json)
}

fn keygen(out: &Path) -> Result<ExitCode> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let (secret, public) = crate::store::signing::generate()?;
    let secret_file = out.with_extension("key");
    let public_file = out.with_extension("pub");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret_file)
        .and_then(|mut file| std::io::Write::write_all(&mut file, secret.as_bytes()))
        .with_context(|| format!("writing {}", secret_file.display()))?;
    std::fs::write(&public_file, public)
        .with_context(|| format!("writing {}", public_file.display()))?;
    println!(
        "secret key: {} (keep it off the workstations); public key: {} (for --trusted-key)",
        secret_file.display(),
        public_file.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn sign(key: &Path, files: &[PathBuf]) -> Result<ExitCode> {
    let sources = match policy::read_files(files) {
        Ok(sources) => sources,
        Err(errors) => return Ok(invalid(&errors, false)),
    };
    // Only a policy that checks is worth a signature.
    if let Err(errors) = policy::parse(&sources) {
        return Ok(invalid(&errors, false));
    }
    let bundle = crate::store::signing::sign(key, sources)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&bundle).context("encoding the bundle")?
    );
    Ok(ExitCode::SUCCESS)
}

async fn rollback(socket: &Path, json: bool) -> Result<ExitCode> {
    let mut client = Client::request(socket, &Request::Rollback).await?;
    applied(client.receive().await?, json)
}

/// Prints the daemon's answer to an apply or a rollback.
fn applied(response: Response, json: bool) -> Result<ExitCode> {
    match response {
        Response::Applied(report) if json => {
            println!("{}", serde_json::to_string(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        Response::Applied(report) if !report.changed => {
            println!(
                "generation {} unchanged: the policy sent is the one in force",
                report.generation
            );
            Ok(ExitCode::SUCCESS)
        }
        Response::Applied(report) => {
            println!("generation {} applied", report.generation);
            print!("{}", report.diff);
            println!("{}", stats_change(&report.before, &report.after));
            for path in &report.missing_paths {
                println!("not present now (watched, banned when it appears): {path}");
            }
            for degradation in &report.not_enforced {
                println!("{degradation}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Response::Invalid { errors } => Ok(invalid(&errors, json)),
        other => Err(other.unexpected().into()),
    }
}

fn stats_change(before: &ImageStats, after: &ImageStats) -> String {
    format!(
        "entries: IPv4 ranges {} -> {}, IPv6 ranges {} -> {}, classes {} -> {}, port entries {} -> {}",
        before.v4_ranges,
        after.v4_ranges,
        before.v6_ranges,
        after.v6_ranges,
        before.classes,
        after.classes,
        before.port_entries,
        after.port_entries
    )
}
