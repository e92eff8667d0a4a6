//! The families whose programs load when a policy first needs them, and
//! stay attached only while one does. The verifier takes most of a start,
//! so they load at start only if the first policy needs them (or they are
//! required), else at the apply of the first that does; and each costs
//! every packet, or every executable mapping, on the machine while
//! attached.

use aya::Ebpf;
use enforcer_common::exec::ExecMethod;

use crate::{
    kernel::{
        family::{Family, FamilyState},
        programs::{Programs, error::ProgramsError, mapping, packet, refusal::Refusal},
    },
    policy::{Policy, Trust},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDemand {
    /// The mapping hook of `exec_block_loader` and `exec_trusted_only`.
    MappingHook,
    /// The packet programs of domain rules.
    PacketPrograms,
}

impl OnDemand {
    /// In the order they are switched on, and off.
    const ALL: [OnDemand; 2] = [OnDemand::MappingHook, OnDemand::PacketPrograms];

    pub fn family(self) -> Family {
        match self {
            Self::MappingHook => Family::ExecBlockLoader,
            Self::PacketPrograms => Family::Domains,
        }
    }

    /// Its programs, to load and guard; the mapping hook's are those of
    /// the exec hook's `method`.
    fn programs(self, method: ExecMethod) -> &'static [&'static str] {
        match self {
            Self::MappingHook => mapping::programs(method),
            Self::PacketPrograms => &packet::PROGRAMS,
        }
    }

    /// Those of its programs that attach, to detach.
    fn links(self, method: ExecMethod) -> &'static [&'static str] {
        match self {
            Self::MappingHook => mapping::links(method),
            Self::PacketPrograms => &packet::LINKS,
        }
    }

    /// Loads its programs into `ebpf`, which was loaded without them.
    fn load(self, ebpf: &mut Ebpf, method: ExecMethod) -> Result<(), Refusal> {
        match self {
            Self::MappingHook => mapping::load_later(ebpf, method),
            Self::PacketPrograms => packet::load_later(ebpf),
        }
    }
}

/// Which on-demand programs a policy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    mapping_hook: bool,
    packet_programs: bool,
}

impl Needs {
    pub fn of(policy: &Policy) -> Self {
        Self {
            mapping_hook: policy.options.exec_block_loader
                || policy.options.exec_trusted_only != Trust::Off,
            packet_programs: policy.lists_domains(),
        }
    }

    pub fn wants(self, programs: OnDemand) -> bool {
        match programs {
            OnDemand::MappingHook => self.mapping_hook,
            OnDemand::PacketPrograms => self.packet_programs,
        }
    }
}

impl Programs {
    /// Loads what `policy` needs that is not loaded yet. What this kernel
    /// refuses stays unloaded, and [`Self::unavailable`] names it: the
    /// rest of the policy is enforced all the same. Loading changes no
    /// enforcement: only attaching does.
    pub fn prepare(&mut self, policy: &Policy) {
        let needs = Needs::of(policy);
        for programs in OnDemand::ALL {
            if needs.wants(programs) {
                self.ensure_loaded(programs);
            }
        }
    }

    /// Attaches what `needs` wants that is not attached: before a
    /// generation that wants it goes live.
    pub fn attach_needed(&mut self, needs: Needs) -> Result<(), ProgramsError> {
        for programs in OnDemand::ALL {
            if needs.wants(programs) {
                self.switch(programs, true)?;
            }
        }
        Ok(())
    }

    /// Detaches what `needs` does not want: after the last generation
    /// that wanted it is gone.
    pub fn detach_unneeded(&mut self, needs: Needs) -> Result<(), ProgramsError> {
        for programs in OnDemand::ALL {
            if !needs.wants(programs) {
                self.switch(programs, false)?;
            }
        }
        Ok(())
    }

    /// Attaches `programs` while `on`, detaches them otherwise. Where they
    /// cannot load, this does nothing: [`Self::prepare`] reported the gap.
    fn switch(&mut self, programs: OnDemand, on: bool) -> Result<(), ProgramsError> {
        if on {
            self.ensure_loaded(programs);
        }
        let family = programs.family();
        let attached = match self.states.get(family) {
            FamilyState::Enforcing => true,
            FamilyState::Loaded => false,
            FamilyState::NotCheckedYet | FamilyState::Unavailable { .. } => return Ok(()),
        };
        let method = self.exec_method();
        let links = programs.links(method);
        match (on, attached) {
            (true, false) => {
                let attach = match programs {
                    OnDemand::MappingHook => self.attach_mapping_hook(method),
                    OnDemand::PacketPrograms => self.attach_packet_programs(),
                };
                if let Err(error) = attach {
                    self.unpin_links(links)?;
                    return Err(error);
                }
            }
            (false, true) => self.unpin_links(links)?,
            _ => {}
        }
        self.states.set_attached(family, on);
        Ok(())
    }

    /// Loads `programs` unless they are loaded or known to be refused.
    fn ensure_loaded(&mut self, programs: OnDemand) {
        let family = programs.family();
        if let FamilyState::NotCheckedYet = self.states.get(family) {
            let method = self.exec_method();
            let loaded = programs
                .load(&mut self.ebpf, method)
                .and_then(|()| self.protect_loaded(programs.programs(method)));
            self.states.set(family, FamilyState::loaded(loaded));
        }
    }

    /// How the exec hook stops an exec, which is how the mapping hook
    /// stops a mapping. Only the mapping hook asks, and it is never
    /// loaded without the exec hook (see `mapping::at_start`); the packet
    /// programs ignore it.
    fn exec_method(&self) -> ExecMethod {
        self.exec_hook
            .map_or(ExecMethod::Signal, |hook| hook.method)
    }
}
