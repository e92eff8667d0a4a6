//! Content bans (`exec_sha256`) as the owner keeps them: the hash watch
//! for the live policy's digests, and the files it has found so far, which
//! become file identities in every generation while they exist.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    os::unix::fs::MetadataExt as _,
    path::PathBuf,
    sync::mpsc,
};

use crate::{
    exec::hashwatch::{HashWatch, HashWatchError, Match, StrictScope},
    exec::resolve::{ExecIdentity, IdentityKind, kernel_dev},
    host::filehandle::{FileHandle, MountFds},
    policy::{Policy, Sha256},
};

pub(crate) struct ContentBans {
    /// The cgroup whose execs strict mode holds for a verdict.
    scope: StrictScope,
    watch: Option<HashWatch>,
    digests: BTreeSet<[u8; 32]>,
    /// The watch also answers exec permission events (`exec_hash_strict`).
    strict: bool,
    /// Files holding banned content, by (dev, ino).
    found: BTreeMap<(u32, u64), FoundFile>,
}

struct FoundFile {
    sha256: [u8; 32],
    path: PathBuf,
    /// `None` when the file was gone or replaced before a handle was
    /// taken; such a file is dropped at the next check.
    handle: Option<FileHandle>,
}

/// A watch for a new policy's digests, not yet in use. `watch` is `None`
/// when the digests are unchanged and the current watch stays.
pub(crate) struct Prepared {
    digests: BTreeSet<[u8; 32]>,
    strict: bool,
    watch: Option<Option<HashWatch>>,
}

impl ContentBans {
    pub(crate) fn new(scope: StrictScope) -> Self {
        Self {
            scope,
            watch: None,
            digests: BTreeSet::new(),
            strict: false,
            found: BTreeMap::new(),
        }
    }
}

pub(crate) fn digests_of(policy: &Policy) -> BTreeSet<[u8; 32]> {
    policy
        .rules
        .iter()
        .flat_map(|rule| rule.exec_sha256.iter().map(|digest| digest.0))
        .collect()
}

impl ContentBans {
    /// Starts watching for `policy`'s digests, unless they are the ones
    /// watched already. Nothing changes until [`ContentBans::commit`], so a
    /// policy that fails later leaves the current watch in place.
    pub(crate) fn prepare(
        &self,
        policy: &Policy,
        roots: &[PathBuf],
        matches: impl FnOnce() -> mpsc::Sender<Match>,
    ) -> Result<Prepared, HashWatchError> {
        let digests = digests_of(policy);
        let strict = policy.options.exec_hash_strict;
        if digests == self.digests && strict == self.strict {
            return Ok(Prepared {
                digests,
                strict,
                watch: None,
            });
        }
        let watch = if digests.is_empty() {
            None
        } else {
            Some(HashWatch::start(
                digests.clone(),
                roots.to_vec(),
                matches(),
                strict.then(|| self.scope.clone()),
            )?)
        };
        Ok(Prepared {
            digests,
            strict,
            watch: Some(watch),
        })
    }

    /// Switches to a prepared watch and forgets files whose content is no
    /// longer banned.
    pub(crate) fn commit(&mut self, prepared: Prepared) {
        if let Some(watch) = prepared.watch {
            self.watch = watch;
        }
        self.found
            .retain(|_, file| prepared.digests.contains(&file.sha256));
        self.digests = prepared.digests;
        self.strict = prepared.strict;
    }

    /// Records a match; true when it is news.
    pub(crate) fn add(&mut self, found: Match) -> bool {
        if !self.digests.contains(&found.sha256) {
            return false;
        }
        let key = (found.dev, found.ino);
        if self
            .found
            .get(&key)
            .is_some_and(|file| file.sha256 == found.sha256)
        {
            return false;
        }
        // The handle must name the file that was hashed, not whatever is
        // at its path by now.
        let handle = fs::metadata(&found.path)
            .ok()
            .filter(|metadata| (kernel_dev(metadata.dev()), metadata.ino()) == key)
            .and_then(|_| FileHandle::of(&found.path));
        self.found.insert(
            key,
            FoundFile {
                sha256: found.sha256,
                path: found.path,
                handle,
            },
        );
        true
    }

    /// The found files that still exist, as identities of the rules that
    /// ban their content.
    pub(crate) fn identities(&mut self, policy: &Policy) -> Vec<ExecIdentity> {
        let mut mounts = MountFds::default();
        self.found.retain(|_, file| {
            file.handle
                .as_ref()
                .is_some_and(|handle| mounts.still_exists(handle))
        });
        let mut identities = Vec::new();
        for (&(dev, ino), file) in &self.found {
            for (index, rule) in policy.rules.iter().enumerate() {
                if rule
                    .exec_sha256
                    .iter()
                    .any(|digest| digest.0 == file.sha256)
                {
                    identities.push(ExecIdentity {
                        dev,
                        ino,
                        kind: IdentityKind::File,
                        rule: index as u32,
                        path: file.path.clone(),
                    });
                }
            }
        }
        identities
    }

    /// Hex digests by (dev, ino), for events.
    pub(crate) fn labels(&self) -> BTreeMap<(u32, u64), String> {
        self.found
            .iter()
            .map(|(&key, file)| (key, Sha256(file.sha256).to_string()))
            .collect()
    }
}
