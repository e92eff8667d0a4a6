//! The `#!` script an exec ran, for the signal method.
//!
//! `sched_process_exec` fires once the new image is the interpreter's:
//! the kernel has handed the exec from the script to its interpreter and
//! let go of the script's file. Its last reference is dropped by a task
//! work, which runs on the way back to user space; until then the file
//! waits on the task's list of pending works, behind the work function
//! `____fput`, opened for exec. The one nearest the end of the list was
//! let go first: the script the caller ran. A script that is another
//! script's interpreter is judged as its argument would be (see README,
//! Limits).
//!
//! The script is judged by a program of its own, which the exec hook's
//! variant tail-calls once the new image's file is judged and not banned:
//! the judgement inline twice took the hook past 500,000 verified
//! instructions, as the second followed every state the first left.

use aya_ebpf::helpers::bpf_get_current_task;
use enforcer_common::{
    exec::ExecOffsets,
    lookup::Fault,
    repeat::{Repeat, Step},
};

use crate::{
    kernel::{read, read_ptr},
    repeat::BpfLoop,
};

/// `__FMODE_EXEC`: the open flag of a file exec opened, which `open(2)`
/// cannot set.
const OPENED_BY_EXEC: u32 = 1 << 5;

/// The walk's bound: past `fs.nr_open`'s ceiling (1 << 20), so that even
/// a process that closes every descriptor it may hold on exec cannot
/// push the script's work beyond it.
const PENDING_WORKS_LIMIT: u32 = 1 << 21;

/// The file of the script this exec ran, if it ran one and the kernel's
/// symbols showed where to look.
#[inline(always)]
pub(super) fn script_of(offsets: &ExecOffsets, bprm: *const u8) -> Result<Option<*const u8>, Fault> {
    if offsets.put_work_function == 0 {
        return Ok(None);
    }
    // A binary format that hands the exec on names the interpreter in
    // `interp`, which is the file name until then: most execs walk
    // nothing.
    if read_ptr(bprm, offsets.binprm_interp)? == read_ptr(bprm, offsets.binprm_filename)? {
        return Ok(None);
    }
    // SAFETY: a helper without arguments.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let mut walk = PendingWorks {
        offsets,
        work: read_ptr(task, offsets.task_works)?,
        script: core::ptr::null(),
        faulted: false,
    };
    BpfLoop.repeat(PENDING_WORKS_LIMIT, &mut walk);
    if walk.faulted {
        return Err(Fault);
    }
    Ok((!walk.script.is_null()).then_some(walk.script))
}

struct PendingWorks<'a> {
    offsets: &'a ExecOffsets,
    work: *const u8,
    /// The last file opened by exec that the walk has passed.
    script: *const u8,
    faulted: bool,
}

impl PendingWorks<'_> {
    /// Notes the file of `work` if it is one exec let go; the next work.
    fn visit(&mut self) -> Result<*const u8, Fault> {
        let offsets = self.offsets;
        let function: u64 = read(self.work, offsets.callback_func)?;
        if function == offsets.put_work_function {
            let file = self.work.wrapping_sub(offsets.file_put_work as usize);
            if read::<u32>(file, offsets.file_flags)? & OPENED_BY_EXEC != 0 {
                self.script = file;
            }
        }
        read_ptr(self.work, offsets.callback_next)
    }
}

impl Step for PendingWorks<'_> {
    fn step(&mut self, _index: u32) -> bool {
        if self.work.is_null() {
            return false;
        }
        match self.visit() {
            Ok(next) => {
                self.work = next;
                true
            }
            Err(Fault) => {
                self.faulted = true;
                false
            }
        }
    }
}
