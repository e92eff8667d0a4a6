//! The daemon's life cycle and control socket: live policy swaps, refused
//! applies, status, shutdown, and refusing a bad `--cgroup`.

use std::{
    net::{Ipv4Addr, TcpListener},
    thread,
    time::{Duration, Instant},
};

use enforcer_integration_tests::{
    bpf::{HOOKS, attached_programs},
    cgroup::{TestCgroup, cgroup2_mount},
    command::{assert_exit_code, run, stderr_lines},
    daemon::Daemon,
    net::{Check, EPERM, Op, Outcome, assert_checks, probe, tcp_listener},
    temp::TempDir,
    timeouts::event_timeout,
};

const FIRST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 7);
const SECOND: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 8);

const BLOCK_FIRST: &str = r#"
version = 1

[[block]]
name = "block-first"
cidrs = ["127.0.0.7/32"]
"#;

const BLOCK_SECOND: &str = r#"
version = 1

[[block]]
name = "block-second"
cidrs = ["127.0.0.8/32"]
"#;

/// A listener on each of [`FIRST`] and [`SECOND`], to tell which of
/// [`BLOCK_FIRST`] and [`BLOCK_SECOND`] is in force.
struct Targets {
    first_port: u16,
    second_port: u16,
    _listeners: [TcpListener; 2],
}

impl Targets {
    fn new() -> Self {
        let (first, first_port) = tcp_listener(FIRST);
        let (second, second_port) = tcp_listener(SECOND);
        Self {
            first_port,
            second_port,
            _listeners: [first, second],
        }
    }

    /// [`BLOCK_FIRST`] is in force: FIRST refused, SECOND allowed.
    fn first_blocked(&self) -> [Check; 2] {
        [
            Check::refused(Op::TcpConnect, FIRST, self.first_port),
            Check::allowed(Op::TcpConnect, SECOND, self.second_port),
        ]
    }

    /// [`BLOCK_SECOND`] is in force: FIRST allowed, SECOND refused.
    fn second_blocked(&self) -> [Check; 2] {
        [
            Check::allowed(Op::TcpConnect, FIRST, self.first_port),
            Check::refused(Op::TcpConnect, SECOND, self.second_port),
        ]
    }
}

#[test]
fn policy_apply_swaps_verdicts_live() {
    let targets = Targets::new();
    let cgroup = TestCgroup::new();
    let mut daemon = Daemon::start(&cgroup, BLOCK_FIRST);
    assert_checks(&cgroup, &targets.first_blocked());

    let output = daemon.apply(BLOCK_SECOND);
    assert_exit_code(&output, 0, "policy apply");
    assert!(
        !String::from_utf8_lossy(&output.stdout).trim().is_empty(),
        "policy apply printed no summary of the changes"
    );

    assert_checks(&cgroup, &targets.second_blocked());
    assert!(
        daemon.status_json().is_object(),
        "status --json is not a JSON object"
    );
}

#[test]
fn invalid_apply_reports_the_position_and_keeps_the_old_policy() {
    let targets = Targets::new();
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, BLOCK_FIRST);
    // A valid rule for SECOND next to a broken one: none of it may apply.
    let bad = daemon.dir().write(
        "bad.toml",
        r#"version = 1

[[block]]
name = "block-second"
cidrs = ["127.0.0.8/32"]

[[block]]
name = "broken"
cidrs = ["127.0.0.300/32"]
"#,
    );

    let output = daemon.apply_files(&[&bad]);

    assert_exit_code(&output, 1, "policy apply of an invalid policy");
    let position = format!("{}:9:10: ", bad.display());
    let errors = stderr_lines(&output);
    assert!(
        errors
            .iter()
            .any(|line| line.starts_with(&position) && line.contains("127.0.0.300")),
        "expected an error line starting with {position:?} about the bad CIDR, got {errors:#?}"
    );
    assert_checks(&cgroup, &targets.first_blocked());
}

/// Every image of a daemon goes to the sized slot while it fits the
/// capacity chosen at start, and to the slot of any size when it does not.
/// The hooks must read whichever holds the live one, and a move between
/// the slots in either direction must leave no image of the other behind.
#[test]
fn images_larger_than_the_sized_slot_are_enforced_from_the_other_and_back() {
    let targets = Targets::new();
    let cgroup = TestCgroup::new();
    // IPv4 only: one bucket index, so the slot is sized for about that.
    let mut daemon = Daemon::start(&cgroup, BLOCK_FIRST);
    let slot = |daemon: &Daemon| daemon.status_json()["image_slot"]["slot"].clone();
    assert_eq!(slot(&daemon), "sized");
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, FIRST, targets.first_port),
        EPERM
    );

    // Both families: twice the bucket index, more than the slot holds.
    let both_families = r#"
version = 1

[[block]]
name = "block-second"
cidrs = ["127.0.0.8/32", "fd00:e7f0::/64"]
"#;
    assert_exit_code(&daemon.apply(both_families), 0, "policy apply");
    assert_eq!(slot(&daemon), "any-size");
    let [first, second] = targets.second_blocked();
    assert_checks(
        &cgroup,
        &[
            first.because("the image left in the sized slot is still read"),
            second,
        ],
    );

    assert_exit_code(&daemon.apply(BLOCK_FIRST), 0, "policy apply");
    assert_eq!(slot(&daemon), "sized");
    assert_checks(&cgroup, &targets.first_blocked());
}

#[test]
fn status_json_is_served_on_the_control_socket() {
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, BLOCK_FIRST);

    let status = daemon.status_json();

    assert!(status.is_object(), "status --json: {status}");
}

#[test]
fn sigterm_and_sigkill_leave_enforcement_in_force_and_only_unload_removes_it() {
    let (_listener, port) = tcp_listener(FIRST);
    let cgroup = TestCgroup::new();
    let mut daemon = Daemon::start(&cgroup, BLOCK_FIRST);
    for hook in HOOKS {
        let attached = attached_programs(cgroup.path(), hook).expect("BPF_PROG_QUERY");
        assert!(
            attached >= 1,
            "nothing attached at {hook:?} on {}",
            cgroup.path().display()
        );
    }
    assert_eq!(probe(&cgroup, Op::TcpConnect, FIRST, port), EPERM);

    let status = daemon.stop();
    assert!(
        status.success(),
        "the daemon exited with {status} on SIGTERM"
    );
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, FIRST, port),
        EPERM,
        "the programs stay attached after SIGTERM"
    );

    let mut restarted = Daemon::start_with(
        &cgroup,
        BLOCK_FIRST,
        &["--pin-dir".as_ref(), daemon.pin_dir().as_os_str()],
    );
    restarted.kill();
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, FIRST, port),
        EPERM,
        "the programs stay attached after SIGKILL"
    );

    let refused = run(enforcer_integration_tests::command::enforcer(["unload"])
        .arg("--pin-dir")
        .arg(daemon.pin_dir()));
    assert_exit_code(&refused, 2, "unload without --confirm");
    assert_eq!(probe(&cgroup, Op::TcpConnect, FIRST, port), EPERM);

    // No daemon answers now: unload removes the pins itself.
    let unloaded = restarted.unload();
    assert!(unloaded.status.success(), "{unloaded:?}");
    // The kernel releases a link whose last pin went from a worker, so
    // the programs may stay a moment (long enough to see on an emulated
    // CPU) after unload returns.
    let deadline = Instant::now() + event_timeout();
    for hook in HOOKS {
        loop {
            let attached = attached_programs(cgroup.path(), hook).expect("BPF_PROG_QUERY");
            if attached == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "programs left attached at {hook:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(probe(&cgroup, Op::TcpConnect, FIRST, port), Outcome::Ok);
    assert!(
        !daemon
            .pin_dir()
            .join(format!("v{}", enforcer::kernel::pins::PIN_LAYOUT))
            .exists()
    );
}

#[test]
fn unload_through_the_daemon_reports_who_and_stops_it() {
    let (_listener, port) = tcp_listener(FIRST);
    let cgroup = TestCgroup::new();
    let mut daemon = Daemon::start(&cgroup, BLOCK_FIRST);
    assert_eq!(probe(&cgroup, Op::TcpConnect, FIRST, port), EPERM);
    let output = daemon.unload();
    assert!(output.status.success(), "{output:?}");
    let event = daemon.expect_event("an unloaded event", |event| event["kind"] == "unloaded");
    daemon.expect_event("the shutdown", |event| {
        event["kind"] == "shutdown" && event["reason"] == "unloaded"
    });
    assert_eq!(event["uid"], 0);
    assert!(event["pins_removed"].as_u64().unwrap() >= 4, "{event}");
    assert_eq!(probe(&cgroup, Op::TcpConnect, FIRST, port), Outcome::Ok);
}

#[test]
fn daemon_refuses_a_directory_that_is_not_a_cgroup() {
    let not_a_cgroup = TempDir::new();
    let root = cgroup2_mount();
    let attached_at_root =
        || HOOKS.map(|hook| attached_programs(&root, hook).expect("BPF_PROG_QUERY"));
    let before = attached_at_root();

    let failure = match Daemon::try_start(not_a_cgroup.path(), BLOCK_FIRST) {
        Ok(_daemon) => panic!(
            "the daemon started on {}, which is not a cgroup v2 directory",
            not_a_cgroup.path().display()
        ),
        Err(failure) => failure,
    };

    let status = failure
        .status
        .expect("the daemon neither became ready nor exited");
    assert!(!status.success(), "the daemon exited with {status}");
    let dir = not_a_cgroup.path().display().to_string();
    assert!(
        failure.stderr.contains(&dir) && failure.stderr.to_lowercase().contains("cgroup"),
        "the error should name {dir} and say it is not a cgroup; stderr:\n{}",
        failure.stderr
    );
    assert_eq!(
        attached_at_root(),
        before,
        "programs attached at the cgroup root"
    );
}

/// The policy before the last apply is kept on disk, so a restarted
/// daemon can still go back to it.
#[test]
fn rollback_returns_to_the_policy_before_the_last_apply_across_a_restart() {
    let targets = Targets::new();
    let cgroup = TestCgroup::new();
    let mut daemon = Daemon::start(&cgroup, BLOCK_FIRST);
    let first_hash = daemon.status_json()["policy_sha256"].clone();
    let applied = daemon
        .apply("version = 1\n[[block]]\nname = \"block-second\"\ncidrs = [\"127.0.0.8/32\"]\n");
    assert!(applied.status.success(), "{applied:?}");
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, FIRST, targets.first_port),
        Outcome::Ok
    );
    daemon.stop();
    let daemon = daemon.start_from_store(&cgroup);
    assert_eq!(daemon.status_json()["generation"], 3);

    let rolled_back = run(
        enforcer_integration_tests::command::enforcer(["policy", "rollback"])
            .arg("--socket")
            .arg(daemon.socket()),
    );
    assert!(rolled_back.status.success(), "{rolled_back:?}");
    assert_checks(&cgroup, &targets.first_blocked());
    let status = daemon.status_json();
    assert_eq!(status["policy_sha256"], first_hash);
    assert_eq!(status["generation"], 4, "a rollback is a new generation");
}

#[test]
fn a_non_root_peer_is_refused() {
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, BLOCK_FIRST);
    let as_nobody = |socket: &std::path::Path| {
        run(std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(enforcer_integration_tests::command::enforcer_bin())
            .args(["status", "--socket"])
            .arg(socket))
    };
    // The socket's mode keeps others out...
    let output = as_nobody(daemon.socket());
    assert!(!output.status.success(), "{output:?}");
    // ...and the daemon checks the peer's credentials even when it is opened up.
    std::fs::set_permissions(
        daemon.socket(),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    std::fs::set_permissions(
        daemon.socket().parent().unwrap(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let output = as_nobody(daemon.socket());
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("uid 65534 may not control the enforcer"),
        "{stderr}"
    );
}

#[test]
fn an_apply_cut_off_half_way_changes_nothing() {
    use std::io::Write as _;
    let (_first, first_port) = tcp_listener(FIRST);
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, BLOCK_FIRST);
    let before = daemon.status_json();
    {
        // A client killed after sending part of its request.
        let mut stream = std::os::unix::net::UnixStream::connect(daemon.socket()).unwrap();
        stream.write_all(&4000u32.to_be_bytes()).unwrap();
        stream
            .write_all(br#"{"request":"apply","sources":[{"name":"p.toml","text":"ver"#)
            .unwrap();
    }
    let after = daemon.status_json();
    assert_eq!(after["generation"], before["generation"]);
    assert_eq!(after["policy_sha256"], before["policy_sha256"]);
    assert_eq!(probe(&cgroup, Op::TcpConnect, FIRST, first_port), EPERM);
}

#[test]
fn members_of_the_control_group_may_use_the_socket_but_not_unload() {
    let (_first, first_port) = tcp_listener(FIRST);
    let cgroup = TestCgroup::new();
    let mut daemon = Daemon::start_with(
        &cgroup,
        BLOCK_FIRST,
        &["--control-group".as_ref(), "nogroup".as_ref()],
    );
    std::fs::set_permissions(
        daemon.socket().parent().unwrap(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let as_user = |ids: &str, args: &[&str]| {
        run(std::process::Command::new("setpriv")
            .args([
                format!("--reuid={ids}"),
                format!("--regid={ids}"),
                "--clear-groups".to_string(),
            ])
            .arg(enforcer_integration_tests::command::enforcer_bin())
            .args(args)
            .arg("--socket")
            .arg(daemon.socket()))
    };
    let member = as_user("65534", &["status"]);
    assert!(member.status.success(), "{member:?}");
    let unload = as_user("65534", &["unload", "--confirm"]);
    assert!(!unload.status.success(), "{unload:?}");
    assert!(
        String::from_utf8_lossy(&unload.stderr).contains("only root may remove enforcement"),
        "{unload:?}"
    );
    let stranger = as_user("65533", &["status"]);
    assert!(!stranger.status.success(), "{stranger:?}");
    assert_eq!(probe(&cgroup, Op::TcpConnect, FIRST, first_port), EPERM);
    let unloaded = daemon.unload();
    assert!(unloaded.status.success(), "{unloaded:?}");
}

#[test]
fn with_trusted_keys_only_signed_untampered_bundles_are_applied() {
    let targets = Targets::new();
    let keys = TempDir::new();
    let prefix = keys.path().join("fleet");
    let made = run(
        enforcer_integration_tests::command::enforcer(["policy", "keygen", "--out"]).arg(&prefix),
    );
    assert!(made.status.success(), "{made:?}");
    let cgroup = TestCgroup::new();
    let mut daemon = Daemon::start_with(
        &cgroup,
        BLOCK_FIRST,
        &[
            "--trusted-key".as_ref(),
            prefix.with_extension("pub").as_os_str(),
        ],
    );
    let block_second =
        "version = 1\n[[block]]\nname = \"block-second\"\ncidrs = [\"127.0.0.8/32\"]\n";

    let unsigned = daemon.apply(block_second);
    assert!(!unsigned.status.success(), "{unsigned:?}");
    let refused = daemon.expect_event("a refusal", |event| event["kind"] == "policy_refused");
    assert_eq!(refused["uid"], 0);
    assert!(
        refused["reason"].as_str().unwrap().contains("only signed"),
        "{refused}"
    );

    let policy = keys.write("second.toml", block_second);
    let signed = run(
        enforcer_integration_tests::command::enforcer(["policy", "sign", "--key"])
            .arg(prefix.with_extension("key"))
            .arg(&policy),
    );
    assert!(signed.status.success(), "{signed:?}");
    let bundle = keys.write("second.bundle", &String::from_utf8_lossy(&signed.stdout));
    let apply_bundle = |bundle: &std::path::Path| {
        run(
            enforcer_integration_tests::command::enforcer(["policy", "apply", "--bundle"])
                .arg(bundle)
                .arg("--socket")
                .arg(daemon.socket()),
        )
    };
    let applied = apply_bundle(&bundle);
    assert!(applied.status.success(), "{applied:?}");
    assert_checks(&cgroup, &targets.second_blocked());
    let generation = daemon.status_json()["generation"].clone();

    // An allow slipped into the signed files.
    let tampered_text = String::from_utf8_lossy(&signed.stdout).replace(
        "name = \\\"block-second\\\"",
        "name = \\\"block-second\\\"\\nmode = \\\"audit\\\"",
    );
    assert_ne!(tampered_text, String::from_utf8_lossy(&signed.stdout));
    let tampered = keys.write("tampered.bundle", &tampered_text);
    let output = apply_bundle(&tampered);
    assert!(!output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("changed after signing"),
        "{output:?}"
    );
    assert_eq!(daemon.status_json()["generation"], generation);
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, SECOND, targets.second_port),
        EPERM
    );

    // The signed policy is stored with its signature: a restart from the
    // store trusts it, and refuses it once the file on disk is changed.
    daemon.kill();
    let public = prefix.with_extension("pub");
    let trusted = ["--trusted-key".as_ref(), public.as_os_str()];
    let restarted = daemon
        .try_start_from_store(&cgroup, &trusted)
        .unwrap_or_else(|failure| panic!("{}", failure.stderr));
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, SECOND, targets.second_port),
        EPERM
    );
    let mut restarted = restarted;
    restarted.kill();
    let stored = daemon.state_dir().join("policy.json");
    let text = std::fs::read_to_string(&stored).unwrap();
    std::fs::write(&stored, text.replace("block-second", "block-secnd")).unwrap();
    let refused = daemon
        .try_start_from_store(&cgroup, &trusted)
        .err()
        .expect("a changed stored policy is refused");
    assert!(
        refused.stderr.contains("cannot be trusted"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, SECOND, targets.second_port),
        EPERM,
        "the pinned programs go on enforcing meanwhile"
    );
}

#[test]
fn a_config_file_can_name_the_policy_and_a_bad_one_says_where() {
    let (_first, first_port) = tcp_listener(FIRST);
    let files = TempDir::new();
    let policy = files.write("policy.toml", BLOCK_FIRST);
    let config = files.write(
        "enforcer.toml",
        &format!("policy = [{:?}]\n", policy.display().to_string()),
    );
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::try_start_with_config(&cgroup, &config)
        .unwrap_or_else(|failure| panic!("{}", failure.stderr));
    assert_eq!(probe(&cgroup, Op::TcpConnect, FIRST, first_port), EPERM);

    let bad = files.write("bad.toml", "policy = []\npin_dri = \"/x\"\n");
    let failure = Daemon::try_start_with_config(&cgroup, &bad)
        .err()
        .expect("an unknown key is refused");
    assert!(
        failure.stderr.contains(&format!("{}:2:1: ", bad.display())),
        "{}",
        failure.stderr
    );
}

/// `policy_dir` in the configuration: every `*.toml` in the directory, in
/// name order, is one policy; what lies beside them is not read.
#[test]
fn a_policy_directory_is_read_as_one_policy_in_name_order() {
    let (_first, first_port) = tcp_listener(FIRST);
    let (_second, second_port) = tcp_listener(SECOND);
    let files = TempDir::new();
    let dir = files.path().join("policy.d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("20-second.toml"), BLOCK_SECOND).unwrap();
    std::fs::write(dir.join("10-first.toml"), BLOCK_FIRST).unwrap();
    std::fs::write(dir.join("10-first.toml.dpkg-old"), "not a policy").unwrap();
    let config = files.write(
        "enforcer.toml",
        &format!("policy_dir = {:?}\n", dir.display().to_string()),
    );
    let cgroup = TestCgroup::new();
    let daemon = Daemon::try_start_with_config(&cgroup, &config)
        .unwrap_or_else(|failure| panic!("{}", failure.stderr));
    assert_eq!(probe(&cgroup, Op::TcpConnect, FIRST, first_port), EPERM);
    assert_eq!(probe(&cgroup, Op::TcpConnect, SECOND, second_port), EPERM);
    let rules: Vec<String> = daemon.status_json()["rules"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|rule| rule["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(rules, ["block-first", "block-second"]);
}
