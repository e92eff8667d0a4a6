//! `cargo xtask`: builds, runs and tests enforcer, bootstrapping the eBPF
//! toolchain (nightly rust-src and a bpf-linker on the nightly's own LLVM)
//! on first use.

mod bench;
mod bpffs;
mod build;
mod fresh;
mod fuzz;
mod layout;
mod mounts;
mod test;
mod toolchain;
mod vm;
mod workspace;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, run and test enforcer")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the kernel programs and the enforcer binary that embeds them.
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Build, then run the enforcer with the given arguments.
    Run {
        #[arg(long)]
        release: bool,
        /// Arguments for enforcer, after `--`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Bootstrap the toolchain into an empty cache, build, and check that the
    /// shipped policy loads every program family within its budget (root).
    Fresh,
    /// Check the source layout: file lengths, one module-file convention, no
    /// import cycles between module files.
    Layout,
    /// Check the shipped policy packs: valid, sourced and dated, every
    /// banned service decided by its own rule, nothing approved blocked
    /// (`enforcer/tests/packs.rs`; `cargo xtask test` runs it too).
    PacksCheck,
    /// Run every test: the layout check, unit tests, then the kernel
    /// integration suite (as root).
    Test {
        /// Then fuzz the packet parsers for this many seconds (`fuzz/`).
        #[arg(long, value_name = "SECONDS")]
        fuzz: Option<u64>,
        /// Extra arguments for the test binaries, after `--` (a name filter, say).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Measure what enforcement costs against a baseline, side by side (as root).
    Bench(bench::BenchArgs),
    /// Run the kernel integration suite on distribution kernels under qemu.
    VmTest(vm::VmTestArgs),
    /// The exec storm the benchmark runs inside its cgroup.
    #[command(hide = true)]
    ExecStorm {
        cgroup: PathBuf,
        target: PathBuf,
        count: usize,
    },
    /// The TCP stream the benchmark's packets scenario runs inside its cgroup.
    #[command(hide = true)]
    PacketStorm { cgroup: PathBuf, count: usize },
    /// The connect loop the benchmark's switch scenario runs inside its cgroup.
    #[command(hide = true)]
    ConnectStorm { cgroup: PathBuf, millis: u64 },
}

/// Needs neither root nor the kernel programs, so it builds in a target
/// directory of its own: the enforcer binary a plain build makes, without
/// the programs, must not replace the one `cargo xtask build` made.
fn packs_check() -> anyhow::Result<ExitCode> {
    let mut cargo =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .args([
            "test",
            "--package",
            "enforcer",
            "--test",
            "packs",
            "--target-dir",
        ])
        .arg(workspace::target_dir().join("packs-check"))
        .current_dir(workspace::workspace_root());
    build::run_checked(&mut cargo, "checking the packs")?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build { release } => build::build(release)
            .and_then(|built| build::report_verifier_work(&built))
            .map(|()| ExitCode::SUCCESS),
        Command::Run { release, args } => build::run(release, &args),
        Command::Fresh => fresh::fresh(),
        Command::Layout => layout::layout(),
        Command::PacksCheck => packs_check(),
        Command::Test { fuzz, args } => test::test(&args, fuzz),
        Command::Bench(args) => bench::bench(&args),
        Command::VmTest(args) => vm::vm_test(&args),
        Command::ExecStorm {
            cgroup,
            target,
            count,
        } => bench::exec::exec_storm_child(&cgroup, &target, count),
        Command::PacketStorm { cgroup, count } => {
            bench::packets::packet_storm_child(&cgroup, count)
        }
        Command::ConnectStorm { cgroup, millis } => {
            bench::switch::connect_storm_child(&cgroup, millis)
        }
    };
    result.unwrap_or_else(|error| {
        eprintln!("xtask: {error:#}");
        ExitCode::FAILURE
    })
}
