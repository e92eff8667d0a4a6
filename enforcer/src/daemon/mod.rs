//! `enforcer run`: checks the host, loads and attaches the programs with
//! the first policy, then serves the control socket and streams events
//! until SIGTERM or SIGINT.

pub mod config;
mod owner;
mod server;
pub mod takeover;

use std::{
    fs::{self, OpenOptions},
    io::{self, BufWriter},
    os::unix::{fs::PermissionsExt as _, net::UnixDatagram},
    path::{Path, PathBuf},
    sync::Arc,
};

use aya::maps::{MapData, RingBuf};
use tokio::{
    io::{Interest, unix::AsyncFd},
    net::UnixListener,
    signal::unix::{Signal, SignalKind, signal},
    sync::{Notify, mpsc},
};

use crate::{
    compile::{self, CompileError},
    events::{
        Event, EventBody, decode,
        hub::{EventHub, Output},
        rules::RuleBook,
        syslog::SyslogWriter,
    },
    exec::resolve,
    host::cgroup::{self, CgroupError},
    kernel::capabilities::{Capabilities, CapabilityError},
    kernel::maps,
    kernel::pins::{self, PinError, Pins},
    kernel::programs::{self, FamilyChoice, Loaded, ProgramsError},
    policy::{self, PolicyErrors},
    store::saved::{PolicyStore, StoreError, StoredPolicy},
    store::signing::{SigningError, TrustedKeys},
};
use enforcer_common::names::MAP_LEARNED;
use owner::{Kernel, Lineage, Owner, Reach, StartError};

pub struct RunOptions {
    pub policy: Vec<PathBuf>,
    pub cgroup: Option<PathBuf>,
    pub socket: PathBuf,
    pub events: Option<PathBuf>,
    /// Scanned at start for copies of banned content.
    pub hash_roots: Vec<PathBuf>,
    /// Where links and maps are pinned (see `crate::kernel::pins`).
    pub pin_dir: PathBuf,
    /// Where the last applied policy is kept (see `crate::store::saved`). With no
    /// `policy` files given, the daemon enforces the one stored there.
    pub state_dir: PathBuf,
    /// A group whose members may apply and roll back policy, see status and
    /// follow events (not unload); without it, only root may.
    pub control_group: Option<String>,
    /// Public key files; when there are any, policy pushed over the
    /// control socket must be a bundle one of them signed.
    pub trusted_keys: Vec<PathBuf>,
    /// Also send every event to this syslog socket.
    pub syslog: Option<PathBuf>,
    /// The program families that must load, and those a test has the
    /// loader treat as refused.
    pub families: FamilyChoice,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Capability(#[from] CapabilityError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("the policy is not valid:\n{0}")]
    Policy(#[from] PolicyErrors),
    #[error("the policy cannot be compiled: {0}")]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Programs(#[from] ProgramsError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Pins(#[from] PinError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no --policy given, and no policy stored at {0}; give the policy files")]
    NoPolicy(PathBuf),
    #[error("--control-group {0}: no such group")]
    UnknownGroup(String),
    #[error("--trusted-key: {0}")]
    TrustedKey(#[from] SigningError),
    #[error(
        "the policy stored at {0} cannot be trusted: {1}; start with --policy, \
         or apply a signed bundle"
    )]
    StoredPolicy(PathBuf, #[source] SigningError),
    #[error("syslog socket {path}: {source}")]
    Syslog {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
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
    #[error("{0}")]
    Runtime(#[source] io::Error),
}

pub async fn run(options: RunOptions) -> Result<(), DaemonError> {
    // Everything that can fail for a reason the user can fix is checked
    // before anything touches the kernel.
    lift_memlock_limit();
    // Listening from the start turns an early SIGTERM into a clean stop.
    let stop = StopSignals::listen().map_err(DaemonError::Runtime)?;
    let capabilities = Capabilities::detect()?;
    let target = cgroup::attach_target(&capabilities.cgroup2_mount, options.cgroup.as_deref())?;
    let access = Arc::new(server::Access {
        group: options.control_group.as_deref().map(group_id).transpose()?,
        trusted: TrustedKeys::load(&options.trusted_keys)?,
    });
    let store = PolicyStore::new(&options.state_dir);
    let stored = if options.policy.is_empty() {
        let stored = store
            .load()?
            .ok_or_else(|| DaemonError::NoPolicy(store.path()))?;
        // The stored file is only as safe as the disk; with trusted keys,
        // it must still carry a signature they vouch for.
        if access.trusted.required() {
            access
                .trusted
                .verify_stored(&stored)
                .map_err(|error| DaemonError::StoredPolicy(store.path(), error))?;
        }
        stored
    } else {
        StoredPolicy::unsigned(policy::read_files(&options.policy)?)
    };
    let policy = policy::parse(&stored.sources)?;
    // Stored before anything is attached: a policy in force is always one
    // a reboot will find. The one stored before becomes the previous.
    store.replace(&stored)?.commit()?;
    let sha256 = crate::store::saved::digest(&stored.sources);
    drop(stored);
    let resolution = resolve::resolve(&policy, None);
    let pins = Pins::create(&options.pin_dir)?;
    let earlier = pins.earlier(&options.pin_dir);
    let reached = takeover::reached(&earlier);
    let domain_seed = match reached.domain_seed {
        Some(seed) => seed,
        None => u64::from_ne_bytes(crate::host::random::bytes().map_err(DaemonError::Runtime)?),
    };
    let compiled = compile::compile(&policy, &resolution.identities, domain_seed)?;
    let (listener, _socket_file) = bind_control_socket(&options.socket, access.group).await?;
    let hub = Arc::new(EventHub::new(outputs(
        options.events.as_deref(),
        options.syslog.as_deref(),
    )?));
    let rules = Arc::new(RuleBook::default());

    let instance = pins.path().to_path_buf();
    let loaded = programs::load(
        &capabilities,
        pins,
        maps::sized_capacity(compiled.image.len()),
        programs::Needs::of(&policy),
        &options.families,
    );
    if loaded.is_err() {
        // Nothing is attached yet: the maps pinned so far would only hold
        // kernel memory until a later daemon or `unload` removed them.
        let _ = pins::remove_instance(&instance);
    }
    let Loaded {
        programs,
        slot,
        counters,
        events,
    } = loaded?;
    let learned = programs.pins().path().join("maps").join(MAP_LEARNED);
    let kernel = Kernel {
        programs,
        slot,
        counters,
    };
    let (commands, receiver) = mpsc::channel(16);
    let owner = Owner::start(
        kernel,
        (policy, resolution, compiled),
        Reach {
            cgroup: target.clone(),
            cgroup_path: cgroup_path(&capabilities.cgroup2_mount, &target),
            hash_roots: options.hash_roots.clone(),
            store,
            sha256,
        },
        Lineage {
            domain_seed,
            first_generation: reached.generation + 1,
        },
        rules.clone(),
        hub.clone(),
        commands.downgrade(),
    )?;
    let ready = EventBody::Ready {
        generation: owner.generation(),
        cgroup: target.display().to_string(),
        programs: owner.program_names(),
        exec_enforcement: owner.exec_enforcement(),
        self_protection: owner.self_protection(),
        rules: owner.rule_count(),
        families: owner.families(),
        programs_verified: owner.verified(),
    };
    // Every family this kernel refused, so that a fleet can alert on it,
    // whether or not the first policy needs it.
    let degraded = owner.degradations();

    let owner_thread = std::thread::Builder::new()
        .name("enforcer-owner".into())
        .spawn(move || owner.run(receiver))
        .map_err(DaemonError::Runtime)?;
    hub.publish(&Event::now(ready));
    for degradation in degraded {
        hub.publish(&Event::now(EventBody::Degraded(degradation)));
    }
    // This daemon's programs are attached; the earlier ones can go.
    if !earlier.is_empty() {
        let report = takeover::finish(&earlier, learned, &hub);
        hub.publish(&Event::now(EventBody::Takeover(report)));
    }
    let reader = tokio::spawn(read_kernel_events(events, rules, hub.clone()));
    let unloaded = Arc::new(Notify::new());
    let server = tokio::spawn(server::serve(
        listener,
        commands,
        hub.clone(),
        unloaded.clone(),
        access,
    ));
    notify_systemd_ready();

    let reason = tokio::select! {
        reason = stop.received() => reason,
        () = unloaded.notified() => "unloaded".to_string(),
    };
    // Dropping the server drops the last command sender; the owner then
    // returns. Its programs stay attached through their pins, unless they
    // were unloaded.
    server.abort();
    let _ = server.await;
    let _ = owner_thread.join();
    reader.abort();
    hub.publish(&Event::now(EventBody::Shutdown { reason }));
    Ok(())
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK, whose usual
/// default is far below the image of a large policy. Later kernels ignore
/// the limit, and a failure here shows up, explained, when a map cannot be
/// created.
fn lift_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: valid rlimit pointers for the calling process.
    unsafe {
        if libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) != 0 {
            let mut current = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut current) == 0 {
                current.rlim_cur = current.rlim_max;
                libc::setrlimit(libc::RLIMIT_MEMLOCK, &current);
            }
        }
    }
}

fn outputs(events_file: Option<&Path>, syslog: Option<&Path>) -> Result<Vec<Output>, DaemonError> {
    let mut outputs = vec![Output::new("stdout", BufWriter::new(io::stdout()))];
    if let Some(path) = events_file {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| DaemonError::EventsFile {
                path: path.to_path_buf(),
                source,
            })?;
        outputs.push(Output::new(
            path.display().to_string(),
            BufWriter::new(file),
        ));
    }
    if let Some(path) = syslog {
        let writer = SyslogWriter::connect(path).map_err(|source| DaemonError::Syslog {
            path: path.to_path_buf(),
            source,
        })?;
        outputs.push(Output::new(format!("syslog {}", path.display()), writer));
    }
    Ok(outputs)
}

/// The cgroup as `/proc/PID/cgroup` names it: its path below the mount.
fn cgroup_path(mount: &Path, cgroup: &Path) -> String {
    let below = cgroup.strip_prefix(mount).unwrap_or(Path::new(""));
    format!("/{}", below.display())
}

/// Removes the socket file when the daemon stops or fails to start.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Binds the socket with mode 0600 in a directory made if missing. A
/// leftover socket file from a crashed daemon is replaced; a live one is
/// not.
/// The id of the group named `name`.
fn group_id(name: &str) -> Result<u32, DaemonError> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) | Err(_) => Err(DaemonError::UnknownGroup(name.to_string())),
    }
}

/// The control socket: mode 0600, or 0660 owned by `group` when there is
/// one. (Its directory must let the group through too.)
async fn bind_control_socket(
    path: &Path,
    group: Option<u32>,
) -> Result<(UnixListener, SocketFile), DaemonError> {
    let fail = |source| DaemonError::Socket {
        path: path.to_path_buf(),
        source,
    };
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(DaemonError::SocketInUse(path.to_path_buf()));
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

/// Events published together: enough to write a storm in few syscalls,
/// few enough that none waits long for its batch.
const EVENT_BATCH: usize = 256;

async fn read_kernel_events(ring: RingBuf<MapData>, rules: Arc<RuleBook>, hub: Arc<EventHub>) {
    // SAFETY: the ring buffer owns its map fd and keeps it open, unchanged,
    // for as long as it lives, which is as long as the AsyncFd.
    let registered = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) };
    let mut ring = match registered {
        Ok(ring) => ring,
        Err(error) => {
            eprintln!("enforcer: cannot watch the events ring buffer: {error}");
            return;
        }
    };
    let mut parents = decode::Parents::default();
    let mut batch = Vec::with_capacity(EVENT_BATCH);
    loop {
        let mut ready = match ring.readable_mut().await {
            Ok(ready) => ready,
            Err(error) => {
                eprintln!("enforcer: events ring buffer: {error}");
                return;
            }
        };
        let records = ready.get_inner_mut();
        while let Some(record) = records.next() {
            match decode::decode(&record, &rules, &mut parents) {
                Ok(event) => batch.push(event),
                Err(error) => eprintln!("enforcer: skipped an event: {error}"),
            }
            if batch.len() == EVENT_BATCH {
                hub.publish_all(&batch);
                batch.clear();
            }
        }
        hub.publish_all(&batch);
        batch.clear();
        ready.clear_ready();
    }
}

struct StopSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl StopSignals {
    fn listen() -> io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn received(mut self) -> String {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
        .to_string()
    }
}

/// Tells systemd (`Type=notify`) that enforcement is active.
fn notify_systemd_ready() {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|socket| {
        let bytes = target.as_encoded_bytes();
        // A leading '@' names a socket in the abstract namespace.
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt as _;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(b"READY=1", &address)
        } else {
            socket.send_to(b"READY=1", &target)
        }
    });
    if let Err(error) = sent {
        eprintln!(
            "enforcer: cannot notify systemd through {}: {error}",
            target.display()
        );
    }
}

/// Makes every thread allocate from one glibc arena. Called before any
/// thread starts. glibc gives each thread that allocates an arena of its
/// own, and never hands back the free top of a thread's arena, so a large
/// apply parsed on a runtime thread would stay resident for good. The
/// daemon's threads allocate little outside applies, so sharing one arena
/// costs nothing measurable.
pub fn share_one_allocator_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets the allocator's own tuning parameters.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Hands the memory an apply freed back to the system. Parsing and
/// compiling a large policy peaks at several times what the daemon keeps,
/// and glibc keeps freed memory for reuse: without this, a daemon's RSS
/// stays near its largest apply's peak.
pub(crate) fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks and trims the allocator's own free
    // lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
