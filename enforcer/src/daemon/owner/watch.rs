//! Keeping the generation current between applies: exec paths that
//! change on disk, and banned content the hash watch finds.

use std::path::PathBuf;

use tokio::sync::mpsc;

use super::state::{Command, Owner, paths};
use crate::{
    events::{Event, EventBody},
    exec::{hashwatch::Match, pathwatch::PathWatch, resolve},
    policy::{Policy, Sha256},
};

impl Owner {
    /// The same policy on what its paths name now, if that changed.
    pub(super) fn resolve_paths_again(&mut self) {
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

    pub(super) fn content_found(&mut self, found: Match) {
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

    /// Watches what the live policy's exec paths resolve through; a change
    /// there comes back as [`Command::ResolvePaths`].
    pub(super) fn watch_paths(&mut self) {
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
}

/// A sender for the hash watch that hands its matches to the owner. The
/// forwarding thread ends with the watch (its sender drops) or with the
/// daemon (the weak command sender no longer upgrades).
pub(super) fn forward_matches(
    commands: mpsc::WeakSender<Command>,
) -> std::sync::mpsc::Sender<Match> {
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
