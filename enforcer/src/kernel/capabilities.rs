//! What this host offers, found once at start by asking the kernel
//! (loading a trivial program of each type needed), never by version
//! numbers. The rest of the daemon reads the result and never probes again.

use std::{
    fs,
    path::{Path, PathBuf},
};

use aya::{
    maps::{MapError, MapType},
    programs::ProgramType,
    sys::{is_map_supported, is_program_supported},
};
use serde::{Deserialize, Serialize};

use crate::{
    host::cgroup::{self, CgroupError},
    host::mountinfo,
    kernel::maps,
};

#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    #[error(
        "enforcer must run as root (it loads eBPF programs and attaches them to cgroups); try sudo"
    )]
    NotRoot,
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(
        "this kernel cannot load {what} ({needs}); enforcer needs it for {why}. \
         Use a kernel built with CONFIG_BPF_SYSCALL=y and CONFIG_CGROUP_BPF=y"
    )]
    Missing {
        what: &'static str,
        needs: &'static str,
        why: &'static str,
    },
    #[error("probing the kernel for {what} failed: {message}")]
    Probe { what: &'static str, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub cgroup2_mount: PathBuf,
    /// `bpf` is among the active LSMs, so a BPF LSM program would run.
    pub bpf_lsm_active: bool,
}

struct Requirement {
    what: &'static str,
    needs: &'static str,
    why: &'static str,
    probe: fn() -> Result<bool, String>,
}

const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        what: "cgroup_sock_addr programs",
        needs: "Linux 4.17 or later",
        why: "refusing connect() and sendmsg() to listed endpoints",
        probe: || is_program_supported(ProgramType::CgroupSockAddr).map_err(|e| e.to_string()),
    },
    Requirement {
        what: "BPF ring buffers",
        needs: "Linux 5.8 or later",
        why: "streaming verdict events",
        probe: || is_map_supported(MapType::RingBuf).map_err(|e| e.to_string()),
    },
    Requirement {
        what: "BPF array-of-maps",
        needs: "Linux 4.12 or later",
        why: "switching policy generations atomically",
        probe: || is_map_supported(MapType::ArrayOfMaps).map_err(|e| e.to_string()),
    },
    Requirement {
        what: "mmapable inner array maps (BPF_F_MMAPABLE | BPF_F_INNER_MAP)",
        needs: "Linux 5.10 or later",
        why: "policy images sized to each policy",
        probe: image_maps_supported,
    },
];

fn image_maps_supported() -> Result<bool, String> {
    match maps::create_image_map(maps::Slot::AnySize, 1) {
        Ok(_) => Ok(true),
        // The kernel's answer to flags it does not know.
        Err(MapError::CreateError { io_error, .. })
            if io_error.raw_os_error() == Some(libc::EINVAL) =>
        {
            Ok(false)
        }
        Err(error) => Err(error.to_string()),
    }
}

impl Capabilities {
    pub fn detect() -> Result<Self, CapabilityError> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(CapabilityError::NotRoot);
        }
        let cgroup2_mount = cgroup::cgroup2_mount()?;
        for requirement in REQUIREMENTS {
            match (requirement.probe)() {
                Ok(true) => {}
                Ok(false) => {
                    return Err(CapabilityError::Missing {
                        what: requirement.what,
                        needs: requirement.needs,
                        why: requirement.why,
                    });
                }
                Err(message) => {
                    return Err(CapabilityError::Probe {
                        what: requirement.what,
                        message,
                    });
                }
            }
        }
        Ok(Self {
            cgroup2_mount,
            bpf_lsm_active: bpf_lsm_active(),
        })
    }
}

/// Whether `bpf` is in `/sys/kernel/security/lsm`. A kernel built with BPF
/// LSM loads LSM programs even when `bpf` is not in its `lsm=` list, and
/// then never runs them, so the list decides.
fn bpf_lsm_active() -> bool {
    const LSM_LIST: &str = "/sys/kernel/security/lsm";
    if !Path::new(LSM_LIST).exists() {
        mountinfo::mount_pseudo_fs(c"securityfs", c"/sys/kernel/security");
    }
    fs::read_to_string(LSM_LIST).is_ok_and(|list| list.trim().split(',').any(|lsm| lsm == "bpf"))
}
