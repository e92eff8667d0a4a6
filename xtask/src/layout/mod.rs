//! `cargo xtask layout`: the workspace's source layout against issue 16's
//! rules. It fails on a non-test source file over [`MAX_LINES`] lines, on
//! a module that is both `foo.rs` and a `foo/` directory, and on a cycle
//! in the imports between module files (which is also how an import that
//! runs back up shows). Imports of items a module's own ancestors define
//! are listed without failing.

mod graph;
mod tree;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt, fs,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result};

use crate::workspace::workspace_root;
use graph::Edge;
use tree::Tree;

pub(crate) const MAX_LINES: usize = 600;

/// One crate's source files (`src/` and `tests/`), by their path from
/// the workspace root.
pub(crate) struct Crate {
    pub dir: PathBuf,
    pub files: BTreeMap<PathBuf, String>,
}

pub(crate) enum Finding {
    TooLong {
        file: PathBuf,
        lines: usize,
    },
    MixedConvention {
        file: PathBuf,
        dir: PathBuf,
    },
    Cycle(Vec<PathBuf>),
    /// Reported only: a file naming items that a module it is inside of
    /// defines.
    ImportsAncestor {
        from: PathBuf,
        to: PathBuf,
        items: Vec<String>,
    },
}

impl Finding {
    pub(crate) fn fails(&self) -> bool {
        !matches!(self, Finding::ImportsAncestor { .. })
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::TooLong { file, lines } => write!(
                f,
                "too long: {} has {lines} lines (over {MAX_LINES})",
                file.display()
            ),
            Finding::MixedConvention { file, dir } => write!(
                f,
                "mixed module convention: {} beside {}/ (use {}/mod.rs)",
                file.display(),
                dir.display(),
                dir.display()
            ),
            Finding::Cycle(chain) => {
                let chain: Vec<_> = chain
                    .iter()
                    .map(|file| file.display().to_string())
                    .collect();
                write!(f, "import cycle: {}", chain.join(" -> "))
            }
            Finding::ImportsAncestor { from, to, items } => write!(
                f,
                "(reported only) imports from an ancestor: {} -> {} ({})",
                from.display(),
                to.display(),
                items.join(", ")
            ),
        }
    }
}

impl Crate {
    pub(crate) fn read(root: &Path, dir: &Path) -> Result<Self> {
        let mut files = BTreeMap::new();
        for sub in ["src", "tests"] {
            read_sources(root, &dir.join(sub), &mut files)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
        })
    }

    /// Its crate root files: the library, the binary, and `src/bin`'s.
    fn roots(&self) -> Vec<PathBuf> {
        let src = self.dir.join("src");
        let bin = src.join("bin");
        self.files
            .keys()
            .filter(|file| {
                *file == &src.join("lib.rs")
                    || *file == &src.join("main.rs")
                    || file.parent() == Some(&bin)
                    || (file.parent().and_then(Path::parent) == Some(&bin)
                        && file.ends_with("main.rs"))
            })
            .cloned()
            .collect()
    }

    /// Integration tests, files named `tests.rs`, and the files of test
    /// modules.
    fn is_test_file(&self, tree: &Tree, file: &Path) -> bool {
        file.starts_with(self.dir.join("tests"))
            || file.file_name().is_some_and(|name| name == "tests.rs")
            || tree.test_files.contains(file)
    }
}

/// The `.rs` files below `root/dir`, by their path from `root`.
fn read_sources(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, String>) -> Result<()> {
    let Ok(entries) = fs::read_dir(root.join(dir)) else {
        return Ok(());
    };
    for entry in entries {
        let path = dir.join(entry?.file_name());
        let full = root.join(&path);
        if full.is_dir() {
            read_sources(root, &path, files)?;
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            let text =
                fs::read_to_string(&full).with_context(|| format!("reading {}", full.display()))?;
            files.insert(path, text);
        }
    }
    Ok(())
}

/// Every finding in `krate`, failing ones first.
pub(crate) fn check(krate: &Crate) -> Result<Vec<Finding>> {
    let tree = Tree::read(&krate.files, &krate.roots())?;
    let mut findings = Vec::new();
    for (file, text) in &krate.files {
        let lines = text.lines().count();
        if lines > MAX_LINES && !krate.is_test_file(&tree, file) {
            findings.push(Finding::TooLong {
                file: file.clone(),
                lines,
            });
        }
        let dir = file.with_extension("");
        let is_mod_rs = file.file_name().is_some_and(|name| name == "mod.rs");
        if !is_mod_rs && krate.files.keys().any(|other| other.starts_with(&dir)) {
            findings.push(Finding::MixedConvention {
                file: file.clone(),
                dir,
            });
        }
    }
    let edges = graph::edges(&tree);
    findings.extend(graph::cycles(&edges).into_iter().map(Finding::Cycle));
    findings.extend(imports_of_ancestors(&edges));
    Ok(findings)
}

fn imports_of_ancestors(edges: &BTreeSet<Edge>) -> Vec<Finding> {
    let mut items: BTreeMap<(&PathBuf, &PathBuf), Vec<String>> = BTreeMap::new();
    for edge in edges.iter().filter(|edge| edge.to_ancestor) {
        items
            .entry((&edge.from, &edge.to))
            .or_default()
            .push(edge.item.clone());
    }
    items
        .into_iter()
        .map(|((from, to), items)| Finding::ImportsAncestor {
            from: from.clone(),
            to: to.clone(),
            items,
        })
        .collect()
}

/// The workspace's crates: the directories beside `xtask` with a
/// `Cargo.toml` and a `src/`, whether or not cargo builds them as members.
fn workspace_crates(root: &Path) -> Result<Vec<PathBuf>> {
    let mut crates = Vec::new();
    for entry in fs::read_dir(root)? {
        let dir = PathBuf::from(entry?.file_name());
        if root.join(&dir).join("Cargo.toml").is_file() && root.join(&dir).join("src").is_dir() {
            crates.push(dir);
        }
    }
    crates.sort();
    Ok(crates)
}

pub(crate) fn layout() -> Result<ExitCode> {
    Ok(if report_workspace()? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints every finding in the workspace; true when none fails.
pub(crate) fn report_workspace() -> Result<bool> {
    let root = workspace_root();
    let mut failing = 0;
    let mut reported = 0;
    for dir in workspace_crates(&root)? {
        for finding in check(&Crate::read(&root, &dir)?)? {
            println!("{finding}");
            if finding.fails() {
                failing += 1;
            } else {
                reported += 1;
            }
        }
    }
    println!("layout: {failing} failing findings, {reported} reported only");
    Ok(failing == 0)
}

#[cfg(test)]
mod tests;
