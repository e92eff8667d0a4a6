//! `exec_trusted_only`: whether root owns a file and every directory
//! above it, and nobody else may write them, on a filesystem the policy
//! trusts (see `enforcer_common::exec::Untrusted`).

use enforcer_common::{
    exec::{
        ExecOffsets, MAX_DIRECTORY_DEPTH, Untrusted, WRITABLE_BY_OTHERS, distrusts_filesystem,
        options,
    },
    lookup::Fault,
    repeat::{Repeat, Step},
};

use crate::{
    kernel::{read, read_ptr},
    repeat::BpfLoop,
};

/// Why `exec_trusted_only` distrusts the file, or `None` when it trusts it
/// (see [`Untrusted`]).
#[inline(always)]
pub(super) fn distrust(
    offsets: &ExecOffsets,
    exec_options: u64,
    inode: *const u8,
    super_block: *const u8,
    dentry: *const u8,
) -> Result<Option<Untrusted>, Fault> {
    let mut walk = TrustWalk {
        offsets,
        inode,
        super_block,
        dentry,
        distrusted_filesystems: exec_options >> options::UNTRUSTED_FILESYSTEM_SHIFT,
        // What a walk that never reaches the root leaves.
        outcome: Untrusted::TooDeep as u8,
    };
    BpfLoop.repeat(MAX_DIRECTORY_DEPTH + 1, &mut walk);
    // Opaque: a kernel before 6.7 takes the callback for run once, and
    // would take the outcome for what one step leaves.
    match BpfLoop.opaque(usize::from(walk.outcome)) as u8 {
        TRUSTED => Ok(None),
        FAULTED => Err(Fault),
        flaw => Ok(Some(Untrusted::from_u8(flaw).unwrap_or(Untrusted::TooDeep))),
    }
}

/// How a walk ends when the file is trusted: no [`Untrusted`] code.
const TRUSTED: u8 = 0;
/// How a walk ends when it could not read the kernel's structures.
const FAULTED: u8 = 0xff;

/// The trust checks as a `bpf_loop`: the file and its filesystem in the
/// first step, then one directory per step up to the filesystem's root.
/// Inline, the verifier of Linux 6.1 followed them for every state the
/// lookups before them left: the unrolled walk took the exec hooks past
/// 800,000 instructions.
struct TrustWalk<'a> {
    offsets: &'a ExecOffsets,
    inode: *const u8,
    super_block: *const u8,
    dentry: *const u8,
    distrusted_filesystems: u64,
    outcome: u8,
}

impl TrustWalk<'_> {
    /// The file's own checks: `Ok(None)` to go on to its directories.
    fn check_file(&self) -> Result<Option<u8>, Fault> {
        let offsets = self.offsets;
        if read::<u32>(self.inode, offsets.inode_nlink)? == 0 {
            return Ok(Some(Untrusted::Anonymous as u8));
        }
        let magic: u64 = read(self.super_block, offsets.sb_magic)?;
        if distrusts_filesystem(self.distrusted_filesystems, magic) {
            return Ok(Some(Untrusted::Filesystem as u8));
        }
        let user_ns = read_ptr(self.super_block, offsets.sb_user_ns)?;
        if read::<u32>(user_ns, offsets.user_ns_level)? != 0 {
            return Ok(Some(Untrusted::UserNamespace as u8));
        }
        let flaw = untrusted_inode(offsets, self.inode, Untrusted::Owner, Untrusted::Mode)?;
        Ok(flaw.map(|flaw| flaw as u8))
    }

    /// The directory above `dentry`: `Ok(None)` to go on above it.
    fn check_parent(&mut self) -> Result<Option<u8>, Fault> {
        let parent = read_ptr(self.dentry, self.offsets.dentry_parent)?;
        if parent == self.dentry {
            return Ok(Some(TRUSTED));
        }
        let directory = read_ptr(parent, self.offsets.dentry_inode)?;
        let flaw = untrusted_inode(
            self.offsets,
            directory,
            Untrusted::DirectoryOwner,
            Untrusted::DirectoryMode,
        )?;
        self.dentry = parent;
        Ok(flaw.map(|flaw| flaw as u8))
    }
}

impl Step for TrustWalk<'_> {
    fn step(&mut self, index: u32) -> bool {
        let checked = if index == 0 {
            self.check_file()
        } else {
            self.check_parent()
        };
        match checked {
            Ok(None) => true,
            Ok(Some(outcome)) => {
                self.outcome = outcome;
                false
            }
            Err(Fault) => {
                self.outcome = FAULTED;
                false
            }
        }
    }
}

/// `owner` when root does not own the inode, `mode` when its group or
/// others may write it.
#[inline(always)]
fn untrusted_inode(
    offsets: &ExecOffsets,
    inode: *const u8,
    owner: Untrusted,
    mode: Untrusted,
) -> Result<Option<Untrusted>, Fault> {
    if read::<u32>(inode, offsets.inode_uid)? != 0 {
        return Ok(Some(owner));
    }
    if read::<u16>(inode, offsets.inode_mode)? & WRITABLE_BY_OTHERS != 0 {
        return Ok(Some(mode));
    }
    Ok(None)
}
