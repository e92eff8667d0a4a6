//! A kernel that refuses a program family: the daemon enforces what the
//! other families cover and reports the gap, or refuses to start when
//! told to insist on that family or when nothing could be enforced. The
//! refusal is forced with the daemon's `--refuse-family` test hook, so
//! this runs the same on every kernel.

use std::{
    ffi::OsStr,
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use enforcer_integration_tests::{
    bpf::bpf_lsm_expected,
    cgroup::TestCgroup,
    command::{enforcer, run},
    daemon::{Daemon, StartFailure},
    exec::{EXEC_EPERM, ExecMethod, KILLED, RAN, exec_probe_as},
    net::{EPERM, Op, Outcome, probe_as, tcp_listener},
    privilege::NOBODY,
    temp::{TempDir, unique_name},
};
use serde_json::Value;

const LISTED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 61);
const UNLISTED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 62);
const BANNED: &str = "degraded-banned";

/// A CIDR rule, an exec rule and a domain rule. The exec rule bans
/// `banned` by path, which every variant of the exec hook judges, so that
/// it holds on kernels that judge no file names too (5.10).
fn policy(banned: &Path) -> String {
    format!(
        r#"
version = 1

[[block]]
name = "net"
cidrs = ["127.0.0.61/32"]

[[block]]
name = "bin"
exec_paths = ["{}"]

[[block]]
name = "names"
domains = ["example.com"]
"#,
        banned.display()
    )
}

/// The entry for `family` in a `families` list of the ready event or
/// `status --json`.
fn family<'a>(families: &'a Value, family: &str) -> &'a Value {
    families
        .as_array()
        .and_then(|families| families.iter().find(|entry| entry["family"] == family))
        .unwrap_or_else(|| panic!("no family {family} in {families}"))
}

fn refused_by_the_test_hook(entry: &Value) -> bool {
    entry["state"] == "unavailable"
        && entry["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("--refuse-family"))
}

#[test]
fn with_domains_refused_cidr_and_exec_rules_are_still_enforced_and_the_gap_reported() {
    let (_listed, listed_port) = tcp_listener(LISTED);
    let (_unlisted, unlisted_port) = tcp_listener(UNLISTED);
    let dir = TempDir::new();
    let banned = dir.copy(BANNED, "/bin/echo");
    let allowed = dir.copy("degraded-allowed", "/bin/echo");
    let policy = policy(&fs::canonicalize(&banned).expect("the copy exists"));
    let cgroup = TestCgroup::new();
    let mut daemon = Daemon::start_with(
        &cgroup,
        &policy,
        &["--refuse-family".as_ref(), "domains".as_ref()],
    );

    let ready = daemon.ready();
    assert!(
        refused_by_the_test_hook(family(&ready["families"], "domains")),
        "{ready}"
    );
    assert_eq!(family(&ready["families"], "network")["state"], "enforcing");
    assert!(
        ready["programs_verified"]
            .as_array()
            .is_some_and(|programs| programs.iter().any(|p| p["name"] == "connect4")),
        "{ready}"
    );
    let degraded = daemon.expect_event("degraded, for domains", |event| {
        event["kind"] == "degraded" && event["family"] == "domains"
    });
    assert_eq!(
        degraded["not_enforced"]["rules"],
        serde_json::json!(["names"])
    );
    assert!(
        degraded["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("--refuse-family")),
        "{degraded}"
    );

    let status = daemon.status_json();
    assert!(
        refused_by_the_test_hook(family(&status["families"], "domains")),
        "{status}"
    );
    let verified = status["programs_verified"].as_array().expect("a list");
    let connect4 = verified
        .iter()
        .find(|program| program["name"] == "connect4")
        .unwrap_or_else(|| panic!("connect4 is loaded: {verified:?}"));
    assert_eq!(connect4["family"], "network");
    assert!(
        !verified
            .iter()
            .any(|program| program["family"] == "domains"),
        "{verified:?}"
    );

    // An unprivileged user inside the cgroup is still held by the CIDR and
    // exec rules.
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, LISTED, listed_port),
        EPERM
    );
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, UNLISTED, unlisted_port),
        Outcome::Ok
    );
    let blocked = exec_probe_as(&cgroup, NOBODY, ExecMethod::Execve, &banned, &["ran"]);
    assert!(
        [KILLED, EXEC_EPERM].contains(&blocked.outcome),
        "the banned exec ran: {blocked:?}"
    );
    let ran = exec_probe_as(&cgroup, NOBODY, ExecMethod::Execve, &allowed, &["ran"]);
    assert_eq!(ran.outcome, RAN, "{ran:?}");

    // An apply of a policy with domains goes in, and says what it leaves out.
    let applied = daemon.apply(&policy);
    let stdout = String::from_utf8_lossy(&applied.stdout);
    assert!(applied.status.success(), "{applied:?}");
    assert!(
        stdout.contains("domains unavailable") && stdout.contains("rule names"),
        "{stdout}"
    );
    daemon.expect_event("degraded, for the apply", |event| {
        event["kind"] == "degraded" && event["family"] == "domains" && event["generation"] == 2
    });
    assert_eq!(
        probe_as(&cgroup, NOBODY, Op::TcpConnect, LISTED, listed_port),
        EPERM
    );
    let unloaded = daemon.unload();
    assert!(unloaded.status.success(), "{unloaded:?}");
}

/// The exec hook's programs that run where names cannot be judged, by
/// method, as status sorts them: the dispatcher, and its variants that
/// judge by file and directory alone, which is what a kernel without the
/// name hashing's atomics (5.10) runs.
fn by_file_programs(method: &str) -> [&'static str; 3] {
    match method {
        "lsm" => [
            "bprm_check_any_size_by_file",
            "bprm_check_security",
            "bprm_check_sized_by_file",
        ],
        "signal" => [
            "sched_exec_any_size_by_file",
            "sched_exec_sized_by_file",
            "sched_process_exec",
        ],
        other => panic!("the daemon cannot enforce exec rules here: {other}"),
    }
}

#[test]
fn with_exec_names_refused_the_by_file_exec_hook_still_stops_a_banned_file_under_any_name() {
    let dir = TempDir::new();
    let banned = dir.copy("by-file-banned", "/bin/echo");
    let named = dir.copy("by-file-banned-name", "/bin/echo");
    let policy = format!(
        r#"
version = 1

[[block]]
name = "by-path"
exec_paths = ["{}"]

[[block]]
name = "by-name"
exec_names = ["by-file-banned-name"]
"#,
        fs::canonicalize(&banned)
            .expect("the copy exists")
            .display()
    );
    let cgroup = TestCgroup::new();
    let mut daemon = Daemon::start_with(
        &cgroup,
        &policy,
        &["--refuse-family".as_ref(), "exec_names".as_ref()],
    );

    let status = daemon.status_json();
    let families = &status["families"];
    assert!(
        refused_by_the_test_hook(family(families, "exec_names")),
        "{status}"
    );
    assert_eq!(family(families, "exec")["state"], "enforcing", "{status}");
    let loader = family(families, "exec_block_loader");
    assert!(
        loader["state"] == "unavailable"
            && loader["reason"].as_str().is_some_and(|reason| {
                reason.contains("hashes file names") && reason.contains("--refuse-family")
            }),
        "{status}"
    );
    // The kernel verified the by-file variants and they run; the
    // variants that hash names were never offered to the kernel.
    let method = status["exec_enforcement"].as_str().expect("a method");
    if bpf_lsm_expected() {
        assert_eq!(method, "lsm", "this kernel runs BPF LSM: {status}");
    }
    let programs = by_file_programs(method);
    let dispatcher = match method {
        "lsm" => "bprm_check_security",
        _ => "sched_process_exec",
    };
    assert!(
        status["programs"]
            .as_array()
            .is_some_and(|attached| attached.iter().any(|name| name == dispatcher)),
        "{dispatcher} is attached: {status}"
    );
    let verified: Vec<&str> = status["programs_verified"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|loaded| loaded["family"] == "exec")
        .filter_map(|loaded| loaded["name"].as_str())
        .collect();
    assert_eq!(verified, programs, "{status}");

    let degraded = daemon.expect_event("degraded, for exec_names", |event| {
        event["kind"] == "degraded" && event["family"] == "exec_names"
    });
    assert_eq!(
        degraded["not_enforced"]["rules"],
        serde_json::json!(["by-name"])
    );

    // The file is judged by its identity, so an unprivileged user cannot
    // get past it by another name for it.
    let expected = if method == "lsm" { EXEC_EPERM } else { KILLED };
    let soft = dir.path().join("symlink-to-banned");
    std::os::unix::fs::symlink(&banned, &soft).expect("cannot make the symlink");
    let hard = dir.path().join("hard-link-to-banned");
    fs::hard_link(&banned, &hard).expect("cannot make the hard link");
    let renamed = dir.path().join("renamed-banned");
    for (path, what) in [
        (&banned, "the banned file"),
        (&soft, "a symlink to it"),
        (&hard, "a hard link to it"),
    ] {
        let probe = exec_probe_as(&cgroup, NOBODY, ExecMethod::Execve, path, &["ran"]);
        assert_eq!(probe.outcome, expected, "{what} must be blocked: {probe:?}");
        assert_eq!(probe.stdout, "", "{what} must not run: {probe:?}");
    }
    fs::rename(&banned, &renamed).expect("cannot rename the banned file");
    let probe = exec_probe_as(&cgroup, NOBODY, ExecMethod::Execve, &renamed, &["ran"]);
    assert_eq!(probe.outcome, expected, "the renamed file: {probe:?}");
    assert_eq!(probe.stdout, "", "the renamed file must not run: {probe:?}");
    // What only its name bans runs: the program in force judges no names.
    let ran = exec_probe_as(&cgroup, NOBODY, ExecMethod::Execve, &named, &["ran"]);
    assert_eq!(ran.outcome, RAN, "{ran:?}");

    let applied = daemon.apply(&policy);
    let stdout = String::from_utf8_lossy(&applied.stdout);
    assert!(applied.status.success(), "{applied:?}");
    assert!(
        stdout.contains("exec_names unavailable") && stdout.contains("rule by-name"),
        "{stdout}"
    );
    let unloaded = daemon.unload();
    assert!(unloaded.status.success(), "{unloaded:?}");
}

/// A pin directory of the test's own, so that what the daemon leaves in
/// it can be counted.
struct PinDir(PathBuf);

impl PinDir {
    fn new() -> Self {
        Self(PathBuf::from("/sys/fs/bpf").join(unique_name()))
    }

    /// Every file below it: pins.
    fn pins(&self) -> Vec<PathBuf> {
        fn walk(path: &Path, found: &mut Vec<PathBuf>) {
            for entry in fs::read_dir(path).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    walk(&entry.path(), found);
                } else {
                    found.push(entry.path());
                }
            }
        }
        let mut found = Vec::new();
        walk(&self.0, &mut found);
        found
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        enforcer_integration_tests::daemon::unload_pins(
            &enforcer_integration_tests::command::enforcer_bin(),
            &self.0,
        );
        let _ = enforcer::kernel::pins::remove_tree(&self.0);
    }
}

/// Starts a daemon with `extra` that must fail; returns how it failed and
/// the pins it left.
fn failed_start(extra: &[&str]) -> (StartFailure, Vec<PathBuf>) {
    let cgroup = TestCgroup::new();
    let pins = PinDir::new();
    let mut args: Vec<&OsStr> = vec!["--pin-dir".as_ref(), pins.0.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    // These daemons never get as far as judging an exec.
    let policy = policy(&PathBuf::from("/nonexistent").join(BANNED));
    let failure = match Daemon::try_start_with_args(&cgroup, &policy, &args) {
        Ok(daemon) => panic!("the daemon started with {extra:?}: {}", daemon.ready()),
        Err(failure) => failure,
    };
    let status = failure.status.expect("the daemon exited by itself");
    assert!(!status.success(), "{failure:?}");
    assert!(failure.stdout.is_empty(), "it reported ready: {failure:?}");
    let left = pins.pins();
    (failure, left)
}

#[test]
fn a_required_family_the_kernel_refuses_stops_the_start_before_anything_is_attached() {
    for family in ["domains", "exec_names"] {
        let (failure, pins) = failed_start(&["--require", family, "--refuse-family", family]);
        assert!(
            failure.stderr.contains(&format!("--require {family}")),
            "{failure:?}"
        );
        assert!(pins.is_empty(), "pins left: {pins:?}");
    }
}

#[test]
fn a_kernel_that_refuses_every_enforcing_family_stops_the_start() {
    let (failure, pins) = failed_start(&["--refuse-family", "network,exec,domains"]);
    assert!(
        failure.stderr.contains("can enforce nothing"),
        "{failure:?}"
    );
    assert!(pins.is_empty(), "pins left: {pins:?}");
}

#[test]
fn an_unknown_family_is_refused_with_the_list_of_families() {
    let output = run(&mut enforcer(["run", "--require", "dns"]));
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`dns`")
            && stderr
                .contains("network, exec, exec_names, exec_block_loader, domains, self_protection"),
        "{stderr}"
    );
}
