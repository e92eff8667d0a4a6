//! The enforcer daemon as the bench runs it: started on a cgroup with a
//! policy, and unloaded when dropped.

use std::{
    ffi::OsStr,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc::{self, Receiver},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// An enforcer attached to the bench cgroup; its event lines arrive on the
/// receiver. Unloaded when dropped, as an administrator would.
pub(crate) struct Daemon {
    child: Child,
    enforcer: PathBuf,
    socket: PathBuf,
    pin_dir: PathBuf,
    /// From spawning the daemon to its `ready` line.
    pub ready_in: Duration,
}

impl Daemon {
    pub(crate) fn start(
        enforcer: &Path,
        work: &Path,
        cgroup: &Path,
        policy_file: &Path,
        extra: &[&OsStr],
    ) -> Result<(Self, Receiver<String>)> {
        let pin_dir = PathBuf::from(format!("/sys/fs/bpf/enforcer-bench-{}", std::process::id()));
        let socket = work.join("control.sock");
        let started = Instant::now();
        let mut child = Command::new(enforcer)
            .args(["run", "--policy"])
            .arg(policy_file)
            .arg("--cgroup")
            .arg(cgroup)
            .arg("--socket")
            .arg(&socket)
            .arg("--pin-dir")
            .arg(&pin_dir)
            // The bench's own stored policy, not the machine's.
            .arg("--state-dir")
            .arg(work.join("state"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the enforcer")?;
        let mut stdout = BufReader::new(child.stdout.take().context("piped stdout")?);
        let mut first = String::new();
        stdout.read_line(&mut first)?;
        if !first.contains(r#""kind":"ready""#) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the enforcer did not become ready: {first}");
        }
        let ready_in = started.elapsed();
        // Keep reading, so the daemon never blocks on a full pipe.
        let (lines, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let daemon = Self {
            child,
            enforcer: enforcer.to_path_buf(),
            socket,
            pin_dir,
            ready_in,
        };
        Ok((daemon, receiver))
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// `enforcer status --json`.
    pub(crate) fn status(&self) -> Result<Value> {
        let output = Command::new(&self.enforcer)
            .args(["status", "--json", "--socket"])
            .arg(&self.socket)
            .output()?;
        if !output.status.success() {
            bail!("status: {}", String::from_utf8_lossy(&output.stderr));
        }
        serde_json::from_slice(&output.stdout).context("status --json output")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // `unload` stops the daemon, or removes its pins when it is gone.
        let _ = Command::new(&self.enforcer)
            .args(["unload", "--confirm", "--socket"])
            .arg(&self.socket)
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .stdout(Stdio::null())
            .status();
        wait_or_kill(&mut self.child, Duration::from_secs(10));
    }
}

/// Waits up to `timeout` for `child` to exit, then kills it.
pub(crate) fn wait_or_kill(child: &mut Child, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
