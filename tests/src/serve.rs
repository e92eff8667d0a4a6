//! Background threads of the test servers ([`crate::dns::DnsServer`],
//! [`crate::tls::TlsListener`]).
//!
//! A server must go away with the test that made it, also when the test
//! fails half-way and a client is left hanging. So every socket the threads
//! wait on has a [`POLL`] timeout and the threads check a stop flag between
//! waits: dropping [`Threads`] sets the flag and joins them, which closes
//! their sockets within about [`POLL`], never later.

use std::{
    io::{self, Read},
    net::{TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

/// How long a server thread waits before it looks at the stop flag again.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// Threads that run until the value is dropped.
pub(crate) struct Threads {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
}

impl Threads {
    pub(crate) fn new() -> Self {
        Self {
            stop: Arc::new(AtomicBool::new(false)),
            handles: Vec::new(),
        }
    }

    /// Runs `body` on a thread of its own; `body` is given the stop flag
    /// and must return soon after it is set.
    pub(crate) fn spawn(&mut self, body: impl FnOnce(&AtomicBool) + Send + 'static) {
        let stop = Arc::clone(&self.stop);
        self.handles.push(thread::spawn(move || body(&stop)));
    }
}

/// Stops and joins the threads. A thread that panicked fails the test
/// (unless it is failing already): its message is on stderr.
impl Drop for Threads {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let panicked = self
            .handles
            .drain(..)
            .filter_map(|handle| handle.join().err())
            .count();
        if panicked > 0 && !thread::panicking() {
            panic!("{panicked} test server thread(s) panicked; see their messages above");
        }
    }
}

/// Accepts connections on `listener` until `stop` is set, running
/// `handle` on each, on a thread of its own, with a [`POLL`] read timeout
/// (see [`read_some`] and [`is_timeout`]); returns once every connection's
/// thread is done.
pub(crate) fn accept_until(
    listener: &TcpListener,
    stop: &AtomicBool,
    handle: impl Fn(TcpStream) + Sync,
) {
    listener
        .set_nonblocking(true)
        .expect("making a listener non-blocking");
    let handle = &handle;
    thread::scope(|scope| {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream
                        .set_nonblocking(false)
                        .expect("making a connection blocking");
                    stream
                        .set_read_timeout(Some(POLL))
                        .expect("setting a read timeout");
                    scope.spawn(move || handle(stream));
                }
                // WouldBlock, or a connection that was reset before it
                // was accepted: wait for the next one.
                Err(_) => thread::sleep(POLL),
            }
        }
    });
}

/// Reads into `buffer` like [`Read::read`], waiting out the read timeouts:
/// returns the bytes read, or 0 at end of stream or once `stop` is set.
fn read_some(stream: &mut TcpStream, buffer: &mut [u8], stop: &AtomicBool) -> io::Result<usize> {
    loop {
        match stream.read(buffer) {
            Err(error) if is_timeout(&error) => {
                if stop.load(Ordering::Relaxed) {
                    return Ok(0);
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// Fills `buffer` with [`read_some`]; false at end of stream, on an error
/// or once `stop` is set.
pub(crate) fn fill(stream: &mut TcpStream, buffer: &mut [u8], stop: &AtomicBool) -> bool {
    let mut filled = 0;
    while filled < buffer.len() {
        match read_some(stream, &mut buffer[filled..], stop) {
            Ok(0) | Err(_) => return false,
            Ok(read) => filled += read,
        }
    }
    true
}

/// Whether `error` is a read timeout (Linux reports EAGAIN for it).
pub(crate) fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
