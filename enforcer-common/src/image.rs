//! The generation image: one policy version, compiled into a flat array of
//! `u64` words that lives in a single BPF array map.
//!
//! Keeping a whole generation in one map is what makes a policy switch
//! atomic: the hooks reach the image through a one-slot array-of-maps, and
//! replacing that slot is one syscall. A hook that started on the old image
//! finishes on the old image; the kernel waits for it before the syscall
//! returns.
//!
//! Lookups are flat: the top 16 address bits index a bucket, and a bounded
//! binary search inside the bucket finds the address range. The range names
//! a class (one distinct combination of rules), and the class gives the
//! decision directly or through a small sorted (protocol, port) table.
//!
//! ```text
//! word 0..HEADER_WORDS      header (see `header`)
//! v4 buckets                BUCKETS words: first << 32 | count, first is a v4 range index
//! v4 ranges                 one word each: start << 32 | class
//! v6 buckets                BUCKETS words: first << 32 | count, first is a v6 range index
//! v6 ranges                 V6_RANGE_WORDS each: start_hi, start_lo, class
//! classes                   one word each: port_table << 32 | decision
//! port tables               per table: count, then count words: key << 32 | decision
//! exec files                EXEC_ENTRY_WORDS each: ino, dev << 32 | decision; sorted by (dev, ino)
//! exec directories          the same, for directories whose files are all covered
//! exec names                EXEC_ENTRY_WORDS each: name hash, decision; sorted by hash
//! domain slots              DOMAIN_SLOT_WORDS each: suffix hash (0: empty), text << 32 | decision
//! domain texts              per domain: length in bytes, then the bytes, eight to a word
//! ```
//!
//! Files and directories are identified by device and inode. Directories
//! have a table of their own because the hooks search it once for every
//! directory above an executable, and it is short.
//!
//! All offsets are word indices from the start of the image. Within a
//! bucket, ranges are sorted by start and the first starts at the bucket's
//! first address, so the search always lands on a range. A family with no
//! ranges has bucket offset 0, which the hooks read as "nothing listed".
//! Class 0 is always the empty class (no rule, decision `NONE`).

/// Word indices of the header fields.
pub mod header {
    /// `MAGIC << 32 | LAYOUT_VERSION`, so userspace can tell an image it
    /// wrote from anything else in the slot.
    pub const MAGIC: u32 = 0;
    /// The generation number.
    pub const GENERATION: u32 = 1;
    /// Where the IPv4 bucket table starts.
    pub const V4_BUCKETS: u32 = 2;
    /// Where the IPv4 ranges start.
    pub const V4_RANGES: u32 = 3;
    /// Where the IPv6 bucket table starts.
    pub const V6_BUCKETS: u32 = 4;
    /// Where the IPv6 ranges start.
    pub const V6_RANGES: u32 = 5;
    /// Where the classes' port table offsets start.
    pub const CLASSES: u32 = 6;
    /// Where the port tables start.
    pub const PORT_TABLES: u32 = 7;
    /// Where the exec file table starts.
    pub const EXEC_FILES: u32 = 8;
    /// Entries of the exec file table.
    pub const EXEC_FILE_COUNT: u32 = 9;
    /// Where the exec directory table starts.
    pub const EXEC_DIRECTORIES: u32 = 10;
    /// Entries of the exec directory table.
    pub const EXEC_DIRECTORY_COUNT: u32 = 11;
    /// Where the exec name table starts.
    pub const EXEC_NAMES: u32 = 12;
    /// Entries of the exec name table.
    pub const EXEC_NAME_COUNT: u32 = 13;
    /// Bits of `crate::exec::options`.
    pub const EXEC_OPTIONS: u32 = 14;
    /// The domain table: a power-of-two number of slots, and the seed of
    /// their hashes (see `crate::domain`).
    pub const DOMAIN_SLOTS: u32 = 15;
    /// Slots of the domain table.
    pub const DOMAIN_SLOT_COUNT: u32 = 16;
    /// The seed of the domain hashes.
    pub const DOMAIN_SEED: u32 = 17;
    /// Bits of `crate::domain::options`.
    pub const DNS_OPTIONS: u32 = 18;
    /// Bounds in seconds on how long a learned address stays blocked.
    pub const DNS_TTL_MIN: u32 = 19;
    /// See [`DNS_TTL_MIN`].
    pub const DNS_TTL_MAX: u32 = 20;
    /// Seconds the destination of a refused ClientHello stays refused to
    /// the uid that sent it.
    pub const SNI_LEARNED_SECONDS: u32 = 21;
    /// Answers received by sockets of uids below this bind everyone (see
    /// `crate::learned`).
    pub const LEARNED_SHARED_BELOW_UID: u32 = 22;
    /// Learned addresses each uid may hold.
    pub const LEARNED_PER_USER: u32 = 23;
}

/// Room for fields to come without moving the sections.
pub const HEADER_WORDS: u32 = 24;
/// The value of the header's first word.
pub const MAGIC: u64 = (0x454e_4652 << 32) | LAYOUT_VERSION as u64; // "ENFR"
/// Raised whenever the layout changes.
pub const LAYOUT_VERSION: u32 = 4;

/// Buckets per family: one per value of the top 16 address bits.
pub const BUCKET_BITS: u32 = 16;
/// Buckets per family.
pub const BUCKETS: u32 = 1 << BUCKET_BITS;

/// Binary search steps the hooks take at most; a bucket or a port table
/// holds at most `1 << MAX_SEARCH_STEPS` entries.
pub const MAX_SEARCH_STEPS: u32 = 22;
/// Entries a bucket or port table holds at most.
pub const MAX_SEARCH_ENTRIES: u32 = 1 << MAX_SEARCH_STEPS;

/// Binary search steps through the exec directory table. The exec hooks
/// search it for every directory above the file, up to
/// `exec::MAX_DIRECTORY_DEPTH` times, so the verifier follows this bound
/// 24 times over: at 22 steps, the walk took most of an exec hook's
/// verification (bprm_check_security 631,833 instructions on Linux 6.1).
/// It holds the directories a policy lists, not those below them, and
/// 1,024 is far more than any policy lists.
pub const MAX_EXEC_DIRECTORY_SEARCH_STEPS: u32 = 10;
/// Entries the exec directory table holds at most.
pub const MAX_EXEC_DIRECTORIES: u32 = 1 << MAX_EXEC_DIRECTORY_SEARCH_STEPS;

/// Words of one IPv6 range: its start and its class.
pub const V6_RANGE_WORDS: u32 = 3;
/// Words of one exec table entry: its key and its decision.
pub const EXEC_ENTRY_WORDS: u32 = 2;

/// The empty class: no rule matches.
pub const EMPTY_CLASS: u32 = 0;

/// BPF map flags of an image in the sized slot. `BPF_F_MMAPABLE` lets the
/// daemon fill an image with one copy instead of a syscall per word.
///
/// Every image in that slot has the slot's capacity as its size, so the
/// verifier knows the bounds of the map the hooks read and compiles each
/// lookup into a few instructions. A call of the lookup helper costs about
/// ten times as much, and a connect makes about ten lookups.
pub const SIZED_IMAGE_MAP_FLAGS: u32 = BPF_F_MMAPABLE;
/// BPF map flags of an image in the slot of any size, for an image larger
/// than the sized slot holds. `BPF_F_INNER_MAP` lets images of different
/// sizes share that slot, and makes every lookup a helper call.
pub const ANY_SIZE_IMAGE_MAP_FLAGS: u32 = BPF_F_MMAPABLE | BPF_F_INNER_MAP;
const BPF_F_MMAPABLE: u32 = 1 << 10;
const BPF_F_INNER_MAP: u32 = 1 << 12;

/// Two halves as one word.
#[inline(always)]
pub const fn pack(high: u32, low: u32) -> u64 {
    ((high as u64) << 32) | low as u64
}

/// The upper half of a word.
#[inline(always)]
pub const fn high(word: u64) -> u32 {
    (word >> 32) as u32
}

/// The lower half of a word.
#[inline(always)]
pub const fn low(word: u64) -> u32 {
    word as u32
}

/// The bucket of an IPv4 address (host order).
#[inline(always)]
pub const fn v4_bucket(addr: u32) -> u32 {
    addr >> (32 - BUCKET_BITS)
}

/// The bucket of an IPv6 address, by its upper 64 bits.
#[inline(always)]
pub const fn v6_bucket(addr_high: u64) -> u32 {
    (addr_high >> (64 - BUCKET_BITS)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        let word = pack(0xdead_beef, 0x1234_5678);
        assert_eq!(high(word), 0xdead_beef);
        assert_eq!(low(word), 0x1234_5678);
    }

    #[test]
    fn buckets_use_the_top_sixteen_bits() {
        assert_eq!(v4_bucket(0x9536_a000), 0x9536);
        assert_eq!(v6_bucket(0x2001_0b28_f23d_0000), 0x2001);
        assert_eq!(v4_bucket(u32::MAX), BUCKETS - 1);
    }
}
