//! The text of a policy's files, and the problems found in it.

use serde::{Deserialize, Serialize};

/// One policy file's text. `name` is what errors show as the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// One problem in a policy. `line` and `column` are 1-based (0 when the file
/// could not be read at all); the column counts characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct PolicyError {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// Every problem found, in file order; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", one_per_line(.0))]
pub struct PolicyErrors(pub Vec<PolicyError>);

fn one_per_line(errors: &[PolicyError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
