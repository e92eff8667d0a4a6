//! What `policy check` warns of and does not refuse: an `exec_paths`
//! entry that is a symbolic link to a file of another name. The ban holds
//! for the file the link leads to, as every exec reaches it, so it holds
//! for every other name that file is started by: `/snap/bin/APP` leads to
//! `/usr/bin/snap`, and banning it bans every snap. This reads the
//! filesystem as it is when checked; the daemon resolves paths again at
//! each apply.

use std::{fmt, fs, path::PathBuf};

use super::model::{Origin, Policy};

/// An `exec_paths` entry that leads to a file of another name.
#[derive(Debug, PartialEq, Eq)]
pub struct SharedTarget {
    pub origin: Origin,
    pub rule: String,
    pub path: PathBuf,
    pub target: PathBuf,
}

impl fmt::Display for SharedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: warning: rule \"{}\": {} is a link to {}; the ban holds for that file, \
             and for every other name it is started by",
            self.origin.file,
            self.origin.line,
            self.rule,
            self.path.display(),
            self.target.display()
        )
    }
}

/// The `exec_paths` file entries of `policy` that are links to a file of
/// another name.
pub fn shared_targets(policy: &Policy) -> Vec<SharedTarget> {
    let mut found = Vec::new();
    for rule in &policy.rules {
        for entry in rule.exec_paths.iter().filter(|entry| !entry.directory) {
            let is_link = fs::symlink_metadata(&entry.path)
                .is_ok_and(|metadata| metadata.file_type().is_symlink());
            let Ok(target) = fs::canonicalize(&entry.path) else {
                continue;
            };
            if is_link && target.file_name() != entry.path.file_name() {
                found.push(SharedTarget {
                    origin: rule.origin.clone(),
                    rule: rule.name.clone(),
                    path: entry.path.clone(),
                    target,
                });
            }
        }
    }
    found
}
