//! The program arrays through which a dispatcher tail-calls its variant
//! for the live image's slot (see `enforcer_common::names::SlotVariants`).

use std::sync::Arc;

use aya::{
    Ebpf,
    maps::ProgramArray,
    programs::{Program, ProgramError},
};
use enforcer_common::names::{ANY_SIZE_SLOT_INDEX, SIZED_SLOT_INDEX, SlotVariants};

use crate::kernel::programs::{
    by_name::{self, ByName},
    refusal::Refusal,
};

/// Puts each loaded variant in its program array: before the dispatcher
/// can be attached, which would otherwise judge nothing.
pub(crate) fn fill(ebpf: &mut Ebpf, variants: SlotVariants) -> Result<(), Refusal> {
    for (index, name) in [
        (SIZED_SLOT_INDEX, variants.sized),
        (ANY_SIZE_SLOT_INDEX, variants.any_size),
    ] {
        let fd = ebpf
            .program(name)
            .ok_or(Refusal::MissingProgram(name))?
            .fd()
            .and_then(|fd| fd.try_clone().map_err(ProgramError::from))
            .map_err(|error| Refusal::program(name, &error))?;
        let map = ebpf
            .map_mut(variants.map)
            .ok_or(Refusal::MissingMap(variants.map))?;
        ProgramArray::try_from(map)
            .and_then(|mut array| array.set(index, &fd, 0))
            .map_err(|source| Refusal::ProgramArray {
                map: variants.map,
                source: Arc::new(source),
            })?;
    }
    Ok(())
}

/// Loads the variants, then their dispatcher, which the variants that
/// judge by file share with those that judge names too: unless it loaded
/// with them.
pub(crate) fn load<T>(
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
