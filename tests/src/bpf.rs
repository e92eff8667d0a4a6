//! The kernel's own view of BPF objects, without trusting the daemon: how
//! many programs are attached to a cgroup (`BPF_PROG_QUERY`), so tests can
//! check that the daemon attached where it was told to and detached when
//! it stopped; and which objects exist and whether this process may open
//! them by id, so tests can try what an intruder would.

use std::{
    env,
    fs::File,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
};

/// Whether this kernel must run the BPF LSM programs: `cargo xtask vm-test`
/// sets `ENFORCER_EXPECT_BPF_LSM=1` on the kernels that do, so that a
/// fallback to another method fails there instead of passing quietly.
pub fn bpf_lsm_expected() -> bool {
    env::var_os("ENFORCER_EXPECT_BPF_LSM").is_some_and(|value| value == "1")
}

/// The cgroup hooks the enforcer attaches to (`enum bpf_attach_type`).
/// [`HOOKS`] are the socket hooks, always attached; the packet hooks only
/// while the policy lists domains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Hook {
    Ingress = 0,
    Egress = 1,
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
    // No id buffer: the kernel only reports the count.
    query(cgroup, hook, &mut [])
}

/// The ids of the programs attached directly to `cgroup` at `hook`.
pub fn attached_program_ids(cgroup: &Path, hook: Hook) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let count = query(cgroup, hook, &mut ids)?;
    ids.truncate(count as usize);
    Ok(ids)
}

/// `BPF_PROG_QUERY`: the number of programs, and as many of their ids as
/// fit in `ids`.
fn query(cgroup: &Path, hook: Hook, ids: &mut [u32]) -> io::Result<u32> {
    let dir = File::open(cgroup)?;
    let mut attr = QueryAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_type: hook as u32,
        query_flags: 0,
        attach_flags: 0,
        prog_ids: if ids.is_empty() {
            0
        } else {
            ids.as_mut_ptr() as u64
        },
        prog_cnt: ids.len() as u32,
        _rest: [0; 57],
    };
    // SAFETY: `attr` is a valid, zero-padded bpf_attr of the size given,
    // and lives across the call; `ids` has room for `prog_cnt` ids.
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

/// Kinds of BPF object with ids, by their `BPF_*_GET_NEXT_ID` and
/// `BPF_*_GET_FD_BY_ID` commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    Program,
    Map,
    Link,
}

impl Object {
    const fn commands(self) -> (libc::c_long, libc::c_long) {
        match self {
            Object::Program => (11, 13),
            Object::Map => (12, 14),
            Object::Link => (31, 30),
        }
    }
}

/// `union bpf_attr` for the id commands: an id (the start, or the one to
/// open), the next id the kernel writes back, and open flags.
#[repr(C)]
#[derive(Default)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf_id_command(command: libc::c_long, attr: &mut IdAttr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid bpf_attr prefix of the size given, and
    // lives across the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            attr as *mut IdAttr,
            size_of::<IdAttr>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The ids of every object of `kind` on the machine.
pub fn ids(kind: Object) -> Vec<u32> {
    let (next, _) = kind.commands();
    let mut ids = Vec::new();
    let mut attr = IdAttr::default();
    while bpf_id_command(next, &mut attr).is_ok() {
        ids.push(attr.next_id);
        attr.id = attr.next_id;
    }
    ids
}

/// A descriptor of object `id`, as `bpftool` would open it.
pub fn open_by_id(kind: Object, id: u32) -> io::Result<OwnedFd> {
    let (_, open) = kind.commands();
    let mut attr = IdAttr {
        id,
        ..IdAttr::default()
    };
    let fd = bpf_id_command(open, &mut attr)?;
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
