//! fapolicyd as the peer of the exec scenario, in two rule sets: one deny
//! rule for a path the storm never runs and an allow for everything else;
//! and its trust mode, denying whatever its trust database does not hold
//! in the storm's directory, so that every exec of the storm's binary is
//! looked up there. Each is checked before use: the denied path, or an
//! untrusted copy beside the storm's binary, must be refused. fapolicyd answers fanotify permission
//! events for every open and exec on the filesystems it watches, for the
//! whole machine, so the bench restricts it to the filesystem type that
//! holds the storm's binary, and runs it only while it is the scenario
//! being measured. Its configuration files are restored, and the daemon
//! stopped, when the guards are dropped, on every path out.

use std::{
    fs,
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

const CONF: &str = "/etc/fapolicyd/fapolicyd.conf";
const RULES: &str = "/etc/fapolicyd/compiled.rules";
/// The pre-rules.d name; fapolicyd refuses to choose when both exist.
const OLD_RULES: &str = "/etc/fapolicyd/fapolicyd.rules";
const READY: &str = "Starting to listen for events";
/// The file trust database (`trust = file`).
const TRUST: &str = "/etc/fapolicyd/fapolicyd.trust";

/// The rule sets the bench runs fapolicyd with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rules {
    /// Deny executing one path the storm never runs; allow the rest.
    DenyPath,
    /// Deny executing what the trust database does not hold in the
    /// storm's directory; allow the rest. The database holds the storm's
    /// binary.
    Trust,
}

/// The bench's configuration in place of the installed one.
pub(crate) struct Config {
    saved: Vec<(PathBuf, Option<Vec<u8>>)>,
    /// What [`Rules::DenyPath`] denies.
    banned: PathBuf,
    /// The storm's binary, which [`Rules::Trust`] trusts.
    target: PathBuf,
    /// Why the daemon runs as root, when it does.
    pub note: Option<String>,
    user: &'static str,
}

impl Config {
    /// Installs fapolicyd if it is missing and writes the bench's
    /// configuration: deny executing `banned`, allow everything else,
    /// watch only the filesystem type that holds `target`. Then checks
    /// that the daemon starts and denies `banned`. An error says why
    /// fapolicyd cannot run here.
    pub(crate) fn prepare(target: &Path, banned: &Path) -> Result<Self> {
        ensure_installed()?;
        let running = Command::new("pgrep").args(["-x", "fapolicyd"]).output()?;
        if running.status.success() {
            bail!(
                "a fapolicyd is already running here (pid {}); the bench does not touch it",
                String::from_utf8_lossy(&running.stdout).trim()
            );
        }
        let fs_type = fs_type_of(target)?;
        let mut config = Self {
            saved: Vec::new(),
            banned: banned.to_path_buf(),
            target: target.to_path_buf(),
            note: None,
            user: "fapolicyd",
        };
        for file in [CONF, RULES, OLD_RULES, TRUST] {
            config
                .saved
                .push((PathBuf::from(file), fs::read(file).ok()));
        }
        let _ = fs::remove_file(OLD_RULES);
        fs::write(TRUST, trust_entry(target)?).with_context(|| format!("writing {TRUST}"))?;
        config.write_conf(&fs_type)?;
        let first = config.start(Rules::DenyPath);
        let daemon = match first {
            Err(error) if format!("{error:#}").contains("Cannot change to uid") => {
                config.user = "root";
                config.write_conf(&fs_type)?;
                let said = format!("{error:#}");
                let last = said.rsplit(" / ").next().unwrap_or(&said).to_string();
                config.note = Some(format!(
                    "runs as root (uid = root in its configuration): as its packaged user it \
                     exits at start with \"{last}\""
                ));
                config.start(Rules::DenyPath)?
            }
            other => other?,
        };
        expect_denied(daemon, banned)?;
        let untrusted = target.with_file_name("untrusted-copy");
        fs::copy(target, &untrusted)?;
        let daemon = config.start(Rules::Trust)?;
        let trusted = Command::new(target).status();
        if !trusted.as_ref().is_ok_and(|status| status.success()) {
            bail!(
                "fapolicyd denied {}, which its trust database holds ({trusted:?})",
                target.display()
            );
        }
        expect_denied(daemon, &untrusted)?;
        Ok(config)
    }

    /// Starts fapolicyd with `rules`.
    pub(crate) fn start(&self, rules: Rules) -> Result<Fapolicyd> {
        let text = match rules {
            Rules::DenyPath => format!("deny perm=execute all : path={}\n", self.banned.display()),
            Rules::Trust => format!(
                "deny perm=execute all : dir={}/ trust=0\n",
                self.target
                    .parent()
                    .context("the storm's binary has a directory")?
                    .display()
            ),
        };
        fs::write(RULES, format!("{text}allow perm=any all : all\n"))
            .with_context(|| format!("writing {RULES}"))?;
        Fapolicyd::start()
    }

    fn write_conf(&self, fs_type: &str) -> Result<()> {
        let user = self.user;
        fs::write(
            CONF,
            format!(
                "# written by cargo xtask bench; the installed file comes back after it\n\
                 permissive = 0\nnice_val = 14\nq_size = 640\nuid = {user}\ngid = {user}\n\
                 do_stat_report = 0\ndetailed_report = 0\ndb_max_size = 50\n\
                 subj_cache_size = 1549\nobj_cache_size = 8191\nwatch_fs = {fs_type}\n\
                 trust = file\nintegrity = none\n\
                 syslog_format = rule,dec,perm,auid,pid,exe,:,path,ftype,trust\n\
                 rpm_sha256_only = 0\nallow_filesystem_mark = 0\n"
            ),
        )
        .with_context(|| format!("writing {CONF}"))
    }
}

impl Drop for Config {
    fn drop(&mut self) {
        for (file, content) in &self.saved {
            match content {
                Some(content) => {
                    let _ = fs::write(file, content);
                }
                None => {
                    let _ = fs::remove_file(file);
                }
            }
        }
    }
}

/// Fails unless running `path` is refused while `daemon` runs; stops it.
fn expect_denied(daemon: Fapolicyd, path: &Path) -> Result<()> {
    let outcome = Command::new(path).status();
    drop(daemon);
    match outcome {
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
        other => bail!("fapolicyd did not deny {} ({other:?})", path.display()),
    }
}

/// The trust database's line for `path`: path, size and SHA-256.
fn trust_entry(path: &Path) -> Result<String> {
    let size = fs::metadata(path)?.len();
    let output = Command::new("sha256sum").arg(path).output()?;
    let digest = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .map(str::to_string)
        .context("sha256sum printed no digest")?;
    Ok(format!("{} {size} {digest}\n", path.display()))
}

/// A running fapolicyd (in the foreground, `--debug-deny`), stopped when
/// dropped. It also dies with the bench (parent-death signal).
pub(crate) struct Fapolicyd {
    child: Child,
}

impl Fapolicyd {
    fn start() -> Result<Self> {
        let mut command = Command::new("fapolicyd");
        command
            .arg("--debug-deny")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; nothing else runs in the child.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = command.spawn().context("starting fapolicyd")?;
        let stderr = child.stderr.take().context("piped stderr")?;
        let (lines, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            // Read to the end, so fapolicyd never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let mut daemon = Self { child };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut said = Vec::new();
        loop {
            match receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains(READY) => return Ok(daemon),
                Ok(line) => said.push(line),
                Err(_) => {
                    let status = daemon.child.try_wait().ok().flatten();
                    let tail = said.iter().rev().take(4).rev().cloned().collect::<Vec<_>>();
                    daemon.stop();
                    bail!(
                        "fapolicyd did not start listening ({}): {}",
                        status.map_or("still running after 30 s".to_string(), |status| status
                            .to_string()),
                        tail.join(" / ")
                    );
                }
            }
        }
    }

    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        super::daemon::wait_or_kill(&mut self.child, Duration::from_secs(10));
    }
}

impl Drop for Fapolicyd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn ensure_installed() -> Result<()> {
    if Path::new("/usr/sbin/fapolicyd").exists() {
        return Ok(());
    }
    eprintln!("bench: fapolicyd is missing; apt-get install -y fapolicyd");
    // Debian's package starts the service only under systemd; then it
    // runs with the installed rules, and `prepare` leaves it alone.
    crate::build::apt_install("fapolicyd")
}

/// The type of the filesystem mounted where `path` lives (the longest
/// mount point that is a prefix of it).
fn fs_type_of(path: &Path) -> Result<String> {
    let path = path.canonicalize()?;
    crate::mounts::mounts()
        .into_iter()
        .filter(|(mount_point, _)| path.starts_with(mount_point))
        .max_by_key(|(mount_point, _)| mount_point.as_os_str().len())
        .map(|(_, fs_type)| fs_type)
        .context("no mount holds the exec target")
}
