//! Applying a policy: parse, resolve, compile, install as the next
//! generation, and report what changed.

use super::{
    state::{Live, Owner, Peer, hit_rule_name, paths, rule_names},
    watch::forward_matches,
};
use std::time::SystemTime;

use crate::{
    compile::{self, CompileError, Compiled},
    control::{ApplyReport, Response},
    events::{Event, EventBody},
    exec::resolve::{self, Resolution},
    kernel::{
        family::Degradation,
        maps::MapsError,
        programs::{Needs, ProgramsError},
    },
    policy::{self, Policy, diff::PolicyDiff},
    store::saved::StoredPolicy,
};

#[derive(Debug, thiserror::Error)]
pub(super) enum InstallError {
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Maps(#[from] MapsError),
    #[error(transparent)]
    Programs(#[from] ProgramsError),
}

impl Owner {
    pub(super) fn apply(&mut self, stored: StoredPolicy, peer: Peer) -> Response {
        let policy = match policy::parse(&stored.sources) {
            Ok(policy) => policy,
            Err(errors) => return Response::Invalid { errors },
        };
        let sha256 = crate::store::saved::digest(&stored.sources);
        // Configuration management applies on every run, and must be able
        // to tell that nothing changed: the same files and signature as
        // the policy in force switch nothing.
        if sha256 == self.live.sha256
            && matches!(self.store.load(), Ok(Some(current)) if current == stored)
        {
            return Response::Applied(ApplyReport {
                changed: false,
                generation: self.live.number,
                diff: PolicyDiff {
                    unchanged: policy.rules.len(),
                    ..PolicyDiff::default()
                },
                before: self.live.stats,
                after: self.live.stats,
                missing_paths: paths(&self.live.resolution.missing),
                not_enforced: self.not_enforced(),
            });
        }
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
                let not_enforced = self.not_enforced();
                for degradation in &not_enforced {
                    self.hub
                        .publish(&Event::now(EventBody::Degraded(degradation.clone())));
                }
                Response::Applied(ApplyReport {
                    changed: true,
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

    /// The families this kernel refused that the live policy needs.
    fn not_enforced(&self) -> Vec<Degradation> {
        self.degradations()
            .into_iter()
            .filter(|degradation| !degradation.not_enforced.is_empty())
            .collect()
    }

    /// Compiles and installs a new generation; on error the live one stays.
    pub(super) fn install(
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
        // The on-demand programs go on before a generation that wants
        // them, and off only after the last one that did.
        let needs = Needs::of(&policy);
        self.programs.attach_needed(needs)?;
        let installed = self
            .slot
            .install(&compiled.image, number, |id| self.programs.guard_image(id))?;
        // No program runs on an earlier generation now.
        if let Err(error) = self
            .hits
            .fold_replaced(number, |key| hit_rule_name(&self.rules, key))
        {
            log::error!("hits of generations before {number} stay in the kernel's map: {error}");
        }
        self.programs.image_live(installed.map_id)?;
        self.programs.detach_unneeded(needs)?;
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
}
