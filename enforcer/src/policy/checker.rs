//! Walks the spanned TOML tree of each file, validates it and builds rules.
//!
//! Every check records its error and carries on, so one run reports all the
//! problems it can see. A rule is only built when its own checks all passed;
//! the policy as a whole is only returned when no file had any error.

use std::collections::HashMap;
use std::fmt::Display;

use toml::de::DeTable;

use super::context::FileCx;
use super::document::{OptionSetting, check_document};
use super::model::{Policy, Rule};
use super::options::Options;
use super::rule_check::Draft;
use super::source::{PolicyError, PolicyErrors, Source};
use super::span::LineIndex;

/// The options that bound how long a learned address stays blocked.
const TTL_MIN: &str = "dns_ttl_min_seconds";
const TTL_MAX: &str = "dns_ttl_max_seconds";

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

    pub(super) fn check(&mut self, source: &Source) {
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
                    self.set_option(&mut cx, setting);
                }
                for draft in document.drafts {
                    self.register(&mut cx, draft);
                }
            }
        }
        // Checks run key by key, and TOML tables are not kept in file order;
        // sorting puts the report back in reading order.
        cx.errors.sort_by_key(|e| (e.line, e.column));
        self.errors.append(&mut cx.errors);
        self.error_ends.push(self.errors.len());
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
    fn set_option(&mut self, cx: &mut FileCx<'_>, setting: OptionSetting) {
        let OptionSetting { key, value, span } = setting;
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
            let (line, column) = cx.index.position(span.start);
            let place = Place {
                file_number: self.error_ends.len(),
                file: cx.file.to_owned(),
                line,
                column,
            };
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

    pub(super) fn finish(mut self) -> Result<Policy, PolicyErrors> {
        self.check_ttl_bounds();
        if self.errors.is_empty() {
            Ok(Policy {
                rules: self.rules,
                options: self.options,
            })
        } else {
            Err(PolicyErrors(self.errors))
        }
    }
}
