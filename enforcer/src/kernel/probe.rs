//! `enforcer probe`: how much verifier work each kernel program takes on
//! this kernel. The verifier stops at a million processed instructions;
//! a program that needs half of that here may need all of it on the next
//! kernel, so the budget is half.

use std::{ffi::CStr, path::PathBuf, sync::Arc, thread};

use aya::{
    Btf,
    programs::{BtfTracePoint, CgroupSkb, CgroupSockAddr, Lsm, Program, ProgramError, TracePoint},
};
use enforcer_common::names::{
    EXEC_LSM_HOOK, EXEC_PROGRAMS, EXEC_TRACEPOINT, FILE_MPROTECT_VARIANTS, MMAP_FILE_VARIANTS,
};
use serde::{Deserialize, Serialize};

use crate::{
    kernel::family::Family,
    kernel::maps,
    kernel::pins::{self, BPF_FS_MOUNT, PinError, Pins},
    kernel::programs::{LoadRefused, Object, ProgramsError},
};

/// Verified instructions a program may take: half the verifier's limit.
pub const BUDGET: u32 = 500_000;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("enforcer probe loads eBPF programs and must run as root; try sudo")]
    NotRoot,
    #[error(transparent)]
    Pins(#[from] PinError),
    #[error(transparent)]
    Programs(#[from] ProgramsError),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// `uname -r`.
    pub kernel: String,
    pub budget: u32,
    pub programs: Vec<ProgramProbe>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramProbe {
    pub name: String,
    pub family: Family,
    pub loaded: bool,
    /// `None` when it was refused, or the kernel is older than 5.16.
    pub verified_insns: Option<u32>,
    /// Why the kernel refused it, short.
    pub error: Option<String>,
    /// Refused for its size (E2BIG): the verifier gave up.
    #[serde(default)]
    pub too_large: bool,
}

impl ProgramProbe {
    /// Over budget, or refused as too large: a program that the next
    /// kernel, or this one, will not take.
    pub fn fails_budget(&self, budget: u32) -> bool {
        self.too_large || self.verified_insns.is_some_and(|count| count > budget)
    }
}

impl ProbeReport {
    pub fn fails_budget(&self) -> bool {
        self.programs
            .iter()
            .any(|program| program.fails_budget(self.budget))
    }
}

/// Loads every program of the embedded object, each exec variant
/// included, into a kernel object of its own that lives as long as this
/// call: nothing is attached, and the pins the loader needs are made in a
/// directory of this process's own under the bpffs and removed.
pub fn probe() -> Result<ProbeReport, ProbeError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(ProbeError::NotRoot);
    }
    let root = PathBuf::from(BPF_FS_MOUNT).join(format!("enforcer-probe-{}", std::process::id()));
    let pins = Pins::create(&root)?;
    let programs = load_each(&pins);
    // The programs and maps go with their descriptors; the pins would keep
    // the maps alive.
    let removed = pins::remove_tree(&root);
    let programs = programs?;
    removed?;
    Ok(ProbeReport {
        kernel: kernel_release(),
        budget: BUDGET,
        programs,
    })
}

fn load_each(pins: &Pins) -> Result<Vec<ProgramProbe>, ProgramsError> {
    let Object { mut ebpf, btf, .. } = Object::open(pins, maps::sized_capacity(0))?;
    let btf = btf.as_ref();
    // Each on a thread of its own: the verifier takes seconds over the
    // largest, and the others need not wait.
    let mut probes: Vec<ProgramProbe> = thread::scope(|scope| {
        let probes: Vec<_> = ebpf
            .programs_mut()
            .filter_map(|(name, program)| {
                let family = Family::of_program(name)?;
                Some(scope.spawn(move || probe_one(name, family, program, btf)))
            })
            .collect();
        probes
            .into_iter()
            .map(|probe| probe.join().expect("a probe thread panicked"))
            .collect()
    });
    probes.sort_by(|a, b| (a.family, &a.name).cmp(&(b.family, &b.name)));
    Ok(probes)
}

fn probe_one(
    name: &str,
    family: Family,
    program: &mut Program,
    btf: Result<&Btf, &Arc<aya::BtfError>>,
) -> ProgramProbe {
    let outcome = load(name, program, btf);
    let verified_insns = outcome
        .is_ok()
        .then(|| program.info().ok()?.verified_instruction_count())
        .flatten();
    let refused = outcome.err();
    ProgramProbe {
        name: name.to_string(),
        family,
        loaded: refused.is_none(),
        verified_insns,
        too_large: refused.as_ref().is_some_and(|refused| refused.too_large),
        error: refused.map(|refused| refused.summary),
    }
}

/// Loads `program` as its type asks, attaching nothing.
fn load(
    name: &str,
    program: &mut Program,
    btf: Result<&Btf, &Arc<aya::BtfError>>,
) -> Result<(), LoadRefused> {
    let needs_btf = || {
        btf.map_err(|error| LoadRefused {
            summary: format!("no kernel BTF: {error}"),
            too_large: false,
        })
    };
    let loaded: Result<(), ProgramError> = match program {
        Program::CgroupSockAddr(program) => CgroupSockAddr::load(program),
        Program::CgroupSkb(program) => CgroupSkb::load(program),
        Program::TracePoint(program) => TracePoint::load(program),
        Program::BtfTracePoint(program) => {
            let tracepoint = if EXEC_PROGRAMS.contains(&name) {
                EXEC_TRACEPOINT
            } else {
                name
            };
            BtfTracePoint::load(program, tracepoint, needs_btf()?)
        }
        // The guard's programs are named after their hooks, as are the
        // dispatchers of the others, which their variants share.
        Program::Lsm(program) => {
            let hook = if EXEC_PROGRAMS.contains(&name) {
                EXEC_LSM_HOOK
            } else {
                [MMAP_FILE_VARIANTS, FILE_MPROTECT_VARIANTS]
                    .into_iter()
                    .find(|variants| variants.programs().contains(&name))
                    .map_or(name, |variants| variants.dispatcher)
            };
            Lsm::load(program, hook, needs_btf()?)
        }
        other => {
            return Err(LoadRefused {
                summary: format!("a program of type {:?} is not probed", other.prog_type()),
                too_large: false,
            });
        }
    };
    loaded.map_err(|error| LoadRefused::of(&error))
}

/// `uname -r`.
fn kernel_release() -> String {
    // SAFETY: a zeroed utsname is a valid out-buffer for uname(2).
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer.
    if unsafe { libc::uname(&mut name) } != 0 {
        return "unknown".to_string();
    }
    // SAFETY: uname NUL-terminates each field.
    unsafe { CStr::from_ptr(name.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(verified_insns: Option<u32>, too_large: bool) -> ProgramProbe {
        ProgramProbe {
            name: "p".into(),
            family: Family::Domains,
            loaded: verified_insns.is_some(),
            verified_insns,
            error: None,
            too_large,
        }
    }

    #[test]
    fn over_budget_or_too_large_fails_and_other_refusals_do_not() {
        assert!(!program(Some(BUDGET), false).fails_budget(BUDGET));
        assert!(program(Some(BUDGET + 1), false).fails_budget(BUDGET));
        assert!(program(None, true).fails_budget(BUDGET));
        assert!(!program(None, false).fails_budget(BUDGET));
    }
}
