//! The eBPF toolchain: a pinned nightly with rust-src (for
//! `-Z build-std=core`) and a pinned bpf-linker built against that
//! nightly's own libLLVM. No system LLVM is needed; the result is cached
//! per nightly under `$XDG_CACHE_HOME/enforcer`.
//!
//! The pin lives in one place, `enforcer-ebpf/rust-toolchain.toml`, which
//! rustup reads in that directory and this module reads for xtask. A
//! nightly's code generation decides what the verifier accepts, so moving
//! the pin is a tested change (README, "Moving the nightly pin").
//! `ENFORCER_NIGHTLY` opts into another channel, the floating `nightly`
//! say, for trying one out.

use std::{
    env, fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use object::{
    Endianness,
    elf::{DT_SONAME, SHT_DYNAMIC},
    read::elf::{Dyn as _, ElfFile64, FileHeader as _, SectionHeader as _},
};

use crate::workspace::workspace_root;

/// The bpf-linker release pinned beside the nightly; `--locked` pins its
/// dependencies too.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// The LLVM major versions bpf-linker 0.13.0 has a feature for.
const BPF_LINKER_LLVM_MAJORS: [u32; 3] = [21, 22, 23];

/// Overrides the pinned channel, for trying another nightly.
const NIGHTLY_OVERRIDE: &str = "ENFORCER_NIGHTLY";

pub(crate) struct Toolchain {
    /// The rustup channel the kernel programs build with.
    pub channel: String,
    /// Directory holding `bpf-linker`, to put first on PATH.
    pub linker_dir: PathBuf,
}

impl Toolchain {
    /// Whether the channel is the pinned one; builds with another get a
    /// warning and their failures say so.
    pub(crate) fn pinned(&self) -> bool {
        pinned_channel().is_ok_and(|pinned| pinned == self.channel)
    }
}

pub(crate) fn ensure() -> Result<Toolchain> {
    let channel = channel()?;
    let toolchain = ensure_with(&channel);
    if pinned_channel()? == channel {
        return toolchain;
    }
    eprintln!(
        "xtask: {NIGHTLY_OVERRIDE}={channel}: building the kernel programs with an untested \
         nightly; the pinned one is in enforcer-ebpf/rust-toolchain.toml"
    );
    toolchain.with_context(|| untested(&channel))
}

/// The note every failure under an overridden channel carries.
pub(crate) fn untested(channel: &str) -> String {
    format!(
        "{NIGHTLY_OVERRIDE}={channel} is not the pinned nightly; unset it to build with the pin, \
         or see README's \"Moving the nightly pin\""
    )
}

fn ensure_with(channel: &str) -> Result<Toolchain> {
    ensure_nightly_with_rust_src(channel)?;
    let nightly = NightlyInfo::read(channel)?;
    if let Some(linker) = env::var_os("ENFORCER_BPF_LINKER") {
        let linker = PathBuf::from(linker);
        let dir = linker
            .parent()
            .context("ENFORCER_BPF_LINKER has no parent directory")?;
        return Ok(Toolchain {
            channel: channel.to_string(),
            linker_dir: dir.to_path_buf(),
        });
    }
    if !BPF_LINKER_LLVM_MAJORS.contains(&nightly.llvm_major) {
        bail!(
            "{channel} is built on LLVM {}, and bpf-linker {BPF_LINKER_VERSION} supports LLVM \
             {BPF_LINKER_LLVM_MAJORS:?} only",
            nightly.llvm_major
        );
    }
    let root = cache_dir()?.join(format!(
        "bpf-linker-{BPF_LINKER_VERSION}-{}-llvm{}",
        nightly.commit, nightly.llvm_major
    ));
    let linker = root.join("bin/bpf-linker");
    if !runs(&linker) {
        build_bpf_linker(&root, &nightly)?;
    }
    Ok(Toolchain {
        channel: channel.to_string(),
        linker_dir: root.join("bin"),
    })
}

/// The channel to build with: `ENFORCER_NIGHTLY` if set, else the pin.
fn channel() -> Result<String> {
    match env::var(NIGHTLY_OVERRIDE) {
        Ok(channel) if !channel.trim().is_empty() => Ok(channel.trim().to_string()),
        _ => pinned_channel(),
    }
}

/// The `channel` of `enforcer-ebpf/rust-toolchain.toml`.
pub(crate) fn pinned_channel() -> Result<String> {
    let path = workspace_root().join("enforcer-ebpf/rust-toolchain.toml");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_channel(&text).with_context(|| format!("{}: no `channel = \"...\"`", path.display()))
}

fn parse_channel(toml: &str) -> Option<String> {
    toml.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "channel").then(|| value.trim().trim_matches('"').to_string())
    })
}

fn ensure_nightly_with_rust_src(channel: &str) -> Result<()> {
    let installed = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", channel])
        .output()
        .context("rustup is needed to fetch the nightly toolchain; install it from rustup.rs")?;
    let components = String::from_utf8_lossy(&installed.stdout);
    if installed.status.success() && components.lines().any(|c| c.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("xtask: installing {channel} with rust-src (kernel programs need -Z build-std=core)");
    let status = Command::new("rustup")
        .args(["toolchain", "install", channel])
        .args(["--profile", "minimal", "--component", "rust-src"])
        .status()
        .context("running rustup")?;
    if !status.success() {
        bail!(
            "`rustup toolchain install {channel} --profile minimal --component rust-src` failed; \
             run it by hand and retry"
        );
    }
    Ok(())
}

struct NightlyInfo {
    commit: String,
    llvm_major: u32,
    sysroot: PathBuf,
}

impl NightlyInfo {
    fn read(channel: &str) -> Result<Self> {
        let verbose = output(Command::new("rustup").args(["run", channel, "rustc", "-vV"]))?;
        let field = |name: &str| {
            verbose
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .map(str::trim)
                .with_context(|| format!("`rustc +{channel} -vV` printed no `{name}`"))
        };
        let commit = field("commit-hash:")?.chars().take(12).collect();
        let llvm = field("LLVM version:")?;
        let llvm_major = llvm
            .split('.')
            .next()
            .and_then(|major| major.parse().ok())
            .with_context(|| format!("cannot read the LLVM major version from {llvm:?}"))?;
        let sysroot = PathBuf::from(output(
            Command::new("rustup").args(["run", channel, "rustc", "--print", "sysroot"]),
        )?);
        Ok(Self {
            commit,
            llvm_major,
            sysroot,
        })
    }
}

/// The nightly's libLLVM: the ELF shared object in `lib` whose file name
/// is its own soname. A toolchain's `lib` may also hold a linker script
/// named like a library (`libLLVM-23-rust-*.so`), which bpf-linker's build
/// cannot load; `read_dir` order decides nothing here.
fn libllvm(lib: &Path) -> Result<(PathBuf, String)> {
    let mut found = Vec::new();
    for entry in fs::read_dir(lib).with_context(|| format!("reading {}", lib.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.starts_with("libLLVM") {
            continue;
        }
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        if let Some(soname) = elf_soname(&bytes)
            && soname == name
        {
            found.push((path, soname));
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!(
            "{} holds no libLLVM shared object named by its soname; reinstall the nightly",
            lib.display()
        ),
        _ => bail!(
            "{} holds more than one libLLVM shared object: {found:?}",
            lib.display()
        ),
    }
}

/// The `DT_SONAME` of a 64-bit ELF shared object; `None` for anything else
/// (a linker script, say).
fn elf_soname(bytes: &[u8]) -> Option<String> {
    let file = ElfFile64::<Endianness>::parse(bytes).ok()?;
    let endian = file.endian();
    let sections = file.elf_header().sections(endian, bytes).ok()?;
    let dynamic = sections
        .iter()
        .find(|section| section.sh_type(endian) == SHT_DYNAMIC)?;
    let entries = dynamic.data_as_array(endian, bytes).ok()?;
    let strings = sections.strings(endian, bytes, dynamic.link(endian)).ok()?;
    entries
        .iter()
        .find_map(|entry: &object::elf::Dyn64<Endianness>| {
            (i64::from(entry.tag32(endian)?) == DT_SONAME)
                .then(|| entry.string(endian, strings).ok())
                .flatten()
                .map(|name| String::from_utf8_lossy(name).into_owned())
        })
}

fn build_bpf_linker(root: &Path, nightly: &NightlyInfo) -> Result<()> {
    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER_VERSION} against the nightly's LLVM {} (once; about two minutes)",
        nightly.llvm_major
    );
    let (libllvm, soname) = libllvm(&nightly.sysroot.join("lib"))?;
    // bpf-linker's build finds LLVM under LLVM_PREFIX/lib as libLLVM.so,
    // and the linker loads it by soname at run time.
    let prefix = root.join("llvm");
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
    for link in [lib.join("libLLVM.so"), lib.join(&soname)] {
        let _ = fs::remove_file(&link);
        symlink(&libllvm, &link).with_context(|| format!("linking {}", link.display()))?;
    }
    let status = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "install",
            "bpf-linker",
            "--locked",
            "--version",
            BPF_LINKER_VERSION,
        ])
        .args([
            "--no-default-features",
            "--features",
            &format!("llvm-{}", nightly.llvm_major),
        ])
        .arg("--root")
        .arg(root)
        .env("LLVM_PREFIX", &prefix)
        .env_remove("RUSTUP_TOOLCHAIN")
        .status()
        .context("running cargo install bpf-linker")?;
    if !status.success() {
        bail!(
            "building bpf-linker failed (see above). Build one against LLVM {} yourself and point \
             ENFORCER_BPF_LINKER at it",
            nightly.llvm_major
        );
    }
    Ok(())
}

pub(crate) fn cache_dir() -> Result<PathBuf> {
    let base = env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .context("neither XDG_CACHE_HOME nor HOME is set; cannot cache the eBPF toolchain")?;
    Ok(base.join("enforcer"))
}

fn runs(program: &Path) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub(crate) fn output(command: &mut Command) -> Result<String> {
    let out = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_is_a_dated_nightly() {
        let channel = pinned_channel().unwrap();
        let date = channel
            .strip_prefix("nightly-")
            .unwrap_or_else(|| panic!("{channel} is not a dated nightly"));
        let parts: Vec<_> = date.split('-').collect();
        assert_eq!(parts.len(), 3, "{channel}");
        assert!(parts.iter().all(|p| p.parse::<u32>().is_ok()), "{channel}");
    }

    #[test]
    fn a_linker_script_has_no_soname() {
        assert_eq!(
            elf_soname(b"INPUT(libLLVM.so.23.1-rust-1.101.0-nightly)\n"),
            None
        );
    }

    #[test]
    fn a_shared_object_names_itself() {
        // Every glibc system has libc.so.6 with that soname; the test
        // binary is linked against it.
        let maps = fs::read_to_string("/proc/self/maps").unwrap();
        let libc = maps
            .lines()
            .filter_map(|line| line.split_whitespace().nth(5))
            .find(|path| path.ends_with("/libc.so.6"))
            .expect("the test binary maps libc.so.6");
        assert_eq!(
            elf_soname(&fs::read(libc).unwrap()).as_deref(),
            Some("libc.so.6")
        );
    }
}
