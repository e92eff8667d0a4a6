//! Runs the shared parsers' steps with the `bpf_loop` helper (Linux 5.17),
//! so the verifier checks each step once (see `enforcer_common::repeat`).

use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_loop;
use enforcer_common::repeat::{Repeat, Step};

#[derive(Clone, Copy)]
pub(crate) struct BpfLoop;

impl Repeat for BpfLoop {
    #[inline(always)]
    fn repeat<S: Step>(&self, times: u32, state: &mut S) {
        // SAFETY: the callback gets back the pointer it is given here, to
        // a state that outlives the call.
        unsafe {
            bpf_loop(
                times,
                step_once::<S> as *mut c_void,
                (state as *mut S).cast(),
                0,
            );
        }
    }

    #[inline(always)]
    fn opaque(&self, value: usize) -> usize {
        // SAFETY: a read of a plain global nobody writes.
        value + unsafe { core::ptr::read_volatile(&raw const OPAQUE_ZERO) }
    }
}

/// Zero, in writable global data: the verifier does not know what such
/// memory holds (see `Repeat::opaque`). Nothing writes it.
#[unsafe(no_mangle)]
static mut OPAQUE_ZERO: usize = 0;

/// The callback: 0 goes on, 1 stops.
extern "C" fn step_once<S: Step>(index: u64, state: *mut c_void) -> i64 {
    // SAFETY: `repeat` passes a valid, exclusive `*mut S`.
    let state = unsafe { &mut *state.cast::<S>() };
    if state.step(index as u32) { 0 } else { 1 }
}
