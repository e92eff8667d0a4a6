//! Turns exec path rules into kernel identities: (device, inode) pairs as
//! the kernel names them, for the files and directories a policy lists.
//!
//! Identities, not paths, are what the exec hooks compare, so a symlink, a
//! hard link or a rename of a banned file is still the banned file. A
//! directory ban gives the directory's identity (the hooks look for it
//! above every executable) and the identity of every file under it, so a
//! file moved out of the directory stays banned.

use std::{
    collections::BTreeSet,
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::policy::Policy;

/// Files recorded under one banned directory at most; the directory's own
/// identity still covers the rest.
const MAX_FILES_PER_DIRECTORY: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum IdentityKind {
    File,
    Directory,
}

/// One file or directory a rule names, as the kernel identifies it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExecIdentity {
    pub dev: u32,
    pub ino: u64,
    pub kind: IdentityKind,
    /// Index of the rule in the policy.
    pub rule: u32,
    pub path: PathBuf,
}

/// What resolving a policy's exec paths found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    pub identities: Vec<ExecIdentity>,
    /// Listed paths that do not exist (yet): nothing to ban there now.
    pub missing: Vec<PathBuf>,
    /// Banned directories with more files than were recorded.
    pub truncated: Vec<PathBuf>,
}

pub fn resolve(policy: &Policy) -> Resolution {
    let mut resolution = Resolution::default();
    for (index, rule) in policy.rules.iter().enumerate() {
        for exec_path in &rule.exec_paths {
            let path = &exec_path.path;
            let Ok(metadata) = fs::metadata(path) else {
                resolution.missing.push(path.clone());
                continue;
            };
            let kind = if metadata.is_dir() {
                IdentityKind::Directory
            } else {
                IdentityKind::File
            };
            resolution.identities.push(ExecIdentity {
                dev: kernel_dev(metadata.dev()),
                ino: metadata.ino(),
                kind,
                rule: index as u32,
                path: path.clone(),
            });
            if kind == IdentityKind::Directory {
                walk(path, metadata.dev(), index as u32, &mut resolution);
            }
        }
    }
    resolution.identities.sort();
    resolution.identities.dedup();
    resolution
}

/// Records every regular file below `root` on the same filesystem.
fn walk(root: &Path, root_dev: u64, rule: u32, resolution: &mut Resolution) {
    let mut pending = vec![root.to_path_buf()];
    let mut seen = BTreeSet::new();
    let mut recorded = 0;
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            // Another filesystem mounted below is not the directory's content.
            if metadata.dev() != root_dev || !seen.insert(metadata.ino()) {
                continue;
            }
            if metadata.is_dir() {
                pending.push(entry.path());
            } else if metadata.is_file() {
                if recorded == MAX_FILES_PER_DIRECTORY {
                    resolution.truncated.push(root.to_path_buf());
                    return;
                }
                recorded += 1;
                resolution.identities.push(ExecIdentity {
                    dev: kernel_dev(metadata.dev()),
                    ino: metadata.ino(),
                    kind: IdentityKind::File,
                    rule,
                    path: entry.path(),
                });
            }
        }
    }
}

/// `st_dev` in the kernel's own encoding (`MKDEV`: major << 20 | minor),
/// which is what `super_block.s_dev` holds. glibc splits the bits
/// differently.
pub fn kernel_dev(st_dev: u64) -> u32 {
    let major = ((st_dev >> 32) & 0xffff_f000) | ((st_dev >> 8) & 0xfff);
    let minor = ((st_dev >> 12) & 0xffff_ff00) | (st_dev & 0xff);
    ((major as u32) << 20) | (minor as u32 & 0xf_ffff)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::policy::{Source, parse};

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("enforcer-resolve-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn policy_banning(paths: &[String]) -> Policy {
        let list = paths
            .iter()
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!("version = 1\n[[block]]\nname = \"app\"\nexec_paths = [{list}]\n");
        parse(&[Source {
            name: "p.toml".into(),
            text,
        }])
        .unwrap()
    }

    #[test]
    fn encodes_devices_like_the_kernel() {
        // glibc makedev(8, 1) and makedev(259, 65537).
        assert_eq!(kernel_dev(0x801), (8 << 20) | 1);
        let st_dev =
            ((259u64 & 0xfff) << 8) | ((65537u64 & 0xff) | ((65537u64 & 0xffff_ff00) << 12));
        assert_eq!(kernel_dev(st_dev), (259 << 20) | 65537);
    }

    #[test]
    fn a_symlink_resolves_to_its_target_and_missing_paths_are_reported() {
        let dir = scratch("symlink");
        let target = dir.join("app");
        fs::write(&target, b"#!/bin/true\n").unwrap();
        symlink(&target, dir.join("link")).unwrap();
        let link = dir.join("link").display().to_string();
        let missing = dir.join("absent").display().to_string();

        let resolution = resolve(&policy_banning(&[link, missing.clone()]));
        let [identity] = resolution.identities.as_slice() else {
            panic!("{resolution:?}")
        };
        assert_eq!(identity.ino, fs::metadata(&target).unwrap().ino());
        assert_eq!(identity.kind, IdentityKind::File);
        assert_eq!(resolution.missing, [PathBuf::from(missing)]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_directory_ban_lists_the_directory_and_every_file_below() {
        let dir = scratch("tree");
        fs::create_dir_all(dir.join("app/lib")).unwrap();
        fs::write(dir.join("app/bin"), b"x").unwrap();
        fs::write(dir.join("app/lib/helper"), b"y").unwrap();
        let banned = format!("{}/", dir.join("app").display());

        let resolution = resolve(&policy_banning(&[banned]));
        let kinds: Vec<(IdentityKind, String)> = resolution
            .identities
            .iter()
            .map(|i| {
                (
                    i.kind,
                    i.path.strip_prefix(&dir).unwrap().display().to_string(),
                )
            })
            .collect();
        assert!(
            kinds.contains(&(IdentityKind::Directory, "app".into())),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&(IdentityKind::File, "app/bin".into())),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&(IdentityKind::File, "app/lib/helper".into())),
            "{kinds:?}"
        );
        assert_eq!(
            kinds.len(),
            3,
            "subdirectories are walked, not listed: {kinds:?}"
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
