//! The socket programs of CIDR rules: connect4/6 and sendmsg4/6.

use std::fs::File;

use aya::programs::{CgroupAttachMode, CgroupSockAddr};
use enforcer_common::names::SOCKET_PROGRAMS;

use crate::kernel::programs::{
    Programs,
    by_name::{self, ByName},
    error::ProgramsError,
    refusal::Refusal,
};

/// Loads every socket program; on error, says why.
pub(crate) fn load(programs: &mut ByName<'_>) -> Result<(), Refusal> {
    SOCKET_PROGRAMS.iter().try_for_each(|&name| {
        by_name::program::<CgroupSockAddr>(programs, name).and_then(|program| {
            program
                .load()
                .map_err(|error| Refusal::program(name, &error))
        })
    })
}

impl Programs {
    pub(super) fn attach_socket_programs(&mut self, cgroup: &File) -> Result<(), ProgramsError> {
        for name in SOCKET_PROGRAMS {
            // aya attaches through a BPF link, and links always run side
            // by side with other programs on the cgroup (systemd's, say):
            // the kernel refuses any mode flag on a link, so pass none.
            let program: &mut CgroupSockAddr = by_name::loaded(&mut self.ebpf, name)?;
            let link = program
                .attach(cgroup, CgroupAttachMode::Single)
                .and_then(|id| program.take_link(id))
                .map_err(|source| ProgramsError::Program { name, source })?;
            self.pin(name, link)?;
        }
        Ok(())
    }
}
