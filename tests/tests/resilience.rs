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
    cgroup::TestCgroup,
    daemon::Daemon,
    dns::{
        DnsOutcome, DnsServer, Transport, Zone, dns_flood, dns_query, dns_query_as,
        numbered_answers,
    },
    net::{EPERM, Op, Outcome, probe, probe_as, tcp_listener},
    privilege::NOBODY,
};

const LISTED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 81);

const BLOCK_LISTED: &str = r#"
version = 1
[[block]]
name = "listed"
cidrs = ["127.0.0.81/32"]
"#;

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

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
        // Stops the prober however this closure ends: on a panic the scope
        // would otherwise wait for it forever.
        let stopper = StopOnDrop(&stop);
        thread::sleep(Duration::from_millis(200));
        let second = Daemon::start_with(
            &cgroup,
            BLOCK_LISTED,
            &["--pin-dir".as_ref(), first.pin_dir().as_os_str()],
        );
        let takeover = second.expect_event("a takeover event", |event| event["kind"] == "takeover");
        thread::sleep(Duration::from_millis(200));
        drop(stopper);
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
    let pins: Vec<_> = fs::read_dir(
        first
            .pin_dir()
            .join(format!("v{}", enforcer::kernel::pins::PIN_LAYOUT)),
    )
    .unwrap()
    .collect();
    assert_eq!(pins.len(), 1, "only the new instance stays pinned");
}

/// The one map that fills as traffic flows is the learned-address map;
/// the policy's own maps are sized by the compiler for each generation.
/// Answers that system uids receive (root here) bind everyone, up to a
/// quota of their own: a flood past it has its last answers dropped, and
/// leaves the policy whole and the users' quotas free.
#[test]
fn a_flood_past_the_shared_quota_leaves_the_policy_whole() {
    const ANSWERS_PER_NAME: u32 = 16;
    const SHARED_QUOTA: u32 = enforcer_common::learned::SHARED_QUOTA as u32;
    const NAMES: u32 = SHARED_QUOTA / ANSWERS_PER_NAME + 2;
    let flood_server = Ipv4Addr::new(127, 0, 0, 86);
    let zone_server = Ipv4Addr::new(127, 0, 0, 88);
    let fresh = Ipv4Addr::new(127, 0, 0, 89);
    let _flood = DnsServer::raw(flood_server, numbered_answers(ANSWERS_PER_NAME));
    let _zone = DnsServer::start(
        zone_server,
        Zone::new().a("fresh.flood.example", fresh, 600),
    );
    let (_listed, listed_port) = tcp_listener(LISTED);
    let (_fresh, fresh_port) = tcp_listener(fresh);
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(
        &cgroup,
        &format!(
            "{BLOCK_LISTED}\n[options]\ndns_block_queries = false\n\
             [[block]]\nname = \"flood\"\ndomains = [\"flood.example\"]\n"
        ),
    );
    // In parts, so that each netprobe ends well within its time limit even
    // on an emulated CPU.
    let mut answered = 0;
    let part = NAMES.div_ceil(4);
    for first in (0..NAMES).step_by(part as usize) {
        answered += dns_flood(
            &cgroup,
            None,
            flood_server,
            "flood.example",
            first..(first + part).min(NAMES),
        );
    }
    assert_eq!(
        answered,
        SHARED_QUOTA / ANSWERS_PER_NAME,
        "the answers past the shared quota were dropped, the others not"
    );

    let status = daemon.status_json();
    assert_eq!(
        status["counters"]["addresses_learned"],
        u64::from(SHARED_QUOTA)
    );
    assert!(status["counters"]["learned_unstored"].as_u64() > Some(0));
    assert_eq!(status["counters"]["lookup_faults"], 0);
    assert_eq!(status["generation"], 1, "the flood changed no generation");
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, LISTED, listed_port),
        EPERM,
        "the policy's CIDR rule still holds"
    );
    assert_eq!(
        dns_query_as(&cgroup, NOBODY, zone_server, "fresh.flood.example"),
        DnsOutcome::Answer(vec![format!("A={fresh}")])
    );
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, fresh, fresh_port),
        EPERM,
        "a user still learns beside a full shared quota"
    );
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
