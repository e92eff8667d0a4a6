//! The shipped packs and the approved-only profile on the real kernel,
//! read from `policies/` as they ship, tried by an unprivileged uid in a
//! cgroup of the test's own. The only file the test writes is the one the
//! administrator fills in: which resolver the workstations use. Its
//! addresses are 127.0.4.0/24.

use std::{ffi::OsStr, net::Ipv4Addr, path::PathBuf};

use enforcer_integration_tests::{
    cgroup::TestCgroup,
    command::{assert_exit_code, enforcer, run},
    daemon::Daemon,
    dns::{DnsOutcome, DnsServer, Transport, Zone, dns_query},
    net::{EPERM, Op, Outcome, probe_as, tcp_listener},
    privilege::NOBODY,
    tls::{tls_hello_as, tls_listener},
};

const RESOLVER: Ipv4Addr = Ipv4Addr::new(127, 0, 4, 53);
/// Where the test's resolver says the services are.
const VK_TEAMS_AT: Ipv4Addr = Ipv4Addr::new(127, 0, 4, 10);
const TELEGRAM_AT: Ipv4Addr = Ipv4Addr::new(127, 0, 4, 11);
const ELSEWHERE_AT: Ipv4Addr = Ipv4Addr::new(127, 0, 4, 12);

/// A name VK Teams' clients reach, under the profile's `approved-vk-teams`.
const VK_TEAMS: &str = "myteam.mail.ru";

/// What the administrator writes beside the profile: the resolver.
const ORGANISATION: &str = r#"
version = 1
[[allow]]
name = "organisation-test-resolver"
cidrs = ["127.0.4.53/32"]
ports = [53]
"#;

/// The shipped policies, from the package's directory, where cargo and the
/// VM harness run the tests.
fn policies() -> PathBuf {
    PathBuf::from("../policies")
}

fn profile() -> PathBuf {
    policies().join("profiles/approved-only.toml")
}

/// `--policy FILE` for the profile and every pack of the ban list.
fn profile_and_bans() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(policies().join("ban"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension() == Some(OsStr::new("toml")))
        .collect();
    files.sort();
    files.insert(0, profile());
    files
}

fn policy_args(files: &[PathBuf]) -> Vec<&OsStr> {
    files
        .iter()
        .flat_map(|file| [OsStr::new("--policy"), file.as_os_str()])
        .collect()
}

fn zone() -> Zone {
    Zone::new()
        .a(VK_TEAMS, VK_TEAMS_AT, 600)
        .a("web.telegram.org", TELEGRAM_AT, 600)
        .a("elsewhere.example", ELSEWHERE_AT, 600)
}

/// The done-when of the ban list: VK Teams resolves and connects, Telegram
/// does neither, and a ClientHello for Telegram sent to the approved
/// address (domain fronting) is dropped.
#[test]
fn the_approved_only_profile_lets_vk_teams_through_and_refuses_telegram() {
    let profile_text = std::fs::read_to_string(profile()).unwrap();
    assert!(
        profile_text.contains("\"mail.ru\"") || profile_text.contains(&format!("\"{VK_TEAMS}\"")),
        "the profile no longer approves {VK_TEAMS}"
    );
    let _server = DnsServer::start(RESOLVER, zone());
    let (_vk_teams, vk_teams_port) = tcp_listener(VK_TEAMS_AT);
    let (_telegram, telegram_port) = tcp_listener(TELEGRAM_AT);
    let (_elsewhere, elsewhere_port) = tcp_listener(ELSEWHERE_AT);
    let cgroup = TestCgroup::new();
    let files = profile_and_bans();
    let daemon = Daemon::start_with(&cgroup, ORGANISATION, &policy_args(&files));

    // The resolver daemon, a system uid (root here), asks.
    assert_eq!(
        dns_query(&cgroup, Transport::Udp, RESOLVER, VK_TEAMS, "A"),
        DnsOutcome::Answer(vec![format!("A={VK_TEAMS_AT}")])
    );
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, VK_TEAMS_AT, vk_teams_port),
        Outcome::Ok,
        "VK Teams connects"
    );
    assert_eq!(
        dns_query(&cgroup, Transport::Udp, RESOLVER, "web.telegram.org", "A"),
        DnsOutcome::Errno(libc::EPERM),
        "the Telegram pack drops the query"
    );
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, TELEGRAM_AT, telegram_port),
        EPERM,
        "an address nobody approved is refused"
    );
    assert!(dns_query(&cgroup, Transport::Udp, RESOLVER, "elsewhere.example", "A").is_answered());
    assert_eq!(
        probe_as(
            &cgroup,
            NOBODY,
            Op::TcpConnect,
            ELSEWHERE_AT,
            elsewhere_port
        ),
        EPERM,
        "a resolved name that is not approved opens nothing"
    );
    let (fronted, fronted_port) = tls_listener(VK_TEAMS_AT);
    assert_eq!(
        tls_hello_as(
            &cgroup,
            VK_TEAMS_AT,
            fronted_port,
            "web.telegram.org",
            NOBODY
        ),
        Outcome::Errno(libc::ECONNABORTED),
        "Telegram's name through the approved address"
    );
    assert!(!fronted.received_client_hello(std::time::Duration::from_secs(1)));
    let refused = daemon.expect_event("the catch-all refusing", |event| {
        event["rule"] == "approved-only-everything-else"
            && event["daddr"] == TELEGRAM_AT.to_string()
            && event["uid"] == NOBODY
    });
    assert_eq!(refused["verdict"], "blocked");
}

/// Piloting the profile as its README says: `policy apply --mode audit`
/// lets everything through and reports what enforcing would refuse.
#[test]
fn the_profile_applied_in_audit_mode_reports_and_refuses_nothing() {
    let _server = DnsServer::start(Ipv4Addr::new(127, 0, 4, 54), zone());
    let (_elsewhere, port) = tcp_listener(Ipv4Addr::new(127, 0, 4, 13));
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, ORGANISATION);
    let output = run(enforcer(["policy", "apply", "--mode", "audit", "--socket"])
        .arg(daemon.socket())
        .arg(profile()));
    assert_exit_code(&output, 0, "policy apply --mode audit");
    assert_eq!(
        probe_as(
            &cgroup,
            NOBODY,
            Op::TcpConnect,
            Ipv4Addr::new(127, 0, 4, 13),
            port
        ),
        Outcome::Ok
    );
    let audited = daemon.expect_event("the catch-all auditing", |event| {
        event["rule"] == "approved-only-everything-else" && event["daddr"] == "127.0.4.13"
    });
    assert_eq!(audited["verdict"], "audit");
}

/// The done-when of `policy explain`, through the binary, on the packs as
/// shipped.
#[test]
fn policy_explain_names_the_rule_of_each_banned_service() {
    let output = run(enforcer(["policy", "explain", "--dir"])
        .arg(policies().join("ban"))
        .args([
            "149.154.167.50:443/tcp",
            "web.whatsapp.com",
            "/usr/bin/telegram-desktop",
        ]));
    assert_exit_code(&output, 0, "policy explain");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.starts_with("  ")).collect();
    let expected = [
        (
            "149.154.167.50:443/tcp: blocked by rule telegram-addresses",
            "telegram.toml",
        ),
        (
            "web.whatsapp.com: blocked by rule whatsapp-domains",
            "whatsapp.toml",
        ),
        (
            "/usr/bin/telegram-desktop: blocked by rule telegram-clients",
            "clients.toml",
        ),
    ];
    assert_eq!(lines.len(), expected.len(), "{stdout}");
    for (line, (start, file)) in lines.iter().zip(expected) {
        assert!(line.starts_with(start) && line.contains(file), "{line}");
    }
}
