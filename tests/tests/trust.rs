//! `exec_trusted_only`: in the enforced cgroup, only files that root owns
//! and nobody else may write, below directories of the same kind, on a
//! filesystem the policy trusts, may start a process. Tried as an
//! unprivileged user would: every program runs as `nobody`, from places a
//! user can write or could have been given.
//!
//! The places live under cargo's temporary directory for tests, on the
//! filesystem of the build, and in `/dev/shm`. Where the build's own
//! filesystem is one the policy would distrust (the VM's guest runs from
//! its initramfs), the policy leaves that one out, and the checks below it
//! are what stops a program.

use std::{
    ffi::CString,
    fs,
    os::unix::{
        ffi::OsStrExt,
        fs::{PermissionsExt, chown},
    },
    path::{Path, PathBuf},
};

use enforcer_integration_tests::{
    cgroup::TestCgroup,
    daemon::Daemon,
    exec::{
        EXEC_EPERM, ExecMethod, ExecOutcome, ExecProbe, KILLED, LOADER, RAN, blocked_outcome,
        exec_probe_as, loader_stopped,
    },
    privilege::NOBODY,
};
use serde_json::Value;

/// What a program prints when it runs.
const MARKER: &str = "ran";

/// Filesystems a policy may distrust, with their `statfs` magic: those the
/// build could live on.
const SELF_HOSTED: [(&str, i64); 2] = [("tmpfs", 0x0102_1994), ("ramfs", 0x8584_58f6)];

/// A directory of its own under cargo's temporary directory, removed on
/// drop.
struct Place(PathBuf);

impl Place {
    fn new(name: &str) -> Self {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("trust-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        Self(path)
    }

    /// `/bin/echo` copied to `name` with `mode`, owned by `owner`.
    fn program(&self, name: &str, owner: u32, mode: u32) -> PathBuf {
        let path = self.0.join(name);
        fs::copy("/bin/echo", &path).unwrap();
        chown(&path, Some(owner), Some(owner)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// A `#!/bin/sh` script at `name` that prints [`MARKER`], with `mode`,
    /// owned by `owner`.
    fn script(&self, name: &str, owner: u32, mode: u32) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, format!("#!/bin/sh\necho {MARKER}\n")).unwrap();
        chown(&path, Some(owner), Some(owner)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// A subdirectory owned by `owner` with `mode`.
    fn directory(&self, name: &str, owner: u32, mode: u32) -> Place {
        let path = self.0.join(name);
        fs::create_dir(&path).unwrap();
        chown(&path, Some(owner), Some(owner)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        Place(path)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A file outside any [`Place`] (in `/dev/shm`), removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// The `statfs` magic of the filesystem `path` is on.
fn filesystem_magic(path: &Path) -> i64 {
    let path = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: plain old data, valid zeroed.
    let mut stats: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a struct of the right type.
    let status = unsafe { libc::statfs(path.as_ptr(), &mut stats) };
    assert_eq!(status, 0, "statfs: {}", std::io::Error::last_os_error());
    stats.f_type as i64
}

/// The default list of distrusted filesystems, less the one the build
/// lives on, as a TOML array; and whether tmpfs stays on it.
fn untrusted_filesystems() -> (String, bool) {
    let build = filesystem_magic(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let names: Vec<&str> = [
        "tmpfs", "ramfs", "fuse", "vfat", "exfat", "ntfs", "iso9660", "udf",
    ]
    .into_iter()
    .filter(|name| !SELF_HOSTED.contains(&(name, build)))
    .collect();
    let tmpfs = names.contains(&"tmpfs");
    (serde_json::to_string(&names).unwrap(), tmpfs)
}

fn trust_policy(trust: &str, allowed: &[&Path]) -> String {
    let (filesystems, _) = untrusted_filesystems();
    let allowed: Vec<String> = allowed
        .iter()
        .map(|path| format!("{}/", path.display()))
        .collect();
    let mut policy = format!(
        "version = 1\n[options]\nexec_trusted_only = {trust}\n\
         exec_untrusted_filesystems = {filesystems}\n"
    );
    if !allowed.is_empty() {
        policy.push_str(&format!(
            "[[allow]]\nname = \"corporate\"\nexec_paths = {}\n",
            serde_json::to_string(&allowed).unwrap()
        ));
    }
    policy
}

fn start(cgroup: &TestCgroup, method: ExecMethod, path: &Path) -> ExecProbe {
    exec_probe_as(cgroup, NOBODY, method, path, &[MARKER])
}

#[track_caller]
fn assert_ran(probe: &ExecProbe, what: &str) {
    assert_eq!(probe.outcome, RAN, "{what} must run: {probe:?}");
    assert_eq!(probe.stdout.trim_end(), MARKER, "{what}: {probe:?}");
}

/// Asserts that `path`, started by `method`, was stopped before it ran,
/// and that its event names the failed `check`.
#[track_caller]
fn assert_untrusted(
    daemon: &Daemon,
    cgroup: &TestCgroup,
    method: ExecMethod,
    path: &Path,
    check: &str,
) {
    let probe = start(cgroup, method, path);
    assert_eq!(
        probe.outcome,
        blocked_outcome(daemon),
        "{} ({check}) must be stopped: {probe:?}",
        path.display()
    );
    assert_eq!(probe.stdout, "", "it ran its own code: {probe:?}");
    let event = untrusted_event(daemon, &probe, path);
    assert_eq!(event["check"], check, "{event}");
    assert_eq!(event["verdict"], "blocked", "{event}");
    assert_eq!(event["rule"], "options.exec_trusted_only", "{event}");
    assert_eq!(event["uid"], NOBODY, "{event}");
}

/// The event of `probe`'s untrusted exec of `path`: by the child's pid, or
/// by the path where the child is unknown (a `posix_spawn` that the LSM
/// method failed reports no child).
fn untrusted_event(daemon: &Daemon, probe: &ExecProbe, path: &Path) -> Value {
    daemon.expect_event("an untrusted exec", |event| {
        event["kind"] == "exec"
            && event["reason"] == "untrusted"
            && match probe.pid {
                Some(pid) => event["pid"] == pid,
                None => event["path"] == path.display().to_string(),
            }
    })
}

#[test]
fn only_trusted_files_run_and_each_untrusted_one_names_its_check() {
    let place = Place::new("checks");
    let home = place.directory("home", NOBODY, 0o755);
    let own = home.program("own-build", NOBODY, 0o755);
    let writable = place.program("writable", 0, 0o777);
    let open_directory = place.directory("open", 0, 0o777);
    let in_open_directory = open_directory.program("program", 0, 0o755);
    let users_directory = place.directory("users", NOBODY, 0o755);
    let in_users_directory = users_directory.program("program", 0, 0o755);
    let shm = Scratch(Path::new("/dev/shm").join(format!("enforcer-trust-{}", std::process::id())));
    let shm = &shm.0;
    fs::copy("/bin/echo", shm).unwrap();
    chown(shm, Some(NOBODY), Some(NOBODY)).unwrap();
    let (_, tmpfs_distrusted) = untrusted_filesystems();

    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, &trust_policy("true", &[]));
    assert_ran(
        &start(&cgroup, ExecMethod::Execve, Path::new("/bin/echo")),
        "the system's own echo",
    );
    assert_ran(
        &start(&cgroup, ExecMethod::ShellExec, Path::new("/bin/echo")),
        "echo through the system's shell",
    );
    assert_untrusted(&daemon, &cgroup, ExecMethod::Execve, &own, "owner");
    assert_untrusted(&daemon, &cgroup, ExecMethod::Execve, &writable, "mode");
    assert_untrusted(
        &daemon,
        &cgroup,
        ExecMethod::Execve,
        &in_open_directory,
        "directory_mode",
    );
    assert_untrusted(
        &daemon,
        &cgroup,
        ExecMethod::Execve,
        &in_users_directory,
        "directory_owner",
    );
    let shm_check = if tmpfs_distrusted {
        "filesystem"
    } else {
        "owner"
    };
    assert_untrusted(&daemon, &cgroup, ExecMethod::Execve, shm, shm_check);
    assert_untrusted(
        &daemon,
        &cgroup,
        ExecMethod::Memfd,
        Path::new("/bin/echo"),
        "anonymous",
    );
    assert_untrusted(&daemon, &cgroup, ExecMethod::PosixSpawn, &own, "owner");
    assert_untrusted(&daemon, &cgroup, ExecMethod::ExecveatFd, &own, "owner");
}

/// The dynamic loader is a trusted file, and runs whatever file it is
/// given: it maps that file executable, which is judged as its exec would
/// be. The mapping hook stops the loader there, before any of the file's
/// code runs: BPF LSM refuses the mapping, the signal method kills the
/// loader. Only BPF LSM sees a mapping made executable afterwards.
#[test]
fn the_loader_runs_only_trusted_files() {
    let place = Place::new("loader");
    let home = place.directory("home", NOBODY, 0o755);
    let own = home.program("own-build", NOBODY, 0o755);
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, &trust_policy("true", &[]));
    let through_loader = |program: &Path| {
        exec_probe_as(
            &cgroup,
            NOBODY,
            ExecMethod::Execve,
            Path::new(LOADER),
            &[program.to_str().unwrap(), MARKER],
        )
    };
    assert_ran(
        &through_loader(Path::new("/bin/echo")),
        "the system's echo through the loader",
    );
    let probe = through_loader(&own);
    assert!(
        loader_stopped(&daemon, probe.outcome),
        "the loader with a user's build: {probe:?}"
    );
    assert_eq!(probe.stdout, "", "it ran its own code: {probe:?}");
    let event = daemon.expect_event("the untrusted mapping", |event| {
        event["kind"] == "exec" && probe.pid.is_some_and(|pid| event["pid"] == pid)
    });
    assert_eq!(event["reason"], "untrusted", "{event}");
    assert_eq!(event["check"], "owner", "{event}");
    assert_eq!(event["trigger"], "mapping", "{event}");
    assert_eq!(event["rule"], "options.exec_trusted_only", "{event}");

    let made_executable = start(&cgroup, ExecMethod::Mprotect, &own);
    let expected = match blocked_outcome(&daemon) {
        KILLED => ExecOutcome::Exit(0),
        _ => EXEC_EPERM,
    };
    assert_eq!(
        made_executable.outcome, expected,
        "mprotect of a user's build: {made_executable:?}"
    );
    assert_eq!(
        start(&cgroup, ExecMethod::Mprotect, Path::new("/bin/echo")).outcome,
        ExecOutcome::Exit(0),
        "the system's echo made executable"
    );
}

/// A `#!` script run directly is judged as the file exec ran, not only
/// its interpreter: a banned script is stopped, and under trust so is a
/// user's own. BPF LSM judges the script in its own hook; the signal
/// method finds it behind the interpreter (its event says "script").
#[test]
fn a_script_run_directly_is_judged_as_itself() {
    let place = Place::new("scripts");
    let banned = place.script("banned.sh", 0, 0o755);
    let harmless = place.script("harmless.sh", 0, 0o755);
    let home = place.directory("home", NOBODY, 0o755);
    let own = home.script("own.sh", NOBODY, 0o755);
    let ban = format!(
        "[[block]]\nname = \"banned-script\"\nexec_paths = [{:?}]\n",
        banned.display().to_string()
    );

    let cgroup = TestCgroup::new();
    let mut daemon = Daemon::start(&cgroup, &format!("version = 1\n{ban}"));
    let script_trigger = match daemon.status_json()["exec_enforcement"].as_str() {
        Some("signal") => "script",
        _ => "exec",
    };
    let assert_banned = |daemon: &Daemon| {
        let probe = start(&cgroup, ExecMethod::Execve, &banned);
        assert_eq!(probe.outcome, blocked_outcome(daemon), "{probe:?}");
        assert_eq!(probe.stdout, "", "the banned script ran: {probe:?}");
        let event = daemon.expect_event("the banned script", |event| {
            event["kind"] == "exec" && probe.pid.is_some_and(|pid| event["pid"] == pid)
        });
        assert_eq!(event["rule"], "banned-script", "{event}");
        assert_eq!(event["trigger"], script_trigger, "{event}");
    };
    assert_ran(
        &start(&cgroup, ExecMethod::Execve, &harmless),
        "another script",
    );
    assert_banned(&daemon);

    let output = daemon.apply(&format!("{}{ban}", trust_policy("true", &[])));
    assert!(output.status.success(), "{output:?}");
    assert_ran(
        &start(&cgroup, ExecMethod::Execve, &harmless),
        "root's script in a trusted place",
    );
    assert_banned(&daemon);
    assert_untrusted(&daemon, &cgroup, ExecMethod::Execve, &own, "owner");
}

/// A user's own build is refused until the administrator allows its
/// directory; a ban still holds inside what is trusted or allowed.
#[test]
fn an_allowed_directory_is_trusted_and_bans_still_hold() {
    let place = Place::new("allowed");
    let home = place.directory("home", NOBODY, 0o755);
    let own = home.program("own-build", NOBODY, 0o755);
    let system_copy = place.program("echo-copy", 0, 0o755);

    let cgroup = TestCgroup::new();
    let mut daemon = Daemon::start(&cgroup, &trust_policy("true", &[]));
    assert_untrusted(&daemon, &cgroup, ExecMethod::Execve, &own, "owner");

    let output = daemon.apply(&trust_policy("true", &[&home.0]));
    assert!(output.status.success(), "{output:?}");
    assert_ran(
        &start(&cgroup, ExecMethod::Execve, &own),
        "a build in the allowed directory",
    );
    assert_ran(
        &start(&cgroup, ExecMethod::Execve, &system_copy),
        "a root-owned copy in a trusted place",
    );

    let banned = format!(
        "{}[[block]]\nname = \"banned\"\nexec_paths = [{:?}]\n",
        trust_policy("true", &[]),
        system_copy.display().to_string()
    );
    let output = daemon.apply(&banned);
    assert!(output.status.success(), "{output:?}");
    let probe = start(&cgroup, ExecMethod::Execve, &system_copy);
    assert_eq!(probe.outcome, blocked_outcome(&daemon), "{probe:?}");
    let event = daemon.expect_event("the ban", |event| {
        event["kind"] == "exec" && probe.pid.is_some_and(|pid| event["pid"] == pid)
    });
    assert_eq!(event["rule"], "banned", "{event}");
    assert!(event.get("reason").is_none(), "{event}");
}

/// `exec_trusted_only = "audit"` lets an untrusted program run and reports
/// what would have been stopped: how trust is piloted on a group first.
#[test]
fn audit_trust_reports_without_stopping() {
    let place = Place::new("audit");
    let home = place.directory("home", NOBODY, 0o755);
    let own = home.program("own-build", NOBODY, 0o755);

    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, &trust_policy("\"audit\"", &[]));
    let probe = start(&cgroup, ExecMethod::Execve, &own);
    assert_ran(&probe, "an untrusted build under audit");
    let event = untrusted_event(&daemon, &probe, &own);
    assert_eq!(event["verdict"], "audit", "{event}");
    assert_eq!(event["check"], "owner", "{event}");
}

/// The five ways past an exec ban that a user in the enforced cgroup had
/// before trust (issue 18), each tried as `nobody` against a banned
/// program: a copy on `/dev/shm`; a copy hashed with one byte more, then
/// cut back in place with `truncate(2)`; the dynamic loader; a memfd; and
/// a banned `#!` script run directly. With `exec_trusted_only`, none runs.
#[test]
fn with_trust_no_way_around_a_ban_runs_the_banned_program() {
    let place = Place::new("five-ways");
    let banned = place.0.join("banned");
    fs::copy("/bin/echo", &banned).unwrap();
    let script = place.script("banned.sh", 0, 0o755);
    let home = place.directory("home", NOBODY, 0o755);
    let shm = Scratch(Path::new("/dev/shm").join(format!("enforcer-five-{}", std::process::id())));
    let shm = &shm.0;
    let cut_back = home.0.join("cut-back");
    for copy in [shm, &cut_back] {
        let mut bytes = fs::read(&banned).unwrap();
        bytes.push(0);
        fs::write(copy, &bytes).unwrap();
        chown(copy, Some(NOBODY), Some(NOBODY)).unwrap();
        fs::set_permissions(copy, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = CString::new(cut_back.as_os_str().as_bytes()).unwrap();
    let length = fs::metadata(&banned).unwrap().len() as libc::off_t;
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::truncate(path.as_ptr(), length) }, 0);
    assert_eq!(fs::read(&cut_back).unwrap(), fs::read(&banned).unwrap());

    let policy = format!(
        "{}[[block]]\nname = \"banned\"\nexec_paths = {}\n",
        trust_policy("true", &[]),
        serde_json::to_string(&[&banned, &script]).unwrap()
    );
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, &policy);
    let blocked = blocked_outcome(&daemon);
    let run = |method: ExecMethod, path: &Path, args: &[&str]| {
        let probe = exec_probe_as(&cgroup, NOBODY, method, path, args);
        assert_eq!(probe.stdout, "", "{} ran: {probe:?}", path.display());
        probe
    };
    for copy in [shm, &cut_back] {
        let probe = run(ExecMethod::Execve, copy, &[MARKER]);
        assert_eq!(probe.outcome, blocked, "{}: {probe:?}", copy.display());
    }
    let loader = run(
        ExecMethod::Execve,
        Path::new(LOADER),
        &[banned.to_str().unwrap(), MARKER],
    );
    assert!(loader_stopped(&daemon, loader.outcome), "{loader:?}");
    let memfd = run(ExecMethod::Memfd, &banned, &[MARKER]);
    assert_eq!(memfd.outcome, blocked, "{memfd:?}");
    let direct = run(ExecMethod::Execve, &script, &[]);
    assert_eq!(direct.outcome, blocked, "{direct:?}");
    // The banned program itself, as the ban says.
    let itself = run(ExecMethod::Execve, &banned, &[MARKER]);
    assert_eq!(itself.outcome, blocked, "{itself:?}");
}
