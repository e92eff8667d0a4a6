//! Why a valid policy cannot be compiled: it is over one of the limits
//! the kernel's tables have.

use enforcer_common::decision::MAX_RULES;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompileError {
    #[error("the policy has {0} rules; at most {MAX_RULES} are supported")]
    TooManyRules(usize),
    #[error(
        "{family} addresses starting {bucket_start} fall into {entries} ranges; one /16 (or IPv6 /16) \
         holds at most {limit}. Merge adjacent prefixes or use shorter ones"
    )]
    BucketTooLarge {
        family: &'static str,
        bucket_start: String,
        entries: usize,
        limit: u32,
    },
    #[error("the compiled policy needs {0} words, more than one BPF map can hold")]
    ImageTooLarge(usize),
    #[error("the policy lists {domains} domains; at most {limit} are supported")]
    TooManyDomains { domains: usize, limit: usize },
    #[error("the policy names {entries} exec {what}; at most {limit} are supported")]
    TooManyExecEntries {
        what: &'static str,
        entries: usize,
        limit: u32,
    },
}
