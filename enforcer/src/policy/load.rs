//! The entry points: a policy from its files' text, or from their paths.

use std::{
    io,
    path::{Path, PathBuf},
};

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

/// Why a policy directory gives no files.
#[derive(Debug, thiserror::Error)]
pub enum PolicyDirError {
    #[error("policy directory {}: {source}", dir.display())]
    Read {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A policy of nothing would enforce nothing: an empty directory is
    /// far likelier a mistake than a wish.
    #[error("policy directory {}: no *.toml file in it", dir.display())]
    Empty { dir: PathBuf },
}

/// The policy files in `dir`, in name order, as a `rules.d` directory is
/// read: every `*.toml` file (or link to one), but no hidden file, and
/// nothing an editor or a package manager leaves beside one
/// (`a.toml~`, `a.toml.dpkg-old`).
pub fn files_in_dir(dir: &Path) -> Result<Vec<PathBuf>, PolicyDirError> {
    let read_error = |source| PolicyDirError::Read {
        dir: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        if !name.starts_with('.') && name.ends_with(".toml") && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(PolicyDirError::Empty {
            dir: dir.to_path_buf(),
        });
    }
    files.sort();
    Ok(files)
}
