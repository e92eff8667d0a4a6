//! The last applied policy, kept on disk, so that a restarted daemon or a
//! rebooted machine enforces it from the start, before anyone applies it
//! again.
//!
//! The policy is stored as the text of its files, the form every check
//! and diff starts from. A write goes to a temporary file that is synced
//! and then renamed over the old one, and the directory is synced, so a
//! crash at any point leaves either the old policy or the new one, whole.
//!
//! The policy in force before the last change is kept beside it, for
//! `policy rollback`. Neither is held in the daemon's memory: a policy of a
//! million CIDRs is tens of megabytes of text.

use std::{
    fs::{self, File},
    io::{self, Write as _},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::policy::{Sha256 as Sha256Digest, Source};

pub const DEFAULT_STATE_DIR: &str = "/var/lib/enforcer";
const POLICY_FILE: &str = "policy.json";
/// The policy before the last change.
const PREVIOUS_FILE: &str = "previous.json";
/// The policy a change replaced, until the change is committed or reverted.
const OUTGOING_FILE: &str = "outgoing.json";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a stored policy ({source}); apply a policy again with --policy")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// A policy's files, and the signature they came with, if any: what is
/// stored, and what a rollback goes back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPolicy {
    pub sources: Vec<Source>,
    /// Policies stored before signatures existed read as unsigned.
    #[serde(default)]
    pub signed: Option<Signed>,
}

/// The signer's public key and the signature, hex (see `crate::store::signing`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    pub key: String,
    pub signature: String,
}

impl StoredPolicy {
    pub fn unsigned(sources: Vec<Source>) -> Self {
        Self {
            sources,
            signed: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PolicyStore {
    dir: PathBuf,
}

impl PolicyStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(POLICY_FILE)
    }

    /// The stored policy, or `None` when none was ever stored.
    pub fn load(&self) -> Result<Option<StoredPolicy>, StoreError> {
        self.load_file(self.path())
    }

    /// The policy in force before the last change, or `None`.
    pub fn load_previous(&self) -> Result<Option<StoredPolicy>, StoreError> {
        self.load_file(self.dir.join(PREVIOUS_FILE))
    }

    fn load_file(&self, path: PathBuf) -> Result<Option<StoredPolicy>, StoreError> {
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|source| StoreError::Corrupt { path, source })
    }

    /// Stores `policy` in place of the stored one, which is set aside
    /// until the change is committed (it becomes the previous policy) or
    /// reverted (it is stored again). Storing the policy already stored
    /// changes nothing.
    pub fn replace(&self, policy: &StoredPolicy) -> Result<Replacement, StoreError> {
        fs::create_dir_all(&self.dir).map_err(io_error(&self.dir))?;
        let json = serde_json::to_vec(policy).expect("policies serialize");
        let path = self.path();
        let outgoing = self.dir.join(OUTGOING_FILE);
        remove_if_present(&outgoing)?;
        let set_aside = match fs::read(&path) {
            Ok(stored) if stored == json => return Ok(Replacement::unchanged(self.clone())),
            Ok(_) => fs::hard_link(&path, &outgoing).map(|()| true),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error),
        }
        .map_err(io_error(&path))?;
        if let Err(error) = self.write(&json) {
            if set_aside {
                let _ = fs::remove_file(&outgoing);
            }
            return Err(error);
        }
        Ok(Replacement {
            store: self.clone(),
            set_aside,
            changed: true,
        })
    }

    /// Replaces the stored policy, atomically and durably.
    fn write(&self, json: &[u8]) -> Result<(), StoreError> {
        let path = self.path();
        let temporary = self
            .dir
            .join(format!(".{POLICY_FILE}.{}", std::process::id()));
        let written = File::create(&temporary)
            .and_then(|mut file| {
                file.write_all(json)?;
                file.sync_all()
            })
            .and_then(|()| fs::rename(&temporary, &path))
            .and_then(|()| File::open(&self.dir)?.sync_all());
        if written.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        written.map_err(io_error(&path))
    }

    fn sync_dir(&self) -> Result<(), StoreError> {
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error(&self.dir))
    }
}

/// A stored policy that replaced another, not yet committed or reverted.
/// Dropped without either, the set-aside policy stays until the next
/// replacement clears it away, and the previous policy is the one before.
#[must_use = "a replacement is committed or reverted"]
pub struct Replacement {
    store: PolicyStore,
    /// Whether a policy was stored before, and is now set aside.
    set_aside: bool,
    changed: bool,
}

impl Replacement {
    fn unchanged(store: PolicyStore) -> Self {
        Self {
            store,
            set_aside: false,
            changed: false,
        }
    }

    /// The new policy is in force: the one it replaced becomes the
    /// previous policy.
    pub fn commit(self) -> Result<(), StoreError> {
        if !self.set_aside {
            return Ok(());
        }
        let previous = self.store.dir.join(PREVIOUS_FILE);
        fs::rename(self.store.dir.join(OUTGOING_FILE), &previous).map_err(io_error(&previous))?;
        self.store.sync_dir()
    }

    /// The new policy did not go into force: the one it replaced is the
    /// stored policy again.
    pub fn revert(self) -> Result<(), StoreError> {
        if !self.changed {
            return Ok(());
        }
        let path = self.store.path();
        if self.set_aside {
            fs::rename(self.store.dir.join(OUTGOING_FILE), &path)
        } else {
            fs::remove_file(&path)
        }
        .map_err(io_error(&path))?;
        self.store.sync_dir()
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { path, source }
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(io_error(path)(error)),
        _ => Ok(()),
    }
}

/// A content hash of a policy's files: names and texts, each
/// length-prefixed so no two different policies hash alike by accident of
/// concatenation.
pub fn digest(sources: &[Source]) -> String {
    let mut hasher = Sha256::new();
    for source in sources {
        for part in [&source.name, &source.text] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
    }
    Sha256Digest(hasher.finalize().into()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::ScratchDir;

    fn source(name: &str, text: &str) -> Source {
        Source {
            name: name.into(),
            text: text.into(),
        }
    }

    #[test]
    fn a_saved_policy_loads_back_and_replaces_the_old_one() {
        let dir = ScratchDir::new("store");
        let store = PolicyStore::new(dir.join("state"));
        assert!(store.load().unwrap().is_none());
        let first = StoredPolicy::unsigned(vec![source("a.toml", "version = 1\n")]);
        store.replace(&first).unwrap().commit().unwrap();
        let signed = StoredPolicy {
            sources: vec![source("b.toml", "version = 1\n"), source("c.toml", "")],
            signed: Some(Signed {
                key: "ab".into(),
                signature: "cd".into(),
            }),
        };
        store.replace(&signed).unwrap().commit().unwrap();
        assert_eq!(store.load().unwrap().unwrap(), signed);
        assert_eq!(store.load_previous().unwrap().unwrap(), first);
        let mut left: Vec<_> = fs::read_dir(dir.join("state"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [POLICY_FILE, PREVIOUS_FILE],
            "no temporary file is left"
        );
    }

    #[test]
    fn a_reverted_replacement_leaves_the_store_as_it_was() {
        let dir = ScratchDir::new("store-revert");
        let store = PolicyStore::new(&*dir);
        let [one, two, three] =
            ["1", "2", "3"].map(|text| StoredPolicy::unsigned(vec![source("p.toml", text)]));

        store.replace(&one).unwrap().revert().unwrap();
        assert!(store.load().unwrap().is_none());

        store.replace(&one).unwrap().commit().unwrap();
        store.replace(&two).unwrap().commit().unwrap();
        let replacement = store.replace(&three).unwrap();
        assert_eq!(store.load().unwrap().unwrap(), three);
        replacement.revert().unwrap();
        assert_eq!(store.load().unwrap().unwrap(), two);
        assert_eq!(store.load_previous().unwrap().unwrap(), one);
    }

    #[test]
    fn storing_the_stored_policy_again_keeps_the_previous_one() {
        let dir = ScratchDir::new("store-same");
        let store = PolicyStore::new(&*dir);
        let [one, two] =
            ["1", "2"].map(|text| StoredPolicy::unsigned(vec![source("p.toml", text)]));
        store.replace(&one).unwrap().commit().unwrap();
        store.replace(&two).unwrap().commit().unwrap();
        store.replace(&two).unwrap().commit().unwrap();
        assert_eq!(store.load_previous().unwrap().unwrap(), one);
        store.replace(&two).unwrap().revert().unwrap();
        assert_eq!(store.load().unwrap().unwrap(), two);
    }

    #[test]
    fn a_damaged_store_says_so() {
        let dir = ScratchDir::new("store-damaged");
        let store = PolicyStore::new(&*dir);
        fs::write(store.path(), b"{not json").unwrap();
        let error = store.load().unwrap_err().to_string();
        assert!(error.contains("is not a stored policy"), "{error}");
    }

    #[test]
    fn the_digest_tells_file_boundaries_apart() {
        let one = digest(&[source("a", "bc")]);
        assert_eq!(one.len(), 64);
        assert_ne!(one, digest(&[source("ab", "c")]));
        assert_eq!(one, digest(&[source("a", "bc")]));
    }
}
