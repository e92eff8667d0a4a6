use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result};
use clap::Parser;
use enforcer::{
    cli::{Cli, Command, RunArgs},
    control::{Client, DEFAULT_SOCKET, Request, Response, StatusReport},
    daemon::config::{Config, DEFAULT_CONFIG},
    daemon::{self, RunOptions},
    kernel::maps::Slot,
    kernel::pins::DEFAULT_PIN_DIR,
    kernel::probe::ProbeReport,
    kernel::programs::FamilyChoice,
    policy,
    store::saved::DEFAULT_STATE_DIR,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    daemon::share_one_allocator_arena();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("enforcer: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("enforcer: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, skipping a cause that its parent's message
/// already quotes (most module errors quote their source).
fn describe(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

async fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Run(args) => {
            daemon::init_logging();
            let RunArgs {
                config,
                policy,
                policy_dir,
                cgroup,
                socket,
                events,
                hash_roots,
                pin_dir,
                state_dir,
                control_group,
                trusted_keys,
                syslog,
                event_format,
                require,
                refuse_family,
            } = *args;
            let config = match config {
                Some(path) => enforcer::daemon::config::load(&path)?,
                None if Path::new(DEFAULT_CONFIG).exists() => {
                    enforcer::daemon::config::load(Path::new(DEFAULT_CONFIG))?
                }
                None => Config::default(),
            };
            fn either<T>(flags: Vec<T>, file: Vec<T>) -> Vec<T> {
                if flags.is_empty() { file } else { flags }
            }
            let mut hash_roots = either(hash_roots, config.hash_roots);
            if hash_roots.is_empty() {
                hash_roots.push(PathBuf::from("/"));
            }
            // The command line wins over the file, files and directory
            // alike; within either, clap and the file's parser keep one.
            let policy = match (policy, policy_dir) {
                (files, _) if !files.is_empty() => files,
                (_, Some(dir)) => policy::files_in_dir(&dir)?,
                (_, None) => match config.policy_dir {
                    Some(dir) if config.policy.is_empty() => policy::files_in_dir(&dir)?,
                    Some(_) => anyhow::bail!(
                        "the configuration gives both `policy` and `policy_dir`; give one"
                    ),
                    None => config.policy,
                },
            };
            daemon::run(RunOptions {
                policy,
                cgroup: cgroup.or(config.cgroup),
                socket: socket
                    .or(config.socket)
                    .unwrap_or_else(|| DEFAULT_SOCKET.into()),
                events: events.or(config.events),
                hash_roots,
                pin_dir: pin_dir
                    .or(config.pin_dir)
                    .unwrap_or_else(|| DEFAULT_PIN_DIR.into()),
                state_dir: state_dir
                    .or(config.state_dir)
                    .unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
                control_group: control_group.or(config.control_group),
                trusted_keys: either(trusted_keys, config.trusted_keys),
                syslog: syslog.or(config.syslog),
                event_format: event_format.or(config.event_format).unwrap_or_default(),
                families: FamilyChoice {
                    require: either(require, config.require).into_iter().collect(),
                    refuse: refuse_family.into_iter().collect(),
                },
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(command) => enforcer::cli::policy::run(command).await,
        Command::Events {
            follow,
            filter,
            socket,
        } => enforcer::cli::events::events(follow, &filter, &socket.path).await,
        Command::Status { json, socket } => status(json, &socket.path).await,
        Command::Probe { json } => probe(json),
        Command::Doctor { output } => doctor(output.json),
        Command::Unload {
            confirm,
            socket,
            pin_dir,
            output,
        } => unload(confirm, &socket.path, &pin_dir, output.json).await,
    }
}

async fn status(json: bool, socket: &std::path::Path) -> Result<ExitCode> {
    let mut client = Client::request(socket, &Request::Status).await?;
    let report = match client.receive().await? {
        Response::Status(report) => report,
        other => return Err(other.unexpected().into()),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("encoding the status")?
        );
    } else {
        print!("{}", status_text(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks the daemon to remove enforcement; with no daemon answering, removes
/// the pins it left itself.
async fn unload(
    confirm: bool,
    socket: &std::path::Path,
    pin_dir: &std::path::Path,
    json: bool,
) -> Result<ExitCode> {
    let report = |text: String, pins_removed: usize, daemon: bool| {
        if json {
            let report = serde_json::json!({
                "changed": pins_removed > 0 || daemon,
                "pins_removed": pins_removed,
                "daemon": daemon,
            });
            println!("{report}");
        } else {
            println!("{text}");
        }
    };
    if !confirm {
        eprintln!(
            "enforcer: refusing to remove enforcement without --confirm; \
             `enforcer unload --confirm` detaches every program and stops the daemon"
        );
        return Ok(ExitCode::from(2));
    }
    match Client::connect(socket).await {
        Ok(mut client) => {
            client.send(&Request::Unload).await?;
            match client.receive().await? {
                Response::Unloaded { pins_removed } => {
                    report(
                        format!("enforcement removed ({pins_removed} pins); the daemon stops"),
                        pins_removed,
                        true,
                    );
                    Ok(ExitCode::SUCCESS)
                }
                other => Err(other.unexpected().into()),
            }
        }
        Err(_) => {
            let instances = enforcer::kernel::pins::instances(pin_dir);
            if instances.is_empty() {
                report(
                    format!(
                        "no daemon answers at {} and nothing is pinned under {}: \
                         enforcement is not loaded",
                        socket.display(),
                        pin_dir.display()
                    ),
                    0,
                    false,
                );
                return Ok(ExitCode::SUCCESS);
            }
            let mut removed = 0;
            for instance in instances {
                removed += enforcer::kernel::pins::remove_instance(&instance.path)?;
            }
            report(
                format!(
                    "no daemon answers at {}; removed the {removed} pins under {}: \
                     enforcement is off",
                    socket.display(),
                    pin_dir.display()
                ),
                removed,
                false,
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Exit 3 when the host would run degraded: distinct from 1, the daemon
/// would not start, and from clap's 2.
fn doctor(json: bool) -> Result<ExitCode> {
    let diagnosis = enforcer::doctor::Diagnosis::run();
    if json {
        println!("{}", serde_json::to_string(&diagnosis)?);
    } else {
        print!("{diagnosis}");
    }
    Ok(match diagnosis.verdict {
        enforcer::doctor::Status::Ok => ExitCode::SUCCESS,
        enforcer::doctor::Status::Degraded => ExitCode::from(3),
        enforcer::doctor::Status::Missing => ExitCode::FAILURE,
    })
}

/// Loads every program, attaching none, and reports the verifier's work
/// on each against the budget; exit 1 when one fails it.
fn probe(json: bool) -> Result<ExitCode> {
    let report = enforcer::kernel::probe::probe()?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).context("encoding the report")?
        );
    } else {
        print!("{}", probe_text(&report));
    }
    Ok(if report.fails_budget() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn probe_text(report: &ProbeReport) -> String {
    use std::fmt::Write as _;
    let mut text = format!(
        "kernel {}: verified instructions per program, budget {}\n",
        report.kernel, report.budget
    );
    // The longest program name, `bprm_check_security_by_file`.
    const NAME_WIDTH: usize = 27;
    for program in &report.programs {
        let verdict = if program.fails_budget(report.budget) {
            "OVER BUDGET"
        } else {
            "ok"
        };
        let _ = match (&program.error, program.verified_insns) {
            (Some(error), _) => writeln!(
                text,
                "  {:<NAME_WIDTH$} {:<18} refused{}: {error}",
                program.name,
                program.family.name(),
                if program.too_large {
                    " (OVER BUDGET)"
                } else {
                    ""
                }
            ),
            (None, Some(count)) => writeln!(
                text,
                "  {:<NAME_WIDTH$} {:<18} {count:>8} / {} {verdict}",
                program.name,
                program.family.name(),
                report.budget
            ),
            (None, None) => writeln!(
                text,
                "  {:<NAME_WIDTH$} {:<18} loaded, count unknown (a kernel before 5.16)",
                program.name,
                program.family.name()
            ),
        };
    }
    text
}

fn status_text(report: &StatusReport) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let by = report
        .applied_by
        .map_or("at start".to_string(), |uid| format!("by uid {uid}"));
    let _ = writeln!(text, "enforcing on cgroup {}", report.cgroup);
    let _ = writeln!(text, "programs: {}", report.programs.join(", "));
    let _ = writeln!(text, "exec enforcement: {}", report.exec_enforcement);
    let _ = writeln!(text, "domain enforcement: {}", report.domain_enforcement);
    let _ = writeln!(text, "self-protection: {}", report.self_protection);
    if !report.families.is_empty() {
        let _ = writeln!(text, "program families:");
    }
    for family in &report.families {
        let _ = writeln!(text, "  {}: {}", family.family, family.state);
    }
    if !report.programs_verified.is_empty() {
        let counts: Vec<String> = report
            .programs_verified
            .iter()
            .map(|program| match program.verified_insns {
                Some(count) => format!("{} {count}", program.name),
                None => format!("{} unknown", program.name),
            })
            .collect();
        let _ = writeln!(text, "verified instructions: {}", counts.join(", "));
    }
    let _ = writeln!(
        text,
        "policy: generation {}, applied {} {}, {} rule(s), sha256 {}",
        report.generation,
        report.applied_at,
        by,
        report.rules.len(),
        report.policy_sha256
    );
    for rule in &report.rules {
        let _ = writeln!(text, "  {rule}");
    }
    let _ = write!(text, "{}", report.rule_hits);
    let image = &report.image;
    let _ = writeln!(
        text,
        "kernel tables: {} IPv4 ranges, {} IPv6 ranges, {} classes, {} port entries ({} KiB)",
        image.v4_ranges,
        image.v6_ranges,
        image.classes,
        image.port_entries,
        image.words * 8 / 1024
    );
    if let Some(slot) = &report.image_slot {
        let capacity_kib = u64::from(slot.sized_capacity_words) * 8 / 1024;
        let _ = match slot.slot {
            Slot::Sized => writeln!(
                text,
                "kernel image: in the sized slot ({capacity_kib} KiB, lookups inlined)"
            ),
            Slot::AnySize => writeln!(
                text,
                "kernel image: larger than the sized slot ({capacity_kib} KiB, chosen at start), \
                 so every lookup is a helper call; restart the daemon to size the slot for it"
            ),
        };
    }
    let counters = &report.counters;
    let _ = writeln!(
        text,
        "network verdicts: {} blocked, {} audited, {} allowed by exception",
        counters.blocked, counters.audited, counters.allowed
    );
    let _ = writeln!(
        text,
        "exec verdicts: {} blocked, {} audited, {} allowed by exception",
        counters.exec_blocked, counters.exec_audited, counters.exec_allowed
    );
    let _ = writeln!(
        text,
        "domain verdicts: {} DNS queries blocked, {} server names blocked, {} addresses \
         learned, {} not stored (quota full), {} unreadable messages, {} answers nobody asked for",
        counters.dns_queries_blocked,
        counters.server_names_blocked,
        counters.addresses_learned,
        counters.learned_unstored,
        counters.malformed,
        counters.answers_unsolicited
    );
    let _ = writeln!(
        text,
        "ring buffer drops: {}, lookup faults: {}, busy buffers: {}, tampering refused: {}",
        counters.events_dropped,
        counters.lookup_faults,
        counters.buffers_busy,
        counters.tamper_refused
    );
    text
}
