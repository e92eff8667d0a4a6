//! The last applied policy, kept on disk, so that a restarted daemon or a
//! rebooted machine enforces it from the start, before anyone applies it
//! again.
//!
//! The policy is stored as the text of its files, the form every check
//! and diff starts from. A write goes to a temporary file that is synced
//! and then renamed over the old one, and the directory is synced, so a
//! crash at any point leaves either the old policy or the new one, whole.

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

/// The signer's public key and the signature, hex (see `crate::signing`).
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
        let path = self.path();
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|source| StoreError::Corrupt { path, source })
    }

    /// Replaces the stored policy, atomically and durably.
    pub fn save(&self, policy: &StoredPolicy) -> Result<(), StoreError> {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        fs::create_dir_all(&self.dir).map_err(io_error(&self.dir))?;
        let path = self.path();
        let temporary = self
            .dir
            .join(format!(".{POLICY_FILE}.{}", std::process::id()));
        let json = serde_json::to_vec(policy).expect("policies serialize");
        let written = File::create(&temporary)
            .and_then(|mut file| {
                file.write_all(&json)?;
                file.sync_all()
            })
            .and_then(|()| fs::rename(&temporary, &path))
            .and_then(|()| File::open(&self.dir)?.sync_all());
        if written.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        written.map_err(io_error(&path))
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
        store
            .save(&StoredPolicy::unsigned(vec![source(
                "a.toml",
                "version = 1\n",
            )]))
            .unwrap();
        let signed = StoredPolicy {
            sources: vec![source("b.toml", "version = 1\n"), source("c.toml", "")],
            signed: Some(Signed {
                key: "ab".into(),
                signature: "cd".into(),
            }),
        };
        store.save(&signed).unwrap();
        assert_eq!(store.load().unwrap().unwrap(), signed);
        let leftovers: Vec<_> = fs::read_dir(dir.join("state")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
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
