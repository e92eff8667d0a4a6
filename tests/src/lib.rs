//! Harness for enforcer's privileged integration tests.
//!
//! The tests run the real daemon (`$ENFORCER_BIN`, built and set by
//! `cargo xtask test`) as root against the real kernel, each in a cgroup v2
//! directory of its own:
//!
//! - [`TestCgroup`] makes that directory and, on drop (also on panic), kills
//!   whatever is left in it and removes it;
//! - [`Daemon`] runs `enforcer run` attached to it, collects its event lines
//!   and stops it on drop (SIGTERM, then SIGKILL), so programs are detached
//!   whatever happens; a daemon that does not exit 0 on SIGTERM fails the
//!   test;
//! - [`probe`] runs the `netprobe` helper, which joins the cgroup before it
//!   opens its socket (the kernel judges a socket by the cgroup it was
//!   created in) and reports `ok` or the errno of one network operation;
//! - [`exec_probe`] runs the `execprobe` helper, which joins the cgroup and
//!   then starts a program (by `execve`, `execveat` on an fd, `posix_spawn`
//!   or through a shell) and reports what its parent observes: an exit
//!   status, a signal, or the errno of the exec; [`probe_as`] and
//!   [`exec_probe_as`] do the same as an unprivileged uid (see
//!   [`join_cgroup`]);
//! - [`dns_query`] and [`tls_hello`] have `netprobe` send a real DNS query
//!   or TLS ClientHello from inside the cgroup, to a [`dns::DnsServer`] or
//!   a [`TlsListener`] run by the test, and [`command_in`] runs any program
//!   (a real client such as `openssl s_client`) inside the cgroup.
//!
//! Tests only use 127.0.0.2–127.0.0.254 and ::1, and run real listeners so
//! an allowed TCP connect really succeeds.

pub mod bpf;
pub mod dns;
mod serve;
pub mod tls;

use std::{
    env,
    ffi::OsStr,
    fs,
    io::{BufRead, BufReader, Read},
    net::{IpAddr, Ipv4Addr, TcpListener, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::{self, Child, Command, ExitStatus, Output, Stdio},
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use serde_json::Value;

/// How long the daemon may take to print its ready line.
pub fn ready_timeout() -> Duration {
    scaled(20)
}
/// How long an event may take to show up on the daemon's stdout.
pub fn event_timeout() -> Duration {
    scaled(10)
}
/// How long the daemon may take to exit after SIGTERM.
pub fn stop_timeout() -> Duration {
    scaled(10)
}
/// How long a CLI command or a probe may take.
pub fn command_timeout() -> Duration {
    scaled(30)
}

/// `seconds`, times `ENFORCER_TEST_TIME_SCALE` when that is set: on an
/// emulated CPU (`cargo xtask vm-test`) everything takes several times as
/// long, and the verifier most of all.
fn scaled(seconds: u64) -> Duration {
    let scale = env::var("ENFORCER_TEST_TIME_SCALE")
        .ok()
        .and_then(|scale| scale.parse::<u64>().ok())
        .filter(|&scale| scale > 0)
        .unwrap_or(1);
    Duration::from_secs(seconds * scale)
}

/// The enforcer binary under test, from `ENFORCER_BIN`. Panics (never skips)
/// when it is missing, so a plain `cargo test` cannot pass by accident.
pub fn enforcer_bin() -> PathBuf {
    let path = env::var_os("ENFORCER_BIN")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "ENFORCER_BIN is not set. These tests run the real enforcer daemon as root: \
                 run them with `cargo xtask test`, which builds target/debug/enforcer and sets \
                 ENFORCER_BIN (or set it yourself to the absolute path of that binary)."
            )
        });
    assert!(
        path.is_file(),
        "ENFORCER_BIN={} is not a file; run the tests with `cargo xtask test`",
        path.display()
    );
    path
}

/// Whether this kernel must run the BPF LSM programs: `cargo xtask vm-test`
/// sets `ENFORCER_EXPECT_BPF_LSM=1` on the kernels that do, so that a
/// fallback to another method fails there instead of passing quietly.
pub fn bpf_lsm_expected() -> bool {
    env::var_os("ENFORCER_EXPECT_BPF_LSM").is_some_and(|value| value == "1")
}

/// A `Command` for `$ENFORCER_BIN ARGS...`.
pub fn enforcer<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(enforcer_bin());
    command.args(args);
    command
}

/// Runs `command` to completion (at most [`command_timeout`]) and returns
/// its output.
pub fn run(command: &mut Command) -> Output {
    run_within(command, command_timeout())
}

/// Runs `command` to completion, killing it after `timeout`, and returns
/// its output.
pub fn run_within(command: &mut Command, timeout: Duration) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
    finish(child, timeout, &format!("{command:?}"))
}

/// Waits for a child whose stdout and stderr are piped, killing it after
/// `timeout`, and collects its output.
fn finish(mut child: Child, timeout: Duration, what: &str) -> Output {
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    let status = wait_timeout(&mut child, timeout).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} did not finish within {timeout:?}; killed it");
    });
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn read_all(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// Polls `child` until it exits or `timeout` passes.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// `enforcer-test-<pid>-<counter>`: unique among parallel tests and runs.
pub fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "enforcer-test-{}-{}",
        process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The mount point of the cgroup v2 hierarchy, found the daemon's way.
pub fn cgroup2_mount() -> PathBuf {
    enforcer::host::cgroup::cgroup2_mount().unwrap_or_else(|error| panic!("{error}"))
}

/// A cgroup v2 directory of one test. Dropping it kills every process left
/// in it and removes it.
pub struct TestCgroup {
    path: PathBuf,
}

impl TestCgroup {
    pub fn new() -> Self {
        enforcer_bin();
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the integration tests load eBPF programs and need root: run `sudo -E cargo xtask test`"
        );
        let path = cgroup2_mount().join(unique_name());
        fs::create_dir(&path)
            .unwrap_or_else(|error| panic!("cannot create cgroup {}: {error}", path.display()));
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The processes in this cgroup.
    pub fn procs(&self) -> Vec<i32> {
        fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }
}

impl Default for TestCgroup {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let procs = self.procs();
            if procs.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "warning: processes {procs:?} are still in {}",
                    self.path.display()
                );
                break;
            }
            for pid in procs {
                // The test process itself never joins a test cgroup.
                if pid != process::id() as i32 {
                    // SAFETY: kill has no memory-safety preconditions.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            thread::sleep(Duration::from_millis(10));
        }
        // A killed task may take a moment to leave: rmdir says EBUSY until then.
        loop {
            match fs::remove_dir(&self.path) {
                Ok(()) => break,
                Err(error)
                    if error.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                {
                    thread::sleep(Duration::from_millis(10));
                }
                Err(error) => {
                    eprintln!(
                        "warning: cannot remove cgroup {}: {error}",
                        self.path.display()
                    );
                    break;
                }
            }
        }
    }
}

/// A temporary directory, removed with its contents on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> Self {
        let path = env::temp_dir().join(unique_name());
        fs::create_dir(&path)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `name` in the directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path.join(name);
        fs::write(&path, contents)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        path
    }

    /// Copies `source` (with its permissions) to `name` in the directory,
    /// which may name subdirectories (made as needed), and returns its path.
    /// The copy is a file of its own: a new inode.
    pub fn copy(&self, name: &str, source: impl AsRef<Path>) -> PathBuf {
        let source = source.as_ref();
        let path = self.path.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|error| panic!("cannot create {}: {error}", parent.display()));
        }
        fs::copy(source, &path).unwrap_or_else(|error| {
            panic!(
                "cannot copy {} to {}: {error}",
                source.display(),
                path.display()
            )
        });
        path
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The daemon's stdout, line by line, as its reader thread sees it.
#[derive(Default)]
struct Stdout {
    lines: Vec<String>,
    closed: bool,
}

#[derive(Default)]
struct StdoutLog {
    state: Mutex<Stdout>,
    changed: Condvar,
}

impl StdoutLog {
    /// Collects the lines of `pipe` on a thread of their own.
    fn collect(pipe: impl Read + Send + 'static) -> Arc<Self> {
        let log = Arc::new(Self::default());
        let writer = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                writer.state.lock().unwrap().lines.push(line);
                writer.changed.notify_all();
            }
            writer.state.lock().unwrap().closed = true;
            writer.changed.notify_all();
        });
        log
    }

    /// The first line from the `skip`th on that parses as JSON satisfying
    /// `predicate`, waiting up to `timeout` for it.
    fn wait_for_event(
        &self,
        skip: usize,
        predicate: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Value> {
        self.wait_for(timeout, |lines| {
            lines
                .iter()
                .skip(skip)
                .map(|line| parse_event(line))
                .find(|event| predicate(event))
        })
    }

    /// Waits until `found` returns `Some` for the lines so far, the stream
    /// closes, or `timeout` passes.
    fn wait_for<T>(
        &self,
        timeout: Duration,
        mut found: impl FnMut(&[String]) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap();
        loop {
            if let Some(result) = found(&state.lines) {
                return Some(result);
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                return None;
            }
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
    }

    fn lines(&self) -> Vec<String> {
        self.state.lock().unwrap().lines.clone()
    }
}

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
        if ready.is_some_and(|ready| ready["kind"] == "ready") {
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
        let mut child = enforcer(["events", "--follow", "--socket"])
            .arg(&self.socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start $ENFORCER_BIN events --follow");
        let stdout = StdoutLog::collect(child.stdout.take().expect("piped stdout"));
        EventFollower { child, stdout }
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

/// A running `enforcer events --follow`, killed on drop.
pub struct EventFollower {
    child: Child,
    stdout: Arc<StdoutLog>,
}

impl EventFollower {
    /// The first event line that satisfies `predicate`, waiting up to
    /// `timeout` for it.
    pub fn wait_for_event(
        &self,
        predicate: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Value> {
        self.stdout.wait_for_event(0, predicate, timeout)
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.stdout.lines()
    }
}

impl Drop for EventFollower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_event(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|error| {
        panic!("the daemon printed a stdout line that is not JSON ({error}): {line}")
    })
}

/// One network operation of `netprobe`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    TcpConnect,
    UdpConnect,
    /// sendto() on an unconnected UDP socket.
    UdpSendto,
    /// sendto(MSG_FASTOPEN) on a TCP socket: a connect without connect().
    TcpFastOpen,
}

impl Op {
    fn arg(self) -> &'static str {
        match self {
            Op::TcpConnect => "tcp-connect",
            Op::UdpConnect => "udp-connect",
            Op::UdpSendto => "udp-sendto",
            Op::TcpFastOpen => "tcp-fastopen",
        }
    }
}

/// What one network operation returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Errno(i32),
}

/// What a blocked connect() or sendto() returns.
pub const EPERM: Outcome = Outcome::Errno(libc::EPERM);

/// A finished probe: its outcome and the pid of the `netprobe` process,
/// which events should name.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    pub pid: u32,
    pub outcome: Outcome,
}

/// Set for `netprobe` and `execprobe` to a uid: after joining the cgroup,
/// which takes root, they drop to that uid (and the same gid, with no
/// supplementary groups) before they act, as an unprivileged user would.
const RUN_AS_UID: &str = "ENFORCER_PROBE_UID";

/// The uid of `nobody`, for probes that must show enforcement holds for
/// an unprivileged user.
pub const NOBODY: u32 = 65534;

/// What `netprobe` and `execprobe` do first: move themselves into
/// `cgroup` ("0" moves the writing process), then drop to the uid in
/// [`RUN_AS_UID`] if it is set.
pub fn join_cgroup(cgroup: &Path) -> Result<(), String> {
    let procs = cgroup.join("cgroup.procs");
    fs::write(&procs, "0").map_err(|error| format!("cannot join {}: {error}", procs.display()))?;
    let Some(uid) = env::var_os(RUN_AS_UID) else {
        return Ok(());
    };
    let uid: u32 = uid
        .to_str()
        .and_then(|uid| uid.parse().ok())
        .ok_or_else(|| format!("{RUN_AS_UID}={uid:?} is not a uid"))?;
    // SAFETY: plain syscalls on this process's own credentials; groups
    // first, while it still may change them.
    let dropped = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setresgid(uid, uid, uid) == 0
            && libc::setresuid(uid, uid, uid) == 0
    };
    if !dropped {
        return Err(format!(
            "cannot drop to uid {uid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Runs `op` to `addr`:`port` from a fresh `netprobe` process inside
/// `cgroup`. An IPv6 `addr` (including an IPv4-mapped one, see [`mapped`])
/// gets an AF_INET6 socket, an IPv4 one an AF_INET socket.
pub fn probe(cgroup: &TestCgroup, op: Op, addr: impl Into<IpAddr>, port: u16) -> Outcome {
    run_probe(cgroup, op, addr, port).outcome
}

/// [`probe`], also returning the pid of the process that made the socket.
pub fn run_probe(cgroup: &TestCgroup, op: Op, addr: impl Into<IpAddr>, port: u16) -> Probe {
    socket_probe(cgroup, None, op, addr.into(), port)
}

/// [`probe`] by a process that has dropped to `uid` inside the cgroup.
pub fn probe_as(
    cgroup: &TestCgroup,
    uid: u32,
    op: Op,
    addr: impl Into<IpAddr>,
    port: u16,
) -> Outcome {
    socket_probe(cgroup, Some(uid), op, addr.into(), port).outcome
}

fn socket_probe(cgroup: &TestCgroup, uid: Option<u32>, op: Op, addr: IpAddr, port: u16) -> Probe {
    let args = [op.arg().to_owned(), addr.to_string(), port.to_string()];
    let (pid, line) = run_netprobe(cgroup, &args, uid);
    let outcome = outcome(&line, "ok")
        .unwrap_or_else(|| panic!("netprobe {} printed {line:?}", args.join(" ")));
    Probe { pid, outcome }
}

/// A `netprobe` that has done its operation and stays alive until this is
/// dropped, so that what is read of it later (its parent, from `/proc`)
/// is still there.
pub struct HeldProbe {
    child: Child,
    pub probe: Probe,
}

/// [`run_probe`], with the process held alive; see [`HeldProbe`].
pub fn held_probe(cgroup: &TestCgroup, op: Op, addr: impl Into<IpAddr>, port: u16) -> HeldProbe {
    let mut child = Command::new(netprobe_bin())
        .arg(cgroup.path())
        .args([
            op.arg().to_owned(),
            addr.into().to_string(),
            port.to_string(),
        ])
        .env("NETPROBE_HOLD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot start netprobe");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("reading netprobe's line");
    let outcome =
        outcome(line.trim(), "ok").unwrap_or_else(|| panic!("netprobe {op:?} printed {line:?}"));
    HeldProbe {
        probe: Probe {
            pid: child.id(),
            outcome,
        },
        child,
    }
}

impl Drop for HeldProbe {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// What `netprobe dns-query` saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsOutcome {
    /// A reply with rcode 0, and its answer records as `TYPE=VALUE`:
    /// `A=192.0.2.7`, `AAAA=::1`, `CNAME=b.example.`; empty for an empty
    /// answer section.
    Answer(Vec<String>),
    /// A reply with this non-zero rcode (3 is NXDOMAIN).
    Rcode(u16),
    /// Sending the query (over TCP, also connecting) failed with this
    /// errno.
    Errno(i32),
    /// No reply within 2 seconds.
    Timeout,
    /// Over TCP: the server closed the connection before a whole reply.
    Closed,
    /// A reply came that is no DNS message.
    Malformed,
}

/// Sends one DNS query (recursion desired, random id) for `name` and
/// `qtype` (`A`, `AAAA`, another type's name or a number) to `server`:53
/// over `transport`, from a fresh `netprobe` process inside `cgroup`, and
/// reports the first reply. An IPv6 `server` (such as a [`mapped`] one)
/// gets an AF_INET6 socket.
pub fn dns_query(
    cgroup: &TestCgroup,
    transport: dns::Transport,
    server: impl Into<IpAddr>,
    name: &str,
    qtype: &str,
) -> DnsOutcome {
    let args = [
        "dns-query".to_owned(),
        transport.arg().to_owned(),
        server.into().to_string(),
        name.to_owned(),
        qtype.to_owned(),
    ];
    let (_, line) = run_netprobe(cgroup, &args, None);
    dns_outcome(&line).unwrap_or_else(|| panic!("netprobe {} printed {line:?}", args.join(" ")))
}

/// Asks `server` for the A records of `N.SUFFIX` for each N in `names`,
/// from one `netprobe` in `cgroup`, and returns how many were answered.
pub fn dns_flood(
    cgroup: &TestCgroup,
    server: Ipv4Addr,
    suffix: &str,
    names: std::ops::Range<u32>,
) -> u32 {
    let args = [
        "dns-flood".to_owned(),
        server.to_string(),
        suffix.to_owned(),
        names.start.to_string(),
        names.len().to_string(),
    ];
    let (_, line) = run_netprobe(cgroup, &args, None);
    line.strip_prefix("answered ")
        .and_then(|answered| answered.parse().ok())
        .unwrap_or_else(|| panic!("netprobe {} printed {line:?}", args.join(" ")))
}

fn dns_outcome(line: &str) -> Option<DnsOutcome> {
    Some(match line.split_once(' ').unwrap_or((line, "")) {
        ("answer", records) => {
            DnsOutcome::Answer(records.split_whitespace().map(str::to_owned).collect())
        }
        ("rcode", rcode) => DnsOutcome::Rcode(rcode.parse().ok()?),
        ("errno", errno) => DnsOutcome::Errno(errno.parse().ok()?),
        ("timeout", "") => DnsOutcome::Timeout,
        ("closed", "") => DnsOutcome::Closed,
        ("malformed", "") => DnsOutcome::Malformed,
        _ => return None,
    })
}

/// Connects to `addr`:`port` from a fresh `netprobe` process inside
/// `cgroup` and sends a TLS ClientHello naming `sni` ([`tls::client_hello`]).
/// [`Outcome::Ok`] says only that the write succeeded: the kernel may still
/// drop the segment, so ask the [`TlsListener`] what arrived.
pub fn tls_hello(cgroup: &TestCgroup, addr: impl Into<IpAddr>, port: u16, sni: &str) -> Outcome {
    let args = [
        "tls-hello".to_owned(),
        addr.into().to_string(),
        port.to_string(),
        sni.to_owned(),
    ];
    let (_, line) = run_netprobe(cgroup, &args, None);
    outcome(&line, "sent").unwrap_or_else(|| panic!("netprobe {} printed {line:?}", args.join(" ")))
}

/// A `Command` that runs `program` inside `cgroup`: `netprobe CGROUP exec
/// PROGRAM`, to which the caller adds the program's arguments. For real
/// clients such as `openssl s_client`.
pub fn command_in(cgroup: &TestCgroup, program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(netprobe_bin());
    command.arg(cgroup.path()).arg("exec").arg(program);
    command
}

/// [`Outcome::Ok`] for the line `success`, [`Outcome::Errno`] for
/// `errno N`.
fn outcome(line: &str, success: &str) -> Option<Outcome> {
    match line.split_once(' ') {
        None if line == success => Some(Outcome::Ok),
        Some(("errno", errno)) => errno.parse().ok().map(Outcome::Errno),
        _ => None,
    }
}

/// Runs `netprobe CGROUP ARGS...` (as `uid`, when given) and returns its
/// pid and the line it printed; panics, with what it wrote, unless it
/// exited 0.
fn run_netprobe(cgroup: &TestCgroup, args: &[String], uid: Option<u32>) -> (u32, String) {
    let mut command = Command::new(netprobe_bin());
    if let Some(uid) = uid {
        command.env(RUN_AS_UID, uid.to_string());
    }
    let child = command
        .arg(cgroup.path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start netprobe");
    let pid = child.id();
    let what = format!("netprobe {}", args.join(" "));
    let output = finish(child, command_timeout(), &what);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{what} failed ({}): stdout {stdout:?}, stderr {:?}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    (pid, stdout.trim().to_owned())
}

/// The `netprobe` helper of this crate. Cargo only tells integration tests
/// where it is (`CARGO_BIN_EXE_netprobe` is unset when this library is
/// compiled), so it is found next to the test binary: tests run from
/// `target/<profile>/deps/`, binaries sit in `target/<profile>/`.
fn netprobe_bin() -> PathBuf {
    helper_bin("netprobe")
}

/// A helper binary of this crate, found like [`netprobe_bin`].
fn helper_bin(name: &str) -> PathBuf {
    let exe = env::current_exe().expect("the test binary's path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing; `cargo test -p enforcer-integration-tests` builds it",
        path.display()
    );
    path
}

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

/// `::ffff:a.b.c.d`, which `netprobe` uses on an AF_INET6 socket.
pub fn mapped(addr: Ipv4Addr) -> IpAddr {
    IpAddr::V6(addr.to_ipv6_mapped())
}

/// A TCP listener on `addr` and a free port, run by the test process (outside
/// the test cgroup), so an allowed connect succeeds. The kernel completes
/// the handshake from the backlog; nothing needs to accept.
pub fn tcp_listener(addr: impl Into<IpAddr>) -> (TcpListener, u16) {
    let addr = addr.into();
    let listener = TcpListener::bind((addr, 0))
        .unwrap_or_else(|error| panic!("cannot listen on {addr}: {error}"));
    let port = listener.local_addr().expect("listener address").port();
    (listener, port)
}

/// A TCP listener on `addr` and a free port, run by the test process, that
/// accepts every connection and records the bytes each one delivers, so a
/// test can tell whether a ClientHello got through. It never answers: it
/// closes a connection once the client has closed its side, or has sent
/// something and then been quiet for [`TLS_QUIET`] (a real client would
/// wait for the ServerHello forever). It stops on drop.
pub struct TlsListener {
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Stopped and joined on drop.
    _threads: serve::Threads,
}

/// How long a [`TlsListener`] connection that delivered bytes may be quiet
/// before the listener closes it.
pub const TLS_QUIET: Duration = Duration::from_millis(250);

/// A [`TlsListener`] on `addr` and a free port.
pub fn tls_listener(addr: impl Into<IpAddr>) -> (TlsListener, u16) {
    let (listener, port) = tcp_listener(addr);
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&received);
    let mut threads = serve::Threads::new();
    threads.spawn(move |stop| {
        serve::accept_until(&listener, stop, |stream| {
            record_connection(stream, &log, stop)
        });
    });
    let listener = TlsListener {
        received,
        _threads: threads,
    };
    (listener, port)
}

/// Appends what `stream` delivers to an entry of its own in `log`, until
/// the client closes it, goes quiet (see [`TlsListener`]) or the listener
/// stops; then closes it.
fn record_connection(mut stream: TcpStream, log: &Mutex<Vec<Vec<u8>>>, stop: &AtomicBool) {
    let index = {
        let mut log = log.lock().unwrap();
        log.push(Vec::new());
        log.len() - 1
    };
    let mut buffer = [0; 4096];
    let mut last_bytes = None;
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return,
            Ok(read) => {
                log.lock().unwrap()[index].extend_from_slice(&buffer[..read]);
                last_bytes = Some(Instant::now());
            }
            Err(error) if serve::is_timeout(&error) => {
                let quiet = last_bytes.is_some_and(|last| last.elapsed() >= TLS_QUIET);
                if quiet || stop.load(Ordering::Relaxed) {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

impl TlsListener {
    /// The bytes each connection delivered so far, in the order they were
    /// accepted.
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.received.lock().unwrap().clone()
    }

    /// Whether a connection delivers a byte within `timeout`.
    pub fn received_client_hello(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.received().iter().any(|bytes| !bytes.is_empty()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A UDP socket bound on `addr` and a free port, as a receiver for allowed
/// datagrams.
pub fn udp_receiver(addr: impl Into<IpAddr>) -> (UdpSocket, u16) {
    let addr = addr.into();
    let socket = UdpSocket::bind((addr, 0))
        .unwrap_or_else(|error| panic!("cannot bind UDP on {addr}: {error}"));
    let port = socket.local_addr().expect("socket address").port();
    (socket, port)
}

/// Waits up to `timeout` for a datagram on `socket`.
pub fn received_datagram(socket: &UdpSocket, timeout: Duration) -> bool {
    socket
        .set_read_timeout(Some(timeout))
        .expect("setting a read timeout");
    let mut buffer = [0; 64];
    socket.recv_from(&mut buffer).is_ok()
}

/// stderr of a finished command, line by line.
pub fn stderr_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Panics unless `output` exited with `code`, showing its stdout and stderr.
pub fn assert_exit_code(output: &Output, code: i32, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: expected exit code {code}, got {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
