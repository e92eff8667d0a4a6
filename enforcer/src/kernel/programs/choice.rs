//! The families an administrator insists on, and those a test has the
//! loader treat as refused.

use std::collections::BTreeSet;

use crate::kernel::{family::Family, programs::refusal::Refusal};

/// Which families the administrator insists on, and which a test makes
/// this loader treat as refused by the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilyChoice {
    /// Each must load, or the start fails before anything is attached.
    /// Each is loaded at start, even if the first policy does not need it.
    pub require: BTreeSet<Family>,
    /// Test hook (`run --refuse-family`): these are not offered to the
    /// kernel, and report [`Refusal::TestHook`].
    pub refuse: BTreeSet<Family>,
}

impl FamilyChoice {
    /// The refusal of the test hook, if it names `family`.
    pub fn refused(&self, family: Family) -> Result<(), Refusal> {
        if self.refuse.contains(&family) {
            Err(Refusal::TestHook)
        } else {
            Ok(())
        }
    }
}
