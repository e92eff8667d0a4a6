//! Attaching the families that run for as long as the daemon does.

use std::{fs::File, path::Path};

use crate::kernel::{
    family::Family,
    programs::{Programs, error::ProgramsError},
};

/// The families attached at start, whatever the policy.
const ALWAYS_ATTACHED: [Family; 4] = [
    Family::Network,
    Family::Exec,
    Family::ExecNames,
    Family::SelfProtection,
];

impl Programs {
    /// Attaches every loaded socket program, the exec hook and the guard
    /// to `cgroup`, or none: on error the ones already attached are
    /// detached again when `self` drops.
    pub fn attach(&mut self, cgroup: &Path) -> Result<(), ProgramsError> {
        let file = File::open(cgroup).map_err(|source| ProgramsError::Cgroup {
            path: cgroup.to_path_buf(),
            source,
        })?;
        if self.states.get(Family::Network).refusal().is_none() {
            self.attach_socket_programs(&file)?;
        }
        if let Some(hook) = self.exec_hook {
            self.attach_exec(hook, &file)?;
        }
        self.attach_guard()?;
        self.attached_to = Some(cgroup.to_path_buf());
        for family in ALWAYS_ATTACHED {
            self.states.set_attached(family, true);
        }
        Ok(())
    }
}
