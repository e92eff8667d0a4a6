//! A crate's module tree, read with syn: each module's file, the names it
//! defines and imports, and every path its non-test code names. Test code
//! (`#[cfg(test)]` items and `mod tests`) is left out, and the files it
//! lives in are collected apart.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use syn::{
    Attribute, Expr, ImplItem, Item, ItemMod, Meta, Token, TraitItem, UseTree, Visibility,
    punctuated::Punctuated,
    visit::{self, Visit},
};

pub(super) type ModuleId = usize;

/// A path as written, one string per segment.
pub(super) type Segments = Vec<String>;

#[derive(Default)]
pub(super) struct Module {
    pub file: PathBuf,
    pub parent: Option<ModuleId>,
    pub children: BTreeMap<String, ModuleId>,
    /// The items it defines (functions, types, constants, ...).
    pub items: BTreeSet<String>,
    /// The names its `use` items bring in, and the paths they name.
    pub imports: BTreeMap<String, Segments>,
    pub globs: Vec<Segments>,
    /// What it depends on: the paths of its private `use` items and of its
    /// code. A `pub use` only passes a name on, so it is not among them.
    pub references: Vec<Segments>,
}

#[derive(Default)]
pub(super) struct Tree {
    pub modules: Vec<Module>,
    /// The files of test modules, reached from a `mod` declaration.
    pub test_files: BTreeSet<PathBuf>,
}

impl Tree {
    /// Reads the module trees below `roots` (crate root files); `files`
    /// holds every source file by path.
    pub(super) fn read(files: &BTreeMap<PathBuf, String>, roots: &[PathBuf]) -> Result<Self> {
        let mut tree = Self::default();
        for root in roots {
            let dir = root.parent().unwrap_or(Path::new("")).to_path_buf();
            tree.add_file(files, root, None, &dir)?;
        }
        Ok(tree)
    }

    pub(super) fn root(&self, mut module: ModuleId) -> ModuleId {
        while let Some(parent) = self.modules[module].parent {
            module = parent;
        }
        module
    }

    pub(super) fn is_ancestor(&self, ancestor: ModuleId, mut module: ModuleId) -> bool {
        while let Some(parent) = self.modules[module].parent {
            if parent == ancestor {
                return true;
            }
            module = parent;
        }
        false
    }

    fn add_file(
        &mut self,
        files: &BTreeMap<PathBuf, String>,
        file: &Path,
        parent: Option<ModuleId>,
        child_dir: &Path,
    ) -> Result<ModuleId> {
        let parsed = parse(files, file)?;
        let id = self.add_module(file, parent);
        self.add_items(files, id, &parsed.items, child_dir)?;
        Ok(id)
    }

    fn add_module(&mut self, file: &Path, parent: Option<ModuleId>) -> ModuleId {
        self.modules.push(Module {
            file: file.to_path_buf(),
            parent,
            ..Module::default()
        });
        self.modules.len() - 1
    }

    fn add_items(
        &mut self,
        files: &BTreeMap<PathBuf, String>,
        id: ModuleId,
        items: &[Item],
        child_dir: &Path,
    ) -> Result<()> {
        let mut code = References::default();
        for item in items {
            match item {
                Item::Mod(module) if module.ident == "tests" || is_test(&module.attrs) => {
                    self.mark_tests(files, module, child_dir)?
                }
                _ if is_test(item_attrs(item)) => {}
                Item::Mod(module) => {
                    if let Some(child) = self.add_child(files, id, module, child_dir)? {
                        let name = module.ident.to_string();
                        self.modules[id].children.insert(name, child);
                    }
                }
                Item::Use(item_use) if item_use.leading_colon.is_none() => {
                    let exported = !matches!(item_use.vis, Visibility::Inherited);
                    self.add_use(id, &item_use.tree, exported);
                }
                _ => {
                    if let Some(name) = item_name(item) {
                        self.modules[id].items.insert(name);
                    }
                    code.visit_item(item);
                }
            }
        }
        self.modules[id].references.extend(code.paths);
        Ok(())
    }

    /// A submodule, inline or in its own file; `None` when its file is
    /// not there (a module for another target, say).
    fn add_child(
        &mut self,
        files: &BTreeMap<PathBuf, String>,
        parent: ModuleId,
        module: &ItemMod,
        child_dir: &Path,
    ) -> Result<Option<ModuleId>> {
        let name = module.ident.to_string();
        if let Some((_, items)) = &module.content {
            let file = self.modules[parent].file.clone();
            let id = self.add_module(&file, Some(parent));
            self.add_items(files, id, items, &child_dir.join(name))?;
            return Ok(Some(id));
        }
        let Some((file, grandchild_dir)) = module_file(files, child_dir, &name) else {
            return Ok(None);
        };
        self.add_file(files, &file, Some(parent), &grandchild_dir)
            .map(Some)
    }

    /// Records the files of a test module and of the modules below it.
    fn mark_tests(
        &mut self,
        files: &BTreeMap<PathBuf, String>,
        module: &ItemMod,
        child_dir: &Path,
    ) -> Result<()> {
        let name = module.ident.to_string();
        match &module.content {
            Some((_, items)) => self.mark_test_items(files, items, &child_dir.join(name)),
            None => {
                let Some((file, dir)) = module_file(files, child_dir, &name) else {
                    return Ok(());
                };
                let parsed = parse(files, &file)?;
                self.test_files.insert(file);
                self.mark_test_items(files, &parsed.items, &dir)
            }
        }
    }

    fn mark_test_items(
        &mut self,
        files: &BTreeMap<PathBuf, String>,
        items: &[Item],
        dir: &Path,
    ) -> Result<()> {
        for item in items {
            if let Item::Mod(module) = item {
                self.mark_tests(files, module, dir)?;
            }
        }
        Ok(())
    }

    fn add_use(&mut self, id: ModuleId, tree: &UseTree, exported: bool) {
        let mut uses = Vec::new();
        flatten_use(tree, &mut Vec::new(), &mut uses);
        let module = &mut self.modules[id];
        for (path, name) in uses {
            match name {
                Some(name) => {
                    if !exported {
                        module.references.push(path.clone());
                    }
                    if name != "_" {
                        module.imports.insert(name, path);
                    }
                }
                None => module.globs.push(path),
            }
        }
    }
}

fn parse(files: &BTreeMap<PathBuf, String>, file: &Path) -> Result<syn::File> {
    syn::parse_file(&files[file]).with_context(|| format!("parsing {}", file.display()))
}

/// The file of module `name` declared where child modules live in `dir`,
/// and where its own children live.
fn module_file(
    files: &BTreeMap<PathBuf, String>,
    dir: &Path,
    name: &str,
) -> Option<(PathBuf, PathBuf)> {
    let flat = dir.join(format!("{name}.rs"));
    let nested = dir.join(name).join("mod.rs");
    [flat, nested]
        .into_iter()
        .find(|file| files.contains_key(file))
        .map(|file| (file, dir.join(name)))
}

/// Each path a `use` tree names, with the name it brings in (`None` for
/// a glob).
fn flatten_use(tree: &UseTree, prefix: &mut Segments, out: &mut Vec<(Segments, Option<String>)>) {
    let named = |prefix: &Segments, ident: &syn::Ident| {
        let mut path = prefix.clone();
        if ident != "self" {
            path.push(ident.to_string());
        }
        path
    };
    match tree {
        UseTree::Path(use_path) => {
            prefix.push(use_path.ident.to_string());
            flatten_use(&use_path.tree, prefix, out);
            prefix.pop();
        }
        UseTree::Name(name) => {
            let path = named(prefix, &name.ident);
            let last = path.last().cloned();
            out.push((path, last));
        }
        UseTree::Rename(rename) => out.push((
            named(prefix, &rename.ident),
            Some(rename.rename.to_string()),
        )),
        UseTree::Glob(_) => out.push((prefix.clone(), None)),
        UseTree::Group(group) => {
            for tree in &group.items {
                flatten_use(tree, prefix, out);
            }
        }
    }
}

fn item_name(item: &Item) -> Option<String> {
    let ident = match item {
        Item::Const(item) => &item.ident,
        Item::Enum(item) => &item.ident,
        Item::Fn(item) => &item.sig.ident,
        Item::Macro(item) => item.ident.as_ref()?,
        Item::Static(item) => &item.ident,
        Item::Struct(item) => &item.ident,
        Item::Trait(item) => &item.ident,
        Item::TraitAlias(item) => &item.ident,
        Item::Type(item) => &item.ident,
        Item::Union(item) => &item.ident,
        _ => return None,
    };
    Some(ident.to_string())
}

fn item_attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(item) => &item.attrs,
        Item::Enum(item) => &item.attrs,
        Item::ExternCrate(item) => &item.attrs,
        Item::Fn(item) => &item.attrs,
        Item::ForeignMod(item) => &item.attrs,
        Item::Impl(item) => &item.attrs,
        Item::Macro(item) => &item.attrs,
        Item::Mod(item) => &item.attrs,
        Item::Static(item) => &item.attrs,
        Item::Struct(item) => &item.attrs,
        Item::Trait(item) => &item.attrs,
        Item::TraitAlias(item) => &item.attrs,
        Item::Type(item) => &item.attrs,
        Item::Union(item) => &item.attrs,
        Item::Use(item) => &item.attrs,
        _ => &[],
    }
}

/// `#[cfg(test)]`, or `#[cfg(all(test, ...))]`: compiled only for tests.
pub(super) fn is_test(attrs: &[Attribute]) -> bool {
    let names_test = |meta: &Meta| meta.path().is_ident("test");
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"))
        .filter_map(|attr| attr.parse_args::<Meta>().ok())
        .any(|meta| match &meta {
            Meta::List(list) if list.path.is_ident("all") => list
                .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                .is_ok_and(|metas| metas.iter().any(names_test)),
            _ => names_test(&meta),
        })
}

/// Every path named in the code it visits, test code left out; inline
/// modules are read as modules of their own, so it skips them.
#[derive(Default)]
struct References {
    paths: Vec<Segments>,
}

impl<'ast> Visit<'ast> for References {
    fn visit_item(&mut self, item: &'ast Item) {
        if !matches!(item, Item::Mod(_)) && !is_test(item_attrs(item)) {
            visit::visit_item(self, item);
        }
    }

    fn visit_impl_item(&mut self, item: &'ast ImplItem) {
        let attrs = match item {
            ImplItem::Const(item) => &item.attrs,
            ImplItem::Fn(item) => &item.attrs,
            ImplItem::Type(item) => &item.attrs,
            _ => return visit::visit_impl_item(self, item),
        };
        if !is_test(attrs) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_trait_item(&mut self, item: &'ast TraitItem) {
        if let TraitItem::Fn(function) = item
            && is_test(&function.attrs)
        {
            return;
        }
        visit::visit_trait_item(self, item);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            self.paths.push(
                path.segments
                    .iter()
                    .map(|segment| segment.ident.to_string())
                    .collect(),
            );
        }
        visit::visit_path(self, path);
    }

    /// Macro bodies are tokens to syn; most (`format!`, `bail!`, `vec!`)
    /// are expressions separated by commas, so they are read as such.
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        visit::visit_macro(self, mac);
        if let Ok(exprs) = mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated) {
            for expr in &exprs {
                self.visit_expr(expr);
            }
        }
    }
}
