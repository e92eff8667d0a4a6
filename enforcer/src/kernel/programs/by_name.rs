//! Finding the object's programs by name, as the type each must be.

use std::collections::HashMap;

use aya::{
    Ebpf,
    programs::{Program, ProgramError},
};

use crate::kernel::programs::{error::ProgramsError, refusal::Refusal};

/// The object's programs by name, borrowed apart so that several can load
/// at once.
pub(crate) type ByName<'a> = HashMap<&'a str, &'a mut Program>;

/// Program `name` of `programs` to load, as the type it must be.
pub(crate) fn program<'p, T>(
    programs: &'p mut ByName<'_>,
    name: &'static str,
) -> Result<&'p mut T, Refusal>
where
    for<'x> &'x mut Program: TryInto<&'x mut T, Error = ProgramError>,
{
    typed(name, programs.get_mut(name).map(|program| &mut **program))
}

/// The object's program `name`, to load, as the type it must be.
pub(crate) fn typed<'p, T>(
    name: &'static str,
    program: Option<&'p mut Program>,
) -> Result<&'p mut T, Refusal>
where
    for<'x> &'x mut Program: TryInto<&'x mut T, Error = ProgramError>,
{
    program
        .ok_or(Refusal::MissingProgram(name))?
        .try_into()
        .map_err(|error| Refusal::program(name, &error))
}

/// The object's loaded program `name`, to attach, as the type it must be.
pub(crate) fn loaded<'a, T>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut T, ProgramsError>
where
    for<'x> &'x mut Program: TryInto<&'x mut T, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(ProgramsError::MissingProgram(name))?
        .try_into()
        .map_err(|source| ProgramsError::Program { name, source })
}
