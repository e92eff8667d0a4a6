//! Reading kernel memory: the struct offsets userspace found in the
//! running kernel's BTF (Rust eBPF has no CO-RE), and the current task.

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};
use enforcer_common::{exec::ExecOffsets, lookup::Fault};

/// Set by userspace from the running kernel's BTF before loading.
#[unsafe(no_mangle)]
static EXEC_OFFSETS: ExecOffsets = ExecOffsets {
    binprm_file: 0,
    binprm_filename: 0,
    file_inode: 0,
    file_dentry: 0,
    inode_ino: 0,
    inode_sb: 0,
    sb_dev: 0,
    dentry_name: 0,
    dentry_parent: 0,
    dentry_inode: 0,
    task_real_parent: 0,
    task_tgid: 0,
    inode_nlink: 0,
    task_files: 0,
    files_fdt: 0,
    fdtable_fd: 0,
    fdtable_max_fds: 0,
    task_pid: 0,
    task_comm: 0,
    inode_uid: 0,
    inode_mode: 0,
    sb_magic: 0,
    sb_user_ns: 0,
    user_ns_level: 0,
    task_works: 0,
    callback_next: 0,
    callback_func: 0,
    file_put_work: 0,
    file_flags: 0,
    binprm_interp: 0,
    vma_file: 0,
    _reserved: 0,
    put_work_function: 0,
};

/// The current task's process and thread ids (as `bpf_get_current_pid_tgid`
/// packs them) and its name, read from the task itself: packet programs
/// cannot call the helpers that tell them on kernels before 6.13 or so
/// (Debian's 6.12 refuses `bpf_get_current_comm` there).
#[inline(always)]
pub(crate) fn current_task_ids() -> (u64, [u8; 16]) {
    let offsets = exec_offsets();
    if offsets.task_comm == 0 {
        // No BTF, no offsets: nothing trustworthy to report.
        return (0, [0; 16]);
    }
    // SAFETY: a helper without arguments.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let tgid = read::<u32>(task, offsets.task_tgid).unwrap_or(0);
    let pid = read::<u32>(task, offsets.task_pid).unwrap_or(0);
    let comm = read::<[u8; 16]>(task, offsets.task_comm).unwrap_or([0; 16]);
    ((u64::from(tgid) << 32) | u64::from(pid), comm)
}

/// The offsets the exec programs read with.
#[inline(always)]
pub(crate) fn exec_offsets() -> ExecOffsets {
    // SAFETY: a global written only by the loader.
    unsafe { core::ptr::read_volatile(&EXEC_OFFSETS) }
}

#[inline(always)]
pub(crate) fn read_ptr(base: *const u8, offset: u32) -> Result<*const u8, Fault> {
    read::<*const u8>(base, offset)
}

#[inline(always)]
pub(crate) fn read<T>(base: *const u8, offset: u32) -> Result<T, Fault> {
    // SAFETY: bpf_probe_read_kernel checks the address and fails cleanly.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize) as *const T) }
        .map_err(|_| Fault)
}
