//! The cgroup v2 directory each test enforces on and runs its probes in.

use std::{
    fs,
    path::{Path, PathBuf},
    process, thread,
    time::{Duration, Instant},
};

use crate::{
    bpf::{HOOKS, Hook, attached_programs},
    command::enforcer_bin,
    temp::unique_name,
};

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
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "the integration tests load eBPF programs and need root: run `sudo -E cargo xtask test`"
        );
        let root = cgroup2_mount();
        assert_nothing_enforces_on(&root);
        let path = root.join(unique_name());
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

/// Programs on the root cgroup's socket hooks judge every test cgroup too,
/// so their verdicts would pass for the test daemon's: an enforcer left
/// running machine-wide (README's first command stays attached until
/// `unload --confirm`) fails the domain and resilience tests with `EPERM`
/// for the names its own policy lists. Say so, instead of failing there.
fn assert_nothing_enforces_on(root: &Path) {
    let found: Vec<String> = HOOKS
        .iter()
        .chain(&[Hook::Ingress, Hook::Egress])
        .filter_map(|&hook| match attached_programs(root, hook) {
            Ok(0) => None,
            Ok(count) => Some(format!("{count} at {hook:?}")),
            Err(error) => Some(format!("cannot query {hook:?}: {error}")),
        })
        .collect();
    assert!(
        found.is_empty(),
        "BPF programs are attached to the root cgroup {} ({}): they judge the test cgroups as \
         well. Is an enforcer running on the whole machine? `enforcer unload --confirm` \
         detaches it",
        root.display(),
        found.join(", ")
    );
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
