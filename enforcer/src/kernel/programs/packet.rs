//! The packet programs of domain rules: egress and ingress, each with the
//! variants it tail-calls.

use std::{fs::File, thread};

use aya::{
    Ebpf,
    programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, Program},
};
use enforcer_common::names::{
    EGRESS_VARIANTS, INGRESS_VARIANTS, PROG_EGRESS, PROG_INGRESS, SlotVariants,
};

use crate::kernel::programs::{
    Programs,
    by_name::{self, ByName},
    error::ProgramsError,
    refusal::Refusal,
    variants,
};

/// The packet programs that attach, and where.
const ATTACHED: [(&str, CgroupSkbAttachType); 2] = [
    (PROG_EGRESS, CgroupSkbAttachType::Egress),
    (PROG_INGRESS, CgroupSkbAttachType::Ingress),
];

/// The names of the packet programs that attach: their links.
pub(crate) const LINKS: [&str; 2] = [ATTACHED[0].0, ATTACHED[1].0];

/// The variants the packet programs tail-call, in the order of
/// [`ATTACHED`].
const VARIANTS: [SlotVariants; 2] = [EGRESS_VARIANTS, INGRESS_VARIANTS];

/// Every program of domain rules: the attached ones and their variants.
pub(crate) const PROGRAMS: [&str; 6] = [
    PROG_EGRESS,
    EGRESS_VARIANTS.sized,
    EGRESS_VARIANTS.any_size,
    PROG_INGRESS,
    INGRESS_VARIANTS.sized,
    INGRESS_VARIANTS.any_size,
];

/// Takes the packet programs out of `programs`, in the order of
/// [`PROGRAMS`], to load them apart from the rest.
pub(crate) fn take<'a>(programs: &mut ByName<'a>) -> [Option<&'a mut Program>; 6] {
    PROGRAMS.map(|name| programs.remove(name))
}

/// Loads the packet programs and their variants (`programs` as [`take`]
/// gives them), egress's on a thread of its own; on error, says why.
/// Domain rules need `bpf_loop` (Linux 5.17); without it, network and
/// exec enforcement still work, and domain rules are reported as not
/// enforced.
pub(crate) fn load(programs: [Option<&mut Program>; 6]) -> Result<(), Refusal> {
    let [
        egress,
        egress_sized,
        egress_any_size,
        ingress,
        ingress_sized,
        ingress_any_size,
    ] = programs;
    let (egress_names, ingress_names) = PROGRAMS.split_at(3);
    thread::scope(|scope| {
        let egress = scope
            .spawn(move || load_direction([egress, egress_sized, egress_any_size], egress_names));
        let ingress = load_direction([ingress, ingress_sized, ingress_any_size], ingress_names);
        egress.join().unwrap_or(Err(Refusal::Panicked)).and(ingress)
    })
}

fn load_direction(
    programs: [Option<&mut Program>; 3],
    names: &[&'static str],
) -> Result<(), Refusal> {
    for (program, &name) in programs.into_iter().zip(names) {
        by_name::typed::<CgroupSkb>(name, program)?
            .load()
            .map_err(|error| Refusal::program(name, &error))?;
    }
    Ok(())
}

/// Puts each loaded variant in its program array, before either packet
/// program can be attached.
pub(crate) fn fill_variants(ebpf: &mut Ebpf) -> Result<(), Refusal> {
    VARIANTS
        .into_iter()
        .try_for_each(|variants| variants::fill(ebpf, variants))
}

/// Loads the packet programs of an object loaded without them, and fills
/// their program arrays.
pub(crate) fn load_later(ebpf: &mut Ebpf) -> Result<(), Refusal> {
    {
        let mut by_name: ByName<'_> = ebpf.programs_mut().collect();
        load(take(&mut by_name))?;
    }
    fill_variants(ebpf)
}

impl Programs {
    /// Both or neither: a lone egress would learn nothing from answers.
    /// On error, the caller detaches the one that is attached.
    pub(super) fn attach_packet_programs(&mut self) -> Result<(), ProgramsError> {
        let cgroup = self
            .attached_to
            .clone()
            .expect("packet programs are switched only after `attach`");
        let file = File::open(&cgroup).map_err(|source| ProgramsError::Cgroup {
            path: cgroup,
            source,
        })?;
        for (name, attach_type) in ATTACHED {
            let program: &mut CgroupSkb = by_name::loaded(&mut self.ebpf, name)?;
            let link = program
                .attach(&file, attach_type, CgroupAttachMode::Single)
                .and_then(|id| program.take_link(id))
                .map_err(|source| ProgramsError::Program { name, source })?;
            self.pin(name, link)?;
        }
        Ok(())
    }
}
