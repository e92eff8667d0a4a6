//! Self-protection, userspace side: telling the guard programs (see
//! `enforcer_common::guard`) which objects are the enforcer's and which
//! executable may touch them.
//!
//! Trust goes to the enforcer binary by device and inode, so `enforcer
//! unload` and a restarted daemon keep their access. A package upgrade
//! replaces the binary with a new inode; the daemon, when it stops,
//! trusts whatever file now sits at the path it was started from, so the
//! upgraded daemon can take over (see [`Guard::trust_installed`]).

use std::{
    collections::HashMap as StdHashMap,
    fs, io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use aya::maps::{Array, HashMap, Map, MapData, MapError};
use enforcer_common::{
    guard::{FileId, GuardState, Guarded, Kind},
    names::{MAP_GUARD_STATE, MAP_GUARDED, MAP_TRUSTED},
};

use crate::exec::resolve::kernel_dev;

/// The running binary; a magic link that names the file even after it is
/// deleted or replaced.
const OWN_EXECUTABLE: &str = "/proc/self/exe";

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("self-protection map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("self-protection: {}: {source}", path.display())]
    Stat {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the eBPF object has no map {0}")]
    MissingMap(&'static str),
    #[error("self-protection: cannot tell which maps program {0} uses: {1}")]
    ProgramInfo(String, #[source] aya::programs::ProgramError),
}

/// The guard's maps, held by the programs' owner.
pub(crate) struct Guard {
    guarded: HashMap<MapData, Guarded, u8>,
    trusted: HashMap<MapData, FileId, u8>,
    state: Array<MapData, GuardState>,
    /// The entries of each pinned link, to drop when it is unpinned.
    links: StdHashMap<&'static str, [Guarded; 2]>,
    /// The live generation image's map.
    image: Option<Guarded>,
}

impl Guard {
    pub(crate) fn new(guarded: Map, trusted: Map, state: Map) -> Result<Self, GuardError> {
        Ok(Self {
            guarded: HashMap::try_from(guarded).map_err(map_error(MAP_GUARDED))?,
            trusted: HashMap::try_from(trusted).map_err(map_error(MAP_TRUSTED))?,
            state: Array::try_from(state).map_err(map_error(MAP_GUARD_STATE))?,
            links: StdHashMap::new(),
            image: None,
        })
    }

    pub(crate) fn protect(&mut self, kind: Kind, id: u64) -> Result<(), GuardError> {
        self.guarded
            .insert(Guarded::new(kind, id), 1, 0)
            .map_err(map_error(MAP_GUARDED))
    }

    fn release(&mut self, object: Guarded) -> Result<(), GuardError> {
        match self.guarded.remove(&object) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(map_error(MAP_GUARDED)(source)),
        }
    }

    /// Guards a pin directory or pin file.
    pub(crate) fn protect_pin(&mut self, path: &Path) -> Result<(), GuardError> {
        let ino = fs::symlink_metadata(path).map_err(stat_error(path))?.ino();
        self.protect(Kind::Pin, ino)
    }

    /// Guards link `name` and its pin; `release_link` undoes both.
    pub(crate) fn protect_link(
        &mut self,
        name: &'static str,
        id: u32,
        pin: &Path,
    ) -> Result<(), GuardError> {
        let ino = fs::symlink_metadata(pin).map_err(stat_error(pin))?.ino();
        let entries = [
            Guarded::new(Kind::Link, id.into()),
            Guarded::new(Kind::Pin, ino),
        ];
        for entry in entries {
            self.guarded
                .insert(entry, 1, 0)
                .map_err(map_error(MAP_GUARDED))?;
        }
        self.links.insert(name, entries);
        Ok(())
    }

    pub(crate) fn release_link(&mut self, name: &str) -> Result<(), GuardError> {
        if let Some(entries) = self.links.remove(name) {
            for entry in entries {
                self.release(entry)?;
            }
        }
        Ok(())
    }

    /// Guards the map of a generation image before it goes live.
    pub(crate) fn protect_image(&mut self, id: u32) -> Result<(), GuardError> {
        self.protect(Kind::Map, id.into())
    }

    /// Image `id` is live; the kernel frees the one it replaced, whose
    /// entry goes too.
    pub(crate) fn image_live(&mut self, id: u32) -> Result<(), GuardError> {
        match self.image.replace(Guarded::new(Kind::Map, id.into())) {
            Some(previous) if previous.id != u64::from(id) => self.release(previous),
            _ => Ok(()),
        }
    }

    pub(crate) fn trust(&mut self, executable: &Path) -> Result<(), GuardError> {
        let file = file_id(executable)?;
        self.trusted
            .insert(file, 1, 0)
            .map_err(map_error(MAP_TRUSTED))
    }

    /// Turns the guard on: until now the programs allowed everything.
    pub(crate) fn arm(&mut self, pins: &Path) -> Result<(), GuardError> {
        self.trust(Path::new(OWN_EXECUTABLE))?;
        let pin_fs_dev = kernel_dev(fs::metadata(pins).map_err(stat_error(pins))?.dev());
        let state = GuardState {
            daemon_tgid: std::process::id(),
            pin_fs_dev,
        };
        self.state
            .set(0, state, 0)
            .map_err(map_error(MAP_GUARD_STATE))
    }

    /// Trusts the file now at the path this binary was started from, when
    /// an upgrade has put a new one there, so that the next daemon may take
    /// over these objects.
    pub(crate) fn trust_installed(&mut self) -> Result<(), GuardError> {
        let link = fs::read_link(OWN_EXECUTABLE).map_err(stat_error(Path::new(OWN_EXECUTABLE)))?;
        let text = link.to_string_lossy();
        let installed = PathBuf::from(text.strip_suffix(" (deleted)").unwrap_or(&text));
        let own = file_id(Path::new(OWN_EXECUTABLE))?;
        match file_id(&installed) {
            Ok(file) if file != own => self.trust(&installed),
            Ok(_) => Ok(()),
            // Nothing installed there any more: nothing to hand over to.
            Err(GuardError::Stat { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }
}

/// The identity the guard programs compare a task's executable with.
fn file_id(path: &Path) -> Result<FileId, GuardError> {
    let metadata = fs::metadata(path).map_err(stat_error(path))?;
    Ok(FileId {
        dev: kernel_dev(metadata.dev()),
        _reserved: 0,
        ino: metadata.ino(),
    })
}

fn map_error(name: &'static str) -> impl FnOnce(MapError) -> GuardError {
    move |source| GuardError::Map { name, source }
}

fn stat_error(path: &Path) -> impl FnOnce(io::Error) -> GuardError + '_ {
    move |source| GuardError::Stat {
        path: path.to_path_buf(),
        source,
    }
}
