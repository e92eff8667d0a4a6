//! The daemon as a process: its memory limits and allocator, the signals
//! that stop it, and telling systemd it is ready.

use std::{io, os::unix::net::UnixDatagram};

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK, whose usual
/// default is far below the image of a large policy. Later kernels ignore
/// the limit, and a failure here shows up, explained, when a map cannot be
/// created.
pub(super) fn lift_memlock_limit() {
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
pub(super) fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks and trims the allocator's own free
    // lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

pub(super) struct StopSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl StopSignals {
    pub(super) fn listen() -> io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    pub(super) async fn received(mut self) -> String {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
        .to_string()
    }
}

/// Tells systemd (`Type=notify`) that enforcement is active.
pub(super) fn notify_systemd_ready() {
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
        log::warn!(
            "cannot notify systemd through {}: {error}",
            target.display()
        );
    }
}
