//! Events: what the daemon reports, one JSON object per line.
//!
//! Kernel verdicts arrive as fixed records in the ring buffer; [`decode`]
//! turns them into [`Event`]s with rule names and process details, and
//! [`hub`] writes them to stdout, the events file and every subscriber.

pub(crate) mod decode;
mod event;
pub(crate) mod hub;
mod mounts;
pub(crate) mod rules;
pub(crate) mod syslog;

pub(crate) use event::{Event, EventBody, LearnedOwner, TakeoverReport};
