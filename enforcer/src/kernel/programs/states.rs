//! Where each family stands on this host, and what status and the
//! `ready` and `degraded` events say of it.

use std::{collections::BTreeSet, fmt};

use crate::kernel::{
    family::{Family, FamilyState, FamilyStatus},
    programs::{error::ProgramsError, refusal::Refusal},
};

/// The state of every family, found by loading its programs.
#[derive(Debug)]
pub(crate) struct FamilyStates([FamilyState<Refusal>; Family::ALL.len()]);

impl FamilyStates {
    pub(crate) fn new(state_of: impl FnMut(Family) -> FamilyState<Refusal>) -> Self {
        Self(Family::ALL.map(state_of))
    }

    pub(crate) fn get(&self, family: Family) -> &FamilyState<Refusal> {
        &self.0[family as usize]
    }

    pub(crate) fn set(&mut self, family: Family, state: FamilyState<Refusal>) {
        self.0[family as usize] = state;
    }

    pub(crate) fn is_enforcing(&self, family: Family) -> bool {
        matches!(self.get(family), FamilyState::Enforcing)
    }

    /// Marks `family` attached, or detached, if it is loaded.
    pub(crate) fn set_attached(&mut self, family: Family, attached: bool) {
        if let FamilyState::Loaded | FamilyState::Enforcing = self.get(family) {
            let state = if attached {
                FamilyState::Enforcing
            } else {
                FamilyState::Loaded
            };
            self.set(family, state);
        }
    }

    /// Every family's state, as a report carries it.
    pub(crate) fn rendered(&self) -> Vec<FamilyStatus> {
        Family::ALL
            .into_iter()
            .map(|family| FamilyStatus {
                family,
                state: self.get(family).rendered(),
            })
            .collect()
    }

    /// The families this kernel refused, with why.
    pub(crate) fn unavailable(&self) -> Vec<(Family, &Refusal)> {
        Family::ALL
            .into_iter()
            .filter_map(|family| Some((family, self.get(family).refusal()?)))
            .collect()
    }

    /// Fails, before anything is attached, for a `required` family this
    /// kernel refused, or when it refused every family that enforces a
    /// policy.
    pub(crate) fn check_enforceable(
        &self,
        required: &BTreeSet<Family>,
    ) -> Result<(), ProgramsError> {
        let refused = self.unavailable();
        if let Some((family, reason)) = refused.iter().find(|(family, _)| required.contains(family))
        {
            return Err(ProgramsError::Required {
                family: *family,
                reason: Box::new((*reason).clone()),
            });
        }
        let refusal = |family| self.get(family).refusal().cloned().map(Box::new);
        if let (Some(network), Some(exec), Some(domains)) = (
            refusal(Family::Network),
            refusal(Family::Exec),
            refusal(Family::Domains),
        ) {
            return Err(ProgramsError::NothingEnforceable {
                network,
                exec,
                domains,
            });
        }
        Ok(())
    }

    /// How `family` enforces, as status and the `ready` event say it:
    /// `how` it runs while loaded, or why it does not.
    pub(crate) fn enforcement(&self, family: Family, how: &'static str) -> Enforcement<'_> {
        match self.get(family) {
            FamilyState::Enforcing | FamilyState::Loaded => Enforcement::Runs(how),
            FamilyState::NotCheckedYet => Enforcement::NotCheckedYet(family),
            FamilyState::Unavailable { reason } => Enforcement::Unavailable(reason),
        }
    }
}

/// How a family enforces: the `exec_enforcement`, `domain_enforcement`
/// and `self_protection` of status and the `ready` event.
#[derive(Debug, Clone, Copy)]
pub enum Enforcement<'a> {
    /// Its programs run this way ("lsm", "signal", "kernel").
    Runs(&'static str),
    /// Its programs load when a policy first needs them.
    NotCheckedYet(Family),
    Unavailable(&'a Refusal),
}

impl fmt::Display for Enforcement<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Runs(how) => f.write_str(how),
            Self::NotCheckedYet(Family::Domains) => {
                f.write_str("not checked yet: its programs load when a policy first lists domains")
            }
            Self::NotCheckedYet(_) => {
                f.write_str("not checked yet: its programs load when a policy first needs them")
            }
            Self::Unavailable(reason) => write!(f, "unavailable: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_has_its_own_state() {
        let mut states = FamilyStates::new(|_| FamilyState::NotCheckedYet);
        for (index, family) in Family::ALL.into_iter().enumerate() {
            assert_eq!(family as usize, index, "{family}");
            states.set(family, FamilyState::Loaded);
            states.set_attached(family, true);
            assert!(states.is_enforcing(family), "{family}");
            let enforcing = states
                .rendered()
                .into_iter()
                .filter(|status| status.state == FamilyState::Enforcing)
                .count();
            assert_eq!(enforcing, index + 1);
        }
    }

    #[test]
    fn a_refused_family_renders_its_reason_and_status_text() {
        let mut states = FamilyStates::new(|_| FamilyState::Loaded);
        states.set(
            Family::Domains,
            FamilyState::Unavailable {
                reason: Refusal::TestHook,
            },
        );
        let reason = Refusal::TestHook.to_string();
        let domains = &states.rendered()[Family::Domains as usize];
        assert_eq!(
            serde_json::to_value(domains).unwrap(),
            serde_json::json!({"family": "domains", "state": "unavailable", "reason": reason})
        );
        assert_eq!(domains.state.to_string(), format!("unavailable: {reason}"));
        assert_eq!(
            states.enforcement(Family::Domains, "kernel").to_string(),
            format!("unavailable: {reason}")
        );
        assert_eq!(
            states.enforcement(Family::Exec, "signal").to_string(),
            "signal"
        );
        assert_eq!(states.unavailable().len(), 1);
        states.set_attached(Family::Domains, true);
        assert!(!states.is_enforcing(Family::Domains));
    }
}
