//! Distribution kernels for the VM: Debian's packaged cloud kernels,
//! fetched with `apt-get download` (never installed) through a private apt
//! configuration under the cache directory, so the host's apt sources,
//! lists and caches are neither read for the suites nor written. Each
//! kernel's `boot/` (vmlinuz, config) and the few modules the tests need
//! ([`GUEST_MODULES`]) are kept under `~/.cache/enforcer/vm/kernels/`.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result, bail};

use crate::build;

/// A kernel the matrix can boot.
pub(super) struct KernelSpec {
    /// The name `--kernel` takes.
    pub name: &'static str,
    pub about: &'static str,
    /// apt sources (`URI SUITE COMPONENT`) to pick the kernel from.
    /// `ENFORCER_VM_MIRROR`, when set, replaces `http://deb.debian.org`.
    sources: &'static [&'static str],
    /// The meta package whose dependency names the current image package.
    meta: &'static str,
    /// How the image package's name starts, to check the meta package's
    /// choice and to find a cached kernel when apt cannot be reached.
    image_prefix: &'static str,
}

pub(super) const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        name: "debian-5.10",
        about: "Debian 11 (bullseye) cloud kernel, the current 5.10 of Debian LTS",
        // Debian 11's point releases ended with 11.11 (5.10.223); the LTS
        // kernels after it are only in bullseye-security.
        sources: &[
            "http://deb.debian.org/debian bullseye main",
            "http://deb.debian.org/debian bullseye-updates main",
            "http://deb.debian.org/debian-security bullseye-security main",
        ],
        meta: "linux-image-cloud-amd64",
        image_prefix: "linux-image-5.10.",
    },
    KernelSpec {
        name: "debian-6.1",
        about: "Debian 12 (bookworm) cloud kernel, the current 6.1 point release",
        sources: &[
            "http://deb.debian.org/debian bookworm main",
            "http://deb.debian.org/debian bookworm-updates main",
            "http://deb.debian.org/debian-security bookworm-security main",
        ],
        meta: "linux-image-cloud-amd64",
        image_prefix: "linux-image-6.1.",
    },
    KernelSpec {
        name: "debian-6.12",
        about: "Debian 12 backports (bookworm-backports) cloud kernel, 6.12 as in Debian 13",
        sources: &["http://deb.debian.org/debian bookworm-backports main"],
        meta: "linux-image-cloud-amd64",
        image_prefix: "linux-image-6.12.",
    },
];

/// Modules the guest loads, in this order (each needs the ones before):
/// socket diagnostics, with which the daemon resets the connection of a
/// refused ClientHello. Debian builds them as modules, which an installed
/// system loads on demand; the guest has no module tree to load them from.
pub(super) const GUEST_MODULES: &[&str] = &["inet_diag", "tcp_diag"];

const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Package lists older than this are refreshed before a kernel is chosen.
const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// A kernel ready to boot.
pub(super) struct Kernel {
    pub spec: &'static KernelSpec,
    /// `linux-image-6.1.0-56-cloud-amd64 6.1.192-2`.
    pub package: String,
    pub vmlinuz: PathBuf,
    /// `CONFIG_LSM` of its build config, when the package has one.
    pub config_lsm: Option<String>,
    /// [`GUEST_MODULES`] that the package has, in their order.
    pub modules: Vec<PathBuf>,
}

pub(super) fn spec(name: &str) -> Result<&'static KernelSpec> {
    KERNELS
        .iter()
        .find(|kernel| kernel.name == name)
        .with_context(|| {
            let names: Vec<_> = KERNELS.iter().map(|kernel| kernel.name).collect();
            format!("no kernel {name:?}; known: {}", names.join(", "))
        })
}

/// The newest image the kernel's suites offer, downloaded and unpacked
/// unless the cache has it. When apt cannot answer (offline), the newest
/// cached image of the same series is used, with a warning.
pub(super) fn ensure(spec: &'static KernelSpec, vm_cache: &Path, refresh: bool) -> Result<Kernel> {
    let kernels = vm_cache.join("kernels");
    fs::create_dir_all(&kernels)?;
    let dir = match fetch(spec, vm_cache, &kernels, refresh) {
        Ok(dir) => dir,
        Err(error) => {
            let cached = newest_cached(&kernels, spec.image_prefix).with_context(|| {
                format!(
                    "{}: no kernel package could be fetched: {error:#}",
                    spec.name
                )
            })?;
            eprintln!(
                "xtask: {}: cannot ask apt for the newest kernel ({error:#}); using the cached {}",
                spec.name,
                cached.display()
            );
            cached
        }
    };
    let boot = dir.join("boot");
    let vmlinuz = find_in(&boot, "vmlinuz-")?;
    let config_lsm = find_in(&boot, "config-")
        .ok()
        .and_then(|config| fs::read_to_string(config).ok())
        .and_then(|text| {
            text.lines().find_map(|line| {
                line.strip_prefix("CONFIG_LSM=")
                    .map(|value| value.trim_matches('"').to_string())
            })
        });
    let package = dir
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default()
        .replacen('_', " ", 1);
    let modules = GUEST_MODULES
        .iter()
        .filter_map(|module| find_in(&dir.join(MODULES), &format!("{module}.ko")).ok())
        .collect();
    Ok(Kernel {
        spec,
        package,
        vmlinuz,
        config_lsm,
        modules,
    })
}

fn fetch(spec: &KernelSpec, vm_cache: &Path, kernels: &Path, refresh: bool) -> Result<PathBuf> {
    let apt = Apt::new(spec, &vm_cache.join("apt").join(spec.name))?;
    if refresh || apt.lists_stale() {
        eprintln!(
            "xtask: {}: updating the package lists of {} (private apt configuration in {})",
            spec.name,
            spec.sources.join(", "),
            apt.dir.display()
        );
        apt.run_checked(apt.command("apt-get").arg("update"), "apt-get update")?;
    }
    let meta = apt.show(spec.meta)?;
    let image = field(&meta, "Depends")
        .and_then(|depends| depends.split([' ', ',', '|']).next().map(str::to_owned))
        .with_context(|| format!("{} names no image package:\n{meta}", spec.meta))?;
    if !image.starts_with(spec.image_prefix) {
        bail!(
            "{} depends on {image}, not on a {}* package",
            spec.meta,
            spec.image_prefix
        );
    }
    let version = field(&apt.show(&image)?, "Version")
        .with_context(|| format!("apt shows no version of {image}"))?;
    let dir = kernels.join(format!("{image}_{}", version.replace(':', "%3a")));
    if dir.join("boot").is_dir() && dir.join(MODULES).is_dir() {
        return Ok(dir);
    }

    eprintln!("xtask: {}: downloading {image} {version}", spec.name);
    let download = kernels.join("download");
    let _ = fs::remove_dir_all(&download);
    fs::create_dir_all(&download)?;
    apt.run_checked(
        apt.command("apt-get")
            .current_dir(&download)
            .args(["download", &format!("{image}={version}")]),
        "apt-get download",
    )?;
    let deb = fs::read_dir(&download)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .context("apt-get download left no .deb")?;
    let unpacked = download.join("unpacked");
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpacked)
        .status()
        .context("running dpkg-deb (from dpkg) to unpack the kernel package")?;
    if !status.success() {
        bail!("dpkg-deb -x {} failed ({status})", deb.display());
    }
    // Only boot/ and a few modules are needed: the cloud kernels have
    // virtio, the serial console and the rest of what the tests use built in.
    let partial = kernels.join(format!(".partial-{image}"));
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(partial.join(MODULES))?;
    fs::rename(unpacked.join("boot"), partial.join("boot"))
        .context("the kernel package has no boot/")?;
    for module in GUEST_MODULES {
        let found = find_module(&unpacked, module)?
            .with_context(|| format!("the kernel package has no {module}.ko"))?;
        let name = found.file_name().context("a module path has no name")?;
        fs::rename(&found, partial.join(MODULES).join(name))?;
    }
    // A kernel cached before modules were kept.
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&partial, &dir)?;
    fs::remove_dir_all(&download)?;
    Ok(dir)
}

/// apt with its sources, lists and caches under one private directory,
/// and no host preferences that could pin another version.
struct Apt {
    dir: PathBuf,
    options: Vec<String>,
}

impl Apt {
    fn new(spec: &KernelSpec, dir: &Path) -> Result<Self> {
        if !Path::new(KEYRING).is_file() {
            bail!(
                "{KEYRING} is missing: install debian-archive-keyring to check Debian's package signatures"
            );
        }
        let sources: String = spec
            .sources
            .iter()
            .map(|line| format!("deb {}\n", signed_source(line)))
            .collect();
        let lists = dir.join("lists");
        let cache = dir.join("cache");
        fs::create_dir_all(lists.join("partial"))?;
        fs::create_dir_all(cache.join("archives").join("partial"))?;
        let sources_file = dir.join("sources.list");
        if fs::read_to_string(&sources_file).ok().as_deref() != Some(sources.as_str()) {
            fs::write(&sources_file, &sources)?;
            // Lists of other sources must not answer for these.
            for entry in fs::read_dir(&lists)?.flatten() {
                if entry.path().is_file() {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        let options = [
            format!("Dir::Etc::SourceList={}", sources_file.display()),
            "Dir::Etc::SourceParts=/dev/null".into(),
            "Dir::Etc::Preferences=/dev/null".into(),
            "Dir::Etc::PreferencesParts=/dev/null".into(),
            format!("Dir::State::Lists={}", lists.display()),
            format!("Dir::Cache={}", cache.display()),
            // The download sandbox user cannot enter root's home.
            "APT::Sandbox::User=root".into(),
        ]
        .into_iter()
        .flat_map(|option| ["-o".to_string(), option])
        .collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            options,
        })
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.arg("-q").args(&self.options);
        command
    }

    fn run_checked(&self, command: &mut Command, what: &str) -> Result<()> {
        build::run_checked(command, what).context("apt is needed to fetch kernels")
    }

    fn show(&self, package: &str) -> Result<String> {
        let output = self
            .command("apt-cache")
            .args(["show", "--no-all-versions", package])
            .output()
            .context("running apt-cache")?;
        if !output.status.success() || output.stdout.is_empty() {
            bail!(
                "apt-cache show {package} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn lists_stale(&self) -> bool {
        let newest = fs::read_dir(self.dir.join("lists"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().contains("_Packages"))
            .filter_map(|entry| entry.metadata().ok()?.modified().ok())
            .max();
        newest.is_none_or(|modified| {
            SystemTime::now()
                .duration_since(modified)
                .is_ok_and(|age| age > LISTS_MAX_AGE)
        })
    }
}

/// An apt source line (`URI SUITE COMPONENT`) after `deb `, checked
/// against Debian's keyring and on `ENFORCER_VM_MIRROR` when that is set.
pub(super) fn signed_source(line: &str) -> String {
    let line = match env::var("ENFORCER_VM_MIRROR") {
        Ok(mirror) => line.replacen("http://deb.debian.org", &mirror, 1),
        Err(_) => line.to_string(),
    };
    format!("[signed-by={KEYRING}] {line}")
}

fn field(stanza: &str, name: &str) -> Option<String> {
    stanza.lines().find_map(|line| {
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|value| value.trim().to_string())
    })
}

fn newest_cached(kernels: &Path, prefix: &str) -> Option<PathBuf> {
    fs::read_dir(kernels)
        .ok()?
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
        .filter(|entry| entry.path().join("boot").is_dir())
        .max_by_key(|entry| entry.metadata().and_then(|meta| meta.modified()).ok())
        .map(|entry| entry.path())
}

/// Where a cached kernel keeps its [`GUEST_MODULES`].
const MODULES: &str = "modules";

/// `NAME.ko`, compressed or not, anywhere under `dir`.
fn find_module(dir: &Path, name: &str) -> Result<Option<PathBuf>> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if let Some(found) = find_module(&path, name)? {
                return Ok(Some(found));
            }
        } else if entry
            .file_name()
            .to_str()
            .and_then(|file| file.strip_prefix(name))
            .is_some_and(|rest| rest == ".ko" || rest.starts_with(".ko."))
        {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

fn find_in(dir: &Path, prefix: &str) -> Result<PathBuf> {
    fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(prefix))
        })
        .with_context(|| format!("no {prefix}* in {}", dir.display()))
}
