//! Bounded loops whose bodies the verifier checks once.
//!
//! The verifier walks a plain loop one iteration at a time, so a name
//! parser of a few hundred steps, run for each of several names in a
//! message, exceeds its budget of a million instructions. The kernel's
//! `bpf_loop` helper calls a callback up to a fixed number of times, and
//! the verifier checks the callback on its own. The parsers are therefore
//! written as steps: the kernel programs repeat them with `bpf_loop`, and
//! userspace (the tests, the fuzz target) with [`Plain`], so both run the
//! same step code.

/// One iteration of a bounded loop, with the loop's state in `self`.
///
/// The verifier checks a step until the state it starts from repeats. A
/// counter kept in the state and compared with a constant never repeats,
/// so a step that needs to know which iteration it is uses `index`, which
/// the verifier treats as unknown.
pub trait Step {
    /// Does iteration `index` (from 0); `false` ends the loop.
    fn step(&mut self, index: u32) -> bool;
}

/// A way to run a [`Step`] up to a number of times.
///
/// The verifier stops checking a step once the state it starts from is
/// one it has seen before, forgetting the exact value of any number the
/// program's safety does not depend on. A number it knows exactly (a
/// constant start) and compares with anything stays exact, so every
/// iteration looks new. Loop state therefore starts from [`Repeat::opaque`]
/// values.
///
/// Kernels before 6.7 also verify a `bpf_loop` callback as if it ran
/// once. A count the steps raise then looks like at most 1 to the code
/// after the loop, which the verifier cuts as dead where it tests for
/// more. So a count a loop leaves behind is read through
/// [`Repeat::opaque`] too.
pub trait Repeat: Copy {
    /// Runs `state`'s step up to `times` times, until it returns `false`.
    fn repeat<S: Step>(&self, times: u32, state: &mut S);

    /// `value`, in a form whose value the verifier does not know.
    fn opaque(&self, value: usize) -> usize;
}

/// A plain `for` loop, for userspace.
#[derive(Clone, Copy)]
pub struct Plain;

impl Repeat for Plain {
    fn repeat<S: Step>(&self, times: u32, state: &mut S) {
        for index in 0..times {
            if !state.step(index) {
                break;
            }
        }
    }

    fn opaque(&self, value: usize) -> usize {
        value
    }
}
