use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use super::cidr::Cidr;
use super::domain::Domain;
use super::exec::ExecPath;
use super::load::{load_files, parse};
use super::model::{DomainSwitches, Mode, Origin, Policy, PortRange, ProtocolSet, Rule, RuleKind};
use super::options::{FilesystemSet, OptionValue, Options, Trust};
use super::rule_keys::RULE_KEYS;
use super::source::{PolicyError, PolicyErrors, Source};

fn source(name: &str, text: &str) -> Source {
    Source {
        name: name.to_owned(),
        text: text.to_owned(),
    }
}

fn parse_one(text: &str) -> Result<Policy, PolicyErrors> {
    parse(&[source("p.toml", text)])
}

fn ok(text: &str) -> Policy {
    match parse_one(text) {
        Ok(policy) => policy,
        Err(errors) => panic!("unexpected errors:\n{errors}"),
    }
}

/// The errors of a one-file policy, as printed.
fn errors(text: &str) -> Vec<String> {
    errors_of(&[source("p.toml", text)])
}

fn errors_of(sources: &[Source]) -> Vec<String> {
    match parse(sources) {
        Ok(policy) => panic!("expected errors, got {policy:?}"),
        Err(PolicyErrors(errors)) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// Wraps `rule_body` in a valid file with one block rule on line 3, so
/// the body's first line is line 4.
fn block_with(rule_body: &str) -> String {
    format!("version = 1\n\n[[block]]\n{rule_body}")
}

fn v4(addr: [u8; 4], prefix_len: u8) -> Cidr {
    Cidr::V4 {
        addr: Ipv4Addr::from(addr),
        prefix_len,
    }
}

fn ports(ranges: &[(u16, u16)]) -> Option<Vec<PortRange>> {
    Some(
        ranges
            .iter()
            .map(|&(first, last)| PortRange { first, last })
            .collect(),
    )
}

const FULL: &str = r#"# Messengers we do not want on this network.
version = 1
mode = "enforce"

[[block]]
name = "telegram"
mode = "audit"
cidrs = ["149.154.160.0/20", "91.108.4.0/22", "2001:b28:f23d::/48"]
ports = ["443", "80", "5222", "3478-3481"]
protocols = ["tcp", "udp"]

[[allow]]
name = "corporate-relay"
cidrs = ["149.154.167.99/32"]

[[block]]
name = "dns.over_tls-1"
cidrs = ["0.0.0.0/0", "::/0"]
ports = [853]
protocols = ["tcp"]
"#;

#[test]
fn full_example() {
    let policy = ok(FULL);
    assert_eq!(
        policy.rules,
        vec![
            Rule {
                name: "telegram".into(),
                kind: RuleKind::Block,
                mode: Mode::Audit,
                cidrs: vec![
                    v4([149, 154, 160, 0], 20),
                    v4([91, 108, 4, 0], 22),
                    Cidr::V6 {
                        addr: "2001:b28:f23d::".parse::<Ipv6Addr>().unwrap(),
                        prefix_len: 48,
                    },
                ],
                domains: Vec::new(),
                domain_switches: DomainSwitches::default(),
                exec_paths: Vec::new(),
                exec_names: Vec::new(),
                exec_sha256: Vec::new(),
                ports: ports(&[(443, 443), (80, 80), (5222, 5222), (3478, 3481)]),
                protocols: Some(ProtocolSet {
                    tcp: true,
                    udp: true,
                }),
                origin: Origin {
                    file: "p.toml".into(),
                    line: 5,
                },
            },
            Rule {
                name: "corporate-relay".into(),
                kind: RuleKind::Allow,
                mode: Mode::Enforce,
                cidrs: vec![v4([149, 154, 167, 99], 32)],
                domains: Vec::new(),
                domain_switches: DomainSwitches::default(),
                exec_paths: Vec::new(),
                exec_names: Vec::new(),
                exec_sha256: Vec::new(),
                ports: None,
                protocols: None,
                origin: Origin {
                    file: "p.toml".into(),
                    line: 12,
                },
            },
            Rule {
                name: "dns.over_tls-1".into(),
                kind: RuleKind::Block,
                mode: Mode::Enforce,
                cidrs: vec![
                    v4([0, 0, 0, 0], 0),
                    Cidr::V6 {
                        addr: Ipv6Addr::UNSPECIFIED,
                        prefix_len: 0,
                    },
                ],
                domains: Vec::new(),
                domain_switches: DomainSwitches::default(),
                exec_paths: Vec::new(),
                exec_names: Vec::new(),
                exec_sha256: Vec::new(),
                ports: ports(&[(853, 853)]),
                protocols: Some(ProtocolSet {
                    tcp: true,
                    udp: false,
                }),
                origin: Origin {
                    file: "p.toml".into(),
                    line: 16,
                },
            },
        ]
    );
}

#[test]
fn file_mode_is_inherited_and_defaults_to_enforce() {
    let audit = ok(r#"
version = 1
mode = "audit"
[[block]]
name = "a"
cidrs = ["10.0.0.0/8"]
[[block]]
name = "b"
mode = "enforce"
cidrs = ["10.0.0.0/8"]
[[allow]]
name = "c"
cidrs = ["10.0.0.1"]
"#);
    let modes: Vec<_> = audit.rules.iter().map(|r| (r.kind, r.mode)).collect();
    assert_eq!(
        modes,
        [
            (RuleKind::Block, Mode::Audit),
            (RuleKind::Block, Mode::Enforce),
            (RuleKind::Allow, Mode::Audit),
        ]
    );

    let default = ok("version = 1\n[[block]]\nname = \"a\"\ncidrs = [\"10.0.0.0/8\"]\n");
    assert_eq!(default.rules[0].mode, Mode::Enforce);
}

#[test]
fn no_rules_is_a_valid_empty_policy() {
    assert_eq!(ok("version = 1\n"), Policy::default());
    assert_eq!(
        ok("version = 1\nmode = \"audit\"\nblock = []\n"),
        Policy::default()
    );
    assert_eq!(parse(&[]), Ok(Policy::default()));
}

#[test]
fn inline_tables_work_too() {
    let policy = ok(r#"version = 1
block = [
  { name = "a", cidrs = ["10.0.0.0/8"] },
  { name = "b", cidrs = ["10.0.0.0/8"] },
]
"#);
    let lines: Vec<_> = policy
        .rules
        .iter()
        .map(|r| (r.name.as_str(), r.origin.line))
        .collect();
    assert_eq!(lines, [("a", 3), ("b", 4)]);
}

#[test]
fn rules_keep_file_order_across_kinds() {
    let policy = ok(r#"version = 1
[[allow]]
name = "z-allow"
cidrs = ["10.0.0.1"]
[[block]]
name = "y-block"
cidrs = ["10.0.0.0/8"]
[[allow]]
name = "x-allow"
cidrs = ["10.0.0.2"]
"#);
    let names: Vec<_> = policy.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["z-allow", "y-block", "x-allow"]);
}

#[test]
fn multiple_files_are_merged_in_order() {
    let policy = parse(&[
        source(
            "b.toml",
            "version = 1\nmode = \"audit\"\n[[block]]\nname = \"one\"\ncidrs = [\"10.0.0.0/8\"]\n",
        ),
        source(
            "a.toml",
            "version = 1\n\n[[block]]\nname = \"two\"\ncidrs = [\"192.0.2.0/24\"]\n",
        ),
    ])
    .unwrap();
    let summary: Vec<_> = policy
        .rules
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.mode,
                r.origin.file.as_str(),
                r.origin.line,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("one", Mode::Audit, "b.toml", 3),
            ("two", Mode::Enforce, "a.toml", 3),
        ]
    );
}

#[test]
fn single_host_cidrs() {
    let policy = ok(&block_with(
        "name = \"h\"\ncidrs = [\"192.0.2.7\", \"2001:db8::1\"]\n",
    ));
    assert_eq!(
        policy.rules[0].cidrs,
        [
            v4([192, 0, 2, 7], 32),
            Cidr::V6 {
                addr: "2001:db8::1".parse().unwrap(),
                prefix_len: 128,
            },
        ]
    );
}

#[test]
fn v4_mapped_cidrs_are_normalised() {
    let policy = ok(&block_with(
        "name = \"m\"\ncidrs = [\"::ffff:10.0.0.0/104\", \"::ffff:192.0.2.1\", \"::ffff:0:0/96\"]\n",
    ));
    assert_eq!(
        policy.rules[0].cidrs,
        [
            v4([10, 0, 0, 0], 8),
            v4([192, 0, 2, 1], 32),
            v4([0, 0, 0, 0], 0)
        ]
    );
}

#[test]
fn integer_and_string_ports() {
    let policy = ok(&block_with(
        "name = \"p\"\ncidrs = [\"10.0.0.0/8\"]\nports = [443, \"80\", 0x50, \"1-65535\", \"7-7\"]\n",
    ));
    assert_eq!(
        policy.rules[0].ports,
        ports(&[(443, 443), (80, 80), (80, 80), (1, 65535), (7, 7)])
    );
}

// ---- errors: one class per test, exact position and message ----

#[test]
fn syntax_error() {
    assert_eq!(
        errors("version = 1\n[[block]\n"),
        ["p.toml:2:9: invalid TOML: unclosed array table, expected `]`"]
    );
}

#[test]
fn duplicate_key_is_a_syntax_error() {
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\nname = \"b\"\ncidrs = [\"10.0.0.0/8\"]\n"
        )),
        ["p.toml:5:1: invalid TOML: duplicate key `name`"]
    );
}

#[test]
fn missing_version() {
    assert_eq!(
        errors("\n[[block]]\nname = \"a\"\ncidrs = [\"10.0.0.0/8\"]\n"),
        ["p.toml:1:1: missing `version`; add `version = 1` at the top"]
    );
    assert_eq!(
        errors(""),
        ["p.toml:1:1: missing `version`; add `version = 1` at the top"]
    );
}

#[test]
fn unsupported_version() {
    assert_eq!(
        errors("# v2\nversion = 2\n"),
        ["p.toml:2:11: unsupported version 2; only version 1 is supported"]
    );
    assert_eq!(
        errors("version = -1\n"),
        ["p.toml:1:11: unsupported version -1; only version 1 is supported"]
    );
}

#[test]
fn version_of_the_wrong_type() {
    assert_eq!(
        errors("version = \"1\"\n"),
        ["p.toml:1:11: `version` must be an integer, found string"]
    );
    assert_eq!(
        errors("version = 1.0\n"),
        ["p.toml:1:11: `version` must be an integer, found float"]
    );
}

#[test]
fn unknown_mode() {
    assert_eq!(
        errors("version = 1\nmode = \"block\"\n"),
        [r#"p.toml:2:8: unknown mode "block"; expected "enforce" or "audit""#]
    );
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\ncidrs = [\"10.0.0.0/8\"]\n  mode = \"Audit\"\n"
        )),
        [r#"p.toml:6:10: unknown mode "Audit"; expected "enforce" or "audit""#]
    );
    assert_eq!(
        errors("version = 1\nmode = true\n"),
        ["p.toml:2:8: `mode` must be a string, found boolean"]
    );
}

#[test]
fn unknown_top_level_key() {
    assert_eq!(
        errors("version = 1\nmodes = \"audit\"\n\n[[blocks]]\nname = \"a\"\n"),
        [
            r#"p.toml:2:1: unknown key "modes"; expected one of: version, mode, include, options, block, allow"#,
            r#"p.toml:4:3: unknown key "blocks"; expected one of: version, mode, include, options, block, allow"#,
        ]
    );
}

#[test]
fn unknown_rule_key() {
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\ncidrs = [\"10.0.0.0/8\"]\nport = [\"443\"]\n"
        )),
        [
            r#"p.toml:6:1: unknown key "port" in block rule; expected one of: name, mode, cidrs, domains, ports, protocols, learn_addresses, sni, exec_paths, exec_names, exec_sha256"#
        ]
    );
    assert_eq!(
        errors("version = 1\n[[allow]]\nname = \"a\"\ncidrs = [\"10.0.0.0/8\"]\ncomment = \"x\"\n"),
        [
            r#"p.toml:5:1: unknown key "comment" in allow rule; expected one of: name, cidrs, domains, ports, protocols, exec_paths"#
        ]
    );
}

#[test]
fn mode_on_allow_rule() {
    assert_eq!(
        errors(
            "version = 1\n[[allow]]\nname = \"a\"\nmode = \"audit\"\ncidrs = [\"10.0.0.0/8\"]\n"
        ),
        ["p.toml:4:1: `mode` is not allowed on allow rules; a matching allow rule always wins"]
    );
}

#[test]
fn rules_of_the_wrong_shape() {
    assert_eq!(
        errors("version = 1\n[block]\nname = \"a\"\ncidrs = [\"10.0.0.0/8\"]\n"),
        [
            "p.toml:2:1: `block` must be an array of tables (write [[block]], not [block]), found table"
        ]
    );
    assert_eq!(
        errors("version = 1\nallow = [\"a\", { name = \"b\", cidrs = [\"10.0.0.1\"] }]\n"),
        ["p.toml:2:10: each `allow` entry must be a table, found string"]
    );
}

#[test]
fn wrong_value_types_in_rules() {
    assert_eq!(
        errors(&block_with(
            "name = 7\ncidrs = \"10.0.0.0/8\"\nports = 443\nprotocols = \"tcp\"\n"
        )),
        [
            "p.toml:4:8: `name` must be a string, found integer",
            "p.toml:5:9: `cidrs` must be an array of CIDR strings, found string",
            "p.toml:6:9: `ports` must be an array of port strings, found integer",
            "p.toml:7:13: `protocols` must be an array of protocol strings, found string",
        ]
    );
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\ncidrs = [10]\nports = [443.0, true]\nprotocols = [6]\n"
        )),
        [
            "p.toml:5:10: each CIDR must be a string, found integer",
            r#"p.toml:6:10: each port must be a string like "443" or "3478-3481", or an integer, found float"#,
            r#"p.toml:6:17: each port must be a string like "443" or "3478-3481", or an integer, found boolean"#,
            "p.toml:7:14: each protocol must be a string, found integer",
        ]
    );
}

#[test]
fn missing_name_and_cidrs() {
    assert_eq!(
        errors(&block_with("cidrs = [\"10.0.0.0/8\"]\n")),
        ["p.toml:3:1: block rule is missing `name`"]
    );
    assert_eq!(
        errors(&block_with("name = \"a\"\n")),
        [
            r#"p.toml:3:1: block rule "a" needs at least one of `cidrs`, `domains`, `exec_paths`, `exec_names`, `exec_sha256`"#
        ]
    );
    assert_eq!(
        errors("version = 1\n  [[allow]]\n"),
        [
            "p.toml:2:3: allow rule is missing `name`",
            "p.toml:2:3: allow rule needs at least one of `cidrs`, `domains`, `exec_paths`",
        ]
    );
}

#[test]
fn bad_names() {
    assert_eq!(
        errors(&block_with("name = \"\"\ncidrs = [\"10.0.0.0/8\"]\n")),
        ["p.toml:4:8: rule name must not be empty"]
    );
    assert_eq!(
        errors(&block_with(
            "name = \"tele gram\"\ncidrs = [\"10.0.0.0/8\"]\n"
        )),
        [
            r#"p.toml:4:8: rule name "tele gram" contains ' '; only letters A-Z and a-z, digits, '.', '_' and '-' are allowed"#
        ]
    );
    let long = "x".repeat(65);
    assert_eq!(
        errors(&block_with(&format!(
            "name = \"{long}\"\ncidrs = [\"10.0.0.0/8\"]\n"
        ))),
        ["p.toml:4:8: rule name is 65 characters long; at most 64 are allowed"]
    );
    let longest = "x".repeat(64);
    ok(&block_with(&format!(
        "name = \"{longest}\"\ncidrs = [\"10.0.0.0/8\"]\n"
    )));
}

#[test]
fn duplicate_names_point_at_the_second() {
    assert_eq!(
        errors(
            "version = 1\n[[block]]\nname = \"a\"\ncidrs = [\"10.0.0.0/8\"]\n\
             [[allow]]\nname = \"a\"\ncidrs = [\"10.0.0.1\"]\n"
        ),
        [r#"p.toml:6:8: duplicate rule name "a"; it is first defined at p.toml:3:8"#]
    );
}

#[test]
fn duplicate_names_across_files() {
    let first = source(
        "one.toml",
        "version = 1\n[[block]]\nname = \"a\"\ncidrs = [\"10.0.0.0/8\"]\n",
    );
    let second = source(
        "two.toml",
        "version = 1\n\n[[block]]\n  name = \"a\"\ncidrs = [\"10.0.0.0/8\"]\n",
    );
    assert_eq!(
        errors_of(&[first, second]),
        [r#"two.toml:4:10: duplicate rule name "a"; it is first defined at one.toml:3:8"#]
    );
}

#[test]
fn duplicate_name_of_an_invalid_rule_is_still_reported() {
    assert_eq!(
        errors(
            "version = 1\n[[block]]\nname = \"a\"\ncidrs = []\n\
             [[block]]\nname = \"a\"\ncidrs = [\"10.0.0.0/8\"]\n"
        ),
        [
            "p.toml:4:9: `cidrs` must not be empty; list at least one network, or leave `cidrs` out",
            r#"p.toml:6:8: duplicate rule name "a"; it is first defined at p.toml:3:8"#,
        ]
    );
}

#[test]
fn bad_cidrs() {
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\ncidrs = [\"10.0.0.1/8\", \"10.0.0/8\", \"10.0.0.0/33\", \"::1/200\"]\n"
        )),
        [
            "p.toml:5:10: host bits set in 10.0.0.1/8; did you mean 10.0.0.0/8?",
            r#"p.toml:5:24: invalid CIDR "10.0.0/8": "10.0.0" is not an IPv4 or IPv6 address"#,
            r#"p.toml:5:36: invalid CIDR "10.0.0.0/33": prefix length 33 is out of range for IPv4 (0-32)"#,
            r#"p.toml:5:51: invalid CIDR "::1/200": prefix length 200 is out of range for IPv6 (0-128)"#,
        ]
    );
}

#[test]
fn empty_cidrs() {
    assert_eq!(
        errors(&block_with("name = \"a\"\ncidrs = []\n")),
        ["p.toml:5:9: `cidrs` must not be empty; list at least one network, or leave `cidrs` out"]
    );
}

#[test]
fn duplicate_cidrs_compare_normalised() {
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\ncidrs = [\n  \"10.0.0.1\",\n  \"10.0.0.0/8\",\n  \"::ffff:10.0.0.1\",\n  \"10.0.0.0/8\",\n]\n"
        )),
        [
            r#"p.toml:8:3: duplicate CIDR "::ffff:10.0.0.1": 10.0.0.1/32 is already listed in this rule at line 6, column 3"#,
            r#"p.toml:9:3: duplicate CIDR "10.0.0.0/8": 10.0.0.0/8 is already listed in this rule at line 7, column 3"#,
        ]
    );
}

#[test]
fn bad_ports() {
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\ncidrs = [\"10.0.0.0/8\"]\nports = [0, \"0\", 65536, \"70000\", -1, \"99999999999999999999999\"]\n"
        )),
        [
            "p.toml:6:10: port 0 is out of range (1-65535)",
            "p.toml:6:13: port 0 is out of range (1-65535)",
            "p.toml:6:18: port 65536 is out of range (1-65535)",
            "p.toml:6:25: port 70000 is out of range (1-65535)",
            "p.toml:6:34: port -1 is out of range (1-65535)",
            "p.toml:6:38: port 99999999999999999999999 is out of range (1-65535)",
        ]
    );
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\ncidrs = [\"10.0.0.0/8\"]\nports = [\"https\", \"80-\", \"+443\", \" 80\", \"1-2-3\"]\n"
        )),
        [
            r#"p.toml:6:10: invalid port "https"; expected a port like "443" or a range like "3478-3481""#,
            r#"p.toml:6:19: invalid port "80-"; expected a port like "443" or a range like "3478-3481""#,
            r#"p.toml:6:26: invalid port "+443"; expected a port like "443" or a range like "3478-3481""#,
            r#"p.toml:6:34: invalid port " 80"; expected a port like "443" or a range like "3478-3481""#,
            r#"p.toml:6:41: invalid port "1-2-3"; expected a port like "443" or a range like "3478-3481""#,
        ]
    );
}

#[test]
fn inverted_port_range() {
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\ncidrs = [\"10.0.0.0/8\"]\nports = [\"443\", \"3481-3478\"]\n"
        )),
        [r#"p.toml:6:17: inverted port range "3481-3478": 3481 is greater than 3478"#]
    );
}

#[test]
fn empty_ports() {
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\ncidrs = [\"10.0.0.0/8\"]\nports = []\n"
        )),
        ["p.toml:6:9: `ports` must not be empty; leave `ports` out to match every port"]
    );
}

#[test]
fn bad_protocols() {
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\ncidrs = [\"10.0.0.0/8\"]\nprotocols = [\"tcp\", \"icmp\", \"TCP\", \"tcp\"]\n"
        )),
        [
            r#"p.toml:6:21: unknown protocol "icmp"; expected "tcp" or "udp""#,
            r#"p.toml:6:29: unknown protocol "TCP"; expected "tcp" or "udp""#,
            r#"p.toml:6:36: duplicate protocol "tcp""#,
        ]
    );
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\ncidrs = [\"10.0.0.0/8\"]\nprotocols = []\n"
        )),
        [
            "p.toml:6:13: `protocols` must not be empty; leave `protocols` out to match every protocol"
        ]
    );
}

#[test]
fn columns_count_characters() {
    // "é" is two bytes; the CIDR error column must not count it twice.
    assert_eq!(
        errors("version = 1\nblock = [{ name = \"é\", cidrs = [\"10.0.0.1/8\"] }]\n"),
        [
            r#"p.toml:2:19: rule name "é" contains 'é'; only letters A-Z and a-z, digits, '.', '_' and '-' are allowed"#,
            "p.toml:2:33: host bits set in 10.0.0.1/8; did you mean 10.0.0.0/8?",
        ]
    );
}

#[test]
fn all_errors_are_reported_together_in_order() {
    let text = r#"version = 3
mode = "strict"

[[block]]
name = "a"
cidrs = ["10.0.0.1/8"]
ports = ["90-80"]
colour = "red"

[[allow]]
mode = "audit"
cidrs = []

[[block]]
name = "a"
cidrs = ["192.0.2.0/24"]
protocols = ["sctp"]
"#;
    assert_eq!(
        errors(text),
        [
            "p.toml:1:11: unsupported version 3; only version 1 is supported",
            r#"p.toml:2:8: unknown mode "strict"; expected "enforce" or "audit""#,
            "p.toml:6:10: host bits set in 10.0.0.1/8; did you mean 10.0.0.0/8?",
            r#"p.toml:7:10: inverted port range "90-80": 90 is greater than 80"#,
            r#"p.toml:8:1: unknown key "colour" in block rule; expected one of: name, mode, cidrs, domains, ports, protocols, learn_addresses, sni, exec_paths, exec_names, exec_sha256"#,
            "p.toml:10:1: allow rule is missing `name`",
            "p.toml:11:1: `mode` is not allowed on allow rules; a matching allow rule always wins",
            "p.toml:12:9: `cidrs` must not be empty; list at least one network, or leave `cidrs` out",
            r#"p.toml:15:8: duplicate rule name "a"; it is first defined at p.toml:5:8"#,
            r#"p.toml:17:14: unknown protocol "sctp"; expected "tcp" or "udp""#,
        ]
    );
}

#[test]
fn errors_in_later_files_after_a_syntax_error() {
    let broken = source("broken.toml", "version = 1\nmode = \"audit\n");
    let later = source(
        "later.toml",
        "version = 1\n[[block]]\nname = \"b\"\ncidrs = [\"10.0.0.1/8\"]\n",
    );
    let fine = source(
        "fine.toml",
        "version = 1\n[[block]]\nname = \"c\"\ncidrs = [\"10.0.0.0/8\"]\n",
    );
    assert_eq!(
        errors_of(&[broken, fine, later]),
        [
            r#"broken.toml:2:14: invalid TOML: invalid basic string, expected `"`"#,
            "later.toml:4:10: host bits set in 10.0.0.1/8; did you mean 10.0.0.0/8?",
        ]
    );
}

#[test]
fn errors_display_one_per_line() {
    let Err(errors) = parse_one("version = 2\nmode = 1\n") else {
        panic!("expected errors");
    };
    assert_eq!(
        errors.to_string(),
        "p.toml:1:11: unsupported version 2; only version 1 is supported\n\
         p.toml:2:8: `mode` must be a string, found integer"
    );
    assert_eq!(
        errors.0[0],
        PolicyError {
            file: "p.toml".into(),
            line: 1,
            column: 11,
            message: "unsupported version 2; only version 1 is supported".into(),
        }
    );
}

// ---- exec keys ----

/// Like [`block_with`], for an allow rule on line 3.
fn allow_with(rule_body: &str) -> String {
    format!("version = 1\n\n[[allow]]\n{rule_body}")
}

fn file(path: &str) -> ExecPath {
    ExecPath {
        path: PathBuf::from(path),
        directory: false,
    }
}

fn dir(path: &str) -> ExecPath {
    ExecPath {
        path: PathBuf::from(path),
        directory: true,
    }
}

const MIXED_CASE_SHA256: &str = "9F86D081884C7D659A2FEAA0C55AD015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[test]
fn exec_keys_are_parsed() {
    let policy = ok(&block_with(&format!(
        r#"name = "telegram"
cidrs = ["149.154.160.0/20"]
exec_paths = ["/opt/Telegram/Telegram", "/opt/Telegram/", "/usr/bin/telegram desktop"]
exec_names = ["telegram-desktop", "Telegram", ".Telegram"]
exec_sha256 = ["{MIXED_CASE_SHA256}"]
"#
    )));
    let [rule] = policy.rules.as_slice() else {
        panic!("{policy:?}")
    };
    assert_eq!(rule.cidrs, [v4([149, 154, 160, 0], 20)]);
    assert_eq!(
        rule.exec_paths,
        [
            file("/opt/Telegram/Telegram"),
            dir("/opt/Telegram"),
            file("/usr/bin/telegram desktop"),
        ]
    );
    assert_eq!(
        rule.exec_paths
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "/opt/Telegram/Telegram",
            "/opt/Telegram/",
            "/usr/bin/telegram desktop"
        ]
    );
    assert_eq!(
        rule.exec_names,
        ["telegram-desktop", "Telegram", ".Telegram"]
    );
    let [hash] = rule.exec_sha256.as_slice() else {
        panic!("{rule:?}")
    };
    assert_eq!(hash.0[..3], [0x9f, 0x86, 0xd0]);
    assert_eq!(hash.0[31], 0x08);
    assert_eq!(
        hash.to_string(),
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    );
    assert_eq!((rule.kind, rule.mode), (RuleKind::Block, Mode::Enforce));
    assert_eq!(rule.origin.line, 3);
}

#[test]
fn exec_only_rule_needs_no_cidrs() {
    let policy = ok(&block_with(
        "name = \"t\"\nmode = \"audit\"\nexec_names = [\"telegram-desktop\"]\n",
    ));
    assert_eq!(
        policy.rules,
        [Rule {
            name: "t".into(),
            kind: RuleKind::Block,
            mode: Mode::Audit,
            cidrs: Vec::new(),
            domains: Vec::new(),
            domain_switches: DomainSwitches::default(),
            exec_paths: Vec::new(),
            exec_names: vec!["telegram-desktop".into()],
            exec_sha256: Vec::new(),
            ports: None,
            protocols: None,
            origin: Origin {
                file: "p.toml".into(),
                line: 3,
            },
        }]
    );
    let hash_only = ok(&block_with(&format!(
        "name = \"h\"\nexec_sha256 = [\"{MIXED_CASE_SHA256}\"]\n"
    )));
    assert!(hash_only.rules[0].cidrs.is_empty());
    assert_eq!(hash_only.rules[0].exec_sha256.len(), 1);
    let path_only = ok(&block_with("name = \"p\"\nexec_paths = [\"/opt/x/\"]\n"));
    assert_eq!(path_only.rules[0].exec_paths, [dir("/opt/x")]);
}

#[test]
fn allow_rule_with_exec_paths() {
    let policy = ok(&allow_with(
        "name = \"admin-tool\"\nexec_paths = [\"/opt/Telegram/updater\", \"/opt/tools/\"]\n",
    ));
    let rule = &policy.rules[0];
    assert_eq!(rule.kind, RuleKind::Allow);
    assert!(rule.cidrs.is_empty());
    assert_eq!(
        rule.exec_paths,
        [file("/opt/Telegram/updater"), dir("/opt/tools")]
    );
    assert!(rule.exec_names.is_empty() && rule.exec_sha256.is_empty());

    let both = ok(&allow_with(
        "name = \"b\"\ncidrs = [\"10.0.0.1\"]\nports = [443]\nexec_paths = [\"/usr/bin/x\"]\n",
    ));
    assert_eq!(both.rules[0].cidrs, [v4([10, 0, 0, 1], 32)]);
    assert_eq!(both.rules[0].ports, ports(&[(443, 443)]));
    assert_eq!(both.rules[0].exec_paths, [file("/usr/bin/x")]);
}

#[test]
fn a_rule_needs_a_network_or_an_executable() {
    assert_eq!(
        errors(&block_with("name = \"a\"\nmode = \"audit\"\n")),
        [
            r#"p.toml:3:1: block rule "a" needs at least one of `cidrs`, `domains`, `exec_paths`, `exec_names`, `exec_sha256`"#
        ]
    );
    assert_eq!(
        errors(&allow_with("name = \"a\"\n")),
        [r#"p.toml:3:1: allow rule "a" needs at least one of `cidrs`, `domains`, `exec_paths`"#]
    );
    // An empty list is reported as such, not as a missing key too.
    assert_eq!(
        errors(&block_with("name = \"a\"\nexec_paths = []\n")),
        [
            "p.toml:5:14: `exec_paths` must not be empty; list at least one path, or leave `exec_paths` out"
        ]
    );
}

#[test]
fn ports_and_protocols_only_qualify_cidrs() {
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\nexec_names = [\"x\"]\nports = [443]\n  protocols = [\"tcp\"]\n"
        )),
        [
            "p.toml:6:1: `ports` only qualifies `cidrs`, and this rule has none; add `cidrs` or remove `ports`",
            "p.toml:7:3: `protocols` only qualifies `cidrs`, and this rule has none; add `cidrs` or remove `protocols`",
        ]
    );
    // Without any target, both problems are reported.
    assert_eq!(
        errors(&allow_with("name = \"a\"\nports = [443]\n")),
        [
            r#"p.toml:3:1: allow rule "a" needs at least one of `cidrs`, `domains`, `exec_paths`"#,
            "p.toml:5:1: `ports` only qualifies `cidrs`, and this rule has none; add `cidrs` or remove `ports`",
        ]
    );
    // With `cidrs` present but wrong, only `cidrs` is reported.
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\ncidrs = []\nports = [443]\nexec_names = [\"x\"]\n"
        )),
        ["p.toml:5:9: `cidrs` must not be empty; list at least one network, or leave `cidrs` out"]
    );
}

#[test]
fn domain_switches_are_read_and_need_domains_on_a_block_rule() {
    let policy = ok(&block_with(
        "name = \"a\"\ndomains = [\"docs.google.com\"]\nlearn_addresses = false\nsni = false\n",
    ));
    assert_eq!(
        policy.rules[0].domain_switches,
        DomainSwitches {
            learn_addresses: false,
            sni: false
        }
    );
    let policy = ok(&block_with(
        "name = \"a\"\ndomains = [\"t.me\"]\nsni = true\n",
    ));
    assert_eq!(policy.rules[0].domain_switches, DomainSwitches::default());
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\ncidrs = [\"10.0.0.0/8\"]\nlearn_addresses = false\n"
        )),
        [
            "p.toml:6:1: `learn_addresses` only qualifies `domains`, and this rule has none; add `domains` or remove `learn_addresses`"
        ]
    );
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\ndomains = [\"t.me\"]\nsni = \"no\"\n"
        )),
        ["p.toml:6:7: `sni` must be a boolean (true or false), found string"]
    );
    assert_eq!(
        errors(&allow_with(
            "name = \"a\"\ndomains = [\"t.me\"]\nlearn_addresses = false\nsni = false\n"
        )),
        [
            "p.toml:6:1: `learn_addresses` is not allowed on allow rules: allowed names list no addresses",
            "p.toml:7:1: `sni` is not allowed on allow rules: an allowed name is never refused",
        ]
    );
}

#[test]
fn allow_rules_take_only_exec_paths() {
    assert_eq!(
        errors(&allow_with(&format!(
            "name = \"a\"\nexec_paths = [\"/x\"]\nexec_names = [\"x\"]\n  exec_sha256 = [\"{MIXED_CASE_SHA256}\"]\n"
        ))),
        [
            "p.toml:6:1: `exec_names` cannot be allowed; allow specific `exec_paths` instead",
            "p.toml:7:3: `exec_sha256` cannot be allowed; allow specific `exec_paths` instead",
        ]
    );
    // The refused key is the rule's only target: no second error for that.
    assert_eq!(
        errors(&allow_with("name = \"a\"\nexec_names = [\"x\"]\n")),
        ["p.toml:5:1: `exec_names` cannot be allowed; allow specific `exec_paths` instead"]
    );
}

#[test]
fn empty_exec_lists() {
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\nexec_paths = []\nexec_names = []\nexec_sha256 = []\n"
        )),
        [
            "p.toml:5:14: `exec_paths` must not be empty; list at least one path, or leave `exec_paths` out",
            "p.toml:6:14: `exec_names` must not be empty; list at least one name, or leave `exec_names` out",
            "p.toml:7:15: `exec_sha256` must not be empty; list at least one hash, or leave `exec_sha256` out",
        ]
    );
}

#[test]
fn exec_values_of_the_wrong_type() {
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\nexec_paths = \"/x\"\nexec_names = [1, \"a\"]\nexec_sha256 = 5\n"
        )),
        [
            "p.toml:5:14: `exec_paths` must be an array of path strings, found string",
            "p.toml:6:15: each exec name must be a string, found integer",
            "p.toml:7:15: `exec_sha256` must be an array of SHA-256 hex strings, found integer",
        ]
    );
    assert_eq!(
        errors(&block_with("name = \"a\"\nexec_paths = [[\"/x\"]]\n")),
        ["p.toml:5:15: each exec path must be a string, found array"]
    );
}

#[test]
fn bad_exec_paths() {
    assert_eq!(
        errors(&block_with(
            r#"name = "a"
exec_paths = ["opt/x", "", "/", "//", "/a//b", "/a/b//", "/a/./b", "/a/..", "/a\u0000"]
"#
        )),
        [
            r#"p.toml:5:15: invalid exec path "opt/x": not absolute; exec paths start with "/""#,
            r#"p.toml:5:24: invalid exec path "": not absolute; exec paths start with "/""#,
            r#"p.toml:5:28: exec path "/" would ban every executable; list the directories to ban instead, e.g. "/opt/Telegram/""#,
            r#"p.toml:5:33: invalid exec path "//": empty component ("//")"#,
            r#"p.toml:5:39: invalid exec path "/a//b": empty component ("//")"#,
            r#"p.toml:5:48: invalid exec path "/a/b//": empty component ("//")"#,
            r#"p.toml:5:58: invalid exec path "/a/./b": "." component; write the path without "." and ".." components"#,
            r#"p.toml:5:68: invalid exec path "/a/..": ".." component; write the path without "." and ".." components"#,
            r#"p.toml:5:77: invalid exec path "/a\0": contains a NUL character"#,
        ]
    );
}

#[test]
fn exec_path_length_limit() {
    let longest = format!("/{}", "x".repeat(4095));
    let policy = ok(&block_with(&format!(
        "name = \"a\"\nexec_paths = [\"{longest}\"]\n"
    )));
    assert_eq!(policy.rules[0].exec_paths[0].path.as_os_str().len(), 4096);
    assert_eq!(
        errors(&block_with(&format!(
            "name = \"a\"\nexec_paths = [\"{longest}/\", \"/ok\"]\n"
        ))),
        ["p.toml:5:15: exec path is 4097 bytes long; at most 4096 are allowed"]
    );
}

#[test]
fn bad_exec_names() {
    assert_eq!(
        errors(&block_with(
            r#"name = "a"
exec_names = ["", "bin/sh", ".", "..", "a\u0000", "ok"]
"#
        )),
        [
            "p.toml:5:15: exec name must not be empty",
            r#"p.toml:5:19: invalid exec name "bin/sh": contains "/"; an exec name is a file name, put paths in `exec_paths`"#,
            r#"p.toml:5:29: invalid exec name ".": not a file name"#,
            r#"p.toml:5:34: invalid exec name "..": not a file name"#,
            r#"p.toml:5:40: invalid exec name "a\0": contains a NUL character"#,
        ]
    );
    let longest = "n".repeat(255);
    ok(&block_with(&format!(
        "name = \"a\"\nexec_names = [\"{longest}\"]\n"
    )));
    assert_eq!(
        errors(&block_with(&format!(
            "name = \"a\"\n\nexec_names = [\"{longest}n\"]\n"
        ))),
        ["p.toml:6:15: exec name is 256 bytes long; at most 255 are allowed"]
    );
}

#[test]
fn bad_exec_sha256() {
    let prefixed = format!("0x{}", "a".repeat(62));
    assert_eq!(
        errors(&block_with(&format!(
            "name = \"a\"\nexec_sha256 = [\"abc\", \"{prefixed}\"]\n"
        ))),
        [
            r#"p.toml:5:16: invalid SHA-256 "abc": expected 64 hex digits, got 3 characters"#
                .to_owned(),
            format!(
                r#"p.toml:5:23: invalid SHA-256 "{prefixed}": 'x' (character 2) is not a hex digit"#
            ),
        ]
    );
    let long = "0".repeat(65);
    assert_eq!(
        errors(&block_with(&format!(
            "name = \"a\"\nexec_sha256 = [\n  \"{long}\",\n]\n"
        ))),
        [format!(
            r#"p.toml:6:3: invalid SHA-256 "{long}": expected 64 hex digits, got 65 characters"#
        )]
    );
}

#[test]
fn duplicate_exec_entries_point_at_the_second() {
    let lower = MIXED_CASE_SHA256.to_lowercase();
    let upper = MIXED_CASE_SHA256.to_uppercase();
    assert_eq!(
        errors(&block_with(&format!(
            r#"name = "a"
exec_paths = [
  "/opt/x",
  "/opt/x/",
  "/opt/x",
]
exec_names = ["t", "T", "t"]
exec_sha256 = [
  "{MIXED_CASE_SHA256}",
  "{upper}",
]
"#
        ))),
        [
            r#"p.toml:8:3: duplicate exec path "/opt/x" is already listed in this rule at line 6, column 3"#.to_owned(),
            r#"p.toml:10:25: duplicate exec name "t" is already listed in this rule at line 10, column 15"#.to_owned(),
            format!(
                r#"p.toml:13:3: duplicate SHA-256 "{upper}": {lower} is already listed in this rule at line 12, column 3"#
            ),
        ]
    );
}

#[test]
fn exec_keys_serde_round_trip() {
    let policy = ok(&block_with(&format!(
        "name = \"t\"\nexec_paths = [\"/opt/T/\", \"/usr/bin/t\"]\nexec_names = [\"t\"]\n\
         exec_sha256 = [\"{MIXED_CASE_SHA256}\"]\n"
    )));
    let json = serde_json::to_string(&policy).unwrap();
    assert!(
        json.contains(r#""exec_paths":["/opt/T/","/usr/bin/t"],"exec_names":["t"],"exec_sha256":["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]"#),
        "{json}"
    );
    assert!(json.contains(r#""cidrs":[]"#), "{json}");
    let back: Policy = serde_json::from_str(&json).unwrap();
    assert_eq!(back, policy);
}

// ---- domains ----

fn domain(name: &str) -> Domain {
    name.parse().expect("test domain")
}

#[test]
fn domains_in_block_and_allow_rules() {
    let policy = ok(r#"version = 1
[[block]]
name = "telegram"
domains = ["Telegram.ORG.", "t.me", "Bücher.example"]

[[allow]]
name = "corp-mirror"
domains = ["corp-mirror.telegram.org"]

[[block]]
name = "mixed"
mode = "audit"
cidrs = ["149.154.160.0/20"]
ports = [443]
domains = ["web.telegram.org"]
exec_names = ["telegram-desktop"]
"#);
    let [telegram, mirror, mixed] = policy.rules.as_slice() else {
        panic!("{policy:?}")
    };
    assert_eq!(
        *telegram,
        Rule {
            name: "telegram".into(),
            kind: RuleKind::Block,
            mode: Mode::Enforce,
            cidrs: Vec::new(),
            domains: vec![
                domain("telegram.org"),
                domain("t.me"),
                domain("xn--bcher-kva.example"),
            ],
            domain_switches: DomainSwitches::default(),
            exec_paths: Vec::new(),
            exec_names: Vec::new(),
            exec_sha256: Vec::new(),
            ports: None,
            protocols: None,
            origin: Origin {
                file: "p.toml".into(),
                line: 2,
            },
        }
    );
    assert_eq!(
        telegram
            .domains
            .iter()
            .map(Domain::as_str)
            .collect::<Vec<_>>(),
        ["telegram.org", "t.me", "xn--bcher-kva.example"]
    );
    assert_eq!(mirror.kind, RuleKind::Allow);
    assert_eq!(mirror.domains, [domain("corp-mirror.telegram.org")]);
    assert_eq!(mixed.domains, [domain("web.telegram.org")]);
    assert_eq!(mixed.cidrs, [v4([149, 154, 160, 0], 20)]);
    assert_eq!(mixed.ports, ports(&[(443, 443)]));
    assert_eq!(mixed.exec_names, ["telegram-desktop"]);
    assert_eq!(mixed.mode, Mode::Audit);
}

#[test]
fn a_rule_may_have_only_domains() {
    let block = ok(&block_with("name = \"b\"\ndomains = [\"t.me\"]\n"));
    assert_eq!(block.rules[0].domains, [domain("t.me")]);
    let allow = ok(&allow_with("name = \"a\"\ndomains = [\"t.me\"]\n"));
    assert_eq!(allow.rules[0].domains, [domain("t.me")]);
    assert!(allow.rules[0].cidrs.is_empty() && allow.rules[0].exec_paths.is_empty());
}

#[test]
fn bad_domains() {
    assert_eq!(
        errors(&block_with(
            r#"name = "a"
domains = ["", ".", "*.example.com", "https://t.me/x", "192.0.2.1", "a..b", "-a.com", "a b", "t.me"]
"#
        )),
        [
            "p.toml:5:12: domain must not be empty",
            r#"p.toml:5:16: domain "." is the DNS root and would cover every name; list the domains to match instead"#,
            r#"p.toml:5:21: invalid domain "*.example.com": wildcards are not supported, a domain already covers all its subdomains; write "example.com""#,
            r#"p.toml:5:38: invalid domain "https://t.me/x": looks like a URL; write only the host name: "t.me""#,
            r#"p.toml:5:56: invalid domain "192.0.2.1": looks like an IP address; write only the host name here, and put addresses in `cidrs`"#,
            r#"p.toml:5:69: invalid domain "a..b": empty label; labels are separated by a single ".", and none comes before the first"#,
            r#"p.toml:5:77: invalid domain "-a.com": label "-a" starts with "-""#,
            r#"p.toml:5:87: invalid domain "a b": ' ' is not allowed; labels have only letters, digits, '-' and '_'"#,
        ]
    );
    let long = "x".repeat(64);
    assert_eq!(
        errors(&allow_with(&format!(
            "name = \"a\"\ndomains = [\n  \"ok.{long}.com\",\n  \"host:443\",\n]\n"
        ))),
        [
            format!(
                r#"p.toml:6:3: domain label "{long}" is 64 bytes long; at most 63 are allowed"#
            ),
            r#"p.toml:7:3: invalid domain "host:443": looks like a host and port; write only the host name: "host""#.to_owned(),
        ]
    );
}

#[test]
fn domains_of_the_wrong_shape() {
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\ndomains = \"t.me\"\n[[block]]\nname = \"b\"\ndomains = []\n\
             [[allow]]\nname = \"c\"\ndomains = [\"t.me\", 1]\n"
        )),
        [
            "p.toml:5:11: `domains` must be an array of domain name strings, found string",
            "p.toml:8:11: `domains` must not be empty; list at least one domain, or leave `domains` out",
            "p.toml:11:20: each domain must be a string, found integer",
        ]
    );
}

#[test]
fn duplicate_domains_compare_normalised() {
    assert_eq!(
        errors(&block_with(
            r#"name = "a"
domains = [
  "whatsapp.com",
  "WhatsApp.com",
  "whatsapp.com.",
  "bücher.example",
  "XN--BCHER-KVA.example",
  "web.whatsapp.com",
]
"#
        )),
        [
            r#"p.toml:7:3: duplicate domain "WhatsApp.com": whatsapp.com is already listed in this rule at line 6, column 3"#,
            r#"p.toml:8:3: duplicate domain "whatsapp.com.": whatsapp.com is already listed in this rule at line 6, column 3"#,
            r#"p.toml:10:3: duplicate domain "XN--BCHER-KVA.example": xn--bcher-kva.example is already listed in this rule at line 9, column 3"#,
        ]
    );
    // The same name in two rules is not a duplicate.
    ok(
        "version = 1\n[[block]]\nname = \"a\"\ndomains = [\"t.me\"]\n\
        [[allow]]\nname = \"b\"\ndomains = [\"T.me\"]\n",
    );
}

#[test]
fn ports_and_protocols_do_not_qualify_domains() {
    assert_eq!(
        errors(&block_with(
            "name = \"a\"\ndomains = [\"t.me\"]\nports = [443]\nprotocols = [\"tcp\"]\n"
        )),
        [
            "p.toml:6:1: `ports` only qualifies `cidrs`, and this rule has none; add `cidrs` or remove `ports`",
            "p.toml:7:1: `protocols` only qualifies `cidrs`, and this rule has none; add `cidrs` or remove `protocols`",
        ]
    );
    assert_eq!(
        errors(&allow_with(
            "name = \"a\"\ndomains = [\"t.me\"]\nports = [443]\n"
        )),
        [
            "p.toml:6:1: `ports` only qualifies `cidrs`, and this rule has none; add `cidrs` or remove `ports`"
        ]
    );
}

#[test]
fn domains_serde_round_trip() {
    let policy = ok(&block_with(
        "name = \"t\"\ndomains = [\"Telegram.org\", \"Bücher.example\"]\n",
    ));
    let json = serde_json::to_string(&policy).unwrap();
    assert!(
        json.contains(r#""domains":["telegram.org","xn--bcher-kva.example"]"#),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), policy);
    // Deserializing validates like parsing does.
    let wildcard = json.replace("\"telegram.org\"", "\"*.telegram.org\"");
    assert!(serde_json::from_str::<Policy>(&wildcard).is_err());
    // Rules serialized before domains existed have none.
    let old: Policy = serde_json::from_str(
        r#"{"rules":[{"name":"a","kind":"block","mode":"enforce","cidrs":["10.0.0.0/8"],
            "exec_paths":[],"exec_names":[],"exec_sha256":[],"ports":null,"protocols":null,
            "origin":{"file":"p.toml","line":3}}]}"#,
    )
    .unwrap();
    assert!(old.rules[0].domains.is_empty());
    assert_eq!(old.rules[0].cidrs, [v4([10, 0, 0, 0], 8)]);
}

// ---- options ----

/// tmpfs and fuse: bits 0 and 2 of `UNTRUSTED_FILESYSTEMS`.
const FILESYSTEMS_EXAMPLE: FilesystemSet = FilesystemSet::from_bits(0b101);

/// Every switch on and the TTL bounds at their defaults: what the README's
/// example sets.
const ALL_OPTIONS: Options = Options {
    exec_block_anonymous: true,
    exec_block_loader: true,
    exec_hash_strict: true,
    exec_trusted_only: Trust::Enforce,
    exec_untrusted_filesystems: FILESYSTEMS_EXAMPLE,
    block_dot: true,
    block_quic: true,
    dns_block_queries: true,
    dns_ttl_min_seconds: 300,
    dns_ttl_max_seconds: 86_400,
    sni_learned_seconds: 30,
    learned_shared_below_uid: 500,
    learned_per_user: 100,
};

#[test]
fn options_are_parsed() {
    let policy = ok("version = 1\n\n[options]\nexec_block_anonymous = true\n\
         exec_block_loader = true\nexec_hash_strict = true\nexec_trusted_only = true\n\
         exec_untrusted_filesystems = [\"tmpfs\", \"fuse\"]\nblock_dot = true\nblock_quic = true\n\
         dns_block_queries = true\ndns_ttl_min_seconds = 300\ndns_ttl_max_seconds = 86400\n\
         sni_learned_seconds = 30\nlearned_shared_below_uid = 500\nlearned_per_user = 100\n\n\
         [[block]]\nname = \"a\"\ncidrs = [\"10.0.0.0/8\"]\n");
    assert_eq!(policy.options, ALL_OPTIONS);
    assert_eq!(policy.rules.len(), 1);

    let some = ok("version = 1\n[options]\nexec_block_loader = true\nexec_hash_strict = false\n");
    assert_eq!(
        some.options,
        Options {
            exec_block_loader: true,
            ..Options::default()
        }
    );
    // Inline and dotted spellings are the same table.
    assert_eq!(
        ok("version = 1\noptions = { exec_block_loader = true }\n").options,
        some.options
    );
    assert_eq!(
        ok("version = 1\noptions.exec_block_loader = true\n").options,
        some.options
    );

    let dns = ok("version = 1\n[options]\ndns_block_queries = false\n\
         dns_ttl_min_seconds = 1\ndns_ttl_max_seconds = 604800\n");
    assert_eq!(
        dns.options,
        Options {
            dns_block_queries: false,
            dns_ttl_min_seconds: 1,
            dns_ttl_max_seconds: 604_800,
            ..Options::default()
        }
    );
    // Any TOML spelling of an integer; min and max may be equal.
    let spelled = ok("version = 1\n[options]\ndns_ttl_min_seconds = 0xe10\n\
         dns_ttl_max_seconds = 3_600\n");
    assert_eq!(
        (
            spelled.options.dns_ttl_min_seconds,
            spelled.options.dns_ttl_max_seconds
        ),
        (3600, 3600)
    );
}

#[test]
fn option_defaults() {
    let defaults = Options {
        exec_block_anonymous: false,
        exec_block_loader: false,
        exec_hash_strict: false,
        exec_trusted_only: Trust::Off,
        exec_untrusted_filesystems: FilesystemSet::from_names([
            "tmpfs", "ramfs", "fuse", "vfat", "exfat", "ntfs", "iso9660", "udf",
        ])
        .unwrap(),
        block_dot: false,
        block_quic: false,
        dns_block_queries: true,
        dns_ttl_min_seconds: 300,
        dns_ttl_max_seconds: 86_400,
        sni_learned_seconds: 120,
        learned_shared_below_uid: 1000,
        learned_per_user: 4096,
    };
    assert_eq!(Options::default(), defaults);
    assert_eq!(ok(FULL).options, defaults);
    assert_eq!(ok("version = 1\n[options]\n").options, defaults);
    assert_eq!(parse(&[]).unwrap().options, defaults);
}

#[test]
fn options_table_helpers() {
    assert_eq!(
        Options::keys().collect::<Vec<_>>(),
        [
            "exec_block_anonymous",
            "exec_block_loader",
            "exec_hash_strict",
            "exec_trusted_only",
            "exec_untrusted_filesystems",
            "block_dot",
            "block_quic",
            "dns_block_queries",
            "dns_ttl_min_seconds",
            "dns_ttl_max_seconds",
            "sni_learned_seconds",
            "learned_shared_below_uid",
            "learned_per_user",
        ]
    );
    let mut options = Options::default();
    assert!(options.set("exec_hash_strict", OptionValue::Bool(true)));
    assert!(options.set("dns_ttl_max_seconds", OptionValue::Seconds(600)));
    // Nothing changes for an unknown key or a value of the wrong type.
    assert!(!options.set("dns_block", OptionValue::Bool(false)));
    assert!(!options.set("dns_block_queries", OptionValue::Seconds(0)));
    assert!(!options.set("dns_ttl_min_seconds", OptionValue::Bool(true)));
    assert_eq!(
        options.get("exec_hash_strict"),
        Some(OptionValue::Bool(true))
    );
    assert_eq!(
        options.get("exec_block_loader"),
        Some(OptionValue::Bool(false))
    );
    assert_eq!(
        options.get("dns_ttl_min_seconds"),
        Some(OptionValue::Seconds(300))
    );
    assert_eq!(options.get("nope"), None);
    assert_eq!(
        options.iter().collect::<Vec<_>>(),
        [
            ("exec_block_anonymous", OptionValue::Bool(false)),
            ("exec_block_loader", OptionValue::Bool(false)),
            ("exec_hash_strict", OptionValue::Bool(true)),
            ("exec_trusted_only", OptionValue::Trust(Trust::Off)),
            (
                "exec_untrusted_filesystems",
                OptionValue::Filesystems(FilesystemSet::recommended())
            ),
            ("block_dot", OptionValue::Bool(false)),
            ("block_quic", OptionValue::Bool(false)),
            ("dns_block_queries", OptionValue::Bool(true)),
            ("dns_ttl_min_seconds", OptionValue::Seconds(300)),
            ("dns_ttl_max_seconds", OptionValue::Seconds(600)),
            ("sni_learned_seconds", OptionValue::Seconds(120)),
            ("learned_shared_below_uid", OptionValue::Number(1000)),
            ("learned_per_user", OptionValue::Number(4096)),
        ]
    );
    assert!(options.set("learned_per_user", OptionValue::Number(8)));
    assert!(!options.set("learned_per_user", OptionValue::Seconds(8)));
    assert_eq!(options.learned_per_user, 8);
    assert_eq!(Options::number_range("learned_per_user"), Some((1, 32_768)));
    assert_eq!(Options::number_range("sni_learned_seconds"), None);
    assert_eq!(OptionValue::Bool(true).to_string(), "true");
    assert_eq!(OptionValue::Seconds(600).to_string(), "600");
    assert_eq!(OptionValue::Number(8).to_string(), "8");
    assert_eq!(OptionValue::Trust(Trust::Audit).to_string(), "\"audit\"");
    assert_eq!(
        OptionValue::Filesystems(FILESYSTEMS_EXAMPLE).to_string(),
        "[\"tmpfs\", \"fuse\"]"
    );
}

#[test]
fn trust_options_take_their_forms_and_name_what_is_wrong() {
    let audit = ok("version = 1\n[options]\nexec_trusted_only = \"audit\"\n\
         exec_untrusted_filesystems = []\n");
    assert_eq!(audit.options.exec_trusted_only, Trust::Audit);
    assert_eq!(audit.options.exec_untrusted_filesystems.names().count(), 0);
    assert_eq!(
        ok("version = 1\n[options]\nexec_trusted_only = false\n")
            .options
            .exec_trusted_only,
        Trust::Off
    );
    assert_eq!(
        errors(
            "version = 1\n[options]\nexec_trusted_only = \"yes\"\n\
             exec_untrusted_filesystems = [\"tmpfs\", \"zfs\", 3, \"tmpfs\"]\n"
        ),
        [
            r#"p.toml:3:21: `exec_trusted_only` must be true, false or "audit", found "yes""#,
            "p.toml:4:40: unknown filesystem \"zfs\"; expected one of: tmpfs, ramfs, fuse, vfat, \
             exfat, ntfs, iso9660, udf, squashfs",
            "p.toml:4:47: each filesystem must be a string, found integer",
            "p.toml:4:50: duplicate filesystem \"tmpfs\"",
        ]
    );
    assert_eq!(
        errors(
            "version = 1\n[options]\nexec_trusted_only = 1\nexec_untrusted_filesystems = \"tmpfs\"\n"
        ),
        [
            r#"p.toml:3:21: `exec_trusted_only` must be true, false or "audit", found integer"#,
            "p.toml:4:30: `exec_untrusted_filesystems` must be an array of filesystem names \
             (tmpfs, ramfs, fuse, vfat, exfat, ntfs, iso9660, udf, squashfs), found string",
        ]
    );
}

#[test]
fn option_values_of_the_wrong_type() {
    assert_eq!(
        errors(
            "version = 1\n[options]\nexec_block_anonymous = \"yes\"\nexec_block_loader = 1\n\
             exec_hash_strict = true\ndns_ttl_min_seconds = \"300\"\ndns_ttl_max_seconds = 1.5\n\
             dns_block_queries = 300\n"
        ),
        [
            "p.toml:3:24: `exec_block_anonymous` must be a boolean (true or false), found string",
            "p.toml:4:21: `exec_block_loader` must be a boolean (true or false), found integer",
            "p.toml:6:23: `dns_ttl_min_seconds` must be an integer number of seconds (1-604800), found string",
            "p.toml:7:23: `dns_ttl_max_seconds` must be an integer number of seconds (1-604800), found float",
            "p.toml:8:21: `dns_block_queries` must be a boolean (true or false), found integer",
        ]
    );
}

#[test]
fn option_seconds_out_of_range() {
    let expected = "must be an integer number of seconds (1-604800), found";
    assert_eq!(
        errors("version = 1\n[options]\ndns_ttl_min_seconds = 0\ndns_ttl_max_seconds = 604801\n"),
        [
            format!("p.toml:3:23: `dns_ttl_min_seconds` {expected} 0"),
            format!("p.toml:4:23: `dns_ttl_max_seconds` {expected} 604801"),
        ]
    );
    assert_eq!(
        errors(
            "version = 1\n[options]\ndns_ttl_min_seconds = -1\n\
             dns_ttl_max_seconds = 99999999999999999999\n"
        ),
        [
            format!("p.toml:3:23: `dns_ttl_min_seconds` {expected} -1"),
            format!("p.toml:4:23: `dns_ttl_max_seconds` {expected} 99999999999999999999"),
        ]
    );
    assert_eq!(
        errors("version = 1\n[options]\ndns_ttl_max_seconds = 4294967296\n"),
        [format!(
            "p.toml:3:23: `dns_ttl_max_seconds` {expected} 4294967296"
        )]
    );
}

#[test]
fn option_numbers_out_of_range_or_of_the_wrong_type() {
    assert_eq!(
        errors("version = 1\n[options]\nlearned_per_user = 0\nlearned_shared_below_uid = -1\n"),
        [
            "p.toml:3:20: `learned_per_user` must be an integer (1-32768), found 0",
            "p.toml:4:28: `learned_shared_below_uid` must be an integer (0-4294967294), found -1",
        ]
    );
    assert_eq!(
        errors(
            "version = 1\n[options]\nlearned_per_user = 32769\nlearned_shared_below_uid = \"1000\"\n"
        ),
        [
            "p.toml:3:20: `learned_per_user` must be an integer (1-32768), found 32769",
            "p.toml:4:28: `learned_shared_below_uid` must be an integer (0-4294967294), found string",
        ]
    );
}

#[test]
fn ttl_min_greater_than_max() {
    let rule = "`dns_ttl_min_seconds` must not be greater than `dns_ttl_max_seconds`";
    // Both in one file: at the later line.
    assert_eq!(
        errors("version = 1\n[options]\ndns_ttl_max_seconds = 60\ndns_ttl_min_seconds = 600\n"),
        [format!(
            "p.toml:4:23: option `dns_ttl_min_seconds` is 600 here but \
             `dns_ttl_max_seconds` is 60 at p.toml:3:23; {rule}"
        )]
    );
    // Against the other bound's default.
    assert_eq!(
        errors("version = 1\n[options]\ndns_ttl_min_seconds = 90000\n"),
        [format!(
            "p.toml:3:23: option `dns_ttl_min_seconds` is 90000 here but \
             `dns_ttl_max_seconds` is 86400 by default; {rule}"
        )]
    );
    assert_eq!(
        errors("version = 1\n[options]\n  dns_ttl_max_seconds = 60\n"),
        [format!(
            "p.toml:3:25: option `dns_ttl_max_seconds` is 60 here but \
             `dns_ttl_min_seconds` is 300 by default; {rule}"
        )]
    );
}

#[test]
fn ttl_bounds_from_several_files() {
    let rule = "`dns_ttl_min_seconds` must not be greater than `dns_ttl_max_seconds`";
    let max = source(
        "max.toml",
        "version = 1\n[options]\ndns_ttl_max_seconds = 60\n\
         [[block]]\nname = \"a\"\ncidrs = [\"10.0.0.1/8\"]\n",
    );
    let min = source(
        "min.toml",
        "version = 2\n[options]\ndns_ttl_min_seconds = 600\n",
    );
    // Reported at the later file, among the errors in reading order.
    assert_eq!(
        errors_of(&[max.clone(), min.clone()]),
        [
            "max.toml:6:10: host bits set in 10.0.0.1/8; did you mean 10.0.0.0/8?".to_owned(),
            "min.toml:1:11: unsupported version 2; only version 1 is supported".to_owned(),
            format!(
                "min.toml:3:23: option `dns_ttl_min_seconds` is 600 here but \
                 `dns_ttl_max_seconds` is 60 at max.toml:3:23; {rule}"
            ),
        ]
    );
    assert_eq!(
        errors_of(&[min, max]),
        [
            "min.toml:1:11: unsupported version 2; only version 1 is supported".to_owned(),
            format!(
                "max.toml:3:23: option `dns_ttl_max_seconds` is 60 here but \
                 `dns_ttl_min_seconds` is 600 at min.toml:3:23; {rule}"
            ),
            "max.toml:6:10: host bits set in 10.0.0.1/8; did you mean 10.0.0.0/8?".to_owned(),
        ]
    );
    // A minimum above the default maximum is fine once another file
    // raises the maximum.
    let policy = parse(&[
        source(
            "one.toml",
            "version = 1\n[options]\ndns_ttl_min_seconds = 100000\n",
        ),
        source(
            "two.toml",
            "version = 1\n[options]\ndns_ttl_max_seconds = 200000\n",
        ),
    ])
    .unwrap();
    assert_eq!(
        (
            policy.options.dns_ttl_min_seconds,
            policy.options.dns_ttl_max_seconds
        ),
        (100_000, 200_000)
    );
}

#[test]
fn unknown_option() {
    assert_eq!(
        errors("version = 1\n[options]\nexec_hash_strict = true\n  dns_block = true\n"),
        [
            r#"p.toml:4:3: unknown key "dns_block" in [options]; expected one of: exec_block_anonymous, exec_block_loader, exec_hash_strict, exec_trusted_only, exec_untrusted_filesystems, block_dot, block_quic, dns_block_queries, dns_ttl_min_seconds, dns_ttl_max_seconds, sni_learned_seconds, learned_shared_below_uid, learned_per_user"#
        ]
    );
}

#[test]
fn options_of_the_wrong_shape() {
    assert_eq!(
        errors("version = 1\n[[options]]\nexec_hash_strict = true\n"),
        ["p.toml:2:1: `options` must be a table (write [options], not [[options]]), found array"]
    );
    assert_eq!(
        errors("version = 1\noptions = 3\n"),
        [
            "p.toml:2:11: `options` must be a table (write [options], not [[options]]), found integer"
        ]
    );
}

#[test]
fn conflicting_options_across_files_point_at_the_second() {
    let first = source(
        "one.toml",
        "version = 1\n[options]\nexec_hash_strict = true\nexec_block_loader = true\n",
    );
    let second = source(
        "two.toml",
        "version = 1\n\n[options]\nexec_block_loader = true\n  exec_hash_strict = false\n",
    );
    assert_eq!(
        errors_of(&[first.clone(), second.clone()]),
        [
            "two.toml:5:22: option `exec_hash_strict` is set to false here but to true at \
             one.toml:3:20; the files of a policy must agree"
        ]
    );
    // Reported at whichever file comes later.
    assert_eq!(
        errors_of(&[second, first]),
        [
            "one.toml:3:20: option `exec_hash_strict` is set to true here but to false at \
             two.toml:5:22; the files of a policy must agree"
        ]
    );
    // Integer options too.
    assert_eq!(
        errors_of(&[
            source(
                "one.toml",
                "version = 1\n[options]\ndns_ttl_min_seconds = 600\n"
            ),
            source(
                "two.toml",
                "version = 1\n[options]\ndns_ttl_min_seconds = 900\n"
            ),
        ]),
        [
            "two.toml:3:23: option `dns_ttl_min_seconds` is set to 900 here but to 600 at \
             one.toml:3:23; the files of a policy must agree"
        ]
    );
}

#[test]
fn the_same_option_value_in_several_files_is_fine() {
    let policy = parse(&[
        source(
            "one.toml",
            "version = 1\n[options]\nexec_hash_strict = true\n",
        ),
        source(
            "two.toml",
            "version = 1\n[options]\nexec_hash_strict = true\nexec_block_anonymous = false\n",
        ),
        source("three.toml", "version = 1\n"),
        source(
            "four.toml",
            "version = 1\n[options]\nexec_block_anonymous = false\nexec_block_loader = true\n",
        ),
    ])
    .unwrap();
    assert_eq!(
        policy.options,
        Options {
            exec_block_loader: true,
            exec_hash_strict: true,
            ..Options::default()
        }
    );
}

#[test]
fn option_errors_come_with_the_other_errors() {
    assert_eq!(
        errors(
            "version = 1\n[options]\nexec_hash_strict = 1\n\n[[block]]\nname = \"a\"\n\
             cidrs = [\"10.0.0.1/8\"]\n"
        ),
        [
            "p.toml:3:20: `exec_hash_strict` must be a boolean (true or false), found integer",
            "p.toml:7:10: host bits set in 10.0.0.1/8; did you mean 10.0.0.0/8?",
        ]
    );
}

#[test]
fn options_serde_round_trip() {
    let policy = Policy {
        rules: ok(FULL).rules,
        options: Options {
            dns_block_queries: false,
            dns_ttl_min_seconds: 60,
            dns_ttl_max_seconds: 3600,
            ..ALL_OPTIONS
        },
        audited_switches: ["block_quic".to_owned()].into(),
    };
    let json = serde_json::to_string(&policy).unwrap();
    assert!(json.contains(r#""exec_hash_strict":true"#), "{json}");
    assert!(
        json.contains(
            r#""dns_block_queries":false,"dns_ttl_min_seconds":60,"dns_ttl_max_seconds":3600"#
        ),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), policy);

    // Policies serialized before options existed, or before a key existed.
    let old: Policy = serde_json::from_str(r#"{"rules":[]}"#).unwrap();
    assert_eq!(old, Policy::default());
    let partial: Policy =
        serde_json::from_str(r#"{"rules":[],"options":{"exec_block_loader":true}}"#).unwrap();
    assert_eq!(
        partial.options,
        Options {
            exec_block_loader: true,
            ..Options::default()
        }
    );
    // Policies serialized before the DNS options existed read as their
    // defaults, not as zero and false.
    let before_dns: Policy = serde_json::from_str(
        r#"{"rules":[],"options":{"exec_block_anonymous":false,"exec_block_loader":true,
            "exec_hash_strict":false,"block_dot":true,"block_quic":false}}"#,
    )
    .unwrap();
    assert_eq!(
        before_dns.options,
        Options {
            exec_block_anonymous: false,
            exec_block_loader: true,
            exec_hash_strict: false,
            block_dot: true,
            block_quic: false,
            dns_block_queries: true,
            dns_ttl_min_seconds: 300,
            dns_ttl_max_seconds: 86_400,
            ..Options::default()
        }
    );
}

// ---- files_in_dir ----

#[test]
fn a_policy_directory_gives_its_toml_files_in_name_order_and_nothing_else() {
    let dir = crate::testutil::ScratchDir::new("policy-dir");
    for name in [
        "20-zoom.toml",
        "10-telegram.toml",
        ".hidden.toml",
        "10-telegram.toml~",
        "30-old.toml.dpkg-old",
        "README",
    ] {
        std::fs::write(dir.join(name), "version = 1\n").unwrap();
    }
    std::fs::create_dir(dir.join("40-directory.toml")).unwrap();
    let files = super::files_in_dir(&dir).unwrap();
    assert_eq!(
        files,
        [dir.join("10-telegram.toml"), dir.join("20-zoom.toml")]
    );
}

#[test]
fn an_empty_or_missing_policy_directory_is_an_error_that_names_it() {
    let dir = crate::testutil::ScratchDir::new("policy-dir-empty");
    std::fs::write(dir.join("notes.txt"), "").unwrap();
    let error = super::files_in_dir(&dir).unwrap_err().to_string();
    assert_eq!(
        error,
        format!("policy directory {}: no *.toml file in it", dir.display())
    );
    let missing = dir.join("missing");
    let error = super::files_in_dir(&missing).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("policy directory {}: ", missing.display())),
        "{error}"
    );
}

// ---- shared_targets ----

#[test]
fn a_banned_link_to_a_file_of_another_name_is_warned_of() {
    let dir = crate::testutil::ScratchDir::new("policy-links");
    let launcher = dir.join("snap");
    std::fs::write(&launcher, "").unwrap();
    let app = dir.join("telegram-desktop");
    std::os::unix::fs::symlink(&launcher, &app).unwrap();
    let same_name = dir.join("other").join("snap");
    std::fs::create_dir(dir.join("other")).unwrap();
    std::os::unix::fs::symlink(&launcher, &same_name).unwrap();
    let text = format!(
        "version = 1\n[[block]]\nname = \"telegram\"\nexec_paths = [{:?}, {:?}, {:?}]\n",
        app.display().to_string(),
        same_name.display().to_string(),
        launcher.display().to_string(),
    );
    let policy = parse(&[Source {
        name: "p.toml".into(),
        text,
    }])
    .unwrap();
    let warnings = super::shared_targets(&policy);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(
        warnings[0].to_string(),
        format!(
            "p.toml:2: warning: rule \"telegram\": {} is a link to {}; the ban holds for that \
             file, and for every other name it is started by",
            app.display(),
            std::fs::canonicalize(&launcher).unwrap().display()
        )
    );
}

// ---- load_files ----

#[test]
fn load_files_reads_and_reports_unreadable_files() {
    let dir = std::env::temp_dir().join(format!("enforcer-policy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "version = 1\n[[block]]\nname = \"a\"\ncidrs = [\"10.0.0.0/8\"]\n",
    )
    .unwrap();
    let missing = dir.join("missing.toml");

    let policy = load_files(std::slice::from_ref(&good)).unwrap();
    assert_eq!(policy.rules[0].origin.file, good.display().to_string());

    let Err(PolicyErrors(errors)) = load_files(&[missing.clone(), good]) else {
        panic!("expected an error for the missing file");
    };
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].file, missing.display().to_string());
    assert_eq!((errors[0].line, errors[0].column), (0, 0));
    assert!(
        errors[0].message.starts_with("cannot read file: "),
        "{}",
        errors[0].message
    );
}

// ---- value types ----

#[test]
fn displays() {
    assert_eq!(v4([10, 0, 0, 0], 8).to_string(), "10.0.0.0/8");
    assert_eq!(
        PortRange {
            first: 443,
            last: 443
        }
        .to_string(),
        "443"
    );
    assert_eq!(
        PortRange {
            first: 3478,
            last: 3481
        }
        .to_string(),
        "3478-3481"
    );
    assert_eq!(Mode::Enforce.to_string(), "enforce");
    assert_eq!(Mode::Audit.to_string(), "audit");
    assert_eq!(RuleKind::Block.to_string(), "block");
    assert_eq!(RuleKind::Allow.to_string(), "allow");
}

#[test]
fn serde_round_trip() {
    let policy = ok(FULL);
    let json = serde_json::to_string(&policy).unwrap();
    assert!(
        json.contains(r#""cidrs":["149.154.160.0/20","91.108.4.0/22","2001:b28:f23d::/48"]"#),
        "{json}"
    );
    assert!(json.contains(r#""kind":"block""#), "{json}");
    assert!(json.contains(r#""mode":"audit""#), "{json}");
    let back: Policy = serde_json::from_str(&json).unwrap();
    assert_eq!(back, policy);

    // Deserializing validates like parsing does.
    assert!(serde_json::from_str::<Cidr>(r#""10.0.0.1/8""#).is_err());
    assert_eq!(
        serde_json::from_str::<Cidr>(r#""::ffff:10.0.0.0/104""#).unwrap(),
        v4([10, 0, 0, 0], 8)
    );
}

#[test]
fn readme_example_is_valid() {
    let readme = include_str!("../../../policies/README.md");
    let start = readme.find("```toml\n").expect("README has a toml example") + "```toml\n".len();
    let end = start + readme[start..].find("```").expect("example is closed");
    let policy = ok(&readme[start..end]);
    let names: Vec<_> = policy.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "telegram",
            "dns-over-tls",
            "corporate-relay",
            "telegram-domains",
            "corporate-mirror",
            "messenger-clients",
            "corporate-chat",
        ]
    );
    assert_eq!(
        policy.rules[3].domains,
        [domain("telegram.org"), domain("t.me")]
    );
    assert_eq!(policy.rules[4].kind, RuleKind::Allow);
    assert_eq!(
        policy.rules[4].domains,
        [domain("corp-mirror.telegram.org")]
    );
    let clients = &policy.rules[5];
    assert!(clients.cidrs.is_empty());
    assert_eq!(
        clients.exec_paths,
        [dir("/opt/messengers"), file("/opt/Telegram/Telegram")]
    );
    assert_eq!(clients.exec_names, ["telegram-desktop", "Telegram"]);
    let chat = &policy.rules[6];
    assert_eq!(chat.kind, RuleKind::Allow);
    assert_eq!(chat.exec_paths, [file("/opt/messengers/corporate-chat")]);
}

#[test]
fn readme_options_example_is_valid() {
    let readme = include_str!("../../../policies/README.md");
    let section = &readme[readme
        .find("\n## Options\n")
        .expect("README has an Options section")..];
    let start = section
        .find("```toml\n")
        .expect("Options has a toml example")
        + "```toml\n".len();
    let end = start + section[start..].find("```").expect("example is closed");
    let policy = ok(&format!("version = 1\n{}", &section[start..end]));
    assert_eq!(policy.options, ALL_OPTIONS);
}

/// The rows of the key table in the README section `heading`, as (key,
/// meaning).
fn readme_key_rows(heading: &str) -> Vec<(String, String)> {
    let readme = include_str!("../../../policies/README.md");
    let start = readme
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README has a {heading} section"))
        + 1;
    let section = &readme[start..];
    let section = &section[..section[3..]
        .find("\n## ")
        .map_or(section.len(), |end| end + 3)];
    section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let key = cells[1].trim_matches('`').to_owned();
            (key, cells[cells.len() - 2].to_owned())
        })
        .collect()
}

#[test]
fn readme_lists_every_rule_key_in_table_order() {
    let rows = readme_key_rows("Rule keys");
    let documented: Vec<&str> = rows.iter().map(|(key, _)| key.as_str()).collect();
    let defined: Vec<&str> = RULE_KEYS.iter().map(|key| key.key).collect();
    assert_eq!(documented, defined, "policies/README.md, ## Rule keys");
    for ((key, meaning), defined) in rows.iter().zip(RULE_KEYS) {
        assert_eq!(
            meaning.starts_with("Block rules only"),
            defined.block_only.is_some(),
            "whether `{key}` is documented as for block rules only"
        );
    }
    // The README's examples of the errors that list rule keys are what
    // the parser says.
    let readme = include_str!("../../../policies/README.md");
    for message in errors("version = 1\n[[block]]\nname = \"x\"\nport = [443]\n") {
        let (_, message) = message.split_once(": ").expect("FILE:LINE:COL: message");
        assert!(readme.contains(message), "README quotes {message:?}");
    }
}

#[test]
fn readme_lists_every_option_in_table_order() {
    let rows = readme_key_rows("Options");
    let documented: Vec<&str> = rows.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(
        documented,
        Options::keys().collect::<Vec<_>>(),
        "policies/README.md, ## Options"
    );
    let readme = include_str!("../../../policies/README.md");
    for message in errors("version = 1\n[options]\ndns_block = true\n") {
        let (_, message) = message.split_once(": ").expect("FILE:LINE:COL: message");
        assert!(readme.contains(message), "README quotes {message:?}");
    }
}
