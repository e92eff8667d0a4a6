//! A TLS server stand-in that records what each connection delivered, and
//! ClientHellos sent to it from inside a test's cgroup.

use std::{
    io::Read,
    net::{IpAddr, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use crate::{
    cgroup::TestCgroup,
    net::{Outcome, outcome, run_netprobe, tcp_listener},
    serve,
};

/// Connects to `addr`:`port` from a fresh `netprobe` process inside
/// `cgroup` and sends a TLS ClientHello naming `sni` ([`super::client_hello`]).
/// [`Outcome::Ok`] says only that the write succeeded: the kernel may still
/// drop the segment, so ask the [`TlsListener`] what arrived.
pub fn tls_hello(cgroup: &TestCgroup, addr: impl Into<IpAddr>, port: u16, sni: &str) -> Outcome {
    send_hello(cgroup, addr.into(), port, sni, &[], None)
}

/// [`tls_hello`] by a process that has dropped to `uid`.
pub fn tls_hello_as(
    cgroup: &TestCgroup,
    addr: impl Into<IpAddr>,
    port: u16,
    sni: &str,
    uid: u32,
) -> Outcome {
    send_hello(cgroup, addr.into(), port, sni, &[], Some(uid))
}

/// [`tls_hello`] as a splitter sends it, by `uid`: the first `first` bytes
/// in a TCP segment of their own, then the rest.
pub fn tls_hello_split_as(
    cgroup: &TestCgroup,
    addr: impl Into<IpAddr>,
    port: u16,
    sni: &str,
    first: usize,
    uid: u32,
) -> Outcome {
    send_hello(
        cgroup,
        addr.into(),
        port,
        sni,
        &[first.to_string()],
        Some(uid),
    )
}

fn send_hello(
    cgroup: &TestCgroup,
    addr: IpAddr,
    port: u16,
    sni: &str,
    split: &[String],
    uid: Option<u32>,
) -> Outcome {
    let mut args = vec![
        "tls-hello".to_owned(),
        addr.to_string(),
        port.to_string(),
        sni.to_owned(),
    ];
    args.extend_from_slice(split);
    let (_, line) = run_netprobe(cgroup, &args, uid);
    outcome(&line, "sent").unwrap_or_else(|| panic!("netprobe {} printed {line:?}", args.join(" ")))
}

/// A TCP listener on `addr` and a free port, run by the test process, that
/// accepts every connection and records the bytes each one delivers, so a
/// test can tell whether a ClientHello got through. It never answers: it
/// closes a connection once the client has closed its side, or has sent
/// something and then been quiet for [`TLS_QUIET`] (a real client would
/// wait for the ServerHello forever). It stops on drop.
pub struct TlsListener {
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Stopped and joined on drop.
    _threads: serve::Threads,
}

/// How long a [`TlsListener`] connection that delivered bytes may be quiet
/// before the listener closes it.
pub const TLS_QUIET: Duration = Duration::from_millis(250);

/// A [`TlsListener`] on `addr` and a free port.
pub fn tls_listener(addr: impl Into<IpAddr>) -> (TlsListener, u16) {
    let (listener, port) = tcp_listener(addr);
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&received);
    let mut threads = serve::Threads::new();
    threads.spawn(move |stop| {
        serve::accept_until(&listener, stop, |stream| {
            record_connection(stream, &log, stop)
        });
    });
    let listener = TlsListener {
        received,
        _threads: threads,
    };
    (listener, port)
}

/// Appends what `stream` delivers to an entry of its own in `log`, until
/// the client closes it, goes quiet (see [`TlsListener`]) or the listener
/// stops; then closes it.
fn record_connection(mut stream: TcpStream, log: &Mutex<Vec<Vec<u8>>>, stop: &AtomicBool) {
    let index = {
        let mut log = log.lock().unwrap();
        log.push(Vec::new());
        log.len() - 1
    };
    let mut buffer = [0; 4096];
    let mut last_bytes = None;
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return,
            Ok(read) => {
                log.lock().unwrap()[index].extend_from_slice(&buffer[..read]);
                last_bytes = Some(Instant::now());
            }
            Err(error) if serve::is_timeout(&error) => {
                let quiet = last_bytes.is_some_and(|last| last.elapsed() >= TLS_QUIET);
                if quiet || stop.load(Ordering::Relaxed) {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

impl TlsListener {
    /// The bytes each connection delivered so far, in the order they were
    /// accepted.
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.received.lock().unwrap().clone()
    }

    /// Whether a connection delivers a byte within `timeout`.
    pub fn received_client_hello(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.received().iter().any(|bytes| !bytes.is_empty()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}
