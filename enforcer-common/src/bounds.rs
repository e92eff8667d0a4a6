//! Masking buffer indexes so that every kernel the programs run on sees
//! that an access is in bounds.
//!
//! The parsers compare an index with a length before each access. Newer
//! verifiers learn the index's bound from that comparison; older ones
//! (Linux 6.1 among them) learn bounds only from comparisons with
//! constants. So the index is also masked into its power-of-two buffer.
//! The compiler removes a mask it can prove redundant (it knows the
//! length's limit), so the mask is read with a volatile load from
//! read-only data, whose value the verifier knows. Each buffer's module
//! keeps its mask next to its size.

/// `index & mask`, with the masking kept in the compiled program. `mask`
/// is a static holding a power of two less one.
#[inline(always)]
pub fn masked(index: usize, mask: &'static usize) -> usize {
    // SAFETY: a read of a static, which nothing writes.
    index & unsafe { core::ptr::read_volatile(mask) }
}
