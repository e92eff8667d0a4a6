//! Walks a generation image to the decision for one destination.
//!
//! The kernel programs run this code on the image map; userspace runs the
//! same code on the compiled words in its tests, so the compiler and the
//! kernel's reading of its output are checked against each other.
//!
//! Every loop is bounded by `MAX_SEARCH_STEPS`, and the compiler never
//! writes a bucket or port table longer than that search can cover.

use crate::{
    decision::Decision,
    image::{
        EMPTY_CLASS, EXEC_ENTRY_WORDS, MAX_SEARCH_STEPS, V6_RANGE_WORDS, header, high, low,
        v4_bucket, v6_bucket,
    },
    proto::port_key,
};

/// Read access to the words of an image.
pub trait Words {
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

pub struct Generation<'a, W: Words + ?Sized> {
    image: &'a W,
}

impl<'a, W: Words + ?Sized> Generation<'a, W> {
    #[inline(always)]
    pub fn new(image: &'a W) -> Self {
        Self { image }
    }

    #[inline(always)]
    fn word(&self, index: u32) -> Result<u64, Fault> {
        self.image.word(index).ok_or(Fault)
    }

    #[inline(always)]
    pub fn number(&self) -> Result<u64, Fault> {
        self.word(header::GENERATION)
    }

    pub fn v4_class(&self, addr: u32) -> Result<u32, Fault> {
        let Some((ranges, first, count)) =
            self.bucket(header::V4_BUCKETS, header::V4_RANGES, v4_bucket(addr))?
        else {
            return Ok(EMPTY_CLASS);
        };
        let found = search(first, count, |i| Ok(high(self.word(ranges + i)?) <= addr))?;
        Ok(low(self.word(ranges + found)?))
    }

    pub fn v6_class(&self, addr_high: u64, addr_low: u64) -> Result<u32, Fault> {
        let Some((ranges, first, count)) =
            self.bucket(header::V6_BUCKETS, header::V6_RANGES, v6_bucket(addr_high))?
        else {
            return Ok(EMPTY_CLASS);
        };
        let found = search(first, count, |i| {
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
        let found = search(table + 1, count, |i| Ok(high(self.word(i)?) <= key))?;
        Ok(Decision(low(self.word(found)?)))
    }
}

impl<W: Words + ?Sized> Generation<'_, W> {
    /// The decision for an executable file, by identity.
    pub fn exec_file(&self, dev: u32, ino: u64) -> Result<Decision, Fault> {
        self.identity(header::EXEC_FILES, header::EXEC_FILE_COUNT, dev, ino)
    }

    /// The decision for everything below a directory, by its identity.
    pub fn exec_directory(&self, dev: u32, ino: u64) -> Result<Decision, Fault> {
        self.identity(
            header::EXEC_DIRECTORIES,
            header::EXEC_DIRECTORY_COUNT,
            dev,
            ino,
        )
    }

    pub fn has_exec_files(&self) -> Result<bool, Fault> {
        Ok(self.word(header::EXEC_FILE_COUNT)? != 0)
    }

    pub fn has_exec_directories(&self) -> Result<bool, Fault> {
        Ok(self.word(header::EXEC_DIRECTORY_COUNT)? != 0)
    }

    pub fn exec_options(&self) -> Result<u64, Fault> {
        self.word(header::EXEC_OPTIONS)
    }

    pub fn has_exec_names(&self) -> Result<bool, Fault> {
        Ok(self.word(header::EXEC_NAME_COUNT)? != 0)
    }

    #[inline(always)]
    fn identity(
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
        let found = search(0, count, |i| {
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
        let found = search(0, count, |i| {
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

/// The last index in `first..first + count` whose entry starts at or before
/// the key. The caller guarantees the entry at `first` does.
#[inline(always)]
fn search(
    first: u32,
    count: u32,
    starts_at_or_before: impl Fn(u32) -> Result<bool, Fault>,
) -> Result<u32, Fault> {
    let mut low_index = first;
    let mut remaining = count;
    for _ in 0..MAX_SEARCH_STEPS {
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
