//! Loading the embedded eBPF object and attaching its programs. The daemon's
//! owner task holds the result; dropping it detaches everything.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{MapData, RingBuf},
    programs::{CgroupAttachMode, CgroupSockAddr, ProgramError},
};
use enforcer_common::names::{MAP_COUNTERS, MAP_EVENTS, MAP_GENERATION, SOCKET_PROGRAMS};

use crate::maps::{Counters, GenerationSlot, MapsError};

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
}

/// Loaded programs and the maps they share, split by who uses them.
pub struct Loaded {
    pub programs: Programs,
    pub slot: GenerationSlot,
    pub counters: Counters,
    pub events: RingBuf<MapData>,
}

pub struct Programs {
    ebpf: Ebpf,
    attached_to: Option<PathBuf>,
}

/// Loads every program into the kernel without attaching any.
pub fn load() -> Result<Loaded, ProgramsError> {
    if OBJECT.is_empty() {
        return Err(ProgramsError::NotEmbedded);
    }
    let mut ebpf = EbpfLoader::new()
        .load(OBJECT)
        .map_err(ProgramsError::Object)?;
    for name in SOCKET_PROGRAMS {
        socket_program(&mut ebpf, name)?
            .load()
            .map_err(|source| ProgramsError::Program { name, source })?;
    }
    let mut take = |name: &'static str| ebpf.take_map(name).ok_or(ProgramsError::MissingMap(name));
    let slot = GenerationSlot::new(take(MAP_GENERATION)?)?;
    let counters = Counters::new(take(MAP_COUNTERS)?)?;
    let events = RingBuf::try_from(take(MAP_EVENTS)?).map_err(|source| ProgramsError::Map {
        name: MAP_EVENTS,
        source,
    })?;
    Ok(Loaded {
        programs: Programs {
            ebpf,
            attached_to: None,
        },
        slot,
        counters,
        events,
    })
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

impl Programs {
    /// Attaches every socket program to `cgroup`, or none: on error the
    /// ones already attached are detached again when `self` drops.
    pub fn attach(&mut self, cgroup: &Path) -> Result<(), ProgramsError> {
        let file = File::open(cgroup).map_err(|source| ProgramsError::Cgroup {
            path: cgroup.to_path_buf(),
            source,
        })?;
        for name in SOCKET_PROGRAMS {
            // aya attaches through a BPF link, and links always run side
            // by side with other programs on the cgroup (systemd's, say):
            // the kernel refuses any mode flag on a link, so pass none.
            socket_program(&mut self.ebpf, name)?
                .attach(&file, CgroupAttachMode::Single)
                .map_err(|source| ProgramsError::Program { name, source })?;
        }
        self.attached_to = Some(cgroup.to_path_buf());
        Ok(())
    }

    pub fn names(&self) -> Vec<String> {
        self.ebpf
            .programs()
            .map(|(name, _)| name.to_string())
            .collect()
    }
}
