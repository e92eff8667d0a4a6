//! Running the enforcer binary under test and other commands, with a
//! deadline, and reading what they printed.

use std::{
    env,
    ffi::OsStr,
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crate::timeouts::command_timeout;

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
pub(crate) fn finish(mut child: Child, timeout: Duration, what: &str) -> Output {
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

/// A helper binary of this crate (`netprobe`, `execprobe`). Cargo only
/// tells integration tests where they are (`CARGO_BIN_EXE_<name>` is unset
/// when this library is compiled), so they are found next to the test
/// binary: tests run from `target/<profile>/deps/`, binaries sit in
/// `target/<profile>/`.
pub(crate) fn helper_bin(name: &str) -> PathBuf {
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
