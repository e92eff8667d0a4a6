//! The host as the daemon finds it: the cgroup v2 hierarchy, what is
//! mounted where, files named by handle, and the kernel's randomness.

pub mod cgroup;
pub mod filehandle;
pub mod mountinfo;
pub mod random;
