//! The one owner of the loaded programs and the maps they read. It runs on
//! its own thread, because compiling a large policy and filling its image
//! are long blocking work; everything else reaches it through [`Command`]s.

use std::{path::PathBuf, sync::Arc, time::SystemTime};

use tokio::sync::{mpsc, oneshot};

use crate::{
    compile::{self, Compiled, ImageStats},
    control::{ApplyReport, Response, StatusReport},
    events::{Event, EventBody, hub::EventHub, rules::RuleBook},
    maps::{Counters, GenerationSlot},
    policy::{self, Policy, Source, diff::PolicyDiff, diff::RuleSummary},
    programs::{Programs, ProgramsError},
    resolve,
};

/// What the owner takes over from the loader.
pub struct Kernel {
    pub programs: Programs,
    pub slot: GenerationSlot,
    pub counters: Counters,
}

/// Who asked for a change, from the control socket's peer credentials.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub uid: u32,
    pub pid: Option<u32>,
}

pub enum Command {
    Apply {
        sources: Vec<Source>,
        peer: Peer,
        reply: oneshot::Sender<Response>,
    },
    Status {
        reply: oneshot::Sender<Response>,
    },
}

pub struct Owner {
    programs: Programs,
    slot: GenerationSlot,
    counters: Counters,
    rules: Arc<RuleBook>,
    hub: Arc<EventHub>,
    cgroup: PathBuf,
    live: Live,
}

/// The generation in force.
struct Live {
    number: u64,
    policy: Policy,
    /// Only the sizes: the image itself lives in the kernel.
    stats: ImageStats,
    applied_at: SystemTime,
    applied_by: Option<Peer>,
}

impl Owner {
    /// Installs the first generation, then attaches: the programs never run
    /// without a policy. On error nothing stays attached.
    pub fn start(
        kernel: Kernel,
        policy: Policy,
        compiled: Compiled,
        cgroup: PathBuf,
        rules: Arc<RuleBook>,
        hub: Arc<EventHub>,
    ) -> Result<Self, ProgramsError> {
        let Kernel {
            mut programs,
            mut slot,
            counters,
        } = kernel;
        programs.check_exec_rules(&policy)?;
        let number = 1;
        rules.insert(number, rule_names(&policy));
        slot.install(&compiled.image, number)?;
        programs.attach(&cgroup)?;
        let live = Live {
            number,
            policy,
            stats: compiled.stats,
            applied_at: SystemTime::now(),
            applied_by: None,
        };
        Ok(Self {
            programs,
            slot,
            counters,
            rules,
            hub,
            cgroup,
            live,
        })
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

    /// Serves commands until every sender is gone, then drops the programs,
    /// which detaches them.
    pub fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        while let Some(command) = commands.blocking_recv() {
            match command {
                Command::Apply {
                    sources,
                    peer,
                    reply,
                } => {
                    let _ = reply.send(self.apply(&sources, peer));
                }
                Command::Status { reply } => {
                    let _ = reply.send(self.status());
                }
            }
        }
    }

    fn apply(&mut self, sources: &[Source], peer: Peer) -> Response {
        let policy = match policy::parse(sources) {
            Ok(policy) => policy,
            Err(errors) => return Response::Invalid { errors },
        };
        if let Err(error) = self.programs.check_exec_rules(&policy) {
            return Response::Error {
                message: error.to_string(),
            };
        }
        let resolution = resolve::resolve(&policy);
        let compiled = match compile::compile(&policy, &resolution.identities) {
            Ok(compiled) => compiled,
            Err(error) => {
                return Response::Error {
                    message: error.to_string(),
                };
            }
        };
        let number = self.live.number + 1;
        // Names first: the first events of the new generation may be read
        // before this function returns.
        self.rules.insert(number, rule_names(&policy));
        if let Err(error) = self.slot.install(&compiled.image, number) {
            return Response::Error {
                message: format!(
                    "the policy was not applied, generation {} stays in force: {error}",
                    self.live.number
                ),
            };
        }
        let report = ApplyReport {
            generation: number,
            diff: PolicyDiff::between(&self.live.policy, &policy),
            before: self.live.stats,
            after: compiled.stats,
        };
        self.live = Live {
            number,
            policy,
            stats: compiled.stats,
            applied_at: SystemTime::now(),
            applied_by: Some(peer),
        };
        self.hub.publish(&Event::now(EventBody::PolicyApplied {
            generation: number,
            rules: self.live.policy.rules.len(),
            uid: Some(peer.uid),
            pid: peer.pid,
        }));
        Response::Applied(report)
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
            generation: self.live.number,
            applied_at: humantime::format_rfc3339_seconds(self.live.applied_at).to_string(),
            applied_by: self.live.applied_by.map(|peer| peer.uid),
            rules: self.live.policy.rules.iter().map(RuleSummary::of).collect(),
            image: self.live.stats,
            counters,
        })
    }
}

fn rule_names(policy: &Policy) -> Vec<String> {
    policy.rules.iter().map(|rule| rule.name.clone()).collect()
}
