//! Domain names as the kernel programs see them, and how a name is matched
//! against the policy's domains.
//!
//! Parsers (DNS questions and CNAME targets, TLS server names) write a name
//! into a [`NAME_BYTES`] buffer in text form: labels joined by `.`, ASCII
//! letters lowercased, no trailing dot. The policy compiler stores each
//! policy domain in the same form, so matching is byte comparison.
//!
//! A policy domain covers itself and every name below it, and the most
//! specific listed domain decides. The matcher therefore walks the name
//! from its last byte to its first, hashing as it goes: at each label
//! boundary the running hash is the hash of that suffix, which it looks up
//! in the image's open-addressed domain table. One pass finds every listed
//! suffix, the last one found being the most specific.
//!
//! The hash is FNV-1a (the step of `exec` names) over the reversed bytes,
//! seeded with a value the daemon draws at random, so that nobody without
//! access to the image can build names that collide with a listed domain.
//! The most specific hit is still confirmed by comparing the bytes; one
//! that fails to confirm is a collision, and is treated as a block, so a
//! collision can never unlist a listed domain.

/// Size of a name buffer. A DNS name has at most 253 bytes in text form;
/// the buffer is a power of two so indices can be masked into range.
pub const NAME_BYTES: usize = 256;
/// Masks an index into a name buffer.
pub const NAME_MASK: usize = NAME_BYTES - 1;
/// [`NAME_MASK`] as a static, for [`crate::bounds::masked`].
static NAME_INDEX: usize = NAME_MASK;
const _: () = assert!(NAME_BYTES.is_power_of_two());
/// The longest name in text form, without the trailing dot.
pub const MAX_NAME_LEN: usize = 253;
/// The longest label.
pub const MAX_LABEL_LEN: usize = 63;

/// Words of one domain table slot: the suffix hash, then
/// `(switches | text offset) << 32 | decision` (see [`entry`]). A hash of
/// 0 marks an empty slot.
pub const DOMAIN_SLOT_WORDS: u32 = 2;

/// The high half of a slot's second word: the word offset of the domain's
/// text in the low [`entry::TEXT_BITS`], and above them the switches of the
/// rule that decides. A switch's bit is set when the rule turns it off, so
/// an entry whose rule turns nothing off is stored as it was before
/// switches existed.
pub mod entry {
    /// Bits of the text offset: the compiler refuses an image of more
    /// words than [`TEXT_MASK`].
    pub const TEXT_BITS: u32 = 30;
    /// Masks the text offset out of the high half.
    pub const TEXT_MASK: u32 = (1 << TEXT_BITS) - 1;
    /// `learn_addresses = false`: no address is listed for the domain.
    pub const NO_LEARNING: u32 = 1 << 30;
    /// `sni = false`: a ClientHello naming the domain is not judged.
    pub const NO_SNI: u32 = 1 << 31;
}
/// Slots a lookup probes at most from a hash's home slot. The compiler
/// grows the table until every domain sits within this distance.
pub const MAX_PROBES: u32 = 8;

/// Bits of the image's `DNS_OPTIONS` word.
pub mod options {
    /// Drop DNS queries for names the policy blocks.
    pub const BLOCK_QUERIES: u64 = 1 << 0;
}

pub use crate::exec::name_hash_step as hash_step;

/// Hashes never take the value that marks an empty slot.
#[inline(always)]
pub const fn slot_hash(hash: u64) -> u64 {
    if hash == 0 { 1 } else { hash }
}

/// The table key of a whole name in text form: what the matcher computes
/// when it reaches the name's first byte.
pub fn suffix_hash(seed: u64, name: &[u8]) -> u64 {
    slot_hash(name.iter().rev().fold(seed, |hash, &b| hash_step(hash, b)))
}

/// ASCII lowercase, the only case folding DNS defines.
#[inline(always)]
pub const fn fold_case(byte: u8) -> u8 {
    if byte.is_ascii_uppercase() {
        byte | 0x20
    } else {
        byte
    }
}

/// A name in a [`NAME_BYTES`] buffer: `len` bytes of text form.
pub struct Name<'a> {
    /// The buffer.
    pub bytes: &'a [u8; NAME_BYTES],
    /// Bytes of it in use.
    pub len: usize,
}

impl Name<'_> {
    /// The byte at `index`, which the caller keeps below `len`.
    #[inline(always)]
    pub fn byte(&self, index: usize) -> u8 {
        // Never out of range; `get` keeps a panic path out of the program.
        let index = crate::bounds::masked(index, &NAME_INDEX);
        self.bytes.get(index).copied().unwrap_or(0)
    }
}

/// What the policy says about a name: the decision of the most specific
/// listed domain, the table slot holding it and where in the name that
/// domain starts. `decision` is `Decision::NONE` when nothing is listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainMatch {
    /// The most specific listed domain's decision.
    pub decision: crate::decision::Decision,
    /// The domain table slot holding that domain.
    pub slot: u32,
    /// Where in the name that domain starts, below [`entry::TEXT_BITS`],
    /// and the deciding rule's switches, as [`entry`] packs them above. In
    /// one word the match stays 12 bytes, and the socket hooks verified in
    /// 14,587 instructions on 6.18 against 19,901 with a fourth word.
    start_and_switches: u32,
}

impl DomainMatch {
    /// Nothing listed.
    pub const NONE: DomainMatch = DomainMatch::new(crate::decision::Decision::NONE, 0, 0, 0);

    /// The word on a name: `decision` from the entry in `slot`, whose
    /// domain starts at `start` in the name, with the switches of the
    /// entry's high half `switches` (its text offset is ignored).
    #[inline(always)]
    pub const fn new(
        decision: crate::decision::Decision,
        slot: u32,
        start: u32,
        switches: u32,
    ) -> Self {
        DomainMatch {
            decision,
            slot,
            start_and_switches: (start & entry::TEXT_MASK) | (switches & !entry::TEXT_MASK),
        }
    }

    /// Where in the name the listed domain starts.
    #[inline(always)]
    pub const fn start(&self) -> u32 {
        self.start_and_switches & entry::TEXT_MASK
    }

    /// Whether the addresses given for the name are listed.
    #[inline(always)]
    pub const fn learns_addresses(&self) -> bool {
        self.start_and_switches & entry::NO_LEARNING == 0
    }

    /// Whether a ClientHello naming the name is judged.
    #[inline(always)]
    pub const fn judges_server_name(&self) -> bool {
        self.start_and_switches & entry::NO_SNI == 0
    }
}

/// Where the name text of a table entry lives, in bytes packed eight to a
/// word, little-endian, after a word holding the length.
#[inline(always)]
pub const fn packed_byte(word: u64, index: usize) -> u8 {
    (word >> ((index % 8) * 8)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_hash_is_the_reversed_fnv1a_and_never_zero() {
        let forward = |bytes: &[u8]| bytes.iter().fold(7u64, |h, &b| hash_step(h, b));
        assert_eq!(suffix_hash(7, b"ab.cd"), slot_hash(forward(b"dc.ba")));
        assert_ne!(suffix_hash(0, b""), 0);
    }

    #[test]
    fn fold_case_only_touches_ascii_capitals() {
        assert_eq!(fold_case(b'A'), b'a');
        assert_eq!(fold_case(b'z'), b'z');
        assert_eq!(fold_case(b'-'), b'-');
        assert_eq!(fold_case(0xc4), 0xc4);
    }
}
