//! Self-protection: BPF LSM hooks that refuse, with EPERM, every process
//! but the enforcer's own executable the ways to end or blind enforcement
//! (see `enforcer_common::guard`). Each refusal is reported.
//!
//! Detaching a link needs a descriptor of it, and a descriptor comes from
//! its id, its pin or the daemon's own table. So the hooks guard how
//! descriptors are had, where the kernel holds the object itself, rather
//! than `BPF_LINK_DETACH`, whose descriptor could be swapped under the
//! check by another thread.

use aya_ebpf::{
    btf_maps::{Array, HashMap},
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_task, bpf_get_current_uid_gid, bpf_ktime_get_boot_ns,
    },
    macros::{btf_map, lsm},
    programs::LsmContext,
};
use enforcer_common::{
    counters::Counter,
    guard::{Attempt, FileId, GuardOffsets, GuardState, Guarded, Kind, TamperEvent},
    lookup::Fault,
};

use crate::{
    counters::count,
    kernel::{read, read_ptr},
    ring,
};

/// Set by userspace from the running kernel's BTF before loading.
#[unsafe(no_mangle)]
static GUARD_OFFSETS: GuardOffsets = GuardOffsets {
    map_id: 0,
    prog_aux: 0,
    prog_aux_id: 0,
    inode_ino: 0,
    inode_sb: 0,
    sb_dev: 0,
    mount_sb: 0,
    task_tgid: 0,
    task_mm: 0,
    mm_exe_file: 0,
    file_inode: 0,
    task_real_parent: 0,
};

/// The enforcer's maps, programs, links and pin inodes.
#[btf_map]
static GUARDED: HashMap<Guarded, u8, 1024> = HashMap::new();

/// The executables (device and inode) trusted with them.
#[btf_map]
static TRUSTED: HashMap<FileId, u8, 8> = HashMap::new();

#[btf_map]
static GUARD_STATE: Array<GuardState, 1> = Array::new();

const EPERM: i32 = 1;
/// What a hook returns when an earlier BPF LSM program on it refused
/// already: a refusal too. A constant, because the verifier of newer
/// kernels must see that an LSM program returns 0 or an errno, and cannot
/// tell that of the earlier program's value.
const REFUSED_EARLIER: i32 = -EPERM;
/// `enum bpf_cmd`
const BPF_LINK_GET_FD_BY_ID: i32 = 30;
/// `PTRACE_MODE_ATTACH`: tracing, or reading memory or descriptors. Plain
/// reads (`ps` looking at /proc) are left alone.
const PTRACE_MODE_ATTACH: u32 = 0x02;

#[lsm(hook = "bpf")]
pub(crate) fn bpf(ctx: LsmContext) -> i32 {
    let cmd: i32 = ctx.arg(0);
    if cmd != BPF_LINK_GET_FD_BY_ID {
        return 0;
    }
    // The attr is the kernel's copy, so the id judged is the id used.
    let attr: *const u8 = ctx.arg(1);
    let Ok(id) = read::<u32>(attr, 0) else {
        return 0;
    };
    judge(Guarded::new(Kind::Link, id.into()), Attempt::Link, 0)
}

#[lsm(hook = "bpf_map")]
pub(crate) fn bpf_map(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(2);
    if previous != 0 {
        return REFUSED_EARLIER;
    }
    let map: *const u8 = ctx.arg(0);
    let Ok(id) = read::<u32>(map, offsets().map_id) else {
        return 0;
    };
    judge(Guarded::new(Kind::Map, id.into()), Attempt::Map, 0)
}

#[lsm(hook = "bpf_prog")]
pub(crate) fn bpf_prog(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(1);
    if previous != 0 {
        return REFUSED_EARLIER;
    }
    let program: *const u8 = ctx.arg(0);
    let offsets = offsets();
    let Ok(id) = read_ptr(program, offsets.prog_aux).and_then(|aux| read::<u32>(aux, offsets.prog_aux_id))
    else {
        return 0;
    };
    judge(Guarded::new(Kind::Program, id.into()), Attempt::Program, 0)
}

/// Every lookup in a directory asks for permission on it, so guarding the
/// pin directories keeps others from reaching (opening, unpinning,
/// renaming) anything inside.
#[lsm(hook = "inode_permission")]
pub(crate) fn inode_permission(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(2);
    if previous != 0 {
        return REFUSED_EARLIER;
    }
    let Some(state) = state() else {
        return 0;
    };
    let inode: *const u8 = ctx.arg(0);
    let offsets = offsets();
    match inode_on(inode, &offsets, state.pin_fs_dev) {
        Ok(Some(ino)) => {
            let mask: u32 = ctx.arg(1);
            judge(Guarded::new(Kind::Pin, ino), Attempt::Pin, mask)
        }
        _ => 0,
    }
}

/// Unmounting the pin filesystem would drop every pin at once.
#[lsm(hook = "sb_umount")]
pub(crate) fn sb_umount(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(2);
    if previous != 0 {
        return REFUSED_EARLIER;
    }
    let Some(state) = state() else {
        return 0;
    };
    let mount: *const u8 = ctx.arg(0);
    let offsets = offsets();
    let dev = read_ptr(mount, offsets.mount_sb).and_then(|sb| read::<u32>(sb, offsets.sb_dev));
    match dev {
        Ok(dev) if dev == state.pin_fs_dev => refuse_untrusted(Attempt::Unmount, dev.into(), 0),
        _ => 0,
    }
}

/// Signals to the daemon come from itself, from whoever started it (the
/// service manager), or from a trusted executable.
#[lsm(hook = "task_kill")]
pub(crate) fn task_kill(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(4);
    if previous != 0 {
        return REFUSED_EARLIER;
    }
    let signal: i32 = ctx.arg(2);
    let Some(state) = state() else {
        return 0;
    };
    let target: *const u8 = ctx.arg(0);
    if signal == 0 || !is_daemon(target, &state) {
        return 0;
    }
    let sender = (bpf_get_current_pid_tgid() >> 32) as u32;
    if sender == state.daemon_tgid || Ok(sender) == parent_of(target) {
        return 0;
    }
    refuse_untrusted(Attempt::Signal, state.daemon_tgid.into(), signal as u32)
}

#[lsm(hook = "ptrace_access_check")]
pub(crate) fn ptrace_access_check(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(2);
    if previous != 0 {
        return REFUSED_EARLIER;
    }
    let mode: u32 = ctx.arg(1);
    let Some(state) = state() else {
        return 0;
    };
    let target: *const u8 = ctx.arg(0);
    if mode & PTRACE_MODE_ATTACH == 0 || !is_daemon(target, &state) {
        return 0;
    }
    refuse_untrusted(Attempt::Ptrace, state.daemon_tgid.into(), mode)
}

#[inline(always)]
fn offsets() -> GuardOffsets {
    // SAFETY: a global written only by the loader.
    unsafe { core::ptr::read_volatile(&GUARD_OFFSETS) }
}

/// The guard's state once userspace has filled it.
#[inline(always)]
fn state() -> Option<GuardState> {
    GUARD_STATE
        .get(0)
        .copied()
        .filter(|state| state.daemon_tgid != 0)
}

/// The inode number of `inode` if it lives on the filesystem `dev`.
#[inline(always)]
fn inode_on(inode: *const u8, offsets: &GuardOffsets, dev: u32) -> Result<Option<u64>, Fault> {
    let sb = read_ptr(inode, offsets.inode_sb)?;
    if read::<u32>(sb, offsets.sb_dev)? != dev {
        return Ok(None);
    }
    read::<u64>(inode, offsets.inode_ino).map(Some)
}

#[inline(always)]
fn is_daemon(task: *const u8, state: &GuardState) -> bool {
    read::<u32>(task, offsets().task_tgid) == Ok(state.daemon_tgid)
}

#[inline(always)]
fn parent_of(task: *const u8) -> Result<u32, Fault> {
    let offsets = offsets();
    let parent = read_ptr(task, offsets.task_real_parent)?;
    read::<u32>(parent, offsets.task_tgid)
}

#[inline(always)]
fn judge(object: Guarded, attempt: Attempt, detail: u32) -> i32 {
    // SAFETY: a key on the stack for a lookup that only reads it.
    if unsafe { GUARDED.get(&object) }.is_none() {
        return 0;
    }
    refuse_untrusted(attempt, object.id, detail)
}

/// EPERM, reported, unless the caller runs a trusted executable.
#[inline(never)]
fn refuse_untrusted(attempt: Attempt, target: u64, detail: u32) -> i32 {
    if caller_is_trusted() {
        return 0;
    }
    report(attempt, target, detail);
    -EPERM
}

/// Kernel threads have no executable and act for the kernel itself; any
/// other task is trusted only by the file it runs.
#[inline(always)]
fn caller_is_trusted() -> bool {
    let offsets = offsets();
    // SAFETY: a helper without arguments.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let Ok(mm) = read_ptr(task, offsets.task_mm) else {
        return false;
    };
    if mm.is_null() {
        return true;
    }
    let executable = read_ptr(mm, offsets.mm_exe_file)
        .and_then(|file| read_ptr(file, offsets.file_inode))
        .and_then(|inode| {
            let sb = read_ptr(inode, offsets.inode_sb)?;
            Ok(FileId {
                dev: read::<u32>(sb, offsets.sb_dev)?,
                _reserved: 0,
                ino: read::<u64>(inode, offsets.inode_ino)?,
            })
        });
    // SAFETY: as in `judge`.
    executable.is_ok_and(|file| unsafe { TRUSTED.get(&file) }.is_some())
}

#[inline(always)]
fn report(attempt: Attempt, target: u64, detail: u32) {
    count(Counter::TamperRefused);
    let Some(mut record) = ring::reserve::<TamperEvent>() else {
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    record.body().write(TamperEvent {
        // SAFETY: helpers without arguments, allowed in LSM programs.
        boot_ns: unsafe { bpf_ktime_get_boot_ns() },
        // SAFETY: as above.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        target,
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        attempt: attempt as u32,
        detail,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    });
    record.submit();
}
