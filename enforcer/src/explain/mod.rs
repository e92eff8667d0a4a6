//! `policy explain`: which rule decides an endpoint, a domain name or an
//! executable, and why, offline.
//!
//! The policy is compiled as the daemon compiles it, and the image is
//! searched with the kernel programs' own lookups
//! ([`enforcer_common::lookup`]), so what explain says is what the hooks
//! do with that policy. What only a running system knows is left out and
//! said: addresses learned from DNS answers, and which files on a host are
//! links or copies of one another beyond what this host shows.

mod endpoint;
mod error;
mod name;
mod program;
mod report;
mod subject;
mod target;

use crate::{
    compile::{self, Compiled},
    policy::{Policy, Rule},
};
use subject::Subject;

pub use error::ExplainError;
pub use report::{Explanation, Finding, RuleRef, Verdict};
pub use target::{Protocol, Target, TargetError};

/// A policy ready to be asked about.
pub struct Explainer {
    policy: Policy,
    /// [`Policy::enforced_rules`]: decisions index these.
    rules: Vec<Rule>,
    compiled: Compiled,
    programs: program::Programs,
}

impl Explainer {
    /// Compiles `policy` for explaining. Exec paths are given identities
    /// by their text, and by the file they lead to where one exists on
    /// this host (see [`program`]).
    pub fn new(policy: Policy) -> Result<Self, ExplainError> {
        let rules = policy.enforced_rules();
        let programs = program::Programs::new(&policy);
        let compiled = compile::compile(&policy, &programs.identities, 0)?;
        Ok(Self {
            policy,
            rules,
            compiled,
            programs,
        })
    }

    pub fn explain(&self, target: &Target) -> Result<Explanation, ExplainError> {
        let fault = || ExplainError::Fault {
            target: target.to_string(),
        };
        let subject = Subject {
            policy: &self.policy,
            rules: &self.rules,
            image: &self.compiled.image,
        };
        let (findings, notes) = match target {
            Target::Endpoint {
                addr,
                port,
                protocol,
            } => endpoint::explain(&subject, *addr, *port, *protocol).map_err(|_| fault())?,
            Target::Domain(domain) => name::explain(&subject, domain).map_err(|_| fault())?,
            Target::Exec(path) => program::explain(&subject, &self.programs, path)?,
        };
        Ok(Explanation {
            target: target.to_string(),
            findings,
            notes,
        })
    }
}

#[cfg(test)]
mod tests;
