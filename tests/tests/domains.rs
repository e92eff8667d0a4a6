//! Domain rules against the real kernel: DNS queries for listed names are
//! dropped, answers for them block their addresses for a bounded TTL, and
//! TLS ClientHellos naming them are stopped. Each test runs its own DNS
//! server (and TLS listener) on a loopback address of its own, and its
//! clients in its own cgroup.

use std::{
    io::{ErrorKind, Read, Write},
    net::{Ipv4Addr, Ipv6Addr, TcpStream},
    os::fd::AsRawFd,
    thread,
    time::{Duration, Instant},
};

use Expect::{Answered, Refused};
use enforcer::host::sock_diag::{Ending, SockDiag, TcpConnection};
use enforcer_integration_tests::{
    bpf::{self, Hook},
    cgroup::TestCgroup,
    command::run,
    daemon::Daemon,
    dns::{
        DnsOutcome, DnsServer, Transport, Zone, dns_query, dns_segmented, forged_answers,
        framed_answer,
    },
    net::{
        Check, EPERM, Op, Outcome, assert_checks, command_in, probe, probe_as, tcp_listener,
        udp_receiver,
    },
    privilege::NOBODY,
    tls::{tls_hello, tls_hello_as, tls_hello_split_as, tls_listener},
};

const WHATSAPP_POLICY: &str = r#"
version = 1

[[block]]
name = "whatsapp"
domains = ["WhatsApp.com", "whatsapp.net", "wa.me."]
"#;

/// What an A query must get: [`DnsOutcome::is_answered`] or
/// [`DnsOutcome::is_refused`].
#[derive(Clone, Copy, Debug)]
enum Expect {
    Answered,
    Refused,
}

/// A test's DNS server as its clients inside the cgroup see it.
struct Resolver<'a> {
    cgroup: &'a TestCgroup,
    server: Ipv4Addr,
}

impl<'a> Resolver<'a> {
    fn new(cgroup: &'a TestCgroup, server: Ipv4Addr) -> Self {
        Self { cgroup, server }
    }

    /// An A query for `name` over `transport` from a fresh `netprobe`.
    fn query(&self, transport: Transport, name: &str) -> DnsOutcome {
        dns_query(self.cgroup, transport, self.server, name, "A")
    }

    /// Queries each name of `rows` over each of `transports` in turn and
    /// fails on the first whose outcome is not what its row expects.
    #[track_caller]
    fn assert_resolution(&self, transports: &[Transport], rows: &[(&str, Expect)]) {
        for &transport in transports {
            for &(name, expect) in rows {
                let outcome = self.query(transport, name);
                let met = match expect {
                    Answered => outcome.is_answered(),
                    Refused => outcome.is_refused(),
                };
                assert!(
                    met,
                    "{name} over {transport:?}: {outcome:?}, not {expect:?}"
                );
            }
        }
    }
}

#[test]
fn queries_for_listed_names_get_no_answer_and_others_resolve() {
    let server_addr = Ipv4Addr::new(127, 0, 0, 53 + 8);
    let zone = Zone::new()
        .a("web.whatsapp.com", Ipv4Addr::new(127, 0, 0, 62), 60)
        .a("whatsapp.net", Ipv4Addr::new(127, 0, 0, 62), 60)
        .a("notwhatsapp.com", Ipv4Addr::new(127, 0, 0, 63), 60)
        .a("example.org", Ipv4Addr::new(127, 0, 0, 64), 60);
    let server = DnsServer::start(server_addr, zone);
    let cgroup = TestCgroup::new();
    let resolver = Resolver::new(&cgroup, server_addr);
    resolver.assert_resolution(&[Transport::Udp], &[("web.whatsapp.com", Answered)]);
    let daemon = Daemon::start(&cgroup, WHATSAPP_POLICY);
    let queries_before = server.queries().len();

    resolver.assert_resolution(
        &[Transport::Udp, Transport::Tcp],
        &[
            ("WEB.WhatsApp.COM.", Refused),
            ("whatsapp.com", Refused),
            ("whatsapp.net", Refused),
            ("x.y.wa.me", Refused),
            ("notwhatsapp.com", Answered),
            ("example.org", Answered),
        ],
    );
    let reached: Vec<_> = server.queries()[queries_before..]
        .iter()
        .map(|(name, _, _)| name.clone())
        .collect();
    assert!(
        reached
            .iter()
            .all(|name| name == "notwhatsapp.com" || name == "example.org"),
        "a listed name reached the server: {reached:?}"
    );

    let event = daemon.expect_event("a dns event", |event| {
        event["kind"] == "dns" && event["name"] == "web.whatsapp.com"
    });
    assert_eq!(event["verdict"], "blocked");
    assert_eq!(event["domain"], "whatsapp.com");
    assert_eq!(event["rule"], "whatsapp");
    assert_eq!(event["qtype"], "A");
    assert_eq!(event["direction"], "query");
    assert_eq!(event["daddr"], server_addr.to_string());
    assert_eq!(event["dport"], 53);
}

#[test]
fn the_most_specific_listed_name_wins() {
    let server_addr = Ipv4Addr::new(127, 0, 0, 65);
    let zone = Zone::new()
        .a("corp-mirror.telegram.org", Ipv4Addr::new(127, 0, 0, 66), 60)
        .a(
            "x.corp-mirror.telegram.org",
            Ipv4Addr::new(127, 0, 0, 66),
            60,
        )
        .a("cdn.telegram.org", Ipv4Addr::new(127, 0, 0, 67), 60);
    let _server = DnsServer::start(server_addr, zone);
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(
        &cgroup,
        r#"
version = 1
[[block]]
name = "telegram"
domains = ["telegram.org"]
[[allow]]
name = "mirror"
domains = ["corp-mirror.telegram.org"]
"#,
    );
    let resolver = Resolver::new(&cgroup, server_addr);
    resolver.assert_resolution(
        &[Transport::Udp],
        &[
            ("corp-mirror.telegram.org", Answered),
            ("x.corp-mirror.telegram.org", Answered),
            ("cdn.telegram.org", Refused),
        ],
    );
}

#[test]
fn an_answer_for_a_listed_name_blocks_its_address_until_the_ttl_ends() {
    let server_addr = Ipv4Addr::new(127, 0, 0, 68);
    let listed = Ipv4Addr::new(127, 0, 0, 69);
    let (_listener, port) = tcp_listener(listed);
    let zone = Zone::new().a("media.whatsapp.net", listed, 1);
    let _server = DnsServer::start(server_addr, zone);
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(
        &cgroup,
        r#"
version = 1
[options]
dns_block_queries = false
dns_ttl_min_seconds = 2
dns_ttl_max_seconds = 3
[[block]]
name = "whatsapp"
domains = ["whatsapp.net"]
"#,
    );
    assert_eq!(probe(&cgroup, Op::TcpConnect, listed, port), Outcome::Ok);
    let resolver = Resolver::new(&cgroup, server_addr);
    assert_eq!(
        resolver.query(Transport::Udp, "media.whatsapp.net"),
        DnsOutcome::Answer(vec![format!("A={listed}")])
    );
    let learned_at = Instant::now();
    assert_eq!(probe(&cgroup, Op::TcpConnect, listed, port), EPERM);

    let event = daemon.expect_event("a learned event", |event| event["kind"] == "learned");
    assert_eq!(event["daddr"], listed.to_string());
    assert_eq!(event["domain"], "whatsapp.net");
    assert_eq!(event["name"], "media.whatsapp.net");
    assert_eq!(event["ttl"], 2, "a TTL of 1 s is raised to the minimum");
    let connect = daemon.expect_event("the refused connect", |event| {
        event["kind"] == "connect" && event["daddr"] == listed.to_string()
    });
    assert_eq!(connect["domain"], "whatsapp.net");

    thread::sleep(
        Duration::from_secs(2).saturating_sub(learned_at.elapsed()) + Duration::from_millis(300),
    );
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, listed, port),
        Outcome::Ok,
        "the block ends with the TTL"
    );
}

/// Only an answer to a query its socket sent teaches an address: the same
/// resolver, transaction id and question. One with another id (what an
/// off-path attacker guesses) or another question (a resolver answering
/// what nobody asked) is dropped, counted, and refuses nothing.
#[test]
fn an_answer_nobody_asked_for_refuses_nothing() {
    let listed = Ipv4Addr::new(127, 0, 1, 60);
    let (_listener, port) = tcp_listener(listed);
    let another_id = Ipv4Addr::new(127, 0, 1, 61);
    let _another_id = DnsServer::forging(
        another_id,
        forged_answers("media.whatsapp.net", listed, 0x5a5a),
    );
    let another_question = Ipv4Addr::new(127, 0, 1, 62);
    let _another_question = DnsServer::forging(
        another_question,
        forged_answers("media.whatsapp.net", listed, 0),
    );
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(
        &cgroup,
        r#"
version = 1
[options]
dns_block_queries = false
[[block]]
name = "whatsapp"
domains = ["whatsapp.net"]
"#,
    );
    for (server, asked) in [
        (another_id, "media.whatsapp.net"),
        (another_question, "chat.example.org"),
    ] {
        let outcome = dns_query(&cgroup, Transport::Udp, server, asked, "A");
        assert_eq!(
            outcome,
            DnsOutcome::Timeout,
            "the forged answer from {server} reached the client"
        );
        assert_eq!(
            probe(&cgroup, Op::TcpConnect, listed, port),
            Outcome::Ok,
            "a forged answer from {server} refused {listed}"
        );
    }
    let counters = &daemon.status_json()["counters"];
    assert_eq!(counters["answers_unsolicited"], 2, "{counters}");
    assert_eq!(counters["addresses_learned"], 0, "{counters}");
}

/// With `UDP_SEGMENT` one send carries several queries, which the hooks
/// see as one packet: a harmless query first, a listed one after it. Such
/// a send to port 53 is refused whole.
#[test]
fn queries_sent_together_with_udp_segmentation_are_refused() {
    let server_addr = Ipv4Addr::new(127, 0, 1, 63);
    let server = DnsServer::start(server_addr, Zone::new());
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, WHATSAPP_POLICY);
    // Names of one length, so that each query is one segment.
    let (harmless, listed) = ("aaaa.example.org", "web.whatsapp.com");
    assert_eq!(harmless.len(), listed.len());
    assert_eq!(
        dns_segmented(&cgroup, server_addr, &[harmless, listed]),
        EPERM
    );
    thread::sleep(Duration::from_millis(200));
    assert_eq!(
        server.queries(),
        [],
        "a query of the segmented send arrived"
    );
    assert!(
        daemon.status_json()["counters"]["malformed"]
            .as_u64()
            .is_some_and(|count| count > 0)
    );
    // One at a time, the harmless one goes.
    let outcome = dns_query(&cgroup, Transport::Udp, server_addr, harmless, "A");
    assert!(!outcome.is_refused(), "{outcome:?}");
}

/// A DNS server may answer pipelined TCP queries in one segment. The
/// judge reads a segment's first message, so a segment that carries a
/// second one, which could answer for a listed name, is dropped whole.
#[test]
fn a_tcp_segment_with_a_second_response_is_dropped() {
    let server_addr = Ipv4Addr::new(127, 0, 1, 78);
    let (harmless, listed) = (Ipv4Addr::new(127, 0, 1, 79), Ipv4Addr::new(127, 0, 1, 80));
    let _server = DnsServer::with_tcp_trailer(
        server_addr,
        Zone::new().a("example.org", harmless, 60),
        framed_answer("web.whatsapp.com", listed),
    );
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, WHATSAPP_POLICY);
    let resolver = Resolver::new(&cgroup, server_addr);
    resolver.assert_resolution(&[Transport::Tcp], &[("example.org", Refused)]);
    resolver.assert_resolution(&[Transport::Udp], &[("example.org", Answered)]);
    assert!(
        daemon.status_json()["counters"]["malformed"]
            .as_u64()
            .is_some_and(|count| count > 0)
    );
}

/// A TCP response that spans segments cannot be read whole: the first
/// segment would teach the addresses in it, and the client would reach
/// the others, in the next. For a blocked name, with its queries let
/// through, it is dropped; the same response in one datagram is learned.
#[test]
fn a_tcp_response_for_a_blocked_name_that_spans_segments_is_dropped() {
    let server_addr = Ipv4Addr::new(127, 0, 1, 85);
    let (first, second) = (Ipv4Addr::new(127, 0, 1, 86), Ipv4Addr::new(127, 0, 1, 87));
    let (_listener, port) = tcp_listener(second);
    let zone = Zone::new()
        .a("web.whatsapp.com", first, 60)
        .a("web.whatsapp.com", second, 60);
    // The length prefix, the header, the question (18 bytes of name and 4)
    // and the first answer (a 2-byte pointer, 10, and 4 of address): the
    // second answer goes in a segment of its own.
    let _server = DnsServer::with_tcp_split(server_addr, zone, 2 + 12 + 22 + 16);
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(
        &cgroup,
        "version = 1\n[options]\ndns_block_queries = false\n\
         [[block]]\nname = \"whatsapp\"\ndomains = [\"whatsapp.com\"]\n",
    );
    let resolver = Resolver::new(&cgroup, server_addr);
    resolver.assert_resolution(&[Transport::Tcp], &[("web.whatsapp.com", Refused)]);
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, second, port),
        Outcome::Ok,
        "nothing was learned from the part"
    );
    resolver.assert_resolution(&[Transport::Udp], &[("web.whatsapp.com", Answered)]);
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, second, port),
        EPERM
    );
    assert!(
        daemon.status_json()["counters"]["malformed"]
            .as_u64()
            .is_some_and(|count| count > 0)
    );
}

#[test]
fn a_cname_chain_into_a_listed_domain_blocks_the_address() {
    let server_addr = Ipv4Addr::new(127, 0, 0, 70);
    let listed = Ipv4Addr::new(127, 0, 0, 71);
    let (_listener, port) = tcp_listener(listed);
    let zone = Zone::new()
        .cname("chat.example.com", "edge.example.net", 60)
        .cname("edge.example.net", "mmx-ds.cdn.whatsapp.net", 60)
        .a("mmx-ds.cdn.whatsapp.net", listed, 60);
    let _server = DnsServer::start(server_addr, zone);
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, WHATSAPP_POLICY);
    let resolver = Resolver::new(&cgroup, server_addr);
    let outcome = resolver.query(Transport::Udp, "chat.example.com");
    assert!(
        outcome.is_refused(),
        "with query blocking on, the response for the chain is dropped: {outcome:?}\n\
         counters: {}\nevents: {:?}",
        daemon.status_json()["counters"],
        daemon.events()
    );
    assert_eq!(probe(&cgroup, Op::TcpConnect, listed, port), EPERM);
    let event = daemon.expect_event("a learned event", |event| event["kind"] == "learned");
    assert_eq!(event["name"], "mmx-ds.cdn.whatsapp.net");
    assert_eq!(event["domain"], "whatsapp.net");
    daemon.expect_event("the dropped response", |event| {
        event["kind"] == "dns" && event["direction"] == "response"
    });
}

/// What stays open: the first three CNAME targets are judged, and a listed
/// name fourth in the chain is not. Such a response is let through and
/// counted, as dropping every long chain would break sign-in at Microsoft,
/// whose chains have four CNAMEs.
#[test]
fn a_listed_name_past_the_third_cname_is_counted_not_judged() {
    let server_addr = Ipv4Addr::new(127, 0, 1, 76);
    let listed = Ipv4Addr::new(127, 0, 1, 77);
    let (_listener, port) = tcp_listener(listed);
    let zone = Zone::new()
        .cname("login.example.com", "a.example.net", 60)
        .cname("a.example.net", "b.example.net", 60)
        .cname("b.example.net", "c.example.net", 60)
        .cname("c.example.net", "edge.whatsapp.net", 60)
        .a("edge.whatsapp.net", listed, 60);
    let _server = DnsServer::start(server_addr, zone);
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, WHATSAPP_POLICY);
    let resolver = Resolver::new(&cgroup, server_addr);
    assert!(
        resolver
            .query(Transport::Udp, "login.example.com")
            .is_answered()
    );
    assert_eq!(probe(&cgroup, Op::TcpConnect, listed, port), Outcome::Ok);
    assert_eq!(daemon.status_json()["counters"]["chains_cut"], 1);
}

#[test]
fn a_client_hello_naming_a_listed_server_is_stopped_and_its_address_refused() {
    let unlisted = Ipv4Addr::new(127, 0, 0, 72);
    let other = Ipv4Addr::new(127, 0, 0, 73);
    let (listener, port) = tls_listener(unlisted);
    let (allowed_listener, allowed_port) = tls_listener(other);
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, WHATSAPP_POLICY);

    assert_eq!(
        tls_hello(&cgroup, other, allowed_port, "www.example.org"),
        Outcome::Ok
    );
    assert!(allowed_listener.received_client_hello(Duration::from_secs(2)));

    assert_eq!(
        tls_hello_as(&cgroup, unlisted, port, "Web.WhatsApp.com", NOBODY),
        Outcome::Errno(libc::ECONNABORTED),
        "the connection is reset rather than left waiting"
    );
    assert!(
        !listener.received_client_hello(Duration::from_secs(1)),
        "the ClientHello reached the server"
    );
    let event = daemon.expect_event("an sni event", |event| event["kind"] == "sni");
    assert_eq!(event["name"], "web.whatsapp.com");
    assert_eq!(event["domain"], "whatsapp.com");
    assert_eq!(event["daddr"], unlisted.to_string());
    assert_eq!(event["dport"], port);
    assert_eq!(event["uid"], NOBODY);
    assert_eq!(event["saddr"], "127.0.0.1");
    assert!(event["sport"].as_u64().is_some_and(|sport| sport != 0));
    assert_eq!(event["connection"], "reset");
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, unlisted, port),
        EPERM,
        "the server's address is refused from then on, for the sender"
    );

    let (v6_listener, v6_port) = tls_listener(Ipv6Addr::LOCALHOST);
    assert_eq!(
        tls_hello_as(
            &cgroup,
            Ipv6Addr::LOCALHOST,
            v6_port,
            "web.whatsapp.com",
            NOBODY
        ),
        Outcome::Errno(libc::ECONNABORTED),
        "over IPv6 too"
    );
    assert!(!v6_listener.received_client_hello(Duration::from_secs(1)));
}

/// The daemon names the connection to reset by its addresses and by its
/// socket's cookie, so a later socket with the same addresses, after the
/// one meant has closed, is never touched.
#[test]
fn a_reset_ends_only_the_socket_its_cookie_names() {
    let addr = Ipv4Addr::new(127, 0, 1, 84);
    let (listener, port) = tcp_listener(addr);
    let mut client = TcpStream::connect((addr, port)).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    let mut cookie = 0u64;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt into a u64 of the length given.
    let got = unsafe {
        libc::getsockopt(
            client.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            (&raw mut cookie).cast(),
            &mut len,
        )
    };
    assert_eq!(got, 0, "SO_COOKIE: {}", std::io::Error::last_os_error());
    let connection = TcpConnection {
        local: client.local_addr().unwrap(),
        remote: client.peer_addr().unwrap(),
        cookie,
    };
    let mut sock_diag = SockDiag::open().unwrap();

    let other = TcpConnection {
        cookie: cookie.wrapping_add(1),
        ..connection
    };
    assert_eq!(
        sock_diag.destroy(&other).map_err(|error| error.ending()),
        Err(Ending::Gone)
    );
    client.write_all(b"x").unwrap();
    let mut byte = [0; 1];
    server.read_exact(&mut byte).unwrap();

    sock_diag.destroy(&connection).unwrap();
    let error = client.read(&mut byte).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::ECONNABORTED), "{error}");
    let closed = server.read(&mut byte);
    assert!(
        closed
            .as_ref()
            .is_err_and(|error| error.kind() == ErrorKind::ConnectionReset),
        "the server is told: {closed:?}"
    );
}

/// `docs.google.com` and `www.google.com` are served from the same front
/// ends. A rule for the first with `learn_addresses = false` stops its
/// queries and ClientHellos, and lists no address, so the second keeps
/// working; an apply that turns learning off releases what was learned.
#[test]
fn a_name_on_a_shared_address_is_blocked_without_blocking_the_address() {
    let shared = Ipv4Addr::new(127, 0, 0, 92);
    let server_addr = Ipv4Addr::new(127, 0, 0, 93);
    let (listener, port) = tls_listener(shared);
    let zone = Zone::new()
        .a("www.google.com", shared, 60)
        .cname("docs.example.org", "docs.google.com", 60)
        .a("docs.google.com", shared, 60);
    let _server = DnsServer::start(server_addr, zone);
    let cgroup = TestCgroup::new();
    let policy = |switch: &str| {
        format!(
            "version = 1\n[[block]]\nname = \"google-docs\"\ndomains = [\"docs.google.com\"]\n{switch}"
        )
    };
    let mut daemon = Daemon::start(&cgroup, &policy(""));
    tls_hello(&cgroup, shared, port, "docs.google.com");
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, shared, port),
        EPERM,
        "learning on: the ClientHello lists the shared address"
    );

    let output = daemon.apply(&policy("learn_addresses = false\n"));
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, shared, port),
        Outcome::Ok,
        "turning learning off releases the address learned for the name"
    );
    let resolver = Resolver::new(&cgroup, server_addr);
    resolver.assert_resolution(
        &[Transport::Udp, Transport::Tcp],
        &[
            ("docs.google.com", Refused),
            // The answer leads to the listed name: dropped, and learns nothing.
            ("docs.example.org", Refused),
            ("www.google.com", Answered),
        ],
    );
    tls_hello(&cgroup, shared, port, "docs.google.com");
    assert!(
        !listener.received_client_hello(Duration::from_secs(1)),
        "the ClientHello for docs.google.com reached the server"
    );
    let event = daemon.expect_event("an sni event without a TTL", |event| {
        event["kind"] == "sni" && event["ttl"].is_null()
    });
    assert_eq!(event["rule"], "google-docs");
    assert_eq!(
        tls_hello(&cgroup, shared, port, "www.google.com"),
        Outcome::Ok
    );
    assert!(listener.received_client_hello(Duration::from_secs(2)));
    assert_eq!(probe(&cgroup, Op::TcpConnect, shared, port), Outcome::Ok);
    assert!(
        !daemon
            .events()
            .iter()
            .any(|event| event["kind"] == "learned" && event["daddr"] == shared.to_string()),
        "an address was learned with learning off: {:?}",
        daemon.events()
    );
}

/// With `sni = false` a rule judges DNS only.
#[test]
fn a_rule_with_sni_off_lets_client_hellos_through() {
    let addr = Ipv4Addr::new(127, 0, 0, 94);
    let server_addr = Ipv4Addr::new(127, 0, 0, 95);
    let (listener, port) = tls_listener(addr);
    let _server = DnsServer::start(server_addr, Zone::new().a("web.telegram.org", addr, 60));
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(
        &cgroup,
        r#"
version = 1
[[block]]
name = "telegram"
domains = ["telegram.org"]
sni = false
"#,
    );
    Resolver::new(&cgroup, server_addr)
        .assert_resolution(&[Transport::Udp], &[("web.telegram.org", Refused)]);
    assert_eq!(
        tls_hello(&cgroup, addr, port, "web.telegram.org"),
        Outcome::Ok
    );
    assert!(listener.received_client_hello(Duration::from_secs(2)));
    assert_eq!(probe(&cgroup, Op::TcpConnect, addr, port), Outcome::Ok);
    assert!(
        !daemon.events().iter().any(|event| event["kind"] == "sni"),
        "{:?}",
        daemon.events()
    );
}

/// A splitter (byedpi's `--split 1`, say) sends a ClientHello's first
/// bytes in a segment of their own, too short to show what follows, and
/// the rest after it. The packet programs hold such a first segment back:
/// the kernel keeps it unsent, the bytes written next join it, and the
/// ClientHello leaves whole, to be judged. One split after the record
/// header cannot be read whole, and is held back the same way.
#[test]
fn a_client_hello_split_after_its_first_bytes_is_judged_whole() {
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, WHATSAPP_POLICY);
    // An address each, as a stopped ClientHello refuses its address.
    for (addr, first) in [
        (Ipv4Addr::new(127, 0, 0, 96), 1),
        (Ipv4Addr::new(127, 0, 0, 97), 5),
        (Ipv4Addr::new(127, 0, 0, 98), 6),
    ] {
        let (listener, port) = tls_listener(addr);
        assert_eq!(
            tls_hello_split_as(&cgroup, addr, port, "web.whatsapp.com", first, NOBODY),
            Outcome::Errno(libc::ECONNABORTED),
            "split after {first} bytes: judged whole, and the connection reset"
        );
        assert!(
            !listener.received_client_hello(Duration::from_millis(300)),
            "split after {first} bytes: the server got {:?}",
            listener.received()
        );
        daemon.expect_event("the split ClientHello, judged", |event| {
            event["kind"] == "sni" && event["daddr"] == addr.to_string()
        });
    }
    let unlisted = Ipv4Addr::new(127, 0, 0, 99);
    let (listener, port) = tls_listener(unlisted);
    assert_eq!(
        tls_hello_split_as(&cgroup, unlisted, port, "www.example.org", 1, NOBODY),
        Outcome::Ok
    );
    assert!(listener.received_client_hello(Duration::from_secs(2)));
    let received = listener.received().concat();
    assert!(
        received.starts_with(&[22, 3]) && received.windows(15).any(|w| w == b"www.example.org"),
        "the ClientHello arrives whole: {received:?}"
    );
}

#[test]
fn a_real_tls_client_is_stopped_by_its_server_name() {
    let addr = Ipv4Addr::new(127, 0, 0, 74);
    let (listener, port) = tls_listener(addr);
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(&cgroup, WHATSAPP_POLICY);
    let mut openssl = command_in(&cgroup, "timeout");
    openssl.args(["3", "openssl", "s_client", "-connect"]);
    openssl.arg(format!("{addr}:{port}"));
    openssl.args(["-servername", "web.whatsapp.com"]);
    openssl.stdin(std::process::Stdio::null());
    run(&mut openssl);
    assert!(
        !listener.received_client_hello(Duration::from_millis(500)),
        "openssl's ClientHello reached the server"
    );
    assert_eq!(probe(&cgroup, Op::TcpConnect, addr, port), EPERM);
}

#[test]
fn dot_and_quic_switches_refuse_their_ports_everywhere() {
    let addr = Ipv4Addr::new(127, 0, 0, 75);
    let (_receiver, other_port) = udp_receiver(addr);
    let (_listener, tcp_port) = tcp_listener(addr);
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(
        &cgroup,
        "version = 1\n[options]\nblock_dot = true\nblock_quic = true\n",
    );
    assert_checks(
        &cgroup,
        &[
            Check::refused(Op::UdpSendto, addr, 853),
            Check::refused(Op::TcpConnect, addr, 853),
            Check::refused(Op::UdpSendto, addr, 443),
            Check::allowed(Op::UdpSendto, addr, other_port),
            Check::allowed(Op::TcpConnect, addr, tcp_port),
        ],
    );
}

/// Replies a hostile server might send: each must leave the daemon
/// running, the kernel programs answering, and valid traffic working.
fn malformed_replies() -> Vec<Vec<u8>> {
    let header = |answers: u16| {
        let mut message = vec![0, 0, 0x81, 0x80, 0, 1];
        message.extend(answers.to_be_bytes());
        message.extend([0, 0, 0, 0]);
        message
    };
    let question = [
        3, b'w', b'e', b'b', 8, b'w', b'h', b'a', b't', b's', b'a', b'p', b'p', 3, b'c', b'o',
        b'm', 0, 0, 1, 0, 1,
    ];
    let mut replies = Vec::new();
    // Truncated header.
    replies.push(vec![0, 0, 0x81]);
    // A question whose name points at itself.
    let mut looping = header(0);
    looping.extend([0xc0, 12, 0, 1, 0, 1]);
    replies.push(looping);
    // Answers that point forward, and a record claiming more data than sent.
    let mut forward = header(2);
    forward.extend(question);
    forward.extend([0xc0, 40, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
    forward.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0xff, 0xff, 1]);
    replies.push(forward);
    // 65535 answers claimed, one carried.
    let mut claims = header(u16::MAX);
    claims.extend(question);
    claims.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 9]);
    replies.push(claims);
    // Labels at their limits: 63 bytes each, the name over 255 bytes.
    let mut long = header(0);
    for _ in 0..5 {
        long.push(63);
        long.extend([b'a'; 63]);
    }
    long.extend([0, 0, 1, 0, 1]);
    replies.push(long);
    // Pseudo-random garbage from a fixed seed.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for len in [12, 40, 300, 1400] {
        let bytes = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        replies.push(bytes);
    }
    replies
}

#[test]
fn malformed_dns_traffic_neither_crashes_nor_wedges_anything() {
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, WHATSAPP_POLICY);
    for (index, reply) in malformed_replies().into_iter().enumerate() {
        let server_addr = Ipv4Addr::new(127, 0, 1, 10 + index as u8);
        let _server = DnsServer::raw(server_addr, move |_| reply.clone());
        for transport in [Transport::Udp, Transport::Tcp] {
            // Whatever comes back, the query must finish.
            Resolver::new(&cgroup, server_addr).query(transport, "example.org");
        }
    }
    let server_addr = Ipv4Addr::new(127, 0, 1, 9);
    let _server = DnsServer::start(
        server_addr,
        Zone::new().a("example.org", Ipv4Addr::new(127, 0, 1, 8), 60),
    );
    let resolver = Resolver::new(&cgroup, server_addr);
    resolver.assert_resolution(
        &[Transport::Udp],
        &[("example.org", Answered), ("whatsapp.com", Refused)],
    );
    let status = daemon.status_json();
    assert!(
        status["counters"]["malformed"].as_u64().unwrap() > 0,
        "{status}"
    );
    assert_eq!(status["counters"]["lookup_faults"], 0, "{status}");
    // Each judged packet gives its buffer back: a run that kept one would
    // leave the next packets on its CPU without.
    assert_eq!(status["counters"]["buffers_busy"], 0, "{status}");
}

/// The packet programs read every packet in the cgroup, so they are
/// attached only while the policy lists domains: before the generation that
/// first lists one goes live, and detached after the one that lists none.
/// A daemon whose first policy lists none loads them only then.
#[test]
fn packet_programs_run_only_while_the_policy_lists_domains() {
    let server_addr = Ipv4Addr::new(127, 0, 0, 90);
    let server = DnsServer::start(
        server_addr,
        Zone::new().a("web.whatsapp.com", Ipv4Addr::new(127, 0, 0, 91), 60),
    );
    let cgroup = TestCgroup::new();
    let resolver = Resolver::new(&cgroup, server_addr);
    let query = || resolver.query(Transport::Udp, "web.whatsapp.com");
    let packet_hooks = || {
        [Hook::Egress, Hook::Ingress]
            .map(|hook| bpf::attached_programs(cgroup.path(), hook).expect("BPF_PROG_QUERY"))
    };
    let listed = |daemon: &Daemon| {
        let status = daemon.status_json();
        let programs = status["programs"].as_array().expect("a program list");
        ["egress", "ingress"].map(|name| programs.iter().any(|p| p == name))
    };
    let cidrs_only = r#"
version = 1

[[block]]
name = "telegram"
cidrs = ["149.154.160.0/20"]
"#;

    let domain_enforcement = |daemon: &Daemon| {
        daemon.status_json()["domain_enforcement"]
            .as_str()
            .expect("a domain_enforcement text")
            .to_string()
    };

    let mut daemon = Daemon::start(&cgroup, cidrs_only);
    assert_eq!(packet_hooks(), [0, 0]);
    assert_eq!(listed(&daemon), [false, false]);
    let before = domain_enforcement(&daemon);
    assert!(before.starts_with("not checked yet"), "{before}");
    assert!(query().is_answered());

    let output = daemon.apply(WHATSAPP_POLICY);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(packet_hooks(), [1, 1]);
    assert_eq!(listed(&daemon), [true, true]);
    assert_eq!(domain_enforcement(&daemon), "kernel");
    let outcome = query();
    assert!(outcome.is_refused(), "{outcome:?}");

    let output = daemon.apply(cidrs_only);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(listed(&daemon), [false, false]);
    // The kernel releases a link from a worker once its pin is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while packet_hooks() != [0, 0] && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(packet_hooks(), [0, 0]);
    assert!(query().is_answered());
    assert_eq!(server.queries().len(), 2, "{:?}", server.queries());
}
