//! A bounded copy of packet bytes that the DNS and TLS parsers read.
//!
//! The kernel programs copy the start of a payload into a per-CPU buffer
//! of [`PACKET_BYTES`] and parse it there; userspace tests parse the same
//! way from an ordinary array. Every read is checked against the copied
//! length, and the index is masked into the buffer as well (see
//! [`crate::bounds`]), so the verifier can see each access is in bounds
//! without following the checks.

use crate::bounds::masked;

/// How much of a payload the parsers see. A DNS answer or a TLS
/// ClientHello that does not fit is malformed as far as they are concerned.
pub const PACKET_BYTES: usize = 4096;

/// The mask of an index into the packet buffer (see [`crate::bounds`]).
static PACKET_INDEX: usize = PACKET_BYTES - 1;
const _: () = assert!(PACKET_BYTES.is_power_of_two());

/// The bytes do not hold what the parser expected: truncated, out of
/// bounds, or beyond the limits the parsers keep to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// The first bytes of a payload, as the parsers read them.
pub struct Packet<'a> {
    bytes: &'a [u8; PACKET_BYTES],
    len: usize,
}

impl<'a> Packet<'a> {
    /// `len` is how many bytes of `bytes` were filled; `None` when that is
    /// more than the buffer holds.
    ///
    /// Refusing rather than clamping keeps the length unknown to the
    /// verifier: a clamped length is a constant on one path, every read
    /// compared with it gets marked precise, and the parsers' loops then
    /// never reach a state the verifier has seen before.
    #[inline(always)]
    pub fn new(bytes: &'a [u8; PACKET_BYTES], len: usize) -> Option<Self> {
        (len <= PACKET_BYTES).then_some(Self { bytes, len })
    }

    /// Bytes copied.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was copied.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The byte at `at`.
    #[inline(always)]
    pub fn u8(&self, at: usize) -> Result<u8, Malformed> {
        if at >= self.len {
            return Err(Malformed);
        }
        // Never out of range; `get` keeps a panic path out of the program.
        self.bytes
            .get(masked(at, &PACKET_INDEX))
            .copied()
            .ok_or(Malformed)
    }

    /// Big-endian, as every field of DNS and TLS is.
    #[inline(always)]
    pub fn u16(&self, at: usize) -> Result<u16, Malformed> {
        Ok(((self.u8(at)? as u16) << 8) | self.u8(at + 1)? as u16)
    }

    /// Three bytes big-endian, as TLS lengths are.
    #[inline(always)]
    pub fn u24(&self, at: usize) -> Result<u32, Malformed> {
        Ok(((self.u8(at)? as u32) << 16)
            | ((self.u8(at + 1)? as u32) << 8)
            | self.u8(at + 2)? as u32)
    }

    /// Four bytes big-endian.
    #[inline(always)]
    pub fn u32(&self, at: usize) -> Result<u32, Malformed> {
        Ok(((self.u16(at)? as u32) << 16) | self.u16(at + 2)? as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_at_the_filled_length() {
        let mut bytes = [0u8; PACKET_BYTES];
        bytes[..4].copy_from_slice(&[1, 2, 3, 4]);
        let packet = Packet::new(&bytes, 3).unwrap();
        assert_eq!(packet.u16(0), Ok(0x0102));
        assert_eq!(packet.u24(0), Ok(0x010203));
        assert_eq!(packet.u16(2), Err(Malformed));
        assert_eq!(packet.u32(0), Err(Malformed));
        assert!(Packet::new(&bytes, PACKET_BYTES + 1).is_none());
    }
}
