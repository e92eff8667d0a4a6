//! The per-CPU counters userspace sums (see `enforcer_common::counters`).

use aya_ebpf::{btf_maps::PerCpuArray, macros::btf_map};
use enforcer_common::counters::{COUNTERS_LEN, Counter};

#[btf_map]
pub(crate) static COUNTERS: PerCpuArray<u64, { COUNTERS_LEN as usize }> = PerCpuArray::new();

#[inline(always)]
pub(crate) fn count(counter: Counter) {
    if let Some(value) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: a per-CPU slot, touched only by this CPU with preemption
        // off for the program's run.
        unsafe { *value += 1 };
    }
}
