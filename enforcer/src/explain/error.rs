//! What can go wrong explaining a policy.

use crate::compile::CompileError;

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("the policy does not compile: {0}")]
    Compile(#[from] CompileError),
    /// The image did not hold what the compiler wrote: a bug, not the
    /// user's doing.
    #[error("the lookup left the compiled image while explaining {target}")]
    Fault { target: String },
}
