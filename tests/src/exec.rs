//! Exec probes: a fresh `execprobe` process joins a test's cgroup, starts
//! a program one of several ways, and reports what its parent observed.

use std::{
    path::Path,
    process::{Command, Stdio},
};

use crate::{
    bpf::bpf_lsm_expected,
    cgroup::TestCgroup,
    command::{finish, helper_bin},
    daemon::Daemon,
    privilege::RUN_AS_UID,
    timeouts::command_timeout,
};

/// How `execprobe` starts the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecMethod {
    /// fork, then execve(PATH).
    Execve,
    /// open(PATH, O_PATH), fork, then execveat(fd, "", AT_EMPTY_PATH): the
    /// kernel is given a file descriptor, no path.
    ExecveatFd,
    /// posix_spawn(PATH).
    PosixSpawn,
    /// fork, then `/bin/sh -c 'exec "$0" "$@"' PATH ARGS...`: the shell
    /// replaces itself with PATH.
    ShellExec,
    /// fork, then execve(PATH) of a `#!` script.
    Script,
    /// PATH's content copied into a memfd, then execveat(memfd, "",
    /// AT_EMPTY_PATH): a program with no name in any directory.
    Memfd,
    /// No exec: PATH mapped readable, then made executable with
    /// `mprotect`; `Exit(0)` when that worked.
    Mprotect,
}

impl ExecMethod {
    fn arg(self) -> &'static str {
        match self {
            ExecMethod::Execve => "execve",
            ExecMethod::ExecveatFd => "execveat-fd",
            ExecMethod::PosixSpawn => "posix-spawn",
            ExecMethod::ShellExec => "shell-exec",
            ExecMethod::Script => "script",
            ExecMethod::Memfd => "memfd",
            ExecMethod::Mprotect => "mprotect",
        }
    }
}

/// What the parent of an exec'd child observes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecOutcome {
    /// The child ran and exited with this status.
    Exit(i32),
    /// The child was killed by this signal.
    Signal(i32),
    /// The exec itself failed with this errno.
    Errno(i32),
}

/// What the parent sees of an exec the daemon blocks by killing the new
/// image (`exec_enforcement` "signal").
pub const KILLED: ExecOutcome = ExecOutcome::Signal(libc::SIGKILL);
/// What the parent sees of an exec the daemon refuses in a BPF LSM hook
/// (`exec_enforcement` "lsm").
pub const EXEC_EPERM: ExecOutcome = ExecOutcome::Errno(libc::EPERM);
/// What the parent sees of a program that ran and exited 0.
pub const RAN: ExecOutcome = ExecOutcome::Exit(0);

/// The dynamic loader this machine's programs name as their interpreter.
pub const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

/// Whether `outcome` is what the parent of a loader sees when the mapping
/// hook stopped it, for the method `daemon` says it enforces with: killed
/// at the mapping, or, where BPF LSM refused the mapping, the loader's
/// failure to load the program.
pub fn loader_stopped(daemon: &Daemon, outcome: ExecOutcome) -> bool {
    match blocked_outcome(daemon) {
        KILLED => outcome == KILLED,
        _ => matches!(outcome, ExecOutcome::Exit(status) if status != 0),
    }
}

/// What the parent of a blocked exec sees, for the method `daemon` says it
/// enforces exec rules with; on a kernel that runs BPF LSM, that method
/// must be "lsm".
pub fn blocked_outcome(daemon: &Daemon) -> ExecOutcome {
    let status = daemon.status_json();
    if bpf_lsm_expected() {
        assert_eq!(
            status["exec_enforcement"], "lsm",
            "this kernel runs BPF LSM"
        );
    }
    match status["exec_enforcement"].as_str() {
        Some("signal") => KILLED,
        Some("lsm") => EXEC_EPERM,
        _ => panic!("the daemon cannot enforce exec rules here: {status}"),
    }
}

/// A finished `execprobe`.
#[derive(Clone, Debug)]
pub struct ExecProbe {
    /// The `execprobe` process, the parent of the exec'd child.
    pub probe_pid: u32,
    /// The child that exec'd; `None` when posix_spawn failed before making
    /// one.
    pub pid: Option<u32>,
    pub outcome: ExecOutcome,
    /// Everything the child wrote to its stdout.
    pub stdout: String,
}

/// Starts `path` with `args` by `method` from a fresh `execprobe` process
/// inside `cgroup`, and reports what the parent observed.
pub fn exec_probe(
    cgroup: &TestCgroup,
    method: ExecMethod,
    path: impl AsRef<Path>,
    args: &[&str],
) -> ExecProbe {
    run_exec_probe(cgroup, None, method, path.as_ref(), args)
}

/// [`exec_probe`] by a process that has dropped to `uid` inside the cgroup.
pub fn exec_probe_as(
    cgroup: &TestCgroup,
    uid: u32,
    method: ExecMethod,
    path: impl AsRef<Path>,
    args: &[&str],
) -> ExecProbe {
    run_exec_probe(cgroup, Some(uid), method, path.as_ref(), args)
}

fn run_exec_probe(
    cgroup: &TestCgroup,
    uid: Option<u32>,
    method: ExecMethod,
    path: &Path,
    args: &[&str],
) -> ExecProbe {
    let mut command = Command::new(helper_bin("execprobe"));
    if let Some(uid) = uid {
        command.env(RUN_AS_UID, uid.to_string());
    }
    let child = command
        .arg(cgroup.path())
        .arg(method.arg())
        .arg(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start execprobe");
    let probe_pid = child.id();
    let what = format!("execprobe {} {} {args:?}", method.arg(), path.display());
    let output = finish(child, command_timeout(), &what);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let bad = || -> ! {
        panic!(
            "{what} failed ({}): stdout {stdout:?}, stderr {:?}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    };
    if !output.status.success() {
        bad();
    }
    let mut rest = stdout.as_str();
    let mut line = || {
        let (line, tail) = rest.split_once('\n').unwrap_or_else(|| bad());
        rest = tail;
        line
    };
    let mut first = line();
    let pid = match first.strip_prefix("pid ") {
        Some(pid) => {
            first = line();
            Some(pid.parse().unwrap_or_else(|_| bad()))
        }
        None => None,
    };
    let (kind, number) = first.split_once(' ').unwrap_or_else(|| bad());
    let number = number.parse().unwrap_or_else(|_| bad());
    let outcome = match kind {
        "exit" => ExecOutcome::Exit(number),
        "signal" => ExecOutcome::Signal(number),
        "errno" => ExecOutcome::Errno(number),
        _ => bad(),
    };
    let child_stdout = rest.to_owned();
    ExecProbe {
        probe_pid,
        pid,
        outcome,
        stdout: child_stdout,
    }
}
