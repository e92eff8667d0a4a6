//! What explain says about a target, as text and as JSON.

use std::fmt;

use serde::Serialize;

use crate::policy::Rule;

/// What the policy does with one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub target: String,
    /// One per case the policy tells apart: a protocol and a port range
    /// for an endpoint, else just one.
    pub findings: Vec<Finding>,
    /// What else bears on the target: rules that also list it but do not
    /// decide, and what explain cannot know offline.
    pub notes: Vec<String>,
}

/// One verdict and the rule behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The case, e.g. `tcp 443`; `None` when the target has only one.
    pub case: Option<String>,
    pub verdict: Verdict,
    /// The rule that decides; `None` when no rule does.
    pub rule: Option<RuleRef>,
    /// Why that rule: the entry of it that covers the target.
    pub because: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No rule covers it: let through, unreported.
    None,
    Allow,
    Block,
    Audit,
}

/// A rule by name and where it is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    pub name: String,
    pub file: String,
    pub line: u32,
}

impl RuleRef {
    pub(super) fn of(rule: &Rule) -> Self {
        RuleRef {
            name: rule.name.clone(),
            file: rule.origin.file.clone(),
            line: rule.origin.line,
        }
    }
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{} ({})", self.name, self.file)
        } else {
            write!(f, "{} ({}:{})", self.name, self.file, self.line)
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::None => "no rule: let through",
            Verdict::Allow => "allowed",
            Verdict::Block => "blocked",
            Verdict::Audit => "audited (let through and reported)",
        })
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(case) = &self.case {
            write!(f, "{case}: ")?;
        }
        write!(f, "{}", self.verdict)?;
        if let Some(rule) = &self.rule {
            write!(f, " by rule {rule}")?;
        }
        if let Some(because) = &self.because {
            write!(f, ": {because}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.findings.as_slice() {
            [only] if only.case.is_none() => writeln!(f, "{}: {only}", self.target)?,
            findings => {
                writeln!(f, "{}:", self.target)?;
                for finding in findings {
                    writeln!(f, "  {finding}")?;
                }
            }
        }
        for note in &self.notes {
            writeln!(f, "  - {note}")?;
        }
        Ok(())
    }
}
