//! cgroup socket-address hooks: `connect()` and unconnected `sendmsg()` for
//! IPv4 and IPv6. Each hook reads the destination and hands it to the
//! shared lookup; an IPv4-mapped IPv6 destination is judged as IPv4.

use aya_ebpf::{
    helpers::bpf_get_current_uid_gid, macros::cgroup_sock_addr, programs::SockAddrContext,
};
use enforcer_common::{
    counters::Counter,
    decision::Action,
    event::{FAMILY_V4, FAMILY_V6, Hook, Source},
    proto::class_of,
};

use enforcer_common::lookup::{Fault, Generation};

use crate::{
    maps::LiveImage,
    counters::{count, hit},
    report::{Verdict, report},
    skb::learned_decision,
};

/// What a cgroup socket-address program returns.
const REFUSE: i32 = 0;
const PASS: i32 = 1;

#[cgroup_sock_addr(connect4)]
pub(crate) fn connect4(ctx: SockAddrContext) -> i32 {
    judge_v4(&ctx, Hook::Connect4)
}

#[cgroup_sock_addr(sendmsg4)]
pub(crate) fn sendmsg4(ctx: SockAddrContext) -> i32 {
    judge_v4(&ctx, Hook::Sendmsg4)
}

#[cgroup_sock_addr(connect6)]
pub(crate) fn connect6(ctx: SockAddrContext) -> i32 {
    judge_v6(&ctx, Hook::Connect6)
}

#[cgroup_sock_addr(sendmsg6)]
pub(crate) fn sendmsg6(ctx: SockAddrContext) -> i32 {
    judge_v6(&ctx, Hook::Sendmsg6)
}

/// A destination as the socket hook sees it, in network byte order.
struct Destination {
    words: [u32; 4],
    family: u8,
    port: u16,
    protocol: u32,
}

impl Destination {
    /// The key of the learned-address map: IPv6, IPv4 mapped.
    #[inline(always)]
    fn learned_key(&self) -> [u8; 16] {
        let mut key = [0u8; 16];
        if self.family == FAMILY_V4 {
            key[10] = 0xff;
            key[11] = 0xff;
            key[12..].copy_from_slice(&self.words[0].to_ne_bytes());
        } else {
            for (chunk, word) in key.chunks_exact_mut(4).zip(self.words) {
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
        }
        key
    }
}

#[inline(always)]
fn judge_v4(ctx: &SockAddrContext, hook: Hook) -> i32 {
    // SAFETY: the verifier checks every context access of this program type.
    let (ip, port, protocol) = unsafe {
        let sa = &*ctx.sock_addr;
        (sa.user_ip4, sa.user_port, sa.protocol)
    };
    judge(
        Destination {
            words: [ip, 0, 0, 0],
            family: FAMILY_V4,
            port: u16::from_be(port as u16),
            protocol,
        },
        hook,
    )
}

#[inline(always)]
fn judge_v6(ctx: &SockAddrContext, hook: Hook) -> i32 {
    // SAFETY: as above; `user_ip6` must be read one word at a time.
    let (words, port, protocol) = unsafe {
        let sa = &*ctx.sock_addr;
        (
            [
                sa.user_ip6[0],
                sa.user_ip6[1],
                sa.user_ip6[2],
                sa.user_ip6[3],
            ],
            sa.user_port,
            sa.protocol,
        )
    };
    let port = u16::from_be(port as u16);
    let v4_mapped = words[0] == 0 && words[1] == 0 && u32::from_be(words[2]) == 0xffff;
    let destination = if v4_mapped {
        Destination {
            words: [words[3], 0, 0, 0],
            family: FAMILY_V4,
            port,
            protocol,
        }
    } else {
        Destination {
            words,
            family: FAMILY_V6,
            port,
            protocol,
        }
    };
    judge(destination, hook)
}

#[inline(always)]
fn judge(destination: Destination, hook: Hook) -> i32 {
    match decide(&destination, hook) {
        Ok(true) => PASS,
        Ok(false) => REFUSE,
        Err(Fault) => {
            count(Counter::LookupFaults);
            PASS
        }
    }
}

/// The uid of the process that connects or sends: learned addresses that
/// bind it alone are checked for it.
#[inline(always)]
fn current_uid() -> u32 {
    // The low half is the uid.
    bpf_get_current_uid_gid() as u32
}

/// `Ok(true)` lets the traffic through.
#[inline(always)]
fn decide(destination: &Destination, hook: Hook) -> Result<bool, Fault> {
    let Some(image) = LiveImage::get() else {
        // No policy applied yet.
        return Ok(true);
    };
    let generation = Generation::new(&image);
    let words = destination.words;
    let class = if destination.family == FAMILY_V4 {
        generation.v4_class(u32::from_be(words[0]))?
    } else {
        let high = ((u32::from_be(words[0]) as u64) << 32) | u32::from_be(words[1]) as u64;
        let low = ((u32::from_be(words[2]) as u64) << 32) | u32::from_be(words[3]) as u64;
        generation.v6_class(high, low)?
    };
    let mut decision =
        generation.decision(class, class_of(destination.protocol), destination.port)?;
    let mut source = Source::Cidr;
    let mut domain_slot = 0;
    if decision.action() != Action::Allow
        && generation.has_domains()?
        && let Some(learned) =
            learned_decision(&generation, &destination.learned_key(), current_uid())?
        && learned.decision.outranks(decision)
    {
        decision = learned.decision;
        source = Source::Learned;
        domain_slot = learned.slot;
    }
    let action = decision.action();
    let pass = match action {
        Action::None => return Ok(true),
        Action::Allow => {
            count(Counter::Allowed);
            true
        }
        Action::Block => {
            count(Counter::Blocked);
            false
        }
        Action::Audit => {
            count(Counter::Audited);
            true
        }
    };
    let number = generation.number()?;
    hit(number, decision.rule(), action);
    if action == Action::Allow {
        // Counted, not reported: an allow is the traffic the policy wants.
        return Ok(true);
    }
    let mut daddr = [0u8; 16];
    for (chunk, word) in daddr.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    report(Verdict {
        generation: number,
        rule: decision.rule(),
        action: action as u32,
        daddr,
        dport: destination.port,
        hook: hook as u8,
        family: destination.family,
        protocol: destination.protocol as u8,
        source,
        domain_slot,
    });
    Ok(pass)
}
