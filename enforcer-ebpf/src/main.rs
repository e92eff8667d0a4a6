//! The enforcer's kernel programs. They only look up the generation image
//! that userspace compiled, apply the decision and report it: all parsing,
//! validation and compilation of policy happens in userspace.
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
