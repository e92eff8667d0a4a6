//! A decision is what the policy says about one (address, protocol, port):
//! an action and the rule that caused it, packed into one `u32` so that
//! tables store it in half a word.

/// Bits 30..32 hold the action, bits 0..30 the rule index.
const ACTION_SHIFT: u32 = 30;
const RULE_MASK: u32 = (1 << ACTION_SHIFT) - 1;

/// The largest number of rules one generation can name.
pub const MAX_RULES: u32 = RULE_MASK;

/// What happens to the traffic or exec a decision covers.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// No rule matches: the kernel lets the traffic through silently.
    None = 0,
    /// An allow exception matches: through, counted, not reported.
    Allow = 1,
    /// An enforcing block rule matches: refused and reported.
    Block = 2,
    /// An audit block rule matches: through and reported.
    Audit = 3,
}

/// An [`Action`] and a rule index, packed (see the module).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Decision(pub u32);

impl Decision {
    /// No rule matches.
    pub const NONE: Decision = Decision(0);

    /// `rule` must be below [`MAX_RULES`]; userspace checks that when it
    /// compiles a policy.
    #[inline(always)]
    pub const fn new(action: Action, rule: u32) -> Self {
        Decision(((action as u32) << ACTION_SHIFT) | (rule & RULE_MASK))
    }

    /// What to do.
    #[inline(always)]
    pub const fn action(self) -> Action {
        match self.0 >> ACTION_SHIFT {
            1 => Action::Allow,
            2 => Action::Block,
            3 => Action::Audit,
            _ => Action::None,
        }
    }

    /// The index of the rule that decided, in its generation.
    #[inline(always)]
    pub const fn rule(self) -> u32 {
        self.0 & RULE_MASK
    }

    /// Whether this decision takes precedence over `other`: an allow over
    /// everything, an enforcing block over an audit, anything over none.
    /// Between equals the one already held stays.
    #[inline(always)]
    pub const fn outranks(self, other: Decision) -> bool {
        self.action().rank() > other.action().rank()
    }
}

impl Action {
    /// Precedence among actions: higher wins (see [`Decision::outranks`]).
    #[inline(always)]
    pub const fn rank(self) -> u8 {
        match self {
            Action::None => 0,
            Action::Audit => 1,
            Action::Block => 2,
            Action::Allow => 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks_every_action() {
        for action in [Action::None, Action::Allow, Action::Block, Action::Audit] {
            let decision = Decision::new(action, MAX_RULES - 1);
            assert_eq!(decision.action(), action);
            assert_eq!(decision.rule(), MAX_RULES - 1);
        }
        assert_eq!(Decision::NONE.action(), Action::None);
    }

    #[test]
    fn allow_outranks_block_outranks_audit_outranks_none() {
        let [none, audit, block, allow] =
            [Action::None, Action::Audit, Action::Block, Action::Allow]
                .map(|a| Decision::new(a, 7));
        assert!(allow.outranks(block) && block.outranks(audit) && audit.outranks(none));
        assert!(!block.outranks(allow) && !audit.outranks(block) && !none.outranks(audit));
        assert!(
            !block.outranks(Decision::new(Action::Block, 1)),
            "equals keep the first"
        );
    }
}
