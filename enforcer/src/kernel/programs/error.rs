//! What loading and attaching can fail with.

use std::path::PathBuf;

use aya::{EbpfError, programs::ProgramError};

use crate::kernel::{
    family::Family, guard::GuardError, hits::HitsError, maps::MapsError, pins::PinError,
    programs::refusal::Refusal,
};

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
    Hits(#[from] HitsError),
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
