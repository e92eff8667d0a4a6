//! Enforcement outlives the daemon: a killed daemon's programs keep
//! enforcing, and the next daemon takes over from their pins without a
//! moment in which traffic gets through.

use std::{
    fs,
    net::Ipv4Addr,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    thread,
    time::Duration,
};

use enforcer_integration_tests::{
    Daemon, DnsOutcome, EPERM, Op, Outcome, TestCgroup,
    dns::{DnsServer, Transport, Zone},
    dns_query, probe, tcp_listener,
};

const LISTED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 81);

const BLOCK_LISTED: &str = r#"
version = 1
[[block]]
name = "listed"
cidrs = ["127.0.0.81/32"]
"#;

#[test]
fn a_restart_takes_over_without_a_window_and_delivers_what_was_raised_meanwhile() {
    let (_listener, port) = tcp_listener(LISTED);
    let cgroup = TestCgroup::new();
    let mut first = Daemon::start(&cgroup, BLOCK_LISTED);
    first.kill();
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, LISTED, port),
        EPERM,
        "a killed daemon's programs go on enforcing"
    );

    // Connects all through the restart: none may get through.
    let stop = AtomicBool::new(false);
    let (attempts, through) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let (second, takeover) = thread::scope(|scope| {
        let prober = scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let outcome = probe(&cgroup, Op::TcpConnect, LISTED, port);
                attempts.fetch_add(1, Ordering::Relaxed);
                if outcome == Outcome::Ok {
                    through.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        thread::sleep(Duration::from_millis(200));
        let second = Daemon::start_with(
            &cgroup,
            BLOCK_LISTED,
            &["--pin-dir".as_ref(), first.pin_dir().as_os_str()],
        );
        let takeover = second.expect_event("a takeover event", |event| event["kind"] == "takeover");
        thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        prober.join().unwrap();
        (second, takeover)
    });

    assert_eq!(
        through.load(Ordering::Relaxed),
        0,
        "{} of {} connects got through during the restart",
        through.load(Ordering::Relaxed),
        attempts.load(Ordering::Relaxed)
    );
    assert!(attempts.load(Ordering::Relaxed) > 3);
    assert_eq!(takeover["instances"], 1, "{takeover}");
    assert!(
        takeover["events_recovered"].as_u64().unwrap() >= 1,
        "{takeover}"
    );
    assert_eq!(takeover["problems"], serde_json::json!([]), "{takeover}");
    let recovered = second.expect_event("the connect refused while no daemon ran", |event| {
        event["kind"] == "connect" && event["generation"] == 1
    });
    assert_eq!(recovered["daddr"], LISTED.to_string());
    assert_eq!(
        second.status_json()["generation"],
        2,
        "generation numbers go on from the earlier daemon's"
    );
    assert_eq!(probe(&cgroup, Op::TcpConnect, LISTED, port), EPERM);
    let pins: Vec<_> = fs::read_dir(first.pin_dir().join("v1")).unwrap().collect();
    assert_eq!(pins.len(), 1, "only the new instance stays pinned");
}

#[test]
fn pins_of_another_layout_are_detached_not_read() {
    let (_listener, port) = tcp_listener(LISTED);
    let cgroup = TestCgroup::new();
    let mut first = Daemon::start(&cgroup, BLOCK_LISTED);
    first.kill();
    // What a daemon of another pin layout would have left.
    let foreign = first.pin_dir().join("v999").join("1-1");
    fs::create_dir_all(&foreign).unwrap();
    let second = Daemon::start_with(
        &cgroup,
        BLOCK_LISTED,
        &["--pin-dir".as_ref(), first.pin_dir().as_os_str()],
    );
    let takeover = second.expect_event("a takeover event", |event| event["kind"] == "takeover");
    assert_eq!(takeover["instances"], 1, "{takeover}");
    assert_eq!(
        takeover["other_layouts"],
        serde_json::json!([foreign.display().to_string()]),
        "{takeover}"
    );
    assert!(!foreign.exists());
    assert_eq!(probe(&cgroup, Op::TcpConnect, LISTED, port), EPERM);
}

#[test]
fn learned_addresses_survive_a_restart() {
    let server = Ipv4Addr::new(127, 0, 0, 82);
    let learned = Ipv4Addr::new(127, 0, 0, 83);
    let (_listener, port) = tcp_listener(learned);
    let _dns = DnsServer::start(server, Zone::new().a("chat.whatsapp.net", learned, 600));
    let policy = r#"
version = 1
[options]
dns_block_queries = false
[[block]]
name = "whatsapp"
domains = ["whatsapp.net"]
"#;
    let cgroup = TestCgroup::new();
    let mut first = Daemon::start(&cgroup, policy);
    assert!(matches!(
        dns_query(&cgroup, Transport::Udp, server, "chat.whatsapp.net", "A"),
        DnsOutcome::Answer(_)
    ));
    assert_eq!(probe(&cgroup, Op::TcpConnect, learned, port), EPERM);
    first.kill();
    let second = Daemon::start_with(
        &cgroup,
        policy,
        &["--pin-dir".as_ref(), first.pin_dir().as_os_str()],
    );
    let takeover = second.expect_event("a takeover event", |event| event["kind"] == "takeover");
    assert!(
        takeover["addresses_kept"].as_u64().unwrap() >= 1,
        "{takeover}"
    );
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, learned, port),
        EPERM,
        "the address learned before the restart stays refused"
    );
}

#[test]
fn a_daemon_started_without_policy_files_enforces_the_last_applied_policy() {
    let other = Ipv4Addr::new(127, 0, 0, 84);
    let (_listed, listed_port) = tcp_listener(LISTED);
    let (_other, other_port) = tcp_listener(other);
    let cgroup = TestCgroup::new();
    let mut first = Daemon::start(&cgroup, BLOCK_LISTED);
    let applied = first.apply(
        r#"
version = 1
[[block]]
name = "other"
cidrs = ["127.0.0.84/32"]
"#,
    );
    assert!(applied.status.success(), "{applied:?}");
    let sha256 = first.status_json()["policy_sha256"].clone();
    assert_eq!(sha256.as_str().map(str::len), Some(64), "{sha256}");
    first.kill();

    let second = first.start_from_store(&cgroup);
    assert_eq!(probe(&cgroup, Op::TcpConnect, other, other_port), EPERM);
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, LISTED, listed_port),
        Outcome::Ok,
        "the policy applied last is the one in force, not the first"
    );
    assert_eq!(second.status_json()["policy_sha256"], sha256);
}
