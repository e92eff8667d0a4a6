//! Loading the embedded eBPF object and attaching its programs. The daemon's
//! owner task holds the result; dropping it detaches everything.
//!
//! Each family of programs has a module of its own ([`socket`], [`exec`],
//! [`packet`], [`guard`]) that loads and attaches it; [`load`] loads them
//! all at start, each apart, and [`on_demand`] switches the families that
//! run only while a policy needs them. Where each family stands is one
//! [`FamilyState`](crate::kernel::family::FamilyState) per family
//! ([`states`]), which status and the events render ([`report`]).

mod attach;
mod by_name;
mod choice;
mod error;
mod exec;
mod exec_hook;
mod guard;
mod links;
mod load;
mod mapping;
mod object;
mod on_demand;
mod packet;
mod refusal;
mod report;
mod socket;
mod states;
mod variants;

use std::path::PathBuf;

use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
};

pub use self::{
    choice::FamilyChoice,
    error::ProgramsError,
    load::load,
    object::Object,
    on_demand::Needs,
    refusal::{LoadRefused, Refusal},
    states::Enforcement,
};
use self::{exec_hook::ExecHook, states::FamilyStates};
use crate::kernel::{
    guard::Guard,
    hits::RuleHitTotals,
    maps::{Counters, GenerationSlot},
    pins::Pins,
};

/// Loaded programs and the maps they share, split by who uses them.
pub struct Loaded {
    pub programs: Programs,
    pub slot: GenerationSlot,
    pub counters: Counters,
    pub hits: RuleHitTotals,
    pub events: RingBuf<MapData>,
}

/// The loaded programs and what runs of them.
pub struct Programs {
    ebpf: Ebpf,
    /// Every family: not checked yet, loaded, enforcing, or unavailable
    /// and why.
    states: FamilyStates,
    /// The exec hook that loaded: there whenever the exec family is
    /// loaded.
    exec_hook: Option<ExecHook>,
    attached_to: Option<PathBuf>,
    /// Where every link and the shared maps are pinned (see `crate::kernel::pins`).
    pins: Pins,
    /// Self-protection's maps (see `crate::kernel::guard`): there whenever
    /// the self_protection family is loaded.
    guard: Option<Guard>,
}

impl Programs {
    pub fn pins(&self) -> &Pins {
        &self.pins
    }
}
