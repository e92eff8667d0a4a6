//! The exec hook, which judges each exec in the cgroup, and the mapping
//! hook of `exec_block_loader` and `exec_trusted_only`, which judges
//! executable mappings with the same rules. Each is a dispatcher and its
//! variants per generation slot, as the packet programs are.

use std::{fs::File, os::fd::AsRawFd as _, path::Path, sync::Arc};

use aya::{
    Btf, Ebpf,
    maps::CgroupArray,
    programs::{BtfTracePoint, Lsm, Program, ProgramError, TracePoint, links::FdLink},
};
use enforcer_common::{
    exec::{ExecMethod, ExecOffsets},
    names::{
        EXEC_LSM_HOOK, EXEC_TRACEPOINT, MAP_EXEC_SCOPE, MAPPING_TRACEPOINT, MAPPING_VARIANTS,
        SlotVariants,
    },
};

use crate::{
    host::mountinfo,
    kernel::{
        btf::BtfError,
        family::{Family, FamilyState},
        programs::{
            Programs,
            by_name::{self, ByName},
            choice::FamilyChoice,
            error::ProgramsError,
            exec_hook::{ExecHook, ExecJudges},
            refusal::Refusal,
            variants,
        },
    },
};

/// Where aya looks for tracepoints when debugfs is not mounted.
const TRACEFS_EVENTS: &str = "/sys/kernel/tracing/events";

/// The exec family (the hook that loaded, or why none did) and the
/// exec_names family (loaded, or why the hook judges by file alone).
pub(crate) type ExecOutcome = (Result<ExecHook, Refusal>, Result<(), Refusal>);

/// Loads the exec hook, unless `choice` refuses it or this kernel's BTF
/// cannot place it.
pub(crate) fn load(
    programs: &mut ByName<'_>,
    btf: &Result<Btf, Refusal>,
    offsets: Result<ExecOffsets, Arc<BtfError>>,
    bpf_lsm_active: bool,
    choice: &FamilyChoice,
) -> ExecOutcome {
    let refused = |reason: Refusal| {
        let names = Refusal::NeedsExec(Box::new(reason.clone()));
        (Err(reason), Err(names))
    };
    match (choice.refused(Family::Exec), offsets, btf) {
        (Err(refusal), _, _) => refused(refusal),
        (Ok(()), Ok(_), Ok(btf)) => load_hook(
            programs,
            btf,
            bpf_lsm_active,
            choice.refused(Family::ExecNames),
        )
        .unwrap_or_else(refused),
        (Ok(()), Err(error), _) => refused(Refusal::Offsets(error)),
        (Ok(()), _, Err(error)) => refused(error.clone()),
    }
}

/// Loads the exec hook that judges file names too: BPF LSM where it runs,
/// else the tracepoint. Where the kernel refuses both (or the test hook
/// refuses `names`), loads the pair that judges by file alone, and says
/// why names are not judged. Err: why neither pair loads.
fn load_hook(
    programs: &mut ByName<'_>,
    btf: &Btf,
    bpf_lsm_active: bool,
    names: Result<(), Refusal>,
) -> Result<ExecOutcome, Refusal> {
    let with_names =
        match names.and_then(|()| load_variant(programs, btf, bpf_lsm_active, ExecJudges::Names)) {
            Ok(hook) => return Ok((Ok(hook), Ok(()))),
            Err(refusal) => refusal,
        };
    match load_variant(programs, btf, bpf_lsm_active, ExecJudges::FileAlone) {
        Ok(hook) => Ok((Ok(hook), Err(with_names))),
        Err(by_file) => Err(Refusal::ExecVariants {
            with_names: Box::new(with_names),
            by_file: Box::new(by_file),
        }),
    }
}

/// Loads the BPF LSM programs of `judges` where BPF LSM runs, else its
/// tracepoint programs; says which loaded, or why neither.
fn load_variant(
    programs: &mut ByName<'_>,
    btf: &Btf,
    bpf_lsm_active: bool,
    judges: ExecJudges,
) -> Result<ExecHook, Refusal> {
    let lsm_refused = if bpf_lsm_active {
        let variants = judges.variants(ExecMethod::Lsm);
        match load_slot_programs(programs, variants, |program: &mut Lsm| {
            program.load(EXEC_LSM_HOOK, btf)
        }) {
            Ok(()) => {
                return Ok(ExecHook {
                    method: ExecMethod::Lsm,
                    judges,
                });
            }
            Err(refusal) => refusal,
        }
    } else {
        Refusal::NoBpfLsm
    };
    let load_tracepoint = |program: &mut BtfTracePoint| program.load(EXEC_TRACEPOINT, btf);
    load_slot_programs(
        programs,
        judges.variants(ExecMethod::Signal),
        load_tracepoint,
    )
    .and_then(|()| match judges.script_variants(ExecMethod::Signal) {
        Some(script) => load_slot_programs(programs, script, load_tracepoint),
        None => Ok(()),
    })
    .map(|()| ExecHook {
        method: ExecMethod::Signal,
        judges,
    })
    .map_err(|tracepoint| Refusal::ExecHooks {
        lsm: Box::new(lsm_refused),
        tracepoint: Box::new(tracepoint),
    })
}

/// Loads the variants, then their dispatcher, which the variants that
/// judge by file share with those that judge names too: unless it loaded
/// with them.
fn load_slot_programs<T>(
    programs: &mut ByName<'_>,
    variants: SlotVariants,
    load: impl Fn(&mut T) -> Result<(), ProgramError>,
) -> Result<(), Refusal>
where
    for<'x> &'x mut Program: TryInto<&'x mut T, Error = ProgramError>,
{
    for name in [variants.sized, variants.any_size, variants.dispatcher] {
        let loaded = programs
            .get(name)
            .is_some_and(|program| program.fd().is_ok());
        if !loaded {
            load(by_name::program::<T>(programs, name)?)
                .map_err(|error| Refusal::program(name, &error))?;
        }
    }
    Ok(())
}

/// The mapping hook's state at start: unavailable with the exec hook (or
/// its name judging), else loaded now if `needed`.
pub(crate) fn mapping_hook_at_start(
    programs: &mut ByName<'_>,
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
        _ if needed => FamilyState::loaded(load_mapping_hook(programs)),
        _ => FamilyState::NotCheckedYet,
    }
}

/// The exec outcome and the mapping hook's state once their variants are
/// in place: a hook whose program array cannot be filled would judge
/// nothing, so it is refused.
pub(crate) fn fill_variants(
    ebpf: &mut Ebpf,
    (exec, exec_names): ExecOutcome,
    mapping_hook: FamilyState<Refusal>,
) -> (ExecOutcome, FamilyState<Refusal>) {
    let filled = |hook: ExecHook| {
        variants::fill(ebpf, hook.variants())?;
        hook.script_variants()
            .map_or(Ok(()), |script| variants::fill(ebpf, script))?;
        Ok(hook)
    };
    match exec.and_then(filled) {
        Ok(hook) => {
            let mapping_hook = match mapping_hook {
                FamilyState::Loaded => FamilyState::loaded(variants::fill(ebpf, MAPPING_VARIANTS)),
                other => other,
            };
            ((Ok(hook), exec_names), mapping_hook)
        }
        Err(refusal) => {
            let needs_exec = || Refusal::NeedsExec(Box::new(refusal.clone()));
            let mapping_hook = match mapping_hook {
                FamilyState::NotCheckedYet | FamilyState::Loaded => FamilyState::Unavailable {
                    reason: needs_exec(),
                },
                other => other,
            };
            ((Err(refusal.clone()), Err(needs_exec())), mapping_hook)
        }
    }
}

/// Loads the mapping hook's programs; [`variants::fill`] then puts the
/// variants in place.
pub(crate) fn load_mapping_hook(programs: &mut ByName<'_>) -> Result<(), Refusal> {
    load_slot_programs(programs, MAPPING_VARIANTS, |program: &mut TracePoint| {
        program.load()
    })
}

/// Loads the mapping hook in an object loaded without it, and fills its
/// program array.
pub(crate) fn load_mapping_hook_later(ebpf: &mut Ebpf) -> Result<(), Refusal> {
    {
        let mut by_name: ByName<'_> = ebpf.programs_mut().collect();
        load_mapping_hook(&mut by_name)?;
    }
    variants::fill(ebpf, MAPPING_VARIANTS)
}

impl Programs {
    /// Scope first: until the cgroup is in place the exec hook judges
    /// nothing, so it never acts outside the cgroup, even for a moment.
    pub(super) fn attach_exec(
        &mut self,
        hook: ExecHook,
        cgroup: &File,
    ) -> Result<(), ProgramsError> {
        let map = self
            .ebpf
            .map_mut(MAP_EXEC_SCOPE)
            .ok_or(ProgramsError::MissingMap(MAP_EXEC_SCOPE))?;
        let scope_error = |source| ProgramsError::Map {
            name: MAP_EXEC_SCOPE,
            source,
        };
        let mut scope = CgroupArray::try_from(map).map_err(scope_error)?;
        scope.set(0, cgroup.as_raw_fd(), 0).map_err(scope_error)?;
        let name = hook.variants().dispatcher;
        let program = self
            .ebpf
            .program_mut(name)
            .ok_or(ProgramsError::MissingProgram(name))?;
        let link = match hook.method {
            ExecMethod::Lsm => <&mut Lsm>::try_from(program)
                .and_then(|p| p.attach().and_then(|id| p.take_link(id)))
                .map(FdLink::from),
            ExecMethod::Signal => <&mut BtfTracePoint>::try_from(program)
                .and_then(|p| p.attach().and_then(|id| p.take_link(id)))
                .map(FdLink::from),
        }
        .map_err(|source| ProgramsError::Program { name, source })?;
        self.pin_fd_link(name, link)
    }

    pub(super) fn attach_mapping_hook(&mut self) -> Result<(), ProgramsError> {
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
