//! The one owner of the loaded programs and the maps they read. It runs on
//! its own thread, because compiling a large policy and filling its image
//! are long blocking work; everything else reaches it through [`Command`]s.

mod apply;
mod learned;
mod state;
mod watch;

use std::{sync::Arc, time::SystemTime};

use tokio::sync::mpsc;

use super::process::release_freed_memory;
use crate::{
    compile::Compiled,
    control::{ImageSlot, Response, StatusReport},
    events::{Event, EventBody, hub::EventHub, rules::RuleBook},
    exec::{
        content::ContentBans,
        hashwatch::{HashWatchError, StrictScope},
        resolve::Resolution,
    },
    kernel::{
        family::{Degradation, FamilyStatus, VerifiedProgram},
        learned::LearnedMaps,
        programs::{Needs, ProgramsError},
    },
    policy::{Policy, diff::RuleSummary},
};
pub(super) use state::{Command, Kernel, Lineage, Owner, Peer, Reach};
use state::{LearnedUpkeep, Live, hit_rule_name, paths, rule_names};
use watch::forward_matches;

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
    pub(super) fn start(
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
            hits,
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
        programs.attach_needed(Needs::of(&policy))?;
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
            hits,
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
            learned: None,
        };
        owner.watch_paths();
        match LearnedMaps::open(owner.programs.pins().path()) {
            Ok(maps) => {
                owner.learned = Some(LearnedUpkeep::new(maps));
                owner.sweep_learned();
                learned::sweep_periodically(owner.commands.clone());
            }
            Err(error) => log::error!("learned addresses will not expire: {error}"),
        }
        Ok(owner)
    }

    pub(super) fn generation(&self) -> u64 {
        self.live.number
    }

    pub(super) fn rule_count(&self) -> usize {
        self.live.policy.rules.len()
    }

    pub(super) fn program_names(&self) -> Vec<String> {
        self.programs.names()
    }

    pub(super) fn exec_enforcement(&self) -> String {
        self.programs.exec_enforcement().to_string()
    }

    pub(super) fn self_protection(&self) -> String {
        self.programs.self_protection().to_string()
    }

    pub(super) fn families(&self) -> Vec<FamilyStatus> {
        self.programs.families()
    }

    pub(super) fn verified(&self) -> Vec<VerifiedProgram> {
        self.programs.verified()
    }

    /// Each family this kernel refused, and what of the live policy it
    /// leaves unenforced.
    pub(super) fn degradations(&self) -> Vec<Degradation> {
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
    pub(super) fn run(mut self, mut commands: mpsc::Receiver<Command>) {
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
                Command::SweepLearned => self.sweep_learned(),
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

    fn status(&self) -> Response {
        let counters = match self.counters.totals() {
            Ok(counters) => counters,
            Err(error) => {
                return Response::Error {
                    message: error.to_string(),
                };
            }
        };
        let rule_hits = match self.hits.report(
            &rule_names(&self.live.policy),
            |key| hit_rule_name(&self.rules, key),
            counters.hits_uncounted,
        ) {
            Ok(rule_hits) => rule_hits,
            Err(error) => {
                return Response::Error {
                    message: error.to_string(),
                };
            }
        };
        Response::Status(StatusReport {
            cgroup: self.cgroup.display().to_string(),
            programs: self.programs.names(),
            exec_enforcement: self.programs.exec_enforcement().to_string(),
            domain_enforcement: self.programs.domain_enforcement().to_string(),
            self_protection: self.programs.self_protection().to_string(),
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
            rule_hits,
        })
    }
}
