//! nftables as the peer of the network scenarios: an `inet` table with
//! interval sets of the same CIDRs as the enforcer's policy, and, only
//! while nftables is the scenario being measured, an output chain that
//! rejects those destinations for sockets of one cgroup
//! (`socket cgroupv2 level N "PATH"`). The table is removed when this is
//! dropped, whatever happened in between.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use super::cidrs::Prefixes;

pub(crate) struct NftTable {
    name: String,
    /// The cgroup's path as nft resolves it (below `/sys/fs/cgroup`), and
    /// its level in the cgroup v2 hierarchy.
    cgroup: String,
    level: usize,
    chain: bool,
}

/// How loading the sets went.
pub(crate) struct Loaded {
    pub seconds: f64,
    /// Peak RSS of the `nft` process that loaded them.
    pub peak_rss_kib: u64,
}

/// Installs nftables with apt-get when `nft` is missing.
pub(crate) fn ensure_installed() -> Result<()> {
    if Command::new("nft")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
    {
        return Ok(());
    }
    eprintln!("bench: nft is missing; apt-get install -y nftables");
    crate::build::apt_install("nftables")
}

/// Removes tables that earlier bench runs left behind (their process is
/// gone), so a killed run does not leave rules for the next one to trip.
pub(crate) fn remove_stale() {
    let Ok(output) = Command::new("nft").args(["list", "tables"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some(pid) = line.strip_prefix("table inet enforcer_bench_") else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("nft")
                .args(["delete", "table", "inet", &format!("enforcer_bench_{pid}")])
                .status();
        }
    }
}

impl NftTable {
    /// Loads the sets for `prefixes` (through an `nft -f` file) and
    /// prepares the rule for `cgroup`. Gives up after `timeout`.
    pub(crate) fn load(
        work: &Path,
        prefixes: &Prefixes,
        cgroup: &Path,
        timeout: Duration,
    ) -> Result<(Self, Loaded)> {
        let (path, level) = nft_cgroup_path(cgroup)?;
        let name = format!("enforcer_bench_{}", std::process::id());
        let file = work.join(format!("nft-{}.nft", prefixes.len()));
        prefixes.write_nft(&file, &name)?;
        // From here on the table may exist: the guard removes it.
        let table = Self {
            name,
            cgroup: path,
            level,
            chain: false,
        };
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &table.name])
            .stderr(Stdio::null())
            .status();
        let started = Instant::now();
        let mut child = Command::new("nft")
            .arg("-f")
            .arg(&file)
            .stderr(Stdio::piped())
            .spawn()
            .context("running nft")?;
        // wait4, not Child::wait: it gives this child's own peak RSS.
        let pid = child.id() as libc::pid_t;
        // SAFETY: zeroed rusage is a valid out-parameter.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let mut raw_status = 0;
        loop {
            // SAFETY: polling our own child; the out-parameters are valid.
            let waited = unsafe { libc::wait4(pid, &mut raw_status, libc::WNOHANG, &mut usage) };
            if waited == pid {
                break;
            }
            if waited < 0 {
                bail!("waiting for nft: {}", std::io::Error::last_os_error());
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "nft -f did not load {} elements within {} s",
                    prefixes.len(),
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let seconds = started.elapsed().as_secs_f64();
        let peak_rss_kib = usage.ru_maxrss as u64;
        let success = libc::WIFEXITED(raw_status) && libc::WEXITSTATUS(raw_status) == 0;
        if !success {
            let mut error = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                use std::io::Read as _;
                let _ = stderr.read_to_string(&mut error);
            }
            bail!(
                "nft -f {} failed: {}",
                file.display(),
                error.lines().take(3).collect::<Vec<_>>().join(" / ")
            );
        }
        Ok((
            table,
            Loaded {
                seconds,
                peak_rss_kib,
            },
        ))
    }

    /// Adds the output chain and its rules: nftables now enforces.
    pub(crate) fn enable(&mut self) -> Result<()> {
        let (table, cgroup, level) = (&self.name, &self.cgroup, self.level);
        self.chain = true;
        nft_script(&format!(
            "add chain inet {table} out {{ type filter hook output priority 0; policy accept; }}\n\
             add rule inet {table} out socket cgroupv2 level {level} \"{cgroup}\" ip daddr @v4 reject\n\
             add rule inet {table} out socket cgroupv2 level {level} \"{cgroup}\" ip6 daddr @v6 reject\n"
        ))
    }

    /// Removes the chain (the sets stay): no netfilter hook of ours runs.
    pub(crate) fn disable(&mut self) -> Result<()> {
        if !self.chain {
            return Ok(());
        }
        let table = &self.name;
        nft_script(&format!(
            "flush chain inet {table} out\ndelete chain inet {table} out\n"
        ))?;
        self.chain = false;
        Ok(())
    }
}

impl Drop for NftTable {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.name])
            .status();
    }
}

fn nft_script(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft")?;
    {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .context("nft stdin")?
            .write_all(script.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "nft refused:\n{script}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// nft names a cgroup by its path below `/sys/fs/cgroup` (it stats that
/// path for the cgroup's id), and `level` counts from the root of the v2
/// hierarchy, wherever that is mounted (`/sys/fs/cgroup/unified` on a
/// hybrid host).
fn nft_cgroup_path(cgroup: &Path) -> Result<(String, usize)> {
    let mount = crate::mounts::cgroup2_mount().context("no cgroup v2 hierarchy")?;
    let level = cgroup
        .strip_prefix(&mount)
        .context("the bench cgroup is outside the cgroup v2 mount")?
        .components()
        .count();
    let below = cgroup.strip_prefix("/sys/fs/cgroup").with_context(|| {
        format!(
            "nft resolves cgroup paths below /sys/fs/cgroup, and the cgroup v2 hierarchy is \
             mounted at {}",
            mount.display()
        )
    })?;
    Ok((below.display().to_string(), level))
}
