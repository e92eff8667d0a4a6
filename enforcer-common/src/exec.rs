//! Shared pieces of exec enforcement: the kernel struct offsets userspace
//! reads from BTF, the name hash, and the event record.

use core::mem::{offset_of, size_of};

/// Byte offsets of the kernel struct members the exec programs read. Rust
/// eBPF has no CO-RE, so the daemon reads them from the running kernel's
/// BTF and sets them as a global before loading.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecOffsets {
    /// `linux_binprm.file`
    pub binprm_file: u32,
    /// `linux_binprm.filename`
    pub binprm_filename: u32,
    /// `file.f_inode`
    pub file_inode: u32,
    /// `file.f_path.dentry`
    pub file_dentry: u32,
    /// `inode.i_ino`
    pub inode_ino: u32,
    /// `inode.i_sb`
    pub inode_sb: u32,
    /// `super_block.s_dev`
    pub sb_dev: u32,
    /// `dentry.d_name.name`
    pub dentry_name: u32,
    /// `dentry.d_parent`
    pub dentry_parent: u32,
    /// `dentry.d_inode`
    pub dentry_inode: u32,
    /// `task_struct.real_parent`
    pub task_real_parent: u32,
    /// `task_struct.tgid`
    pub task_tgid: u32,
    /// `inode.i_nlink`: zero for a file with no name in any directory.
    pub inode_nlink: u32,
    /// `task_struct.files`
    pub task_files: u32,
    /// `files_struct.fdt`
    pub files_fdt: u32,
    /// `fdtable.fd`
    pub fdtable_fd: u32,
    /// `fdtable.max_fds`
    pub fdtable_max_fds: u32,
    /// `task_struct.pid`: the thread id.
    pub task_pid: u32,
    /// `task_struct.comm`
    pub task_comm: u32,
    /// `inode.i_uid`
    pub inode_uid: u32,
    /// `inode.i_mode`
    pub inode_mode: u32,
    /// `super_block.s_magic`
    pub sb_magic: u32,
    /// `super_block.s_user_ns`: the user namespace it was mounted in.
    pub sb_user_ns: u32,
    /// `user_namespace.level`: 0 for the initial namespace.
    pub user_ns_level: u32,
    /// `task_struct.task_works`: the works a task runs on its way back to
    /// user space.
    pub task_works: u32,
    /// `callback_head.next`
    pub callback_next: u32,
    /// `callback_head.func`
    pub callback_func: u32,
    /// Where in `struct file` the work that drops its last reference sits
    /// (`f_task_work`, `f_rcuhead` or `f_u`, by kernel).
    pub file_put_work: u32,
    /// `file.f_flags`
    pub file_flags: u32,
    /// `linux_binprm.interp`
    pub binprm_interp: u32,
    /// `vm_area_struct.vm_file`
    pub vma_file: u32,
    /// Keeps the address below 8-byte aligned; always 0.
    pub _reserved: u32,
    /// The address of `____fput`, that work's function, from
    /// `/proc/kallsyms`; 0 where it cannot be read, and then the signal
    /// method judges no script (see `enforcer-ebpf`'s `exec::script`).
    pub put_work_function: u64,
}

const _: () = assert!(size_of::<ExecOffsets>() == 136);
const _: () = assert!(core::mem::offset_of!(ExecOffsets, put_work_function) == 128);

#[cfg(feature = "user")]
// SAFETY: plain integer fields, no padding.
unsafe impl aya::Pod for ExecOffsets {}

/// The name of the global the daemon sets.
pub const EXEC_OFFSETS_GLOBAL: &str = "EXEC_OFFSETS";

/// How many directories above an executable the programs look for a
/// directory ban. Deeper files are still caught by their own identity,
/// which userspace resolves when it applies the policy.
pub const MAX_DIRECTORY_DEPTH: u32 = 24;

/// Longest executable file name hashed (NAME_MAX).
pub const MAX_NAME_LEN: usize = 255;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over a file name: the key of `exec_names` entries. The kernel
/// folds bytes in one at a time with [`name_hash_step`].
pub const NAME_HASH_SEED: u64 = FNV_OFFSET;

/// Folds one byte into an FNV-1a hash.
#[inline(always)]
pub const fn name_hash_step(hash: u64, byte: u8) -> u64 {
    (hash ^ byte as u64).wrapping_mul(FNV_PRIME)
}

/// The FNV-1a hash of a whole name.
pub fn name_hash(name: &[u8]) -> u64 {
    name.iter()
        .fold(NAME_HASH_SEED, |hash, &byte| name_hash_step(hash, byte))
}

/// Bits of the image's `EXEC_OPTIONS` header word.
pub mod options {
    /// Stop executables with no name in any directory (memfd, O_TMPFILE,
    /// deleted files).
    pub const BLOCK_ANONYMOUS: u64 = 1 << 0;
    /// Stop a process that maps a banned file executable (a banned program
    /// started through the dynamic loader, or a banned library).
    pub const BLOCK_LOADER: u64 = 1 << 1;
    /// Only trusted files may start a process or be mapped executable (see
    /// [`super::Untrusted`]), and bans hold for mappings as with
    /// [`BLOCK_LOADER`]; an `[[allow]]` of the file or a directory above
    /// it trusts it.
    pub const TRUSTED_ONLY: u64 = 1 << 2;
    /// With [`TRUSTED_ONLY`]: an untrusted exec is reported, not stopped.
    pub const TRUST_AUDIT: u64 = 1 << 3;
    /// Where the filesystems in [`super::UNTRUSTED_FILESYSTEMS`] that
    /// [`TRUSTED_ONLY`] distrusts start: bit `i` of the word shifted by
    /// this many distrusts the `i`-th.
    pub const UNTRUSTED_FILESYSTEM_SHIFT: u32 = 32;
}

/// Filesystems `exec_trusted_only` may distrust, by name, with their
/// `s_magic`: what a user can fill with files that look root-owned (FUSE),
/// that anyone may write (tmpfs, ramfs), or that come from outside
/// (removable media).
pub const UNTRUSTED_FILESYSTEMS: [(&str, u64); 9] = [
    ("tmpfs", 0x0102_1994),
    ("ramfs", 0x8584_58f6),
    ("fuse", 0x6573_5546),
    ("vfat", 0x4d44),
    ("exfat", 0x2011_bab0),
    ("ntfs", 0x7366_746e),
    ("iso9660", 0x9660),
    ("udf", 0x1501_3346),
    ("squashfs", 0x7371_7368),
];

/// Whether `magic` is a filesystem whose bit `mask` sets (see
/// [`options::UNTRUSTED_FILESYSTEM_SHIFT`]).
#[inline(always)]
pub fn distrusts_filesystem(mask: u64, magic: u64) -> bool {
    let mut index = 0;
    while index < UNTRUSTED_FILESYSTEMS.len() {
        if UNTRUSTED_FILESYSTEMS[index].1 == magic {
            return mask & (1 << index) != 0;
        }
        index += 1;
    }
    false
}

/// Why `exec_trusted_only` refuses a file: the first check it failed. A
/// file is trusted when it and every directory above it, up to its
/// filesystem's root, are owned by root and writable by nobody else, and
/// that filesystem was mounted in the initial user namespace and is not
/// one the policy distrusts.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Untrusted {
    /// The file has no name in any directory (memfd, deleted).
    Anonymous = 1,
    /// It is on a filesystem the policy distrusts.
    Filesystem = 2,
    /// Its filesystem was mounted inside a user namespace.
    UserNamespace = 3,
    /// The file is not owned by root.
    Owner = 4,
    /// The file is writable by its group or by others.
    Mode = 5,
    /// A directory above it is not owned by root.
    DirectoryOwner = 6,
    /// A directory above it is writable by its group or by others.
    DirectoryMode = 7,
    /// It lies deeper than the programs walk ([`MAX_DIRECTORY_DEPTH`]).
    TooDeep = 8,
}

impl Untrusted {
    /// The check a record's `untrusted` byte names; `None` for 0 and
    /// unknown values.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Anonymous),
            2 => Some(Self::Filesystem),
            3 => Some(Self::UserNamespace),
            4 => Some(Self::Owner),
            5 => Some(Self::Mode),
            6 => Some(Self::DirectoryOwner),
            7 => Some(Self::DirectoryMode),
            8 => Some(Self::TooDeep),
            _ => None,
        }
    }

    /// Its name in events.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::Filesystem => "filesystem",
            Self::UserNamespace => "user_namespace",
            Self::Owner => "owner",
            Self::Mode => "mode",
            Self::DirectoryOwner => "directory_owner",
            Self::DirectoryMode => "directory_mode",
            Self::TooDeep => "too_deep",
        }
    }
}

/// Bits of `i_mode` that let the group or others write.
pub const WRITABLE_BY_OTHERS: u16 = 0o022;

/// The rule index in decisions the options make rather than a rule.
pub const OPTIONS_RULE: u32 = crate::decision::MAX_RULES;

/// What made the programs judge.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// An exec of the file.
    Exec = 1,
    /// An exec of a file with no name (`options::BLOCK_ANONYMOUS`).
    Anonymous = 2,
    /// An executable mapping of the file (`options::BLOCK_LOADER`,
    /// `options::TRUSTED_ONLY`).
    Mapping = 3,
    /// An exec of a `#!` script, seen by the signal method once its
    /// interpreter is the new image.
    Script = 4,
}

impl Trigger {
    /// The trigger a record's `trigger` byte names, if any.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Exec),
            2 => Some(Self::Anonymous),
            3 => Some(Self::Mapping),
            4 => Some(Self::Script),
            _ => None,
        }
    }
}

/// How the kernel stopped (or would have stopped) an exec.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecMethod {
    /// BPF LSM `bprm_check_security`: the exec fails with EPERM.
    Lsm = 1,
    /// `sched_process_exec`: the new image is killed with SIGKILL before
    /// it runs an instruction of its own.
    Signal = 2,
}

impl ExecMethod {
    /// The method a record's `method` byte names, if any.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Lsm),
            2 => Some(Self::Signal),
            _ => None,
        }
    }
}

/// Bytes of the path kept in an event: leaf first, components separated by
/// NUL, as the programs walk up the dentries. A component starts below
/// [`EVENT_PATH_START_LIMIT`] and copies at most [`PATH_COMPONENT_MAX`]
/// bytes, which the verifier can prove stays inside the buffer.
pub const EVENT_PATH_LEN: usize = EVENT_PATH_START_LIMIT + PATH_COMPONENT_MAX;
/// See [`EVENT_PATH_LEN`].
pub const EVENT_PATH_START_LIMIT: usize = 512;
/// See [`EVENT_PATH_LEN`].
pub const PATH_COMPONENT_MAX: usize = 256;
/// Components the programs copy at most (the leaf and its parents).
pub const MAX_PATH_COMPONENTS: u32 = 16;
/// Bytes of the file name as the caller passed it.
pub const EVENT_FILENAME_LEN: usize = 256;

/// One exec the policy matched.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    /// `CLOCK_BOOTTIME` in nanoseconds.
    pub boot_ns: u64,
    /// The cgroup of the process.
    pub cgroup_id: u64,
    /// The policy generation that decided.
    pub generation: u64,
    /// The executable's inode number.
    pub ino: u64,
    /// The executable's device, in the kernel's encoding.
    pub dev: u32,
    /// The rule's index in that generation, or [`OPTIONS_RULE`].
    pub rule: u32,
    /// Thread group id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// The parent's thread group id, or 0 when it could not be read.
    pub ppid: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// [`crate::decision::Action`]: block or audit.
    pub verdict: u32,
    /// An [`ExecMethod`].
    pub method: u8,
    /// Components written into `path`, leaf first.
    pub path_components: u8,
    /// Set when the walk stopped before the filesystem's root.
    pub path_truncated: u8,
    /// [`Trigger`]
    pub trigger: u8,
    /// An [`Untrusted`] when `exec_trusted_only` decided, else 0.
    pub untrusted: u8,
    /// Zero.
    pub _reserved: [u8; 3],
    /// The thread's name, NUL-padded.
    pub comm: [u8; 16],
    /// The executable's path within its filesystem (see [`EVENT_PATH_LEN`]).
    pub path: [u8; EVENT_PATH_LEN],
    /// The file name the caller passed, NUL-terminated.
    pub filename: [u8; EVENT_FILENAME_LEN],
}

const _: () = {
    assert!(offset_of!(ExecEvent, boot_ns) == 0);
    assert!(offset_of!(ExecEvent, cgroup_id) == 8);
    assert!(offset_of!(ExecEvent, generation) == 16);
    assert!(offset_of!(ExecEvent, ino) == 24);
    assert!(offset_of!(ExecEvent, dev) == 32);
    assert!(offset_of!(ExecEvent, rule) == 36);
    assert!(offset_of!(ExecEvent, pid) == 40);
    assert!(offset_of!(ExecEvent, tid) == 44);
    assert!(offset_of!(ExecEvent, ppid) == 48);
    assert!(offset_of!(ExecEvent, uid) == 52);
    assert!(offset_of!(ExecEvent, gid) == 56);
    assert!(offset_of!(ExecEvent, verdict) == 60);
    assert!(offset_of!(ExecEvent, method) == 64);
    assert!(offset_of!(ExecEvent, path_components) == 65);
    assert!(offset_of!(ExecEvent, path_truncated) == 66);
    assert!(offset_of!(ExecEvent, trigger) == 67);
    assert!(offset_of!(ExecEvent, untrusted) == 68);
    assert!(offset_of!(ExecEvent, _reserved) == 69);
    assert!(offset_of!(ExecEvent, comm) == 72);
    assert!(offset_of!(ExecEvent, path) == 88);
    assert!(offset_of!(ExecEvent, filename) == 88 + EVENT_PATH_LEN);
    assert!(size_of::<ExecEvent>() == 88 + EVENT_PATH_LEN + EVENT_FILENAME_LEN);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_hash_is_fnv1a() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(name_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(name_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(name_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
