//! Walks a generation image to the decision for one destination.
//!
//! The kernel programs run this code on the image map; userspace runs the
//! same code on the compiled words in its tests, so the compiler and the
//! kernel's reading of its output are checked against each other.
//!
//! Every loop is bounded by `MAX_SEARCH_STEPS`, and the compiler never
//! writes a bucket or port table longer than that search can cover.

use crate::{
    decision::{Action, Decision},
    domain::{
        self, DOMAIN_SLOT_WORDS, DomainMatch, MAX_NAME_LEN, MAX_PROBES, Name, hash_step,
        packed_byte, slot_hash,
    },
    image::{
        EMPTY_CLASS, EXEC_ENTRY_WORDS, MAX_EXEC_DIRECTORY_SEARCH_STEPS, MAX_SEARCH_STEPS,
        V6_RANGE_WORDS, header, high, low, v4_bucket, v6_bucket,
    },
    learned,
    proto::port_key,
    repeat::{Plain, Repeat, Step},
};

/// Read access to the words of an image.
pub trait Words {
    /// The word at `index`, if the image has it.
    fn word(&self, index: u32) -> Option<u64>;
}

impl Words for [u64] {
    #[inline(always)]
    fn word(&self, index: u32) -> Option<u64> {
        self.get(index as usize).copied()
    }
}

/// A lookup that leaves the image: the image is not one the compiler
/// wrote. The kernel counts it and lets the traffic through.
#[derive(Debug, PartialEq, Eq)]
pub struct Fault;

/// The lookups of the kernel programs, on one generation image.
pub struct Generation<'a, W: Words + ?Sized> {
    image: &'a W,
}

impl<'a, W: Words + ?Sized> Generation<'a, W> {
    /// Lookups in `image`.
    #[inline(always)]
    pub fn new(image: &'a W) -> Self {
        Self { image }
    }

    #[inline(always)]
    fn word(&self, index: u32) -> Result<u64, Fault> {
        self.image.word(index).ok_or(Fault)
    }

    /// The generation number.
    #[inline(always)]
    pub fn number(&self) -> Result<u64, Fault> {
        self.word(header::GENERATION)
    }

    /// The class of an IPv4 address (host order).
    pub fn v4_class(&self, addr: u32) -> Result<u32, Fault> {
        let Some((ranges, first, count)) =
            self.bucket(header::V4_BUCKETS, header::V4_RANGES, v4_bucket(addr))?
        else {
            return Ok(EMPTY_CLASS);
        };
        let found =
            search::<MAX_SEARCH_STEPS>(first, count, |i| Ok(high(self.word(ranges + i)?) <= addr))?;
        Ok(low(self.word(ranges + found)?))
    }

    /// The class of an IPv6 address, by its upper and lower 64 bits.
    pub fn v6_class(&self, addr_high: u64, addr_low: u64) -> Result<u32, Fault> {
        let Some((ranges, first, count)) =
            self.bucket(header::V6_BUCKETS, header::V6_RANGES, v6_bucket(addr_high))?
        else {
            return Ok(EMPTY_CLASS);
        };
        let found = search::<MAX_SEARCH_STEPS>(first, count, |i| {
            let start = ranges + i * V6_RANGE_WORDS;
            let start_high = self.word(start)?;
            if start_high != addr_high {
                return Ok(start_high < addr_high);
            }
            Ok(self.word(start + 1)? <= addr_low)
        })?;
        Ok(low(self.word(ranges + found * V6_RANGE_WORDS + 2)?))
    }

    /// The family's range section and the bucket's (first, count), or
    /// `None` when nothing is listed in that bucket.
    #[inline(always)]
    fn bucket(
        &self,
        buckets_field: u32,
        ranges_field: u32,
        bucket: u32,
    ) -> Result<Option<(u32, u32, u32)>, Fault> {
        let buckets = self.word(buckets_field)? as u32;
        if buckets == 0 {
            return Ok(None);
        }
        let entry = self.word(buckets + bucket)?;
        let (first, count) = (high(entry), low(entry));
        if count == 0 {
            return Ok(None);
        }
        let ranges = self.word(ranges_field)? as u32;
        Ok(Some((ranges, first, count)))
    }

    /// The decision for a port of a protocol class, in an address class.
    pub fn decision(&self, class: u32, proto_class: u32, port: u16) -> Result<Decision, Fault> {
        if class == EMPTY_CLASS {
            return Ok(Decision::NONE);
        }
        let classes = self.word(header::CLASSES)? as u32;
        let entry = self.word(classes + class)?;
        let table = high(entry);
        if table == 0 {
            return Ok(Decision(low(entry)));
        }
        let count = self.word(table)? as u32;
        let key = port_key(proto_class, port);
        let found =
            search::<MAX_SEARCH_STEPS>(table + 1, count, |i| Ok(high(self.word(i)?) <= key))?;
        Ok(Decision(low(self.word(found)?)))
    }
}

impl<W: Words + ?Sized> Generation<'_, W> {
    /// The decision for an executable file, by identity.
    pub fn exec_file(&self, dev: u32, ino: u64) -> Result<Decision, Fault> {
        self.identity::<MAX_SEARCH_STEPS>(header::EXEC_FILES, header::EXEC_FILE_COUNT, dev, ino)
    }

    /// The decision for everything below a directory, by its identity.
    pub fn exec_directory(&self, dev: u32, ino: u64) -> Result<Decision, Fault> {
        self.identity::<MAX_EXEC_DIRECTORY_SEARCH_STEPS>(
            header::EXEC_DIRECTORIES,
            header::EXEC_DIRECTORY_COUNT,
            dev,
            ino,
        )
    }

    /// Whether the policy lists any exec file.
    pub fn has_exec_files(&self) -> Result<bool, Fault> {
        Ok(self.word(header::EXEC_FILE_COUNT)? != 0)
    }

    /// Whether the policy lists any exec directory.
    pub fn has_exec_directories(&self) -> Result<bool, Fault> {
        Ok(self.word(header::EXEC_DIRECTORY_COUNT)? != 0)
    }

    /// Bits of [`crate::exec::options`].
    pub fn exec_options(&self) -> Result<u64, Fault> {
        self.word(header::EXEC_OPTIONS)
    }

    /// Whether the policy lists any exec name.
    pub fn has_exec_names(&self) -> Result<bool, Fault> {
        Ok(self.word(header::EXEC_NAME_COUNT)? != 0)
    }

    /// The decision of the identity table at `table_field`, of at most
    /// `1 << STEPS` entries.
    #[inline(always)]
    fn identity<const STEPS: u32>(
        &self,
        table_field: u32,
        count_field: u32,
        dev: u32,
        ino: u64,
    ) -> Result<Decision, Fault> {
        let count = self.word(count_field)? as u32;
        if count == 0 {
            return Ok(Decision::NONE);
        }
        let table = self.word(table_field)? as u32;
        let found = search::<STEPS>(0, count, |i| {
            let entry = table + i * EXEC_ENTRY_WORDS;
            let entry_dev = high(self.word(entry + 1)?);
            if entry_dev != dev {
                return Ok(entry_dev < dev);
            }
            Ok(self.word(entry)? <= ino)
        })?;
        let entry = table + found * EXEC_ENTRY_WORDS;
        let (entry_ino, dev_and_decision) = (self.word(entry)?, self.word(entry + 1)?);
        if entry_ino == ino && high(dev_and_decision) == dev {
            Ok(Decision(low(dev_and_decision)))
        } else {
            Ok(Decision::NONE)
        }
    }

    /// The decision for an executable's file name, by its hash.
    pub fn exec_name(&self, name_hash: u64) -> Result<Decision, Fault> {
        let count = self.word(header::EXEC_NAME_COUNT)? as u32;
        if count == 0 {
            return Ok(Decision::NONE);
        }
        let table = self.word(header::EXEC_NAMES)? as u32;
        let found = search::<MAX_SEARCH_STEPS>(0, count, |i| {
            Ok(self.word(table + i * EXEC_ENTRY_WORDS)? <= name_hash)
        })?;
        let entry = table + found * EXEC_ENTRY_WORDS;
        if self.word(entry)? == name_hash {
            Ok(Decision(self.word(entry + 1)? as u32))
        } else {
            Ok(Decision::NONE)
        }
    }
}

impl<W: Words + ?Sized> Generation<'_, W> {
    /// Whether the policy lists any domain.
    pub fn has_domains(&self) -> Result<bool, Fault> {
        Ok(self.word(header::DOMAIN_SLOT_COUNT)? != 0)
    }

    /// Bits of [`crate::domain::options`].
    pub fn dns_options(&self) -> Result<u64, Fault> {
        self.word(header::DNS_OPTIONS)
    }

    /// How long, in seconds, an address learned with `ttl` stays blocked.
    pub fn learned_seconds(&self, ttl: u32) -> Result<u64, Fault> {
        let (min, max) = (
            self.word(header::DNS_TTL_MIN)?,
            self.word(header::DNS_TTL_MAX)?,
        );
        Ok((ttl as u64).clamp(min, max.max(min)))
    }

    /// How long, in seconds, a refused ClientHello's destination stays
    /// refused to the uid that sent it.
    pub fn sni_learned_seconds(&self) -> Result<u64, Fault> {
        self.word(header::SNI_LEARNED_SECONDS)
    }

    /// The owner of an address learned from an answer that a socket of
    /// `uid` received (see `crate::learned`).
    pub fn answer_owner(&self, uid: u32) -> Result<u32, Fault> {
        let shared_below = self.word(header::LEARNED_SHARED_BELOW_UID)?;
        Ok(learned::answer_owner(uid, shared_below as u32))
    }

    /// How many learned addresses `owner` may hold.
    pub fn learned_quota(&self, owner: u32) -> Result<u64, Fault> {
        if owner == learned::SHARED_OWNER {
            return Ok(learned::SHARED_QUOTA);
        }
        self.word(header::LEARNED_PER_USER)
    }

    /// The policy's word on `name`: the most specific listed domain that
    /// is `name` itself or one of its parents (see `crate::domain`).
    pub fn domain(&self, name: &Name<'_>, repeat: &impl Repeat) -> Result<DomainMatch, Fault> {
        let slot_count = self.word(header::DOMAIN_SLOT_COUNT)? as u32;
        if slot_count == 0 || name.len == 0 || name.len > MAX_NAME_LEN {
            return Ok(DomainMatch::NONE);
        }
        let mut scan = SuffixScan {
            generation: self,
            name,
            repeat: *repeat,
            slots: self.word(header::DOMAIN_SLOTS)? as u32,
            slot_count,
            hash: self.word(header::DOMAIN_SEED)?,
            hit: None,
            fault: false,
        };
        repeat.repeat(name.len as u32, &mut scan);
        let (fault, hit, slots) = (scan.fault, scan.hit, scan.slots);
        if fault {
            return Err(Fault);
        }
        let Some((slot, start)) = hit else {
            return Ok(DomainMatch::NONE);
        };
        let entry = self.word(slots + slot * DOMAIN_SLOT_WORDS + 1)?;
        let listed = Decision(low(entry));
        let text = high(entry) & domain::entry::TEXT_MASK;
        let mut compare = TextCompare {
            generation: self,
            name,
            start,
            text,
            equal: self.word(text)? as usize == name.len - start,
            fault: false,
        };
        if compare.equal {
            repeat.repeat((name.len - start) as u32, &mut compare);
        }
        if compare.fault {
            return Err(Fault);
        }
        // A hash collision, where the text differs, takes the block with
        // every switch on. Only someone who knows the seed can make one;
        // failing closed keeps it from unlisting anything.
        let (decision, switches) = if compare.equal {
            (listed, high(entry))
        } else {
            (Decision::new(Action::Block, listed.rule()), 0)
        };
        Ok(DomainMatch::new(decision, slot, start as u32, switches))
    }

    /// The decision and slot of the listed domain whose whole-name hash is
    /// `hash`, for re-checking an address learned under an earlier
    /// generation against the live one.
    pub fn domain_by_hash(&self, hash: u64) -> Result<DomainMatch, Fault> {
        let slot_count = self.word(header::DOMAIN_SLOT_COUNT)? as u32;
        if slot_count == 0 {
            return Ok(DomainMatch::NONE);
        }
        let slots = self.word(header::DOMAIN_SLOTS)? as u32;
        let Some(slot) = self.probe(slots, slot_count, hash, &Plain)? else {
            return Ok(DomainMatch::NONE);
        };
        let entry = self.word(slots + slot * DOMAIN_SLOT_WORDS + 1)?;
        Ok(DomainMatch::new(Decision(low(entry)), slot, 0, high(entry)))
    }

    /// The whole-name hash stored in `slot`.
    pub fn domain_hash(&self, slot: u32) -> Result<u64, Fault> {
        let slots = self.word(header::DOMAIN_SLOTS)? as u32;
        self.word(slots + slot * DOMAIN_SLOT_WORDS)
    }

    /// The slot of the entry whose whole-name hash is `hash`, looked for
    /// in the `MAX_PROBES` slots from where it hashes to.
    #[inline(always)]
    fn probe(
        &self,
        slots: u32,
        slot_count: u32,
        hash: u64,
        repeat: &impl Repeat,
    ) -> Result<Option<u32>, Fault> {
        let mut probe = Probe {
            generation: self,
            slots,
            mask: slot_count - 1,
            hash,
            found: NOT_FOUND,
            fault: false,
        };
        repeat.repeat(MAX_PROBES, &mut probe);
        if probe.fault {
            return Err(Fault);
        }
        Ok((probe.found != NOT_FOUND).then_some(probe.found))
    }
}

/// The state of [`Generation::probe`]: each step reads one slot. It sits
/// on the deepest chain of calls, so it is packed: no `Option`.
struct Probe<'a, 'g, W: Words + ?Sized> {
    generation: &'a Generation<'g, W>,
    hash: u64,
    slots: u32,
    mask: u32,
    /// The slot found, or [`NOT_FOUND`].
    found: u32,
    fault: bool,
}

/// No slot: slot numbers are below the slot count, a power of two that
/// fits a `u32`.
const NOT_FOUND: u32 = u32::MAX;

impl<W: Words + ?Sized> Step for Probe<'_, '_, W> {
    #[inline(always)]
    fn step(&mut self, distance: u32) -> bool {
        let slot = (self.hash as u32).wrapping_add(distance) & self.mask;
        match self.generation.word(self.slots + slot * DOMAIN_SLOT_WORDS) {
            Ok(stored) if stored == self.hash => {
                self.found = slot;
                false
            }
            Ok(stored) => stored != 0,
            Err(Fault) => {
                self.fault = true;
                false
            }
        }
    }
}

/// The state of the suffix scan of [`Generation::domain`]: each step
/// hashes one more byte from the end of the name, and at a label boundary
/// looks the suffix up.
struct SuffixScan<'a, 'g, 'n, W: Words + ?Sized, R> {
    generation: &'a Generation<'g, W>,
    name: &'a Name<'n>,
    /// By value: a reference would take stack on the deepest chain of
    /// calls, and every `Repeat` is a unit struct.
    repeat: R,
    slots: u32,
    slot_count: u32,
    hash: u64,
    /// The most specific hit so far: its slot and where its suffix starts.
    hit: Option<(u32, usize)>,
    fault: bool,
}

impl<W: Words + ?Sized, R: Repeat> Step for SuffixScan<'_, '_, '_, W, R> {
    #[inline(always)]
    fn step(&mut self, index: u32) -> bool {
        let done = index as usize;
        if done >= self.name.len {
            return false;
        }
        let position = self.name.len - 1 - done;
        self.hash = hash_step(self.hash, self.name.byte(position));
        if position != 0 && self.name.byte(position - 1) != b'.' {
            return true;
        }
        match self.generation.probe(
            self.slots,
            self.slot_count,
            slot_hash(self.hash),
            &self.repeat,
        ) {
            Ok(Some(slot)) => self.hit = Some((slot, position)),
            Ok(None) => {}
            Err(Fault) => {
                self.fault = true;
                return false;
            }
        }
        true
    }
}

/// The state of the comparison that confirms a hit: each step compares one
/// byte of the name with the listed domain's text.
struct TextCompare<'a, 'g, 'n, W: Words + ?Sized> {
    generation: &'a Generation<'g, W>,
    name: &'a Name<'n>,
    start: usize,
    text: u32,
    equal: bool,
    fault: bool,
}

impl<W: Words + ?Sized> Step for TextCompare<'_, '_, '_, W> {
    #[inline(always)]
    fn step(&mut self, index: u32) -> bool {
        let index = index as usize;
        if self.start + index >= self.name.len {
            return false;
        }
        let Ok(word) = self.generation.word(self.text + 1 + (index / 8) as u32) else {
            self.fault = true;
            return false;
        };
        if packed_byte(word, index) != self.name.byte(self.start + index) {
            self.equal = false;
            return false;
        }
        true
    }
}

/// The last index in `first..first + count` whose entry starts at or before
/// the key. The caller guarantees the entry at `first` does, and that
/// `count` is at most `1 << STEPS`.
#[inline(always)]
fn search<const STEPS: u32>(
    first: u32,
    count: u32,
    starts_at_or_before: impl Fn(u32) -> Result<bool, Fault>,
) -> Result<u32, Fault> {
    let mut low_index = first;
    let mut remaining = count;
    for _ in 0..STEPS {
        if remaining <= 1 {
            break;
        }
        let half = remaining / 2;
        let middle = low_index + half;
        if starts_at_or_before(middle)? {
            low_index = middle;
            remaining -= half;
        } else {
            remaining = half;
        }
    }
    Ok(low_index)
}
