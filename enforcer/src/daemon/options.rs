//! What `enforcer run` is asked to do, from its flags and its config file.

use std::path::PathBuf;

use crate::kernel::programs::FamilyChoice;

pub struct RunOptions {
    pub policy: Vec<PathBuf>,
    pub cgroup: Option<PathBuf>,
    pub socket: PathBuf,
    pub events: Option<PathBuf>,
    /// Scanned at start for copies of banned content.
    pub hash_roots: Vec<PathBuf>,
    /// Where links and maps are pinned (see `crate::kernel::pins`).
    pub pin_dir: PathBuf,
    /// Where the last applied policy is kept (see `crate::store::saved`). With no
    /// `policy` files given, the daemon enforces the one stored there.
    pub state_dir: PathBuf,
    /// A group whose members may apply and roll back policy, see status and
    /// follow events (not unload); without it, only root may.
    pub control_group: Option<String>,
    /// Public key files; when there are any, policy pushed over the
    /// control socket must be a bundle one of them signed.
    pub trusted_keys: Vec<PathBuf>,
    /// Also send every event to this syslog socket.
    pub syslog: Option<PathBuf>,
    /// How events are written to stdout and the events file.
    pub event_format: crate::events::EventFormat,
    /// The program families that must load, and those a test has the
    /// loader treat as refused.
    pub families: FamilyChoice,
}
