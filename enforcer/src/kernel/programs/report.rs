//! What status and the `ready` and `degraded` events say of the programs.

use enforcer_common::names::{GUARD_PROGRAMS, SOCKET_PROGRAMS};

use crate::kernel::{
    family::{Family, FamilyStatus, VerifiedProgram},
    programs::{
        Programs, exec_hook::ExecHook, mapping, packet, refusal::Refusal, states::Enforcement,
    },
};

impl Programs {
    /// How banned executables are stopped: "lsm", "signal", or why they
    /// cannot be.
    pub fn exec_enforcement(&self) -> Enforcement<'_> {
        let how = self.exec_hook.map_or("", ExecHook::method_name);
        self.states.enforcement(Family::Exec, how)
    }

    /// How domain rules are enforced here: "kernel", or why they cannot
    /// be (yet).
    pub fn domain_enforcement(&self) -> Enforcement<'_> {
        self.states.enforcement(Family::Domains, "kernel")
    }

    /// "lsm" while self-protection runs, or why it cannot here.
    pub fn self_protection(&self) -> Enforcement<'_> {
        self.states.enforcement(Family::SelfProtection, "lsm")
    }

    /// Every family's state on this host.
    pub fn families(&self) -> Vec<FamilyStatus> {
        self.states.rendered()
    }

    /// The families this kernel refused, with why.
    pub fn unavailable(&self) -> Vec<(Family, &Refusal)> {
        self.states.unavailable()
    }

    /// Every loaded program, with the verifier's count of the instructions
    /// it processed.
    pub fn verified(&self) -> Vec<VerifiedProgram> {
        let mut programs: Vec<VerifiedProgram> = self
            .ebpf
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

    /// The attached programs, in attach order.
    pub fn names(&self) -> Vec<String> {
        let attached = |family, programs: &'static [&'static str]| {
            self.states
                .is_enforcing(family)
                .then_some(programs)
                .into_iter()
                .flatten()
                .copied()
        };
        let exec = self
            .exec_hook
            .filter(|_| self.states.is_enforcing(Family::Exec))
            .map(|hook| hook.variants().dispatcher);
        attached(Family::Network, &SOCKET_PROGRAMS)
            .chain(attached(Family::Domains, &packet::LINKS))
            .chain(exec)
            .chain(
                self.exec_hook
                    .filter(|_| self.states.is_enforcing(Family::ExecBlockLoader))
                    .into_iter()
                    .flat_map(|hook| mapping::links(hook.method).iter().copied()),
            )
            .chain(attached(Family::SelfProtection, &GUARD_PROGRAMS))
            .map(ToString::to_string)
            .collect()
    }
}
