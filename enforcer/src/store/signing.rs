//! Signed policy bundles, for fleets: a policy's files with an ed25519
//! signature over their content hash. A daemon given trusted keys accepts
//! policy over its control socket only as a bundle that one of those keys
//! signed.
//!
//! The signed message is a fixed context string followed by the policy's
//! content hash (`crate::store::saved::digest`), so a signature over anything
//! else never passes for a policy signature.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{
    policy::Source,
    store::saved::{Signed, StoredPolicy, digest},
};

const CONTEXT: &[u8] = b"enforcer policy bundle v1\n";

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a key: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("the bundle's signature is not 64 hex-encoded bytes")]
    BadSignature,
    #[error("the bundle is signed by key {0}, which this daemon does not trust")]
    UntrustedKey(String),
    #[error("the bundle's signature does not match its files: it was changed after signing")]
    Tampered,
    #[error("the policy carries no signature")]
    Unsigned,
    #[error("cannot draw a random key: {0}")]
    Random(#[source] std::io::Error),
}

/// A policy's files and the signature that vouches for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    pub sources: Vec<Source>,
    /// The signer's public key, hex.
    pub key: String,
    /// The ed25519 signature, hex.
    pub signature: String,
}

fn message(sources: &[Source]) -> Vec<u8> {
    let mut message = CONTEXT.to_vec();
    message.extend_from_slice(digest(sources).as_bytes());
    message
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.trim();
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; N];
    for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(bytes)
}

/// A new key pair, as hex: (secret, public).
pub fn generate() -> Result<(String, String), SigningError> {
    let seed = crate::host::random::bytes::<32>().map_err(SigningError::Random)?;
    let key = SigningKey::from_bytes(&seed);
    Ok((hex(&seed), hex(key.verifying_key().as_bytes())))
}

fn read_key<const N: usize>(path: &Path) -> Result<[u8; N], SigningError> {
    let text = std::fs::read_to_string(path).map_err(|source| SigningError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    unhex(&text).ok_or_else(|| SigningError::BadKey {
        path: path.to_path_buf(),
        reason: format!("expected {N} hex-encoded bytes"),
    })
}

/// Signs `sources` with the secret key in `key_file`.
pub fn sign(key_file: &Path, sources: Vec<Source>) -> Result<Bundle, SigningError> {
    let key = SigningKey::from_bytes(&read_key::<32>(key_file)?);
    let signature = key.sign(&message(&sources));
    Ok(Bundle {
        key: hex(key.verifying_key().as_bytes()),
        signature: hex(&signature.to_bytes()),
        sources,
    })
}

impl From<Bundle> for StoredPolicy {
    fn from(bundle: Bundle) -> Self {
        StoredPolicy {
            sources: bundle.sources,
            signed: Some(Signed {
                key: bundle.key,
                signature: bundle.signature,
            }),
        }
    }
}

/// The public keys a daemon accepts bundles from.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys(Vec<VerifyingKey>);

impl TrustedKeys {
    pub fn load(files: &[PathBuf]) -> Result<Self, SigningError> {
        files
            .iter()
            .map(|file| {
                VerifyingKey::from_bytes(&read_key::<32>(file)?).map_err(|error| {
                    SigningError::BadKey {
                        path: file.clone(),
                        reason: error.to_string(),
                    }
                })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether only signed bundles are accepted.
    pub fn required(&self) -> bool {
        !self.0.is_empty()
    }

    /// Checks a stored policy like a bundle: it must have come signed.
    pub fn verify_stored(&self, policy: &StoredPolicy) -> Result<(), SigningError> {
        let signed = policy.signed.as_ref().ok_or(SigningError::Unsigned)?;
        self.verify(&Bundle {
            sources: policy.sources.clone(),
            key: signed.key.clone(),
            signature: signed.signature.clone(),
        })
    }

    /// Checks that a trusted key signed `bundle`'s files as they are.
    pub fn verify(&self, bundle: &Bundle) -> Result<(), SigningError> {
        let key = self
            .0
            .iter()
            .find(|key| hex(key.as_bytes()) == bundle.key.trim().to_ascii_lowercase())
            .ok_or_else(|| SigningError::UntrustedKey(bundle.key.clone()))?;
        let signature = Signature::from_bytes(
            &unhex::<64>(&bundle.signature).ok_or(SigningError::BadSignature)?,
        );
        key.verify(&message(&bundle.sources), &signature)
            .map_err(|_| SigningError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::ScratchDir;

    fn sources(text: &str) -> Vec<Source> {
        vec![Source {
            name: "p.toml".into(),
            text: text.into(),
        }]
    }

    fn keys(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let (secret, public) = generate().unwrap();
        let (secret_file, public_file) = (
            dir.join(format!("{name}.key")),
            dir.join(format!("{name}.pub")),
        );
        std::fs::write(&secret_file, secret).unwrap();
        std::fs::write(&public_file, public).unwrap();
        (secret_file, public_file)
    }

    #[test]
    fn a_bundle_verifies_with_its_key_and_not_once_changed() {
        let dir = ScratchDir::new("signing");
        let (secret, public) = keys(&dir, "fleet");
        let (_, other_public) = keys(&dir, "other");
        let bundle = sign(&secret, sources("version = 1\n")).unwrap();
        let trusted = TrustedKeys::load(&[public]).unwrap();
        assert!(trusted.required());
        trusted.verify(&bundle).unwrap();

        let mut tampered = bundle.clone();
        tampered.sources[0].text.push_str("[[allow]]\n");
        assert!(matches!(
            trusted.verify(&tampered),
            Err(SigningError::Tampered)
        ));
        let mut renamed = bundle.clone();
        renamed.sources[0].name = "q.toml".into();
        assert!(matches!(
            trusted.verify(&renamed),
            Err(SigningError::Tampered)
        ));

        let strangers = TrustedKeys::load(&[other_public]).unwrap();
        assert!(matches!(
            strangers.verify(&bundle),
            Err(SigningError::UntrustedKey(_))
        ));
        let mut garbled = bundle;
        garbled.signature = "zz".into();
        assert!(matches!(
            trusted.verify(&garbled),
            Err(SigningError::BadSignature)
        ));
    }

    #[test]
    fn a_key_file_of_the_wrong_shape_is_refused() {
        let dir = ScratchDir::new("signing-bad");
        let file = dir.join("bad.pub");
        std::fs::write(&file, "not hex").unwrap();
        let error = TrustedKeys::load(&[file]).unwrap_err().to_string();
        assert!(error.contains("expected 32 hex-encoded bytes"), "{error}");
    }
}
