//! Events: what the daemon reports on stdout (and `events --follow`) for
//! blocked and audited traffic, and that allowed traffic is not reported.

use std::{
    ffi::OsStr,
    net::Ipv6Addr,
    process, thread,
    time::{Duration, Instant},
};

use enforcer_integration_tests::{
    cgroup::TestCgroup,
    daemon::Daemon,
    net::{
        Check, EPERM, LISTED, Op, Outcome, UNLISTED, held_probe, mapped, probe, run_probe,
        tcp_listener,
    },
    temp::TempDir,
    timeouts::event_timeout,
};
use serde_json::{Value, json};

const BLOCK_LISTED: &str = r#"
version = 1

[[block]]
name = "test-block"
cidrs = ["127.0.0.7/32", "::1/128"]
"#;

/// Runs `check` from inside `cgroup` and returns the daemon's event for
/// its process, after checking that each field of `fields` (a JSON object)
/// has the value given there.
#[track_caller]
fn assert_reported(daemon: &Daemon, cgroup: &TestCgroup, check: Check, fields: Value) -> Value {
    let probe = run_probe(cgroup, check.op, check.addr, check.port);
    assert_eq!(probe.outcome, check.expected, "{check:?}");
    let event = daemon.expect_event(&format!("for {check:?}"), |e| e["pid"] == probe.pid);
    for (field, value) in fields.as_object().expect("fields as a JSON object") {
        assert_eq!(&event[field], value, "{field} of {event}");
    }
    event
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, the shape of an RFC 3339
/// timestamp.
fn is_rfc3339(ts: &str) -> bool {
    let bytes = ts.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|part| part.iter().all(u8::is_ascii_digit))
    };
    let date_time = digits(0..4)
        && bytes.get(4) == Some(&b'-')
        && digits(5..7)
        && bytes.get(7) == Some(&b'-')
        && digits(8..10)
        && matches!(bytes.get(10), Some(b'T' | b't'))
        && digits(11..13)
        && bytes.get(13) == Some(&b':')
        && digits(14..16)
        && bytes.get(16) == Some(&b':')
        && digits(17..19);
    if !date_time {
        return false;
    }
    let mut rest = &ts[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        if end == 0 {
            return false;
        }
        rest = &fraction[end..];
    }
    rest.eq_ignore_ascii_case("z")
        || (rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':')
}

#[test]
fn blocked_tcp_connect_event_has_all_fields() {
    let (_listener, port) = tcp_listener(LISTED);
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, BLOCK_LISTED);

    // Held alive until its event is read: the parent pid is read from
    // /proc when the event is decoded.
    let held = held_probe(&cgroup, Op::TcpConnect, LISTED, port);
    let probe = &held.probe;
    assert_eq!(probe.outcome, EPERM);

    let event = daemon.expect_event("for the blocked connect", |e| e["pid"] == probe.pid);
    let ts = event["ts"].as_str().unwrap_or_default();
    assert!(is_rfc3339(ts), "ts is not RFC 3339: {event}");
    assert_eq!(event["kind"], "connect", "{event}");
    assert_eq!(event["verdict"], "blocked", "{event}");
    assert_eq!(event["rule"], "test-block", "{event}");
    assert_eq!(event["pid"], probe.pid, "{event}");
    assert_eq!(event["ppid"], process::id(), "{event}");
    // SAFETY: getuid has no preconditions.
    assert_eq!(event["uid"], unsafe { libc::getuid() }, "{event}");
    assert_eq!(event["comm"], "netprobe", "{event}");
    assert!(
        event["exe"]
            .as_str()
            .is_some_and(|exe| exe.ends_with("/netprobe")),
        "{event}"
    );
    assert_eq!(event["daddr"], "127.0.0.7", "{event}");
    assert_eq!(event["dport"], port, "{event}");
    assert_eq!(event["proto"], "tcp", "{event}");
    // What a SIEM gathering a fleet's events needs.
    assert_eq!(event["schema_version"], 1, "{event}");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(event["host"], host.trim(), "{event}");
    let ready = daemon.ready();
    assert!(
        event["id"].is_string() && event["id"] != ready["id"],
        "{event} {ready}"
    );
}

#[test]
fn events_are_also_appended_to_the_events_file() {
    let (_listener, port) = tcp_listener(LISTED);
    let cgroup = TestCgroup::new();
    let files = TempDir::new();
    let events_file = files.path().join("events.jsonl");
    let daemon = Daemon::start_with(
        &cgroup,
        BLOCK_LISTED,
        &[OsStr::new("--events"), events_file.as_os_str()],
    );

    let probe = run_probe(&cgroup, Op::TcpConnect, LISTED, port);
    assert_eq!(probe.outcome, EPERM);
    daemon.expect_event("on stdout", |e| e["pid"] == probe.pid);

    // The outputs are flushed one after another, so the file may lag
    // stdout by a moment: poll it rather than read it once.
    let deadline = Instant::now() + event_timeout();
    loop {
        let written = std::fs::read_to_string(&events_file).expect("the events file exists");
        let lines: Vec<Value> = written
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is JSON"))
            .collect();
        assert_eq!(
            lines.first().map(|e| &e["kind"]),
            Some(&Value::from("ready")),
            "{written}"
        );
        if lines
            .iter()
            .any(|e| e["kind"] == "connect" && e["pid"] == probe.pid)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no connect event in the file:\n{written}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn blocked_udp_events_name_the_operation() {
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, BLOCK_LISTED);
    let port = 9001;

    let cases = [
        (
            Check::refused(Op::UdpSendto, LISTED, port),
            json!({
                "kind": "sendmsg",
                "verdict": "blocked",
                "rule": "test-block",
                "proto": "udp",
                "daddr": "127.0.0.7",
                "dport": port,
                "comm": "netprobe",
            }),
        ),
        (
            Check::refused(Op::UdpConnect, LISTED, port),
            json!({"kind": "connect", "proto": "udp", "dport": port}),
        ),
    ];
    for (check, fields) in cases {
        assert_reported(&daemon, &cgroup, check, fields);
    }
}

#[test]
fn ipv6_and_ipv4_mapped_destinations_are_reported_in_their_own_form() {
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, BLOCK_LISTED);
    let port = 9002;

    let cases = [
        (
            Check::refused(Op::TcpConnect, Ipv6Addr::LOCALHOST, port),
            json!({"daddr": "::1", "dport": port}),
        ),
        (
            Check::refused(Op::TcpConnect, mapped(LISTED), port),
            json!({"daddr": "127.0.0.7", "kind": "connect", "proto": "tcp"}),
        ),
        (
            Check::refused(Op::UdpSendto, mapped(LISTED), port),
            json!({"daddr": "127.0.0.7", "kind": "sendmsg", "proto": "udp"}),
        ),
    ];
    for (check, fields) in cases {
        assert_reported(&daemon, &cgroup, check, fields);
    }
}

#[test]
fn audit_mode_lets_the_connection_through_and_reports_it() {
    let (_listener, port) = tcp_listener(LISTED);
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(
        &cgroup,
        r#"
version = 1
mode = "audit"

[[block]]
name = "watched"
cidrs = ["127.0.0.7/32"]
"#,
    );

    assert_reported(
        &daemon,
        &cgroup,
        Check::allowed(Op::TcpConnect, LISTED, port),
        json!({
            "verdict": "audit",
            "rule": "watched",
            "kind": "connect",
            "daddr": "127.0.0.7",
            "dport": port,
        }),
    );
}

#[test]
fn audit_mode_on_one_rule_overrides_enforcing_file() {
    let (_listener, port) = tcp_listener(LISTED);
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(
        &cgroup,
        r#"
version = 1
mode = "enforce"

[[block]]
name = "watched-only"
mode = "audit"
cidrs = ["127.0.0.7/32"]

[[block]]
name = "refused"
cidrs = ["127.0.0.8/32"]
"#,
    );

    assert_reported(
        &daemon,
        &cgroup,
        Check::allowed(Op::TcpConnect, LISTED, port),
        json!({"verdict": "audit", "rule": "watched-only"}),
    );

    assert_eq!(probe(&cgroup, Op::TcpConnect, UNLISTED, port), EPERM);
}

#[test]
fn allowed_traffic_produces_no_event() {
    let (_listener, port) = tcp_listener(UNLISTED);
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, BLOCK_LISTED);

    let allowed = run_probe(&cgroup, Op::TcpConnect, UNLISTED, port);
    assert_eq!(allowed.outcome, Outcome::Ok);
    // Events come out in order: once the later blocked connect is reported,
    // an event for the allowed one would already be there.
    let blocked = run_probe(&cgroup, Op::TcpConnect, LISTED, port);
    assert_eq!(blocked.outcome, EPERM);
    daemon.expect_event("for the blocked connect", |e| e["pid"] == blocked.pid);

    let reported: Vec<Value> = daemon
        .events()
        .into_iter()
        .filter(|e| e["pid"] == allowed.pid)
        .collect();
    assert!(
        reported.is_empty(),
        "allowed traffic was reported: {reported:#?}"
    );
}

#[test]
fn events_follow_streams_blocked_connections() {
    let cgroup = TestCgroup::new();
    let mut daemon = Daemon::start(&cgroup, BLOCK_LISTED);
    let follower = daemon.follow_events();

    // The follower subscribes at some point after it starts: probe until one
    // of the probes' events comes through.
    let deadline = Instant::now() + event_timeout();
    let mut pids = Vec::new();
    let event = loop {
        let probe = run_probe(&cgroup, Op::TcpConnect, LISTED, 9003);
        assert_eq!(probe.outcome, EPERM);
        pids.push(probe.pid);
        let seen = follower.wait_for_event(
            |e| pids.iter().any(|pid| e["pid"] == *pid),
            Duration::from_millis(200),
        );
        if let Some(event) = seen {
            break event;
        }
        assert!(
            Instant::now() < deadline,
            "`enforcer events --follow` printed no event for pids {pids:?} within {:?}; \
             it printed: {:#?}",
            event_timeout(),
            follower.lines()
        );
    };
    assert_eq!(event["verdict"], "blocked", "{event}");
    assert_eq!(event["rule"], "test-block", "{event}");
    assert_eq!(event["daddr"], "127.0.0.7", "{event}");

    // A follower that went away must not keep the daemon from stopping,
    // and is no error to report: it is how a follower leaves.
    drop(follower);
    let probe = run_probe(&cgroup, Op::TcpConnect, LISTED, 9003);
    daemon.expect_event("after the follower left", |e| e["pid"] == probe.pid);
    // The event went to the departed follower's connection too; give that
    // write time to fail.
    thread::sleep(Duration::from_millis(500));
    let status = daemon.stop();
    assert!(
        status.success(),
        "the daemon exited with {status} on SIGTERM"
    );
    let stderr = daemon.stderr();
    assert!(
        !stderr.contains("control client"),
        "the daemon reported a follower's leaving as an error:\n{stderr}"
    );
}

#[test]
fn events_also_go_to_a_syslog_socket_when_asked() {
    let (_listener, port) = tcp_listener(LISTED);
    let logs = TempDir::new();
    let socket_path = logs.path().join("log");
    let log = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    log.set_read_timeout(Some(event_timeout())).unwrap();
    let cgroup = TestCgroup::new();
    let mut syslog = std::ffi::OsString::from("--syslog=");
    syslog.push(&socket_path);
    let _daemon = Daemon::start_with(&cgroup, BLOCK_LISTED, &[syslog.as_os_str()]);
    assert_eq!(probe(&cgroup, Op::TcpConnect, LISTED, port), EPERM);
    let mut buffer = vec![0u8; 64 << 10];
    let deadline = Instant::now() + event_timeout();
    let connect = loop {
        assert!(
            Instant::now() < deadline,
            "no connect event on the syslog socket"
        );
        let received = log.recv(&mut buffer).expect("a syslog message");
        let message = String::from_utf8_lossy(&buffer[..received]).into_owned();
        if message.contains(r#""kind":"connect""#) {
            break message;
        }
    };
    // authpriv.warning, the daemon's tag and pid, then the JSON line.
    assert!(connect.starts_with("<84>enforcer["), "{connect}");
    let json = &connect[connect.find(": ").unwrap() + 2..];
    let event: Value = serde_json::from_str(json).unwrap();
    assert_eq!(event["verdict"], "blocked");
    assert_eq!(event["daddr"], LISTED.to_string());
}

/// `events --kind/--rule/--since` print the daemon's events that match
/// every flag given, and nothing else.
#[test]
fn events_are_filtered_by_kind_rule_and_time() {
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, BLOCK_LISTED);
    let probe = run_probe(&cgroup, Op::TcpConnect, LISTED, 9004);
    assert_eq!(probe.outcome, EPERM);
    daemon.expect_event("the refusal", |e| e["pid"] == probe.pid);
    let events = |args: &[&str]| -> Vec<Value> {
        let output = enforcer_integration_tests::command::run(
            enforcer_integration_tests::command::enforcer(["events", "--socket"])
                .arg(daemon.socket())
                .args(args),
        );
        assert!(output.status.success(), "events {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    };
    let is_the_refusal = |e: &Value| e["pid"] == probe.pid;
    assert!(events(&[]).iter().any(|e| e["kind"] == "ready"));
    for (args, wanted) in [
        (&["--kind", "connect"][..], true),
        (&["--rule", "test-block"][..], true),
        (
            &["--since", "1h", "--kind", "connect", "--rule", "test-block"][..],
            true,
        ),
        (&["--kind", "exec"][..], false),
        (&["--rule", "no-such-rule"][..], false),
        (&["--since", "2999-01-01T00:00:00Z"][..], false),
    ] {
        let printed = events(args);
        assert_eq!(
            printed.iter().any(is_the_refusal),
            wanted,
            "{args:?}: {printed:#?}"
        );
        if args[0] == "--kind" {
            assert!(
                printed.iter().all(|e| e["kind"] == args[1]),
                "{args:?}: {printed:#?}"
            );
        }
    }
}

/// `--event-format ecs`: stdout and the events file carry Elastic Common
/// Schema documents, with the native event kept under `enforcer`;
/// `enforcer events` still prints the native form.
#[test]
fn ecs_events_carry_the_schemas_fields() {
    let (_listener, port) = tcp_listener(LISTED);
    let cgroup = TestCgroup::new();
    let files = TempDir::new();
    let events_file = files.path().join("events.ecs.jsonl");
    let daemon = Daemon::start_with(
        &cgroup,
        BLOCK_LISTED,
        &[
            OsStr::new("--event-format"),
            OsStr::new("ecs"),
            OsStr::new("--events"),
            events_file.as_os_str(),
        ],
    );
    assert_eq!(
        daemon.ready()["event"]["category"],
        json!(["configuration"])
    );
    let probe = run_probe(&cgroup, Op::TcpConnect, LISTED, port);
    assert_eq!(probe.outcome, EPERM);
    let deadline = Instant::now() + event_timeout();
    let document = loop {
        let written = std::fs::read_to_string(&events_file).expect("the events file exists");
        let found = written
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).expect("each line is JSON"))
            .find(|document| document["process"]["pid"] == probe.pid);
        if let Some(document) = found {
            break document;
        }
        assert!(
            Instant::now() < deadline,
            "no ECS document for the refusal: {written}"
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        document["event"]["category"],
        json!(["network"]),
        "{document}"
    );
    assert_eq!(
        document["event"]["type"],
        json!(["connection", "denied"]),
        "{document}"
    );
    assert_eq!(document["event"]["outcome"], "failure", "{document}");
    assert_eq!(document["rule"]["name"], "test-block", "{document}");
    assert_eq!(
        document["destination"],
        json!({"ip": "127.0.0.7", "port": port}),
        "{document}"
    );
    assert_eq!(document["network"]["transport"], "tcp", "{document}");
    assert_eq!(document["process"]["name"], "netprobe", "{document}");
    assert_eq!(document["enforcer"]["kind"], "connect", "{document}");
    assert!(document["@timestamp"].is_string() && document["ecs"]["version"].is_string());

    let output = enforcer_integration_tests::command::run(
        enforcer_integration_tests::command::enforcer(["events", "--kind", "connect", "--socket"])
            .arg(daemon.socket()),
    );
    let native: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(
        native.iter().any(|event| event["pid"] == probe.pid),
        "{native:#?}"
    );
}
