//! Hit counts per rule: what the kernel counts for each rule by verdict,
//! as `status` shows it, and how the counts of a rule name carry over an
//! apply that moves the rule to another index.
//!
//! Addresses: 127.0.3.0/24 only.

use std::{
    fs,
    net::{Ipv4Addr, TcpListener},
};

use enforcer_integration_tests::{
    cgroup::TestCgroup,
    command::{assert_exit_code, enforcer, run},
    daemon::Daemon,
    dns::{DnsServer, Zone, dns_query_as},
    exec::{ExecMethod, RAN, blocked_outcome, exec_probe_as},
    net::{EPERM, Op, Outcome, probe_as, tcp_listener},
    privilege::NOBODY,
    temp::TempDir,
};
use serde_json::{Value, json};

const BLOCKED: Ipv4Addr = Ipv4Addr::new(127, 0, 3, 1);
const ALLOWED: Ipv4Addr = Ipv4Addr::new(127, 0, 3, 2);
const AUDITED: Ipv4Addr = Ipv4Addr::new(127, 0, 3, 3);

/// The /24 blocked, with an allow exception for [`ALLOWED`].
const FIRST: &str = r#"
version = 1

[[block]]
name = "hits-block"
cidrs = ["127.0.3.0/24"]

[[allow]]
name = "hits-allow"
cidrs = ["127.0.3.2/32"]
"#;

/// `hits-block` again, now second: its index in the generation changes.
/// `hits-allow` is gone, and an audit rule comes first.
const SECOND: &str = r#"
version = 1

[[block]]
name = "hits-audit"
mode = "audit"
cidrs = ["127.0.3.3/32"]

[[block]]
name = "hits-block"
cidrs = ["127.0.3.1/32"]
"#;

/// A listener on each address.
struct Targets {
    ports: [u16; 3],
    _listeners: [TcpListener; 3],
}

impl Targets {
    fn new() -> Self {
        let [(blocked, b), (allowed, a), (audited, c)] =
            [BLOCKED, ALLOWED, AUDITED].map(tcp_listener);
        Self {
            ports: [b, a, c],
            _listeners: [blocked, allowed, audited],
        }
    }

    fn port(&self, addr: Ipv4Addr) -> u16 {
        let index = [BLOCKED, ALLOWED, AUDITED]
            .iter()
            .position(|&known| known == addr)
            .expect("a target address");
        self.ports[index]
    }

    /// Connects as `nobody` from inside `cgroup`, `times` times, each
    /// with the outcome `expected`.
    #[track_caller]
    fn connect(&self, cgroup: &TestCgroup, addr: Ipv4Addr, times: usize, expected: Outcome) {
        for _ in 0..times {
            let outcome = probe_as(cgroup, NOBODY, Op::TcpConnect, addr, self.port(addr));
            assert_eq!(outcome, expected, "TCP connect to {addr} as uid {NOBODY}");
        }
    }
}

/// The rows of `status --json`'s `rule_hits`, by rule name, without the
/// name.
fn rows(status: &Value) -> Vec<(String, Value)> {
    status["rule_hits"]["rules"]
        .as_array()
        .unwrap_or_else(|| panic!("status --json has no rule_hits.rules: {status:#}"))
        .iter()
        .map(|row| {
            let mut row = row.clone();
            let name = row["rule"].as_str().expect("a rule name").to_string();
            row.as_object_mut().expect("an object").remove("rule");
            (name, row)
        })
        .collect()
}

fn hits(in_policy: bool, allowed: u64, blocked: u64, audited: u64) -> Value {
    json!({"in_policy": in_policy, "allowed": allowed, "blocked": blocked, "audited": audited})
}

#[test]
fn hits_are_counted_per_rule_and_verdict_and_carried_over_an_apply_by_name() {
    let targets = Targets::new();
    let cgroup = TestCgroup::new();
    let mut daemon = Daemon::start(&cgroup, FIRST);

    targets.connect(&cgroup, BLOCKED, 2, EPERM);
    targets.connect(&cgroup, AUDITED, 1, EPERM);
    targets.connect(&cgroup, ALLOWED, 3, Outcome::Ok);

    let status = daemon.status_json();
    assert_eq!(
        rows(&status),
        [
            ("hits-block".to_string(), hits(true, 0, 3, 0)),
            ("hits-allow".to_string(), hits(true, 3, 0, 0)),
        ],
        "status --json: {status:#}"
    );
    assert!(
        status["rule_hits"]["since"].is_string(),
        "status --json says since when it counts: {status:#}"
    );
    assert_eq!(status["counters"]["hits_uncounted"], 0);

    assert_exit_code(&daemon.apply(SECOND), 0, "policy apply");
    targets.connect(&cgroup, BLOCKED, 1, EPERM);
    targets.connect(&cgroup, AUDITED, 2, Outcome::Ok);
    targets.connect(&cgroup, ALLOWED, 1, Outcome::Ok);

    let status = daemon.status_json();
    assert_eq!(
        rows(&status),
        [
            ("hits-audit".to_string(), hits(true, 0, 0, 2)),
            ("hits-block".to_string(), hits(true, 0, 4, 0)),
            ("hits-allow".to_string(), hits(false, 3, 0, 0)),
        ],
        "status --json after the apply: {status:#}"
    );

    let text = run(enforcer(["status", "--socket"]).arg(daemon.socket()));
    assert_exit_code(&text, 0, "status");
    let text = String::from_utf8_lossy(&text.stdout);
    let table = text
        .split_once("rule hits since the daemon started")
        .unwrap_or_else(|| panic!("status shows no rule hits:\n{text}"))
        .1;
    let row = |name: &str| {
        table
            .lines()
            .find(|line| line.split_whitespace().next() == Some(name))
            .map(|line| line.split_whitespace().skip(1).collect::<Vec<_>>())
    };
    assert_eq!(
        row("hits-block"),
        Some(vec!["0", "4", "0"]),
        "status:\n{text}"
    );
    assert_eq!(
        row("hits-allow"),
        Some(vec!["(not", "in", "the", "policy", "now)", "3", "0", "0"]),
        "status:\n{text}"
    );
}

#[test]
fn exec_hits_are_counted_for_the_rule_that_decided() {
    let dir = TempDir::new();
    let [banned, allowed] = ["hits-banned", "hits-allowed"].map(|name| {
        let copy = dir.copy(name, "/bin/echo");
        fs::canonicalize(&copy).expect("the copy exists")
    });
    let policy = format!(
        "version = 1\n\n[[block]]\nname = \"hits-exec-ban\"\nexec_paths = [{}]\n\n\
         [[allow]]\nname = \"hits-exec-allow\"\nexec_paths = [{}]\n",
        serde_json::to_string(&banned).expect("a path"),
        serde_json::to_string(&allowed).expect("a path"),
    );
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, &policy);
    let blocked = blocked_outcome(&daemon);

    let probe = exec_probe_as(&cgroup, NOBODY, ExecMethod::Execve, &banned, &["ran"]);
    assert_eq!(probe.outcome, blocked, "the banned copy: {probe:?}");
    for _ in 0..2 {
        let probe = exec_probe_as(&cgroup, NOBODY, ExecMethod::Execve, &allowed, &["ran"]);
        assert_eq!(probe.outcome, RAN, "the allowed copy: {probe:?}");
    }

    let status = daemon.status_json();
    assert_eq!(
        rows(&status),
        [
            ("hits-exec-ban".to_string(), hits(true, 0, 1, 0)),
            ("hits-exec-allow".to_string(), hits(true, 2, 0, 0)),
        ],
        "status --json: {status:#}"
    );
}

#[test]
fn dns_queries_are_counted_for_the_domain_rule_that_decided() {
    let server_addr = Ipv4Addr::new(127, 0, 3, 53);
    let zone = Zone::new()
        .a("www.hits.example", Ipv4Addr::new(127, 0, 3, 10), 60)
        .a("open.hits.example", Ipv4Addr::new(127, 0, 3, 11), 60);
    let _server = DnsServer::start(server_addr, zone);
    let policy = "version = 1\n\n[[block]]\nname = \"hits-domain\"\ndomains = [\"hits.example\"]\n\n\
                  [[allow]]\nname = \"hits-domain-allow\"\ndomains = [\"open.hits.example\"]\n";
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, policy);

    for _ in 0..2 {
        let outcome = dns_query_as(&cgroup, NOBODY, server_addr, "www.hits.example");
        assert!(outcome.is_refused(), "www.hits.example: {outcome:?}");
    }
    let outcome = dns_query_as(&cgroup, NOBODY, server_addr, "open.hits.example");
    assert!(outcome.is_answered(), "open.hits.example: {outcome:?}");

    let status = daemon.status_json();
    assert_eq!(
        rows(&status),
        [
            ("hits-domain".to_string(), hits(true, 0, 2, 0)),
            ("hits-domain-allow".to_string(), hits(true, 1, 0, 0)),
        ],
        "status --json: {status:#}"
    );
}
