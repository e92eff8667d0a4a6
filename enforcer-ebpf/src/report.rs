//! Reporting verdicts.

use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
    bpf_get_current_uid_gid, bpf_ktime_get_boot_ns,
};
use enforcer_common::{
    dns::Learned,
    domain::{DomainMatch, NAME_BYTES, Name},
    event::{DomainEvent, DomainEventKind, FAMILY_V4, FAMILY_V6, NetEvent, Source},
};

use crate::{headers::Headers, kernel::current_task_ids, ring};

/// The destination and the verdict; the reporter adds who asked.
pub(crate) struct Verdict {
    pub(crate) generation: u64,
    pub(crate) rule: u32,
    pub(crate) action: u32,
    pub(crate) daddr: [u8; 16],
    pub(crate) dport: u16,
    pub(crate) hook: u8,
    pub(crate) family: u8,
    pub(crate) protocol: u8,
    pub(crate) source: Source,
    pub(crate) domain_slot: u32,
}

/// Puts the verdict in the ring buffer. A full ring never changes the
/// verdict: the event is dropped and counted.
#[inline(always)]
pub(crate) fn report(verdict: Verdict) {
    let Some(mut record) = ring::reserve::<NetEvent>() else {
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    record.body().write(NetEvent {
        // SAFETY: helpers without arguments, allowed in every program type
        // that reports.
        boot_ns: unsafe { bpf_ktime_get_boot_ns() },
        // SAFETY: as above.
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
        source: verdict.source as u8,
        _reserved: [0; 2],
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        domain_slot: verdict.domain_slot,
        _reserved2: 0,
    });
    record.submit();
}

/// A verdict on a name; see `DomainEvent` for the fields. Passed by
/// reference to a function of its own, so that the callers' frames stay
/// small (see `skb::STACK`).
pub(crate) struct NameVerdict<'a> {
    pub(crate) kind: DomainEventKind,
    pub(crate) generation: u64,
    pub(crate) found: &'a DomainMatch,
    pub(crate) packet: &'a Headers,
    pub(crate) name: &'a Name<'a>,
    pub(crate) qtype: u16,
    /// For `Learned`, the address learned; the event reports it instead of
    /// the packet's peer.
    pub(crate) learned: Option<&'a Learned>,
    pub(crate) ttl: u32,
}

/// Puts a name verdict in the ring buffer, dropping and counting it when
/// the ring is full. Events about sent packets name the current process,
/// which is the sender unless the stack sends on its own (a TCP
/// retransmission); received ones name none.
#[inline(never)]
pub(crate) fn report_name(verdict: &NameVerdict<'_>) {
    let Some(mut record) = ring::reserve::<DomainEvent>() else {
        return;
    };
    let packet = verdict.packet;
    let (outgoing, mut address, mut family, port) = match verdict.kind {
        DomainEventKind::Query | DomainEventKind::ServerName => {
            (true, packet.daddr, packet.transport.family, packet.transport.dport)
        }
        DomainEventKind::Answer => (false, packet.saddr, packet.transport.family, packet.transport.sport),
        DomainEventKind::Learned => (false, [0; 16], FAMILY_V4, 0),
    };
    if let Some(learned) = verdict.learned {
        if learned.v4 {
            address[..4].copy_from_slice(&learned.address[12..]);
        } else {
            address = learned.address;
            family = FAMILY_V6;
        }
    }
    let (pid_tgid, comm) = if outgoing {
        current_task_ids()
    } else {
        (0, [0; 16])
    };
    let event = record.body().as_mut_ptr();
    // SAFETY: the reserved record is ours until submitted; each field is
    // written once, in place, because the record is too big for the stack.
    unsafe {
        (*event).boot_ns = bpf_ktime_get_boot_ns();
        (*event).cgroup_id = packet.socket.cgroup_id;
        (*event).generation = verdict.generation;
        (*event).rule = verdict.found.decision.rule();
        (*event).pid = (pid_tgid >> 32) as u32;
        (*event).tid = pid_tgid as u32;
        (*event).uid = packet.socket.uid;
        (*event).gid = 0;
        (*event).verdict = verdict.found.decision.action() as u32;
        (*event).daddr = address;
        (*event).dport = port;
        (*event).kind = verdict.kind as u8;
        (*event).family = family;
        (*event).protocol = packet.transport.protocol;
        (*event)._reserved = 0;
        (*event).qtype = verdict.qtype;
        (*event).ttl = verdict.ttl;
        (*event).name_len = verdict.name.len as u16;
        (*event).domain_start = verdict.found.start() as u16;
        (*event).comm = comm;
        (*event).socket_cookie = packet.socket.cookie;
        (*event).saddr = packet.saddr;
        (*event).sport = packet.transport.sport;
        (*event)._reserved2 = [0; 6];
        core::ptr::copy_nonoverlapping(
            verdict.name.bytes.as_ptr(),
            (*event).name.as_mut_ptr(),
            NAME_BYTES,
        );
    }
    record.submit();
}
