//! Follows the paths of `exec_paths` rules after a policy is applied.
//!
//! A ban resolves each path to a (device, inode). Package upgrades, and
//! installs after the policy was applied, put a new inode behind the same
//! path, usually by writing a temporary file and renaming it over the old
//! one. This watches the directory that holds each listed path (or, while
//! the path does not exist, its nearest existing ancestor) with inotify and
//! says when anything there was created, replaced or removed, so the owner
//! can resolve the policy again.

use std::{
    collections::BTreeSet,
    io,
    os::fd::AsFd as _,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use inotify::{Inotify, WatchMask};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Events within this long of each other are reported once: an upgrade
/// touches many files in quick succession.
const SETTLE: Duration = Duration::from_millis(100);
/// How often the reader checks whether it should stop.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

const EVENTS: WatchMask = WatchMask::CREATE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::DELETE)
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF);

#[derive(Debug, thiserror::Error)]
pub(crate) enum PathWatchError {
    #[error("inotify is not available: {0}")]
    Init(#[source] io::Error),
    #[error("cannot start the path watcher thread: {0}")]
    Thread(#[source] io::Error),
}

/// Stops its thread when dropped.
pub(crate) struct PathWatch {
    directories: BTreeSet<PathBuf>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PathWatch {
    /// Watches the directories that decide what `paths` resolve to, and
    /// calls `changed` (from the watcher's thread) after something in them
    /// changed and settled. When `changed` returns false, the change was
    /// not taken and is offered again later.
    pub(crate) fn start(
        paths: &[PathBuf],
        changed: impl Fn() -> bool + Send + 'static,
    ) -> Result<Self, PathWatchError> {
        let mut inotify = Inotify::init().map_err(PathWatchError::Init)?;
        let directories = directories_to_watch(paths);
        for directory in &directories {
            // A directory that vanished meanwhile is simply not watched.
            let _ = inotify.watches().add(directory, EVENTS);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread = thread::Builder::new()
            .name("enforcer-pathwatch".into())
            .spawn({
                let stop = stop.clone();
                move || watch(&mut inotify, &stop, changed)
            })
            .map_err(PathWatchError::Thread)?;
        Ok(Self {
            directories,
            stop,
            thread: Some(thread),
        })
    }

    /// Whether the directories that decide `paths` are still the ones
    /// watched. When a missing path's parents appear, the watch must move
    /// down to them.
    pub(crate) fn covers(&self, paths: &[PathBuf]) -> bool {
        directories_to_watch(paths) == self.directories
    }
}

impl Drop for PathWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// For each path, the directory whose entries decide it: its parent when
/// that exists, else the nearest existing ancestor (where the missing part
/// will appear).
fn directories_to_watch(paths: &[PathBuf]) -> BTreeSet<PathBuf> {
    paths
        .iter()
        .filter_map(|path| {
            path.ancestors()
                .skip(1)
                .find(|ancestor| ancestor.is_dir())
                .map(Path::to_path_buf)
        })
        .collect()
}

fn watch(inotify: &mut Inotify, stop: &AtomicBool, changed: impl Fn() -> bool) {
    let mut buffer = [0u8; 4096];
    let mut pending = false;
    while !stop.load(Ordering::Relaxed) {
        let timeout = if pending { SETTLE } else { POLL_INTERVAL };
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let ready = poll(
            &mut [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)],
            timeout,
        );
        match ready {
            Ok(0) if pending => pending = !changed(),
            Ok(0) | Err(_) => {}
            Ok(_) => {
                // The records themselves do not matter: any change in a
                // watched directory means resolving again, which is cheap.
                while inotify.read_events(&mut buffer).is_ok() {}
                pending = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{fs, sync::mpsc, time::Duration};

    use super::*;
    use crate::testutil::ScratchDir;

    #[test]
    fn watches_the_parent_or_the_nearest_existing_ancestor() {
        let dir = ScratchDir::new("pathwatch-ancestors");
        fs::write(dir.join("present"), b"").unwrap();
        let watched = directories_to_watch(&[dir.join("present"), dir.join("missing/deeper/app")]);
        assert_eq!(watched.into_iter().collect::<Vec<_>>(), [dir.to_path_buf()]);
    }

    #[test]
    fn reports_a_file_replaced_by_rename_once_settled() {
        let dir = ScratchDir::new("pathwatch-rename");
        let target = dir.join("app");
        fs::write(&target, b"v1").unwrap();
        let (sender, changes) = mpsc::channel();
        let watch = PathWatch::start(std::slice::from_ref(&target), move || {
            sender.send(()).is_ok()
        })
        .unwrap();

        // What a package manager does: write aside, rename over.
        fs::write(dir.join("app.new"), b"v2").unwrap();
        fs::rename(dir.join("app.new"), &target).unwrap();

        changes
            .recv_timeout(Duration::from_secs(5))
            .expect("the replacement is reported");
        assert!(
            changes.recv_timeout(SETTLE * 3).is_err(),
            "one burst of changes is reported once"
        );
        drop(watch);
    }

    #[test]
    fn reports_a_missing_path_appearing() {
        let dir = ScratchDir::new("pathwatch-appear");
        let (sender, changes) = mpsc::channel();
        let _watch =
            PathWatch::start(&[dir.join("later/app")], move || sender.send(()).is_ok()).unwrap();
        fs::create_dir(dir.join("later")).unwrap();
        changes
            .recv_timeout(Duration::from_secs(5))
            .expect("the new directory is reported");
    }
}
