//! Pinning links, which keeps their programs attached when the daemon is
//! gone, and unpinning them, which detaches them.

use aya::programs::links::{FdLink, LinkError};

use crate::kernel::programs::{Programs, error::ProgramsError};

impl Programs {
    /// Pins `link`, so that its program stays attached when the daemon is
    /// gone.
    pub(super) fn pin<L>(&mut self, name: &'static str, link: L) -> Result<(), ProgramsError>
    where
        FdLink: TryFrom<L, Error = LinkError>,
    {
        let link = FdLink::try_from(link).map_err(|source| ProgramsError::Link { name, source })?;
        self.pin_fd_link(name, link)
    }

    pub(super) fn pin_fd_link(
        &mut self,
        name: &'static str,
        link: FdLink,
    ) -> Result<(), ProgramsError> {
        let id = link
            .info()
            .map_err(|source| ProgramsError::Link { name, source })?
            .id();
        let path = self.pins.link(name, link)?;
        if let Some(guard) = &mut self.guard {
            guard.protect_link(name, id, &path)?;
        }
        Ok(())
    }

    /// Detaches whichever of the programs `names` are pinned.
    pub(super) fn unpin_links(&mut self, names: &[&'static str]) -> Result<(), ProgramsError> {
        for &name in names {
            if self.pins.has_link(name) {
                self.pins.unlink(name)?;
                if let Some(guard) = &mut self.guard {
                    guard.release_link(name)?;
                }
            }
        }
        Ok(())
    }
}
