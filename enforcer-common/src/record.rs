//! The records of the events ring buffer.
//!
//! Every record is a [`Record`]: a [`RecordHeader`] whose tag names the
//! kind of body that follows. The reader looks at the tag first and hands
//! the body to the decoder of that kind, so a record it does not know is
//! reported as such rather than guessed at. A new kind of record is a body
//! type with a [`RecordBody`] implementation here, one writer in the
//! kernel programs and one decoder in the daemon.

use core::mem::{offset_of, size_of};

use crate::{
    event::{DomainEvent, NetEvent},
    exec::ExecEvent,
    guard::TamperEvent,
};

/// The tag of a record: which body follows its header. Zero is never a
/// tag, so a zeroed record is not mistaken for one of them.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A [`NetEvent`].
    Net = 1,
    /// An [`ExecEvent`].
    Exec = 2,
    /// A [`DomainEvent`].
    Domain = 3,
    /// A [`TamperEvent`].
    Tamper = 4,
}

impl RecordKind {
    /// The kind a header's tag names, if any.
    pub const fn from_u32(tag: u32) -> Option<Self> {
        match tag {
            1 => Some(Self::Net),
            2 => Some(Self::Exec),
            3 => Some(Self::Domain),
            4 => Some(Self::Tamper),
            _ => None,
        }
    }
}

/// The start of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// A [`RecordKind`].
    pub kind: u32,
    /// Zero; keeps the body 8-byte aligned.
    pub _reserved: u32,
}

/// A body of a record, with the tag that announces it.
pub trait RecordBody: Copy + 'static {
    /// The tag of records that carry this body.
    const KIND: RecordKind;
    /// The header of those records.
    const HEADER: RecordHeader = RecordHeader {
        kind: Self::KIND as u32,
        _reserved: 0,
    };
}

/// A header and the body its tag names, as one ring buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Record<B: RecordBody> {
    /// Names the kind of `body`.
    pub header: RecordHeader,
    /// What the record reports.
    pub body: B,
}

impl RecordBody for NetEvent {
    const KIND: RecordKind = RecordKind::Net;
}

impl RecordBody for ExecEvent {
    const KIND: RecordKind = RecordKind::Exec;
}

impl RecordBody for DomainEvent {
    const KIND: RecordKind = RecordKind::Domain;
}

impl RecordBody for TamperEvent {
    const KIND: RecordKind = RecordKind::Tamper;
}

/// The body follows the header with no padding between or after.
const fn assert_layout<B: RecordBody>() {
    assert!(offset_of!(Record<B>, header) == 0);
    assert!(offset_of!(Record<B>, body) == size_of::<RecordHeader>());
    assert!(size_of::<Record<B>>() == size_of::<RecordHeader>() + size_of::<B>());
}

const _: () = {
    assert!(size_of::<RecordHeader>() == 8);
    assert!(offset_of!(RecordHeader, kind) == 0);
    assert_layout::<NetEvent>();
    assert_layout::<ExecEvent>();
    assert_layout::<DomainEvent>();
    assert_layout::<TamperEvent>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_tag() {
        for kind in [
            RecordKind::Net,
            RecordKind::Exec,
            RecordKind::Domain,
            RecordKind::Tamper,
        ] {
            assert_eq!(RecordKind::from_u32(kind as u32), Some(kind));
        }
        assert_eq!(RecordKind::from_u32(0), None);
        assert_eq!(RecordKind::from_u32(5), None);
    }
}
