//! Command-line interface: the daemon (`run`) and its clients.

pub mod events;
pub mod policy;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::{
    control::DEFAULT_SOCKET,
    explain::Target,
    kernel::family::Family,
    kernel::pins::DEFAULT_PIN_DIR,
    policy::{Mode, PolicyDirError, files_in_dir},
    store::saved::DEFAULT_STATE_DIR,
};

#[derive(Parser)]
#[command(
    name = "enforcer",
    version,
    about = "Kernel-level eBPF network enforcer"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Load the kernel programs, apply the policy and enforce it until stopped.
    Run(Box<RunArgs>),
    /// Load every program of the embedded object that this kernel accepts,
    /// attach none, and report each one's verifier instruction count (or
    /// why it was refused) against the budget. Exit 1 when a program is
    /// over the budget or refused as too large.
    Probe {
        #[arg(long)]
        json: bool,
    },
    /// Remove enforcement: detach and unpin every program, and stop the
    /// daemon. The only way enforcement ends; refused without --confirm.
    Unload {
        /// Yes, remove enforcement.
        #[arg(long)]
        confirm: bool,
        #[command(flatten)]
        socket: SocketArg,
        /// Where to find the pins when no daemon answers.
        #[arg(long = "pin-dir", default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
        #[command(flatten)]
        output: JsonArg,
    },
    /// Check what this host gives the enforcer, before deploying it: the
    /// start requirements, every program loaded (none attached) against
    /// the budget, the exec method, BTF, and what would run degraded.
    /// Exit 0: everything is enforced; 3: some of it would be degraded;
    /// 1: the daemon would not start. Needs root.
    Doctor {
        #[command(flatten)]
        output: JsonArg,
    },
    /// Check or apply policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print the daemon's events as JSON lines.
    Events {
        /// Keep streaming new events until interrupted.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        filter: events::EventFilter,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Show what the daemon enforces and what it has seen.
    Status {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
}

/// The flags of `enforcer run`.
#[derive(Args)]
pub struct RunArgs {
    /// Settings, as the flags below (default: /etc/enforcer/enforcer.toml
    /// if it exists). A flag given here wins over the file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Policy files, applied together as one policy. Without them (or
    /// --policy-dir), the policy last applied (kept in --state-dir) is
    /// enforced.
    #[arg(long, num_args = 1..)]
    pub policy: Vec<PathBuf>,
    /// A directory whose `*.toml` files are applied together as one
    /// policy, in name order, as a `rules.d` directory is read.
    #[arg(long = "policy-dir", conflicts_with = "policy")]
    pub policy_dir: Option<PathBuf>,
    /// Enforce only in this cgroup v2 subtree (default: the whole machine).
    #[arg(long)]
    pub cgroup: Option<PathBuf>,
    /// The control socket [default: /run/enforcer/control.sock].
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Also append events, as JSON lines, to this file.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Where to look for existing copies of `exec_sha256` content when a
    /// policy with such rules is applied (repeatable). Files written
    /// later anywhere on these filesystems are checked as they are closed.
    /// [default: /]
    #[arg(long = "hash-root")]
    pub hash_roots: Vec<PathBuf>,
    /// Where the programs' links and shared maps are pinned, so that
    /// enforcement outlives the daemon. A bpffs directory
    /// [default: /sys/fs/bpf/enforcer].
    #[arg(long = "pin-dir")]
    pub pin_dir: Option<PathBuf>,
    /// Where the last applied policy is kept, for restarts and boot
    /// [default: /var/lib/enforcer].
    #[arg(long = "state-dir")]
    pub state_dir: Option<PathBuf>,
    /// Let this group's members apply and roll back policy, see status
    /// and follow events, besides root. Only root may unload.
    #[arg(long = "control-group")]
    pub control_group: Option<String>,
    /// A public key file (repeatable). With any, policy pushed over the
    /// control socket must be a bundle signed by one of these keys.
    #[arg(long = "trusted-key")]
    pub trusted_keys: Vec<PathBuf>,
    /// Also send every event to the system log (journald serves its
    /// socket too), or to this syslog socket.
    #[arg(long, num_args = 0..=1, default_missing_value = "/dev/log", require_equals = true)]
    pub syslog: Option<PathBuf>,
    /// How events are written to stdout and --events: `json`, the
    /// enforcer's own lines, or `ecs`, Elastic Common Schema documents.
    /// `enforcer events` and syslog always get `json`.
    #[arg(long = "event-format", value_enum)]
    pub event_format: Option<crate::EventFormat>,
    /// Program families that must load, as a comma list of network,
    /// exec, exec_names, exec_block_loader, domains, self_protection.
    /// Each is loaded at start; if the kernel refuses one, the start
    /// fails before anything is attached. Without it, a refused family is
    /// reported (status, `degraded` event) and the rest is enforced.
    #[arg(long, value_delimiter = ',')]
    pub require: Vec<Family>,
    /// Test hook: the loader treats these families (a comma list) as
    /// refused by the kernel, without asking it.
    #[arg(long = "refuse-family", value_delimiter = ',', hide = true)]
    pub refuse_family: Vec<Family>,
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Validate policy files offline: exit 0 if valid, 1 with FILE:LINE:COL errors if not.
    Check {
        #[command(flatten)]
        policy: PolicyFiles,
        #[command(flatten)]
        output: JsonArg,
    },
    /// Validate and send policy files to the daemon, which switches to them atomically.
    Apply {
        #[arg(
            required_unless_present_any = ["bundle", "dir"],
            conflicts_with_all = ["bundle", "dir"]
        )]
        files: Vec<PathBuf>,
        /// Send the `*.toml` files of this directory, in name order.
        #[arg(long, conflicts_with = "bundle")]
        dir: Option<PathBuf>,
        /// Send a signed bundle (from `policy sign`) instead of files.
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Put every block rule of the files in this mode (`audit` or
        /// `enforce`) without editing them, e.g. to pilot a pack.
        #[arg(long, value_parser = parse_mode, conflicts_with = "bundle")]
        mode: Option<Mode>,
        #[command(flatten)]
        socket: SocketArg,
        #[command(flatten)]
        output: JsonArg,
    },
    /// Make an ed25519 key pair for signing policy: PREFIX.key (secret,
    /// mode 0600) and PREFIX.pub (for --trusted-key).
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign policy files into a bundle, written to stdout.
    Sign {
        /// The secret key file from `policy keygen`.
        #[arg(long)]
        key: PathBuf,
        #[command(flatten)]
        policy: PolicyFiles,
    },
    /// Say which rule decides each target, and why, offline: an endpoint
    /// (`ip[:port][/proto]`, IPv6 with a port in brackets), a domain name,
    /// or an executable's absolute path. The policy is compiled and
    /// searched as the kernel programs search it.
    Explain {
        #[arg(required = true)]
        targets: Vec<Target>,
        /// Policy files to explain; without them and --dir, the policy in
        /// force, as the daemon stored it in --state-dir.
        #[arg(long = "policy", conflicts_with = "dir")]
        policy: Vec<PathBuf>,
        /// A directory whose `*.toml` files are the policy, in name order.
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// One JSON object per target, on a line of its own.
        #[arg(long)]
        json: bool,
    },
    /// Switch back to the policy that was in force before the last apply.
    Rollback {
        #[command(flatten)]
        socket: SocketArg,
        #[command(flatten)]
        output: JsonArg,
    },
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    match text {
        "enforce" => Ok(Mode::Enforce),
        "audit" => Ok(Mode::Audit),
        other => Err(format!(
            r#"unknown mode {other:?}; expected "enforce" or "audit""#
        )),
    }
}

/// Policy files, or a directory of them.
#[derive(Args)]
pub struct PolicyFiles {
    /// Policy files, read together as one policy.
    #[arg(required_unless_present = "dir", conflicts_with = "dir")]
    pub files: Vec<PathBuf>,
    /// A directory whose `*.toml` files are read as one policy, in name
    /// order, as a `rules.d` directory is read.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

impl PolicyFiles {
    /// The files, the directory's listed.
    pub fn paths(self) -> Result<Vec<PathBuf>, PolicyDirError> {
        match self.dir {
            Some(dir) => files_in_dir(&dir),
            None => Ok(self.files),
        }
    }
}

/// `--json`: one JSON object on stdout, errors included, for automation.
#[derive(Args, Clone, Copy)]
pub struct JsonArg {
    /// Print one JSON object instead of text: what changed (`changed`,
    /// `generation`, `diff`) or what is wrong (`valid: false`, `errors`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct SocketArg {
    /// The daemon's control socket.
    #[arg(long = "socket", default_value = DEFAULT_SOCKET)]
    pub path: PathBuf,
}
