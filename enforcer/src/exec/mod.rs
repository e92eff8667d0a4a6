//! Executable identity, from a policy's names to what the kernel can
//! match: paths resolved to files ([`resolve`]), kept current while they
//! change ([`pathwatch`]), and content bans found by hashing what runs
//! ([`hashwatch`], kept by the daemon as [`content`]).

pub(crate) mod content;
pub(crate) mod hashwatch;
pub(crate) mod pathwatch;
pub(crate) mod resolve;
