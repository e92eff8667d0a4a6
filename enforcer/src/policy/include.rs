//! `[[include]]`: a file of the policy that brings in another, optionally
//! in a mode of the includer's choosing, so that a shipped pack can be
//! enabled, or piloted in audit mode, without editing it.
//!
//! The reader ([`super::load`]) follows includes from the disk and puts
//! each included file right after the file that includes it; the checker
//! only matches names among the files it is given, so a policy sent to
//! the daemon or stored is checked the same way without touching the disk.

use std::{ops::Range, path::Path};

use toml::de::{DeTable, DeValue};

use super::context::{FileCx, Value};
use super::model::Mode;
use super::source::Source;
use super::span::LineIndex;
use super::values::check_mode;

const INCLUDE_KEYS: &str = "path, mode";

/// Why an include brings no file; reported at the include's `path`.
#[derive(Debug, thiserror::Error)]
pub(super) enum IncludeError {
    #[error("{0} is already part of this policy; a file is read once")]
    AlreadyRead(String),
    #[error("cannot read included file {name}: {source}")]
    Unreadable {
        name: String,
        #[source]
        source: std::io::Error,
    },
    /// Only a list of sources put together by hand lacks one.
    #[error("included file {0} is not among the policy's files")]
    NotSent(String),
}

/// One valid `[[include]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Include {
    /// The included file's name as a policy source: its path, relative
    /// paths taken from the including file's directory.
    pub target: String,
    /// Forces the mode of every block rule of the included file, and of
    /// the files it includes in turn.
    pub mode: Option<Mode>,
    /// The `path` value.
    pub span: Range<usize>,
}

/// The name a file included as `path` from `including` has.
pub(super) fn target_name(including: &str, path: &str) -> String {
    match Path::new(including).parent() {
        Some(dir) if !Path::new(path).is_absolute() => dir.join(path).display().to_string(),
        _ => path.to_owned(),
    }
}

/// The includes of `source`, for the reader; the checker reports what is
/// wrong with them.
pub(super) fn includes_of(source: &Source) -> Vec<Include> {
    let Ok(root) = DeTable::parse(&source.text) else {
        return Vec::new();
    };
    let Some(value) = root.get_ref().get("include") else {
        return Vec::new();
    };
    let mut cx = FileCx {
        file: &source.name,
        index: LineIndex::new(&source.text),
        errors: Vec::new(),
    };
    check_includes(&mut cx, value)
}

/// The `include` array: tables with a `path` and an optional `mode`.
pub(super) fn check_includes(cx: &mut FileCx<'_>, value: &Value<'_>) -> Vec<Include> {
    let DeValue::Array(entries) = value.get_ref() else {
        cx.wrong_type(
            value,
            "`include` must be an array of tables (write [[include]], not [include])",
        );
        return Vec::new();
    };
    let mut includes = Vec::new();
    for entry in entries.iter() {
        let DeValue::Table(table) = entry.get_ref() else {
            cx.wrong_type(entry, "each `include` must be a table with a `path`");
            continue;
        };
        let (include, clean) = cx.clean(|cx| check_include(cx, entry.span(), table));
        if clean && let Some(include) = include {
            includes.push(include);
        }
    }
    includes
}

fn check_include(
    cx: &mut FileCx<'_>,
    header: Range<usize>,
    table: &DeTable<'_>,
) -> Option<Include> {
    let mut path = None;
    let mut mode = None;
    for (key, value) in table {
        match key.get_ref().as_ref() {
            "path" => match value.get_ref() {
                DeValue::String(text) if text.is_empty() => {
                    cx.error(value.span(), "`path` must not be empty");
                }
                DeValue::String(text) if text.contains('\0') => {
                    cx.error(value.span(), "`path` must not contain a NUL character");
                }
                DeValue::String(text) => path = Some((text.to_string(), value.span())),
                _ => cx.wrong_type(value, "`path` must be a string"),
            },
            "mode" => mode = check_mode(cx, value),
            other => cx.error(
                key.span(),
                format!("unknown key {other:?} in include; expected one of: {INCLUDE_KEYS}"),
            ),
        }
    }
    let Some((path, span)) = path else {
        cx.error(header, "include is missing `path`");
        return None;
    };
    Some(Include {
        target: target_name(cx.file, &path),
        mode,
        span,
    })
}

/// The name of the file [`in_mode`] writes.
pub const IN_MODE_NAME: &str = "(policy apply --mode)";

/// `sources`, read from `files`, with every block rule in `mode`: a file
/// of its own includes each of `files` in that mode, so the stored policy
/// and its hash say what was applied, and the files stay as written.
pub fn in_mode(sources: Vec<Source>, files: &[std::path::PathBuf], mode: Mode) -> Vec<Source> {
    let mode = match mode {
        Mode::Enforce => "enforce",
        Mode::Audit => "audit",
    };
    let mut text = format!(
        "# Written by `enforcer policy apply --mode {mode}`: the files below, with\n\
         # every block rule in {mode} mode.\nversion = 1\n"
    );
    for file in files {
        text.push_str(&format!(
            "\n[[include]]\npath = {}\nmode = \"{mode}\"\n",
            basic_string(&file.display().to_string())
        ));
    }
    let including = Source {
        name: IN_MODE_NAME.to_owned(),
        text,
    };
    std::iter::once(including).chain(sources).collect()
}

/// `text` as a TOML basic string.
fn basic_string(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        policy::{Policy, PolicyErrors, load_files, parse},
        testutil::ScratchDir,
    };

    /// Writes `files` (name, text) into `dir` and loads the first.
    fn load(dir: &ScratchDir, files: &[(&str, &str)]) -> Result<Policy, PolicyErrors> {
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        load_files(&[dir.join(files[0].0)])
    }

    fn modes(policy: &Policy) -> Vec<(String, Mode)> {
        policy
            .enforced_rules()
            .into_iter()
            .map(|rule| (rule.name, rule.mode))
            .collect()
    }

    const ZOOM: &str = "version = 1\n[[block]]\nname = \"zoom\"\ndomains = [\"zoom.us\"]\n\
                        [[block]]\nname = \"zoom-clients\"\nmode = \"enforce\"\n\
                        exec_names = [\"zoom\"]\n[[allow]]\nname = \"zoom-mirror\"\n\
                        domains = [\"mirror.zoom.us\"]\n";

    #[test]
    fn an_include_in_audit_mode_audits_every_block_rule_of_the_pack() {
        let dir = ScratchDir::new("include-audit");
        let policy = load(
            &dir,
            &[
                (
                    "policy.d/10-packs.toml",
                    "version = 1\n[[include]]\npath = \"../packs/zoom.toml\"\nmode = \"audit\"\n",
                ),
                ("packs/zoom.toml", ZOOM),
            ],
        )
        .unwrap();
        assert_eq!(
            modes(&policy),
            [
                ("zoom".to_owned(), Mode::Audit),
                ("zoom-clients".to_owned(), Mode::Audit),
                ("zoom-mirror".to_owned(), Mode::Enforce),
            ]
        );
        // Rules name the file they are written in.
        assert_eq!(
            policy.rules[0].origin.file,
            dir.join("policy.d/../packs/zoom.toml")
                .display()
                .to_string()
        );
        // Without a mode, the pack's own modes hold.
        let policy = load(
            &dir,
            &[(
                "policy.d/10-packs.toml",
                "version = 1\n[[include]]\npath = \"../packs/zoom.toml\"\n",
            )],
        )
        .unwrap();
        assert_eq!(
            modes(&policy)[..2],
            [
                ("zoom".to_owned(), Mode::Enforce),
                ("zoom-clients".to_owned(), Mode::Enforce)
            ]
        );
    }

    #[test]
    fn the_outermost_mode_wins_and_options_follow_it() {
        let dir = ScratchDir::new("include-nested");
        let policy = load(
            &dir,
            &[
                (
                    "outer.toml",
                    "version = 1\n[[include]]\npath = \"inner.toml\"\nmode = \"audit\"\n",
                ),
                (
                    "inner.toml",
                    "version = 1\n[options]\nblock_quic = true\nexec_trusted_only = true\n\
                     [[include]]\npath = \"zoom.toml\"\nmode = \"enforce\"\n",
                ),
                ("zoom.toml", ZOOM),
            ],
        )
        .unwrap();
        assert!(modes(&policy).contains(&("zoom".to_owned(), Mode::Audit)));
        assert!(modes(&policy).contains(&("options.block_quic".to_owned(), Mode::Audit)));
        assert_eq!(
            policy.options.exec_trusted_only,
            crate::policy::Trust::Audit
        );
        // A switch an enforced file turns on too stays enforced.
        let policy = load(
            &dir,
            &[(
                "top.toml",
                "version = 1\n[options]\nblock_quic = true\n[[include]]\npath = \"inner.toml\"\nmode = \"audit\"\n",
            )],
        )
        .unwrap();
        assert!(modes(&policy).contains(&("options.block_quic".to_owned(), Mode::Enforce)));
    }

    #[test]
    fn what_cannot_be_included_is_reported_at_the_include() {
        let dir = ScratchDir::new("include-errors");
        let errors = |files: &[(&str, &str)]| load(&dir, files).unwrap_err().to_string();
        let top = dir.join("top.toml").display().to_string();
        assert_eq!(
            errors(&[(
                "top.toml",
                "version = 1\n[[include]]\npath = \"gone.toml\"\n"
            )]),
            format!(
                "{top}:3:8: cannot read included file {}: No such file or directory (os error 2)",
                dir.join("gone.toml").display()
            )
        );
        assert_eq!(
            errors(&[
                (
                    "top.toml",
                    "version = 1\n[[include]]\npath = \"loop.toml\"\n"
                ),
                (
                    "loop.toml",
                    "version = 1\n[[include]]\npath = \"top.toml\"\n"
                ),
            ]),
            format!(
                "{}:3:8: {top} is already part of this policy; a file is read once",
                dir.join("loop.toml").display()
            )
        );
        assert_eq!(
            errors(&[
                (
                    "top.toml",
                    "version = 1\n[[include]]\npath = \"loader.toml\"\nmode = \"audit\"\n"
                ),
                (
                    "loader.toml",
                    "version = 1\n[options]\nexec_block_loader = true\n"
                ),
            ]),
            format!(
                "{}:3:21: `exec_block_loader` has no audit mode, and this file is included in \
                 audit mode; set it in a file that is enforced",
                dir.join("loader.toml").display()
            )
        );
        assert_eq!(
            errors(&[(
                "top.toml",
                "version = 1\n[[include]]\nfile = \"x.toml\"\nmode = \"off\"\n"
            )]),
            format!(
                "{top}:2:1: include is missing `path`\n\
                 {top}:3:1: unknown key \"file\" in include; expected one of: path, mode\n\
                 {top}:4:8: unknown mode \"off\"; expected \"enforce\" or \"audit\""
            )
        );
    }

    #[test]
    fn sources_sent_without_an_included_file_are_refused() {
        let sources = [Source {
            name: "top.toml".into(),
            text: "version = 1\n[[include]]\npath = \"zoom.toml\"\n".into(),
        }];
        assert_eq!(
            parse(&sources).unwrap_err().to_string(),
            "top.toml:3:8: included file zoom.toml is not among the policy's files"
        );
    }

    #[test]
    fn apply_in_a_mode_wraps_the_files_without_editing_them() {
        let dir = ScratchDir::new("include-in-mode");
        let file = dir.join("zoom \"pack\".toml");
        std::fs::write(&file, ZOOM).unwrap();
        let files = [file];
        let sources = crate::policy::read_files(&files).unwrap();
        let wrapped = in_mode(sources.clone(), &files, Mode::Audit);
        assert_eq!(wrapped[1..], sources[..]);
        let policy = parse(&wrapped).unwrap();
        assert_eq!(
            modes(&policy),
            [
                ("zoom".to_owned(), Mode::Audit),
                ("zoom-clients".to_owned(), Mode::Audit),
                ("zoom-mirror".to_owned(), Mode::Enforce),
            ]
        );
    }

    #[test]
    fn a_relative_path_is_taken_from_the_including_file() {
        assert_eq!(
            target_name("/etc/enforcer/policy.d/10-packs.toml", "../packs/zoom.toml"),
            "/etc/enforcer/policy.d/../packs/zoom.toml"
        );
        assert_eq!(
            target_name("policy.d/a.toml", "/usr/share/enforcer/policies/zoom.toml"),
            "/usr/share/enforcer/policies/zoom.toml"
        );
        assert_eq!(target_name("a.toml", "b.toml"), "b.toml");
    }
}
