//! Exec hooks. The new image is identified by its file (device and inode,
//! the directories above it, and its name), never by the string the caller
//! passed, so symlinks, hard links, renames and every exec form lead to the
//! same answer.
//!
//! Two hooks share the judgement: BPF LSM `bprm_check_security` refuses
//! the exec with EPERM before it happens; where the kernel has no BPF LSM,
//! `sched_process_exec` kills the new image with SIGKILL before it returns
//! to user space. Userspace attaches exactly one of them. Each is a
//! dispatcher with a variant per generation slot ([`hooks`]); the
//! tracepoint's variants go on to judge the `#!` script the exec ran
//! ([`script`]), which BPF LSM sees in its own hook.
//!
//! Each variant also comes as a `_by_file` variant that judges by the file
//! and its directories, not its name. Hashing the name claims a per-CPU buffer
//! with atomic fetch-or and fetch-and (Linux 5.12), and an older kernel
//! refuses every program that holds one, reached or not (5.10: `BPF_STX
//! uses reserved fields`). There userspace attaches the variant and
//! reports `exec_names` rules as not enforced.
//!
//! The mapping hook serves `exec_block_loader` and `exec_trusted_only`: a
//! file started through the dynamic loader is never exec'd itself, only
//! mapped executable, so the mapping is judged as its exec would be,
//! before any of the file's code can run. BPF LSM's `mmap_file` and
//! `file_mprotect` refuse it; elsewhere the `mmap` tracepoint kills the
//! process.

use aya_ebpf::{
    btf_maps::CgroupArray,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_task, bpf_get_current_uid_gid, bpf_ktime_get_boot_ns,
        bpf_probe_read_kernel_str_bytes,
    },
    macros::btf_map,
};
use enforcer_common::{
    counters::Counter,
    decision::{Action, Decision},
    exec::{
        EVENT_PATH_START_LIMIT, ExecEvent, ExecMethod, ExecOffsets, MAX_DIRECTORY_DEPTH,
        MAX_NAME_LEN, MAX_PATH_COMPONENTS, NAME_HASH_SEED, OPTIONS_RULE, PATH_COMPONENT_MAX,
        Trigger, Untrusted, name_hash_step, options,
    },
    hits::TRUSTED_ONLY_RULE,
    lookup::{Fault, Generation},
};

use self::{script::script_of, trust::distrust};
use crate::{
    counters::{count, hit},
    kernel::{exec_offsets, read, read_ptr},
    maps::{Claimed, LiveImage},
    ring,
};

mod hooks;
mod script;
mod trust;

/// Slot 0: the cgroup the daemon enforces in (see `hooks::in_scope`).
#[btf_map]
pub(crate) static EXEC_SCOPE: CgroupArray<1> = CgroupArray::new();

/// The action for an exec in scope that the policy matched, after counting
/// and reporting it.
#[inline(always)]
fn judge_exec<const NAMES: bool>(
    image: LiveImage<'_>,
    bprm: *const u8,
    method: ExecMethod,
) -> Option<Action> {
    let generation = Generation::new(&image);
    let offsets = exec_offsets();
    let found = match read_ptr(bprm, offsets.binprm_file) {
        Ok(file) => decide::<NAMES>(&generation, &offsets, file, JudgedAs::Exec),
        Err(fault) => Err(fault),
    };
    act(&generation, &offsets, found, method, bprm)
}

/// The `#!` script this exec ran, judged as its exec: for the signal
/// method, whose hook sees the interpreter's file (see [`script`]).
#[inline(always)]
fn judge_script_exec(image: LiveImage<'_>, bprm: *const u8) -> Option<Action> {
    let generation = Generation::new(&image);
    let offsets = exec_offsets();
    let found = judge_script(&generation, &offsets, bprm);
    act(&generation, &offsets, found, ExecMethod::Signal, bprm)
}

/// What the policy says of the script this exec ran, if any.
#[inline(always)]
fn judge_script(
    generation: &Generation<'_, LiveImage<'_>>,
    offsets: &ExecOffsets,
    bprm: *const u8,
) -> Result<Option<Found>, Fault> {
    let Some(script) = script_of(offsets, bprm)? else {
        return Ok(None);
    };
    let found = decide::<true>(generation, offsets, script, JudgedAs::Exec)?;
    Ok(found.map(|found| Found {
        trigger: Trigger::Script,
        ..found
    }))
}

/// The file of an executable mapping, as a hook has it.
#[derive(Clone, Copy)]
enum Mapped {
    /// The descriptor `mmap` was given (the tracepoint).
    Descriptor(u32),
    /// The file itself (BPF LSM's `mmap_file`).
    File(*const u8),
    /// The area `mprotect` makes executable (BPF LSM's `file_mprotect`).
    Area(*const u8),
}

/// An executable mapping, with `exec_block_loader` (bans) or
/// `exec_trusted_only` (trust): the dynamic loader maps the program it
/// runs, which is never exec'd itself. `None` for anonymous memory.
#[inline(always)]
fn judge_mapping(image: LiveImage<'_>, mapped: Mapped, method: ExecMethod) -> Option<Action> {
    let generation = Generation::new(&image);
    if generation.exec_options().ok()? & (options::BLOCK_LOADER | options::TRUSTED_ONLY) == 0 {
        return None;
    }
    let offsets = exec_offsets();
    let file = match mapped {
        Mapped::Descriptor(fd) => file_of(&offsets, fd),
        Mapped::File(file) => Ok(file),
        Mapped::Area(area) => read_ptr(area, offsets.vma_file),
    };
    let found = match file {
        Ok(file) if file.is_null() => return None,
        Ok(file) => mapped_file(&generation, &offsets, file),
        Err(fault) => Err(fault),
    };
    act(&generation, &offsets, found, method, core::ptr::null())
}

/// What a mapping of `file` reports: a ban, or a file trust refuses.
/// Allows and audit rules would speak for every library a process maps.
#[inline(always)]
fn mapped_file(
    generation: &Generation<'_, LiveImage<'_>>,
    offsets: &ExecOffsets,
    file: *const u8,
) -> Result<Option<Found>, Fault> {
    let found = decide::<true>(generation, offsets, file, JudgedAs::Mapping)?;
    Ok(found
        .filter(|found| found.decision.action() == Action::Block || found.untrusted.is_some())
        .map(|found| Found {
            trigger: Trigger::Mapping,
            ..found
        }))
}

/// Counts and reports a judgement; `bprm` is null for a mapping.
#[inline(always)]
fn act(
    generation: &Generation<'_, LiveImage<'_>>,
    offsets: &ExecOffsets,
    found: Result<Option<Found>, Fault>,
    method: ExecMethod,
    bprm: *const u8,
) -> Option<Action> {
    match found {
        Ok(Some(found)) => {
            let action = found.decision.action();
            match action {
                Action::Allow => count(Counter::ExecAllowed),
                Action::Block => count(Counter::ExecBlocked),
                Action::Audit => count(Counter::ExecAudited),
                Action::None => return None,
            }
            let generation_number = generation.number().unwrap_or(0);
            let rule = if found.untrusted.is_some() {
                TRUSTED_ONLY_RULE
            } else {
                found.decision.rule()
            };
            hit(generation_number, rule, action);
            if action != Action::Allow {
                report(offsets, bprm, &found, generation_number, method);
            }
            Some(action)
        }
        Ok(None) => None,
        Err(Fault) => {
            count(Counter::LookupFaults);
            None
        }
    }
}

/// The open file behind descriptor `fd` of the current process.
#[inline(always)]
fn file_of(offsets: &ExecOffsets, fd: u32) -> Result<*const u8, Fault> {
    // SAFETY: a helper without arguments.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let files = read_ptr(task, offsets.task_files)?;
    let table = read_ptr(files, offsets.files_fdt)?;
    let max_fds: u32 = read(table, offsets.fdtable_max_fds)?;
    if fd >= max_fds {
        return Err(Fault);
    }
    let slots = read_ptr(table, offsets.fdtable_fd)?;
    read_ptr(slots.wrapping_add(fd as usize * size_of::<usize>()), 0)
}

/// The executable and what the policy says of it.
struct Found {
    decision: Decision,
    dev: u32,
    ino: u64,
    dentry: *const u8,
    trigger: Trigger,
    /// Set when `exec_trusted_only` decided: the check the file failed.
    untrusted: Option<Untrusted>,
}

/// `NAMES`: whether the file's name is judged too. Without it the program
/// holds none of the name hashing (see the module's note on 5.10).
#[inline(always)]
fn decide<const NAMES: bool>(
    generation: &Generation<'_, LiveImage<'_>>,
    offsets: &ExecOffsets,
    file: *const u8,
    judged_as: JudgedAs,
) -> Result<Option<Found>, Fault> {
    let has_files = generation.has_exec_files()?;
    let has_directories = generation.has_exec_directories()?;
    let has_names = NAMES && generation.has_exec_names()?;
    let exec_options = match judged_as {
        JudgedAs::Exec => generation.exec_options()?,
        // A file mapped without a name is how a runtime's JIT keeps its
        // code apart from its data (.NET, libffi): only trust, which
        // refuses every file without a name, judges such a mapping.
        JudgedAs::Mapping => generation.exec_options()? & !options::BLOCK_ANONYMOUS,
    };
    let block_anonymous = exec_options & options::BLOCK_ANONYMOUS != 0;
    // Only with names: the walk runs with `bpf_loop`, which the by-file
    // variants, for kernels older than 5.12, may not hold.
    let trusted_only = NAMES && exec_options & options::TRUSTED_ONLY != 0;
    if !has_files && !has_directories && !has_names && !block_anonymous && !trusted_only {
        return Ok(None);
    }
    let inode = read_ptr(file, offsets.file_inode)?;
    let ino: u64 = read(inode, offsets.inode_ino)?;
    let super_block = read_ptr(inode, offsets.inode_sb)?;
    let dev: u32 = read(super_block, offsets.sb_dev)?;
    let dentry = read_ptr(file, offsets.file_dentry)?;
    // Every entry that covers the file counts, as for networks: an allow
    // wins wherever it is, then a block, then an audit; between equals the
    // nearest (the file, then the directories upward, then the name) names
    // the verdict.
    let mut decision = if has_files {
        generation.exec_file(dev, ino)?
    } else {
        Decision::NONE
    };
    if has_directories && decision.action() != Action::Allow {
        decision = strongest_directory(generation, offsets, dev, dentry, decision)?;
    }
    if has_names && decision.action() != Action::Allow {
        if let Some(hash) = name_hash(read_ptr(dentry, offsets.dentry_name)?)? {
            let by_name = generation.exec_name(hash)?;
            if by_name.outranks(decision) {
                decision = by_name;
            }
        }
    }
    // A ban or an allow decides before trust: bans hold inside what is
    // trusted, and an allow is how an administrator trusts a file.
    let decided = matches!(decision.action(), Action::Block | Action::Allow);
    if trusted_only
        && !decided
        && let Some(untrusted) = distrust(offsets, exec_options, inode, super_block, dentry)?
    {
        let action = if exec_options & options::TRUST_AUDIT != 0 {
            Action::Audit
        } else {
            Action::Block
        };
        return Ok(Some(Found {
            decision: Decision::new(action, OPTIONS_RULE),
            dev,
            ino,
            dentry,
            trigger: Trigger::Exec,
            untrusted: Some(untrusted),
        }));
    }
    if decision != Decision::NONE {
        return Ok(Some(Found {
            decision,
            dev,
            ino,
            dentry,
            trigger: Trigger::Exec,
            untrusted: None,
        }));
    }
    // A file with no name anywhere cannot be listed by path and its
    // content is never watched: memfd, O_TMPFILE, deleted files.
    if block_anonymous && read::<u32>(inode, offsets.inode_nlink)? == 0 {
        let decision = Decision::new(Action::Block, OPTIONS_RULE);
        return Ok(Some(Found {
            decision,
            dev,
            ino,
            dentry,
            trigger: Trigger::Anonymous,
            untrusted: None,
        }));
    }
    Ok(None)
}

/// What a file is opened for.
#[derive(Clone, Copy)]
enum JudgedAs {
    Exec,
    /// An executable mapping: bans (`exec_block_loader`) and trust.
    Mapping,
}

/// Walks up the file's directories, within its filesystem, keeping the
/// strongest decision; stops early at an allow.
#[inline(always)]
fn strongest_directory(
    generation: &Generation<'_, LiveImage<'_>>,
    offsets: &ExecOffsets,
    dev: u32,
    mut dentry: *const u8,
    mut decision: Decision,
) -> Result<Decision, Fault> {
    for _ in 0..MAX_DIRECTORY_DEPTH {
        let parent = read_ptr(dentry, offsets.dentry_parent)?;
        if parent == dentry {
            break;
        }
        let inode = read_ptr(parent, offsets.dentry_inode)?;
        let ino: u64 = read(inode, offsets.inode_ino)?;
        let found = generation.exec_directory(dev, ino)?;
        if found.outranks(decision) {
            decision = found;
            if decision.action() == Action::Allow {
                break;
            }
        }
        dentry = parent;
    }
    Ok(decision)
}

/// The hash of a file name; `None` when every name buffer of this CPU is
/// in use, which takes four runs interrupted or preempted on one CPU at
/// once: the exec is then judged by its file and directories alone.
#[inline(always)]
fn name_hash(name: *const u8) -> Result<Option<u64>, Fault> {
    // Claimed, not shared: an exec preempted while hashing would otherwise
    // find its buffer overwritten by another exec on the same CPU, and be
    // judged by that file's name.
    let Some(mut buffer) = Claimed::name_buffer() else {
        count(Counter::BuffersBusy);
        return Ok(None);
    };
    // SAFETY: reads kernel memory through the helper, which checks it.
    let name =
        unsafe { bpf_probe_read_kernel_str_bytes(name, buffer.get()) }.map_err(|_| Fault)?;
    let mut hash = NAME_HASH_SEED;
    for &byte in name.iter().take(MAX_NAME_LEN) {
        hash = name_hash_step(hash, byte);
    }
    Ok(Some(hash))
}

#[inline(always)]
fn report(
    offsets: &ExecOffsets,
    bprm: *const u8,
    found: &Found,
    generation: u64,
    method: ExecMethod,
) {
    let Some(mut record) = ring::reserve::<ExecEvent>() else {
        return;
    };
    let event = record.body().as_mut_ptr();
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    // SAFETY: `event` points at a reserved record of the right size; every
    // field is written before submit, the buffers by the helpers below.
    unsafe {
        (*event).boot_ns = bpf_ktime_get_boot_ns();
        (*event).cgroup_id = bpf_get_current_cgroup_id();
        (*event).generation = generation;
        (*event).ino = found.ino;
        (*event).dev = found.dev;
        (*event).rule = found.decision.rule();
        (*event).pid = (pid_tgid >> 32) as u32;
        (*event).tid = pid_tgid as u32;
        (*event).ppid = parent_tgid(offsets).unwrap_or(0);
        (*event).uid = uid_gid as u32;
        (*event).gid = (uid_gid >> 32) as u32;
        (*event).verdict = found.decision.action() as u32;
        (*event).method = method as u8;
        (*event).trigger = found.trigger as u8;
        (*event).untrusted = found.untrusted.map_or(0, |untrusted| untrusted as u8);
        (*event)._reserved = [0; 3];
        (*event).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        (*event).filename[0] = 0;
        if !bprm.is_null()
            && let Ok(filename) = read_ptr(bprm, offsets.binprm_filename)
        {
            let _ = bpf_probe_read_kernel_str_bytes(filename, &mut (*event).filename);
        }
        let (components, truncated) = write_path(offsets, found.dentry, &mut (*event).path);
        (*event).path_components = components;
        (*event).path_truncated = truncated as u8;
    }
    record.submit();
}

/// Copies dentry names from the leaf up, each NUL-terminated, until the
/// filesystem's root or the buffer's limit. Returns (components, truncated).
#[inline(always)]
fn write_path(offsets: &ExecOffsets, mut dentry: *const u8, path: &mut [u8]) -> (u8, bool) {
    let mut at = 0usize;
    let mut components = 0u8;
    for _ in 0..MAX_PATH_COMPONENTS {
        let Ok(name) = read_ptr(dentry, offsets.dentry_name) else {
            return (components, true);
        };
        if at >= EVENT_PATH_START_LIMIT {
            return (components, true);
        }
        // The mask and the fixed length let the verifier bound the write.
        let start = at & (EVENT_PATH_START_LIMIT - 1);
        let Some(window) = path.get_mut(start..start + PATH_COMPONENT_MAX) else {
            return (components, true);
        };
        // SAFETY: the helper checks the kernel read and bounds the write.
        match unsafe { bpf_probe_read_kernel_str_bytes(name, window) } {
            Ok(copied) => at = start + copied.len() + 1,
            Err(_) => return (components, true),
        }
        components += 1;
        let Ok(parent) = read_ptr(dentry, offsets.dentry_parent) else {
            return (components, true);
        };
        if parent == dentry {
            return (components, false);
        }
        dentry = parent;
    }
    (components, true)
}

#[inline(always)]
fn parent_tgid(offsets: &ExecOffsets) -> Result<u32, Fault> {
    // SAFETY: a helper without arguments.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let parent = read_ptr(task, offsets.task_real_parent)?;
    read(parent, offsets.task_tgid)
}
