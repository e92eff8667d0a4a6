//! The program arrays through which a dispatcher tail-calls its variant
//! for the live image's slot (see `enforcer_common::names::SlotVariants`).

use std::sync::Arc;

use aya::{Ebpf, maps::ProgramArray, programs::ProgramError};
use enforcer_common::names::{ANY_SIZE_SLOT_INDEX, SIZED_SLOT_INDEX, SlotVariants};

use crate::kernel::programs::refusal::Refusal;

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
