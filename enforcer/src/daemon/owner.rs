//! The one owner of the loaded programs and the maps they read. It runs on
//! its own thread, because compiling a large policy and filling its image
//! are long blocking work; everything else reaches it through [`Command`]s.

use std::{path::PathBuf, sync::Arc, time::SystemTime};

use tokio::sync::{mpsc, oneshot};

use super::process::release_freed_memory;
use crate::exec::content::ContentBans;
use crate::{
    compile::{self, CompileError, Compiled, ImageStats},
    control::{ApplyReport, ImageSlot, Response, StatusReport},
    events::{Event, EventBody, hub::EventHub, rules::RuleBook},
    exec::hashwatch::{HashWatchError, Match, StrictScope},
    exec::pathwatch::PathWatch,
    exec::resolve::{self, Resolution},
    kernel::family::{Degradation, FamilyStatus, VerifiedProgram},
    kernel::maps::{Counters, GenerationSlot, MapsError, Slot},
    kernel::programs::{Programs, ProgramsError},
    policy::{self, Policy, Sha256, diff::PolicyDiff, diff::RuleSummary},
    store::saved::{PolicyStore, StoredPolicy},
};

/// What the owner takes over from the loader.
pub struct Kernel {
    pub programs: Programs,
    pub slot: GenerationSlot,
    pub counters: Counters,
}

/// Where the owner enforces.
pub struct Reach {
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
pub struct Lineage {
    pub domain_seed: u64,
    pub first_generation: u64,
}

/// Who asked for a change, from the control socket's peer credentials.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub uid: u32,
    pub pid: Option<u32>,
}

pub enum Command {
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
}

pub struct Owner {
    programs: Programs,
    slot: GenerationSlot,
    counters: Counters,
    rules: Arc<RuleBook>,
    hub: Arc<EventHub>,
    cgroup: PathBuf,
    /// For the path watcher; weak, so that the owner's own handle never
    /// keeps the daemon from shutting down.
    commands: mpsc::WeakSender<Command>,
    path_watch: Option<PathWatch>,
    content: ContentBans,
    /// Where the hash watch scans for existing copies at start.
    hash_roots: Vec<PathBuf>,
    /// Seeds every generation's domain table (see `compile::compile`).
    domain_seed: u64,
    store: PolicyStore,
    live: Live,
}

/// The generation in force.
struct Live {
    number: u64,
    policy: Policy,
    /// The content hash of the policy's files as stored (the files
    /// themselves stay on disk, see `crate::store::saved`).
    sha256: String,
    resolution: Resolution,
    /// Only the sizes: the image itself lives in the kernel.
    stats: ImageStats,
    slot: Slot,
    applied_at: SystemTime,
    applied_by: Option<Peer>,
}

#[derive(Debug, thiserror::Error)]
enum InstallError {
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Maps(#[from] MapsError),
    #[error(transparent)]
    Programs(#[from] ProgramsError),
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Programs(#[from] ProgramsError),
    #[error(transparent)]
    HashWatch(#[from] HashWatchError),
}

impl Owner {
    /// Installs the first generation, then attaches: the programs never run
    /// without a policy. On error nothing stays attached.
    pub fn start(
        kernel: Kernel,
        (policy, resolution, compiled): (Policy, Resolution, Compiled),
        reach: Reach,
        lineage: Lineage,
        rules: Arc<RuleBook>,
        hub: Arc<EventHub>,
        commands: mpsc::WeakSender<Command>,
    ) -> Result<Self, StartError> {
        let Reach {
            cgroup,
            cgroup_path,
            hash_roots,
            store,
            sha256,
        } = reach;
        let Kernel {
            mut programs,
            mut slot,
            counters,
        } = kernel;
        programs.prepare(&policy);
        let mut content = ContentBans::new(StrictScope(cgroup_path));
        content
            .commit(content.prepare(&policy, &hash_roots, || forward_matches(commands.clone()))?);
        let Lineage {
            domain_seed,
            first_generation: number,
        } = lineage;
        rules.insert(number, rule_names(&policy), compiled.domain_slots.clone());
        let installed = slot.install(&compiled.image, number, |id| programs.guard_image(id))?;
        programs.image_live(installed.map_id)?;
        programs.attach(&cgroup)?;
        programs.set_mapping_hook(policy.options.exec_block_loader)?;
        programs.set_packet_programs(policy.lists_domains())?;
        let live = Live {
            number,
            policy,
            sha256,
            resolution,
            stats: compiled.stats,
            slot: installed.slot,
            applied_at: SystemTime::now(),
            applied_by: None,
        };
        let mut owner = Self {
            programs,
            slot,
            counters,
            rules,
            hub,
            cgroup,
            commands,
            path_watch: None,
            content,
            hash_roots,
            domain_seed,
            store,
            live,
        };
        owner.watch_paths();
        Ok(owner)
    }

    pub fn generation(&self) -> u64 {
        self.live.number
    }

    pub fn rule_count(&self) -> usize {
        self.live.policy.rules.len()
    }

    pub fn program_names(&self) -> Vec<String> {
        self.programs.names()
    }

    pub fn exec_enforcement(&self) -> String {
        self.programs.exec_support().to_string()
    }

    pub fn self_protection(&self) -> String {
        self.programs.self_protection()
    }

    pub fn families(&self) -> Vec<FamilyStatus> {
        self.programs.families()
    }

    pub fn verified(&self) -> Vec<VerifiedProgram> {
        self.programs.verified()
    }

    /// Each family this kernel refused, and what of the live policy it
    /// leaves unenforced.
    pub fn degradations(&self) -> Vec<Degradation> {
        self.programs
            .unavailable()
            .into_iter()
            .map(|(family, refusal)| Degradation {
                generation: self.live.number,
                family,
                reason: refusal.to_string(),
                not_enforced: family.coverage(&self.live.policy),
            })
            .collect()
    }

    /// Serves commands until every sender is gone, then drops the programs,
    /// which detaches them.
    pub fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        release_freed_memory();
        while let Some(command) = commands.blocking_recv() {
            // Apply and rollback release what they freed before they reply,
            // and the server what their report held.
            let internal = matches!(command, Command::ResolvePaths | Command::ContentFound(_));
            match command {
                Command::Apply {
                    policy,
                    peer,
                    reply,
                } => {
                    let response = self.apply(policy, peer);
                    release_freed_memory();
                    let _ = reply.send(response);
                }
                Command::Status { reply } => {
                    let _ = reply.send(self.status());
                }
                Command::Rollback { peer, reply } => {
                    let response = match self.store.load_previous() {
                        Ok(Some(previous)) => self.apply(previous, peer),
                        Ok(None) => Response::Error {
                            message: "no earlier policy to roll back to: none is stored".into(),
                        },
                        Err(error) => Response::Error {
                            message: format!("cannot roll back: {error}"),
                        },
                    };
                    release_freed_memory();
                    let _ = reply.send(response);
                }
                Command::Unload { peer, reply } => {
                    let _ = reply.send(self.unload(peer));
                }
                Command::ResolvePaths => self.resolve_paths_again(),
                Command::ContentFound(found) => self.content_found(found),
            }
            if internal {
                release_freed_memory();
            }
        }
        if let Err(error) = self.programs.hand_over() {
            log::error!("a daemon upgraded since this one started cannot take over: {error}");
        }
    }

    /// Removes this daemon's pins, which detaches its programs: the end of
    /// enforcement.
    fn unload(&mut self, peer: Peer) -> Response {
        match crate::kernel::pins::remove_instance(self.programs.pins().path()) {
            Ok(pins_removed) => {
                self.hub.publish(&Event::now(EventBody::Unloaded {
                    generation: self.live.number,
                    pins_removed,
                    uid: peer.uid,
                    pid: peer.pid,
                }));
                Response::Unloaded { pins_removed }
            }
            Err(error) => Response::Error {
                message: format!("enforcement stays in force: {error}"),
            },
        }
    }

    fn apply(&mut self, stored: StoredPolicy, peer: Peer) -> Response {
        let policy = match policy::parse(&stored.sources) {
            Ok(policy) => policy,
            Err(errors) => return Response::Invalid { errors },
        };
        // What this kernel refuses is reported, not a reason to refuse the
        // policy: everything else in it is enforced.
        self.programs.prepare(&policy);
        let resolution = resolve::resolve(&policy, Some(&self.live.resolution));
        let commands = self.commands.clone();
        let prepared = match self
            .content
            .prepare(&policy, &self.hash_roots, || forward_matches(commands))
        {
            Ok(prepared) => prepared,
            Err(error) => {
                return Response::Error {
                    message: error.to_string(),
                };
            }
        };
        let before = self.live.stats;
        let diff = PolicyDiff::between(&self.live.policy, &policy);
        let sha256 = crate::store::saved::digest(&stored.sources);
        // Stored first: what is in force must be what a reboot finds.
        let replacement = match self.store.replace(&stored) {
            Ok(replacement) => replacement,
            Err(error) => {
                return Response::Error {
                    message: format!(
                        "the policy was not applied, generation {} stays in force: {error}",
                        self.live.number
                    ),
                };
            }
        };
        drop(stored);
        match self.install(policy, resolution, Some(peer)) {
            Ok(()) => {
                self.content.commit(prepared);
                self.live.sha256 = sha256;
                if let Err(error) = replacement.commit() {
                    log::error!(
                        "the policy before generation {} is lost for rollback: {error}",
                        self.live.number
                    );
                }
                self.hub.publish(&Event::now(EventBody::PolicyApplied {
                    generation: self.live.number,
                    rules: self.live.policy.rules.len(),
                    sha256: self.live.sha256.clone(),
                    uid: Some(peer.uid),
                    pid: peer.pid,
                }));
                let not_enforced: Vec<Degradation> = self
                    .degradations()
                    .into_iter()
                    .filter(|degradation| !degradation.not_enforced.is_empty())
                    .collect();
                for degradation in &not_enforced {
                    self.hub
                        .publish(&Event::now(EventBody::Degraded(degradation.clone())));
                }
                Response::Applied(ApplyReport {
                    not_enforced,
                    generation: self.live.number,
                    diff,
                    before,
                    after: self.live.stats,
                    missing_paths: paths(&self.live.resolution.missing),
                })
            }
            Err(error) => {
                if let Err(restore) = replacement.revert() {
                    log::error!("the stored policy is now one that is not in force: {restore}");
                }
                Response::Error {
                    message: format!(
                        "the policy was not applied, generation {} stays in force: {error}",
                        self.live.number
                    ),
                }
            }
        }
    }

    /// The same policy on what its paths name now, if that changed.
    fn resolve_paths_again(&mut self) {
        let resolution = resolve::resolve(&self.live.policy, Some(&self.live.resolution));
        if resolution.identities == self.live.resolution.identities {
            self.live.resolution = resolution;
            let paths = exec_paths(&self.live.policy);
            if !self
                .path_watch
                .as_ref()
                .is_some_and(|watch| watch.covers(&paths))
            {
                self.watch_paths();
                // Whatever appeared before the new watch began is only seen
                // by looking again.
                if let Some(commands) = self.commands.upgrade() {
                    let _ = commands.try_send(Command::ResolvePaths);
                }
            }
            return;
        }
        let policy = self.live.policy.clone();
        let applied_by = self.live.applied_by;
        match self.install(policy, resolution, applied_by) {
            Ok(()) => self.hub.publish(&Event::now(EventBody::ExecPathsResolved {
                generation: self.live.number,
                files: self.live.stats.exec_files,
                directories: self.live.stats.exec_directories,
                missing: paths(&self.live.resolution.missing),
            })),
            Err(error) => log::error!(
                "exec paths changed, but generation {} stays in force: {error}",
                self.live.number
            ),
        }
    }

    fn content_found(&mut self, found: Match) {
        let (dev, ino, sha256, path) = (found.dev, found.ino, found.sha256, found.path.clone());
        if !self.content.add(found) {
            return;
        }
        let (policy, resolution, applied_by) = (
            self.live.policy.clone(),
            self.live.resolution.clone(),
            self.live.applied_by,
        );
        match self.install(policy, resolution, applied_by) {
            Ok(()) => self.hub.publish(&Event::now(EventBody::ExecContentFound {
                generation: self.live.number,
                path: path.display().to_string(),
                sha256: Sha256(sha256).to_string(),
                dev: resolve::dev_label(dev),
                ino,
            })),
            Err(error) => log::error!(
                "found banned content at {}, but generation {} stays in force: {error}",
                path.display(),
                self.live.number
            ),
        }
    }

    /// Compiles and installs a new generation; on error the live one stays.
    fn install(
        &mut self,
        policy: Policy,
        resolution: Resolution,
        applied_by: Option<Peer>,
    ) -> Result<(), InstallError> {
        let mut identities = resolution.identities.clone();
        identities.extend(self.content.identities(&policy));
        let compiled: Compiled = compile::compile(&policy, &identities, self.domain_seed)?;
        let number = self.live.number + 1;
        // Names first: the first events of the new generation may be read
        // before this function returns.
        self.rules
            .insert(number, rule_names(&policy), compiled.domain_slots);
        self.rules.set_digests(self.content.labels());
        // The mapping hook goes on before a generation that wants it, and
        // off only after the last one that did.
        // So do the packet programs for domains.
        let loader = policy.options.exec_block_loader;
        let domains = policy.lists_domains();
        if loader {
            self.programs.set_mapping_hook(true)?;
        }
        if domains {
            self.programs.set_packet_programs(true)?;
        }
        let installed = self
            .slot
            .install(&compiled.image, number, |id| self.programs.guard_image(id))?;
        self.programs.image_live(installed.map_id)?;
        if !loader {
            self.programs.set_mapping_hook(false)?;
        }
        if !domains {
            self.programs.set_packet_programs(false)?;
        }
        // The files stay the live ones' until `apply` says otherwise: a
        // reinstall after a path or content change is the same policy.
        self.live = Live {
            number,
            policy,
            sha256: std::mem::take(&mut self.live.sha256),
            resolution,
            stats: compiled.stats,
            slot: installed.slot,
            applied_at: SystemTime::now(),
            applied_by,
        };
        self.watch_paths();
        Ok(())
    }

    /// Watches what the live policy's exec paths resolve through; a change
    /// there comes back as [`Command::ResolvePaths`].
    fn watch_paths(&mut self) {
        self.path_watch = None;
        let paths = exec_paths(&self.live.policy);
        if paths.is_empty() {
            return;
        }
        let commands = self.commands.clone();
        // Never blocks: the owner may be joining this very watcher while
        // the queue is full. A refusal leaves the change pending.
        let notify = move || match commands.upgrade() {
            Some(commands) => commands.try_send(Command::ResolvePaths).is_ok(),
            None => true,
        };
        match PathWatch::start(&paths, notify) {
            Ok(watch) => self.path_watch = Some(watch),
            Err(error) => {
                log::error!("exec paths are not followed after this apply: {error}")
            }
        }
    }

    fn status(&self) -> Response {
        let counters = match self.counters.totals() {
            Ok(counters) => counters,
            Err(error) => {
                return Response::Error {
                    message: error.to_string(),
                };
            }
        };
        Response::Status(StatusReport {
            cgroup: self.cgroup.display().to_string(),
            programs: self.programs.names(),
            exec_enforcement: self.programs.exec_support().to_string(),
            domain_enforcement: self.programs.domain_support(),
            self_protection: self.programs.self_protection(),
            families: self.programs.families(),
            programs_verified: self.programs.verified(),
            generation: self.live.number,
            policy_sha256: self.live.sha256.clone(),
            applied_at: humantime::format_rfc3339_seconds(self.live.applied_at).to_string(),
            applied_by: self.live.applied_by.map(|peer| peer.uid),
            rules: self.live.policy.rules.iter().map(RuleSummary::of).collect(),
            image: self.live.stats,
            image_slot: Some(ImageSlot {
                slot: self.live.slot,
                sized_capacity_words: self.slot.capacity(),
            }),
            missing_paths: paths(&self.live.resolution.missing),
            counters,
        })
    }
}

/// A sender for the hash watch that hands its matches to the owner. The
/// forwarding thread ends with the watch (its sender drops) or with the
/// daemon (the weak command sender no longer upgrades).
fn forward_matches(commands: mpsc::WeakSender<Command>) -> std::sync::mpsc::Sender<Match> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let forward = move || {
        for found in receiver {
            let Some(commands) = commands.upgrade() else {
                return;
            };
            if commands
                .blocking_send(Command::ContentFound(found))
                .is_err()
            {
                return;
            }
        }
    };
    if let Err(error) = std::thread::Builder::new()
        .name("enforcer-hashfwd".into())
        .spawn(forward)
    {
        log::error!("matches of banned content cannot reach the owner: {error}");
    }
    sender
}

fn exec_paths(policy: &Policy) -> Vec<PathBuf> {
    policy
        .rules
        .iter()
        .flat_map(|rule| {
            rule.exec_paths
                .iter()
                .map(|exec_path| exec_path.path.clone())
        })
        .collect()
}

fn rule_names(policy: &Policy) -> Vec<String> {
    policy
        .enforced_rules()
        .into_iter()
        .map(|rule| rule.name)
        .collect()
}

fn paths(list: &[PathBuf]) -> Vec<String> {
    list.iter().map(|path| path.display().to_string()).collect()
}
