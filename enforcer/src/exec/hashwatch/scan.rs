//! The scanner thread: walks the roots for content that was in place
//! before the watch started, or whose events were lost.

use std::{
    collections::HashSet,
    fs::{self, File, Metadata, OpenOptions},
    io,
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
    sync::mpsc::Receiver,
};

use super::{
    cache::Stamp,
    digest::MAX_FILE_SIZE,
    judge::{Shared, examine},
};

/// The scanner thread: the roots once, then again after every lost event.
pub(super) fn scan_roots(shared: &Shared, roots: &[PathBuf], rescans: Receiver<()>) {
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
