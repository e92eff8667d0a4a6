//! The guest's initramfs: the integration test binaries, the helpers and
//! the daemon laid out as cargo lays them out (the harness finds
//! `netprobe` and `execprobe` at `<test exe dir>/../`), the host programs
//! the tests and init run, with every shared library they load (the
//! dynamic loader included), and init itself. It is a copy: the guest has
//! no disk and shares nothing with the host.

use std::{
    collections::BTreeSet,
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::cpio::Tree;
use crate::build;

/// The workspace's place in the guest.
const GUEST_WORKSPACE: &str = "/enforcer";
const INIT: &str = include_str!("init.sh");

/// Programs from the host, by name (looked up on the host's PATH) or by
/// path, and the package to install when one is missing.
const HOST_PROGRAMS: &[(&str, &str)] = &[
    // init
    ("sh", "dash"),
    ("mount", "mount"),
    ("ip", "iproute2"),
    ("mkdir", "coreutils"),
    ("chmod", "coreutils"),
    ("rmdir", "coreutils"),
    ("rm", "coreutils"),
    ("cat", "coreutils"),
    ("head", "coreutils"),
    ("grep", "grep"),
    ("sleep", "coreutils"),
    ("sync", "coreutils"),
    ("uname", "coreutils"),
    ("insmod", "kmod"),
    // the tests: exec.rs copies and runs these three by path, and runs
    // sha256sum; control.rs runs setpriv; domains.rs runs
    // `timeout 3 openssl s_client`.
    ("/bin/sh", "dash"),
    ("/bin/echo", "coreutils"),
    ("/bin/true", "coreutils"),
    ("sha256sum", "coreutils"),
    ("setpriv", "util-linux"),
    ("timeout", "coreutils"),
    ("openssl", "openssl"),
];

/// Host files the guest gets as they are, when the host has them: user
/// and group names (`--control-group nogroup` in control.rs) and
/// openssl's configuration.
const HOST_FILES: &[&str] = &[
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/usr/lib/ssl/openssl.cnf",
];

pub(super) struct TestBinary {
    /// `control`, `enforcer_integration_tests (lib)`, `netprobe (bin)`.
    pub label: String,
}

pub(super) struct Guest {
    pub initramfs: PathBuf,
    pub tests: Vec<TestBinary>,
    pub bytes: u64,
}

pub(super) struct Options<'a> {
    pub test_threads: Option<usize>,
    pub per_binary_timeout_secs: u64,
    pub args: &'a [String],
}

/// Builds everything (as `cargo xtask test` does, so the eBPF object is
/// embedded) and writes `work/initramfs.cpio`.
pub(super) fn build(work: &Path, options: &Options) -> Result<Guest> {
    let built = build::build(false)?;
    let artifacts = test_artifacts(&built)?;
    let stripped = work.join("stripped");
    fs::create_dir_all(&stripped)?;

    let mut tree = Tree::default();
    let mut elves = BTreeSet::new();
    let target = Path::new(GUEST_WORKSPACE).join("target/debug");
    let mut ours = vec![(target.join("enforcer"), built.enforcer.clone())];
    for helper in ["netprobe", "execprobe"] {
        let path = artifacts
            .helpers
            .iter()
            .find(|path| path.file_name().is_some_and(|name| name == helper))
            .with_context(|| format!("cargo built no {helper} binary"))?;
        ours.push((target.join(helper), path.clone()));
    }
    let mut list = String::new();
    let mut tests = Vec::new();
    for (index, test) in artifacts.tests.iter().enumerate() {
        let file = test.path.file_name().context("a test binary has no name")?;
        let guest = target.join("deps").join(file);
        list.push_str(&format!("{index} {}\n", guest.display()));
        ours.push((guest, test.path.clone()));
        tests.push(TestBinary {
            label: test.label.clone(),
        });
    }
    for (guest, host) in &ours {
        // Debug info is most of a test binary's size; panics and their
        // messages do not need it.
        let copy = stripped.join(host.file_name().context("a binary has no name")?);
        strip(host, &copy)?;
        tree.file(guest, &copy)?;
        elves.insert(host.clone());
    }

    for (program, package) in HOST_PROGRAMS {
        let path = find_program(program).with_context(|| {
            format!("the guest needs {program} from the host: apt-get install {package}")
        })?;
        tree.host_path(&path)?;
        elves.insert(fs::canonicalize(&path)?);
    }
    for library in shared_libraries(&elves)? {
        tree.host_path(&library)?;
    }
    for file in HOST_FILES {
        if Path::new(file).exists() {
            tree.host_path(file)?;
        }
    }
    // proptest finds its regressions file next to the test's source, and
    // the packs' tests read the shipped policies, both looked up from the
    // working directory (the package, as under cargo).
    for dir in [
        "tests/tests",
        "policies",
        "policies/ban",
        "policies/profiles",
    ] {
        let sources = crate::workspace::workspace_root().join(dir);
        for entry in fs::read_dir(&sources)?.flatten() {
            let path = entry.path();
            if path.is_file() {
                let guest = Path::new(GUEST_WORKSPACE).join(dir).join(entry.file_name());
                tree.file(guest, &path)?;
            }
        }
    }

    for dir in ["/proc", "/sys", "/dev", "/tmp", "/run", "/root", "/mnt"] {
        tree.dir(dir);
    }
    // The kernel opens the initial console on the initramfs, before init
    // mounts devtmpfs.
    tree.char_device("/dev/console", 5, 1);
    tree.char_device("/dev/null", 1, 3);
    tree.bytes("/init", INIT, 0o755);
    tree.bytes("/vm/tests", list, 0o644);
    tree.bytes("/vm/config", config(options), 0o644);

    let initramfs = work.join("initramfs.cpio");
    let bytes = tree.write(&initramfs)?;
    Ok(Guest {
        initramfs,
        tests,
        bytes,
    })
}

fn config(options: &Options) -> String {
    let mut text = format!(
        "PER_BINARY_TIMEOUT={}\nTEST_THREADS={}\nset --",
        options.per_binary_timeout_secs,
        options
            .test_threads
            .map(|threads| threads.to_string())
            .unwrap_or_default()
    );
    for arg in options.args {
        text.push_str(&format!(" '{}'", arg.replace('\'', r"'\''")));
    }
    text.push('\n');
    text
}

struct TestArtifact {
    label: String,
    path: PathBuf,
}

struct Artifacts {
    tests: Vec<TestArtifact>,
    /// The crate's binaries (not their unit tests): netprobe, execprobe.
    helpers: Vec<PathBuf>,
}

/// `cargo test --no-run` of the integration test package, with the
/// environment `cargo xtask test` uses, and the executables it reports.
fn test_artifacts(built: &build::Built) -> Result<Artifacts> {
    let mut cargo = built.cargo("test");
    cargo
        .args([
            "--package",
            "enforcer-integration-tests",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped());
    let mut child = cargo.spawn().context("running cargo test --no-run")?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut artifacts = Artifacts {
        tests: Vec::new(),
        helpers: Vec::new(),
    };
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(executable) = message["executable"].as_str() else {
            continue;
        };
        let name = message["target"]["name"].as_str().unwrap_or("?");
        let kind = message["target"]["kind"][0].as_str().unwrap_or("?");
        let path = PathBuf::from(executable);
        if message["profile"]["test"] == true {
            let label = match kind {
                "test" => name.to_string(),
                other => format!("{name} ({other})"),
            };
            artifacts.tests.push(TestArtifact { label, path });
        } else if kind == "bin" {
            artifacts.helpers.push(path);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("building the integration tests failed ({status})");
    }
    artifacts.tests.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(artifacts)
}

fn strip(from: &Path, to: &Path) -> Result<()> {
    let stripped = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(to)
        .arg(from)
        .status()
        .is_ok_and(|status| status.success());
    if !stripped {
        eprintln!(
            "xtask: cannot strip {} (binutils' strip); the guest gets it whole",
            from.display()
        );
        fs::copy(from, to)?;
    }
    Ok(())
}

fn find_program(program: &str) -> Option<PathBuf> {
    if program.starts_with('/') {
        return Path::new(program).exists().then(|| program.into());
    }
    [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    .iter()
    .map(|dir| Path::new(dir).join(program))
    .find(|path| path.is_file())
}

/// Every shared library the programs load, by `ldd` (which lists the whole
/// closure, the dynamic loader included).
fn shared_libraries(programs: &BTreeSet<PathBuf>) -> Result<BTreeSet<PathBuf>> {
    let mut libraries = BTreeSet::new();
    for program in programs {
        let output = Command::new("ldd")
            .arg(program)
            .output()
            .context("running ldd (from libc-bin) to find the guest's shared libraries")?;
        let text = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            // A static program.
            continue;
        }
        for line in text.lines() {
            let path = match line.split_once("=>") {
                Some((_, after)) => after.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(path) = path.filter(|path| path.starts_with('/')) {
                libraries.insert(PathBuf::from(path));
            } else if line.contains("not found") {
                bail!("{}: {}", program.display(), line.trim());
            }
        }
    }
    Ok(libraries)
}
