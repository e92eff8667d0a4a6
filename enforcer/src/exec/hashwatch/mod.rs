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
mod fanotify;
mod permission;

use std::{
    collections::{BTreeSet, HashSet},
    ffi::CString,
    fs::{self, File, Metadata, OpenOptions},
    io::{self, Read, Write as _},
    os::{
        fd::AsRawFd as _,
        unix::{
            ffi::OsStrExt as _,
            fs::{MetadataExt as _, OpenOptionsExt as _},
        },
    },
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Receiver, Sender, SyncSender},
    },
    thread::{self, JoinHandle},
};

use sha2::{Digest as _, Sha256};

use self::{
    cache::{Cache, Lookup, Stamp, Verdict, coarse_now},
    fanotify::Wait,
};
use crate::exec::resolve::kernel_dev;

/// Files larger than this are never hashed, so they are never reported: a
/// banned digest of something bigger cannot be enforced by content. The
/// bound keeps one huge write from occupying the hasher for minutes.
pub const MAX_FILE_SIZE: u64 = 1 << 30;

/// Read size while hashing; also bounds how long a stop request waits for a
/// hash in progress.
const CHUNK: usize = 64 * 1024;

/// Written files waiting for the hasher. Each holds an open descriptor, so
/// the queue stays well under the usual 1024-descriptor limit; when it is
/// full the reader waits and the kernel's own queue (16384 events) absorbs
/// the burst.
const QUEUE: usize = 128;

/// Room for a few hundred events per read.
const READ_BUFFER: usize = 16 * 1024;

/// A file whose content matches a banned digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The device in the kernel's encoding ([`kernel_dev`]), as the exec
    /// hooks compare it.
    pub dev: u32,
    pub ino: u64,
    /// Where the file was seen; informational only, since the file may be
    /// renamed or unlinked by the time anyone reads this.
    pub path: PathBuf,
    pub sha256: [u8; 32],
}

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
pub struct HashWatch {
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
    pub fn start(
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
            .spawn("hashwatch-hash", move || hash_written(&hasher, files_rx))
            .map_err(HashWatchError::Thread)?;
        let scanner = Arc::clone(&shared);
        watch
            .spawn("hashwatch-scan", move || {
                scan_roots(&scanner, &roots, rescan_rx)
            })
            .map_err(HashWatchError::Thread)?;
        let reader = Arc::clone(&shared);
        watch
            .spawn("hashwatch-events", move || {
                read_events(&reader, &fanotify, &wake, &files_tx, &rescan_tx)
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

/// SHA-256 of a file's content, read in fixed-size chunks whatever its size.
pub fn sha256_file(path: &Path) -> io::Result<[u8; 32]> {
    let mut file = File::open(path)?;
    let never = AtomicBool::new(false);
    let digest = hash_if(&mut file, |_| true, u64::MAX, &never)?;
    // With no header check and no limit there is always a digest.
    digest.ok_or_else(|| io::Error::other("no digest"))
}

/// Strict mode's reach: the cgroup v2 path (as `/proc/PID/cgroup` shows
/// it, `/` for everything) whose processes' execs wait for a verdict. The
/// permission events come from the whole filesystem; execs outside the
/// enforced cgroup are let through at once, as the eBPF hooks would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrictScope(pub String);

impl StrictScope {
    fn covers(&self, pid: i32) -> bool {
        if self.0 == "/" {
            return true;
        }
        let Ok(cgroups) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            return false;
        };
        cgroups
            .lines()
            .filter_map(|line| line.strip_prefix("0::"))
            .any(|path| {
                path == self.0
                    || path
                        .strip_prefix(self.0.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
    }
}

struct Shared {
    digests: BTreeSet<[u8; 32]>,
    matches: Sender<Match>,
    /// `Some` in strict mode.
    scope: Option<StrictScope>,
    /// What each version of a file was found to be, for the hasher, the
    /// scanner and the permission thread alike; ctime is in the stamp, so
    /// a chmod makes an entry stale.
    cache: Cache,
    stop: AtomicBool,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// For the hasher and the scanner: hashes `file` unless this version is
/// known or another thread is hashing it, and reports it if it is banned.
fn examine(shared: &Shared, file: &File, path: impl FnOnce() -> PathBuf) {
    let Ok(metadata) = file.metadata() else {
        return;
    };
    if !metadata.is_file() {
        return;
    }
    let key = (metadata.dev(), metadata.ino());
    let Lookup::Claimed(claim) = shared.cache.lookup(key, Stamp::of(&metadata)) else {
        return;
    };
    judge(shared, file, path);
    drop(claim);
}

/// Hashes `file` as it is now if it could be executed, remembers the
/// verdict and reports a banned one that is news. `None` when the file
/// could not be read to its end (unreadable, or the watch is stopping).
fn judge(shared: &Shared, file: &File, path: impl FnOnce() -> PathBuf) -> Option<Verdict> {
    // Read before the stamp is taken; see `cache::RACY_NS`.
    let hashed_at = coarse_now();
    let before = file.metadata().ok()?;
    let stamp = Stamp::of(&before);
    let executable = before.mode() & 0o111 != 0;
    let digest = if before.size() > MAX_FILE_SIZE {
        None
    } else {
        let runnable =
            |head: &[u8]| executable || head.starts_with(b"\x7fELF") || head.starts_with(b"#!");
        let mut reader = file;
        // `None` when not runnable, or it grew past the limit while being
        // read. An error means stopping, or unreadable: nothing to
        // remember, the next look tries again.
        hash_if(&mut reader, runnable, MAX_FILE_SIZE, &shared.stop).ok()?
    };
    let verdict = match digest.filter(|digest| shared.digests.contains(digest)) {
        Some(digest) => Verdict::Banned(digest),
        None => Verdict::Clean,
    };
    // A write during the hash means the digest may mix two versions; such a
    // digest is not remembered, and the write's own close brings the file
    // back. A banned digest is still reported: all of it was read, so the
    // file held banned content at least for a moment.
    let stable = file
        .metadata()
        .is_ok_and(|after| Stamp::of(&after) == stamp);
    let key = (before.dev(), before.ino());
    // Threads can meet on one version; one report is enough.
    if shared
        .cache
        .record(key, stamp, verdict, stable.then_some(hashed_at))
        && let Verdict::Banned(sha256) = verdict
    {
        let found = Match {
            dev: kernel_dev(key.0),
            ino: key.1,
            path: path(),
            sha256,
        };
        if shared.matches.send(found).is_err() {
            // Nobody listens any more: the work has no purpose.
            shared.stop.store(true, Ordering::SeqCst);
        }
    }
    Some(verdict)
}

/// Streams `reader` into SHA-256, unless `runnable` rejects its first chunk
/// or it is longer than `limit` (both `Ok(None)`). A stop request ends the
/// read with `Interrupted`.
fn hash_if(
    reader: &mut impl Read,
    runnable: impl FnOnce(&[u8]) -> bool,
    limit: u64,
    stop: &AtomicBool,
) -> io::Result<Option<[u8; 32]>> {
    let mut buffer = vec![0u8; CHUNK];
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut runnable = Some(runnable);
    loop {
        let length = fill(reader, &mut buffer)?;
        let chunk = &buffer[..length];
        if let Some(runnable) = runnable.take()
            && !runnable(chunk)
        {
            return Ok(None);
        }
        total += length as u64;
        if total > limit {
            return Ok(None);
        }
        hasher.update(chunk);
        if length < buffer.len() {
            return Ok(Some(hasher.finalize().into()));
        }
        if stop.load(Ordering::Relaxed) {
            return Err(io::ErrorKind::Interrupted.into());
        }
    }
}

/// Reads until `buffer` is full or the file ends, so the first chunk holds
/// the whole header even after a short read.
fn fill(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(length) => filled += length,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// The hasher thread: files the reader saw closed after writing.
fn hash_written(shared: &Shared, files: Receiver<File>) {
    for file in files {
        if shared.stopped() {
            return;
        }
        let fd = file.as_raw_fd();
        examine(shared, &file, || {
            fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default()
        });
    }
}

/// The scanner thread: the roots once, then again after every lost event.
fn scan_roots(shared: &Shared, roots: &[PathBuf], rescans: Receiver<()>) {
    scan(shared, roots);
    while rescans.recv().is_ok() && !shared.stopped() {
        scan(shared, roots);
    }
}

fn scan(shared: &Shared, roots: &[PathBuf]) {
    // Directories already walked, so overlapping roots and bind mounts of a
    // directory inside itself are walked once.
    let mut walked = HashSet::new();
    for root in roots {
        let Ok(metadata) = fs::metadata(root) else {
            continue;
        };
        if metadata.is_file() {
            examine_path(shared, root, &metadata);
            continue;
        }
        let root_dev = metadata.dev();
        if !metadata.is_dir() || !walked.insert((root_dev, metadata.ino())) {
            continue;
        }
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if shared.stopped() {
                    return;
                }
                // lstat: a symlink is not followed, so the walk stays in the
                // tree and on its filesystem.
                let Ok(metadata) = entry.metadata() else {
                    continue;
                };
                if metadata.dev() != root_dev {
                    continue;
                }
                if metadata.is_dir() {
                    if walked.insert((root_dev, metadata.ino())) {
                        pending.push(entry.path());
                    }
                } else if metadata.is_file() {
                    examine_path(shared, &entry.path(), &metadata);
                }
            }
        }
    }
}

fn examine_path(shared: &Shared, path: &Path, metadata: &Metadata) {
    // The cache answers from the stat alone, so a rescan of unchanged files
    // opens nothing.
    let key = (metadata.dev(), metadata.ino());
    if metadata.size() > MAX_FILE_SIZE || shared.cache.settled(key, Stamp::of(metadata)) {
        return;
    }
    if let Ok(file) = open_for_hash(path) {
        examine(shared, &file, || path.to_path_buf());
    }
}

fn open_for_hash(path: &Path) -> io::Result<File> {
    // O_NOFOLLOW and O_NONBLOCK: if the entry is swapped for a symlink or a
    // FIFO after the stat, the open neither leaves the tree nor hangs.
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
    let open = |flags| OpenOptions::new().read(true).custom_flags(flags).open(path);
    // Reading for the hash is not a use of the file; O_NOATIME is refused
    // on files this process neither owns nor has CAP_FOWNER over.
    match open(flags | libc::O_NOATIME) {
        Err(error) if error.raw_os_error() == Some(libc::EPERM) => open(flags),
        result => result,
    }
}

/// The reader thread: turns fanotify events into files for the hasher.
fn read_events(
    shared: &Shared,
    fanotify: &File,
    wake: &File,
    files: &SyncSender<File>,
    rescan: &SyncSender<()>,
) {
    let own_pid = std::process::id() as i32;
    let mut buffer = vec![0u8; READ_BUFFER];
    loop {
        if shared.stopped() {
            return;
        }
        match fanotify::wait(fanotify, wake) {
            Wait::Readable => {}
            Wait::Stop => return,
            Wait::Again => continue,
        }
        let length = match (&*fanotify).read(&mut buffer) {
            Ok(length) => length,
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            // The kernel drops the event it could not open a descriptor
            // for (EMFILE, ENFILE, ...), so the scan has to find it.
            Err(_) => {
                request_rescan(rescan);
                continue;
            }
        };
        for event in fanotify::parse_events(&buffer[..length]).0 {
            if event.mask & libc::FAN_Q_OVERFLOW != 0 {
                request_rescan(rescan);
            }
            let Some(fd) = event.fd else {
                continue;
            };
            let file = File::from(fd);
            // Our own writes are not someone putting content in place.
            if event.pid == own_pid {
                continue;
            }
            let worth_hashing = file
                .metadata()
                .is_ok_and(|metadata| metadata.is_file() && metadata.size() <= MAX_FILE_SIZE);
            // Waiting here when the hasher is behind is deliberate: the
            // kernel queue takes the slack, and an overflow there is noticed
            // and answered with a rescan.
            if worth_hashing && files.send(file).is_err() {
                return;
            }
        }
    }
}

fn request_rescan(rescan: &SyncSender<()>) {
    // Full means a rescan is already pending, and it will see this change.
    // Disconnected means the scanner is gone, which happens only when
    // stopping.
    let _ = rescan.try_send(());
}

#[cfg(test)]
mod tests {
    use std::{
        os::unix::fs::PermissionsExt as _,
        process::Command,
        time::{Duration, Instant},
    };

    use super::*;

    /// A directory under the temp dir, removed when the test ends, even by
    /// a panic.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("enforcer-hashwatch-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn dir(&self, name: &str) -> PathBuf {
            let dir = self.0.join(name);
            fs::create_dir_all(&dir).unwrap();
            dir
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn write(path: &Path, content: &[u8], mode: u32) -> Metadata {
        fs::write(path, content).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        fs::metadata(path).unwrap()
    }

    fn digest(content: &[u8]) -> [u8; 32] {
        Sha256::digest(content).into()
    }

    /// None where this machine cannot run fanotify, so the test can say so
    /// and pass. With `strict`, every exec on the roots' filesystems waits
    /// on the watch until it is dropped, which unwinding does too: a failed
    /// assertion does not leave the machine's execs to a test that is gone.
    fn start(
        digests: &[[u8; 32]],
        roots: Vec<PathBuf>,
        strict: bool,
    ) -> Option<(HashWatch, mpsc::Receiver<Match>)> {
        let (tx, rx) = mpsc::channel();
        let strict = strict.then(|| StrictScope("/".into()));
        match HashWatch::start(digests.iter().copied().collect(), roots, tx, strict) {
            Ok(watch) => Some((watch, rx)),
            Err(
                error @ (HashWatchError::MissingCapability | HashWatchError::FanotifyUnsupported),
            ) => {
                eprintln!("{error}; skipping");
                None
            }
            Err(error) => panic!("{error}"),
        }
    }

    /// Copies with `cp`: another process, whose writes are watched, and no
    /// descriptor of ours left open for writing to make a later exec fail
    /// with ETXTBSY.
    fn copy(from: &Path, to: &Path) -> Metadata {
        let status = Command::new("cp").arg(from).arg(to).status().unwrap();
        assert!(status.success());
        fs::metadata(to).unwrap()
    }

    /// Waits for a match on `ino`, collecting everything received meanwhile.
    /// Stops the watch, then checks that nothing besides the match already
    /// taken reported `ino`.
    #[track_caller]
    fn assert_reported_once(
        watch: HashWatch,
        rx: mpsc::Receiver<Match>,
        others: Vec<Match>,
        ino: u64,
    ) {
        drop(watch);
        let rest: Vec<Match> = others.into_iter().chain(rx.iter()).collect();
        assert!(
            rest.iter().all(|other| other.ino != ino),
            "reported twice or more: {rest:?}"
        );
    }

    fn wait_for(rx: &mpsc::Receiver<Match>, ino: u64, seen: &mut Vec<Match>) -> Match {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(found) if found.ino == ino => return found,
                Ok(other) => seen.push(other),
                Err(error) => panic!("no match for inode {ino}: {error}; got {seen:?}"),
            }
        }
    }

    #[test]
    fn hashes_known_vectors() {
        let scratch = Scratch::new("vectors");
        let abc = scratch.0.join("abc");
        fs::write(&abc, b"abc").unwrap();
        assert_eq!(
            sha256_file(&abc).unwrap(),
            [
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
                0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
                0xf2, 0x00, 0x15, 0xad,
            ]
        );
        // Several chunks and a partial one.
        let long: Vec<u8> = (0..(CHUNK * 3 + 17))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let long_path = scratch.0.join("long");
        fs::write(&long_path, &long).unwrap();
        assert_eq!(sha256_file(&long_path).unwrap(), digest(&long));
        let exact = &long[..CHUNK * 2];
        fs::write(&long_path, exact).unwrap();
        assert_eq!(sha256_file(&long_path).unwrap(), digest(exact));
    }

    #[test]
    fn only_runnable_content_is_hashed() {
        let never = AtomicBool::new(false);
        let runnable = |head: &[u8]| head.starts_with(b"#!");
        assert_eq!(
            hash_if(&mut &b"#!/bin/sh\n"[..], runnable, u64::MAX, &never).unwrap(),
            Some(digest(b"#!/bin/sh\n"))
        );
        assert_eq!(
            hash_if(&mut &b"plain"[..], runnable, u64::MAX, &never).unwrap(),
            None
        );
        assert_eq!(
            hash_if(&mut &b"#!/bin/sh\n"[..], |_| true, 4, &never).unwrap(),
            None
        );
    }

    #[test]
    fn the_scan_finds_a_copy_that_was_there_before() {
        let scratch = Scratch::new("scan");
        let root = scratch.dir("root");
        let nested = scratch.dir("root/a/b");
        let content = b"#!/bin/sh\necho hashwatch scan test\n";
        let metadata = write(&nested.join("app"), content, 0o755);
        // A symlink is not followed, and a clean file is not reported.
        std::os::unix::fs::symlink(nested.join("app"), root.join("link")).unwrap();
        write(&root.join("clean"), b"#!/bin/sh\necho clean\n", 0o755);

        let Some((watch, rx)) = start(&[digest(content)], vec![root], false) else {
            return;
        };
        let mut others = Vec::new();
        let found = wait_for(&rx, metadata.ino(), &mut others);
        assert_eq!(found.dev, kernel_dev(metadata.dev()));
        assert_eq!(found.sha256, digest(content));
        assert_eq!(found.path, nested.join("app"));
        assert_reported_once(watch, rx, others, metadata.ino());
    }

    #[test]
    fn files_written_after_start_are_examined() {
        let scratch = Scratch::new("written");
        // The root is empty: whatever is found outside it on the same
        // filesystem came through fanotify, not the scan.
        let root = scratch.dir("root");
        let staging = scratch.dir("staging");
        let elsewhere = scratch.dir("elsewhere");
        let banned = b"#!/bin/sh\necho hashwatch written test\n".to_vec();
        let elf = b"\x7fELF hashwatch written test, no exec bit".to_vec();
        let plain = b"hashwatch written test, neither runnable nor executable".to_vec();
        // Written by this process, whose writes are ignored; `cp` is
        // another process.
        write(&staging.join("banned"), &banned, 0o755);
        write(&staging.join("elf"), &elf, 0o644);
        write(&staging.join("plain"), &plain, 0o644);
        write(&staging.join("clean"), b"#!/bin/sh\necho clean\n", 0o755);

        let digests = [digest(&banned), digest(&elf), digest(&plain)];
        let Some((watch, rx)) = start(&digests, vec![root], false) else {
            return;
        };
        let copy = |name: &str| copy(&staging.join(name), &elsewhere.join(name));
        let banned_copy = copy("banned");
        let plain_copy = copy("plain");
        let clean_copy = copy("clean");
        let elf_copy = copy("elf");
        assert_eq!(elf_copy.mode() & 0o111, 0);

        let mut others = Vec::new();
        let found = wait_for(&rx, banned_copy.ino(), &mut others);
        assert_eq!(found.dev, kernel_dev(banned_copy.dev()));
        assert_eq!(found.sha256, digest(&banned));
        assert_eq!(found.path, elsewhere.join("banned"));
        let found = wait_for(&rx, elf_copy.ino(), &mut others);
        assert_eq!(found.sha256, digest(&elf));
        // One hasher takes files in the order they were closed, so the
        // plain and clean copies were examined before the ELF one.
        drop(watch);
        let rest: Vec<Match> = others.into_iter().chain(rx.iter()).collect();
        let staged: Vec<u64> = ["banned", "elf", "plain", "clean"]
            .iter()
            .map(|name| fs::metadata(staging.join(name)).unwrap().ino())
            .collect();
        for other in &rest {
            assert_ne!(other.ino, plain_copy.ino(), "not runnable: {other:?}");
            assert_ne!(other.ino, clean_copy.ino(), "not banned: {other:?}");
            assert!(!staged.contains(&other.ino), "our own write: {other:?}");
        }
    }

    #[test]
    fn dropping_the_watch_stops_its_threads() {
        let scratch = Scratch::new("drop");
        let root = scratch.dir("root");
        for index in 0..50 {
            write(&root.join(format!("f{index}")), b"#!/bin/sh\n", 0o755);
        }
        let Some((watch, rx)) = start(&[[0; 32]], vec![root], false) else {
            return;
        };
        let started = Instant::now();
        drop(watch);
        assert!(started.elapsed() < Duration::from_secs(3));
        // Every thread held a sender; all gone means all threads are gone.
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(1)),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
    }

    #[test]
    fn a_missing_root_is_an_error() {
        let scratch = Scratch::new("missing");
        let (tx, _rx) = mpsc::channel();
        let missing = scratch.0.join("absent");
        match HashWatch::start([[0; 32]].into(), vec![missing.clone()], tx, None) {
            Err(HashWatchError::Root { path, .. }) => assert_eq!(path, missing),
            Err(other) => panic!("unexpected error: {other}"),
            Ok(_) => panic!("started on a missing root"),
        }
    }

    #[test]
    fn strict_refuses_a_banned_copy_executed_at_once() {
        let scratch = Scratch::new("strict");
        // As above, the empty root leaves the copies to fanotify.
        let root = scratch.dir("root");
        let staging = scratch.dir("staging");
        let elsewhere = scratch.dir("elsewhere");
        let banned = b"#!/bin/sh\necho hashwatch strict test\n".to_vec();
        write(&staging.join("banned"), &banned, 0o755);
        write(&staging.join("clean"), b"#!/bin/sh\nexit 0\n", 0o755);

        let Some((watch, rx)) = start(&[digest(&banned)], vec![root], true) else {
            return;
        };
        // Executed as soon as `cp` is done, and nothing installs anything:
        // the permission answer alone stops it, whichever thread hashed it.
        let banned_copy = copy(&staging.join("banned"), &elsewhere.join("banned"));
        let error = Command::new(elsewhere.join("banned"))
            .status()
            .expect_err("a banned copy ran");
        assert_eq!(error.raw_os_error(), Some(libc::EPERM), "{error}");
        // Every exec is asked about, not only the first.
        let error = Command::new(elsewhere.join("banned"))
            .status()
            .expect_err("a banned copy ran the second time");
        assert_eq!(error.raw_os_error(), Some(libc::EPERM), "{error}");
        copy(&staging.join("clean"), &elsewhere.join("clean"));
        let status = Command::new(elsewhere.join("clean")).status().unwrap();
        assert!(status.success());

        let mut others = Vec::new();
        let found = wait_for(&rx, banned_copy.ino(), &mut others);
        assert_eq!(found.dev, kernel_dev(banned_copy.dev()));
        assert_eq!(found.sha256, digest(&banned));
        assert_reported_once(watch, rx, others, banned_copy.ino());
    }

    #[test]
    fn dropping_a_strict_watch_stops_it_and_execs_go_on() {
        let scratch = Scratch::new("strict-drop");
        let root = scratch.dir("root");
        let Some((watch, rx)) = start(&[[0; 32]], vec![root], true) else {
            return;
        };
        assert!(Command::new("/bin/true").status().unwrap().success());
        let started = Instant::now();
        drop(watch);
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(1)),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
        assert!(Command::new("/bin/true").status().unwrap().success());
    }

    /// Children of this process hold a copy of the group's descriptor while
    /// they exec, so the group's release alone would not let their execs
    /// through: dropping a watch while other threads start programs must
    /// leave none of them waiting.
    #[test]
    fn dropping_a_strict_watch_while_children_exec() {
        let scratch = Scratch::new("strict-children");
        let root = scratch.dir("root");
        let stop = Arc::new(AtomicBool::new(false));
        let spawners: Vec<_> = (0..2)
            .map(|_| {
                let stop = Arc::clone(&stop);
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        assert!(Command::new("/bin/true").status().unwrap().success());
                    }
                })
            })
            .collect();
        // Stops the spawners even if a drop fails the test.
        struct Stop(Arc<AtomicBool>);
        impl Drop for Stop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let guard = Stop(Arc::clone(&stop));
        for _ in 0..10 {
            let Some((watch, _rx)) = start(&[[0; 32]], vec![root.clone()], true) else {
                return;
            };
            thread::sleep(Duration::from_millis(20));
            let started = Instant::now();
            drop(watch);
            assert!(started.elapsed() < Duration::from_secs(3));
        }
        drop(guard);
        for spawner in spawners {
            spawner.join().unwrap();
        }
    }

    /// Prints what the permission round trip costs an exec whose files are
    /// known (`--nocapture` shows it); asserts nothing about time, which
    /// depends on the machine and on what else runs.
    #[test]
    fn strict_cost_of_a_cached_exec() {
        const EXECS: u32 = 200;
        // The root is the program itself: its filesystem is watched, and
        // the scan reads that one file.
        let program = fs::canonicalize("/bin/true").unwrap();
        let per_exec = |count: u32| {
            let started = Instant::now();
            for _ in 0..count {
                assert!(Command::new(&program).status().unwrap().success());
            }
            started.elapsed() / count
        };
        let without = per_exec(EXECS);
        let Some((watch, _rx)) = start(&[[0; 32]], vec![program.clone()], true) else {
            return;
        };
        // The first exec hashes the program and its loader.
        per_exec(1);
        let with = per_exec(EXECS);
        drop(watch);
        let after = per_exec(EXECS);
        eprintln!(
            "exec of {}: {without:?} without a strict watch, {with:?} with one \
             (files known), {after:?} after it is dropped",
            program.display()
        );
    }
}
