//! The entry points: a policy from its files' text, or from their paths.

use std::{
    collections::HashSet,
    io,
    path::{Path, PathBuf},
};

use super::checker::Checker;
use super::include::{IncludeError, includes_of};
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

/// Reads `paths` as the files of one policy, with the files they include
/// (each right after the file that includes it), without parsing them.
/// Files that cannot be read are reported as [`load_files`] reports them.
pub fn read_files(paths: &[PathBuf]) -> Result<Vec<Source>, PolicyErrors> {
    let (sources, mut checker, complete) = read_tree(paths);
    if complete {
        return Ok(sources);
    }
    // An include's error points into the file that includes it.
    for source in &sources {
        checker.check(source);
    }
    checker.finish().map(|_| sources)
}

/// Reads `paths`, with the files they include, and parses them as one
/// policy. A file that cannot be read is reported (at line 0, column 0)
/// alongside the other files' errors; an included one at its include.
pub fn load_files(paths: &[PathBuf]) -> Result<Policy, PolicyErrors> {
    let (sources, mut checker, _) = read_tree(paths);
    for source in &sources {
        checker.check(source);
    }
    checker.finish()
}

/// The files of a policy from the disk, includes followed; whether all
/// could be read.
fn read_tree(paths: &[PathBuf]) -> (Vec<Source>, Checker, bool) {
    let mut reader = Reader {
        sources: Vec::new(),
        checker: Checker::default(),
        seen: HashSet::new(),
        complete: true,
    };
    for path in paths {
        reader.read(path.display().to_string(), false);
    }
    (reader.sources, reader.checker, reader.complete)
}

struct Reader {
    sources: Vec<Source>,
    checker: Checker,
    /// Each file once, by where it really is.
    seen: HashSet<PathBuf>,
    complete: bool,
}

impl Reader {
    fn read(&mut self, name: String, included: bool) {
        let text = match std::fs::read_to_string(&name) {
            Ok(text) => text,
            Err(error) => {
                self.complete = false;
                if included {
                    let error = IncludeError::Unreadable {
                        name: name.clone(),
                        source: error,
                    };
                    self.checker.unread_include(name, error);
                } else {
                    self.checker.unreadable(name, &error);
                }
                return;
            }
        };
        let real = std::fs::canonicalize(&name).unwrap_or_else(|_| PathBuf::from(&name));
        if !self.seen.insert(real) {
            if included {
                self.complete = false;
                let error = IncludeError::AlreadyRead(name.clone());
                self.checker.unread_include(name, error);
            }
            return;
        }
        let source = Source { name, text };
        let includes = includes_of(&source);
        self.sources.push(source);
        for include in includes {
            self.read(include.target, true);
        }
    }
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
