//! The eBPF toolchain: nightly with rust-src (for `-Z build-std=core`) and a
//! bpf-linker built against the nightly's own libLLVM. No system LLVM of the
//! right version is needed; the result is cached per nightly.

use std::{
    env, fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

/// The bpf-linker release known to build against the toolchain's LLVM.
const BPF_LINKER_VERSION: &str = "0.13.0";

pub struct Toolchain {
    /// Directory holding `bpf-linker`, to put first on PATH.
    pub linker_dir: PathBuf,
}

pub fn ensure() -> Result<Toolchain> {
    ensure_nightly_with_rust_src()?;
    let nightly = NightlyInfo::read()?;
    if let Some(linker) = env::var_os("ENFORCER_BPF_LINKER") {
        let linker = PathBuf::from(linker);
        let dir = linker
            .parent()
            .context("ENFORCER_BPF_LINKER has no parent directory")?;
        return Ok(Toolchain {
            linker_dir: dir.to_path_buf(),
        });
    }
    let root = cache_dir()?.join(format!(
        "bpf-linker-{}-llvm{}",
        nightly.commit, nightly.llvm_major
    ));
    let linker = root.join("bin/bpf-linker");
    if !runs(&linker) {
        build_bpf_linker(&root, &nightly)?;
    }
    Ok(Toolchain {
        linker_dir: root.join("bin"),
    })
}

fn ensure_nightly_with_rust_src() -> Result<()> {
    let rustup = |args: &[&str]| -> Result<bool> {
        Ok(Command::new("rustup")
            .args(args)
            .status()
            .context("rustup is needed to fetch the nightly toolchain; install it from rustup.rs")?
            .success())
    };
    let installed = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", "nightly"])
        .output()
        .context("running rustup")?;
    let components = String::from_utf8_lossy(&installed.stdout);
    if installed.status.success() && components.lines().any(|c| c.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("xtask: installing nightly with rust-src (kernel programs need -Z build-std=core)");
    if !rustup(&[
        "toolchain",
        "install",
        "nightly",
        "--profile",
        "minimal",
        "--component",
        "rust-src",
    ])? {
        bail!(
            "`rustup toolchain install nightly --component rust-src` failed; run it by hand and retry"
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
    fn read() -> Result<Self> {
        let verbose = output(Command::new("rustup").args(["run", "nightly", "rustc", "-vV"]))?;
        let field = |name: &str| {
            verbose
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .map(str::trim)
                .with_context(|| format!("`rustc +nightly -vV` printed no `{name}`"))
        };
        let commit = field("commit-hash:")?.chars().take(12).collect();
        let llvm = field("LLVM version:")?;
        let llvm_major = llvm
            .split('.')
            .next()
            .and_then(|major| major.parse().ok())
            .with_context(|| format!("cannot read the LLVM major version from {llvm:?}"))?;
        let sysroot = PathBuf::from(output(
            Command::new("rustup").args(["run", "nightly", "rustc", "--print", "sysroot"]),
        )?);
        Ok(Self {
            commit,
            llvm_major,
            sysroot,
        })
    }
}

fn build_bpf_linker(root: &Path, nightly: &NightlyInfo) -> Result<()> {
    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER_VERSION} against the nightly's LLVM {} (once; about a minute)",
        nightly.llvm_major
    );
    let libllvm = fs::read_dir(nightly.sysroot.join("lib"))
        .context("reading the nightly's lib directory")?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so.") || (n.starts_with("libLLVM-") && n.ends_with(".so")))
        })
        .context("the nightly toolchain ships no libLLVM; reinstall it with `rustup toolchain install nightly`")?;
    // bpf-linker's build finds LLVM under LLVM_PREFIX/lib as libLLVM.so,
    // and the linker loads it by soname at run time.
    let prefix = root.join("llvm");
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
    let soname = libllvm.file_name().expect("read_dir entries have names");
    for link in [lib.join("libLLVM.so"), lib.join(soname)] {
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

pub fn cache_dir() -> Result<PathBuf> {
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

pub fn output(command: &mut Command) -> Result<String> {
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
