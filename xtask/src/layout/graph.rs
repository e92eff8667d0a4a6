//! The import graph between module files: each path a module names,
//! resolved through `use` items and re-exports to the file that defines
//! the item, and the cycles in that graph.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    path::PathBuf,
};

use super::tree::{ModuleId, Segments, Tree};

/// Re-exports that lead to each other go round; past this many steps a
/// path is taken for unresolved.
const MAX_STEPS: usize = 32;

enum Resolved {
    Module,
    /// An item and the module that defines it.
    Item(ModuleId, String),
}

/// A file naming an item another file defines.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Edge {
    pub from: PathBuf,
    pub to: PathBuf,
    pub item: String,
    /// `to` is the file of a module `from` is inside of.
    pub to_ancestor: bool,
}

pub(super) fn edges(tree: &Tree) -> BTreeSet<Edge> {
    let mut edges = BTreeSet::new();
    for (id, module) in tree.modules.iter().enumerate() {
        for path in &module.references {
            let Some(Resolved::Item(defining, item)) = resolve(tree, id, path, 0) else {
                continue;
            };
            let to = &tree.modules[defining].file;
            if *to != module.file {
                edges.insert(Edge {
                    from: module.file.clone(),
                    to: to.clone(),
                    item,
                    to_ancestor: tree.is_ancestor(defining, id),
                });
            }
        }
    }
    edges
}

/// What `path`, named in module `from`, stands for; `None` for what is
/// not the crate's own (other crates, locals, the prelude).
fn resolve(tree: &Tree, from: ModuleId, path: &[String], steps: usize) -> Option<Resolved> {
    if steps > MAX_STEPS {
        return None;
    }
    let (first, rest) = path.split_first()?;
    match first.as_str() {
        "crate" => walk(tree, tree.root(from), rest, steps),
        "self" => walk(tree, from, rest, steps),
        "super" => walk(tree, tree.modules[from].parent?, rest, steps),
        _ => lookup(tree, from, first, rest, steps),
    }
}

/// Follows `path` down from `module`.
fn walk(tree: &Tree, module: ModuleId, path: &[String], steps: usize) -> Option<Resolved> {
    match path.split_first() {
        None => Some(Resolved::Module),
        Some((first, rest)) if first == "super" => {
            walk(tree, tree.modules[module].parent?, rest, steps)
        }
        Some((first, rest)) => lookup(tree, module, first, rest, steps),
    }
}

/// `name` as `module` knows it: a submodule, an item of its own, or a
/// name its `use` items bring in, then `rest` below that.
fn lookup(
    tree: &Tree,
    module: ModuleId,
    name: &str,
    rest: &[String],
    steps: usize,
) -> Option<Resolved> {
    let known = &tree.modules[module];
    if let Some(&child) = known.children.get(name) {
        return walk(tree, child, rest, steps);
    }
    if known.items.contains(name) {
        return Some(Resolved::Item(module, name.to_string()));
    }
    let through = |prefix: &Segments, with_name: bool| {
        let mut path = prefix.clone();
        if with_name {
            path.push(name.to_string());
        }
        path.extend_from_slice(rest);
        resolve(tree, module, &path, steps + 1)
    };
    if let Some(imported) = known.imports.get(name) {
        return through(imported, false);
    }
    known.globs.iter().find_map(|glob| through(glob, true))
}

/// Each cycle of the graph once, as a chain of files that ends where it
/// starts: the shortest cycle through each file that is on one.
pub(super) fn cycles(edges: &BTreeSet<Edge>) -> Vec<Vec<PathBuf>> {
    let mut graph: BTreeMap<&PathBuf, BTreeSet<&PathBuf>> = BTreeMap::new();
    for edge in edges {
        graph.entry(&edge.from).or_default().insert(&edge.to);
    }
    let mut found = BTreeSet::new();
    for &start in graph.keys() {
        if let Some(mut cycle) = shortest_cycle(&graph, start) {
            let first = (0..cycle.len())
                .min_by_key(|&index| cycle[index])
                .unwrap_or(0);
            cycle.rotate_left(first);
            found.insert(cycle);
        }
    }
    found
        .into_iter()
        .map(|cycle| {
            let mut chain: Vec<PathBuf> = cycle.into_iter().cloned().collect();
            chain.push(chain[0].clone());
            chain
        })
        .collect()
}

/// The files on the shortest way from `start` back to it, `start` first.
fn shortest_cycle<'a>(
    graph: &BTreeMap<&'a PathBuf, BTreeSet<&'a PathBuf>>,
    start: &'a PathBuf,
) -> Option<Vec<&'a PathBuf>> {
    let mut came_from: BTreeMap<&PathBuf, &PathBuf> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(file) = queue.pop_front() {
        for &next in graph.get(file).into_iter().flatten() {
            if next == start {
                let mut chain = vec![file];
                while let Some(&previous) = chain.last().and_then(|last| came_from.get(last)) {
                    chain.push(previous);
                }
                chain.reverse();
                return Some(chain);
            }
            if !came_from.contains_key(next) {
                came_from.insert(next, file);
                queue.push_back(next);
            }
        }
    }
    None
}
