//! The entry points: a policy from its files' text, or from their paths.

use std::path::PathBuf;

use super::checker::Checker;
use super::model::Policy;
use super::source::{PolicyErrors, Source};

/// Parses and validates `sources` as one policy. Rule names must be unique
/// across all of them.
pub fn parse(sources: &[Source]) -> Result<Policy, PolicyErrors> {
    let mut checker = Checker::default();
    for source in sources {
        checker.check(source);
    }
    checker.finish()
}

/// Reads `paths` as the files of one policy, without parsing them. Files
/// that cannot be read are reported as [`load_files`] reports them.
pub fn read_files(paths: &[PathBuf]) -> Result<Vec<Source>, PolicyErrors> {
    let mut checker = Checker::default();
    let mut sources = Vec::with_capacity(paths.len());
    for path in paths {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => sources.push(Source { name, text }),
            Err(error) => checker.unreadable(name, &error),
        }
    }
    checker.finish().map(|_| sources)
}

/// Reads `paths` and parses them as one policy. A file that cannot be read
/// is reported (at line 0, column 0) alongside the other files' errors.
pub fn load_files(paths: &[PathBuf]) -> Result<Policy, PolicyErrors> {
    let mut checker = Checker::default();
    for path in paths {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => checker.check(&Source { name, text }),
            Err(error) => checker.unreadable(name, &error),
        }
    }
    checker.finish()
}
