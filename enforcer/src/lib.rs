//! `enforcer`: policy → compile → generation → maps → hooks → events.
//!
//! - [`policy`] parses and validates policy files;
//! - [`exec`] turns a policy's executables into identities the kernel can
//!   match, and keeps them current;
//! - [`compile`] turns a policy into a generation image, and [`explain`]
//!   searches one as the kernel programs do, offline;
//! - [`kernel`] owns the BPF side: programs, maps, pins, capabilities;
//! - [`events`] decodes, enriches and fans out verdicts;
//! - [`store`] keeps the applied policy on disk and checks signed bundles;
//! - [`daemon`] owns all of the above at run time, and [`control`] is how
//!   the CLI talks to it;
//! - [`host`] reads the host: cgroups, mounts, file handles, and
//!   [`doctor`] says what a host gives the enforcer before it is deployed.

pub mod cli;
pub mod compile;
pub mod control;
pub mod daemon;
pub mod doctor;
mod events;
mod exec;
pub mod explain;
pub mod host;
pub mod kernel;
pub mod policy;
pub mod store;

pub use events::EventFormat;
#[cfg(test)]
mod testutil;
