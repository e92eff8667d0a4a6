//! The self-protection programs, and registering the enforcer's objects
//! with the guard (see `crate::kernel::guard`).

use std::{path::PathBuf, sync::Arc};

use aya::{
    Btf, Ebpf,
    programs::{Lsm, Program, links::FdLink},
};
use enforcer_common::{
    guard::{GuardOffsets, Kind},
    names::{GUARD_PROGRAMS, MAP_GUARD_STATE, MAP_GUARDED, MAP_TRUSTED},
};

use crate::kernel::{
    btf::BtfError,
    guard::{Guard, GuardError},
    pins::Pins,
    programs::{
        Programs,
        by_name::{self, ByName},
        error::ProgramsError,
        refusal::Refusal,
    },
};

/// Loads the self-protection programs; where they cannot run, says why.
pub(crate) fn load(
    programs: &mut ByName<'_>,
    btf: &Result<Btf, Refusal>,
    bpf_lsm_active: bool,
    offsets: Result<GuardOffsets, Arc<BtfError>>,
) -> Result<(), Refusal> {
    if !bpf_lsm_active {
        return Err(Refusal::NoBpfLsm);
    }
    offsets.map_err(Refusal::Offsets)?;
    let btf = btf.as_ref().map_err(Clone::clone)?;
    for name in GUARD_PROGRAMS {
        by_name::program::<Lsm>(programs, name).and_then(|program| {
            program
                .load(name, btf)
                .map_err(|error| Refusal::program(name, &error))
        })?;
    }
    Ok(())
}

/// Takes the guard's maps and registers every loaded program, every map
/// they use, and the pins made so far. Nothing is guarded until
/// [`Guard::arm`].
pub(crate) fn register(
    ebpf: &mut Ebpf,
    pins: &Pins,
    pinned: &[PathBuf],
) -> Result<Guard, GuardError> {
    let mut take = |name: &'static str| ebpf.take_map(name).ok_or(GuardError::MissingMap(name));
    let mut guard = Guard::new(
        take(MAP_GUARDED)?,
        take(MAP_TRUSTED)?,
        take(MAP_GUARD_STATE)?,
    )?;
    for (name, program) in ebpf.programs() {
        if program.fd().is_err() {
            // Not loaded, here or yet: nothing of it exists to guard.
            continue;
        }
        protect_program(&mut guard, name, program)?;
    }
    for path in pins.directories().iter().chain(pinned) {
        guard.protect_pin(path)?;
    }
    Ok(guard)
}

/// Guards a loaded program and every map it uses.
fn protect_program(guard: &mut Guard, name: &str, program: &Program) -> Result<(), GuardError> {
    let info = program
        .info()
        .map_err(|source| GuardError::ProgramInfo(name.to_string(), source))?;
    guard.protect(Kind::Program, info.id().into())?;
    let maps = info
        .map_ids()
        .map_err(|source| GuardError::ProgramInfo(name.to_string(), source))?;
    for map in maps.unwrap_or_default() {
        guard.protect(Kind::Map, map.into())?;
    }
    Ok(())
}

impl Programs {
    /// Last, so that it guards everything else from its first moment, its
    /// own links included.
    pub(super) fn attach_guard(&mut self) -> Result<(), ProgramsError> {
        if self.guard.is_none() {
            return Ok(());
        }
        for name in GUARD_PROGRAMS {
            let program: &mut Lsm = by_name::loaded(&mut self.ebpf, name)?;
            let link = program
                .attach()
                .and_then(|id| program.take_link(id))
                .map_err(|source| ProgramsError::Program { name, source })?;
            self.pin_fd_link(name, FdLink::from(link))?;
        }
        if let Some(guard) = &mut self.guard {
            guard.arm(self.pins.path())?;
        }
        Ok(())
    }

    /// Guards programs loaded after the start, before they are attached.
    pub(super) fn protect_loaded(&mut self, names: &[&'static str]) -> Result<(), Refusal> {
        let Some(guard) = &mut self.guard else {
            return Ok(());
        };
        for &name in names {
            let program = self
                .ebpf
                .program(name)
                .ok_or(Refusal::MissingProgram(name))?;
            protect_program(guard, name, program)
                .map_err(|error| Refusal::Registration(Arc::new(error)))?;
        }
        Ok(())
    }

    /// Guards the map of a generation image before it goes live.
    pub fn guard_image(&mut self, id: u32) -> Result<(), ProgramsError> {
        if let Some(guard) = &mut self.guard {
            guard.protect_image(id)?;
        }
        Ok(())
    }

    /// The image `id` is live: the guard lets the one before it go.
    pub fn image_live(&mut self, id: u32) -> Result<(), ProgramsError> {
        if let Some(guard) = &mut self.guard {
            guard.image_live(id)?;
        }
        Ok(())
    }

    /// When the daemon stops: see [`Guard::trust_installed`].
    pub fn hand_over(&mut self) -> Result<(), ProgramsError> {
        if let Some(guard) = &mut self.guard {
            guard.trust_installed()?;
        }
        Ok(())
    }
}
