//! SHA-256 of file content, read in bounded chunks.

use std::{
    fs::{File, Metadata},
    io::{self, Read},
    os::unix::fs::MetadataExt as _,
    sync::atomic::{AtomicBool, Ordering},
};

use sha2::{Digest as _, Sha256};

/// Files larger than this are never hashed, so they are never reported: a
/// banned digest of something bigger cannot be enforced by content. The
/// bound keeps one huge write from occupying the hasher for minutes.
pub(crate) const MAX_FILE_SIZE: u64 = 1 << 30;

/// Read size while hashing; also bounds how long a stop request waits for a
/// hash in progress.
const CHUNK: usize = 64 * 1024;

/// Streams `reader` into SHA-256, unless `runnable` rejects its first chunk
/// or it is longer than `limit` (both `Ok(None)`). A stop request ends the
/// read with `Interrupted`.
pub(super) fn hash_if(
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

/// The digest a file's content is judged by, `metadata` being the file's
/// as it was found: `None` for a file that could not run (not executable,
/// and no ELF or `#!` header) or larger than [`MAX_FILE_SIZE`], whose
/// content is never banned. A stop request ends the read with
/// `Interrupted`.
pub(crate) fn runnable_digest(
    mut file: &File,
    metadata: &Metadata,
    stop: &AtomicBool,
) -> io::Result<Option<[u8; 32]>> {
    if metadata.size() > MAX_FILE_SIZE {
        return Ok(None);
    }
    let executable = metadata.mode() & 0o111 != 0;
    let runnable =
        |head: &[u8]| executable || head.starts_with(b"\x7fELF") || head.starts_with(b"#!");
    // The file may grow past the limit while it is read.
    hash_if(&mut file, runnable, MAX_FILE_SIZE, stop)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(content: &[u8]) -> [u8; 32] {
        Sha256::digest(content).into()
    }

    /// The digest of everything `reader` holds, with no header check or
    /// limit.
    fn sha256(mut reader: impl Read) -> [u8; 32] {
        let never = AtomicBool::new(false);
        hash_if(&mut reader, |_| true, u64::MAX, &never)
            .unwrap()
            .expect("no check and no limit leave a digest")
    }

    #[test]
    fn hashes_known_vectors() {
        assert_eq!(
            sha256(&b"abc"[..]),
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
        assert_eq!(sha256(&long[..]), digest(&long));
        let exact = &long[..CHUNK * 2];
        assert_eq!(sha256(exact), digest(exact));
        // A short read inside the first chunk still fills it.
        let (head, tail) = long.split_at(100);
        assert_eq!(sha256(head.chain(tail)), digest(&long));
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
}
