//! Loading the embedded eBPF object and attaching its programs. The daemon's
//! owner task holds the result; dropping it detaches everything.

use std::{
    collections::{BTreeSet, HashMap},
    fs::File,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    thread,
};

use aya::{
    Btf, Ebpf, EbpfError, EbpfLoader,
    maps::{CgroupArray, MapData, ProgramArray, RingBuf},
    programs::{
        BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, Lsm,
        Program, ProgramError, TracePoint, links::FdLink,
    },
};
use enforcer_common::{
    exec::{EXEC_OFFSETS_GLOBAL, ExecMethod, ExecOffsets},
    guard::{GUARD_OFFSETS_GLOBAL, GuardOffsets, Kind},
    names::{
        ANY_SIZE_SLOT_INDEX, EGRESS_VARIANTS, EXEC_LSM_HOOK, EXEC_TRACEPOINT, GUARD_PROGRAMS,
        INGRESS_VARIANTS, MAP_COUNTERS, MAP_EVENTS, MAP_EXEC_SCOPE, MAP_GENERATION,
        MAP_GENERATION_SIZED, MAP_GUARD_STATE, MAP_GUARDED, MAP_LEARNED, MAP_TRUSTED,
        MAPPING_TRACEPOINT, PROG_EGRESS, PROG_EXEC_LSM, PROG_EXEC_LSM_BY_FILE, PROG_EXEC_MAPPING,
        PROG_EXEC_SIGNAL, PROG_EXEC_SIGNAL_BY_FILE, PROG_INGRESS, PacketVariants, SIZED_SLOT_INDEX,
        SOCKET_PROGRAMS,
    },
};

use crate::{
    host::mountinfo,
    kernel::btf::{self, KernelBtf},
    kernel::capabilities::Capabilities,
    kernel::family::{Family, FamilyState, FamilyStatus, VerifiedProgram},
    kernel::guard::{Guard, GuardError},
    kernel::maps::{self, Counters, GenerationSlot, MapsError},
    kernel::pins::{PinError, Pins},
    policy::Policy,
};

/// The packet programs of domain rules, and where each attaches.
const PACKET_PROGRAMS: [(&str, CgroupSkbAttachType); 2] = [
    (PROG_EGRESS, CgroupSkbAttachType::Egress),
    (PROG_INGRESS, CgroupSkbAttachType::Ingress),
];

/// The variants the packet programs tail-call, in the order of
/// [`PACKET_PROGRAMS`].
const PACKET_VARIANTS: [PacketVariants; 2] = [EGRESS_VARIANTS, INGRESS_VARIANTS];

/// Every program of domain rules: the attached ones and their variants.
const PACKET_PROGRAM_NAMES: [&str; 6] = [
    PROG_EGRESS,
    EGRESS_VARIANTS.sized,
    EGRESS_VARIANTS.any_size,
    PROG_INGRESS,
    INGRESS_VARIANTS.sized,
    INGRESS_VARIANTS.any_size,
];

/// Where aya looks for tracepoints when debugfs is not mounted.
const TRACEFS_EVENTS: &str = "/sys/kernel/tracing/events";

/// The kernel programs, built by `cargo xtask build`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/enforcer.bpf.o"));

#[derive(Debug, thiserror::Error)]
pub enum ProgramsError {
    #[error(
        "this enforcer binary was built without its eBPF programs; build it with \
         `cargo xtask build` (plain `cargo build` only checks the userspace code)"
    )]
    NotEmbedded,
    #[error("loading the eBPF object: {0}")]
    Object(#[source] EbpfError),
    #[error("the eBPF object has no program {0}")]
    MissingProgram(&'static str),
    #[error("the eBPF object has no map {0}")]
    MissingMap(&'static str),
    #[error("program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("opening cgroup {path}: {source}")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error(transparent)]
    Maps(#[from] MapsError),
    #[error(transparent)]
    Pins(#[from] PinError),
    #[error("program {name}: its link cannot be pinned: {source}")]
    Link {
        name: &'static str,
        #[source]
        source: aya::programs::links::LinkError,
    },
    #[error(
        "--require {family}: this kernel cannot run it ({reason}); nothing was attached. \
         Drop it from --require (or `require` in the settings) to enforce the rest"
    )]
    Required {
        family: Family,
        reason: Box<Refusal>,
    },
    #[error(
        "this kernel can enforce nothing: network: {network}; exec: {exec}; domains: {domains}; \
         nothing was attached"
    )]
    NothingEnforceable {
        network: Box<Refusal>,
        exec: Box<Refusal>,
        domains: Box<Refusal>,
    },
    #[error(transparent)]
    Guard(#[from] GuardError),
}

/// Why a family's programs do not run on this host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("refused by --refuse-family, a test hook; the kernel was not asked")]
    TestHook,
    #[error("bpf is not among the active LSMs")]
    NoBpfLsm,
    #[error("no kernel BTF: {0}")]
    NoBtf(String),
    #[error("cannot read kernel struct offsets from BTF: {0}")]
    Offsets(String),
    #[error("program {name}: {refused}")]
    Program {
        name: &'static str,
        refused: LoadRefused,
    },
    #[error("BPF LSM: {lsm}; exec tracepoint: {tracepoint}")]
    ExecHooks {
        lsm: Box<Refusal>,
        tracepoint: Box<Refusal>,
    },
    #[error("with file names: {with_names}; by file alone: {by_file}")]
    ExecVariants {
        with_names: Box<Refusal>,
        by_file: Box<Refusal>,
    },
    #[error("it works with the exec hook, which is unavailable: {0}")]
    NeedsExec(Box<Refusal>),
    #[error(
        "it hashes file names in a claimed buffer, as the exec hook that judges names does, \
         and that hook is unavailable: {0}"
    )]
    NeedsExecNames(Box<Refusal>),
    #[error("registering the enforcer's objects with the guard failed: {0}")]
    Registration(String),
    #[error("its loader thread panicked")]
    Panicked,
    #[error("program array {map}: {reason}")]
    ProgramArray { map: &'static str, reason: String },
    #[error("the eBPF object has no program {0}")]
    MissingProgram(&'static str),
}

impl Refusal {
    fn program(name: &'static str, error: &ProgramError) -> Self {
        Self::Program {
            name,
            refused: LoadRefused::of(error),
        }
    }
}

/// What the kernel (or aya) answered to one program's load, short enough
/// for an event: a verifier log can run to megabytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{summary}")]
pub struct LoadRefused {
    pub summary: String,
    /// The verifier gave up on its size (E2BIG): more than a million
    /// instructions processed.
    pub too_large: bool,
}

/// Lines of the verifier's log kept from its start: they say where it
/// stopped being able to follow.
const LOG_HEAD_LINES: usize = 2;

impl LoadRefused {
    pub fn of(error: &ProgramError) -> Self {
        let ProgramError::LoadError {
            io_error,
            verifier_log,
        } = error
        else {
            return Self {
                summary: error.to_string(),
                too_large: false,
            };
        };
        let log = verifier_log.to_string();
        let lines: Vec<&str> = log.lines().filter(|line| !line.trim().is_empty()).collect();
        // The verifier's tally, which says how far it got, and the line
        // before its statistics, which says why it stopped.
        let processed = lines
            .iter()
            .rposition(|line| line.starts_with("processed "));
        let reason = processed.and_then(|tally| {
            lines[..tally].iter().rposition(|line| {
                !["verification time", "stack depth"]
                    .iter()
                    .any(|statistic| line.starts_with(statistic))
            })
        });
        let mut kept: Vec<&str> = lines.iter().take(LOG_HEAD_LINES).copied().collect();
        for index in [reason, processed].into_iter().flatten() {
            if index < LOG_HEAD_LINES {
                continue;
            }
            if kept.len() == LOG_HEAD_LINES && index > LOG_HEAD_LINES {
                kept.push("...");
            }
            kept.push(lines[index]);
        }
        let summary = if kept.is_empty() {
            format!("the kernel refused it: {io_error}")
        } else {
            format!(
                "the kernel refused it: {io_error}; verifier: {}",
                kept.join(" | ")
            )
        };
        Self {
            summary,
            too_large: io_error.raw_os_error() == Some(libc::E2BIG),
        }
    }
}

/// Which families the administrator insists on, and which a test makes
/// this loader treat as refused by the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilyChoice {
    /// Each must load, or the start fails before anything is attached.
    /// Each is loaded at start, even if the first policy does not need it.
    pub require: BTreeSet<Family>,
    /// Test hook (`run --refuse-family`): these are not offered to the
    /// kernel, and report [`Refusal::TestHook`].
    pub refuse: BTreeSet<Family>,
}

impl FamilyChoice {
    /// The refusal of the test hook, if it names `family`.
    fn refused(&self, family: Family) -> Result<(), Refusal> {
        if self.refuse.contains(&family) {
            Err(Refusal::TestHook)
        } else {
            Ok(())
        }
    }
}

/// Loaded programs and the maps they share, split by who uses them.
pub struct Loaded {
    pub programs: Programs,
    pub slot: GenerationSlot,
    pub counters: Counters,
    pub events: RingBuf<MapData>,
}

/// How this host stops banned executables, found by loading the programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecSupport {
    Enforced(ExecMethod),
    /// No exec hook loads here. The rest is enforced regardless, and exec
    /// rules are reported as not enforced.
    Unavailable(Refusal),
}

impl std::fmt::Display for ExecSupport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExecSupport::Enforced(ExecMethod::Lsm) => f.write_str("lsm"),
            ExecSupport::Enforced(ExecMethod::Signal) => f.write_str("signal"),
            ExecSupport::Unavailable(reason) => write!(f, "unavailable: {reason}"),
        }
    }
}

/// The state of programs that run only while a policy asks for them.
/// The verifier takes most of a start, so they load when a policy first
/// needs them, not before: at start if the first policy does (or they are
/// required), else at the apply of the first that does.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OnDemand {
    /// No policy has needed them yet.
    Unloaded,
    Loaded {
        attached: bool,
    },
    /// They cannot load here, for this reason.
    Unavailable(Refusal),
}

impl OnDemand {
    fn loaded(outcome: Result<(), Refusal>) -> Self {
        match outcome {
            Ok(()) => Self::Loaded { attached: false },
            Err(reason) => Self::Unavailable(reason),
        }
    }

    fn attached(&self) -> bool {
        matches!(self, Self::Loaded { attached: true })
    }

    fn state(&self) -> FamilyState {
        match self {
            Self::Unloaded => FamilyState::NotCheckedYet,
            Self::Loaded { attached } => FamilyState::from_attached(*attached),
            Self::Unavailable(reason) => FamilyState::Unavailable {
                reason: reason.to_string(),
            },
        }
    }
}

/// Which on-demand programs a policy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub packet_programs: bool,
    pub mapping_hook: bool,
}

impl Needs {
    pub fn of(policy: &Policy) -> Self {
        Self {
            packet_programs: policy.lists_domains(),
            mapping_hook: policy.options.exec_block_loader,
        }
    }
}

pub struct Programs {
    ebpf: Ebpf,
    /// The socket programs: loaded, or why not.
    network: Result<(), Refusal>,
    exec: ExecSupport,
    /// Whether the exec hook judges file names, or why only its by-file
    /// variant runs (or none: then it says why exec is unavailable).
    exec_names: Result<(), Refusal>,
    /// The `exec_block_loader` hook, attached only while a policy asks
    /// for it.
    mapping_hook: OnDemand,
    /// The packet programs of domain rules, attached only while a policy
    /// lists domains.
    packet_programs: OnDemand,
    attached_to: Option<PathBuf>,
    /// Where every link and the shared maps are pinned (see `crate::kernel::pins`).
    pins: Pins,
    /// Self-protection (see `crate::kernel::guard`): loaded, or why not.
    guard: Result<Guard, Refusal>,
}

/// The maps a later daemon reads when it takes over (see
/// `daemon::takeover`), and the program arrays of the packet programs,
/// which the kernel empties when no file holds them: pinned as soon as
/// they exist. The rest live as long as the programs that use them.
const PINNED_MAPS: [&str; 5] = [
    MAP_GENERATION,
    MAP_EVENTS,
    MAP_LEARNED,
    EGRESS_VARIANTS.map,
    INGRESS_VARIANTS.map,
];

/// The embedded object, opened with this kernel's struct offsets and a
/// sized slot of `capacity` words pinned in `pins`, and not one program
/// loaded yet.
pub struct Object {
    pub ebpf: Ebpf,
    sized_slot: PathBuf,
    offsets: Result<ExecOffsets, String>,
    guard_offsets: Result<GuardOffsets, String>,
    pub btf: Result<Btf, String>,
}

impl Object {
    pub fn open(pins: &Pins, capacity: u32) -> Result<Self, ProgramsError> {
        if OBJECT.is_empty() {
            return Err(ProgramsError::NotEmbedded);
        }
        let struct_btf = KernelBtf::load();
        let offsets = struct_btf
            .as_ref()
            .map_err(ToString::to_string)
            .and_then(|btf| btf::exec_offsets(btf).map_err(|error| error.to_string()));
        let guard_offsets = struct_btf
            .as_ref()
            .map_err(ToString::to_string)
            .and_then(|btf| btf::guard_offsets(btf).map_err(|error| error.to_string()));
        let sized_slot = pins.map_path(MAP_GENERATION_SIZED);
        maps::create_sized_slot(capacity, &sized_slot)?;
        let mut loader = EbpfLoader::new();
        loader.map_pin_path(MAP_GENERATION_SIZED, sized_slot.clone());
        if let Ok(offsets) = &offsets {
            loader.override_global(EXEC_OFFSETS_GLOBAL, offsets, true);
        }
        if let Ok(offsets) = &guard_offsets {
            loader.override_global(GUARD_OFFSETS_GLOBAL, offsets, true);
        }
        let ebpf = loader.load(OBJECT).map_err(ProgramsError::Object)?;
        Ok(Self {
            ebpf,
            sized_slot,
            offsets,
            guard_offsets,
            btf: Btf::from_sys_fs().map_err(|error| error.to_string()),
        })
    }
}

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
    let packet_needed = needs.packet_programs || choice.require.contains(&Family::Domains);
    let mut by_name: ByName<'_> = ebpf.programs_mut().collect();
    let mut packet = Some(PACKET_PROGRAM_NAMES.map(|name| by_name.remove(name)));
    let domains_refused = choice.refused(Family::Domains);
    // The packet programs take the verifier longest: they verify on
    // threads of their own while this one loads the rest.
    let (
        mut packet_programs,
        Optional {
            network,
            exec,
            exec_names,
            guard: guard_loaded,
            mapping_hook,
        },
    ) = thread::scope(|scope| {
        let packet_load = (domains_refused.is_ok() && packet_needed)
            .then(|| packet.take())
            .flatten()
            .map(|programs| scope.spawn(move || load_packet_programs(programs)));
        let rest = load_all_but_packet(
            &mut by_name,
            capabilities,
            &btf,
            (offsets, guard_offsets),
            needs.mapping_hook || choice.require.contains(&Family::ExecBlockLoader),
            choice,
        );
        let packet_programs = match (&domains_refused, packet_load) {
            (Err(refusal), _) => OnDemand::Unavailable(refusal.clone()),
            (Ok(()), Some(load)) => OnDemand::loaded(load.join().unwrap_or(Err(Refusal::Panicked))),
            (Ok(()), None) => OnDemand::Unloaded,
        };
        (packet_programs, rest)
    });
    // With neither socket programs nor an exec hook, only the packet
    // programs could enforce anything: whether they can is worth the
    // verifier's time now.
    if let (Err(_), ExecSupport::Unavailable(_), OnDemand::Unloaded, Some(programs)) =
        (&network, &exec, &packet_programs, packet.take())
    {
        packet_programs = OnDemand::loaded(load_packet_programs(programs));
    }
    drop(by_name);
    let packet_programs = match packet_programs {
        OnDemand::Loaded { .. } => OnDemand::loaded(fill_packet_variants(&mut ebpf)),
        other => other,
    };
    let mut pinned = Vec::with_capacity(PINNED_MAPS.len() + 1);
    pinned.push(sized_slot);
    for name in PINNED_MAPS {
        pinned.push(pins.map(name, ebpf.map(name).ok_or(ProgramsError::MissingMap(name))?)?);
    }
    let guard = guard_loaded
        .and_then(|()| guard_objects(&mut ebpf, &pins, &pinned).map_err(Refusal::Registration));
    let mut take = |name: &'static str| ebpf.take_map(name).ok_or(ProgramsError::MissingMap(name));
    let slot = GenerationSlot::new(take(MAP_GENERATION_SIZED)?, take(MAP_GENERATION)?, capacity)?;
    let counters = Counters::new(take(MAP_COUNTERS)?)?;
    let events = RingBuf::try_from(take(MAP_EVENTS)?).map_err(|source| ProgramsError::Map {
        name: MAP_EVENTS,
        source,
    })?;
    let programs = Programs {
        ebpf,
        network,
        exec,
        exec_names,
        mapping_hook,
        packet_programs,
        attached_to: None,
        pins,
        guard,
    };
    programs.check_enforceable(&choice.require)?;
    Ok(Loaded {
        programs,
        slot,
        counters,
        events,
    })
}

fn exec_refusal(exec: &ExecSupport) -> Option<&Refusal> {
    match exec {
        ExecSupport::Enforced(_) => None,
        ExecSupport::Unavailable(reason) => Some(reason),
    }
}

fn on_demand_refusal(state: &OnDemand) -> Option<&Refusal> {
    match state {
        OnDemand::Unavailable(reason) => Some(reason),
        OnDemand::Unloaded | OnDemand::Loaded { .. } => None,
    }
}

/// The object's programs by name, borrowed apart so that several can load
/// at once.
type ByName<'a> = HashMap<&'a str, &'a mut Program>;

fn program<'p, T>(programs: &'p mut ByName<'_>, name: &'static str) -> Result<&'p mut T, Refusal>
where
    for<'x> &'x mut Program: TryInto<&'x mut T, Error = ProgramError>,
{
    typed(name, programs.get_mut(name).map(|program| &mut **program))
}

/// The object's program `name`, as the type it must be.
fn typed<'p, T>(name: &'static str, program: Option<&'p mut Program>) -> Result<&'p mut T, Refusal>
where
    for<'x> &'x mut Program: TryInto<&'x mut T, Error = ProgramError>,
{
    program
        .ok_or(Refusal::MissingProgram(name))?
        .try_into()
        .map_err(|error| Refusal::program(name, &error))
}

/// Loads the packet programs and their variants (`programs` in the order
/// of [`PACKET_PROGRAM_NAMES`]), egress's on a thread of its own; on
/// error, says why. Domain rules need `bpf_loop` (Linux 5.17); without it,
/// network and exec enforcement still work, and domain rules are reported
/// as not enforced.
fn load_packet_programs(programs: [Option<&mut Program>; 6]) -> Result<(), Refusal> {
    let [
        egress,
        egress_sized,
        egress_any_size,
        ingress,
        ingress_sized,
        ingress_any_size,
    ] = programs;
    let (egress_names, ingress_names) = PACKET_PROGRAM_NAMES.split_at(3);
    thread::scope(|scope| {
        let egress = scope.spawn(move || {
            load_packet_family([egress, egress_sized, egress_any_size], egress_names)
        });
        let ingress = load_packet_family([ingress, ingress_sized, ingress_any_size], ingress_names);
        egress.join().unwrap_or(Err(Refusal::Panicked)).and(ingress)
    })
}

fn load_packet_family(
    programs: [Option<&mut Program>; 3],
    names: &[&'static str],
) -> Result<(), Refusal> {
    for (program, &name) in programs.into_iter().zip(names) {
        typed::<CgroupSkb>(name, program)?
            .load()
            .map_err(|error| Refusal::program(name, &error))?;
    }
    Ok(())
}

/// Puts each loaded variant in its program array, before either packet
/// program can be attached.
fn fill_packet_variants(ebpf: &mut Ebpf) -> Result<(), Refusal> {
    for variants in PACKET_VARIANTS {
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
            let refused = |reason: String| Refusal::ProgramArray {
                map: variants.map,
                reason,
            };
            let map = ebpf
                .map_mut(variants.map)
                .ok_or_else(|| refused("the eBPF object has no such map".to_string()))?;
            ProgramArray::try_from(map)
                .and_then(|mut array| array.set(index, &fd, 0))
                .map_err(|error| refused(error.to_string()))?;
        }
    }
    Ok(())
}

fn load_mapping_hook(program: Option<&mut Program>) -> Result<(), Refusal> {
    let name = PROG_EXEC_MAPPING;
    typed::<TracePoint>(name, program)?
        .load()
        .map_err(|error| Refusal::program(name, &error))
}

/// The hooks a host may lack: each loaded, or why not.
struct Optional {
    network: Result<(), Refusal>,
    exec: ExecSupport,
    exec_names: Result<(), Refusal>,
    guard: Result<(), Refusal>,
    mapping_hook: OnDemand,
}

/// The socket programs, the exec hook and the guard (each either loads or
/// says why not), and the mapping hook if the first policy needs it.
fn load_all_but_packet(
    programs: &mut ByName<'_>,
    capabilities: &Capabilities,
    btf: &Result<Btf, Refusal>,
    (offsets, guard_offsets): (Result<ExecOffsets, String>, Result<GuardOffsets, String>),
    mapping_hook_needed: bool,
    choice: &FamilyChoice,
) -> Optional {
    let network = choice.refused(Family::Network).and_then(|()| {
        SOCKET_PROGRAMS.iter().try_for_each(|&name| {
            program::<CgroupSockAddr>(programs, name).and_then(|program| {
                program
                    .load()
                    .map_err(|error| Refusal::program(name, &error))
            })
        })
    });
    let refused = |reason: Refusal| {
        let names = Refusal::NeedsExec(Box::new(reason.clone()));
        (ExecSupport::Unavailable(reason), Err(names))
    };
    let (exec, exec_names) = match (choice.refused(Family::Exec), offsets, btf) {
        (Err(refusal), _, _) => refused(refusal),
        (Ok(()), Ok(_), Ok(btf)) => load_exec_hook(
            programs,
            btf,
            capabilities.bpf_lsm_active,
            choice.refused(Family::ExecNames),
        )
        .unwrap_or_else(refused),
        (Ok(()), Err(error), _) => refused(Refusal::Offsets(error)),
        (Ok(()), _, Err(error)) => refused(error.clone()),
    };
    let guard = choice
        .refused(Family::SelfProtection)
        .and_then(|()| load_guard(programs, btf, capabilities.bpf_lsm_active, guard_offsets));
    let mapping_hook = match (&exec, &exec_names, choice.refused(Family::ExecBlockLoader)) {
        (ExecSupport::Unavailable(reason), _, _) => {
            OnDemand::Unavailable(Refusal::NeedsExec(Box::new(reason.clone())))
        }
        // It judges names with the same claimed buffers, so a kernel that
        // refuses them in the exec hook refuses them here too.
        (_, Err(reason), _) => {
            OnDemand::Unavailable(Refusal::NeedsExecNames(Box::new(reason.clone())))
        }
        (_, _, Err(refusal)) => OnDemand::Unavailable(refusal),
        _ if mapping_hook_needed => OnDemand::loaded(load_mapping_hook(
            programs.get_mut(PROG_EXEC_MAPPING).map(|p| &mut **p),
        )),
        _ => OnDemand::Unloaded,
    };
    Optional {
        network,
        exec,
        exec_names,
        guard,
        mapping_hook,
    }
}

/// Loads the exec hook that judges file names too: BPF LSM where it runs,
/// else the tracepoint. Where the kernel refuses both (or the test hook
/// refuses `exec_names`), loads the pair that judges by file alone, and
/// says why names are not judged. Err: why neither pair loads.
fn load_exec_hook(
    programs: &mut ByName<'_>,
    btf: &Btf,
    bpf_lsm_active: bool,
    names: Result<(), Refusal>,
) -> Result<(ExecSupport, Result<(), Refusal>), Refusal> {
    let with_names = match names
        .and_then(|()| load_exec_variant(programs, btf, bpf_lsm_active, ExecJudges::Names))
    {
        Ok(method) => return Ok((ExecSupport::Enforced(method), Ok(()))),
        Err(refusal) => refusal,
    };
    match load_exec_variant(programs, btf, bpf_lsm_active, ExecJudges::FileAlone) {
        Ok(method) => Ok((ExecSupport::Enforced(method), Err(with_names))),
        Err(by_file) => Err(Refusal::ExecVariants {
            with_names: Box::new(with_names),
            by_file: Box::new(by_file),
        }),
    }
}

/// What an exec hook program judges an executable by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExecJudges {
    /// Its file, its directories and its name.
    Names,
    /// Its file and its directories: the `_by_file` variants.
    FileAlone,
}

impl ExecJudges {
    fn of(names: &Result<(), Refusal>) -> Self {
        if names.is_ok() {
            Self::Names
        } else {
            Self::FileAlone
        }
    }

    /// The object's exec hook program for `method`.
    fn program(self, method: ExecMethod) -> &'static str {
        match (self, method) {
            (Self::Names, ExecMethod::Lsm) => PROG_EXEC_LSM,
            (Self::Names, ExecMethod::Signal) => PROG_EXEC_SIGNAL,
            (Self::FileAlone, ExecMethod::Lsm) => PROG_EXEC_LSM_BY_FILE,
            (Self::FileAlone, ExecMethod::Signal) => PROG_EXEC_SIGNAL_BY_FILE,
        }
    }
}

/// Loads the BPF LSM program of `judges` where BPF LSM runs, else its
/// tracepoint program; says which loaded, or why neither.
fn load_exec_variant(
    programs: &mut ByName<'_>,
    btf: &Btf,
    bpf_lsm_active: bool,
    judges: ExecJudges,
) -> Result<ExecMethod, Refusal> {
    let lsm_refused = if bpf_lsm_active {
        let name = judges.program(ExecMethod::Lsm);
        match program::<Lsm>(programs, name).and_then(|program| {
            program
                .load(EXEC_LSM_HOOK, btf)
                .map_err(|error| Refusal::program(name, &error))
        }) {
            Ok(()) => return Ok(ExecMethod::Lsm),
            Err(refusal) => refusal,
        }
    } else {
        Refusal::NoBpfLsm
    };
    let name = judges.program(ExecMethod::Signal);
    program::<BtfTracePoint>(programs, name)
        .and_then(|program| {
            program
                .load(EXEC_TRACEPOINT, btf)
                .map_err(|error| Refusal::program(name, &error))
        })
        .map(|()| ExecMethod::Signal)
        .map_err(|tracepoint| Refusal::ExecHooks {
            lsm: Box::new(lsm_refused),
            tracepoint: Box::new(tracepoint),
        })
}

/// Loads the self-protection programs; where they cannot run, says why.
fn load_guard(
    programs: &mut ByName<'_>,
    btf: &Result<Btf, Refusal>,
    bpf_lsm_active: bool,
    offsets: Result<GuardOffsets, String>,
) -> Result<(), Refusal> {
    if !bpf_lsm_active {
        return Err(Refusal::NoBpfLsm);
    }
    offsets.map_err(Refusal::Offsets)?;
    let btf = btf.as_ref().map_err(Clone::clone)?;
    for name in GUARD_PROGRAMS {
        program::<Lsm>(programs, name).and_then(|program| {
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
fn guard_objects(ebpf: &mut Ebpf, pins: &Pins, pinned: &[PathBuf]) -> Result<Guard, String> {
    let mut take = |name: &'static str| {
        ebpf.take_map(name)
            .ok_or_else(|| format!("the eBPF object has no map {name}"))
    };
    let mut guard = Guard::new(
        take(MAP_GUARDED)?,
        take(MAP_TRUSTED)?,
        take(MAP_GUARD_STATE)?,
    )
    .map_err(|error| error.to_string())?;
    for (name, program) in ebpf.programs() {
        if program.fd().is_err() {
            // Not loaded, here or yet: nothing of it exists to guard.
            continue;
        }
        protect_program(&mut guard, name, program).map_err(|error| error.to_string())?;
    }
    for path in pins.directories().iter().chain(pinned) {
        guard.protect_pin(path).map_err(|error| error.to_string())?;
    }
    Ok(guard)
}

/// Every program of `ebpf` that is loaded, with the verifier's count of
/// the instructions it processed.
pub fn verified_programs(ebpf: &Ebpf) -> Vec<VerifiedProgram> {
    let mut programs: Vec<VerifiedProgram> = ebpf
        .programs()
        .filter_map(|(name, program)| {
            let family = Family::of_program(name)?;
            // Not loaded, here or yet, has no count.
            let info = program.info().ok()?;
            Some(VerifiedProgram {
                name: name.to_string(),
                family,
                verified_insns: info.verified_instruction_count(),
            })
        })
        .collect();
    programs.sort_by(|a, b| (a.family, &a.name).cmp(&(b.family, &b.name)));
    programs
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

fn socket_program<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut CgroupSockAddr, ProgramsError> {
    ebpf.program_mut(name)
        .ok_or(ProgramsError::MissingProgram(name))?
        .try_into()
        .map_err(|source| ProgramsError::Program { name, source })
}

fn packet_program<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut CgroupSkb, ProgramsError> {
    ebpf.program_mut(name)
        .ok_or(ProgramsError::MissingProgram(name))?
        .try_into()
        .map_err(|source| ProgramsError::Program { name, source })
}

impl Programs {
    /// Attaches every loaded socket program, the exec hook and the guard
    /// to `cgroup`, or none: on error the ones already attached are
    /// detached again when `self` drops.
    pub fn attach(&mut self, cgroup: &Path) -> Result<(), ProgramsError> {
        let file = File::open(cgroup).map_err(|source| ProgramsError::Cgroup {
            path: cgroup.to_path_buf(),
            source,
        })?;
        let socket_programs = if self.network.is_ok() {
            &SOCKET_PROGRAMS[..]
        } else {
            &[]
        };
        for &name in socket_programs {
            // aya attaches through a BPF link, and links always run side
            // by side with other programs on the cgroup (systemd's, say):
            // the kernel refuses any mode flag on a link, so pass none.
            let program = socket_program(&mut self.ebpf, name)?;
            let link = program
                .attach(&file, CgroupAttachMode::Single)
                .and_then(|id| program.take_link(id))
                .map_err(|source| ProgramsError::Program { name, source })?;
            self.pin(name, link)?;
        }
        if let ExecSupport::Enforced(method) = self.exec {
            let name = ExecJudges::of(&self.exec_names).program(method);
            self.attach_exec(name, method, &file)?;
        }
        self.attach_guard()?;
        self.attached_to = Some(cgroup.to_path_buf());
        Ok(())
    }

    /// Last, so that it guards everything else from its first moment, its
    /// own links included.
    fn attach_guard(&mut self) -> Result<(), ProgramsError> {
        if self.guard.is_err() {
            return Ok(());
        }
        for name in GUARD_PROGRAMS {
            let program: &mut Lsm = self
                .ebpf
                .program_mut(name)
                .ok_or(ProgramsError::MissingProgram(name))?
                .try_into()
                .map_err(|source| ProgramsError::Program { name, source })?;
            let link = program
                .attach()
                .and_then(|id| program.take_link(id))
                .map_err(|source| ProgramsError::Program { name, source })?;
            self.pin_fd_link(name, FdLink::from(link))?;
        }
        if let Ok(guard) = &mut self.guard {
            guard.arm(self.pins.path())?;
        }
        Ok(())
    }

    /// Scope first: until the cgroup is in place the exec hook judges
    /// nothing, so it never acts outside the cgroup, even for a moment.
    fn attach_exec(
        &mut self,
        name: &'static str,
        method: ExecMethod,
        cgroup: &File,
    ) -> Result<(), ProgramsError> {
        let map = self
            .ebpf
            .map_mut(MAP_EXEC_SCOPE)
            .ok_or(ProgramsError::MissingMap(MAP_EXEC_SCOPE))?;
        let mut scope = CgroupArray::try_from(map).map_err(|source| ProgramsError::Map {
            name: MAP_EXEC_SCOPE,
            source,
        })?;
        scope
            .set(0, cgroup.as_raw_fd(), 0)
            .map_err(|source| ProgramsError::Map {
                name: MAP_EXEC_SCOPE,
                source,
            })?;
        let program = self
            .ebpf
            .program_mut(name)
            .ok_or(ProgramsError::MissingProgram(name))?;
        let link = match method {
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

    /// Pins `link`, so that its program stays attached when the daemon is
    /// gone.
    fn pin<L>(&mut self, name: &'static str, link: L) -> Result<(), ProgramsError>
    where
        FdLink: TryFrom<L, Error = aya::programs::links::LinkError>,
    {
        let link = FdLink::try_from(link).map_err(|source| ProgramsError::Link { name, source })?;
        self.pin_fd_link(name, link)
    }

    fn pin_fd_link(&mut self, name: &'static str, link: FdLink) -> Result<(), ProgramsError> {
        let id = link
            .info()
            .map_err(|source| ProgramsError::Link { name, source })?
            .id();
        let path = self.pins.link(name, link)?;
        if let Ok(guard) = &mut self.guard {
            guard.protect_link(name, id, &path)?;
        }
        Ok(())
    }

    /// Guards the map of a generation image before it goes live.
    pub fn guard_image(&mut self, id: u32) -> Result<(), ProgramsError> {
        if let Ok(guard) = &mut self.guard {
            guard.protect_image(id)?;
        }
        Ok(())
    }

    /// The image `id` is live: the guard lets the one before it go.
    pub fn image_live(&mut self, id: u32) -> Result<(), ProgramsError> {
        if let Ok(guard) = &mut self.guard {
            guard.image_live(id)?;
        }
        Ok(())
    }

    /// "lsm" while self-protection runs, or "unavailable: " and why it
    /// cannot here.
    pub fn self_protection(&self) -> String {
        match &self.guard {
            Ok(_) => "lsm".to_string(),
            Err(reason) => format!("unavailable: {reason}"),
        }
    }

    /// When the daemon stops: see [`Guard::trust_installed`].
    pub fn hand_over(&mut self) -> Result<(), ProgramsError> {
        if let Ok(guard) = &mut self.guard {
            guard.trust_installed()?;
        }
        Ok(())
    }

    pub fn pins(&self) -> &Pins {
        &self.pins
    }

    pub fn exec_support(&self) -> &ExecSupport {
        &self.exec
    }

    /// Attaches the mapping hook while `on`, detaches it otherwise. It
    /// costs every executable `mmap` on the machine, so it runs only while
    /// a policy asks for it. Where it cannot load, this does nothing:
    /// [`Self::prepare`] reported the gap.
    pub fn set_mapping_hook(&mut self, on: bool) -> Result<(), ProgramsError> {
        let name = PROG_EXEC_MAPPING;
        if on {
            self.ensure_mapping_hook();
        }
        let OnDemand::Loaded { attached } = self.mapping_hook else {
            return Ok(());
        };
        match (on, attached) {
            (true, false) => {
                if !Path::new(TRACEFS_EVENTS).exists() {
                    // aya finds the tracepoint's id through tracefs.
                    mountinfo::mount_pseudo_fs(c"tracefs", c"/sys/kernel/tracing");
                }
                let program: &mut TracePoint = self
                    .ebpf
                    .program_mut(name)
                    .ok_or(ProgramsError::MissingProgram(name))?
                    .try_into()
                    .map_err(|source| ProgramsError::Program { name, source })?;
                let (category, tracepoint) = MAPPING_TRACEPOINT;
                let link = program
                    .attach(category, tracepoint)
                    .and_then(|id| program.take_link(id))
                    .map_err(|source| ProgramsError::Program { name, source })?;
                self.pin(name, link)?;
            }
            (false, true) => self.unpin_link(name)?,
            _ => {}
        }
        self.mapping_hook = OnDemand::Loaded { attached: on };
        Ok(())
    }

    /// Loads the mapping hook unless it is loaded or known to be refused.
    fn ensure_mapping_hook(&mut self) {
        if self.mapping_hook == OnDemand::Unloaded {
            let loaded = load_mapping_hook(self.ebpf.program_mut(PROG_EXEC_MAPPING))
                .and_then(|()| self.protect_loaded(&[PROG_EXEC_MAPPING]));
            self.mapping_hook = OnDemand::loaded(loaded);
        }
    }

    /// Attaches the packet programs while `on`, detaches them otherwise.
    /// They run for every packet in the cgroup, so they run only while a
    /// policy lists domains. Where they cannot load, this does nothing:
    /// [`Self::prepare`] reported the gap.
    pub fn set_packet_programs(&mut self, on: bool) -> Result<(), ProgramsError> {
        if on {
            self.ensure_packet_programs();
        }
        let OnDemand::Loaded { attached } = self.packet_programs else {
            return Ok(());
        };
        match (on, attached) {
            (true, false) => {
                let cgroup = self
                    .attached_to
                    .clone()
                    .expect("packet programs are switched only after `attach`");
                let file = File::open(&cgroup).map_err(|source| ProgramsError::Cgroup {
                    path: cgroup,
                    source,
                })?;
                for (name, attach_type) in PACKET_PROGRAMS {
                    let program = packet_program(&mut self.ebpf, name)?;
                    let attached = program
                        .attach(&file, attach_type, CgroupAttachMode::Single)
                        .and_then(|id| program.take_link(id))
                        .map_err(|source| ProgramsError::Program { name, source })
                        .and_then(|link| self.pin(name, link));
                    if let Err(error) = attached {
                        // Both or neither: a lone egress would learn
                        // nothing from answers.
                        self.detach_packet_programs()?;
                        return Err(error);
                    }
                }
            }
            (false, true) => self.detach_packet_programs()?,
            _ => {}
        }
        self.packet_programs = OnDemand::Loaded { attached: on };
        Ok(())
    }

    /// Loads the packet programs unless they are loaded or known to be
    /// refused.
    fn ensure_packet_programs(&mut self) {
        if self.packet_programs == OnDemand::Unloaded {
            let mut by_name: ByName<'_> = self.ebpf.programs_mut().collect();
            let programs = PACKET_PROGRAM_NAMES.map(|name| by_name.remove(name));
            let loaded = load_packet_programs(programs)
                .and_then(|()| fill_packet_variants(&mut self.ebpf))
                .and_then(|()| self.protect_loaded(&PACKET_PROGRAM_NAMES));
            self.packet_programs = OnDemand::loaded(loaded);
        }
    }

    /// Guards programs loaded after the start, before they are attached.
    fn protect_loaded(&mut self, names: &[&'static str]) -> Result<(), Refusal> {
        let Ok(guard) = &mut self.guard else {
            return Ok(());
        };
        for &name in names {
            let program = self
                .ebpf
                .program(name)
                .ok_or(Refusal::MissingProgram(name))?;
            protect_program(guard, name, program)
                .map_err(|error| Refusal::Registration(error.to_string()))?;
        }
        Ok(())
    }

    /// Detaches whichever packet programs are pinned.
    fn detach_packet_programs(&mut self) -> Result<(), ProgramsError> {
        for (name, _) in PACKET_PROGRAMS {
            if self.pins.has_link(name) {
                self.unpin_link(name)?;
            }
        }
        Ok(())
    }

    /// Removes the pin of link `name`, its last reference, which detaches
    /// its program, and lets the guard forget it.
    fn unpin_link(&mut self, name: &str) -> Result<(), ProgramsError> {
        self.pins.unlink(name)?;
        if let Ok(guard) = &mut self.guard {
            guard.release_link(name)?;
        }
        Ok(())
    }

    /// How domain rules are enforced here: "kernel", or why they cannot be.
    pub fn domain_support(&self) -> String {
        match &self.packet_programs {
            OnDemand::Loaded { .. } => "kernel".to_string(),
            OnDemand::Unloaded => {
                "not checked yet: its programs load when a policy first lists domains".to_string()
            }
            OnDemand::Unavailable(reason) => format!("unavailable: {reason}"),
        }
    }

    /// Loads what `policy` needs that is not loaded yet. What this kernel
    /// refuses stays unloaded, and [`Self::unavailable`] names it: the
    /// rest of the policy is enforced all the same. Loading changes no
    /// enforcement: only attaching does.
    pub fn prepare(&mut self, policy: &Policy) {
        let needs = Needs::of(policy);
        if needs.packet_programs {
            self.ensure_packet_programs();
        }
        if needs.mapping_hook {
            self.ensure_mapping_hook();
        }
    }

    /// Every family's state on this host.
    pub fn families(&self) -> Vec<FamilyStatus> {
        let fixed = |refusal: Option<&Refusal>| match refusal {
            None => FamilyState::from_attached(self.attached_to.is_some()),
            Some(reason) => FamilyState::Unavailable {
                reason: reason.to_string(),
            },
        };
        let states = [
            fixed(self.network.as_ref().err()),
            fixed(exec_refusal(&self.exec)),
            fixed(self.exec_names.as_ref().err()),
            self.mapping_hook.state(),
            self.packet_programs.state(),
            fixed(self.guard.as_ref().err()),
        ];
        Family::ALL
            .into_iter()
            .zip(states)
            .map(|(family, state)| FamilyStatus { family, state })
            .collect()
    }

    /// The families this kernel refused, with why.
    pub fn unavailable(&self) -> Vec<(Family, &Refusal)> {
        [
            (Family::Network, self.network.as_ref().err()),
            (Family::Exec, exec_refusal(&self.exec)),
            (Family::ExecNames, self.exec_names.as_ref().err()),
            (
                Family::ExecBlockLoader,
                on_demand_refusal(&self.mapping_hook),
            ),
            (Family::Domains, on_demand_refusal(&self.packet_programs)),
            (Family::SelfProtection, self.guard.as_ref().err()),
        ]
        .into_iter()
        .filter_map(|(family, refusal)| Some((family, refusal?)))
        .collect()
    }

    /// Fails, before anything is attached, for a `required` family this
    /// kernel refused, or when it refused every family that enforces a
    /// policy.
    fn check_enforceable(&self, required: &BTreeSet<Family>) -> Result<(), ProgramsError> {
        let refused = self.unavailable();
        if let Some((family, reason)) = refused.iter().find(|(family, _)| required.contains(family))
        {
            return Err(ProgramsError::Required {
                family: *family,
                reason: Box::new((*reason).clone()),
            });
        }
        if let (Err(network), ExecSupport::Unavailable(exec), OnDemand::Unavailable(domains)) =
            (&self.network, &self.exec, &self.packet_programs)
        {
            return Err(ProgramsError::NothingEnforceable {
                network: Box::new(network.clone()),
                exec: Box::new(exec.clone()),
                domains: Box::new(domains.clone()),
            });
        }
        Ok(())
    }

    /// Every loaded program, with the verifier's count of the instructions
    /// it processed.
    pub fn verified(&self) -> Vec<VerifiedProgram> {
        verified_programs(&self.ebpf)
    }

    /// The attached programs, in attach order.
    pub fn names(&self) -> Vec<String> {
        if self.attached_to.is_none() {
            return Vec::new();
        }
        let exec = match self.exec {
            ExecSupport::Enforced(method) => Some(ExecJudges::of(&self.exec_names).program(method)),
            ExecSupport::Unavailable(_) => None,
        };
        let mapping = self.mapping_hook.attached().then_some(PROG_EXEC_MAPPING);
        let guard = self
            .guard
            .is_ok()
            .then_some(GUARD_PROGRAMS)
            .into_iter()
            .flatten();
        let packet = self
            .packet_programs
            .attached()
            .then_some(PACKET_PROGRAMS.map(|(name, _)| name))
            .into_iter()
            .flatten();
        let network = self
            .network
            .is_ok()
            .then_some(SOCKET_PROGRAMS)
            .into_iter()
            .flatten();
        network
            .chain(packet)
            .chain(exec)
            .chain(mapping)
            .chain(guard)
            .map(ToString::to_string)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(log: &str, errno: i32) -> LoadRefused {
        LoadRefused::of(&ProgramError::LoadError {
            io_error: std::io::Error::from_raw_os_error(errno),
            verifier_log: aya_obj::VerifierLog::new(log.to_string()),
        })
    }

    #[test]
    fn a_refusal_keeps_the_log_head_the_verifiers_reason_and_its_tally() {
        let log = "0: R1=ctx() R10=fp0\n; let x @ a.rs:1\n1: (bf) r6 = r1\n2: (79) r2 = *(u64 *)(r6 +0)\n\
                   R2 !read_ok\nverification time 12 usec\nstack depth 40\n\
                   processed 3149 insns (limit 1000000) max_states_per_insn 4\n";
        let refusal = refused(log, libc::EACCES);
        assert_eq!(
            refusal.summary,
            "the kernel refused it: Permission denied (os error 13); verifier: 0: R1=ctx() R10=fp0 \
             | ; let x @ a.rs:1 | ... | R2 !read_ok | processed 3149 insns (limit 1000000) \
             max_states_per_insn 4"
        );
        assert!(!refusal.too_large);
    }

    #[test]
    fn a_refusal_for_size_is_too_large() {
        let log = "0: R1=ctx()\nBPF program is too large. Processed 1000001 insn\n\
                   processed 1000001 insns (limit 1000000)\n";
        let refusal = refused(log, libc::E2BIG);
        assert!(refusal.too_large);
        assert!(
            refusal
                .summary
                .ends_with("verifier: 0: R1=ctx() | BPF program is too large. Processed 1000001 insn | processed 1000001 insns (limit 1000000)"),
            "{}",
            refusal.summary
        );
    }
}
