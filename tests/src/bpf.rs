//! How many programs are attached to a cgroup, straight from the kernel
//! (`BPF_PROG_QUERY`), so tests can check that the daemon attached where it
//! was told to and detached when it stopped, without trusting the daemon.

use std::{fs::File, io, os::fd::AsRawFd, path::Path};

/// The cgroup hooks the enforcer attaches to (`enum bpf_attach_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Hook {
    Connect4 = 10,
    Connect6 = 11,
    Sendmsg4 = 14,
    Sendmsg6 = 15,
}

pub const HOOKS: [Hook; 4] = [
    Hook::Connect4,
    Hook::Connect6,
    Hook::Sendmsg4,
    Hook::Sendmsg6,
];

const BPF_PROG_QUERY: libc::c_long = 16;

/// `union bpf_attr` as `BPF_PROG_QUERY` reads it. The kernel also writes
/// fields past `prog_cnt` (the revision, on newer kernels), so the buffer is
/// as large as the whole union, zero-filled.
#[repr(C)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _rest: [u32; 57],
}

/// The number of programs attached directly to `cgroup` at `hook`, by
/// `bpf_prog_attach` or a bpf link (not the ones inherited from ancestors).
pub fn attached_programs(cgroup: &Path, hook: Hook) -> io::Result<u32> {
    let dir = File::open(cgroup)?;
    let mut attr = QueryAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_type: hook as u32,
        query_flags: 0,
        attach_flags: 0,
        // No id buffer: the kernel only reports the count.
        prog_ids: 0,
        prog_cnt: 0,
        _rest: [0; 57],
    };
    // SAFETY: `attr` is a valid, zero-padded bpf_attr of the size given,
    // and lives across the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            &raw mut attr,
            size_of::<QueryAttr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(attr.prog_cnt)
}
