//! Checks the value of each rule key, and turns it into what [`Rule`]
//! holds.
//!
//! [`Rule`]: super::model::Rule

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;

use toml::de::{DeArray, DeValue};

use super::cidr::Cidr;
use super::context::{FileCx, Value, integer};
use super::domain::Domain;
use super::exec::{ExecPath, Sha256, check_exec_name};
use super::model::{Mode, PortRange, ProtocolSet};

const MAX_NAME_CHARS: usize = 64;

pub(super) fn check_mode(cx: &mut FileCx<'_>, value: &Value<'_>) -> Option<Mode> {
    let DeValue::String(mode) = value.get_ref() else {
        cx.wrong_type(value, "`mode` must be a string");
        return None;
    };
    match mode.as_ref() {
        "enforce" => Some(Mode::Enforce),
        "audit" => Some(Mode::Audit),
        other => {
            cx.error(
                value.span(),
                format!(r#"unknown mode {other:?}; expected "enforce" or "audit""#),
            );
            None
        }
    }
}

pub(super) fn check_switch(cx: &mut FileCx<'_>, key: &str, value: &Value<'_>) -> Option<bool> {
    if let DeValue::Boolean(on) = value.get_ref() {
        return Some(*on);
    }
    cx.wrong_type(value, &format!("`{key}` must be a boolean (true or false)"));
    None
}

pub(super) fn check_name(cx: &mut FileCx<'_>, value: &Value<'_>) -> Option<String> {
    let DeValue::String(name) = value.get_ref() else {
        cx.wrong_type(value, "`name` must be a string");
        return None;
    };
    let length = name.chars().count();
    let message = if name.is_empty() {
        "rule name must not be empty".to_owned()
    } else if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        format!(
            "rule name {name:?} contains {bad:?}; only letters A-Z and a-z, digits, '.', '_' \
             and '-' are allowed"
        )
    } else if length > MAX_NAME_CHARS {
        format!("rule name is {length} characters long; at most {MAX_NAME_CHARS} are allowed")
    } else {
        return Some(name.to_string());
    };
    cx.error(value.span(), message);
    None
}

/// The array under `key`, refusing other types and an empty list.
fn non_empty_array<'a, 'i>(
    cx: &mut FileCx<'_>,
    value: &'a Value<'i>,
    key: &str,
    what: &str,
    if_empty: &str,
) -> Option<&'a DeArray<'i>> {
    let DeValue::Array(items) = value.get_ref() else {
        cx.wrong_type(value, &format!("`{key}` must be an array of {what}"));
        return None;
    };
    if items.is_empty() {
        cx.error(
            value.span(),
            format!("`{key}` must not be empty; {if_empty}"),
        );
        return None;
    }
    Some(items)
}

/// How one list-of-strings key is described in its errors.
struct ListKey<'a> {
    key: &'a str,
    /// "CIDR strings": `` `cidrs` must be an array of CIDR strings ``.
    items: &'a str,
    /// "one network": `` `cidrs` must not be empty; list at least one network, ... ``.
    one: &'a str,
    /// "CIDR": "each CIDR must be a string", "duplicate CIDR ...".
    item: &'a str,
    /// Whether a duplicate's message shows its parsed value even when it
    /// reads the same as the text.
    always_show_value: bool,
}

/// A non-empty array of strings, each parsed by `parse`, with no two the
/// same after parsing. Duplicates are reported at the later entry.
fn check_string_list<T: Clone + Eq + Hash + Display>(
    cx: &mut FileCx<'_>,
    value: &Value<'_>,
    spec: &ListKey<'_>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<Vec<T>> {
    let ListKey {
        key,
        items,
        one,
        item: what,
        always_show_value,
    } = *spec;
    let items = non_empty_array(
        cx,
        value,
        key,
        items,
        &format!("list at least {one}, or leave `{key}` out"),
    )?;
    let (values, clean) = cx.clean(|cx| {
        let mut values: Vec<T> = Vec::with_capacity(items.len());
        // Where each value was first seen; policies list up to millions of
        // CIDRs, so no pairwise comparison.
        let mut first_seen: HashMap<T, usize> = HashMap::with_capacity(items.len());
        for item in items.iter() {
            let DeValue::String(text) = item.get_ref() else {
                cx.wrong_type(item, &format!("each {what} must be a string"));
                continue;
            };
            let parsed = match parse(text) {
                Ok(parsed) => parsed,
                Err(message) => {
                    cx.error(item.span(), message);
                    continue;
                }
            };
            // Compared after parsing, so e.g. "10.0.0.1" and
            // "::ffff:10.0.0.1/128" are the same network.
            if let Some(&first) = first_seen.get(&parsed) {
                let (line, column) = cx.index.position(first);
                let shown = parsed.to_string();
                let shown = if always_show_value || shown != text.as_ref() {
                    format!(": {shown}")
                } else {
                    String::new()
                };
                cx.error(
                    item.span(),
                    format!(
                        "duplicate {what} {text:?}{shown} is already listed in this rule at \
                         line {line}, column {column}"
                    ),
                );
                continue;
            }
            first_seen.insert(parsed.clone(), item.span().start);
            values.push(parsed);
        }
        values
    });
    clean.then_some(values)
}

pub(super) fn check_cidrs(cx: &mut FileCx<'_>, value: &Value<'_>) -> Option<Vec<Cidr>> {
    let spec = ListKey {
        key: "cidrs",
        items: "CIDR strings",
        one: "one network",
        item: "CIDR",
        always_show_value: true,
    };
    check_string_list(cx, value, &spec, |text| {
        text.parse::<Cidr>().map_err(|e| e.to_string())
    })
}

pub(super) fn check_domains(cx: &mut FileCx<'_>, value: &Value<'_>) -> Option<Vec<Domain>> {
    let spec = ListKey {
        key: "domains",
        items: "domain name strings",
        one: "one domain",
        item: "domain",
        always_show_value: false,
    };
    check_string_list(cx, value, &spec, |text| {
        text.parse::<Domain>().map_err(|e| e.to_string())
    })
}

pub(super) fn check_exec_paths(cx: &mut FileCx<'_>, value: &Value<'_>) -> Option<Vec<ExecPath>> {
    let spec = ListKey {
        key: "exec_paths",
        items: "path strings",
        one: "one path",
        item: "exec path",
        always_show_value: false,
    };
    check_string_list(cx, value, &spec, |text| {
        text.parse::<ExecPath>().map_err(|e| e.to_string())
    })
}

pub(super) fn check_exec_names(cx: &mut FileCx<'_>, value: &Value<'_>) -> Option<Vec<String>> {
    let spec = ListKey {
        key: "exec_names",
        items: "file name strings",
        one: "one name",
        item: "exec name",
        always_show_value: false,
    };
    check_string_list(cx, value, &spec, |text| {
        check_exec_name(text)
            .map(|()| text.to_owned())
            .map_err(|e| e.to_string())
    })
}

pub(super) fn check_exec_sha256(cx: &mut FileCx<'_>, value: &Value<'_>) -> Option<Vec<Sha256>> {
    let spec = ListKey {
        key: "exec_sha256",
        items: "SHA-256 hex strings",
        one: "one hash",
        item: "SHA-256",
        always_show_value: false,
    };
    check_string_list(cx, value, &spec, |text| {
        text.parse::<Sha256>().map_err(|e| e.to_string())
    })
}

pub(super) fn check_ports(cx: &mut FileCx<'_>, value: &Value<'_>) -> Option<Vec<PortRange>> {
    let items = non_empty_array(
        cx,
        value,
        "ports",
        "port strings",
        "leave `ports` out to match every port",
    )?;
    let (ports, clean) = cx.clean(|cx| {
        let mut ports = Vec::with_capacity(items.len());
        for item in items.iter() {
            let parsed = match item.get_ref() {
                DeValue::String(text) => parse_port_range(text),
                DeValue::Integer(port) => {
                    port_number(integer(port), &port.to_string()).map(|port| PortRange {
                        first: port,
                        last: port,
                    })
                }
                _ => {
                    cx.wrong_type(
                        item,
                        r#"each port must be a string like "443" or "3478-3481", or an integer"#,
                    );
                    continue;
                }
            };
            match parsed {
                Ok(range) => ports.push(range),
                Err(message) => cx.error(item.span(), message),
            }
        }
        ports
    });
    clean.then_some(ports)
}

/// "N" or "A-B" with 1 <= A <= B <= 65535.
fn parse_port_range(text: &str) -> Result<PortRange, String> {
    let (first, last) = text.split_once('-').unwrap_or((text, text));
    let first = port_text(first, text)?;
    let last = port_text(last, text)?;
    if first > last {
        return Err(format!(
            "inverted port range {text:?}: {first} is greater than {last}"
        ));
    }
    Ok(PortRange { first, last })
}

fn port_text(part: &str, whole: &str) -> Result<u16, String> {
    // Digits only: `str::parse` would also take "+443".
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            r#"invalid port {whole:?}; expected a port like "443" or a range like "3478-3481""#
        ));
    }
    port_number(part.parse::<i64>().ok(), part)
}

/// `value` is `None` when the number does not even fit an i64.
fn port_number(value: Option<i64>, text: &str) -> Result<u16, String> {
    match value.map(u16::try_from) {
        Some(Ok(port)) if port != 0 => Ok(port),
        _ => Err(format!("port {text} is out of range (1-65535)")),
    }
}

pub(super) fn check_protocols(cx: &mut FileCx<'_>, value: &Value<'_>) -> Option<ProtocolSet> {
    let items = non_empty_array(
        cx,
        value,
        "protocols",
        "protocol strings",
        "leave `protocols` out to match every protocol",
    )?;
    let (set, clean) = cx.clean(|cx| {
        let mut set = ProtocolSet::default();
        for item in items.iter() {
            let DeValue::String(name) = item.get_ref() else {
                cx.wrong_type(item, "each protocol must be a string");
                continue;
            };
            let slot = match name.as_ref() {
                "tcp" => &mut set.tcp,
                "udp" => &mut set.udp,
                other => {
                    cx.error(
                        item.span(),
                        format!(r#"unknown protocol {other:?}; expected "tcp" or "udp""#),
                    );
                    continue;
                }
            };
            if *slot {
                cx.error(item.span(), format!("duplicate protocol {name:?}"));
            }
            *slot = true;
        }
        set
    });
    clean.then_some(set)
}
