//! The mapping hook of `exec_block_loader` and `exec_trusted_only`, which
//! judges executable mappings of files with the exec rules: the dynamic
//! loader maps the program it runs, which is never exec'd itself. It stops
//! a mapping the way the exec hook stops an exec: where BPF LSM runs,
//! `mmap_file` and `file_mprotect` refuse the call with EPERM (the second
//! sees a mapping made executable after the fact); elsewhere the `mmap`
//! tracepoint kills the process.

use std::path::Path;

use aya::{
    Btf, Ebpf,
    programs::{Lsm, TracePoint, links::FdLink},
};
use enforcer_common::{
    exec::ExecMethod,
    names::{FILE_MPROTECT_VARIANTS, MAPPING_TRACEPOINT, MAPPING_VARIANTS, MMAP_FILE_VARIANTS},
};

use crate::{
    host::mountinfo,
    kernel::{
        family::{Family, FamilyState},
        programs::{
            Programs,
            by_name::{self, ByName},
            choice::FamilyChoice,
            error::ProgramsError,
            exec::ExecOutcome,
            refusal::Refusal,
            variants,
        },
    },
};

/// Where aya looks for tracepoints when debugfs is not mounted.
const TRACEFS_EVENTS: &str = "/sys/kernel/tracing/events";

const SIGNAL_PROGRAMS: [&str; 3] = MAPPING_VARIANTS.programs();
const LSM_PROGRAMS: [&str; 6] = {
    let [mmap, mmap_sized, mmap_any_size] = MMAP_FILE_VARIANTS.programs();
    let [mprotect, mprotect_sized, mprotect_any_size] = FILE_MPROTECT_VARIANTS.programs();
    [
        mmap,
        mmap_sized,
        mmap_any_size,
        mprotect,
        mprotect_sized,
        mprotect_any_size,
    ]
};
const SIGNAL_LINKS: [&str; 1] = [MAPPING_VARIANTS.dispatcher];
const LSM_LINKS: [&str; 2] = [
    MMAP_FILE_VARIANTS.dispatcher,
    FILE_MPROTECT_VARIANTS.dispatcher,
];

/// Its programs with `method`, to load and guard.
pub(crate) fn programs(method: ExecMethod) -> &'static [&'static str] {
    match method {
        ExecMethod::Lsm => &LSM_PROGRAMS,
        ExecMethod::Signal => &SIGNAL_PROGRAMS,
    }
}

/// Those of them that attach.
pub(crate) fn links(method: ExecMethod) -> &'static [&'static str] {
    match method {
        ExecMethod::Lsm => &LSM_LINKS,
        ExecMethod::Signal => &SIGNAL_LINKS,
    }
}

/// The mapping hook's state at start: unavailable with the exec hook (or
/// its name judging), else loaded now, the way the exec hook runs, if
/// `needed`.
pub(crate) fn at_start(
    programs: &mut ByName<'_>,
    btf: &Result<Btf, Refusal>,
    (exec, exec_names): &ExecOutcome,
    choice: &FamilyChoice,
    needed: bool,
) -> FamilyState<Refusal> {
    let unavailable = |reason| FamilyState::Unavailable { reason };
    match (exec, exec_names, choice.refused(Family::ExecBlockLoader)) {
        (Err(reason), _, _) => unavailable(Refusal::NeedsExec(Box::new(reason.clone()))),
        // It judges names with the same claimed buffers, so a kernel that
        // refuses them in the exec hook refuses them here too.
        (_, Err(reason), _) => unavailable(Refusal::NeedsExecNames(Box::new(reason.clone()))),
        (_, _, Err(refusal)) => unavailable(refusal),
        (Ok(hook), _, _) if needed => FamilyState::loaded(match hook.method {
            ExecMethod::Lsm => btf
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|btf| load_lsm(programs, btf)),
            ExecMethod::Signal => load_tracepoint(programs),
        }),
        _ => FamilyState::NotCheckedYet,
    }
}

/// Loads the BPF LSM programs; [`fill`] then puts the variants in place.
fn load_lsm(programs: &mut ByName<'_>, btf: &Btf) -> Result<(), Refusal> {
    [MMAP_FILE_VARIANTS, FILE_MPROTECT_VARIANTS]
        .into_iter()
        .try_for_each(|variants| {
            variants::load(programs, variants, |program: &mut Lsm| {
                program.load(variants.dispatcher, btf)
            })
        })
}

/// Loads the tracepoint's programs; [`fill`] then puts the variants in
/// place.
fn load_tracepoint(programs: &mut ByName<'_>) -> Result<(), Refusal> {
    variants::load(programs, MAPPING_VARIANTS, |program: &mut TracePoint| {
        program.load()
    })
}

/// Loads the programs of `method` in an object loaded without them, and
/// fills their program arrays. Only BPF LSM programs need the kernel's
/// BTF, which nothing kept since the start.
pub(crate) fn load_later(ebpf: &mut Ebpf, method: ExecMethod) -> Result<(), Refusal> {
    let btf = match method {
        ExecMethod::Lsm => Some(Btf::from_sys_fs().map_err(|error| Refusal::NoBtf(error.into()))?),
        ExecMethod::Signal => None,
    };
    {
        let mut by_name: ByName<'_> = ebpf.programs_mut().collect();
        match &btf {
            Some(btf) => load_lsm(&mut by_name, btf)?,
            None => load_tracepoint(&mut by_name)?,
        }
    }
    fill(ebpf, method)
}

/// Puts the variants of `method`'s programs in their arrays.
pub(crate) fn fill(ebpf: &mut Ebpf, method: ExecMethod) -> Result<(), Refusal> {
    match method {
        ExecMethod::Lsm => [MMAP_FILE_VARIANTS, FILE_MPROTECT_VARIANTS]
            .into_iter()
            .try_for_each(|variants| variants::fill(ebpf, variants)),
        ExecMethod::Signal => variants::fill(ebpf, MAPPING_VARIANTS),
    }
}

impl Programs {
    /// Attaches the mapping hook's dispatchers for `method`. On error the
    /// caller detaches those that attached.
    pub(super) fn attach_mapping_hook(&mut self, method: ExecMethod) -> Result<(), ProgramsError> {
        match method {
            ExecMethod::Lsm => {
                for name in LSM_LINKS {
                    let program: &mut Lsm = by_name::loaded(&mut self.ebpf, name)?;
                    let link = program
                        .attach()
                        .and_then(|id| program.take_link(id))
                        .map(FdLink::from)
                        .map_err(|source| ProgramsError::Program { name, source })?;
                    self.pin_fd_link(name, link)?;
                }
                Ok(())
            }
            ExecMethod::Signal => {
                let name = MAPPING_VARIANTS.dispatcher;
                if !Path::new(TRACEFS_EVENTS).exists() {
                    // aya finds the tracepoint's id through tracefs.
                    mountinfo::mount_pseudo_fs(c"tracefs", c"/sys/kernel/tracing");
                }
                let program: &mut TracePoint = by_name::loaded(&mut self.ebpf, name)?;
                let (category, tracepoint) = MAPPING_TRACEPOINT;
                let link = program
                    .attach(category, tracepoint)
                    .and_then(|id| program.take_link(id))
                    .map_err(|source| ProgramsError::Program { name, source })?;
                self.pin(name, link)
            }
        }
    }
}
