//! Walks the spanned TOML tree of each file, validates it and builds rules.
//!
//! Every check records its error and carries on, so one run reports all the
//! problems it can see. A rule is only built when its own checks all passed;
//! the policy as a whole is only returned when no file had any error.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeArray, DeInteger, DeTable, DeValue};

use super::exec::check_exec_name;
use super::span::LineIndex;
use super::{
    Cidr, Domain, ExecPath, MAX_DNS_TTL_SECONDS, Mode, OptionValue, Options, Origin, Policy,
    PolicyError, PolicyErrors, PortRange, ProtocolSet, Rule, RuleKind, Sha256, Source,
};

const SUPPORTED_VERSION: i64 = 1;
const MAX_NAME_CHARS: usize = 64;
const TOP_LEVEL_KEYS: &str = "version, mode, options, block, allow";
const BLOCK_KEYS: &str =
    "name, mode, cidrs, domains, ports, protocols, exec_paths, exec_names, exec_sha256";
const ALLOW_KEYS: &str = "name, cidrs, domains, ports, protocols, exec_paths";
/// What a rule matches; it needs at least one of them.
const BLOCK_TARGETS: [&str; 5] = [
    "cidrs",
    "domains",
    "exec_paths",
    "exec_names",
    "exec_sha256",
];
const ALLOW_TARGETS: [&str; 3] = ["cidrs", "domains", "exec_paths"];
/// The options that bound how long a learned address stays blocked.
const TTL_MIN: &str = "dns_ttl_min_seconds";
const TTL_MAX: &str = "dns_ttl_max_seconds";

type Value<'i> = Spanned<DeValue<'i>>;

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

/// One file being checked.
struct FileCx<'s> {
    file: &'s str,
    index: LineIndex<'s>,
    errors: Vec<PolicyError>,
}

impl FileCx<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = self.index.position(span.start);
        self.errors.push(PolicyError {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
        });
    }

    fn wrong_type(&mut self, value: &Value<'_>, expected: &str) {
        let found = value.get_ref().type_str();
        self.error(value.span(), format!("{expected}, found {found}"));
    }

    /// Runs `check` and tells whether it added no error.
    fn clean<T>(&mut self, check: impl FnOnce(&mut Self) -> T) -> (T, bool) {
        let before = self.errors.len();
        let result = check(self);
        (result, self.errors.len() == before)
    }
}

/// A rule as far as it could be checked: the name (for uniqueness) even when
/// other keys are wrong, the rule itself only when everything was right.
struct Draft {
    start: usize,
    name: Option<(String, Range<usize>)>,
    rule: Option<Rule>,
}

/// A valid `[options]` entry of one file.
struct OptionSetting {
    key: &'static str,
    value: OptionValue,
    span: Range<usize>,
}

/// What one file contributes to the policy.
struct Document {
    drafts: Vec<Draft>,
    options: Vec<OptionSetting>,
}

fn check_document(cx: &mut FileCx<'_>, root: &DeTable<'_>) -> Document {
    // Rules inherit the file's mode, so it must be known before them.
    let file_mode = root
        .get("mode")
        .and_then(|value| check_mode(cx, value))
        .unwrap_or_default();

    let mut drafts = Vec::new();
    let mut options = Vec::new();
    for (key, value) in root {
        match key.get_ref().as_ref() {
            "version" => check_version(cx, value),
            "mode" => {}
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
    Document { drafts, options }
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
            OptionValue::Seconds(_) => check_seconds_option(cx, known, value),
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

fn check_mode(cx: &mut FileCx<'_>, value: &Value<'_>) -> Option<Mode> {
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

fn check_rules(
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
    let mut name = None;
    let mut mode = None;
    let mut cidrs = None;
    let mut domains = None;
    let mut ports = None;
    let mut protocols = None;
    let mut exec_paths = None;
    let mut exec_names = None;
    let mut exec_sha256 = None;

    for (key, value) in table {
        match (key.get_ref().as_ref(), kind) {
            ("name", _) => name = check_name(cx, value).map(|n| (n, value.span())),
            ("mode", RuleKind::Block) => mode = check_mode(cx, value),
            ("mode", RuleKind::Allow) => cx.error(
                key.span(),
                "`mode` is not allowed on allow rules; a matching allow rule always wins",
            ),
            ("cidrs", _) => cidrs = check_cidrs(cx, value),
            ("domains", _) => domains = check_domains(cx, value),
            ("ports", _) => ports = check_ports(cx, value),
            ("protocols", _) => protocols = check_protocols(cx, value),
            ("exec_paths", _) => exec_paths = check_exec_paths(cx, value),
            ("exec_names", RuleKind::Block) => exec_names = check_exec_names(cx, value),
            ("exec_sha256", RuleKind::Block) => exec_sha256 = check_exec_sha256(cx, value),
            (key_name @ ("exec_names" | "exec_sha256"), RuleKind::Allow) => cx.error(
                key.span(),
                format!("`{key_name}` cannot be allowed; allow specific `exec_paths` instead"),
            ),
            (other, _) => {
                let expected = match kind {
                    RuleKind::Block => BLOCK_KEYS,
                    RuleKind::Allow => ALLOW_KEYS,
                };
                cx.error(
                    key.span(),
                    format!("unknown key {other:?} in {kind} rule; expected one of: {expected}"),
                );
            }
        }
    }

    let label = match &name {
        Some((name, _)) => format!("{kind} rule {name:?}"),
        None => format!("{kind} rule"),
    };
    if !table.contains_key("name") {
        cx.error(span.clone(), format!("{label} is missing `name`"));
    }
    // A target key that is present but wrong (empty, or refused on an allow
    // rule) already has its own error.
    if !BLOCK_TARGETS.iter().any(|key| table.contains_key(*key)) {
        let targets = match kind {
            RuleKind::Block => &BLOCK_TARGETS[..],
            RuleKind::Allow => &ALLOW_TARGETS[..],
        };
        let targets = targets
            .iter()
            .map(|key| format!("`{key}`"))
            .collect::<Vec<_>>()
            .join(", ");
        cx.error(
            span.clone(),
            format!("{label} needs at least one of {targets}"),
        );
    }
    if !table.contains_key("cidrs") {
        for qualifier in ["ports", "protocols"] {
            if let Some((key, _)) = table.get_key_value(qualifier) {
                cx.error(
                    key.span(),
                    format!(
                        "`{qualifier}` only qualify `cidrs`, and this rule has none; add \
                         `cidrs` or remove `{qualifier}`"
                    ),
                );
            }
        }
    }

    let rule = match &name {
        Some((name, _)) if cx.errors.len() == before => Some(Rule {
            name: name.clone(),
            kind,
            mode: mode.unwrap_or(file_mode),
            // Each key is either absent or was valid: no error was recorded.
            cidrs: cidrs.unwrap_or_default(),
            domains: domains.unwrap_or_default(),
            exec_paths: exec_paths.unwrap_or_default(),
            exec_names: exec_names.unwrap_or_default(),
            exec_sha256: exec_sha256.unwrap_or_default(),
            ports,
            protocols,
            origin: Origin {
                file: cx.file.to_owned(),
                line: cx.index.line(span.start),
            },
        }),
        _ => None,
    };
    Draft {
        start: span.start,
        name,
        rule,
    }
}

fn check_name(cx: &mut FileCx<'_>, value: &Value<'_>) -> Option<String> {
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

fn check_cidrs(cx: &mut FileCx<'_>, value: &Value<'_>) -> Option<Vec<Cidr>> {
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

fn check_domains(cx: &mut FileCx<'_>, value: &Value<'_>) -> Option<Vec<Domain>> {
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

fn check_exec_paths(cx: &mut FileCx<'_>, value: &Value<'_>) -> Option<Vec<ExecPath>> {
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

fn check_exec_names(cx: &mut FileCx<'_>, value: &Value<'_>) -> Option<Vec<String>> {
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

fn check_exec_sha256(cx: &mut FileCx<'_>, value: &Value<'_>) -> Option<Vec<Sha256>> {
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

fn check_ports(cx: &mut FileCx<'_>, value: &Value<'_>) -> Option<Vec<PortRange>> {
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

fn check_protocols(cx: &mut FileCx<'_>, value: &Value<'_>) -> Option<ProtocolSet> {
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

fn integer(value: &DeInteger<'_>) -> Option<i64> {
    i64::from_str_radix(value.as_str(), value.radix()).ok()
}
