//! Masking buffer indexes so that every kernel the programs run on sees
//! that an access is in bounds.
//!
//! The parsers compare an index with a length before each access. Newer
//! verifiers learn the index's bound from that comparison; older ones
//! (Linux 6.1 among them) learn bounds only from comparisons with
//! constants. So the index is also masked into its power-of-two buffer.
//! The compiler removes a mask it can prove redundant (it knows the
//! length's limit), so the mask is read with a volatile load from
//! read-only data, whose value the verifier knows.

use crate::{domain::NAME_BYTES, packet::PACKET_BYTES};

pub static PACKET_INDEX: usize = PACKET_BYTES - 1;
pub static NAME_INDEX: usize = NAME_BYTES - 1;

/// `index & mask`, with the masking kept in the compiled program.
#[inline(always)]
pub fn masked(index: usize, mask: &'static usize) -> usize {
    // SAFETY: a read of a static, which nothing writes.
    index & unsafe { core::ptr::read_volatile(mask) }
}

const _: () = {
    assert!(PACKET_BYTES.is_power_of_two());
    assert!(NAME_BYTES.is_power_of_two());
};
