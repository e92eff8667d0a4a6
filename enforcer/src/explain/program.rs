//! Executables: the file, the directories above it, then its name, as
//! the exec hooks judge them (`decide` in `enforcer-ebpf/src/exec`).
//!
//! The hooks compare identities, not paths. Offline, a path stands for
//! its own identity: each listed path, and each directory above the
//! target, gets a number by its text. Where a path exists on this host it
//! is first followed to the file it leads to, as the kernel would see it,
//! so a listed link and the file behind it are one identity.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    sync::atomic::AtomicBool,
};

use enforcer_common::{
    decision::Action,
    exec::name_hash,
    lookup::{Fault, Generation},
};

use super::{error::ExplainError, report::Finding, subject::Subject};
use crate::{
    compile,
    exec::{
        hashwatch::runnable_digest,
        resolve::{ExecIdentity, IdentityKind},
    },
    policy::{Policy, Sha256, Trust},
};

/// The device of offline identities. No filesystem the kernel mounts has
/// it, so an offline identity never stands for a real one.
const OFFLINE_DEVICE: u32 = u32::MAX;

/// The policy's exec paths as offline identities.
pub(super) struct Programs {
    pub(super) identities: Vec<ExecIdentity>,
    numbers: BTreeMap<PathBuf, u64>,
}

impl Programs {
    pub(super) fn new(policy: &Policy) -> Self {
        let mut programs = Programs {
            identities: Vec::new(),
            numbers: BTreeMap::new(),
        };
        for (index, rule) in policy.rules.iter().enumerate() {
            for exec_path in &rule.exec_paths {
                let path = followed(&exec_path.path);
                let ino = programs.number(&path);
                programs.identities.push(ExecIdentity {
                    dev: OFFLINE_DEVICE,
                    ino,
                    kind: if exec_path.directory {
                        IdentityKind::Directory
                    } else {
                        IdentityKind::File
                    },
                    rule: index as u32,
                    path,
                });
            }
        }
        programs.identities.sort();
        programs.identities.dedup();
        programs
    }

    /// The identity number of `path`, the same for the same text.
    fn number(&mut self, path: &Path) -> u64 {
        let next = self.numbers.len() as u64 + 1;
        *self.numbers.entry(path.to_path_buf()).or_insert(next)
    }

    fn known(&self, path: &Path) -> Option<u64> {
        self.numbers.get(path).copied()
    }
}

/// `path` as the kernel would reach it on this host: links followed, when
/// it exists here.
fn followed(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

pub(super) fn explain(
    subject: &Subject<'_>,
    offline: &Programs,
    path: &Path,
) -> Result<(Vec<Finding>, Vec<String>), ExplainError> {
    let fault = |_: Fault| ExplainError::Fault {
        target: path.display().to_string(),
    };
    let real = followed(path);
    let mut notes = Vec::new();
    if real != path {
        notes.push(format!(
            "on this host {} leads to {}, which is what exec runs",
            path.display(),
            real.display()
        ));
    }
    let exists = real.is_file();
    if !exists {
        notes.push(
            "not a file on this host: judged by its path as written; on a host where it is \
             a link to a banned file, a hard link or a move of one, it is judged as that file"
                .to_owned(),
        );
    }
    // A file whose content a rule bans is banned by identity, as the
    // daemon's hash watch bans it when it finds the file.
    let content_rule = exists.then(|| digest(&real)).flatten().and_then(|digest| {
        subject
            .policy
            .rules
            .iter()
            .position(|rule| rule.exec_sha256.contains(&digest))
    });
    let mut programs = Programs {
        identities: offline.identities.clone(),
        numbers: offline.numbers.clone(),
    };
    let file_number = programs.number(&real);
    let compiled;
    let image = match content_rule {
        Some(rule) => {
            programs.identities.push(ExecIdentity {
                dev: OFFLINE_DEVICE,
                ino: file_number,
                kind: IdentityKind::File,
                rule: rule as u32,
                path: real.clone(),
            });
            compiled = compile::compile(subject.policy, &programs.identities, 0)?;
            compiled.image.as_slice()
        }
        None => subject.image,
    };
    let generation = Generation::new(image);

    let mut decision = generation
        .exec_file(OFFLINE_DEVICE, file_number)
        .map_err(fault)?;
    let mut because = match content_rule {
        Some(rule) if decision.rule() == rule as u32 => {
            "its content's SHA-256 is listed".to_owned()
        }
        _ => format!("{} is listed", real.display()),
    };
    if decision.action() != Action::Allow {
        for directory in real.ancestors().skip(1) {
            let Some(number) = programs.known(directory) else {
                continue;
            };
            let found = generation
                .exec_directory(OFFLINE_DEVICE, number)
                .map_err(fault)?;
            if found.outranks(decision) {
                decision = found;
                because = format!("it is below {}, which is listed", directory.display());
                if decision.action() == Action::Allow {
                    break;
                }
            }
        }
    }
    if decision.action() != Action::Allow
        && let Some(name) = real.file_name()
    {
        let by_name = generation
            .exec_name(name_hash(name.as_encoded_bytes()))
            .map_err(fault)?;
        if by_name.outranks(decision) {
            decision = by_name;
            because = format!("its file name {} is listed", name.to_string_lossy());
        }
    }
    let decided = matches!(decision.action(), Action::Block | Action::Allow);
    if !decided && subject.policy.options.exec_trusted_only != Trust::Off {
        notes.push(
            "no rule bans or allows it: with exec_trusted_only it runs only if root owns \
             it and every directory above it, on a filesystem that is not distrusted"
                .to_owned(),
        );
    }
    if !exists
        && subject
            .policy
            .rules
            .iter()
            .any(|rule| !rule.exec_sha256.is_empty())
    {
        notes.push("its content is not known here, so exec_sha256 rules were not checked".into());
    }
    let finding = subject.finding(None, decision, because);
    Ok((vec![finding], notes))
}

/// The digest the daemon's hash watch would judge the file by; `None`
/// when it cannot be read, or its content is never banned (not runnable,
/// or too large).
fn digest(path: &Path) -> Option<Sha256> {
    let file = fs::File::open(path).ok()?;
    let metadata = file.metadata().ok()?;
    let never = AtomicBool::new(false);
    runnable_digest(&file, &metadata, &never).ok()?.map(Sha256)
}
