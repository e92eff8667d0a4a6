//! Hit counts per rule: how many verdicts each rule decided, by action.
//!
//! The programs count into a per-CPU hash map keyed by generation number,
//! rule index and action. Keyed by generation, a count can never land on
//! the rule of another policy that reuses the index: the daemon names a
//! key's rule from that generation's rule table, folds the counts of a
//! generation into totals by rule name once it has been replaced (the
//! switch returns only when no program still runs on the old image), and
//! deletes its keys, so the map holds little more than the live
//! generation's rules.
//!
//! A hit that finds the map full is not counted there but in
//! [`crate::counters::Counter::HitsUncounted`]; the verdict never changes.

use crate::decision::{Action, MAX_RULES};

/// Keys the map holds at once: a (rule, action) pair of the live
/// generation that was hit, and of the one before it until the daemon has
/// folded it. A policy's rules each take one action, so this is the number
/// of distinct rules that can be hit per generation.
pub const RULE_HITS_CAPACITY: u32 = 8_192;

/// The rule index of a hit the exec hooks count for `exec_trusted_only`.
/// Their events tell the two options apart by their `untrusted` field, a
/// key by its rule: [`crate::exec::OPTIONS_RULE`] is `exec_block_anonymous`.
pub const TRUSTED_ONLY_RULE: u32 = MAX_RULES + 1;

/// Which rule decided, in which generation, and how.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleHitKey {
    /// The generation number the image carried.
    pub generation: u64,
    /// The rule's index in that generation, or [`crate::exec::OPTIONS_RULE`]
    /// or [`TRUSTED_ONLY_RULE`] for the exec options.
    pub rule: u32,
    /// An [`Action`]: allow, block or audit.
    pub action: u32,
}

impl RuleHitKey {
    /// The key of a verdict.
    #[inline(always)]
    pub const fn new(generation: u64, rule: u32, action: Action) -> Self {
        Self {
            generation,
            rule,
            action: action as u32,
        }
    }
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<RuleHitKey>() == 16);
    assert!(offset_of!(RuleHitKey, generation) == 0);
    assert!(offset_of!(RuleHitKey, rule) == 8);
    assert!(offset_of!(RuleHitKey, action) == 12);
    // Above every index a rule can have, and apart from the options'.
    assert!(TRUSTED_ONLY_RULE > crate::exec::OPTIONS_RULE);
};

#[cfg(feature = "user")]
// SAFETY: plain old data, every bit pattern valid, no padding (checked above).
unsafe impl aya::Pod for RuleHitKey {}
