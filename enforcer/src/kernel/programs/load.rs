//! Loading the programs into the kernel at start, each family apart: a
//! family the kernel refuses is recorded with its reason and the rest
//! loads.

use std::{sync::Arc, thread};

use aya::{Btf, Ebpf, maps::RingBuf};
use enforcer_common::{
    exec::ExecOffsets,
    guard::GuardOffsets,
    names::{
        EGRESS_VARIANTS, EXEC_LSM_VARIANTS, EXEC_SCRIPT_VARIANTS, EXEC_SIGNAL_VARIANTS,
        FILE_MPROTECT_VARIANTS, INGRESS_VARIANTS, MAP_COUNTERS, MAP_EVENTS, MAP_GENERATION,
        MAP_GENERATION_SIZED, MAP_LEARNED, MAP_LEARNED_ADDED, MAP_LEARNED_ADJUSTED, MAP_RULE_HITS,
        MAPPING_VARIANTS, MMAP_FILE_VARIANTS,
    },
};

use crate::kernel::{
    btf::BtfError,
    capabilities::Capabilities,
    family::{Family, FamilyState},
    hits::RuleHitTotals,
    maps::{Counters, GenerationSlot},
    pins::Pins,
    programs::{
        Loaded, Programs,
        by_name::ByName,
        choice::FamilyChoice,
        error::ProgramsError,
        exec::{self, ExecOutcome},
        exec_hook::ExecHook,
        guard, mapping,
        object::Object,
        on_demand::{Needs, OnDemand},
        packet,
        refusal::Refusal,
        socket,
        states::FamilyStates,
        variants,
    },
};

/// The maps a later daemon reads when it takes over (see
/// `daemon::takeover`), the learned-address counts the daemon keeps
/// (`kernel::learned`), and the program arrays of the dispatchers, which
/// the kernel empties when no file holds them: pinned as soon as they
/// exist. The rest live as long as the programs that use them.
const PINNED_MAPS: [&str; 13] = [
    MAP_GENERATION,
    MAP_EVENTS,
    MAP_LEARNED,
    MAP_LEARNED_ADDED,
    MAP_LEARNED_ADJUSTED,
    EGRESS_VARIANTS.map,
    INGRESS_VARIANTS.map,
    EXEC_LSM_VARIANTS.map,
    EXEC_SIGNAL_VARIANTS.map,
    EXEC_SCRIPT_VARIANTS.map,
    MAPPING_VARIANTS.map,
    MMAP_FILE_VARIANTS.map,
    FILE_MPROTECT_VARIANTS.map,
];

/// Loads every program the first policy `needs` and the families
/// `choice` requires into the kernel without attaching any, and pins the
/// shared maps in `pins`. The exec hook is chosen here, by loading it:
/// BPF LSM where the kernel runs it, else the exec tracepoint, each
/// judging file names if the kernel takes that, else by file alone. A family
/// the kernel refuses is recorded with its reason and the rest loads; the
/// load fails only for a required family, or when the kernel would let
/// nothing of a policy be enforced. The sized generation slot holds
/// images of `capacity` words (see `crate::kernel::maps`).
pub fn load(
    capabilities: &Capabilities,
    pins: Pins,
    capacity: u32,
    needs: Needs,
    choice: &FamilyChoice,
) -> Result<Loaded, ProgramsError> {
    let Object {
        mut ebpf,
        sized_slot,
        offsets,
        guard_offsets,
        btf,
    } = Object::open(&pins, capacity)?;
    let btf = btf.map_err(Refusal::NoBtf);
    let wanted =
        |programs: OnDemand| needs.wants(programs) || choice.require.contains(&programs.family());
    let mut by_name: ByName<'_> = ebpf.programs_mut().collect();
    let mut packet = Some(packet::take(&mut by_name));
    let domains_refused = choice.refused(Family::Domains);
    // The packet programs take the verifier longest: they verify on
    // threads of their own while this one loads the rest.
    let (mut domains, rest) = thread::scope(|scope| {
        let packet_load = (domains_refused.is_ok() && wanted(OnDemand::PacketPrograms))
            .then(|| packet.take())
            .flatten()
            .map(|programs| scope.spawn(move || packet::load(programs)));
        let rest = load_all_but_packet(
            &mut by_name,
            capabilities,
            &btf,
            (offsets, guard_offsets),
            wanted(OnDemand::MappingHook),
            choice,
        );
        let domains = match (&domains_refused, packet_load) {
            (Err(refusal), _) => FamilyState::Unavailable {
                reason: refusal.clone(),
            },
            (Ok(()), Some(load)) => {
                FamilyState::loaded(load.join().unwrap_or(Err(Refusal::Panicked)))
            }
            (Ok(()), None) => FamilyState::NotCheckedYet,
        };
        (domains, rest)
    });
    // With neither socket programs nor an exec hook, only the packet
    // programs could enforce anything: whether they can is worth the
    // verifier's time now.
    if let (Err(_), (Err(_), _), FamilyState::NotCheckedYet, Some(programs)) =
        (&rest.network, &rest.exec, &domains, packet.take())
    {
        domains = FamilyState::loaded(packet::load(programs));
    }
    drop(by_name);
    if let FamilyState::Loaded = domains {
        domains = FamilyState::loaded(packet::fill_variants(&mut ebpf));
    }
    let (exec_outcome, mapping_hook) = fill_exec_variants(&mut ebpf, rest.exec, rest.mapping_hook);
    let mut pinned = Vec::with_capacity(PINNED_MAPS.len() + 1);
    pinned.push(sized_slot);
    for name in PINNED_MAPS {
        pinned.push(pins.map(name, ebpf.map(name).ok_or(ProgramsError::MissingMap(name))?)?);
    }
    let guard = rest.guard.and_then(|()| {
        guard::register(&mut ebpf, &pins, &pinned)
            .map_err(|error| Refusal::Registration(error.into()))
    });
    let mut take = |name: &'static str| ebpf.take_map(name).ok_or(ProgramsError::MissingMap(name));
    let slot = GenerationSlot::new(take(MAP_GENERATION_SIZED)?, take(MAP_GENERATION)?, capacity)?;
    let counters = Counters::new(take(MAP_COUNTERS)?)?;
    let hits = RuleHitTotals::new(take(MAP_RULE_HITS)?)?;
    let events = RingBuf::try_from(take(MAP_EVENTS)?).map_err(|source| ProgramsError::Map {
        name: MAP_EVENTS,
        source,
    })?;
    let (exec, exec_names) = exec_outcome;
    let (exec_hook, exec) = match exec {
        Ok(hook) => (Some(hook), Ok(())),
        Err(refusal) => (None, Err(refusal)),
    };
    let (guard, self_protection) = match guard {
        Ok(guard) => (Some(guard), Ok(())),
        Err(refusal) => (None, Err(refusal)),
    };
    let states = FamilyStates::new(|family| match family {
        Family::Network => FamilyState::loaded(rest.network.clone()),
        Family::Exec => FamilyState::loaded(exec.clone()),
        Family::ExecNames => FamilyState::loaded(exec_names.clone()),
        Family::ExecBlockLoader => mapping_hook.clone(),
        Family::Domains => domains.clone(),
        Family::SelfProtection => FamilyState::loaded(self_protection.clone()),
    });
    states.check_enforceable(&choice.require)?;
    Ok(Loaded {
        programs: Programs {
            ebpf,
            states,
            exec_hook,
            attached_to: None,
            pins,
            guard,
        },
        slot,
        counters,
        hits,
        events,
    })
}

/// The families loaded apart from the packet programs: each loaded, or
/// why not.
struct AllButPacket {
    network: Result<(), Refusal>,
    exec: ExecOutcome,
    guard: Result<(), Refusal>,
    mapping_hook: FamilyState<Refusal>,
}

/// The socket programs, the exec hook and the guard (each either loads or
/// says why not), and the mapping hook if `mapping_hook_needed`.
fn load_all_but_packet(
    programs: &mut ByName<'_>,
    capabilities: &Capabilities,
    btf: &Result<Btf, Refusal>,
    (offsets, guard_offsets): (
        Result<ExecOffsets, Arc<BtfError>>,
        Result<GuardOffsets, Arc<BtfError>>,
    ),
    mapping_hook_needed: bool,
    choice: &FamilyChoice,
) -> AllButPacket {
    let network = choice
        .refused(Family::Network)
        .and_then(|()| socket::load(programs));
    let exec = exec::load(programs, btf, offsets, capabilities.bpf_lsm_active, choice);
    let guard = choice
        .refused(Family::SelfProtection)
        .and_then(|()| guard::load(programs, btf, capabilities.bpf_lsm_active, guard_offsets));
    let mapping_hook = mapping::at_start(programs, btf, &exec, choice, mapping_hook_needed);
    AllButPacket {
        network,
        exec,
        guard,
        mapping_hook,
    }
}

/// The exec outcome and the mapping hook's state once their variants are
/// in place: a hook whose program array cannot be filled would judge
/// nothing, so it is refused.
fn fill_exec_variants(
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
                FamilyState::Loaded => FamilyState::loaded(mapping::fill(ebpf, hook.method)),
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
