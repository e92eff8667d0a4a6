//! The policy being explained, compiled, as each kind of target needs it.

use enforcer_common::decision::{Action, Decision};

use super::report::{Finding, RuleRef, Verdict};
use crate::policy::{Policy, Rule};

/// A policy and its compiled image.
pub(super) struct Subject<'a> {
    pub policy: &'a Policy,
    /// [`Policy::enforced_rules`]: decisions index these.
    pub rules: &'a [Rule],
    pub image: &'a [u64],
}

impl Subject<'_> {
    /// The rule a decision names, with `because` saying what of it covers
    /// the target.
    pub(super) fn finding(
        &self,
        case: Option<String>,
        decision: Decision,
        because: String,
    ) -> Finding {
        let verdict = match decision.action() {
            Action::None => Verdict::None,
            Action::Allow => Verdict::Allow,
            Action::Block => Verdict::Block,
            Action::Audit => Verdict::Audit,
        };
        let rule = (verdict != Verdict::None)
            .then(|| self.rules.get(decision.rule() as usize))
            .flatten()
            .map(RuleRef::of);
        Finding {
            case,
            verdict,
            because: rule.as_ref().map(|_| because),
            rule,
        }
    }
}
