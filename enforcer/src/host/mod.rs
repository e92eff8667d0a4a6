//! The host as the daemon finds it: the cgroup v2 hierarchy, what is
//! mounted where, files named by handle, and the kernel's randomness.

pub mod cgroup;
pub(crate) mod filehandle;
pub(crate) mod mountinfo;
pub(crate) mod random;
