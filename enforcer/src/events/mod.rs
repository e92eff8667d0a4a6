//! Events: what the daemon reports, one JSON object per line.
//!
//! Kernel verdicts arrive as fixed records in the ring buffer; [`decode`]
//! turns them into [`Event`]s with rule names and process details, and
//! [`hub`] writes them to stdout, the events file and every subscriber.

pub(crate) mod decode;
mod ecs;
mod event;
pub(crate) mod hub;
mod mounts;
pub(crate) mod rules;
pub(crate) mod syslog;

pub(crate) use event::{Event, EventBody, LearnedOwner, TakeoverReport};

/// How events are written to stdout and the events file. Followers
/// (`enforcer events`) and syslog always get the native form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventFormat {
    /// The enforcer's own JSON lines.
    #[default]
    Json,
    /// Elastic Common Schema, one document per line.
    Ecs,
}
