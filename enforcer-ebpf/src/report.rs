//! Counting and reporting verdicts.

use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
    bpf_get_current_uid_gid, bpf_ktime_get_boot_ns,
};
use enforcer_common::{counters::Counter, event::NetEvent};

use crate::maps::{COUNTERS, EVENTS};

#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(value) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: a per-CPU slot, touched only by this CPU with preemption
        // off for the program's run.
        unsafe { *value += 1 };
    }
}

/// The destination and the verdict; the reporter adds who asked.
pub struct Verdict {
    pub generation: u64,
    pub rule: u32,
    pub action: u32,
    pub daddr: [u8; 16],
    pub dport: u16,
    pub hook: u8,
    pub family: u8,
    pub protocol: u8,
}

/// Puts the verdict in the ring buffer. A full ring never changes the
/// verdict: the event is dropped and counted.
#[inline(always)]
pub fn report(verdict: Verdict) {
    let Some(mut entry) = EVENTS.reserve(0) else {
        count(Counter::EventsDropped);
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    entry.write(NetEvent {
        // SAFETY: helpers without arguments, allowed in every program type
        // that reports.
        boot_ns: unsafe { bpf_ktime_get_boot_ns() },
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        generation: verdict.generation,
        rule: verdict.rule,
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        verdict: verdict.action,
        daddr: verdict.daddr,
        dport: verdict.dport,
        hook: verdict.hook,
        family: verdict.family,
        protocol: verdict.protocol,
        _reserved: [0; 3],
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    });
    entry.submit(0);
}
