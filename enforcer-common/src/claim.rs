//! Claiming one of a CPU's work slots for one program run.
//!
//! A per-CPU buffer is not private to one run. A packet program running in
//! process context can be interrupted by a softirq that runs a packet
//! program too (an incoming packet, a timer's retransmit), or preempted by
//! a task whose own packet then runs on the same CPU. With one buffer the
//! later run overwrites what the earlier one copied, and the earlier one
//! judges a packet that is not its own. So each run claims a slot of its
//! own, by setting its bit in a per-CPU word with one atomic
//! read-modify-write, which neither an interrupt nor a preemption can
//! split.

/// A word that is changed only by atomic read-modify-writes.
pub trait ClaimWord {
    /// Sets `bits`, returning the word before.
    fn fetch_or(&self, bits: u64) -> u64;
    /// Keeps only `bits`, returning the word before.
    fn fetch_and(&self, bits: u64) -> u64;
}

/// Claims the first free slot of `slots` (at most 64) in `claims`, where
/// bit `n` is set while slot `n` is in use. `None` when all are in use.
#[inline(always)]
pub fn claim(claims: &impl ClaimWord, slots: u32) -> Option<u32> {
    (0..slots.min(u64::BITS)).find(|&slot| {
        let bit = 1u64 << slot;
        claims.fetch_or(bit) & bit == 0
    })
}

/// Gives back a slot that [`claim`] returned.
#[inline(always)]
pub fn release(claims: &impl ClaimWord, slot: u32) {
    claims.fetch_and(!(1u64 << slot));
}

#[cfg(test)]
mod tests {
    use core::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    impl ClaimWord for AtomicU64 {
        fn fetch_or(&self, bits: u64) -> u64 {
            self.fetch_or(bits, Ordering::AcqRel)
        }

        fn fetch_and(&self, bits: u64) -> u64 {
            self.fetch_and(bits, Ordering::AcqRel)
        }
    }

    #[test]
    fn each_claim_gets_a_free_slot_until_none_is_left() {
        let claims = AtomicU64::new(0);
        assert_eq!(claim(&claims, 3), Some(0));
        assert_eq!(claim(&claims, 3), Some(1));
        assert_eq!(claim(&claims, 3), Some(2));
        assert_eq!(claim(&claims, 3), None);
        assert_eq!(claims.load(Ordering::Relaxed), 0b111);
    }

    #[test]
    fn a_released_slot_is_claimed_again_and_the_others_stay_held() {
        let claims = AtomicU64::new(0);
        for _ in 0..4 {
            claim(&claims, 4);
        }
        release(&claims, 2);
        assert_eq!(claims.load(Ordering::Relaxed), 0b1011);
        assert_eq!(claim(&claims, 4), Some(2));
        assert_eq!(claim(&claims, 4), None);
    }

    #[test]
    fn a_claim_that_finds_no_slot_changes_nothing() {
        let claims = AtomicU64::new(0b11);
        assert_eq!(claim(&claims, 2), None);
        assert_eq!(claims.load(Ordering::Relaxed), 0b11);
    }
}
