use std::{
    fs::Metadata,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use sha2::{Digest as _, Sha256};

use super::*;
use crate::exec::resolve::kernel_dev;

/// A directory under the temp dir, removed when the test ends, even by
/// a panic.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("enforcer-hashwatch-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn dir(&self, name: &str) -> PathBuf {
        let dir = self.0.join(name);
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn write(path: &Path, content: &[u8], mode: u32) -> Metadata {
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    fs::metadata(path).unwrap()
}

fn digest(content: &[u8]) -> [u8; 32] {
    Sha256::digest(content).into()
}

/// None where this machine cannot run fanotify, so the test can say so
/// and pass. With `strict`, every exec on the roots' filesystems waits
/// on the watch until it is dropped, which unwinding does too: a failed
/// assertion does not leave the machine's execs to a test that is gone.
fn start(
    digests: &[[u8; 32]],
    roots: Vec<PathBuf>,
    strict: bool,
) -> Option<(HashWatch, mpsc::Receiver<Match>)> {
    let (tx, rx) = mpsc::channel();
    let strict = strict.then(|| StrictScope("/".into()));
    match HashWatch::start(digests.iter().copied().collect(), roots, tx, strict) {
        Ok(watch) => Some((watch, rx)),
        Err(error @ (HashWatchError::MissingCapability | HashWatchError::FanotifyUnsupported)) => {
            eprintln!("{error}; skipping");
            None
        }
        Err(error) => panic!("{error}"),
    }
}

/// Copies with `cp`: another process, whose writes are watched, and no
/// descriptor of ours left open for writing to make a later exec fail
/// with ETXTBSY.
fn copy(from: &Path, to: &Path) -> Metadata {
    let status = Command::new("cp").arg(from).arg(to).status().unwrap();
    assert!(status.success());
    fs::metadata(to).unwrap()
}

/// Waits for a match on `ino`, collecting everything received meanwhile.
/// Stops the watch, then checks that nothing besides the match already
/// taken reported `ino`.
#[track_caller]
fn assert_reported_once(watch: HashWatch, rx: mpsc::Receiver<Match>, others: Vec<Match>, ino: u64) {
    drop(watch);
    let rest: Vec<Match> = others.into_iter().chain(rx.iter()).collect();
    assert!(
        rest.iter().all(|other| other.ino != ino),
        "reported twice or more: {rest:?}"
    );
}

fn wait_for(rx: &mpsc::Receiver<Match>, ino: u64, seen: &mut Vec<Match>) -> Match {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(found) if found.ino == ino => return found,
            Ok(other) => seen.push(other),
            Err(error) => panic!("no match for inode {ino}: {error}; got {seen:?}"),
        }
    }
}

#[test]
fn the_scan_finds_a_copy_that_was_there_before() {
    let scratch = Scratch::new("scan");
    let root = scratch.dir("root");
    let nested = scratch.dir("root/a/b");
    let content = b"#!/bin/sh\necho hashwatch scan test\n";
    let metadata = write(&nested.join("app"), content, 0o755);
    // A symlink is not followed, and a clean file is not reported.
    std::os::unix::fs::symlink(nested.join("app"), root.join("link")).unwrap();
    write(&root.join("clean"), b"#!/bin/sh\necho clean\n", 0o755);

    let Some((watch, rx)) = start(&[digest(content)], vec![root], false) else {
        return;
    };
    let mut others = Vec::new();
    let found = wait_for(&rx, metadata.ino(), &mut others);
    assert_eq!(found.dev, kernel_dev(metadata.dev()));
    assert_eq!(found.sha256, digest(content));
    assert_eq!(found.path, nested.join("app"));
    assert_reported_once(watch, rx, others, metadata.ino());
}

#[test]
fn files_written_after_start_are_examined() {
    let scratch = Scratch::new("written");
    // The root is empty: whatever is found outside it on the same
    // filesystem came through fanotify, not the scan.
    let root = scratch.dir("root");
    let staging = scratch.dir("staging");
    let elsewhere = scratch.dir("elsewhere");
    let banned = b"#!/bin/sh\necho hashwatch written test\n".to_vec();
    let elf = b"\x7fELF hashwatch written test, no exec bit".to_vec();
    let plain = b"hashwatch written test, neither runnable nor executable".to_vec();
    // Written by this process, whose writes are ignored; `cp` is
    // another process.
    write(&staging.join("banned"), &banned, 0o755);
    write(&staging.join("elf"), &elf, 0o644);
    write(&staging.join("plain"), &plain, 0o644);
    write(&staging.join("clean"), b"#!/bin/sh\necho clean\n", 0o755);

    let digests = [digest(&banned), digest(&elf), digest(&plain)];
    let Some((watch, rx)) = start(&digests, vec![root], false) else {
        return;
    };
    let copy = |name: &str| copy(&staging.join(name), &elsewhere.join(name));
    let banned_copy = copy("banned");
    let plain_copy = copy("plain");
    let clean_copy = copy("clean");
    let elf_copy = copy("elf");
    assert_eq!(elf_copy.mode() & 0o111, 0);

    let mut others = Vec::new();
    let found = wait_for(&rx, banned_copy.ino(), &mut others);
    assert_eq!(found.dev, kernel_dev(banned_copy.dev()));
    assert_eq!(found.sha256, digest(&banned));
    assert_eq!(found.path, elsewhere.join("banned"));
    let found = wait_for(&rx, elf_copy.ino(), &mut others);
    assert_eq!(found.sha256, digest(&elf));
    // One hasher takes files in the order they were closed, so the
    // plain and clean copies were examined before the ELF one.
    drop(watch);
    let rest: Vec<Match> = others.into_iter().chain(rx.iter()).collect();
    let staged: Vec<u64> = ["banned", "elf", "plain", "clean"]
        .iter()
        .map(|name| fs::metadata(staging.join(name)).unwrap().ino())
        .collect();
    for other in &rest {
        assert_ne!(other.ino, plain_copy.ino(), "not runnable: {other:?}");
        assert_ne!(other.ino, clean_copy.ino(), "not banned: {other:?}");
        assert!(!staged.contains(&other.ino), "our own write: {other:?}");
    }
}

#[test]
fn dropping_the_watch_stops_its_threads() {
    let scratch = Scratch::new("drop");
    let root = scratch.dir("root");
    for index in 0..50 {
        write(&root.join(format!("f{index}")), b"#!/bin/sh\n", 0o755);
    }
    let Some((watch, rx)) = start(&[[0; 32]], vec![root], false) else {
        return;
    };
    let started = Instant::now();
    drop(watch);
    assert!(started.elapsed() < Duration::from_secs(3));
    // Every thread held a sender; all gone means all threads are gone.
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(1)),
        Err(mpsc::RecvTimeoutError::Disconnected)
    );
}

#[test]
fn a_missing_root_is_an_error() {
    let scratch = Scratch::new("missing");
    let (tx, _rx) = mpsc::channel();
    let missing = scratch.0.join("absent");
    match HashWatch::start([[0; 32]].into(), vec![missing.clone()], tx, None) {
        Err(HashWatchError::Root { path, .. }) => assert_eq!(path, missing),
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("started on a missing root"),
    }
}

#[test]
fn strict_refuses_a_banned_copy_executed_at_once() {
    let scratch = Scratch::new("strict");
    // As above, the empty root leaves the copies to fanotify.
    let root = scratch.dir("root");
    let staging = scratch.dir("staging");
    let elsewhere = scratch.dir("elsewhere");
    let banned = b"#!/bin/sh\necho hashwatch strict test\n".to_vec();
    write(&staging.join("banned"), &banned, 0o755);
    write(&staging.join("clean"), b"#!/bin/sh\nexit 0\n", 0o755);

    let Some((watch, rx)) = start(&[digest(&banned)], vec![root], true) else {
        return;
    };
    // Executed as soon as `cp` is done, and nothing installs anything:
    // the permission answer alone stops it, whichever thread hashed it.
    let banned_copy = copy(&staging.join("banned"), &elsewhere.join("banned"));
    let error = Command::new(elsewhere.join("banned"))
        .status()
        .expect_err("a banned copy ran");
    assert_eq!(error.raw_os_error(), Some(libc::EPERM), "{error}");
    // Every exec is asked about, not only the first.
    let error = Command::new(elsewhere.join("banned"))
        .status()
        .expect_err("a banned copy ran the second time");
    assert_eq!(error.raw_os_error(), Some(libc::EPERM), "{error}");
    copy(&staging.join("clean"), &elsewhere.join("clean"));
    let status = Command::new(elsewhere.join("clean")).status().unwrap();
    assert!(status.success());

    let mut others = Vec::new();
    let found = wait_for(&rx, banned_copy.ino(), &mut others);
    assert_eq!(found.dev, kernel_dev(banned_copy.dev()));
    assert_eq!(found.sha256, digest(&banned));
    assert_reported_once(watch, rx, others, banned_copy.ino());
}

#[test]
fn dropping_a_strict_watch_stops_it_and_execs_go_on() {
    let scratch = Scratch::new("strict-drop");
    let root = scratch.dir("root");
    let Some((watch, rx)) = start(&[[0; 32]], vec![root], true) else {
        return;
    };
    assert!(Command::new("/bin/true").status().unwrap().success());
    let started = Instant::now();
    drop(watch);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(1)),
        Err(mpsc::RecvTimeoutError::Disconnected)
    );
    assert!(Command::new("/bin/true").status().unwrap().success());
}

/// Children of this process hold a copy of the group's descriptor while
/// they exec, so the group's release alone would not let their execs
/// through: dropping a watch while other threads start programs must
/// leave none of them waiting.
#[test]
fn dropping_a_strict_watch_while_children_exec() {
    let scratch = Scratch::new("strict-children");
    let root = scratch.dir("root");
    let stop = Arc::new(AtomicBool::new(false));
    let spawners: Vec<_> = (0..2)
        .map(|_| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    assert!(Command::new("/bin/true").status().unwrap().success());
                }
            })
        })
        .collect();
    // Stops the spawners even if a drop fails the test.
    struct Stop(Arc<AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let guard = Stop(Arc::clone(&stop));
    for _ in 0..10 {
        let Some((watch, _rx)) = start(&[[0; 32]], vec![root.clone()], true) else {
            return;
        };
        thread::sleep(Duration::from_millis(20));
        let started = Instant::now();
        drop(watch);
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    drop(guard);
    for spawner in spawners {
        spawner.join().unwrap();
    }
}

/// Prints what the permission round trip costs an exec whose files are
/// known (`--nocapture` shows it); asserts nothing about time, which
/// depends on the machine and on what else runs.
#[test]
fn strict_cost_of_a_cached_exec() {
    const EXECS: u32 = 200;
    // The root is the program itself: its filesystem is watched, and
    // the scan reads that one file.
    let program = fs::canonicalize("/bin/true").unwrap();
    let per_exec = |count: u32| {
        let started = Instant::now();
        for _ in 0..count {
            assert!(Command::new(&program).status().unwrap().success());
        }
        started.elapsed() / count
    };
    let without = per_exec(EXECS);
    let Some((watch, _rx)) = start(&[[0; 32]], vec![program.clone()], true) else {
        return;
    };
    // The first exec hashes the program and its loader.
    per_exec(1);
    let with = per_exec(EXECS);
    drop(watch);
    let after = per_exec(EXECS);
    eprintln!(
        "exec of {}: {without:?} without a strict watch, {with:?} with one \
         (files known), {after:?} after it is dropped",
        program.display()
    );
}
