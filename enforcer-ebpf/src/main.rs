//! The enforcer's kernel programs. They only look up the generation image
//! that userspace compiled, apply the decision and report it: all parsing,
//! validation and compilation of policy happens in userspace.
//!
//! What the programs tell userspace goes two ways: typed records in the
//! events ring buffer (`ring`, decoded by kind in the daemon's `events`),
//! and per-CPU counters (`counters`) for everything else worth knowing:
//! faults, unreadable packets, busy buffers, dropped records. There is no
//! aya-log. Each of its calls expands in place into code that copies every
//! argument, tagged, into a buffer and sends it: code the verifier follows
//! on every path through the call, in programs whose verified instructions
//! are budgeted and, for the packet programs, whose 512-byte stack is
//! already shared out with care (see `STACK` in `skb`).
//! Its text lines would say again, untyped, what a record says, and it
//! would need a map, a userspace reader and a guarded object of its own.
#![no_std]
#![no_main]
// For the atomic or and and of `maps::Claims`, which `core` does not
// offer on this target.
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod counters;
mod exec;
mod guard;
mod headers;
mod kernel;
mod maps;
mod repeat;
mod report;
mod ring;
mod skb;
mod sock_addr;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that could reach here, so this never runs.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
