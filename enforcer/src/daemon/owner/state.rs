//! What the owner holds: the loaded kernel side, the generation in force,
//! and the commands it takes.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Instant, SystemTime},
};

use enforcer_common::{
    exec::OPTIONS_RULE,
    hits::{RuleHitKey, TRUSTED_ONLY_RULE},
};
use tokio::sync::{mpsc, oneshot};

use crate::{
    compile::ImageStats,
    control::Response,
    events::{hub::EventHub, rules::RuleBook},
    exec::{content::ContentBans, hashwatch::Match, pathwatch::PathWatch, resolve::Resolution},
    kernel::{
        hits::RuleHitTotals,
        learned::LearnedMaps,
        maps::{Counters, GenerationSlot, Slot},
        programs::Programs,
    },
    policy::Policy,
    store::saved::{PolicyStore, StoredPolicy},
};

/// What the owner takes over from the loader.
pub(crate) struct Kernel {
    pub programs: Programs,
    pub slot: GenerationSlot,
    pub counters: Counters,
    pub hits: RuleHitTotals,
}

/// Where the owner enforces.
pub(crate) struct Reach {
    /// The cgroup the programs attach to.
    pub cgroup: PathBuf,
    /// The same cgroup as `/proc/PID/cgroup` names it.
    pub cgroup_path: String,
    /// Where copies of banned content are looked for at start.
    pub hash_roots: Vec<PathBuf>,
    /// Where each applied policy is kept, and the content hash of the
    /// first one.
    pub store: PolicyStore,
    pub sha256: String,
}

/// Where this daemon's numbering and hashing start: where the daemon it
/// takes over from left them, so that its events and learned addresses
/// stay meaningful.
pub(crate) struct Lineage {
    pub domain_seed: u64,
    pub first_generation: u64,
}

/// Who asked for a change, from the control socket's peer credentials.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    pub uid: u32,
    pub pid: Option<u32>,
}

pub(crate) enum Command {
    Apply {
        policy: StoredPolicy,
        peer: Peer,
        reply: oneshot::Sender<Response>,
    },
    Status {
        reply: oneshot::Sender<Response>,
    },
    /// Apply the policy in force before the last apply.
    Rollback {
        peer: Peer,
        reply: oneshot::Sender<Response>,
    },
    /// Detach and unpin everything.
    Unload {
        peer: Peer,
        reply: oneshot::Sender<Response>,
    },
    /// Something changed behind the policy's exec paths: resolve again.
    ResolvePaths,
    /// A file with banned content was found.
    ContentFound(Match),
    /// Time to delete expired learned addresses.
    SweepLearned,
}

pub(crate) struct Owner {
    pub(super) programs: Programs,
    pub(super) slot: GenerationSlot,
    pub(super) counters: Counters,
    /// Hits per rule name, of the generations replaced so far and the
    /// live one.
    pub(super) hits: RuleHitTotals,
    pub(super) rules: Arc<RuleBook>,
    pub(super) hub: Arc<EventHub>,
    pub(super) cgroup: PathBuf,
    /// For the path watcher; weak, so that the owner's own handle never
    /// keeps the daemon from shutting down.
    pub(super) commands: mpsc::WeakSender<Command>,
    pub(super) path_watch: Option<PathWatch>,
    pub(super) content: ContentBans,
    /// Where the hash watch scans for existing copies at start.
    pub(super) hash_roots: Vec<PathBuf>,
    /// Seeds every generation's domain table (see `compile::compile`).
    pub(super) domain_seed: u64,
    pub(super) store: PolicyStore,
    pub(super) live: Live,
    /// `None` when the learned maps could not be opened: nothing expires,
    /// and owners at their quota stay there until a restart.
    pub(super) learned: Option<LearnedUpkeep>,
}

/// The learned maps, and what was last reported of them (see
/// `super::learned`).
pub(crate) struct LearnedUpkeep {
    pub(super) maps: LearnedMaps,
    /// The `learned_unstored` counter when it was last reported.
    pub(super) unstored_reported: u64,
    pub(super) reported_at: Option<Instant>,
}

/// The generation in force.
pub(super) struct Live {
    pub(super) number: u64,
    pub(super) policy: Policy,
    /// The content hash of the policy's files as stored (the files
    /// themselves stay on disk, see `crate::store::saved`).
    pub(super) sha256: String,
    pub(super) resolution: Resolution,
    /// Only the sizes: the image itself lives in the kernel.
    pub(super) stats: ImageStats,
    pub(super) slot: Slot,
    pub(super) applied_at: SystemTime,
    pub(super) applied_by: Option<Peer>,
}

pub(super) fn rule_names(policy: &Policy) -> Vec<String> {
    policy
        .enforced_rules()
        .into_iter()
        .map(|rule| rule.name)
        .collect()
}

/// The name of the rule a hit was counted for, from its generation's
/// rule table; the exec options by the names their events give them.
pub(super) fn hit_rule_name(rules: &RuleBook, key: &RuleHitKey) -> String {
    match key.rule {
        OPTIONS_RULE => "options.exec_block_anonymous".to_string(),
        TRUSTED_ONLY_RULE => "options.exec_trusted_only".to_string(),
        rule => rules.name(key.generation, rule),
    }
}

pub(super) fn paths(list: &[PathBuf]) -> Vec<String> {
    list.iter().map(|path| path.display().to_string()).collect()
}
