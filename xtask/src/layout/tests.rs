use super::*;

/// A crate `demo` of the given files, by their path below `demo/src`.
fn demo(files: &[(&str, &str)]) -> Crate {
    Crate {
        dir: PathBuf::from("demo"),
        files: files
            .iter()
            .map(|(path, text)| (Path::new("demo/src").join(path), text.to_string()))
            .collect(),
    }
}

fn findings(krate: &Crate) -> Vec<String> {
    check(krate)
        .expect("the demo parses")
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn failing(krate: &Crate) -> Vec<String> {
    check(krate)
        .expect("the demo parses")
        .iter()
        .filter(|finding| finding.fails())
        .map(ToString::to_string)
        .collect()
}

/// Each edge of the import graph as `from -> to (item)`.
fn edges(krate: &Crate) -> Vec<String> {
    let tree = Tree::read(&krate.files, &krate.roots()).expect("the demo parses");
    graph::edges(&tree)
        .iter()
        .map(|edge| {
            format!(
                "{} -> {} ({})",
                edge.from.display(),
                edge.to.display(),
                edge.item
            )
        })
        .collect()
}

fn lines(count: usize) -> String {
    "// a line\n".repeat(count)
}

#[test]
fn imports_both_ways_are_a_cycle() {
    let krate = demo(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "use crate::b::B;\npub struct A;\n"),
        (
            "b.rs",
            "pub struct B;\nfn make() -> crate::a::A { crate::a::A }\n",
        ),
    ]);
    assert_eq!(
        failing(&krate),
        ["import cycle: demo/src/a.rs -> demo/src/b.rs -> demo/src/a.rs"]
    );
}

#[test]
fn a_path_in_a_macro_or_through_a_glob_counts() {
    let in_macro = demo(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        (
            "a.rs",
            "use crate::b::B;\npub fn name() -> &'static str { \"a\" }\n",
        ),
        (
            "b.rs",
            "pub struct B;\nfn f() -> String { format!(\"{}\", crate::a::name()) }\n",
        ),
    ]);
    assert_eq!(failing(&in_macro).len(), 1);
    let through_glob = demo(&[
        (
            "lib.rs",
            "mod b;\npub struct Root;\nfn f() -> b::B { b::B }\n",
        ),
        (
            "b.rs",
            "use super::*;\npub struct B;\nfn g() -> Root { Root }\n",
        ),
    ]);
    assert_eq!(
        failing(&through_glob),
        ["import cycle: demo/src/b.rs -> demo/src/lib.rs -> demo/src/b.rs"]
    );
}

#[test]
fn one_way_imports_and_test_code_are_no_cycle() {
    let krate = demo(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "use crate::b::B;\npub fn a() {}\n"),
        (
            "b.rs",
            "pub struct B;\n\
             #[cfg(test)]\nfn helper() { crate::a::a() }\n\
             #[cfg(test)]\nmod tests { use crate::a::a; }\n",
        ),
    ]);
    assert!(findings(&krate).is_empty(), "{:?}", findings(&krate));
}

/// `report` names `super::Size`, which `net` only re-exports from
/// `measured`: the edge goes to `measured`, and `net` calling `report`
/// makes no cycle.
#[test]
fn an_import_through_a_re_export_goes_to_the_defining_file() {
    let krate = demo(&[
        ("lib.rs", "mod net;\nfn main() { net::run(); }\n"),
        (
            "net/mod.rs",
            "mod measured;\nmod report;\npub use measured::Size;\n\
             pub fn run() { report::report(&Size); }\n",
        ),
        ("net/measured.rs", "pub struct Size;\n"),
        (
            "net/report.rs",
            "use super::Size;\npub fn report(_: &Size) {}\n",
        ),
    ]);
    assert!(findings(&krate).is_empty(), "{:?}", findings(&krate));
    assert_eq!(
        edges(&krate),
        [
            "demo/src/lib.rs -> demo/src/net/mod.rs (run)",
            "demo/src/net/mod.rs -> demo/src/net/measured.rs (Size)",
            "demo/src/net/mod.rs -> demo/src/net/report.rs (report)",
            "demo/src/net/report.rs -> demo/src/net/measured.rs (Size)",
        ]
    );
}

#[test]
fn an_import_of_what_a_parent_defines_is_reported_without_failing() {
    let krate = demo(&[
        ("lib.rs", "mod net;\n"),
        (
            "net/mod.rs",
            "mod report;\npub use report::report;\npub struct Size;\n",
        ),
        (
            "net/report.rs",
            "use super::Size;\npub fn report(_: &Size) {}\n",
        ),
    ]);
    assert!(failing(&krate).is_empty(), "{:?}", failing(&krate));
    assert_eq!(
        findings(&krate),
        [
            "(reported only) imports from an ancestor: demo/src/net/report.rs -> demo/src/net/mod.rs (Size)"
        ]
    );
}

#[test]
fn a_non_test_file_over_the_limit_fails() {
    let long = lines(MAX_LINES + 1);
    let krate = demo(&[
        (
            "lib.rs",
            "mod long;\nmod tests;\n#[cfg(test)]\nmod support;\nmod limit;\n",
        ),
        ("long.rs", &long),
        ("tests.rs", &long),
        ("support.rs", &long),
        ("limit.rs", &lines(MAX_LINES)),
    ]);
    assert_eq!(
        failing(&krate),
        [format!(
            "too long: demo/src/long.rs has {} lines (over {MAX_LINES})",
            MAX_LINES + 1
        )]
    );
}

#[test]
fn a_module_file_beside_its_directory_fails() {
    let krate = demo(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "mod inner;\n"),
        ("a/inner.rs", ""),
        ("b/mod.rs", "mod inner;\n"),
        ("b/inner.rs", ""),
    ]);
    assert_eq!(
        failing(&krate),
        ["mixed module convention: demo/src/a.rs beside demo/src/a/ (use demo/src/a/mod.rs)"]
    );
}
