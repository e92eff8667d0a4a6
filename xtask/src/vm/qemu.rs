//! The emulator. Debian 12's own qemu (7.2) cannot run the suite under
//! TCG. With several TCG threads a guest CPU can run a stale translation of
//! kernel text that another CPU has just patched back, and the kernel dies
//! of an `int3` its patching no longer expects: that struck a BPF LSM
//! attach to `inode_permission` in CI, and turning ftrace on and off for
//! that function while two shells walk paths does it within 20 rounds on
//! 7.2, while 10.0 ran 300 rounds clean. With one TCG thread 7.2 survives,
//! but its control tests took 455 s against 293 s. And 7.2 emulates
//! `CMPXCHG16B` wrongly, which kernel 6.12's slab allocator uses. So
//! vm-test wants qemu 10 or newer, and as root on Debian 12 installs it
//! from bookworm-backports.

use std::{fs, path::Path, process::Command};

use anyhow::{Context, Result, bail};

use super::kernels;
use crate::build;

/// The oldest qemu the whole suite was seen to pass on.
const MIN_MAJOR: u32 = 10;

const BACKPORTS: &str = "http://deb.debian.org/debian bookworm-backports main";

/// Makes sure `qemu-system-x86_64` is qemu 10 or newer, installing it when
/// this runs as root (as in CI) on Debian 12.
pub(super) fn ensure(vm_cache: &Path) -> Result<()> {
    let found = installed_major();
    if found.is_some_and(|major| major >= MIN_MAJOR) {
        return Ok(());
    }
    let what = match found {
        Some(major) => {
            format!("qemu {major} is too old (its TCG crashes kernels that patch their code)")
        }
        None => "qemu-system-x86_64 is missing".to_string(),
    };
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !on_bookworm() {
        bail!(
            "{what}; vm-test needs qemu {MIN_MAJOR} or newer (on Debian 12: \
             `apt-get install -t bookworm-backports qemu-system-x86` with bookworm-backports \
             in apt's sources)"
        );
    }
    eprintln!("xtask: {what}; installing qemu-system-x86 from bookworm-backports");
    install_from_backports(&vm_cache.join("apt").join("host-with-backports"))?;
    match installed_major() {
        Some(major) if major >= MIN_MAJOR => Ok(()),
        other => bail!(
            "after installing from bookworm-backports, qemu is {other:?}, not {MIN_MAJOR} or newer"
        ),
    }
}

fn installed_major() -> Option<u32> {
    let output = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .ok()?;
    major_of(&String::from_utf8_lossy(&output.stdout))
}

/// The major version in `QEMU emulator version 10.0.2 (Debian ...)`.
fn major_of(version_output: &str) -> Option<u32> {
    version_output
        .split("version ")
        .nth(1)?
        .split('.')
        .next()?
        .parse()
        .ok()
}

fn on_bookworm() -> bool {
    fs::read_to_string("/etc/os-release").is_ok_and(|release| {
        release
            .lines()
            .any(|line| line == "VERSION_CODENAME=bookworm")
    })
}

/// Installs with the host's apt sources plus bookworm-backports, which is
/// added for these two commands only: `parts` holds links to the host's
/// source files and one for backports.
fn install_from_backports(parts: &Path) -> Result<()> {
    let _ = fs::remove_dir_all(parts);
    fs::create_dir_all(parts)?;
    for entry in fs::read_dir("/etc/apt/sources.list.d")?.flatten() {
        std::os::unix::fs::symlink(entry.path(), parts.join(entry.file_name()))?;
    }
    fs::write(
        parts.join("enforcer-bookworm-backports.list"),
        format!("deb {}\n", kernels::signed_source(BACKPORTS)),
    )?;
    let parts_option = format!("Dir::Etc::SourceParts={}", parts.display());
    let apt = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command
            .args(["-q", "-o", &parts_option])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    build::run_checked(
        &mut apt(&["update"]),
        "apt-get update with bookworm-backports",
    )?;
    build::run_checked(
        &mut apt(&[
            "install",
            "-y",
            "--no-install-recommends",
            "-t",
            "bookworm-backports",
            "qemu-system-x86",
        ]),
        "apt-get install -t bookworm-backports qemu-system-x86",
    )
    .context("installing qemu from bookworm-backports")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_major_version_is_read_from_qemus_banner() {
        assert_eq!(
            major_of("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\n"),
            Some(10)
        );
        assert_eq!(
            major_of("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b2)\n"),
            Some(7)
        );
        assert_eq!(major_of("bash: qemu-system-x86_64: not found"), None);
    }
}
