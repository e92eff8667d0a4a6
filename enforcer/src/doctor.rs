//! `enforcer doctor`: what a host gives the enforcer, checked before it is
//! deployed there. It asks the kernel the way the daemon does (the start
//! requirements, then every program loaded and none attached, as `probe`
//! does) and says what would run degraded, and why.

use std::{fmt, fs, path::Path};

use serde::Serialize;

use crate::{
    host::{kallsyms, mountinfo},
    kernel::{
        btf::VMLINUX_BTF_PATH,
        capabilities::Capabilities,
        family::Family,
        pins::BPF_FS_MOUNT,
        probe::{self, ProbeReport},
    },
};

const LSM_LIST: &str = "/sys/kernel/security/lsm";

/// Every check, and the host's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// `uname -r`, when the probe ran.
    pub kernel: Option<String>,
    pub checks: Vec<Check>,
    pub verdict: Status,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

/// Ordered by gravity: a diagnosis is its gravest check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// The daemon runs, and enforces less: says what.
    Degraded,
    /// The daemon would not start.
    Missing,
}

impl Diagnosis {
    /// Runs every check. Checks that need what an earlier one found
    /// missing say they were not run.
    pub fn run() -> Self {
        let mut checks = Vec::new();
        let capabilities = Capabilities::detect();
        checks.push(match &capabilities {
            Ok(found) => check(
                "requirements",
                Status::Ok,
                format!(
                    "root, cgroup v2 at {}, socket-address programs, ring buffers, \
                     array-of-maps and image maps",
                    found.cgroup2_mount.display()
                ),
            ),
            Err(error) => check("requirements", Status::Missing, error.to_string()),
        });
        checks.push(bpffs());
        let report = match capabilities {
            Ok(_) => probe::probe().map_err(|error| error.to_string()),
            Err(_) => Err("not run: the daemon would not start".to_owned()),
        };
        match &report {
            Ok(report) => {
                for family in Family::ALL {
                    if let Some(check) = family_check(report, family) {
                        checks.push(check);
                    }
                }
            }
            Err(why) => checks.push(check(
                "programs",
                Status::Missing,
                format!("the programs could not be loaded: {why}"),
            )),
        }
        let lsm_refusal = match &report {
            Ok(report) => lsm_refusal(report),
            Err(why) => Some(why.clone()),
        };
        let lsm = lsm_refusal.is_none();
        checks.push(exec_method(lsm_refusal));
        checks.push(btf());
        if !lsm {
            checks.push(script_judging());
        }
        let verdict = checks
            .iter()
            .map(|check| check.status)
            .max()
            .unwrap_or(Status::Ok);
        Diagnosis {
            kernel: report.ok().map(|report| report.kernel),
            checks,
            verdict,
        }
    }
}

fn check(name: &str, status: Status, detail: String) -> Check {
    Check {
        name: name.to_owned(),
        status,
        detail,
    }
}

fn bpffs() -> Check {
    let mounted = mountinfo::read().is_ok_and(|mounts| {
        mounts
            .iter()
            .any(|mount| mount.fstype == "bpf" && mount.mount_point == Path::new(BPF_FS_MOUNT))
    });
    let detail = if mounted {
        format!("mounted at {BPF_FS_MOUNT}")
    } else {
        format!("not mounted at {BPF_FS_MOUNT}; the daemon mounts it at start")
    };
    check("bpffs", Status::Ok, detail)
}

/// A family is degraded when the kernel refuses all of its programs, or
/// when one of them takes more than the budget: the next kernel release
/// may refuse it. Which variant the daemon picks among those that load is
/// for the checks below.
fn family_check(report: &ProbeReport, family: Family) -> Option<Check> {
    let programs: Vec<_> = report
        .programs
        .iter()
        .filter(|program| program.family == family)
        .collect();
    let first = programs.first()?;
    if !programs.iter().any(|program| program.loaded) {
        return Some(check(
            family.name(),
            Status::Degraded,
            format!(
                "unavailable: {} was refused: {}",
                first.name,
                first.error.as_deref().unwrap_or("no reason given")
            ),
        ));
    }
    let tightest = programs
        .iter()
        .filter_map(|program| Some((program.verified_insns?, program.name.as_str())))
        .max();
    Some(match tightest {
        Some((count, name)) if count > report.budget => check(
            family.name(),
            Status::Degraded,
            format!(
                "{name} takes {count} verified instructions, over the budget of {}",
                report.budget
            ),
        ),
        Some((count, name)) => check(
            family.name(),
            Status::Ok,
            format!(
                "loads; the tightest, {name}, takes {count} verified instructions, \
                 {}% of the budget",
                u64::from(count) * 100 / u64::from(report.budget)
            ),
        ),
        None => check(
            family.name(),
            Status::Ok,
            "loads (this kernel does not count verified instructions)".to_owned(),
        ),
    })
}

/// Why the exec hook's BPF LSM variant does not load, if it does not:
/// listing `bpf` among the LSMs is not enough, the kernel must also take
/// LSM programs.
fn lsm_refusal(report: &ProbeReport) -> Option<String> {
    let lsm_variants: Vec<_> = report
        .programs
        .iter()
        .filter(|program| program.family == Family::Exec && program.name.starts_with("bprm_check"))
        .collect();
    if lsm_variants.iter().any(|program| program.loaded) {
        return None;
    }
    Some(
        lsm_variants
            .first()
            .and_then(|program| program.error.clone())
            .unwrap_or_else(|| "the object holds no LSM exec hook".to_owned()),
    )
}

fn exec_method(lsm_refusal: Option<String>) -> Check {
    let list = fs::read_to_string(LSM_LIST)
        .map(|list| list.trim().to_owned())
        .unwrap_or_else(|error| format!("unreadable: {error}"));
    let Some(refusal) = lsm_refusal else {
        return check(
            "exec_method",
            Status::Ok,
            format!("lsm: a banned exec fails with EPERM (LSMs: {list})"),
        );
    };
    let remedy = if list.split(',').any(|lsm| lsm == "bpf") {
        "bpf is among the LSMs, but the kernel refuses its programs"
    } else {
        "bpf is not among the LSMs: boot with lsm=...,bpf on a kernel with CONFIG_BPF_LSM=y"
    };
    check(
        "exec_method",
        Status::Degraded,
        format!(
            "signal: a banned exec is killed before it runs code of its own, and a mapping \
             made executable with mprotect is not judged. The LSM exec hook was refused \
             ({refusal}); {remedy} (LSMs: {list})"
        ),
    )
}

fn btf() -> Check {
    if Path::new(VMLINUX_BTF_PATH).exists() {
        check("btf", Status::Ok, format!("{VMLINUX_BTF_PATH} is present"))
    } else {
        check(
            "btf",
            Status::Degraded,
            format!(
                "{VMLINUX_BTF_PATH} is missing: exec rules would not be enforced \
                 (CONFIG_DEBUG_INFO_BTF=y)"
            ),
        )
    }
}

/// On the signal method a `#!` script run directly is found behind its
/// interpreter through `____fput`'s address.
fn script_judging() -> Check {
    match kallsyms::text_address("____fput") {
        Ok(Some(_)) => check(
            "script_judging",
            Status::Ok,
            "a #! script run directly is judged as itself (____fput is in /proc/kallsyms)"
                .to_owned(),
        ),
        Ok(None) => check(
            "script_judging",
            Status::Degraded,
            "/proc/kallsyms shows no address for ____fput (kptr_restrict?): a #! script \
             run directly is judged as its interpreter"
                .to_owned(),
        ),
        Err(error) => check(
            "script_judging",
            Status::Degraded,
            format!(
                "/proc/kallsyms is unreadable ({error}): a #! script run directly is \
                     judged as its interpreter"
            ),
        ),
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Status::Ok => "ok",
            Status::Degraded => "degraded",
            Status::Missing => "missing",
        })
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(kernel) = &self.kernel {
            writeln!(f, "kernel {kernel}")?;
        }
        for check in &self.checks {
            writeln!(f, "{:<9} {:<17} {}", check.status, check.name, check.detail)?;
        }
        let summary = match self.verdict {
            Status::Ok => "this host enforces everything",
            Status::Degraded => "this host enforces what the degraded lines do not take away",
            Status::Missing => "the daemon would not start here",
        };
        writeln!(f, "{}: {summary}", self.verdict)
    }
}
