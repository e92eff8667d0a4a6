//! The host as the daemon finds it: the cgroup v2 hierarchy, what is
//! mounted where, files named by handle, the kernel's randomness and
//! symbols, and its socket diagnostics, which can end a connection.

pub mod cgroup;
pub(crate) mod filehandle;
pub(crate) mod kallsyms;
pub(crate) mod mountinfo;
pub(crate) mod random;
pub mod sock_diag;
