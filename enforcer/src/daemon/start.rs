//! The steps `enforcer run` takes before it serves, in order. Each checks
//! what it can before anything touches the kernel, and fails with an error
//! of its own that says what to fix.

use std::{
    fs::{self, OpenOptions},
    io::{self, BufWriter},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use aya::maps::{MapData, RingBuf};
use tokio::net::UnixListener;

use super::{
    options::RunOptions,
    owner::{Kernel, Lineage},
    server::Access,
    takeover::{self, Reached},
};
use crate::{
    compile::{self, CompileError, Compiled},
    events::{hub::Output, syslog::SyslogWriter},
    exec::resolve::{self, Resolution},
    host::{
        cgroup::{self, CgroupError},
        random,
    },
    kernel::{
        capabilities::{Capabilities, CapabilityError},
        maps,
        pins::{self, Earlier, PinError, Pins},
        programs::{self, Loaded, ProgramsError},
    },
    policy::{self, Policy, PolicyErrors},
    store::{
        saved::{self, PolicyStore, StoreError, StoredPolicy},
        signing::{SigningError, TrustedKeys},
    },
};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Capability(#[from] CapabilityError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("--control-group {0}: no such group")]
    UnknownGroup(String),
    #[error("--trusted-key: {0}")]
    TrustedKey(#[from] SigningError),
}

/// What the host offers, where to enforce, and who may control it.
pub(super) struct Host {
    pub capabilities: Capabilities,
    pub target: PathBuf,
    /// The target as `/proc/PID/cgroup` names it: its path below the mount.
    pub cgroup_path: String,
    pub access: Arc<Access>,
}

pub(super) fn check_host(options: &RunOptions) -> Result<Host, HostError> {
    let capabilities = Capabilities::detect()?;
    let target = cgroup::attach_target(&capabilities.cgroup2_mount, options.cgroup.as_deref())?;
    let access = Arc::new(Access {
        group: options.control_group.as_deref().map(group_id).transpose()?,
        trusted: TrustedKeys::load(&options.trusted_keys)?,
    });
    let below = target
        .strip_prefix(&capabilities.cgroup2_mount)
        .unwrap_or(Path::new(""));
    Ok(Host {
        cgroup_path: format!("/{}", below.display()),
        capabilities,
        target,
        access,
    })
}

/// The id of the group named `name`.
fn group_id(name: &str) -> Result<u32, HostError> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) | Err(_) => Err(HostError::UnknownGroup(name.to_string())),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FirstPolicyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no --policy given, and no policy stored at {0}; give the policy files")]
    NoPolicy(PathBuf),
    #[error(
        "the policy stored at {0} cannot be trusted: {1}; start with --policy, \
         or apply a signed bundle"
    )]
    StoredPolicy(PathBuf, #[source] SigningError),
    #[error("the policy is not valid:\n{0}")]
    Policy(#[from] PolicyErrors),
}

/// The policy the daemon starts with, already stored as the one in force.
pub(super) struct FirstPolicy {
    pub policy: Policy,
    /// The policy's content hash, hex.
    pub sha256: String,
    pub store: PolicyStore,
}

/// The `--policy` files, or else the stored policy, which must then carry
/// a signature the trusted keys vouch for, if there are any: the stored
/// file is only as safe as the disk.
pub(super) fn first_policy(
    options: &RunOptions,
    trusted: &TrustedKeys,
) -> Result<FirstPolicy, FirstPolicyError> {
    let store = PolicyStore::new(&options.state_dir);
    let stored = if options.policy.is_empty() {
        let stored = store
            .load()?
            .ok_or_else(|| FirstPolicyError::NoPolicy(store.path()))?;
        if trusted.required() {
            trusted
                .verify_stored(&stored)
                .map_err(|error| FirstPolicyError::StoredPolicy(store.path(), error))?;
        }
        stored
    } else {
        StoredPolicy::unsigned(policy::read_files(&options.policy)?)
    };
    let policy = policy::parse(&stored.sources)?;
    // Stored before anything is attached: a policy in force is always one
    // a reboot will find. The one stored before becomes the previous.
    store.replace(&stored)?.commit()?;
    Ok(FirstPolicy {
        policy,
        sha256: saved::digest(&stored.sources),
        store,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum InheritError {
    #[error(transparent)]
    Pins(#[from] PinError),
    #[error("cannot draw the domain hash seed: {0}")]
    Random(#[source] io::Error),
}

/// This daemon's pins, and what the daemons before it left pinned: their
/// instances to take over, the generation they reached and the domain
/// seed their learned addresses were hashed with.
pub(super) struct Inheritance {
    pub pins: Pins,
    pub earlier: Vec<Earlier>,
    pub lineage: Lineage,
}

pub(super) fn inherit(options: &RunOptions) -> Result<Inheritance, InheritError> {
    let pins = Pins::create(&options.pin_dir)?;
    let earlier = pins.earlier(&options.pin_dir);
    let Reached {
        generation,
        domain_seed,
    } = takeover::reached(&earlier);
    let domain_seed = match domain_seed {
        Some(seed) => seed,
        None => u64::from_ne_bytes(random::bytes().map_err(InheritError::Random)?),
    };
    Ok(Inheritance {
        pins,
        earlier,
        lineage: Lineage {
            domain_seed,
            first_generation: generation + 1,
        },
    })
}

/// The first generation, compiled before any program is loaded so that a
/// policy that cannot compile changes nothing.
pub(super) fn compile_first(
    policy: &Policy,
    domain_seed: u64,
) -> Result<(Resolution, Compiled), CompileError> {
    let resolution = resolve::resolve(policy, None);
    let compiled = compile::compile(policy, &resolution.identities, domain_seed)?;
    Ok((resolution, compiled))
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("another enforcer is already serving {0}; stop it or pass another --socket")]
    SocketInUse(PathBuf),
    #[error("control socket {path}: {source}")]
    Socket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("events file {path}: {source}")]
    EventsFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("syslog socket {path}: {source}")]
    Syslog {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Where the daemon is heard: the control socket, and every event sink.
pub(super) struct Outputs {
    pub listener: UnixListener,
    pub socket_file: SocketFile,
    pub events: Vec<Output>,
}

pub(super) async fn open_outputs(
    options: &RunOptions,
    group: Option<u32>,
) -> Result<Outputs, OutputError> {
    let (listener, socket_file) = bind_control_socket(&options.socket, group).await?;
    let mut events =
        vec![Output::new("stdout", BufWriter::new(io::stdout())).in_format(options.event_format)];
    if let Some(path) = &options.events {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| OutputError::EventsFile {
                path: path.clone(),
                source,
            })?;
        events.push(
            Output::new(path.display().to_string(), BufWriter::new(file))
                .in_format(options.event_format),
        );
    }
    if let Some(path) = &options.syslog {
        let writer = SyslogWriter::connect(path).map_err(|source| OutputError::Syslog {
            path: path.clone(),
            source,
        })?;
        events.push(Output::new(format!("syslog {}", path.display()), writer));
    }
    Ok(Outputs {
        listener,
        socket_file,
        events,
    })
}

/// Removes the socket file when the daemon stops or fails to start.
pub(super) struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// The control socket: mode 0600, or 0660 owned by `group` when there is
/// one (its directory must let the group through too), in a directory
/// made if missing. A leftover socket file from a crashed daemon is
/// replaced; a live one is not.
async fn bind_control_socket(
    path: &Path,
    group: Option<u32>,
) -> Result<(UnixListener, SocketFile), OutputError> {
    let fail = |source| OutputError::Socket {
        path: path.to_path_buf(),
        source,
    };
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(OutputError::SocketInUse(path.to_path_buf()));
    }
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(fail)?;
    }
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(fail(error)),
    }
    let listener = UnixListener::bind(path).map_err(fail)?;
    let file = SocketFile(path.to_path_buf());
    let mode = match group {
        Some(gid) => {
            std::os::unix::fs::chown(path, Some(0), Some(gid)).map_err(fail)?;
            0o660
        }
        None => 0o600,
    };
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(fail)?;
    Ok((listener, file))
}

/// The loaded programs and maps, not yet attached, with the ring their
/// events arrive on and the instance's pin directory.
pub(super) struct LoadedKernel {
    pub kernel: Kernel,
    pub events: RingBuf<MapData>,
    pub instance: PathBuf,
}

/// Loads every program family the host and the first policy call for,
/// sizing the image slot for the first generation. On failure nothing
/// stays pinned: the maps pinned so far would only hold kernel memory
/// until a later daemon or `unload` removed them.
pub(super) fn load_kernel(
    capabilities: &Capabilities,
    pins: Pins,
    policy: &Policy,
    compiled: &Compiled,
    options: &RunOptions,
) -> Result<LoadedKernel, ProgramsError> {
    let instance = pins.path().to_path_buf();
    let loaded = programs::load(
        capabilities,
        pins,
        maps::sized_capacity(compiled.image.len()),
        programs::Needs::of(policy),
        &options.families,
    );
    let Loaded {
        programs,
        slot,
        counters,
        hits,
        events,
    } = loaded.inspect_err(|_| {
        let _ = pins::remove_instance(&instance);
    })?;
    let instance = programs.pins().path().to_path_buf();
    Ok(LoadedKernel {
        kernel: Kernel {
            programs,
            slot,
            counters,
            hits,
        },
        events,
        instance,
    })
}
