//! Learned addresses against the real kernel, from the side of the users
//! they bind: what a DNS answer or a ClientHello lists binds only whom it
//! should (see `enforcer_common::learned`), a flood of them unblocks
//! nothing, and an allow by name opens what a block by network closes.
//! Each test has its own loopback addresses and cgroup, and its users are
//! unprivileged uids that have dropped root inside it.

use std::{
    net::Ipv4Addr,
    thread,
    time::{Duration, Instant},
};

use enforcer_integration_tests::{
    cgroup::TestCgroup,
    daemon::Daemon,
    dns::{
        DnsOutcome, DnsServer, Transport, Zone, dns_flood, dns_query, dns_query_as,
        numbered_answers,
    },
    net::{EPERM, Op, Outcome, probe, probe_as, tcp_listener},
    privilege::{ANOTHER_USER, NOBODY},
    tls::{tls_hello_as, tls_listener},
};

/// One click on a t.me link through the corporate proxy sends a
/// ClientHello naming a listed server to the proxy's address. That address
/// is refused to the user who sent it, for `sni_learned_seconds`, and to
/// nobody else: the proxy carries everyone's traffic.
#[test]
fn a_client_hello_through_a_proxy_refuses_the_proxy_to_its_sender_alone_and_briefly() {
    let proxy = Ipv4Addr::new(127, 0, 1, 64);
    let (listener, port) = tls_listener(proxy);
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(
        &cgroup,
        r#"
version = 1
[options]
sni_learned_seconds = 2
[[block]]
name = "telegram"
domains = ["t.me"]
"#,
    );
    tls_hello_as(&cgroup, proxy, port, "t.me", NOBODY);
    assert!(
        !listener.received_client_hello(Duration::from_secs(1)),
        "the ClientHello reached the proxy"
    );
    let event = daemon.expect_event("an sni event", |event| event["kind"] == "sni");
    assert_eq!(event["ttl"], 2);
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, proxy, port),
        EPERM
    );
    assert_eq!(
        probe_as(&cgroup, ANOTHER_USER, Op::TcpConnect, proxy, port),
        Outcome::Ok,
        "another user lost the proxy"
    );
    assert_eq!(probe(&cgroup, Op::TcpConnect, proxy, port), Outcome::Ok);
    thread::sleep(Duration::from_millis(2300));
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, proxy, port),
        Outcome::Ok,
        "the sender gets the proxy back after sni_learned_seconds"
    );
}

/// A user who runs a resolver of their own can make it answer anything,
/// such as the gateway's address for a listed name. What it teaches binds
/// that user alone; the answers of a system uid's socket (root here, a
/// resolver daemon on a workstation) bind everyone.
#[test]
fn an_answer_from_a_users_own_resolver_binds_that_user_alone() {
    let own_resolver = Ipv4Addr::new(127, 0, 1, 65);
    let gateway = Ipv4Addr::new(127, 0, 1, 66);
    let (_listener, port) = tcp_listener(gateway);
    let _server = DnsServer::start(
        own_resolver,
        Zone::new().a("web.whatsapp.com", gateway, 600),
    );
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(
        &cgroup,
        r#"
version = 1
[options]
dns_block_queries = false
[[block]]
name = "whatsapp"
domains = ["whatsapp.com"]
"#,
    );
    assert!(dns_query_as(&cgroup, NOBODY, own_resolver, "web.whatsapp.com").is_answered());
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, gateway, port),
        EPERM
    );
    assert_eq!(
        probe_as(&cgroup, ANOTHER_USER, Op::TcpConnect, gateway, port),
        Outcome::Ok,
        "one user's resolver refused the gateway to another"
    );
    assert_eq!(probe(&cgroup, Op::TcpConnect, gateway, port), Outcome::Ok);

    assert!(
        dns_query(
            &cgroup,
            Transport::Udp,
            own_resolver,
            "web.whatsapp.com",
            "A"
        )
        .is_answered()
    );
    assert_eq!(
        probe_as(&cgroup, ANOTHER_USER, Op::TcpConnect, gateway, port),
        EPERM,
        "an answer a system uid received binds everyone"
    );
}

/// Each uid holds at most `learned_per_user` addresses, and nothing is
/// evicted to make room: a user who floods the map with junk answers for a
/// listed domain gets them dropped, keeps the block that stops them, and
/// leaves room for everyone else.
#[test]
fn a_flood_of_learned_addresses_unblocks_nothing() {
    const QUOTA: u32 = 32;
    const ANSWERS_PER_NAME: u32 = 4;
    const NAMES: u32 = 16;
    let flood_server = Ipv4Addr::new(127, 0, 1, 67);
    let zone_server = Ipv4Addr::new(127, 0, 1, 68);
    let (real, fresh) = (Ipv4Addr::new(127, 0, 1, 69), Ipv4Addr::new(127, 0, 1, 70));
    let _flood = DnsServer::raw(flood_server, numbered_answers(ANSWERS_PER_NAME));
    let _zone = DnsServer::start(
        zone_server,
        Zone::new()
            .a("real.flood.example", real, 600)
            .a("fresh.flood.example", fresh, 600),
    );
    let (_real, real_port) = tcp_listener(real);
    let (_fresh, fresh_port) = tcp_listener(fresh);
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(
        &cgroup,
        &format!(
            "version = 1\n[options]\ndns_block_queries = false\nlearned_per_user = {QUOTA}\n\
             [[block]]\nname = \"flood\"\ndomains = [\"flood.example\"]\n"
        ),
    );
    assert!(dns_query_as(&cgroup, NOBODY, zone_server, "real.flood.example").is_answered());
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, real, real_port),
        EPERM
    );

    let answered = dns_flood(
        &cgroup,
        Some(NOBODY),
        flood_server,
        "flood.example",
        0..NAMES,
    );
    assert_eq!(
        answered,
        (QUOTA - 1) / ANSWERS_PER_NAME,
        "only the answers that fit the quota reach the flooder"
    );
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, real, real_port),
        EPERM,
        "the flood pushed out the block"
    );
    let status = daemon.status_json();
    assert!(
        status["counters"]["learned_unstored"].as_u64() > Some(0),
        "{}",
        status["counters"]
    );
    assert_eq!(status["counters"]["lookup_faults"], 0);

    assert!(dns_query_as(&cgroup, ANOTHER_USER, zone_server, "fresh.flood.example").is_answered());
    assert_eq!(
        probe_as(&cgroup, ANOTHER_USER, Op::TcpConnect, fresh, fresh_port),
        EPERM,
        "another user still learns"
    );
    let full = daemon.expect_event("a learned_full event", |event| {
        event["kind"] == "learned_full"
    });
    assert_eq!(
        full["full"],
        serde_json::json!([{"uid": NOBODY, "entries": QUOTA, "quota": QUOTA}]),
        "{full}"
    );
}

/// "Block everything, except the corporate resolver and these services by
/// name": the addresses that a resolver daemon's answer (root's, here: a
/// system uid) gives for an allowed name are opened to every uid, and
/// nothing else is.
#[test]
fn an_allow_by_name_opens_what_a_block_by_network_closes() {
    let resolver = Ipv4Addr::new(127, 0, 1, 71);
    let (approved, other) = (Ipv4Addr::new(127, 0, 1, 72), Ipv4Addr::new(127, 0, 1, 73));
    let _server = DnsServer::start(
        resolver,
        Zone::new()
            .a("calls.approved.example", approved, 600)
            .a("other.example", other, 600),
    );
    let (_approved, approved_port) = tcp_listener(approved);
    let (_other, other_port) = tcp_listener(other);
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(
        &cgroup,
        r#"
version = 1
[[block]]
name = "everything"
cidrs = ["0.0.0.0/0", "::/0"]
[[allow]]
name = "resolver"
cidrs = ["127.0.1.71/32"]
ports = [53]
[[allow]]
name = "approved"
domains = ["approved.example"]
"#,
    );
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, approved, approved_port),
        EPERM,
        "nothing is open before the name is resolved"
    );
    assert_eq!(
        dns_query(
            &cgroup,
            Transport::Udp,
            resolver,
            "calls.approved.example",
            "A"
        ),
        DnsOutcome::Answer(vec![format!("A={approved}")])
    );
    for uid in [NOBODY, ANOTHER_USER] {
        assert_eq!(
            probe_as(&cgroup, uid, Op::TcpConnect, approved, approved_port),
            Outcome::Ok,
            "uid {uid}"
        );
    }
    assert!(dns_query(&cgroup, Transport::Udp, resolver, "other.example", "A").is_answered());
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, other, other_port),
        EPERM,
        "an unlisted name opens nothing"
    );
}

/// A user who runs a resolver of their own can make it give a blocked
/// network's address for an allowed name. What a user's socket receives
/// never opens an address.
#[test]
fn a_users_own_resolver_cannot_open_a_blocked_network_by_an_allowed_name() {
    let own_resolver = Ipv4Addr::new(127, 0, 1, 81);
    let blocked = Ipv4Addr::new(127, 0, 1, 82);
    let (_listener, port) = tcp_listener(blocked);
    let _server = DnsServer::start(
        own_resolver,
        Zone::new().a("calls.approved.example", blocked, 600),
    );
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(
        &cgroup,
        r#"
version = 1
[[block]]
name = "telegram-network"
cidrs = ["127.0.1.82/32"]
[[allow]]
name = "approved"
domains = ["approved.example"]
"#,
    );
    assert!(dns_query_as(&cgroup, NOBODY, own_resolver, "calls.approved.example").is_answered());
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, blocked, port),
        EPERM,
        "a user's own answer opened a blocked network"
    );
}

/// A blocked and an allowed name on one front end: as everywhere in a
/// policy, the allow wins, whichever answer came first. The blocked name
/// is still refused by its queries and ClientHellos.
#[test]
fn a_blocked_and_an_allowed_name_on_one_address_leave_it_open() {
    let resolver = Ipv4Addr::new(127, 0, 1, 74);
    let shared = Ipv4Addr::new(127, 0, 1, 75);
    let _server = DnsServer::start(
        resolver,
        Zone::new()
            .a("web.whatsapp.com", shared, 600)
            .a("calls.approved.example", shared, 600),
    );
    let (_listener, port) = tcp_listener(shared);
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(
        &cgroup,
        r#"
version = 1
[options]
dns_block_queries = false
[[block]]
name = "whatsapp"
domains = ["whatsapp.com"]
[[allow]]
name = "approved"
domains = ["approved.example"]
"#,
    );
    let resolve = |name| dns_query(&cgroup, Transport::Udp, resolver, name, "A").is_answered();
    assert!(resolve("web.whatsapp.com"));
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, shared, port),
        EPERM
    );
    assert!(resolve("calls.approved.example"));
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, shared, port),
        Outcome::Ok,
        "the allowed name's answer opened the address"
    );
    assert!(resolve("web.whatsapp.com"));
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, shared, port),
        Outcome::Ok,
        "a later answer for the blocked name closed it again"
    );
}

/// The daemon deletes expired entries, and their owner gets the room
/// back: a quota filled by answers that have expired stops nothing.
#[test]
fn an_owner_at_its_quota_gets_room_back_when_its_entries_expire() {
    const QUOTA: u32 = 4;
    let server = Ipv4Addr::new(127, 0, 1, 83);
    let _server = DnsServer::raw(server, numbered_answers(QUOTA));
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(
        &cgroup,
        &format!(
            "version = 1\n[options]\ndns_block_queries = false\nlearned_per_user = {QUOTA}\n\
             dns_ttl_min_seconds = 1\ndns_ttl_max_seconds = 1\n\
             [[block]]\nname = \"flood\"\ndomains = [\"flood.example\"]\n"
        ),
    );
    assert!(dns_query_as(&cgroup, NOBODY, server, "1.flood.example").is_answered());
    assert!(
        !dns_query_as(&cgroup, NOBODY, server, "2.flood.example").is_answered(),
        "the quota is full"
    );
    // The entries expire after 1 s, and a sweep runs every 5 s.
    let deadline = Instant::now() + Duration::from_secs(12);
    while !dns_query_as(&cgroup, NOBODY, server, "2.flood.example").is_answered() {
        assert!(Instant::now() < deadline, "the owner never got room back");
        thread::sleep(Duration::from_millis(500));
    }
}
