//! Events: what the daemon reports, one JSON object per line.
//!
//! Kernel verdicts arrive as fixed records in the ring buffer; [`decode`]
//! turns them into [`Event`]s with rule names and process details, and
//! [`hub`] writes them to stdout, the events file and every subscriber.

pub mod decode;
mod event;
pub mod hub;
mod mounts;
pub mod rules;
pub mod syslog;

pub use event::{
    Event, EventBody, ExecVerdict, NameVerdict, NetVerdict, Process, TakeoverReport, TamperAttempt,
    Verdict,
};
