//! Exec enforcement: which executions the daemon stops, by path (also
//! through symlinks, hard links and renames), by directory, by file name,
//! whatever way the program is started, and what it reports.
//!
//! Every banned program is a copy of `/bin/echo` in the test's own temp dir:
//! run with the argument [`MARKER`] it prints that marker, so a test can
//! tell that a blocked program printed nothing, i.e. never ran its own code.
//! Programs are started by the `execprobe` helper from inside the test's
//! cgroup, the only place the daemon judges.
//!
//! How a blocked exec looks to its parent depends on the kernel: the daemon
//! reports its method in `status --json` as `exec_enforcement`. With
//! "signal" (no BPF LSM, as on the CI machines) the new image is killed by
//! SIGKILL before it runs; with "lsm" the exec fails with EPERM.

use std::{
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt, symlink},
    path::{Path, PathBuf},
};

use enforcer_integration_tests::{
    cgroup::TestCgroup,
    daemon::Daemon,
    exec::{
        EXEC_EPERM, ExecMethod, ExecOutcome, ExecProbe, KILLED, LOADER, RAN, blocked_outcome,
        exec_probe, loader_stopped,
    },
    temp::TempDir,
};
use serde_json::Value;

/// What the harmless program prints when it runs.
const MARKER: &str = "ran";

/// A copy of `/bin/echo` named `name` (which may include subdirectories)
/// in `dir`: a new file, harmless to ban.
fn marker_program(dir: &TempDir, name: &str) -> PathBuf {
    dir.copy(name, "/bin/echo")
}

/// Starts `path MARKER` by `method` from inside `cgroup`.
fn start(cgroup: &TestCgroup, method: ExecMethod, path: &Path) -> ExecProbe {
    exec_probe(cgroup, method, path, &[MARKER])
}

/// `path` with symlinks resolved, as the kernel names the file.
fn canonical(path: &Path) -> PathBuf {
    fs::canonicalize(path)
        .unwrap_or_else(|error| panic!("cannot resolve {}: {error}", path.display()))
}

/// A TOML array of path strings, resolved to the canonical form the policy
/// wants, with `suffix` ("/" for a directory) appended to each.
fn paths(entries: &[(&Path, &str)]) -> String {
    let entries: Vec<String> = entries
        .iter()
        .map(|(path, suffix)| format!("{}{suffix}", canonical(path).display()))
        .collect();
    serde_json::to_string(&entries).expect("strings serialize")
}

/// A policy with one enforcing block rule "banned" for these exec paths.
fn ban_paths(banned: &[&Path]) -> String {
    let entries: Vec<(&Path, &str)> = banned.iter().map(|path| (*path, "")).collect();
    format!(
        r#"
version = 1

[[block]]
name = "banned"
exec_paths = {}
"#,
        paths(&entries)
    )
}

#[track_caller]
fn assert_ran(probe: &ExecProbe, what: &str) {
    assert_eq!(probe.outcome, RAN, "{what} must run: {probe:?}");
    assert_eq!(
        probe.stdout.trim_end(),
        MARKER,
        "{what} must print its marker: {probe:?}"
    );
}

#[track_caller]
fn assert_blocked(probe: &ExecProbe, expected: ExecOutcome, what: &str) {
    assert_eq!(probe.outcome, expected, "{what} must be blocked: {probe:?}");
    assert_eq!(
        probe.stdout, "",
        "{what} must not run its own code: {probe:?}"
    );
}

/// Whether `event` is the daemon's exec event for the process `pid`.
fn exec_event_of(event: &Value, pid: Option<u32>) -> bool {
    event["kind"] == "exec" && pid.is_some_and(|pid| event["pid"] == pid)
}

/// The exec events for the process `pid` so far.
fn exec_events_of(daemon: &Daemon, pid: Option<u32>) -> Vec<Value> {
    daemon
        .events()
        .into_iter()
        .filter(|event| exec_event_of(event, pid))
        .collect()
}

/// Blocks another exec of `banned` and waits for its event. Events come
/// through one ring buffer in order, so anything the daemon reports about
/// earlier execs has been printed once this returns.
fn barrier(daemon: &Daemon, cgroup: &TestCgroup, banned: &Path) {
    let probe = start(cgroup, ExecMethod::Execve, banned);
    assert_blocked(&probe, blocked_outcome(daemon), "the barrier exec");
    daemon.expect_event("for the barrier exec", |event| {
        exec_event_of(event, probe.pid)
    });
}

#[test]
fn exec_of_banned_path_is_blocked_only_inside_the_enforced_cgroup() {
    let dir = TempDir::new();
    let banned = marker_program(&dir, "banned");
    let copy = marker_program(&dir, "unbanned-copy");
    let cgroup = TestCgroup::new();
    let sibling = TestCgroup::new();
    assert_ran(
        &start(&cgroup, ExecMethod::Execve, &banned),
        "the program before the daemon starts",
    );

    let daemon = Daemon::start(&cgroup, &ban_paths(&[&banned]));
    let expected = blocked_outcome(&daemon);

    assert_blocked(
        &start(&cgroup, ExecMethod::Execve, &banned),
        expected,
        "the banned file",
    );
    assert_ran(
        &start(&cgroup, ExecMethod::Execve, &copy),
        "a copy of the banned file at another path",
    );
    assert_ran(
        &start(&sibling, ExecMethod::Execve, &banned),
        "the banned file started from a cgroup the daemon does not watch",
    );
}

#[test]
fn exec_through_symlink_or_hard_link_to_banned_file_is_blocked() {
    let dir = TempDir::new();
    let banned = marker_program(&dir, "banned");
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, &ban_paths(&[&banned]));
    let expected = blocked_outcome(&daemon);

    let soft = dir.path().join("symlink-to-banned");
    symlink(&banned, &soft).expect("cannot make the symlink");
    let hard = dir.path().join("hard-link-to-banned");
    fs::hard_link(&banned, &hard).expect("cannot make the hard link");

    assert_blocked(
        &start(&cgroup, ExecMethod::Execve, &soft),
        expected,
        "a symlink to the banned file",
    );
    assert_blocked(
        &start(&cgroup, ExecMethod::Execve, &hard),
        expected,
        "a hard link to the banned file",
    );
}

#[test]
fn banned_file_renamed_after_apply_stays_banned() {
    let dir = TempDir::new();
    let banned = marker_program(&dir, "banned");
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, &ban_paths(&[&banned]));
    let expected = blocked_outcome(&daemon);

    let renamed = dir.path().join("renamed");
    fs::rename(&banned, &renamed).expect("cannot rename the banned file");
    assert_blocked(
        &start(&cgroup, ExecMethod::Execve, &renamed),
        expected,
        "the banned file after a rename",
    );
}

#[test]
fn a_file_replacing_the_banned_path_is_banned_and_the_old_one_stays_banned() {
    let dir = TempDir::new();
    let banned = marker_program(&dir, "app");
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, &ban_paths(&[&banned]));
    let expected = blocked_outcome(&daemon);

    // What a package upgrade does: keep nothing, write the new version
    // aside and rename it over the listed path. Here the old one is kept
    // under another name too.
    let kept = dir.path().join("app.old");
    fs::hard_link(&banned, &kept).expect("cannot link the old version");
    let staged = marker_program(&dir, "app.dpkg-new");
    fs::rename(&staged, &banned).expect("cannot rename the new version into place");
    daemon.expect_event("for the re-resolved exec paths", |event| {
        event["kind"] == "exec_paths_resolved"
    });

    assert_blocked(
        &start(&cgroup, ExecMethod::Execve, &banned),
        expected,
        "the new file at the banned path",
    );
    assert_blocked(
        &start(&cgroup, ExecMethod::Execve, &kept),
        expected,
        "the old version kept under another name",
    );
}

#[test]
fn a_banned_path_that_appears_after_apply_is_banned() {
    let dir = TempDir::new();
    let later = dir.path().join("later/app");
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(
        &cgroup,
        &format!(
            "version = 1\n[[block]]\nname = \"banned\"\nexec_paths = [{:?}]\n",
            later.display().to_string()
        ),
    );
    let expected = blocked_outcome(&daemon);

    let installed = marker_program(&dir, "later/app");
    daemon.expect_event("for the installed file", |event| {
        event["kind"] == "exec_paths_resolved" && event["files"] == 1
    });
    assert_blocked(
        &start(&cgroup, ExecMethod::Execve, &installed),
        expected,
        "a banned path installed after the policy was applied",
    );
}

/// Bans a fresh marker program and starts it by `method`.
fn assert_method_is_blocked(method: ExecMethod) {
    let dir = TempDir::new();
    let banned = marker_program(&dir, "banned");
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, &ban_paths(&[&banned]));
    let expected = match (blocked_outcome(&daemon), method) {
        // The shell is the one whose exec fails, and it reports that the
        // way POSIX shells do: exit status 126.
        (EXEC_EPERM, ExecMethod::ShellExec) => ExecOutcome::Exit(126),
        (expected, _) => expected,
    };

    assert_blocked(
        &start(&cgroup, method, &banned),
        expected,
        &format!("the banned file started by {method:?}"),
    );
}

#[test]
fn execveat_of_banned_file_by_fd_with_empty_path_is_blocked() {
    assert_method_is_blocked(ExecMethod::ExecveatFd);
}

#[test]
fn posix_spawn_of_banned_file_is_blocked() {
    assert_method_is_blocked(ExecMethod::PosixSpawn);
}

#[test]
fn shell_exec_of_banned_file_is_blocked() {
    assert_method_is_blocked(ExecMethod::ShellExec);
}

/// Writes an executable `#!` script `name` in `dir` that runs `interpreter`
/// and prints the marker.
fn script(dir: &TempDir, name: &str, interpreter: &Path) -> PathBuf {
    let path = dir.write(
        name,
        &format!("#!{}\necho {MARKER}\n", interpreter.display()),
    );
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|error| panic!("cannot chmod {}: {error}", path.display()));
    path
}

#[test]
fn script_whose_interpreter_is_banned_is_blocked() {
    let dir = TempDir::new();
    let banned_shell = dir.copy("banned-sh", "/bin/sh");
    let other_shell = dir.copy("other-sh", "/bin/sh");
    let banned_script = script(&dir, "banned-interpreter.sh", &banned_shell);
    let allowed_script = script(&dir, "other-interpreter.sh", &other_shell);
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, &ban_paths(&[&banned_shell]));
    let expected = blocked_outcome(&daemon);

    let probe = exec_probe(&cgroup, ExecMethod::Script, &banned_script, &[]);
    assert_blocked(&probe, expected, "a script run by the banned interpreter");
    assert_ran(
        &exec_probe(&cgroup, ExecMethod::Script, &allowed_script, &[]),
        "the same script run by a copy of the interpreter",
    );
}

#[test]
fn exec_names_block_that_file_name_in_any_directory() {
    let dir = TempDir::new();
    let top = marker_program(&dir, "forbidden-name");
    let nested = marker_program(&dir, "deep/er/forbidden-name");
    let other = marker_program(&dir, "permitted-name");
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(
        &cgroup,
        r#"
version = 1

[[block]]
name = "by-name"
exec_names = ["forbidden-name"]
"#,
    );
    let expected = blocked_outcome(&daemon);

    assert_blocked(
        &start(&cgroup, ExecMethod::Execve, &top),
        expected,
        "a file with the banned name",
    );
    assert_blocked(
        &start(&cgroup, ExecMethod::Execve, &nested),
        expected,
        "a file with the banned name in a subdirectory",
    );
    assert_ran(
        &start(&cgroup, ExecMethod::Execve, &other),
        "a file with another name",
    );
}

#[test]
fn directory_ban_covers_files_at_any_depth_except_the_allowed_file() {
    let dir = TempDir::new();
    let file = marker_program(&dir, "dir/x");
    let nested = marker_program(&dir, "dir/sub/y");
    let allowed = marker_program(&dir, "dir/allowed");
    let leaving = marker_program(&dir, "dir/leaving");
    let banned_dir = dir.path().join("dir");
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(
        &cgroup,
        &format!(
            r#"
version = 1

[[block]]
name = "banned-dir"
exec_paths = {}

[[allow]]
name = "allowed-file"
exec_paths = {}
"#,
            paths(&[(&banned_dir, "/")]),
            paths(&[(&allowed, "")]),
        ),
    );
    let expected = blocked_outcome(&daemon);

    assert_blocked(
        &start(&cgroup, ExecMethod::Execve, &file),
        expected,
        "a file in the banned directory",
    );
    assert_blocked(
        &start(&cgroup, ExecMethod::Execve, &nested),
        expected,
        "a file in a subdirectory of the banned directory",
    );
    assert_ran(
        &start(&cgroup, ExecMethod::Execve, &allowed),
        "the allowed file in the banned directory",
    );

    let moved_out = dir.path().join("moved-out");
    fs::rename(&leaving, &moved_out).expect("cannot move the file out");
    assert_blocked(
        &start(&cgroup, ExecMethod::Execve, &moved_out),
        expected,
        "a file moved out of the banned directory after the policy was applied",
    );
}

/// Starts a banned program under `policy` (whose rules are audit-only) and
/// checks it runs and is reported with verdict "audit".
fn assert_audited(policy: &str) {
    let dir = TempDir::new();
    let program = marker_program(&dir, "audited");
    let cgroup = TestCgroup::new();
    let policy = policy.replace("EXEC_PATHS", &paths(&[(&program, "")]));
    let daemon = Daemon::start(&cgroup, &policy);

    let probe = start(&cgroup, ExecMethod::Execve, &program);
    assert_ran(&probe, "a program under an audit rule");
    let event = daemon.expect_event("for the audited exec", |event| {
        exec_event_of(event, probe.pid)
    });
    assert_eq!(event["verdict"], "audit", "{event}");
    assert_eq!(event["rule"], "audited", "{event}");
    assert_eq!(
        event["path"],
        canonical(&program).to_str().unwrap(),
        "{event}"
    );
}

#[test]
fn audit_mode_file_lets_the_program_run_and_reports_it() {
    assert_audited(
        r#"
version = 1
mode = "audit"

[[block]]
name = "audited"
exec_paths = EXEC_PATHS
"#,
    );
}

#[test]
fn audit_mode_rule_lets_the_program_run_and_reports_it() {
    assert_audited(
        r#"
version = 1

[[block]]
name = "audited"
mode = "audit"
exec_paths = EXEC_PATHS
"#,
    );
}

#[test]
fn blocked_exec_through_symlink_is_reported_once_with_all_fields() {
    let dir = TempDir::new();
    let banned = marker_program(&dir, "banned");
    let link = dir.path().join("link-to-banned");
    symlink(&banned, &link).expect("cannot make the symlink");
    let metadata = fs::metadata(&banned).expect("the banned file exists");
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, &ban_paths(&[&banned]));
    let method = daemon.status_json()["exec_enforcement"].clone();
    let expected = blocked_outcome(&daemon);

    let probe = start(&cgroup, ExecMethod::Execve, &link);
    assert_blocked(&probe, expected, "the banned file through a symlink");
    let pid = probe.pid.expect("execprobe forked a child");

    let event = daemon.expect_event("for the blocked exec", |event| {
        exec_event_of(event, Some(pid))
    });
    assert_eq!(event["kind"], "exec", "{event}");
    assert_eq!(event["verdict"], "blocked", "{event}");
    assert_eq!(event["rule"], "banned", "{event}");
    assert_eq!(event["pid"], pid, "{event}");
    assert_eq!(event["ppid"], probe.probe_pid, "{event}");
    // SAFETY: getuid has no preconditions.
    assert_eq!(event["uid"], unsafe { libc::getuid() }, "{event}");
    assert_eq!(
        event["path"],
        canonical(&banned).to_str().unwrap(),
        "path is the file the kernel resolved: {event}"
    );
    assert_eq!(
        event["filename"],
        link.to_str().unwrap(),
        "filename is what was passed to exec: {event}"
    );
    assert_eq!(event["ino"], metadata.ino(), "{event}");
    let dev = metadata.dev();
    assert_eq!(
        event["dev"],
        format!("{}:{}", libc::major(dev), libc::minor(dev)),
        "{event}"
    );
    assert_eq!(event["method"], method, "{event}");
    assert_eq!(
        event["cgroup_id"],
        fs::metadata(cgroup.path())
            .expect("the cgroup exists")
            .ino(),
        "cgroup_id is the test cgroup's id: {event}"
    );
    // With "signal" the event comes after exec renamed the task after the
    // file it was given; with "lsm" the task still has its old name.
    let after_exec: String = "link-to-banned".chars().take(15).collect();
    assert!(
        event["comm"] == after_exec.as_str() || event["comm"] == "execprobe",
        "comm: {event}"
    );

    barrier(&daemon, &cgroup, &banned);
    assert_eq!(
        exec_events_of(&daemon, Some(pid)).len(),
        1,
        "one blocked exec must be reported exactly once: {:#?}",
        daemon.events()
    );
}

#[test]
fn execs_the_policy_does_not_block_are_not_reported() {
    let dir = TempDir::new();
    let banned = marker_program(&dir, "banned");
    let copy = marker_program(&dir, "unbanned-copy");
    let cgroup = TestCgroup::new();
    let sibling = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, &ban_paths(&[&banned]));

    let unbanned = start(&cgroup, ExecMethod::Execve, &copy);
    assert_ran(&unbanned, "an unbanned copy");
    let outside = start(&sibling, ExecMethod::Execve, &banned);
    assert_ran(&outside, "the banned file outside the enforced cgroup");

    barrier(&daemon, &cgroup, &banned);
    for (what, probe) in [("unbanned copy", &unbanned), ("outside", &outside)] {
        assert_eq!(
            exec_events_of(&daemon, probe.pid),
            Vec::<Value>::new(),
            "the {what} exec must not be reported"
        );
    }
}

#[test]
fn live_policy_apply_bans_and_unbans_an_executable() {
    let dir = TempDir::new();
    let program = marker_program(&dir, "program");
    let cgroup = TestCgroup::new();
    let mut daemon = Daemon::start(&cgroup, "version = 1\n");
    let expected = blocked_outcome(&daemon);

    assert_ran(
        &start(&cgroup, ExecMethod::Execve, &program),
        "the program before any exec rule",
    );

    let output = daemon.apply(&ban_paths(&[&program]));
    assert!(
        output.status.success(),
        "policy apply of the ban failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_blocked(
        &start(&cgroup, ExecMethod::Execve, &program),
        expected,
        "the program after the ban was applied",
    );

    let output = daemon.apply("version = 1\n");
    assert!(
        output.status.success(),
        "policy apply without the ban failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_ran(
        &start(&cgroup, ExecMethod::Execve, &program),
        "the program after the ban was removed",
    );
}

#[test]
fn status_reports_the_exec_enforcement_method_that_blocked_execs_show() {
    let dir = TempDir::new();
    let banned = marker_program(&dir, "banned");
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, &ban_paths(&[&banned]));

    let method = daemon.status_json()["exec_enforcement"].clone();
    let probe = start(&cgroup, ExecMethod::Execve, &banned);
    // The kernel decides what a blocked exec looks like; the report must
    // agree with it.
    let observed = match probe.outcome {
        outcome if outcome == KILLED => "signal",
        outcome if outcome == EXEC_EPERM => "lsm",
        _ => panic!("the banned exec was not blocked: {probe:?}; status says {method}"),
    };
    assert_eq!(method, observed, "exec_enforcement in status --json");
    let event = daemon.expect_event("for the blocked exec", |event| {
        exec_event_of(event, probe.pid)
    });
    assert_eq!(event["method"], observed, "{event}");
}

/// SHA-256 of a file, by the system's `sha256sum`, so the test does not
/// share the daemon's hashing code.
fn sha256sum(path: &Path) -> String {
    let output = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum prints a digest")
        .to_string()
}

#[test]
fn content_ban_stops_copies_made_before_and_after_the_policy() {
    let dir = TempDir::new();
    let before = marker_program(&dir, "old/copy");
    let digest = sha256sum(&before);
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start_with(
        &cgroup,
        &format!("version = 1\n[[block]]\nname = \"by-content\"\nexec_sha256 = [\"{digest}\"]\n"),
        &[std::ffi::OsStr::new("--hash-root"), dir.path().as_os_str()],
    );
    let expected = blocked_outcome(&daemon);
    let found = |path: &Path| {
        let path = canonical(path).display().to_string();
        move |event: &Value| event["kind"] == "exec_content_found" && event["path"] == path.as_str()
    };

    daemon.expect_event("for the copy made before the policy", found(&before));
    let probe = start(&cgroup, ExecMethod::Execve, &before);
    assert_blocked(&probe, expected, "a copy made before the policy");
    let event = daemon.expect_event("for the blocked copy", |event| {
        exec_event_of(event, probe.pid)
    });
    assert_eq!(event["sha256"], digest.as_str(), "{event}");
    assert_eq!(event["rule"], "by-content", "{event}");

    let after = marker_program(&dir, "new/elsewhere");
    daemon.expect_event("for the copy made after the policy", found(&after));
    assert_blocked(
        &start(&cgroup, ExecMethod::Execve, &after),
        expected,
        "a copy made after the policy",
    );

    let other = dir.copy("other", "/bin/true");
    assert_eq!(
        start(&cgroup, ExecMethod::Execve, &other).outcome,
        RAN,
        "other content runs"
    );
}

#[test]
fn anonymous_executables_are_stopped_only_with_the_option() {
    let dir = TempDir::new();
    let program = marker_program(&dir, "program");
    let cgroup = TestCgroup::new();
    let mut daemon = Daemon::start(&cgroup, "version = 1\n");
    assert_ran(
        &start(&cgroup, ExecMethod::Memfd, &program),
        "a memfd program without exec_block_anonymous",
    );

    let output = daemon.apply("version = 1\n[options]\nexec_block_anonymous = true\n");
    assert!(output.status.success(), "{output:?}");
    let expected = blocked_outcome(&daemon);
    let probe = start(&cgroup, ExecMethod::Memfd, &program);
    assert_blocked(
        &probe,
        expected,
        "a memfd program with exec_block_anonymous",
    );
    let event = daemon.expect_event("for the memfd exec", |event| {
        exec_event_of(event, probe.pid)
    });
    assert_eq!(event["trigger"], "anonymous", "{event}");
    assert_eq!(event["rule"], "options.exec_block_anonymous", "{event}");
    assert_ran(
        &start(&cgroup, ExecMethod::Execve, &program),
        "the same program from its file",
    );
}

#[test]
fn a_banned_program_started_through_the_loader_is_stopped_with_the_option() {
    let dir = TempDir::new();
    let banned = marker_program(&dir, "banned");
    let allowed = marker_program(&dir, "allowed");
    let cgroup = TestCgroup::new();
    let rule = ban_paths(&[&banned]);
    let mut daemon = Daemon::start(&cgroup, &rule);
    let through_loader = |program: &Path| {
        exec_probe(
            &cgroup,
            ExecMethod::Execve,
            Path::new(LOADER),
            &[program.to_str().unwrap(), MARKER],
        )
    };
    assert_ran(
        &through_loader(&banned),
        "a banned program through the loader, without the option",
    );

    let output = daemon.apply(&format!("{rule}\n[options]\nexec_block_loader = true\n"));
    assert!(output.status.success(), "{output:?}");
    let probe = through_loader(&banned);
    // The loader is what exec ran; it is stopped when it maps the banned
    // file.
    assert!(
        loader_stopped(&daemon, probe.outcome),
        "a banned program through the loader: {probe:?}"
    );
    assert_eq!(probe.stdout, "", "it ran: {probe:?}");
    let event = daemon.expect_event("for the mapping", |event| exec_event_of(event, probe.pid));
    assert_eq!(event["trigger"], "mapping", "{event}");
    assert_eq!(event["rule"], "banned", "{event}");
    assert_ran(
        &through_loader(&allowed),
        "another program through the loader",
    );
}

/// A daemon with `exec_hash_strict` that bans `digest`, hashing below
/// `dir`.
fn start_strict_content_ban(cgroup: &TestCgroup, dir: &TempDir, digest: &str) -> Daemon {
    Daemon::start_with(
        cgroup,
        &format!(
            "version = 1\n[options]\nexec_hash_strict = true\n\
             [[block]]\nname = \"by-content\"\nexec_sha256 = [\"{digest}\"]\n"
        ),
        &[std::ffi::OsStr::new("--hash-root"), dir.path().as_os_str()],
    )
}

#[test]
fn strict_content_ban_stops_a_copy_run_right_after_it_is_written() {
    let dir = TempDir::new();
    let original = marker_program(&dir, "original");
    let digest = sha256sum(&original);
    let cgroup = TestCgroup::new();
    let _daemon = start_strict_content_ban(&cgroup, &dir, &digest);
    // No waiting for the daemon to find the copy: with the strict option
    // the exec itself waits for the verdict on its content.
    for attempt in 0..5 {
        let copy = dir.copy(&format!("fresh-{attempt}"), &original);
        let probe = start(&cgroup, ExecMethod::Execve, &copy);
        assert!(
            probe.outcome == EXEC_EPERM || probe.outcome == KILLED,
            "copy {attempt} must be refused or killed: {probe:?}"
        );
        assert_eq!(probe.stdout, "", "copy {attempt} must not run: {probe:?}");
    }
}

/// A copy hashed while it held one byte more, then cut back to the banned
/// bytes with `truncate(2)`: no descriptor is open for writing, so no
/// close-after-write reports it. The strict option hashes it again at its
/// exec, because its ctime moved.
#[test]
fn strict_content_ban_stops_a_copy_cut_back_to_banned_bytes_in_place() {
    let dir = TempDir::new();
    let original = marker_program(&dir, "original");
    let digest = sha256sum(&original);
    let banned_length = fs::metadata(&original).unwrap().len();
    let cgroup = TestCgroup::new();
    let _daemon = start_strict_content_ban(&cgroup, &dir, &digest);
    // Written longer from the start: a file that ever held the banned
    // bytes stays banned by its inode (see `exec::hashwatch`).
    let copy = dir.path().join("longer");
    let mut bytes = fs::read(&original).unwrap();
    bytes.push(0);
    fs::write(&copy, &bytes).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    assert_ran(
        &start(&cgroup, ExecMethod::Execve, &copy),
        "the copy with one byte more",
    );
    let path = std::ffi::CString::new(copy.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    let cut = unsafe { libc::truncate(path.as_ptr(), banned_length as libc::off_t) };
    assert_eq!(cut, 0, "truncate: {}", std::io::Error::last_os_error());
    let probe = start(&cgroup, ExecMethod::Execve, &copy);
    assert!(
        probe.outcome == EXEC_EPERM || probe.outcome == KILLED,
        "the copy cut back must be refused: {probe:?}"
    );
    assert_eq!(probe.stdout, "", "it must not run: {probe:?}");
}
