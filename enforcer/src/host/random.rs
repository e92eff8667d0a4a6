//! Random bytes from the kernel's pool, with getrandom(2): the domain
//! tables' seed and signing keys need nothing more.

use std::io;

pub(crate) fn bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    // SAFETY: the buffer is valid for its length.
    let filled = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), N, 0) };
    if filled != N as isize {
        return Err(io::Error::last_os_error());
    }
    Ok(bytes)
}
