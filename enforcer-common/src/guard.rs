//! Self-protection ("the guard"): BPF LSM programs that keep every process
//! but the enforcer itself away from the enforcer's kernel objects, its
//! pins and its daemon.
//!
//! The guard does not decide by path or by process name, which any root
//! process can choose. It decides by identity the kernel holds:
//!
//! - the objects: map, program and link ids, and the inodes of the pin
//!   directories and pin files, which userspace registers in
//!   [`crate::names::MAP_GUARDED`];
//! - who may touch them: tasks whose executable is one of the files in
//!   [`crate::names::MAP_TRUSTED`] (device and inode of the enforcer
//!   binary, so the daemon, `enforcer unload` and a restarted daemon all
//!   qualify, and a copy of some other tool does not).
//!
//! Every refusal is reported as a [`TamperEvent`].

use core::mem::{offset_of, size_of};

/// Byte offsets of the kernel struct members the guard programs read, from
/// the running kernel's BTF (Rust eBPF has no CO-RE).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardOffsets {
    /// `bpf_map.id`
    pub map_id: u32,
    /// `bpf_prog.aux`
    pub prog_aux: u32,
    /// `bpf_prog_aux.id`
    pub prog_aux_id: u32,
    /// `inode.i_ino`
    pub inode_ino: u32,
    /// `inode.i_sb`
    pub inode_sb: u32,
    /// `super_block.s_dev`
    pub sb_dev: u32,
    /// `vfsmount.mnt_sb`
    pub mount_sb: u32,
    /// `task_struct.tgid`
    pub task_tgid: u32,
    /// `task_struct.mm`
    pub task_mm: u32,
    /// `mm_struct.exe_file`
    pub mm_exe_file: u32,
    /// `file.f_inode`
    pub file_inode: u32,
    /// `task_struct.real_parent`
    pub task_real_parent: u32,
}

const _: () = assert!(size_of::<GuardOffsets>() == 48);

#[cfg(feature = "user")]
// SAFETY: plain u32 fields, no padding.
unsafe impl aya::Pod for GuardOffsets {}

/// The name of the global the daemon sets.
pub const GUARD_OFFSETS_GLOBAL: &str = "GUARD_OFFSETS";

/// What kind of object a [`Guarded`] key names.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A BPF map, by id.
    Map = 1,
    /// A BPF program, by id.
    Program = 2,
    /// A BPF link, by id.
    Link = 3,
    /// A pin directory or pin file, by inode number on the pin filesystem.
    Pin = 4,
}

/// A key of the guarded-objects map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guarded {
    /// A [`Kind`].
    pub kind: u32,
    /// Zero.
    pub _reserved: u32,
    /// The object id, or the pin's inode number.
    pub id: u64,
}

impl Guarded {
    /// The key of object `id` of `kind`.
    #[inline(always)]
    pub const fn new(kind: Kind, id: u64) -> Self {
        Self {
            kind: kind as u32,
            _reserved: 0,
            id,
        }
    }
}

const _: () = {
    assert!(size_of::<Guarded>() == 16);
    assert!(offset_of!(Guarded, id) == 8);
};

/// A file by device (the kernel's encoding, as `super_block.s_dev` holds
/// it) and inode: the key of the trusted-executables map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    /// The device.
    pub dev: u32,
    /// Zero.
    pub _reserved: u32,
    /// The inode number.
    pub ino: u64,
}

const _: () = {
    assert!(size_of::<FileId>() == 16);
    assert!(offset_of!(FileId, ino) == 8);
};

/// Slot 0 of the guard's state map. All zero means nothing is guarded
/// yet, so the programs allow everything until userspace fills it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardState {
    /// The daemon's process id: signals and ptrace aimed at it are judged.
    pub daemon_tgid: u32,
    /// The pin filesystem's device (kernel encoding): inodes are only
    /// compared there, and it may not be unmounted.
    pub pin_fs_dev: u32,
}

const _: () = assert!(size_of::<GuardState>() == 8);

#[cfg(feature = "user")]
// SAFETY: plain integer fields, no padding.
unsafe impl aya::Pod for Guarded {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for FileId {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for GuardState {}

/// What a refused process tried.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Get a descriptor of one of the enforcer's maps (by id or by pin).
    Map = 1,
    /// Get a descriptor of one of its programs.
    Program = 2,
    /// Get a descriptor of one of its links by id, to detach it.
    Link = 3,
    /// Open, list, unpin or rename inside its pin directory.
    Pin = 4,
    /// Unmount the filesystem that holds its pins.
    Unmount = 5,
    /// Signal its daemon.
    Signal = 6,
    /// Trace, or read the memory or descriptors of, its daemon.
    Ptrace = 7,
}

impl Attempt {
    /// The attempt a record's `attempt` names, if any.
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            1 => Some(Self::Map),
            2 => Some(Self::Program),
            3 => Some(Self::Link),
            4 => Some(Self::Pin),
            5 => Some(Self::Unmount),
            6 => Some(Self::Signal),
            7 => Some(Self::Ptrace),
            _ => None,
        }
    }

    /// How events name it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Map => "map",
            Self::Program => "program",
            Self::Link => "link",
            Self::Pin => "pin",
            Self::Unmount => "unmount",
            Self::Signal => "signal",
            Self::Ptrace => "ptrace",
        }
    }
}

/// One refused attempt.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TamperEvent {
    /// `CLOCK_BOOTTIME` in nanoseconds.
    pub boot_ns: u64,
    /// The cgroup of the process.
    pub cgroup_id: u64,
    /// The object id, the pin's inode, or the daemon's pid.
    pub target: u64,
    /// Thread group id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// An [`Attempt`].
    pub attempt: u32,
    /// The signal number for [`Attempt::Signal`], the access mask for
    /// [`Attempt::Pin`] and [`Attempt::Ptrace`]; else 0.
    pub detail: u32,
    /// The thread's name, NUL-padded.
    pub comm: [u8; 16],
}

const _: () = {
    assert!(size_of::<TamperEvent>() == 64);
    assert!(offset_of!(TamperEvent, target) == 16);
    assert!(offset_of!(TamperEvent, pid) == 24);
    assert!(offset_of!(TamperEvent, attempt) == 40);
    assert!(offset_of!(TamperEvent, detail) == 44);
    assert!(offset_of!(TamperEvent, comm) == 48);
};
