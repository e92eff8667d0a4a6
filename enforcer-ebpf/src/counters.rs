//! The per-CPU counters userspace sums (see `enforcer_common::counters`),
//! and the hit counts per rule (see `enforcer_common::hits`).

use aya_ebpf::{
    bindings::BPF_ANY,
    btf_maps::{PerCpuArray, PerCpuHashMap},
    macros::btf_map,
};
use enforcer_common::{
    counters::{COUNTERS_LEN, Counter},
    decision::Action,
    hits::{RULE_HITS_CAPACITY, RuleHitKey},
};

#[btf_map]
pub(crate) static COUNTERS: PerCpuArray<u64, { COUNTERS_LEN as usize }> = PerCpuArray::new();

/// Preallocated: the exec tracepoints may not allocate map entries on
/// every kernel, and a hit must not wait for memory.
#[btf_map]
static RULE_HITS: PerCpuHashMap<RuleHitKey, u64, { RULE_HITS_CAPACITY as usize }> =
    PerCpuHashMap::new();

#[inline(always)]
pub(crate) fn count(counter: Counter) {
    if let Some(value) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: a per-CPU slot, touched only by this CPU with preemption
        // off for the program's run.
        unsafe { *value += 1 };
    }
}

/// Counts a verdict of rule `rule` of generation `generation`: the one
/// place every hook counts its hits.
#[inline(always)]
pub(crate) fn hit(generation: u64, rule: u32, action: Action) {
    enforcer_rule_hit(generation, rule, action as u32);
}

/// [`hit`], as a global function (`--export`ed by xtask's build): the
/// verifier checks it once, on its own, and at each call only that its
/// arguments are numbers. Inlined, it carried the three ways out (counted,
/// inserted, map full) through the rest of each judge (egress took 850,000
/// verified instructions, from 102,000, on 6.18); as a static function,
/// followed again from every state a call is reached in, it took Linux
/// 6.1's connect4 to 62,295 and bprm_check_sized to 243,642 (54,964 and
/// 197,804 as it is).
/// Returns 0: Linux 6.1 takes no global function that returns nothing.
#[unsafe(no_mangle)]
#[inline(never)]
pub(crate) extern "C" fn enforcer_rule_hit(generation: u64, rule: u32, action: u32) -> u32 {
    let key = RuleHitKey {
        generation,
        rule,
        action,
    };
    if let Some(value) = RULE_HITS.get_ptr_mut(&key) {
        // SAFETY: as in `count`. The daemon deletes only the keys of
        // generations no program runs on any more.
        unsafe { *value += 1 };
        return 0;
    }
    // The first hit of this key. Another CPU may have inserted it since:
    // an insert from a program writes this CPU's value alone, which was 0,
    // so no count of another CPU is lost.
    if RULE_HITS.insert(&key, 1, BPF_ANY.into()).is_err() {
        count(Counter::HitsUncounted);
    }
    0
}
