//! Finds the files that hold content an `exec_sha256` rule bans, as the
//! (device, inode) pairs the exec hooks compare.
//!
//! The hooks never hash: file-sized reads inside execve would stall every
//! exec. So the hashing happens here, ahead of time: once over the roots at
//! start, then for every file closed after writing. A close after writing is
//! the only way new content becomes runnable, because the kernel refuses to
//! exec a file that is still open for writing (ETXTBSY).
//!
//! In strict mode the watch also answers the kernel's permission request
//! for every exec on the watched filesystems (see [`permission`]): a version
//! of a file already examined is answered from the cache at once, an
//! unknown one is hashed right there, and banned content is refused
//! (EPERM), so it does not run even once before its match reaches the
//! hooks.
//!
//! Limits, from what fanotify reports and from doing the work off the exec
//! path:
//! - without strict mode, between a close and the end of its hash there is
//!   a window in which the file runs;
//! - only matches are reported: an inode that later gets other content, or
//!   is deleted and its number reused, is not withdrawn here;
//! - chmod is not an event, so a file written without the exec bit and
//!   without an ELF or `#!` header is looked at again only on a rescan (for
//!   instance one a queue overflow starts), or in strict mode when it is
//!   executed; such content runs only through binfmt_misc;
//! - writes through a shared writable mapping after the close are not
//!   events;
//! - only the filesystems that hold the roots are watched, writes and execs
//!   alike;
//! - where the kernel refuses filesystem marks (before 4.20), mount marks
//!   see only writes and execs made through that mount, not through bind
//!   mounts or other namespaces' mounts of the same filesystem;
//! - a queue overflow rescans the roots, not the whole filesystems, so a
//!   lost event for a file outside the roots stays lost;
//! - files larger than [`MAX_FILE_SIZE`] are never hashed.
//!
//! And in strict mode:
//! - the kernel asks before it refuses writers (ETXTBSY), so a writer that
//!   still holds the file open when the exec is answered can change it
//!   before the exec goes on;
//! - the answer fails open: an unreadable file, a daemon that is stopping or
//!   has died, and more than the kernel's queue of 16384 waiting execs are
//!   all let through;
//! - the daemon's own execs are not examined;
//! - one thread answers, so while it hashes an unknown version every other
//!   exec on the watched filesystems waits, and a version changed within the
//!   last seconds is hashed again at each exec (see [`cache`]).

mod cache;
mod digest;
mod fanotify;
mod judge;
mod permission;
mod scan;
mod writes;

use std::{
    collections::BTreeSet,
    ffi::CString,
    fs::{self, File},
    io::{self, Write as _},
    os::unix::ffi::OsStrExt as _,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Sender},
    },
    thread::{self, JoinHandle},
};

pub(crate) use self::digest::runnable_digest;
pub(crate) use self::judge::{Match, StrictScope};
use self::{cache::Cache, judge::Shared};

/// Written files waiting for the hasher. Each holds an open descriptor, so
/// the queue stays well under the usual 1024-descriptor limit; when it is
/// full the reader waits and the kernel's own queue (16384 events) absorbs
/// the burst.
const QUEUE: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum HashWatchError {
    #[error(
        "exec_sha256 rules need fanotify, and fanotify_init was refused (EPERM): \
         the enforcer lacks CAP_SYS_ADMIN"
    )]
    MissingCapability,
    #[error(
        "exec_sha256 rules need fanotify, which this kernel lacks \
         (fanotify_init: ENOSYS; it was built without CONFIG_FANOTIFY)"
    )]
    FanotifyUnsupported,
    #[error("exec_sha256 rules need fanotify, and fanotify_init failed: {0}")]
    Init(#[source] io::Error),
    #[error("cannot use {} as a hash watch root: {source}", path.display())]
    Root { path: PathBuf, source: io::Error },
    #[error(
        "cannot watch writes on the filesystem of {} \
         (filesystem mark: {filesystem}; mount mark: {source})",
        path.display()
    )]
    Mark {
        path: PathBuf,
        filesystem: io::Error,
        source: io::Error,
    },
    #[error(
        "strict exec_sha256 enforcement needs fanotify permission events, which this \
         kernel lacks (fanotify_init with FAN_CLASS_CONTENT: EINVAL; it was built \
         without CONFIG_FANOTIFY_ACCESS_PERMISSIONS)"
    )]
    PermissionEventsUnsupported,
    #[error(
        "strict exec_sha256 enforcement needs FAN_OPEN_EXEC_PERM (Linux 5.0 or later), \
         and marking the filesystem of {} for it was refused with EINVAL: this kernel \
         lacks it, or does not give it for that filesystem",
        path.display()
    )]
    ExecPermUnsupported { path: PathBuf },
    #[error(
        "cannot watch execs on the filesystem of {} \
         (filesystem mark: {filesystem}; mount mark: {source})",
        path.display()
    )]
    ExecMark {
        path: PathBuf,
        filesystem: io::Error,
        source: io::Error,
    },
    #[error("cannot create the hash watch's stop eventfd: {0}")]
    Wake(#[source] io::Error),
    #[error("cannot start a hash watch thread: {0}")]
    Thread(#[source] io::Error),
}

/// Watches for banned content; see the module documentation. Dropping it
/// stops and joins its threads.
pub(crate) struct HashWatch {
    shared: Arc<Shared>,
    /// Written on drop so the threads leave `poll` at once.
    wake: Option<Arc<File>>,
    threads: Vec<JoinHandle<()>>,
}

impl HashWatch {
    /// Starts watching. `digests` is the set of banned SHA-256 digests.
    /// `roots` are scanned once, in the background, recursively, staying on
    /// each root's filesystem and not following symlinks below the root.
    /// Every regular file closed after writing anywhere on the filesystems
    /// that hold the roots is examined too (filesystem marks, or mount marks
    /// where the kernel refuses those). Only files that could be executed
    /// are hashed: an exec bit set for anyone, or content starting with ELF
    /// magic or `#!`. Every match is sent to `matches`, once per version of
    /// a file (a rewrite that leaves banned content is reported again).
    ///
    /// With `strict`, every exec on those filesystems also waits for this
    /// watch's answer, and banned content fails to run with EPERM; the
    /// match is sent as well. That needs permission events
    /// (`FAN_OPEN_EXEC_PERM`, Linux 5.0), and starting fails without them.
    ///
    /// The watch is set up before this returns and before the scan starts,
    /// so no write falls between the two. Writes by this process are
    /// ignored, and in strict mode so are its execs. With no digests there
    /// is nothing to find, and nothing is set up.
    pub(crate) fn start(
        digests: BTreeSet<[u8; 32]>,
        roots: Vec<PathBuf>,
        matches: Sender<Match>,
        strict: Option<StrictScope>,
    ) -> Result<Self, HashWatchError> {
        let shared = Arc::new(Shared {
            digests,
            matches,
            scope: strict.clone(),
            cache: Cache::default(),
            stop: AtomicBool::new(false),
        });
        if shared.digests.is_empty() {
            return Ok(Self {
                shared,
                wake: None,
                threads: Vec::new(),
            });
        }
        let mut paths = Vec::with_capacity(roots.len());
        for root in &roots {
            let root_error = |source| HashWatchError::Root {
                path: root.clone(),
                source,
            };
            fs::metadata(root).map_err(root_error)?;
            let path = CString::new(root.as_os_str().as_bytes()).map_err(|_| {
                root_error(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "path contains a NUL byte",
                ))
            })?;
            paths.push(path);
        }
        let fanotify =
            fanotify::init(libc::FAN_CLASS_NOTIF).map_err(|error| match error.raw_os_error() {
                Some(libc::EPERM) => HashWatchError::MissingCapability,
                Some(libc::ENOSYS) => HashWatchError::FanotifyUnsupported,
                _ => HashWatchError::Init(error),
            })?;
        for (root, path) in roots.iter().zip(&paths) {
            fanotify::mark(&fanotify, path, libc::FAN_CLOSE_WRITE).map_err(
                |(filesystem, source)| HashWatchError::Mark {
                    path: root.clone(),
                    filesystem,
                    source,
                },
            )?;
        }
        // From its first mark on, every exec on those filesystems waits for
        // an answer from this group, so it is marked last, right before its
        // thread starts.
        let exec_group = if strict.is_some() {
            Some(exec_group(&roots, &paths)?)
        } else {
            None
        };
        let wake = Arc::new(fanotify::eventfd().map_err(HashWatchError::Wake)?);

        // From here on, dropping `watch` stops whatever was started, so an
        // error part way leaves no thread behind.
        let mut watch = Self {
            shared: Arc::clone(&shared),
            wake: Some(Arc::clone(&wake)),
            threads: Vec::new(),
        };
        if let Some(group) = exec_group {
            let answerer = Arc::clone(&shared);
            let wake = Arc::clone(&wake);
            // The thread owns the group: if it cannot start, or ends, the
            // group is torn down, and execs go on unasked.
            watch
                .spawn("hashwatch-exec", move || {
                    permission::answer_execs(&answerer, group, &wake)
                })
                .map_err(HashWatchError::Thread)?;
        }
        let (files_tx, files_rx) = mpsc::sync_channel(QUEUE);
        let (rescan_tx, rescan_rx) = mpsc::sync_channel(1);
        let hasher = Arc::clone(&shared);
        watch
            .spawn("hashwatch-hash", move || {
                writes::hash_written(&hasher, files_rx)
            })
            .map_err(HashWatchError::Thread)?;
        let scanner = Arc::clone(&shared);
        watch
            .spawn("hashwatch-scan", move || {
                scan::scan_roots(&scanner, &roots, rescan_rx)
            })
            .map_err(HashWatchError::Thread)?;
        let reader = Arc::clone(&shared);
        watch
            .spawn("hashwatch-events", move || {
                writes::read_events(&reader, &fanotify, &wake, &files_tx, &rescan_tx)
            })
            .map_err(HashWatchError::Thread)?;
        Ok(watch)
    }

    fn spawn(&mut self, name: &str, body: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let handle = thread::Builder::new().name(name.to_string()).spawn(body)?;
        self.threads.push(handle);
        Ok(())
    }
}

impl Drop for HashWatch {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(wake) = &self.wake {
            // Cannot fail short of the counter overflowing, and then the
            // threads are already awake; the poll timeout covers the rest.
            let _ = (&**wake).write(&1u64.to_ne_bytes());
        }
        // The permission thread answers what it has read and returns; its
        // group's teardown removes the marks, answers (allows) the execs
        // still queued, and closes it. The kernel itself allows pending
        // execs when a group is released, but only at the last close, which
        // a forked child in the middle of an exec can hold off (see
        // `permission`).
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A permission group with `FAN_OPEN_EXEC_PERM` marked on the filesystems of
/// `roots`.
fn exec_group(roots: &[PathBuf], paths: &[CString]) -> Result<permission::Group, HashWatchError> {
    let group =
        fanotify::init(libc::FAN_CLASS_CONTENT).map_err(|error| match error.raw_os_error() {
            Some(libc::EPERM) => HashWatchError::MissingCapability,
            Some(libc::EINVAL) => HashWatchError::PermissionEventsUnsupported,
            _ => HashWatchError::Init(error),
        })?;
    let group = permission::Group(group);
    for (root, path) in roots.iter().zip(paths) {
        // A failure part way drops the group, which removes the marks made
        // and answers the execs they caught.
        fanotify::mark(&group.0, path, libc::FAN_OPEN_EXEC_PERM).map_err(
            |(filesystem, source)| {
                if source.raw_os_error() == Some(libc::EINVAL) {
                    HashWatchError::ExecPermUnsupported { path: root.clone() }
                } else {
                    HashWatchError::ExecMark {
                        path: root.clone(),
                        filesystem,
                        source,
                    }
                }
            },
        )?;
    }
    Ok(group)
}

#[cfg(test)]
mod tests;
