//! Checks one file's top level and its `[options]` table.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::context::{FileCx, Value, integer};
use super::include::{Include, check_includes};
use super::model::RuleKind;
use enforcer_common::exec::UNTRUSTED_FILESYSTEMS;

use super::options::{FilesystemSet, MAX_DNS_TTL_SECONDS, OptionValue, Options, Trust};
use super::rule_check::{Draft, check_rules};
use super::values::check_mode;

const SUPPORTED_VERSION: i64 = 1;
const TOP_LEVEL_KEYS: &str = "version, mode, include, options, block, allow";

/// A valid `[options]` entry of one file.
pub(super) struct OptionSetting {
    pub key: &'static str,
    pub value: OptionValue,
    pub span: Range<usize>,
}

/// What one file contributes to the policy.
pub(super) struct Document {
    pub drafts: Vec<Draft>,
    pub options: Vec<OptionSetting>,
    pub includes: Vec<Include>,
}

pub(super) fn check_document(cx: &mut FileCx<'_>, root: &DeTable<'_>) -> Document {
    // Rules inherit the file's mode, so it must be known before them.
    let file_mode = root
        .get("mode")
        .and_then(|value| check_mode(cx, value))
        .unwrap_or_default();

    let mut drafts = Vec::new();
    let mut options = Vec::new();
    let mut includes = Vec::new();
    for (key, value) in root {
        match key.get_ref().as_ref() {
            "version" => check_version(cx, value),
            "mode" => {}
            "include" => includes = check_includes(cx, value),
            "options" => options = check_options(cx, value),
            "block" => check_rules(cx, RuleKind::Block, value, file_mode, &mut drafts),
            "allow" => check_rules(cx, RuleKind::Allow, value, file_mode, &mut drafts),
            other => cx.error(
                key.span(),
                format!("unknown key {other:?}; expected one of: {TOP_LEVEL_KEYS}"),
            ),
        }
    }
    if !root.contains_key("version") {
        cx.error(0..0, "missing `version`; add `version = 1` at the top");
    }
    // Blocks and allows come from two arrays; interleave them as written.
    drafts.sort_by_key(|draft| draft.start);
    Document {
        drafts,
        options,
        includes,
    }
}

/// The `[options]` table: known keys with values of their type. Entries
/// with an error are left out; the others still count.
fn check_options(cx: &mut FileCx<'_>, value: &Value<'_>) -> Vec<OptionSetting> {
    let DeValue::Table(table) = value.get_ref() else {
        cx.wrong_type(
            value,
            "`options` must be a table (write [options], not [[options]])",
        );
        return Vec::new();
    };
    let mut settings = Vec::new();
    for (key, value) in table {
        let name = key.get_ref().as_ref();
        // The default tells the key's type.
        let Some((known, default)) = Options::default().iter().find(|&(known, _)| known == name)
        else {
            let expected = Options::keys().collect::<Vec<_>>().join(", ");
            cx.error(
                key.span(),
                format!("unknown key {name:?} in [options]; expected one of: {expected}"),
            );
            continue;
        };
        let parsed = match default {
            OptionValue::Bool(_) => check_bool_option(cx, known, value),
            OptionValue::Trust(_) => check_trust_option(cx, known, value),
            OptionValue::Filesystems(_) => check_filesystems_option(cx, known, value),
            OptionValue::Seconds(_) => check_seconds_option(cx, known, value),
            OptionValue::Number(_) => check_number_option(cx, known, value),
        };
        if let Some(parsed) = parsed {
            settings.push(OptionSetting {
                key: known,
                value: parsed,
                span: value.span(),
            });
        }
    }
    settings
}

fn check_bool_option(cx: &mut FileCx<'_>, key: &str, value: &Value<'_>) -> Option<OptionValue> {
    if let DeValue::Boolean(on) = value.get_ref() {
        return Some(OptionValue::Bool(*on));
    }
    cx.wrong_type(value, &format!("`{key}` must be a boolean (true or false)"));
    None
}

fn check_trust_option(cx: &mut FileCx<'_>, key: &str, value: &Value<'_>) -> Option<OptionValue> {
    match value.get_ref() {
        DeValue::Boolean(true) => return Some(OptionValue::Trust(Trust::Enforce)),
        DeValue::Boolean(false) => return Some(OptionValue::Trust(Trust::Off)),
        DeValue::String(text) if text.as_ref() == "audit" => {
            return Some(OptionValue::Trust(Trust::Audit));
        }
        DeValue::String(text) => cx.error(
            value.span(),
            format!(r#"`{key}` must be true, false or "audit", found {text:?}"#),
        ),
        _ => cx.wrong_type(value, &format!(r#"`{key}` must be true, false or "audit""#)),
    }
    None
}

fn check_filesystems_option(
    cx: &mut FileCx<'_>,
    key: &str,
    value: &Value<'_>,
) -> Option<OptionValue> {
    let known = || {
        UNTRUSTED_FILESYSTEMS
            .iter()
            .map(|&(name, _)| name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let DeValue::Array(items) = value.get_ref() else {
        cx.wrong_type(
            value,
            &format!("`{key}` must be an array of filesystem names ({})", known()),
        );
        return None;
    };
    let (set, clean) = cx.clean(|cx| {
        let mut set = FilesystemSet::NONE;
        for item in items.iter() {
            let DeValue::String(name) = item.get_ref() else {
                cx.wrong_type(item, "each filesystem must be a string");
                continue;
            };
            match set.insert(name) {
                Some(true) => {}
                Some(false) => cx.error(item.span(), format!("duplicate filesystem {name:?}")),
                None => cx.error(
                    item.span(),
                    format!("unknown filesystem {name:?}; expected one of: {}", known()),
                ),
            }
        }
        set
    });
    clean.then_some(OptionValue::Filesystems(set))
}

fn check_seconds_option(cx: &mut FileCx<'_>, key: &str, value: &Value<'_>) -> Option<OptionValue> {
    let expected =
        format!("`{key}` must be an integer number of seconds (1-{MAX_DNS_TTL_SECONDS})");
    let DeValue::Integer(seconds) = value.get_ref() else {
        cx.wrong_type(value, &expected);
        return None;
    };
    match integer(seconds).map(u32::try_from) {
        Some(Ok(seconds)) if (1..=MAX_DNS_TTL_SECONDS).contains(&seconds) => {
            Some(OptionValue::Seconds(seconds))
        }
        _ => {
            cx.error(value.span(), format!("{expected}, found {seconds}"));
            None
        }
    }
}

fn check_number_option(cx: &mut FileCx<'_>, key: &str, value: &Value<'_>) -> Option<OptionValue> {
    let (low, high) = Options::number_range(key)?;
    let expected = format!("`{key}` must be an integer ({low}-{high})");
    let DeValue::Integer(number) = value.get_ref() else {
        cx.wrong_type(value, &expected);
        return None;
    };
    match integer(number).map(u32::try_from) {
        Some(Ok(number)) if (low..=high).contains(&number) => Some(OptionValue::Number(number)),
        _ => {
            cx.error(value.span(), format!("{expected}, found {number}"));
            None
        }
    }
}

fn check_version(cx: &mut FileCx<'_>, value: &Value<'_>) {
    let DeValue::Integer(version) = value.get_ref() else {
        cx.wrong_type(value, "`version` must be an integer");
        return;
    };
    if integer(version) != Some(SUPPORTED_VERSION) {
        cx.error(
            value.span(),
            format!("unsupported version {version}; only version {SUPPORTED_VERSION} is supported"),
        );
    }
}
