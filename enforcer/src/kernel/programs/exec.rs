//! The exec hook, which judges each exec in the cgroup, and the mapping
//! hook of `exec_block_loader` and `exec_trusted_only`, which judges
//! executable mappings with the same rules. Each is a dispatcher and its
//! variants per generation slot, as the packet programs are.

use std::{fs::File, os::fd::AsRawFd as _, sync::Arc};

use aya::{
    Btf,
    maps::CgroupArray,
    programs::{BtfTracePoint, Lsm, links::FdLink},
};
use enforcer_common::{
    exec::{ExecMethod, ExecOffsets},
    names::{EXEC_LSM_HOOK, EXEC_TRACEPOINT, MAP_EXEC_SCOPE},
};

use crate::kernel::{
    btf::BtfError,
    family::Family,
    programs::{
        Programs,
        by_name::ByName,
        choice::FamilyChoice,
        error::ProgramsError,
        exec_hook::{ExecHook, ExecJudges},
        refusal::Refusal,
        variants,
    },
};

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
        match variants::load(programs, variants, |program: &mut Lsm| {
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
    variants::load(
        programs,
        judges.variants(ExecMethod::Signal),
        load_tracepoint,
    )
    .and_then(|()| match judges.script_variants(ExecMethod::Signal) {
        Some(script) => variants::load(programs, script, load_tracepoint),
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
}
