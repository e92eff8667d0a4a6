//! The events ring buffer, and the one way a record gets into it: reserved
//! with its header already written, so no writer can leave the tag out.

use core::mem::MaybeUninit;

use aya_ebpf::{btf_maps::RingBuf, macros::btf_map, maps::ring_buf::RingBufEntry};
use enforcer_common::{
    counters::Counter,
    record::{Record, RecordBody, RecordHeader},
};

use crate::counters::count;

/// Records of every kind in `enforcer_common::record`, each starting with
/// a [`RecordHeader`] whose tag names its body. Userspace sizes the ring at
/// load time; this is only the default.
#[btf_map]
pub(crate) static EVENTS: RingBuf<RecordHeader, { 4 << 20 }> = RingBuf::new();

/// A record reserved in the ring, header written, body still to fill.
pub(crate) struct Reserved<B: RecordBody>(RingBufEntry<Record<B>>);

/// Reserves a record for a `B`. A full ring never changes a verdict: the
/// record is dropped and counted.
#[inline(always)]
pub(crate) fn reserve<B: RecordBody>() -> Option<Reserved<B>> {
    let Some(mut entry) = EVENTS.reserve_untyped::<Record<B>>(0) else {
        count(Counter::EventsDropped);
        return None;
    };
    // SAFETY: the reserved record is ours until submitted, and `header` is
    // a field of it.
    unsafe { (&raw mut (*entry.as_mut_ptr()).header).write(B::HEADER) };
    Some(Reserved(entry))
}

impl<B: RecordBody> Reserved<B> {
    /// The body, for the writer to fill before [`Reserved::submit`].
    #[inline(always)]
    pub(crate) fn body(&mut self) -> &mut MaybeUninit<B> {
        // SAFETY: `body` is a field of the reserved record, which is ours
        // until submitted; `MaybeUninit<B>` has the layout of `B`.
        unsafe { &mut *(&raw mut (*self.0.as_mut_ptr()).body).cast::<MaybeUninit<B>>() }
    }

    /// Hands the record to userspace.
    #[inline(always)]
    pub(crate) fn submit(self) {
        self.0.submit(0);
    }
}
