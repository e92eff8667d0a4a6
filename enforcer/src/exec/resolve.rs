//! Turns exec path rules into kernel identities: (device, inode) pairs as
//! the kernel names them, for the files and directories a policy lists.
//!
//! Identities, not paths, are what the exec hooks compare, so a symlink, a
//! hard link or a rename of a banned file is still the banned file. A
//! directory ban gives the directory's identity (the hooks look for it
//! above every executable) and the identity of every file under it.
//!
//! Paths are resolved again whenever something changes behind them (see
//! [`crate::exec::pathwatch`]). A banned file must stay banned when it is renamed
//! away from its listed path or moved out of its banned directory, so a
//! resolution carries the files of the previous one over, as long as their
//! rule still lists the same entry and the file still exists. Existence is
//! checked through a file handle, which the kernel refuses once the file
//! is deleted even if its inode number is reused: a recycled inode must
//! never inherit a ban.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    host::filehandle::{FileHandle, MountFds},
    policy::{ExecPath, Policy},
};

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
    /// Where it was found (informational: it may have moved since).
    pub path: PathBuf,
}

/// What resolving a policy's exec paths found.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolution {
    pub identities: Vec<ExecIdentity>,
    /// Listed paths that do not exist (yet): nothing to ban there now.
    pub missing: Vec<PathBuf>,
    /// Banned directories with more files than were recorded.
    pub truncated: Vec<PathBuf>,
    /// How to find each file identity again, by the rule entry that
    /// banned it: (rule name, exec path) → handles.
    carried: BTreeMap<(String, ExecPath), Vec<Tracked>>,
}

/// A banned file and the handle that tells whether it still exists.
#[derive(Debug, Clone)]
struct Tracked {
    dev: u32,
    ino: u64,
    path: PathBuf,
    handle: FileHandle,
}

/// Resolves `policy`'s exec paths as they are now, keeping the files that
/// `previous` banned through an entry the policy still has.
pub(crate) fn resolve(policy: &Policy, previous: Option<&Resolution>) -> Resolution {
    let mut resolution = Resolution::default();
    let mut mounts = MountFds::default();
    for (index, rule) in policy.rules.iter().enumerate() {
        let rule_index = index as u32;
        for exec_path in &rule.exec_paths {
            let key = (rule.name.clone(), exec_path.clone());
            let mut tracked = Vec::new();
            resolve_entry(exec_path, rule_index, &mut resolution, &mut tracked);
            let carried = previous
                .and_then(|p| p.carried.get(&key))
                .into_iter()
                .flatten();
            for old in carried {
                let still_there = mounts.still_exists(&old.handle);
                let already = tracked.iter().any(|t| (t.dev, t.ino) == (old.dev, old.ino));
                if still_there && !already {
                    resolution.identities.push(ExecIdentity {
                        dev: old.dev,
                        ino: old.ino,
                        kind: IdentityKind::File,
                        rule: rule_index,
                        path: old.path.clone(),
                    });
                    tracked.push(old.clone());
                }
            }
            resolution.carried.insert(key, tracked);
        }
    }
    resolution.identities.sort();
    resolution.identities.dedup();
    resolution
}

fn resolve_entry(
    exec_path: &ExecPath,
    rule: u32,
    resolution: &mut Resolution,
    tracked: &mut Vec<Tracked>,
) {
    let path = &exec_path.path;
    let Ok(metadata) = fs::metadata(path) else {
        resolution.missing.push(path.clone());
        return;
    };
    if metadata.is_dir() {
        resolution.identities.push(ExecIdentity {
            dev: kernel_dev(metadata.dev()),
            ino: metadata.ino(),
            kind: IdentityKind::Directory,
            rule,
            path: path.clone(),
        });
        walk(path, metadata.dev(), rule, resolution, tracked);
    } else {
        record_file(path, &metadata, rule, resolution, tracked);
    }
}

fn record_file(
    path: &Path,
    metadata: &fs::Metadata,
    rule: u32,
    resolution: &mut Resolution,
    tracked: &mut Vec<Tracked>,
) {
    let (dev, ino) = (kernel_dev(metadata.dev()), metadata.ino());
    resolution.identities.push(ExecIdentity {
        dev,
        ino,
        kind: IdentityKind::File,
        rule,
        path: path.to_path_buf(),
    });
    // Without a handle the file is still banned now; it just cannot be
    // told apart from a recycled inode later, so it is not carried.
    if let Some(handle) = FileHandle::of(path) {
        tracked.push(Tracked {
            dev,
            ino,
            path: path.to_path_buf(),
            handle,
        });
    }
}

/// Records every regular file below `root` on the same filesystem.
fn walk(
    root: &Path,
    root_dev: u64,
    rule: u32,
    resolution: &mut Resolution,
    tracked: &mut Vec<Tracked>,
) {
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
                record_file(&entry.path(), &metadata, rule, resolution, tracked);
            }
        }
    }
}

/// `st_dev` in the kernel's own encoding (`MKDEV`: major << 20 | minor),
/// which is what `super_block.s_dev` holds. glibc splits the bits
/// differently.
pub(crate) fn kernel_dev(st_dev: u64) -> u32 {
    let major = ((st_dev >> 32) & 0xffff_f000) | ((st_dev >> 8) & 0xfff);
    let minor = ((st_dev >> 12) & 0xffff_ff00) | (st_dev & 0xff);
    ((major as u32) << 20) | (minor as u32 & 0xf_ffff)
}

/// (major, minor) of a device in the kernel's encoding.
pub(crate) fn dev_numbers(dev: u32) -> (u32, u32) {
    (dev >> 20, dev & 0xf_ffff)
}

/// A device in the kernel's encoding as events show it: `major:minor`.
pub(crate) fn dev_label(dev: u32) -> String {
    let (major, minor) = dev_numbers(dev);
    format!("{major}:{minor}")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::policy::{Source, parse};
    use crate::testutil::ScratchDir;

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

    fn inodes(resolution: &Resolution) -> Vec<u64> {
        resolution
            .identities
            .iter()
            .filter(|i| i.kind == IdentityKind::File)
            .map(|i| i.ino)
            .collect()
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
        let dir = ScratchDir::new("resolve-symlink");
        let target = dir.join("app");
        fs::write(&target, b"#!/bin/true\n").unwrap();
        symlink(&target, dir.join("link")).unwrap();
        let link = dir.join("link").display().to_string();
        let missing = dir.join("absent").display().to_string();

        let resolution = resolve(&policy_banning(&[link, missing.clone()]), None);
        let [identity] = resolution.identities.as_slice() else {
            panic!("{resolution:?}")
        };
        assert_eq!(identity.ino, fs::metadata(&target).unwrap().ino());
        assert_eq!(identity.kind, IdentityKind::File);
        assert_eq!(resolution.missing, [PathBuf::from(missing)]);
    }

    #[test]
    fn a_directory_ban_lists_the_directory_and_every_file_below() {
        let dir = ScratchDir::new("resolve-tree");
        fs::create_dir_all(dir.join("app/lib")).unwrap();
        fs::write(dir.join("app/bin"), b"x").unwrap();
        fs::write(dir.join("app/lib/helper"), b"y").unwrap();
        let banned = format!("{}/", dir.join("app").display());

        let resolution = resolve(&policy_banning(&[banned]), None);
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
    }

    #[test]
    fn a_replaced_file_adds_the_new_one_and_keeps_the_renamed_old_one() {
        let dir = ScratchDir::new("resolve-replace");
        let listed = dir.join("app");
        fs::write(&listed, b"v1").unwrap();
        let policy = policy_banning(&[listed.display().to_string()]);
        let first = resolve(&policy, None);
        let old_ino = fs::metadata(&listed).unwrap().ino();

        // Someone keeps the old binary under another name; an upgrade puts
        // a new file at the listed path.
        fs::rename(&listed, dir.join("kept")).unwrap();
        fs::write(&listed, b"v2").unwrap();
        let new_ino = fs::metadata(&listed).unwrap().ino();

        let second = resolve(&policy, Some(&first));
        let mut expected = vec![old_ino, new_ino];
        expected.sort();
        assert_eq!(inodes(&second), expected);
    }

    #[test]
    fn a_deleted_file_is_not_carried_even_if_its_inode_comes_back() {
        let dir = ScratchDir::new("resolve-deleted");
        let listed = dir.join("app");
        fs::write(&listed, b"v1").unwrap();
        let policy = policy_banning(&[listed.display().to_string()]);
        let first = resolve(&policy, None);
        fs::remove_file(&listed).unwrap();

        let second = resolve(&policy, Some(&first));
        assert!(inodes(&second).is_empty(), "{second:?}");
        assert_eq!(second.missing, [listed]);
    }

    #[test]
    fn files_are_carried_only_while_their_rule_keeps_the_entry() {
        let dir = ScratchDir::new("resolve-entry");
        let listed = dir.join("app");
        fs::write(&listed, b"v1").unwrap();
        let first = resolve(&policy_banning(&[listed.display().to_string()]), None);
        fs::rename(&listed, dir.join("elsewhere")).unwrap();

        let other = resolve(
            &policy_banning(&[dir.join("other").display().to_string()]),
            Some(&first),
        );
        assert!(
            inodes(&other).is_empty(),
            "a dropped entry's files go free: {other:?}"
        );
    }
}
