//! The exec and mapping hooks' entry points.
//!
//! Each hook is a dispatcher that userspace attaches, and the variants it
//! tail-calls, one per generation slot, as the packet programs do: the
//! verifier follows a program once for each slot an image may be in, so
//! one variant per slot halves what it checks in each program. On Linux
//! 6.1 that is what leaves the exec hooks room for `exec_trusted_only`.

use aya_ebpf::{
    EbpfContext,
    btf_maps::ProgramArray,
    helpers::bpf_send_signal,
    macros::{btf_map, btf_tracepoint, lsm, tracepoint},
    programs::{BtfTracePointContext, LsmContext, TracePointContext},
};
use enforcer_common::{
    counters::Counter,
    decision::Action,
    exec::ExecMethod,
};

use super::{EXEC_SCOPE, Mapped, judge_exec, judge_mapping, judge_script_exec};
use crate::{
    counters::count,
    maps::{AnySizeSlot, ImageSlot, LiveImage, SizedSlot},
};

/// The variants of each dispatcher, by slot. Userspace fills an array
/// before it attaches its dispatcher, and keeps it pinned: the kernel
/// empties a program array when no file holds it.
#[btf_map]
pub(crate) static EXEC_LSM_VARIANTS: ProgramArray<2> = ProgramArray::new();
#[btf_map]
pub(crate) static EXEC_SIGNAL_VARIANTS: ProgramArray<2> = ProgramArray::new();
#[btf_map]
pub(crate) static MAPPING_VARIANTS: ProgramArray<2> = ProgramArray::new();
/// The BPF LSM mapping hooks' variants.
#[btf_map]
pub(crate) static MMAP_FILE_VARIANTS: ProgramArray<2> = ProgramArray::new();
#[btf_map]
pub(crate) static MPROTECT_VARIANTS: ProgramArray<2> = ProgramArray::new();
/// The script judges of the tracepoint's variants that judge names, by
/// slot (see `super::script`).
#[btf_map]
pub(crate) static SCRIPT_VARIANTS: ProgramArray<2> = ProgramArray::new();

const SIGKILL: u32 = 9;
const EPERM: i32 = 1;
const PROT_EXEC: u64 = 4;

#[lsm(hook = "bprm_check_security")]
pub(crate) fn bprm_check_security(ctx: LsmContext) -> i32 {
    if in_scope() {
        dispatch(&ctx, &EXEC_LSM_VARIANTS);
    }
    0
}

#[lsm(hook = "bprm_check_security")]
pub(crate) fn bprm_check_sized(ctx: LsmContext) -> i32 {
    refuse_exec::<SizedSlot, true>(&ctx)
}

#[lsm(hook = "bprm_check_security")]
pub(crate) fn bprm_check_any_size(ctx: LsmContext) -> i32 {
    refuse_exec::<AnySizeSlot, true>(&ctx)
}

#[lsm(hook = "bprm_check_security")]
pub(crate) fn bprm_check_sized_by_file(ctx: LsmContext) -> i32 {
    refuse_exec::<SizedSlot, false>(&ctx)
}

#[lsm(hook = "bprm_check_security")]
pub(crate) fn bprm_check_any_size_by_file(ctx: LsmContext) -> i32 {
    refuse_exec::<AnySizeSlot, false>(&ctx)
}

#[btf_tracepoint(function = "sched_process_exec")]
pub(crate) fn sched_process_exec(ctx: BtfTracePointContext) -> i32 {
    if in_scope() {
        dispatch(&ctx, &EXEC_SIGNAL_VARIANTS);
    }
    0
}

#[btf_tracepoint(function = "sched_process_exec")]
pub(crate) fn sched_exec_sized(ctx: BtfTracePointContext) -> i32 {
    kill_exec::<SizedSlot, true>(&ctx)
}

#[btf_tracepoint(function = "sched_process_exec")]
pub(crate) fn sched_exec_any_size(ctx: BtfTracePointContext) -> i32 {
    kill_exec::<AnySizeSlot, true>(&ctx)
}

#[btf_tracepoint(function = "sched_process_exec")]
pub(crate) fn sched_exec_sized_by_file(ctx: BtfTracePointContext) -> i32 {
    kill_exec::<SizedSlot, false>(&ctx)
}

#[btf_tracepoint(function = "sched_process_exec")]
pub(crate) fn sched_exec_any_size_by_file(ctx: BtfTracePointContext) -> i32 {
    kill_exec::<AnySizeSlot, false>(&ctx)
}

#[btf_tracepoint(function = "sched_process_exec")]
pub(crate) fn sched_script_sized(ctx: BtfTracePointContext) -> i32 {
    kill_script::<SizedSlot>(&ctx)
}

#[btf_tracepoint(function = "sched_process_exec")]
pub(crate) fn sched_script_any_size(ctx: BtfTracePointContext) -> i32 {
    kill_script::<AnySizeSlot>(&ctx)
}

/// `syscalls/sys_enter_mmap`, for `exec_block_loader`.
#[tracepoint]
pub(crate) fn sys_enter_mmap(ctx: TracePointContext) -> u32 {
    if executable_mapping(&ctx).is_some() && in_scope() {
        dispatch(&ctx, &MAPPING_VARIANTS);
    }
    0
}

#[tracepoint]
pub(crate) fn mmap_sized(ctx: TracePointContext) -> u32 {
    kill_mapping::<SizedSlot>(&ctx)
}

#[tracepoint]
pub(crate) fn mmap_any_size(ctx: TracePointContext) -> u32 {
    kill_mapping::<AnySizeSlot>(&ctx)
}

/// Where BPF LSM runs, the mapping hooks refuse the call with EPERM
/// instead of killing the process: `mmap_file` a mapping made executable
/// from the start, `file_mprotect` one made executable later, which the
/// tracepoint does not see.
#[lsm(hook = "mmap_file")]
pub(crate) fn mmap_file(ctx: LsmContext) -> i32 {
    // (file, reqprot, prot, flags)
    let (file, prot): (*const u8, u64) = (ctx.arg(0), ctx.arg(2));
    if !file.is_null() && prot & PROT_EXEC != 0 && in_scope() {
        dispatch(&ctx, &MMAP_FILE_VARIANTS);
    }
    0
}

#[lsm(hook = "mmap_file")]
pub(crate) fn mmap_file_sized(ctx: LsmContext) -> i32 {
    refuse_mapping::<SizedSlot>(&ctx, Mapped::File(ctx.arg(0)), &MMAP_FILE_VARIANTS)
}

#[lsm(hook = "mmap_file")]
pub(crate) fn mmap_file_any_size(ctx: LsmContext) -> i32 {
    refuse_mapping::<AnySizeSlot>(&ctx, Mapped::File(ctx.arg(0)), &MMAP_FILE_VARIANTS)
}

#[lsm(hook = "file_mprotect")]
pub(crate) fn file_mprotect(ctx: LsmContext) -> i32 {
    // (vma, reqprot, prot)
    let prot: u64 = ctx.arg(2);
    if prot & PROT_EXEC != 0 && in_scope() {
        dispatch(&ctx, &MPROTECT_VARIANTS);
    }
    0
}

#[lsm(hook = "file_mprotect")]
pub(crate) fn file_mprotect_sized(ctx: LsmContext) -> i32 {
    refuse_mapping::<SizedSlot>(&ctx, Mapped::Area(ctx.arg(0)), &MPROTECT_VARIANTS)
}

#[lsm(hook = "file_mprotect")]
pub(crate) fn file_mprotect_any_size(ctx: LsmContext) -> i32 {
    refuse_mapping::<AnySizeSlot>(&ctx, Mapped::Area(ctx.arg(0)), &MPROTECT_VARIANTS)
}

/// Exec hooks are global, so they check the scope themselves, as cgroup
/// attachment does for the socket hooks.
#[inline(always)]
fn in_scope() -> bool {
    EXEC_SCOPE.current_task_under_cgroup(0).unwrap_or(false)
}

/// Tail-calls the variant in `variants` for the slot the live image is
/// in. Returns only when there is no image yet, and nothing is listed, or
/// no variant, which userspace never lets happen while a dispatcher is
/// attached: then counted, and the exec or mapping goes unjudged.
#[inline(always)]
fn dispatch<C: EbpfContext>(ctx: &C, variants: &ProgramArray<2>) {
    let Some(image) = LiveImage::get() else {
        return;
    };
    // SAFETY: a tail call with this program's own context.
    unsafe { variants.tail_call(ctx, image.slot_index()) };
    count(Counter::LookupFaults);
}

/// The LSM variant's answer; `NAMES`: whether file names are judged too.
#[inline(always)]
fn refuse_exec<S: ImageSlot, const NAMES: bool>(ctx: &LsmContext) -> i32 {
    // An image that left this slot after the dispatcher chose it moved to
    // the other one: the new slot's variant judges.
    let Some(image) = S::image() else {
        dispatch(ctx, &EXEC_LSM_VARIANTS);
        return 0;
    };
    let bprm: *const u8 = ctx.arg(0);
    match judge_exec::<NAMES>(image, bprm, ExecMethod::Lsm) {
        Some(Action::Block) => -EPERM,
        _ => 0,
    }
}

/// The tracepoint variant's judgement; `NAMES` as for [`refuse_exec`].
#[inline(always)]
fn kill_exec<S: ImageSlot, const NAMES: bool>(ctx: &BtfTracePointContext) -> i32 {
    let Some(image) = S::image() else {
        dispatch(ctx, &EXEC_SIGNAL_VARIANTS);
        return 0;
    };
    let bprm: *const u8 = ctx.arg(2);
    let slot = image.slot_index();
    if judge_exec::<NAMES>(image, bprm, ExecMethod::Signal) == Some(Action::Block) {
        kill_current();
        return 0;
    }
    // Only with names: the script judge walks with `bpf_loop`, which the
    // by-file variants, for kernels before 5.12, may not hold.
    if NAMES {
        // SAFETY: a tail call with this program's own context.
        unsafe { SCRIPT_VARIANTS.tail_call(ctx, slot) };
        count(Counter::LookupFaults);
    }
    0
}

/// The script's judgement, after [`kill_exec`] let its interpreter be.
#[inline(always)]
fn kill_script<S: ImageSlot>(ctx: &BtfTracePointContext) -> i32 {
    let Some(image) = S::image() else {
        dispatch(ctx, &SCRIPT_VARIANTS);
        return 0;
    };
    let bprm: *const u8 = ctx.arg(2);
    if judge_script_exec(image, bprm) == Some(Action::Block) {
        kill_current();
    }
    0
}

#[inline(always)]
fn kill_mapping<S: ImageSlot>(ctx: &TracePointContext) -> u32 {
    let Some(fd) = executable_mapping(ctx) else {
        return 0;
    };
    let Some(image) = S::image() else {
        dispatch(ctx, &MAPPING_VARIANTS);
        return 0;
    };
    if judge_mapping(image, Mapped::Descriptor(fd), ExecMethod::Signal) == Some(Action::Block) {
        kill_current();
    }
    0
}

/// A BPF LSM mapping hook's variant: EPERM for a banned or untrusted file.
#[inline(always)]
fn refuse_mapping<S: ImageSlot>(
    ctx: &LsmContext,
    mapped: Mapped,
    variants: &ProgramArray<2>,
) -> i32 {
    let Some(image) = S::image() else {
        dispatch(ctx, variants);
        return 0;
    };
    match judge_mapping(image, mapped, ExecMethod::Lsm) {
        Some(Action::Block) => -EPERM,
        _ => 0,
    }
}

/// The descriptor of an executable mapping of a file. The syscall
/// tracepoint's record is the common header, the syscall number, then the
/// six arguments as 8-byte words.
#[inline(always)]
fn executable_mapping(ctx: &TracePointContext) -> Option<u32> {
    const PROT_OFFSET: usize = 16 + 2 * 8;
    const FD_OFFSET: usize = 16 + 4 * 8;
    // SAFETY: offsets inside the syscall tracepoint's fixed record.
    let (prot, fd) = unsafe {
        (
            ctx.read_at::<u64>(PROT_OFFSET).ok()?,
            ctx.read_at::<i64>(FD_OFFSET).ok()?,
        )
    };
    (prot & PROT_EXEC != 0 && fd >= 0).then_some(fd as u32)
}

fn kill_current() {
    // SAFETY: a helper allowed in tracing programs; it signals the current
    // task's process.
    unsafe { bpf_send_signal(SIGKILL) };
}
