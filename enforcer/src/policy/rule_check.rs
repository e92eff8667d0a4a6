//! Checks `[[block]]` and `[[allow]]` tables against [`RULE_KEYS`] and
//! builds their rules.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::context::{FileCx, Value};
use super::model::{Mode, Origin, Rule, RuleKind};
use super::rule_keys::{RULE_KEYS, Role, RuleKey, keys_of};

/// A rule as far as it could be checked: the name (for uniqueness) even when
/// other keys are wrong, the rule itself only when everything was right.
pub(super) struct Draft {
    pub start: usize,
    pub name: Option<(String, Range<usize>)>,
    pub rule: Option<Rule>,
}

pub(super) fn check_rules(
    cx: &mut FileCx<'_>,
    kind: RuleKind,
    value: &Value<'_>,
    file_mode: Mode,
    drafts: &mut Vec<Draft>,
) {
    let DeValue::Array(items) = value.get_ref() else {
        cx.wrong_type(
            value,
            &format!("`{kind}` must be an array of tables (write [[{kind}]], not [{kind}])"),
        );
        return;
    };
    for item in items.iter() {
        match item.get_ref() {
            DeValue::Table(table) => {
                drafts.push(check_rule(cx, kind, item.span(), table, file_mode));
            }
            _ => cx.wrong_type(item, &format!("each `{kind}` entry must be a table")),
        }
    }
}

fn check_rule(
    cx: &mut FileCx<'_>,
    kind: RuleKind,
    span: Range<usize>,
    table: &DeTable<'_>,
    file_mode: Mode,
) -> Draft {
    let before = cx.errors.len();
    let mut rule = Rule {
        kind,
        mode: file_mode,
        origin: Origin {
            file: cx.file.to_owned(),
            line: cx.index.line(span.start),
        },
        ..Rule::default()
    };
    for (key, value) in table {
        let name = key.get_ref().as_ref();
        match RULE_KEYS.iter().find(|known| known.key == name) {
            Some(known) if known.allowed_on(kind) => (known.check)(cx, value, &mut rule),
            Some(RuleKey {
                block_only: Some(why),
                ..
            }) => cx.error(key.span(), format!("`{name}` {why}")),
            _ => {
                let expected = keys_of(kind).map(|key| key.key).collect::<Vec<_>>();
                cx.error(
                    key.span(),
                    format!(
                        "unknown key {name:?} in {kind} rule; expected one of: {}",
                        expected.join(", ")
                    ),
                );
            }
        }
    }

    // A name is never empty once checked, so an empty one is missing or
    // wrong.
    let name = table
        .get("name")
        .filter(|_| !rule.name.is_empty())
        .map(|value| (rule.name.clone(), value.span()));
    let label = match &name {
        Some((name, _)) => format!("{kind} rule {name:?}"),
        None => format!("{kind} rule"),
    };
    for required in RULE_KEYS
        .iter()
        .filter(|key| matches!(key.role, Role::Name))
    {
        if !table.contains_key(required.key) {
            cx.error(
                span.clone(),
                format!("{label} is missing `{}`", required.key),
            );
        }
    }
    let is_target = |key: &RuleKey| matches!(key.role, Role::Target { .. });
    // A target key that is present but wrong (empty, or refused on an allow
    // rule) already has its own error.
    if !RULE_KEYS
        .iter()
        .any(|key| is_target(key) && table.contains_key(key.key))
    {
        let targets = keys_of(kind)
            .filter(|key| is_target(key))
            .map(|key| format!("`{}`", key.key))
            .collect::<Vec<_>>()
            .join(", ");
        cx.error(
            span.clone(),
            format!("{label} needs at least one of {targets}"),
        );
    }
    for qualifier in RULE_KEYS {
        if let Some(of) = qualifier.role.needs()
            && !table.contains_key(of)
            && let Some((key, _)) = table.get_key_value(qualifier.key)
        {
            let qualifier = qualifier.key;
            cx.error(
                key.span(),
                format!(
                    "`{qualifier}` only qualifies `{of}`, and this rule has none; add `{of}` or \
                     remove `{qualifier}`"
                ),
            );
        }
    }

    Draft {
        start: span.start,
        rule: (name.is_some() && cx.errors.len() == before).then_some(rule),
        name,
    }
}
