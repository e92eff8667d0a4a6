//! One file being checked: where its errors go and where they point.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeInteger, DeValue};

use super::source::PolicyError;
use super::span::LineIndex;

pub(super) type Value<'i> = Spanned<DeValue<'i>>;

/// One file being checked.
pub(super) struct FileCx<'s> {
    pub file: &'s str,
    pub index: LineIndex<'s>,
    pub errors: Vec<PolicyError>,
}

impl FileCx<'_> {
    pub(super) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = self.index.position(span.start);
        self.errors.push(PolicyError {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
        });
    }

    pub(super) fn wrong_type(&mut self, value: &Value<'_>, expected: &str) {
        let found = value.get_ref().type_str();
        self.error(value.span(), format!("{expected}, found {found}"));
    }

    /// Runs `check` and tells whether it added no error.
    pub(super) fn clean<T>(&mut self, check: impl FnOnce(&mut Self) -> T) -> (T, bool) {
        let before = self.errors.len();
        let result = check(self);
        (result, self.errors.len() == before)
    }
}

pub(super) fn integer(value: &DeInteger<'_>) -> Option<i64> {
    i64::from_str_radix(value.as_str(), value.radix()).ok()
}
