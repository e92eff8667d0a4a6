//! The floor under every program's time per run: two programs that let
//! everything through, attached to `connect4` and `connect6` of the
//! baseline cgroup during the statistics pass. What they cost is what the
//! hook, the call of a program and the statistics themselves cost, so the
//! report can say how much of the enforcer's time per run is its own.
//!
//! They are loaded with the raw `bpf` syscall: two instructions need no
//! object file, and the bench needs no loader of its own for them.

use std::{
    fs::File,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
};

use anyhow::{Context, Result};

use super::kernel::{self, Program};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
const BPF_CGROUP_INET4_CONNECT: u32 = 10;
const BPF_CGROUP_INET6_CONNECT: u32 = 11;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// `r0 = 1; exit`: let the connect through.
const LET_THROUGH: [u64; 2] = [
    // BPF_ALU64 | BPF_MOV | BPF_K, dst r0, imm 1
    0xb7 | (1 << 32),
    // BPF_JMP | BPF_EXIT
    0x95,
];

/// The fields of `union bpf_attr` that `BPF_PROG_LOAD` reads here; the
/// kernel takes the rest as zero.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `BPF_PROG_ATTACH` and `BPF_PROG_DETACH`.
#[repr(C)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

fn bpf<T>(command: libc::c_long, attr: &T) -> io::Result<i64> {
    // SAFETY: `attr` is a live `#[repr(C)]` prefix of `union bpf_attr`,
    // and its size is passed with it.
    let result = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            std::ptr::from_ref(attr),
            size_of::<T>(),
        )
    };
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// The empty programs, attached for as long as this lives.
pub(crate) struct EmptyHooks {
    cgroup: File,
    attached: Vec<(&'static str, OwnedFd, u32)>,
}

impl EmptyHooks {
    pub(crate) fn attach(cgroup: &Path) -> Result<Self> {
        let directory =
            File::open(cgroup).with_context(|| format!("opening {}", cgroup.display()))?;
        let mut hooks = Self {
            cgroup: directory,
            attached: Vec::new(),
        };
        for (name, attach_type) in [
            ("empty_connect4", BPF_CGROUP_INET4_CONNECT),
            ("empty_connect6", BPF_CGROUP_INET6_CONNECT),
        ] {
            let program = load(name, attach_type)
                .with_context(|| format!("loading the empty program {name}"))?;
            bpf(
                BPF_PROG_ATTACH,
                &ProgAttach {
                    target_fd: hooks.cgroup.as_raw_fd() as u32,
                    attach_bpf_fd: program.as_raw_fd() as u32,
                    attach_type,
                    attach_flags: BPF_F_ALLOW_MULTI,
                },
            )
            .with_context(|| format!("attaching {name} to {}", cgroup.display()))?;
            hooks.attached.push((name, program, attach_type));
        }
        Ok(hooks)
    }

    /// Their run counts and times so far.
    pub(crate) fn programs(&self) -> Result<Vec<Program>> {
        self.attached
            .iter()
            .map(|(name, program, _)| kernel::own_program(program, name))
            .collect()
    }
}

impl Drop for EmptyHooks {
    fn drop(&mut self) {
        for (_, program, attach_type) in &self.attached {
            let _ = bpf(
                BPF_PROG_DETACH,
                &ProgAttach {
                    target_fd: self.cgroup.as_raw_fd() as u32,
                    attach_bpf_fd: program.as_raw_fd() as u32,
                    attach_type: *attach_type,
                    attach_flags: 0,
                },
            );
        }
    }
}

fn load(name: &str, attach_type: u32) -> io::Result<OwnedFd> {
    let mut prog_name = [0u8; 16];
    prog_name[..name.len()].copy_from_slice(name.as_bytes());
    let fd = bpf(
        BPF_PROG_LOAD,
        &ProgLoad {
            prog_type: BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
            insn_cnt: LET_THROUGH.len() as u32,
            insns: LET_THROUGH.as_ptr() as u64,
            license: c"GPL".as_ptr() as u64,
            prog_name,
            expected_attach_type: attach_type,
            ..Default::default()
        },
    )?;
    // SAFETY: the kernel just returned this descriptor, and nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
