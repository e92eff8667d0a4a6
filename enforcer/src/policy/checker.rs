//! Walks the spanned TOML tree of each file, validates it and builds rules.
//!
//! Every check records its error and carries on, so one run reports all the
//! problems it can see. A rule is only built when its own checks all passed;
//! the policy as a whole is only returned when no file had any error.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Display;

use toml::de::DeTable;

use super::context::FileCx;
use super::document::{OptionSetting, check_document};
use super::include::{Include, IncludeError};
use super::model::{Mode, Policy, Rule, RuleKind};
use super::options::{OptionValue, Options, Trust};
use super::rule_check::Draft;
use super::source::{PolicyError, PolicyErrors, Source};
use super::span::LineIndex;

/// The options that bound how long a learned address stays blocked.
const TTL_MIN: &str = "dns_ttl_min_seconds";
const TTL_MAX: &str = "dns_ttl_max_seconds";

/// The `[options]` switches that become rules (see
/// [`Policy::enforced_rules`]), and so can report instead of refusing
/// when only files included in audit mode turn them on.
const AUDITED_SWITCHES: [&str; 2] = ["block_dot", "block_quic"];

/// Accumulates rules and errors over all files of one policy.
#[derive(Default)]
pub(super) struct Checker {
    rules: Vec<Rule>,
    errors: Vec<PolicyError>,
    /// First definition of each rule name, for the duplicate message.
    names: HashMap<String, (String, u32, u32)>,
    options: Options,
    /// Where each option was first set, for the conflict messages.
    options_set: HashMap<&'static str, Place>,
    /// Where each file's errors end in `errors`, in file order, so that a
    /// check made once all files are read can still put its error among
    /// its file's, in reading order.
    error_ends: Vec<usize>,
    /// The files checked so far, by name.
    checked: HashSet<String>,
    /// Each included file's mode override, set by its include or by one
    /// further up: the outermost wins.
    overrides: HashMap<String, Option<Mode>>,
    /// Includes whose file has not come yet.
    pending: Vec<(String, Place)>,
    /// Why the reader did not bring an included file.
    unread_includes: HashMap<String, IncludeError>,
    /// The options a file not included in audit mode sets.
    enforcing_options: HashSet<&'static str>,
}

/// Where a value was written.
struct Place {
    /// Which file it is in, counting the policy's files from 0.
    file_number: usize,
    file: String,
    line: u32,
    column: u32,
}

impl Place {
    /// Orders places as the policy reads: files in order, then lines.
    fn reading_order(&self) -> (usize, u32, u32) {
        (self.file_number, self.line, self.column)
    }
}

impl Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

impl Checker {
    pub(super) fn unreadable(&mut self, file: String, error: &std::io::Error) {
        self.errors.push(PolicyError {
            file,
            line: 0,
            column: 0,
            message: format!("cannot read file: {error}"),
        });
        self.error_ends.push(self.errors.len());
    }

    /// The reader did not bring the file an include names.
    pub(super) fn unread_include(&mut self, name: String, why: IncludeError) {
        self.unread_includes.insert(name, why);
    }

    pub(super) fn check(&mut self, source: &Source) {
        let mode = self.overrides.get(&source.name).copied().flatten();
        let mut cx = FileCx {
            file: &source.name,
            index: LineIndex::new(&source.text),
            errors: Vec::new(),
        };
        match DeTable::parse(&source.text) {
            // The tree after a syntax error is partial; checking it would
            // only add noise, so that file stops at its syntax error.
            Err(error) => {
                let span = error.span().unwrap_or(0..0);
                let mut message = error.message().replace('\n', "; ");
                // toml does not say which key; the span covers it.
                if message == "duplicate key"
                    && let Some(key) = source.text.get(span.clone())
                {
                    message = format!("duplicate key `{key}`");
                }
                cx.error(span, format!("invalid TOML: {message}"));
            }
            Ok(root) => {
                let document = check_document(&mut cx, root.get_ref());
                for setting in document.options {
                    self.set_option(&mut cx, setting, mode == Some(Mode::Audit));
                }
                for mut draft in document.drafts {
                    if let (Some(mode), Some(rule)) = (mode, &mut draft.rule)
                        && rule.kind == RuleKind::Block
                    {
                        rule.mode = mode;
                    }
                    self.register(&mut cx, draft);
                }
                for include in document.includes {
                    self.include(&mut cx, &source.name, include, mode);
                }
            }
        }
        // Checks run key by key, and TOML tables are not kept in file order;
        // sorting puts the report back in reading order.
        cx.errors.sort_by_key(|e| (e.line, e.column));
        self.errors.append(&mut cx.errors);
        self.error_ends.push(self.errors.len());
        self.checked.insert(source.name.clone());
    }

    /// Where `offset` is in the file being checked.
    fn place(&self, cx: &FileCx<'_>, offset: usize) -> Place {
        let (line, column) = cx.index.position(offset);
        Place {
            file_number: self.error_ends.len(),
            file: cx.file.to_owned(),
            line,
            column,
        }
    }

    /// Records an include, to be met by a later file of the policy.
    fn include(&mut self, cx: &mut FileCx<'_>, name: &str, include: Include, mode: Option<Mode>) {
        let Include { target, span, .. } = &include;
        if self.checked.contains(target) || target == name || self.overrides.contains_key(target) {
            cx.error(
                span.clone(),
                IncludeError::AlreadyRead(target.clone()).to_string(),
            );
            return;
        }
        let place = self.place(cx, span.start);
        self.overrides.insert(target.clone(), mode.or(include.mode));
        self.pending.push((target.clone(), place));
    }

    /// Enforces unique names across files, in file order, so the error
    /// lands on the later definition.
    fn register(&mut self, cx: &mut FileCx<'_>, draft: Draft) {
        if let Some((name, span)) = draft.name {
            let (line, column) = cx.index.position(span.start);
            if let Some((file, first_line, first_column)) = self.names.get(&name) {
                cx.error(
                    span,
                    format!(
                        "duplicate rule name {name:?}; it is first defined at \
                         {file}:{first_line}:{first_column}"
                    ),
                );
            } else {
                self.names.insert(name, (cx.file.to_owned(), line, column));
            }
        }
        if let Some(rule) = draft.rule {
            self.rules.push(rule);
        }
    }

    /// Files may each set an option, but must agree on its value; a
    /// conflict is reported at the later value.
    fn set_option(&mut self, cx: &mut FileCx<'_>, setting: OptionSetting, audited: bool) {
        let OptionSetting {
            key,
            mut value,
            span,
        } = setting;
        if audited {
            match value {
                OptionValue::Trust(Trust::Enforce) => value = OptionValue::Trust(Trust::Audit),
                OptionValue::Bool(true) if key.starts_with("exec_") => {
                    cx.error(
                        span,
                        format!(
                            "`{key}` has no audit mode, and this file is included in audit mode; \
                             set it in a file that is enforced"
                        ),
                    );
                    return;
                }
                _ => {}
            }
        } else {
            self.enforcing_options.insert(key);
        }
        if let Some(first) = self.options_set.get(key) {
            let current = self
                .options
                .get(key)
                .expect("check_options only returns known keys");
            if current != value {
                cx.error(
                    span,
                    format!(
                        "option `{key}` is set to {value} here but to {current} at {first}; \
                         the files of a policy must agree"
                    ),
                );
            }
        } else {
            let set = self.options.set(key, value);
            assert!(set, "check_options only returns values of the key's type");
            let place = self.place(cx, span.start);
            self.options_set.insert(key, place);
        }
    }

    /// The TTL bounds may each come from any file, so they are compared
    /// once all files are read. A conflict is reported at the bound set
    /// later in reading order; the defaults are in order, so at least one
    /// of the two was set.
    fn check_ttl_bounds(&mut self) {
        let min = (TTL_MIN, self.options.dns_ttl_min_seconds);
        let max = (TTL_MAX, self.options.dns_ttl_max_seconds);
        if min.1 <= max.1 {
            return;
        }
        let order = |key| self.options_set.get(key).map(Place::reading_order);
        let ((key, value), (other, other_value)) = if order(TTL_MAX) > order(TTL_MIN) {
            (max, min)
        } else {
            (min, max)
        };
        let other_place = match self.options_set.get(other) {
            Some(place) => format!("at {place}"),
            None => "by default".to_owned(),
        };
        let message = format!(
            "option `{key}` is {value} here but `{other}` is {other_value} {other_place}; \
             `{TTL_MIN}` must not be greater than `{TTL_MAX}`"
        );
        let place = &self.options_set[key];
        let (file_number, line, column) = place.reading_order();
        let error = PolicyError {
            file: place.file.clone(),
            line,
            column,
            message,
        };
        let start = match file_number {
            0 => 0,
            n => self.error_ends[n - 1],
        };
        let end = self.error_ends[file_number];
        let at = start
            + self.errors[start..end].partition_point(|e| (e.line, e.column) <= (line, column));
        self.errors.insert(at, error);
        for end in &mut self.error_ends[file_number..] {
            *end += 1;
        }
    }

    /// Includes whose file never came: the reader could not bring it, or
    /// a list of sources was put together without it.
    fn check_includes_met(&mut self) {
        for (target, place) in std::mem::take(&mut self.pending) {
            if self.checked.contains(&target) {
                continue;
            }
            let message = self
                .unread_includes
                .remove(&target)
                .unwrap_or_else(|| IncludeError::NotSent(target.clone()))
                .to_string();
            self.errors.push(PolicyError {
                file: place.file,
                line: place.line,
                column: place.column,
                message,
            });
        }
    }

    /// The network switches only files included in audit mode turn on.
    fn audited_switches(&self) -> BTreeSet<String> {
        AUDITED_SWITCHES
            .iter()
            .filter(|key| {
                self.options.get(key) == Some(OptionValue::Bool(true))
                    && !self.enforcing_options.contains(*key)
            })
            .map(|key| (*key).to_owned())
            .collect()
    }

    pub(super) fn finish(mut self) -> Result<Policy, PolicyErrors> {
        self.check_ttl_bounds();
        self.check_includes_met();
        if self.errors.is_empty() {
            Ok(Policy {
                audited_switches: self.audited_switches(),
                rules: self.rules,
                options: self.options,
            })
        } else {
            Err(PolicyErrors(self.errors))
        }
    }
}
