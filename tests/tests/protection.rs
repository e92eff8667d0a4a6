//! Self-protection. Where the kernel runs BPF LSM programs (the VM kernels
//! of `cargo xtask vm-test`), this test process, which is not the
//! enforcer's executable, tries every way around the enforcer that the
//! guard covers: each must fail with EPERM and be reported as a `tamper`
//! event, while `enforcer unload --confirm` still works. Where the guard
//! cannot run, `status` must say so, and why.

use std::{
    ffi::CString,
    fs, io,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use enforcer_integration_tests::{
    bpf::{self, HOOKS, Object, bpf_lsm_expected},
    cgroup::TestCgroup,
    command::enforcer_bin,
    daemon::{Daemon, unload_pins},
    temp::TempDir,
    timeouts::event_timeout,
};

const POLICY: &str = r#"
version = 1
[[block]]
name = "documentation"
cidrs = ["192.0.2.0/24"]
"#;

#[test]
fn only_the_enforcer_may_touch_its_objects_pins_and_daemon() {
    let bpffs = PrivateBpfFs::mount(enforcer_bin());
    let cgroup = TestCgroup::new();
    let mut daemon = Daemon::start_with(
        &cgroup,
        POLICY,
        &["--pin-dir".as_ref(), bpffs.pin_dir().as_os_str()],
    );
    if !self_protection_runs(&daemon) {
        return;
    }
    let instance = only_instance(
        &bpffs
            .pin_dir()
            .join(format!("v{}", enforcer::kernel::pins::PIN_LAYOUT)),
    );

    let pin = fs::read_dir(&instance).map(drop);
    assert_refused(pin, "listing the instance directory");
    let unpin = fs::remove_file(instance.join("links").join("connect4"));
    assert_refused(unpin, "unpinning a link");

    let attached = bpf::attached_program_ids(cgroup.path(), HOOKS[0]).unwrap();
    assert_eq!(attached.len(), 1, "one connect4 program on the test cgroup");
    let program = bpf::open_by_id(Object::Program, attached[0]).map(drop);
    assert_refused(program, "opening the connect4 program by id");

    let refused_links = refused_by_id(Object::Link);
    let programs = daemon.status_json()["programs"].as_array().unwrap().len();
    assert!(
        refused_links >= programs,
        "each of the {programs} links is refused by id, {refused_links} were"
    );
    assert!(refused_by_id(Object::Map) > 0, "the maps are refused by id");

    let signal = signal_from_a_stranger(daemon.pid(), libc::SIGTERM);
    assert_refused(
        signal,
        "SIGTERM from a process that did not start the daemon",
    );
    assert!(
        daemon.status_json()["generation"].is_u64(),
        "the daemon still answers"
    );
    assert_refused(steal_descriptor(daemon.pid()), "pidfd_getfd on the daemon");
    assert_refused(bpffs.unmount(), "unmounting the pin filesystem");

    for attempt in [
        "pin", "program", "link", "map", "signal", "ptrace", "unmount",
    ] {
        let event = daemon.expect_event(&format!("a tamper event for {attempt}"), |event| {
            event["kind"] == "tamper" && event["attempt"] == attempt
        });
        assert!(event["pid"].as_u64().unwrap() > 0, "{event}");
        assert!(!event["comm"].as_str().unwrap().is_empty(), "{event}");
    }
    let refused = daemon.status_json()["counters"]["tamper_refused"]
        .as_u64()
        .unwrap();
    assert!(refused >= 7, "status counts the refusals: {refused}");

    let unload = daemon.unload();
    assert!(
        unload.status.success(),
        "the enforcer's own unload still works: {}",
        String::from_utf8_lossy(&unload.stderr)
    );
    assert!(!instance.exists(), "unload removed the pins it guarded");
    // Links are released by a kernel worker after their last pin goes, so
    // the guard can outlive the unload by a moment.
    let deadline = Instant::now() + event_timeout();
    while let Err(error) = bpffs.unmount() {
        assert!(
            Instant::now() < deadline,
            "with the guard gone, the pin filesystem unmounts: {error}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_daemon_replaced_on_disk_hands_its_pins_to_the_new_binary() {
    // Dropped last: the cleanup runs the installed binary.
    let binaries = TempDir::new();
    let installed = binaries.copy("enforcer", enforcer_bin());
    let bpffs = PrivateBpfFs::mount(installed.clone());
    let cgroup = TestCgroup::new();
    let mut first = Daemon::start_from_binary(
        &installed,
        &cgroup,
        POLICY,
        &["--pin-dir".as_ref(), bpffs.pin_dir().as_os_str()],
    );
    if !self_protection_runs(&first) {
        return;
    }
    // An upgrade writes a new file and renames it over the old one.
    let upgrade = binaries.copy("enforcer.new", &installed);
    fs::rename(&upgrade, &installed).unwrap();
    first.stop();

    let second = Daemon::start_from_binary(
        &installed,
        &cgroup,
        POLICY,
        &["--pin-dir".as_ref(), bpffs.pin_dir().as_os_str()],
    );
    let takeover = second.expect_event("a takeover event", |event| event["kind"] == "takeover");
    assert_eq!(
        takeover["problems"].as_array().map(Vec::len),
        Some(0),
        "the upgraded binary took over the guarded pins: {takeover}"
    );
    assert_eq!(
        fs::read_dir(
            bpffs
                .pin_dir()
                .join(format!("v{}", enforcer::kernel::pins::PIN_LAYOUT))
        )
        .unwrap()
        .count(),
        1,
        "only the new daemon's instance is left"
    );
}

/// Whether the guard runs; where it does not, `status` must say why.
fn self_protection_runs(daemon: &Daemon) -> bool {
    let status = daemon.status_json();
    let protection = status["self_protection"].as_str().unwrap_or_default();
    if protection == "lsm" {
        return true;
    }
    assert!(
        !bpf_lsm_expected(),
        "this kernel runs BPF LSM, but self-protection is {protection:?}"
    );
    let reason = protection
        .strip_prefix("unavailable: ")
        .unwrap_or_else(|| panic!("self_protection is \"lsm\" or a reason: {protection:?}"));
    assert!(!reason.is_empty(), "the reason is given");
    let lsms = fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    assert!(
        !lsms.split(',').any(|lsm| lsm.trim() == "bpf") || reason.contains("refused"),
        "with bpf among the active LSMs ({lsms}), only a refused program explains \
         missing self-protection: {reason}"
    );
    eprintln!("self-protection cannot run here ({reason}); the VM kernels test it");
    false
}

fn only_instance(layout: &Path) -> PathBuf {
    let instances: Vec<PathBuf> = fs::read_dir(layout)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(instances.len(), 1, "{instances:?}");
    instances.into_iter().next().unwrap()
}

#[track_caller]
fn assert_refused(result: io::Result<()>, what: &str) {
    match result {
        Err(error) if error.raw_os_error() == Some(libc::EPERM) => {}
        other => panic!("{what}: expected EPERM from the guard, got {other:?}"),
    }
}

/// How many objects of `kind` this process may not open by id.
fn refused_by_id(kind: Object) -> usize {
    bpf::ids(kind)
        .into_iter()
        .filter(|&id| {
            bpf::open_by_id(kind, id).is_err_and(|error| error.raw_os_error() == Some(libc::EPERM))
        })
        .count()
}

/// Sends `signal` to `pid` from a forked child, which is neither the
/// daemon nor its parent.
fn signal_from_a_stranger(pid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: the child only calls async-signal-safe functions (kill,
    // _exit) before it exits.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        // SAFETY: in the forked child, which calls only kill, reads its own
        // errno and leaves with _exit, never returning into the test.
        0 => unsafe {
            let code = if libc::kill(pid as i32, signal) == 0 {
                0
            } else {
                *libc::__errno_location()
            };
            libc::_exit(code)
        },
        child => {
            let mut status = 0;
            // SAFETY: waits for the child forked above.
            unsafe { libc::waitpid(child, &mut status, 0) };
            match libc::WEXITSTATUS(status) {
                0 => Ok(()),
                errno => Err(io::Error::from_raw_os_error(errno)),
            }
        }
    }
}

/// Copies a descriptor out of the daemon, as a debugger could.
fn steal_descriptor(pid: u32) -> io::Result<()> {
    // SAFETY: plain syscalls on integers; descriptors they return are
    // closed here.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0);
        if pidfd < 0 {
            return Err(io::Error::last_os_error());
        }
        let stolen = libc::syscall(libc::SYS_pidfd_getfd, pidfd, 0, 0);
        let error = io::Error::last_os_error();
        libc::close(pidfd as i32);
        if stolen < 0 {
            return Err(error);
        }
        libc::close(stolen as i32);
    }
    Ok(())
}

/// A bpffs of the test's own, so that unmounting it can be tried without
/// touching anyone else's pins. On drop `unloader` (the binary the guard
/// trusts) removes what is pinned there, then it is unmounted.
struct PrivateBpfFs {
    dir: TempDir,
    unloader: PathBuf,
}

impl PrivateBpfFs {
    fn mount(unloader: PathBuf) -> Self {
        let dir = TempDir::new();
        let status = Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "mount -t bpf: {status}");
        Self { dir, unloader }
    }

    fn pin_dir(&self) -> PathBuf {
        self.dir.path().join("enforcer")
    }

    fn unmount(&self) -> io::Result<()> {
        let path = CString::new(self.dir.path().as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string for the duration of the call.
        if unsafe { libc::umount2(path.as_ptr(), 0) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl Drop for PrivateBpfFs {
    fn drop(&mut self) {
        unload_pins(&self.unloader, &self.pin_dir());
        // Already unmounted is the usual case.
        let _ = self.unmount();
    }
}
