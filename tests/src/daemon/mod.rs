//! The daemon under test: `enforcer run` on a test's cgroup, its events and
//! control socket, and the cleanup that detaches its programs whatever
//! happens to the test.

mod stdout;

use std::{
    ffi::OsStr,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{Arc, Mutex},
    thread::{self, JoinHandle},
    time::Duration,
};

use serde_json::Value;

pub use self::stdout::EventFollower;
use self::stdout::{StdoutLog, parse_event};
use crate::{
    cgroup::TestCgroup,
    command::{enforcer, enforcer_bin, run, wait_timeout},
    temp::{TempDir, unique_name},
    timeouts::{event_timeout, ready_timeout, stop_timeout},
};

/// Why `enforcer run` did not become ready.
#[derive(Debug)]
pub struct StartFailure {
    /// `None` when it was still running at the deadline (it was killed).
    pub status: Option<ExitStatus>,
    pub stdout: Vec<String>,
    pub stderr: String,
}

/// A running `enforcer run`, with its temp dir for policy files and the
/// control socket.
pub struct Daemon {
    /// The enforcer binary it runs, which also unloads it.
    binary: PathBuf,
    child: Option<Child>,
    dir: TempDir,
    socket: PathBuf,
    /// The daemon's bpffs pin directory, removed (which detaches whatever
    /// is still pinned there) when the `Daemon` that made it is dropped. A
    /// daemon started on another's pin dir leaves that to the other.
    pin_dir: PathBuf,
    owns_pins: bool,
    /// Where it stores the policy it enforces.
    state_dir: PathBuf,
    stdout: Arc<StdoutLog>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
    applies: u32,
}

impl Daemon {
    /// Starts the daemon attached to `cgroup` with `policy` (TOML text) and
    /// waits for its ready line; panics with its stderr if it does not come.
    pub fn start(cgroup: &TestCgroup, policy: &str) -> Self {
        Self::start_with(cgroup, policy, &[])
    }

    /// Runs `enforcer run --policy P --cgroup DIR --socket S` and waits up to
    /// [`ready_timeout`] for its first stdout line, which must be
    /// `{"kind":"ready",...}`.
    pub fn try_start(cgroup_dir: &Path, policy: &str) -> Result<Self, StartFailure> {
        Self::try_start_with(cgroup_dir, Some(policy), &[])
    }

    /// [`Daemon::start_with`], and the failure when the daemon does not
    /// start.
    pub fn try_start_with_args(
        cgroup: &TestCgroup,
        policy: &str,
        extra: &[&OsStr],
    ) -> Result<Self, StartFailure> {
        Self::try_start_with(cgroup.path(), Some(policy), extra)
    }

    /// Starts a daemon with no `--policy`, which enforces the policy stored
    /// in this daemon's state dir, on this daemon's pins.
    pub fn start_from_store(&self, cgroup: &TestCgroup) -> Self {
        self.try_start_from_store(cgroup, &[])
            .unwrap_or_else(|failure| {
                panic!(
                    "the daemon did not become ready (status {:?})\nstdout: {:#?}\nstderr:\n{}",
                    failure.status, failure.stdout, failure.stderr
                )
            })
    }

    /// Starts a daemon with `--config FILE` and no `--policy`: the file
    /// names the policy (the harness's own flags still win over it).
    pub fn try_start_with_config(cgroup: &TestCgroup, config: &Path) -> Result<Self, StartFailure> {
        Self::try_start_with(
            cgroup.path(),
            None,
            &[OsStr::new("--config"), config.as_os_str()],
        )
    }

    /// [`Daemon::start_from_store`] with more arguments, and the failure
    /// when the daemon does not start.
    pub fn try_start_from_store(
        &self,
        cgroup: &TestCgroup,
        more: &[&OsStr],
    ) -> Result<Self, StartFailure> {
        let mut extra = vec![
            OsStr::new("--pin-dir"),
            self.pin_dir.as_os_str(),
            OsStr::new("--state-dir"),
            self.state_dir.as_os_str(),
        ];
        extra.extend_from_slice(more);
        Self::try_start_with(cgroup.path(), None, &extra)
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// [`Daemon::start`] with more arguments for `enforcer run`.
    pub fn start_with(cgroup: &TestCgroup, policy: &str, extra: &[&OsStr]) -> Self {
        Self::try_start_with(cgroup.path(), Some(policy), extra).unwrap_or_else(|failure| {
            panic!(
                "the daemon did not become ready (status {:?})\nstdout: {:#?}\nstderr:\n{}",
                failure.status, failure.stdout, failure.stderr
            )
        })
    }

    /// [`Daemon::start_with`] running `binary` instead of `$ENFORCER_BIN`
    /// (a copy of it, say, as an upgrade would install).
    pub fn start_from_binary(
        binary: &Path,
        cgroup: &TestCgroup,
        policy: &str,
        extra: &[&OsStr],
    ) -> Self {
        Self::try_start_from_binary(binary, cgroup.path(), Some(policy), extra).unwrap_or_else(
            |failure| {
                panic!(
                    "the daemon did not become ready (status {:?})\nstdout: {:#?}\nstderr:\n{}",
                    failure.status, failure.stdout, failure.stderr
                )
            },
        )
    }

    fn try_start_with(
        cgroup_dir: &Path,
        policy: Option<&str>,
        extra: &[&OsStr],
    ) -> Result<Self, StartFailure> {
        Self::try_start_from_binary(&enforcer_bin(), cgroup_dir, policy, extra)
    }

    fn try_start_from_binary(
        binary: &Path,
        cgroup_dir: &Path,
        policy: Option<&str>,
        extra: &[&OsStr],
    ) -> Result<Self, StartFailure> {
        let dir = TempDir::new();
        let socket = dir.path().join("control.sock");
        // A test that restarts a daemon passes the first one's pin dir.
        let given = flag_value(extra, "--pin-dir");
        let pin_dir = given
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("/sys/fs/bpf/{}", unique_name())));
        let given_state = flag_value(extra, "--state-dir");
        let state_dir = given_state
            .clone()
            .unwrap_or_else(|| dir.path().join("state"));
        let mut command = Command::new(binary);
        command.arg("run");
        if let Some(policy) = policy {
            command
                .arg("--policy")
                .arg(dir.write("policy.toml", policy));
        }
        command
            .arg("--cgroup")
            .arg(cgroup_dir)
            .arg("--socket")
            .arg(&socket);
        if given.is_none() {
            command.arg("--pin-dir").arg(&pin_dir);
        }
        if given_state.is_none() {
            command.arg("--state-dir").arg(&state_dir);
        }
        let mut child = command
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start $ENFORCER_BIN run");

        let stdout = StdoutLog::collect(child.stdout.take().expect("piped stdout"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("piped stderr");
        let text = Arc::clone(&stderr);
        let stderr_reader = thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut text = text.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });

        let mut daemon = Self {
            binary: binary.to_path_buf(),
            child: Some(child),
            dir,
            socket,
            owns_pins: given.is_none(),
            pin_dir,
            state_dir,
            stdout,
            stderr,
            stderr_reader: Some(stderr_reader),
            applies: 0,
        };
        let first = daemon
            .stdout
            .wait_for(ready_timeout(), |lines| lines.first().cloned());
        let ready = first
            .as_deref()
            .and_then(|line| serde_json::from_str::<Value>(line).ok());
        // Native, or as `--event-format ecs` writes it.
        if ready
            .is_some_and(|ready| ready["kind"] == "ready" || ready["event"]["action"] == "ready")
        {
            return Ok(daemon);
        }
        let status = daemon.terminate().ok();
        Err(StartFailure {
            status,
            stdout: daemon.stdout.lines(),
            stderr: daemon.stderr(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the daemon runs").id()
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's temp dir (policy files, control socket).
    pub fn dir(&self) -> &TempDir {
        &self.dir
    }

    /// What the daemon wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The ready line, parsed.
    pub fn ready(&self) -> Value {
        let lines = self.stdout.lines();
        parse_event(
            lines
                .first()
                .expect("a started daemon printed its ready line"),
        )
    }

    /// Every stdout line after the ready line, parsed. Panics on a line that
    /// is not JSON: the spec says every line is.
    pub fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .iter()
            .skip(1)
            .map(|line| parse_event(line))
            .collect()
    }

    /// The first event (stdout line after the ready line) that satisfies
    /// `predicate`, waiting up to `timeout` for it.
    pub fn wait_for_event(
        &self,
        predicate: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Value> {
        self.stdout.wait_for_event(1, predicate, timeout)
    }

    /// Like [`Self::wait_for_event`] with [`event_timeout`], but panics with
    /// everything the daemon printed when no event matches.
    pub fn expect_event(&self, what: &str, predicate: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_event(predicate, event_timeout())
            .unwrap_or_else(|| {
                panic!(
                    "no event {what} within {:?}\nevents: {:#?}\nstderr:\n{}",
                    event_timeout(),
                    self.events(),
                    self.stderr()
                )
            })
    }

    /// Writes `text` to a new policy file in the daemon's temp dir and runs
    /// `enforcer policy apply FILE --socket S`.
    pub fn apply(&mut self, text: &str) -> Output {
        self.applies += 1;
        let path = self
            .dir
            .write(&format!("apply-{}.toml", self.applies), text);
        self.apply_files(&[&path])
    }

    /// `enforcer policy apply FILE... --socket S`.
    pub fn apply_files(&self, files: &[&Path]) -> Output {
        run(enforcer(["policy", "apply"])
            .args(files)
            .arg("--socket")
            .arg(&self.socket))
    }

    /// `enforcer status --json --socket S`, which must succeed and print one
    /// JSON document.
    pub fn status_json(&self) -> Value {
        let output = run(enforcer(["status", "--json", "--socket"]).arg(&self.socket));
        assert!(
            output.status.success(),
            "enforcer status --json failed ({})\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "enforcer status --json printed no JSON ({error}):\n{}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// Runs `enforcer events --follow --socket S` until the follower is
    /// dropped.
    pub fn follow_events(&self) -> EventFollower {
        let child = enforcer(["events", "--follow", "--socket"])
            .arg(&self.socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start $ENFORCER_BIN events --follow");
        EventFollower::new(child)
    }

    /// Sends SIGTERM and waits for the daemon to exit; panics if it does
    /// not within [`stop_timeout`] (it is then killed).
    /// SIGTERM, and waits for the daemon to exit. Its programs stay
    /// attached through their pins until the `Daemon` is dropped.
    pub fn stop(&mut self) -> ExitStatus {
        let result = self.terminate();
        result.unwrap_or_else(|error| panic!("{error}\nstderr:\n{}", self.stderr()))
    }

    /// SIGKILL, as a crash would; the pins stay until the `Daemon` is
    /// dropped.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("the daemon was already stopped");
        let _ = child.kill();
        let _ = child.wait();
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// `enforcer unload --confirm` against this daemon (and its pin dir),
    /// then waits for the daemon to exit.
    pub fn unload(&mut self) -> Output {
        let output = run(Command::new(&self.binary)
            .args(["unload", "--confirm"])
            .arg("--socket")
            .arg(&self.socket)
            .arg("--pin-dir")
            .arg(&self.pin_dir));
        if let Some(mut child) = self.child.take() {
            if wait_timeout(&mut child, stop_timeout()).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
            if let Some(reader) = self.stderr_reader.take() {
                let _ = reader.join();
            }
        }
        output
    }

    /// SIGTERM, wait up to [`stop_timeout`], then SIGKILL. Waits for the
    /// stderr reader, so [`Self::stderr`] is complete afterwards.
    fn terminate(&mut self) -> Result<ExitStatus, String> {
        let mut child = self.child.take().ok_or("the daemon was already stopped")?;
        let result = match child.try_wait().expect("waiting for the daemon") {
            Some(status) => Ok(status),
            None => {
                // SAFETY: kill has no memory-safety preconditions; the child
                // has not been reaped, so its pid is still its own.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                wait_timeout(&mut child, stop_timeout()).ok_or_else(|| {
                    let _ = child.kill();
                    let _ = child.wait();
                    format!(
                        "the daemon did not exit within {:?} of SIGTERM; killed it",
                        stop_timeout()
                    )
                })
            }
        };
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        result
    }
}

/// Stops the daemon like [`Daemon::stop`], then removes its pin dir, which
/// detaches its programs. A daemon that does not exit 0 on SIGTERM fails
/// the test (unless it is failing already).
impl Drop for Daemon {
    fn drop(&mut self) {
        let _pins = self.owns_pins.then(|| RemovePins {
            binary: self.binary.clone(),
            pin_dir: self.pin_dir.clone(),
        });
        if self.child.is_none() {
            return;
        }
        let result = self.terminate();
        if thread::panicking() {
            eprintln!("--- enforcer daemon stderr ---\n{}", self.stderr());
            if let Err(error) = result {
                eprintln!("warning: {error}");
            }
            return;
        }
        match result {
            Ok(status) if status.success() => {}
            Ok(status) => panic!(
                "the daemon exited with {status} on SIGTERM, not 0\nstderr:\n{}",
                self.stderr()
            ),
            Err(error) => panic!("{error}\nstderr:\n{}", self.stderr()),
        }
    }
}

/// The value after `flag` in `args`, if it is there.
fn flag_value(args: &[&OsStr], flag: &str) -> Option<PathBuf> {
    let at = args.iter().position(|arg| *arg == flag)?;
    args.get(at + 1).map(PathBuf::from)
}

/// Removes a pin directory and everything below it when dropped, even
/// when the test is failing. The enforcer's own `unload` does the removal:
/// where self-protection runs, no other executable may touch the pins.
struct RemovePins {
    binary: PathBuf,
    pin_dir: PathBuf,
}

impl Drop for RemovePins {
    fn drop(&mut self) {
        unload_pins(&self.binary, &self.pin_dir);
        // Nothing there (already unloaded) is the usual case.
        let _ = enforcer::kernel::pins::remove_tree(&self.pin_dir);
    }
}

/// `binary unload --confirm` on the pins under `pin_dir`, with no daemon
/// to ask. Never panics: it runs while tests clean up after failures.
pub fn unload_pins(binary: &Path, pin_dir: &Path) {
    let _ = Command::new(binary)
        .args(["unload", "--confirm", "--socket"])
        .arg(pin_dir.join("no-daemon.sock"))
        .arg("--pin-dir")
        .arg(pin_dir)
        .stdin(Stdio::null())
        .output();
}
