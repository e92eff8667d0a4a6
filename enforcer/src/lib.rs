//! `enforcer`: policy → compile → generation → maps → hooks → events.
//!
//! - [`policy`] parses and validates policy files;
//! - [`compile`] turns a policy into a generation image;
//! - [`maps`] is the only code that writes kernel maps;
//! - [`programs`] loads and attaches the kernel programs;
//! - [`events`] decodes, enriches and fans out verdicts;
//! - [`daemon`] owns all of the above at run time, and [`control`] is how
//!   the CLI talks to it.

pub mod capabilities;
pub mod cgroup;
pub mod cli;
pub mod compile;
pub mod config;
pub mod control;
pub mod daemon;
pub mod events;
pub mod family;
pub mod filehandle;
pub mod guard;
pub mod hashwatch;
pub mod kernel_btf;
pub mod maps;
pub mod mountinfo;
pub mod pathwatch;
pub mod pins;
pub mod policy;
pub mod probe;
pub mod programs;
pub mod random;
pub mod resolve;
pub mod signing;
pub mod store;
#[cfg(test)]
mod testutil;
