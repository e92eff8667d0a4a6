//! Network probes: one connect or send from inside a test's cgroup, by a
//! fresh `netprobe` process (the kernel judges a socket by the cgroup it
//! was created in), and the listeners the test process runs outside it so
//! that an allowed connect or datagram really gets through.
//!
//! Tests only use 127.0.0.2–127.0.0.254 and ::1.

use std::{
    ffi::OsStr,
    io::{BufRead, BufReader},
    net::{IpAddr, Ipv4Addr, TcpListener, UdpSocket},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{
    cgroup::TestCgroup,
    command::{finish, helper_bin},
    privilege::RUN_AS_UID,
    timeouts::command_timeout,
};

/// The address the block rules of the network and event tests list.
pub const LISTED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 7);
/// An address next to [`LISTED`] that those rules leave alone.
pub const UNLISTED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 8);

/// One network operation of `netprobe`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    TcpConnect,
    UdpConnect,
    /// sendto() on an unconnected UDP socket.
    UdpSendto,
    /// sendto(MSG_FASTOPEN) on a TCP socket: a connect without connect().
    TcpFastOpen,
}

impl Op {
    fn arg(self) -> &'static str {
        match self {
            Op::TcpConnect => "tcp-connect",
            Op::UdpConnect => "udp-connect",
            Op::UdpSendto => "udp-sendto",
            Op::TcpFastOpen => "tcp-fastopen",
        }
    }
}

/// What one network operation returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Errno(i32),
}

/// What a blocked connect() or sendto() returns.
pub const EPERM: Outcome = Outcome::Errno(libc::EPERM);

/// A finished probe: its outcome and the pid of the `netprobe` process,
/// which events should name.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    pub pid: u32,
    pub outcome: Outcome,
}

/// Runs `op` to `addr`:`port` from a fresh `netprobe` process inside
/// `cgroup`. An IPv6 `addr` (including an IPv4-mapped one, see [`mapped`])
/// gets an AF_INET6 socket, an IPv4 one an AF_INET socket.
pub fn probe(cgroup: &TestCgroup, op: Op, addr: impl Into<IpAddr>, port: u16) -> Outcome {
    run_probe(cgroup, op, addr, port).outcome
}

/// [`probe`], also returning the pid of the process that made the socket.
pub fn run_probe(cgroup: &TestCgroup, op: Op, addr: impl Into<IpAddr>, port: u16) -> Probe {
    socket_probe(cgroup, None, op, addr.into(), port)
}

/// [`probe`] by a process that has dropped to `uid` inside the cgroup.
pub fn probe_as(
    cgroup: &TestCgroup,
    uid: u32,
    op: Op,
    addr: impl Into<IpAddr>,
    port: u16,
) -> Outcome {
    socket_probe(cgroup, Some(uid), op, addr.into(), port).outcome
}

/// One network operation from inside a test's cgroup and what it must
/// return: a row of the verdict tables that [`assert_checks`] runs.
#[derive(Clone, Copy, Debug)]
pub struct Check {
    pub op: Op,
    pub addr: IpAddr,
    pub port: u16,
    pub expected: Outcome,
    /// What the row stands for, when the address and port do not say it.
    pub why: &'static str,
}

impl Check {
    /// `op` to `addr`:`port` must fail with [`EPERM`].
    pub fn refused(op: Op, addr: impl Into<IpAddr>, port: u16) -> Self {
        Self::new(op, addr.into(), port, EPERM)
    }

    /// `op` to `addr`:`port` must succeed.
    pub fn allowed(op: Op, addr: impl Into<IpAddr>, port: u16) -> Self {
        Self::new(op, addr.into(), port, Outcome::Ok)
    }

    /// This row, named `why` in its failure message.
    pub fn because(self, why: &'static str) -> Self {
        Self { why, ..self }
    }

    fn new(op: Op, addr: IpAddr, port: u16, expected: Outcome) -> Self {
        Self {
            op,
            addr,
            port,
            expected,
            why: "",
        }
    }
}

/// Runs each check, in order, from a fresh `netprobe` in `cgroup`; the
/// first whose outcome differs fails the test and is named.
#[track_caller]
pub fn assert_checks(cgroup: &TestCgroup, checks: &[Check]) {
    for check in checks {
        assert_eq!(
            probe(cgroup, check.op, check.addr, check.port),
            check.expected,
            "{check:?}"
        );
    }
}

fn socket_probe(cgroup: &TestCgroup, uid: Option<u32>, op: Op, addr: IpAddr, port: u16) -> Probe {
    let args = [op.arg().to_owned(), addr.to_string(), port.to_string()];
    let (pid, line) = run_netprobe(cgroup, &args, uid);
    let outcome = outcome(&line, "ok")
        .unwrap_or_else(|| panic!("netprobe {} printed {line:?}", args.join(" ")));
    Probe { pid, outcome }
}

/// A `netprobe` that has done its operation and stays alive until this is
/// dropped, so that what is read of it later (its parent, from `/proc`)
/// is still there.
pub struct HeldProbe {
    child: Child,
    pub probe: Probe,
}

/// [`run_probe`], with the process held alive; see [`HeldProbe`].
pub fn held_probe(cgroup: &TestCgroup, op: Op, addr: impl Into<IpAddr>, port: u16) -> HeldProbe {
    let mut child = Command::new(netprobe_bin())
        .arg(cgroup.path())
        .args([
            op.arg().to_owned(),
            addr.into().to_string(),
            port.to_string(),
        ])
        .env("NETPROBE_HOLD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot start netprobe");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("reading netprobe's line");
    let outcome =
        outcome(line.trim(), "ok").unwrap_or_else(|| panic!("netprobe {op:?} printed {line:?}"));
    HeldProbe {
        probe: Probe {
            pid: child.id(),
            outcome,
        },
        child,
    }
}

impl Drop for HeldProbe {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// A `Command` that runs `program` inside `cgroup`: `netprobe CGROUP exec
/// PROGRAM`, to which the caller adds the program's arguments. For real
/// clients such as `openssl s_client`.
pub fn command_in(cgroup: &TestCgroup, program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(netprobe_bin());
    command.arg(cgroup.path()).arg("exec").arg(program);
    command
}

/// [`Outcome::Ok`] for the line `success`, [`Outcome::Errno`] for
/// `errno N`.
pub(crate) fn outcome(line: &str, success: &str) -> Option<Outcome> {
    match line.split_once(' ') {
        None if line == success => Some(Outcome::Ok),
        Some(("errno", errno)) => errno.parse().ok().map(Outcome::Errno),
        _ => None,
    }
}

/// Runs `netprobe CGROUP ARGS...` (as `uid`, when given) and returns its
/// pid and the line it printed; panics, with what it wrote, unless it
/// exited 0.
pub(crate) fn run_netprobe(
    cgroup: &TestCgroup,
    args: &[String],
    uid: Option<u32>,
) -> (u32, String) {
    let mut command = Command::new(netprobe_bin());
    if let Some(uid) = uid {
        command.env(RUN_AS_UID, uid.to_string());
    }
    let child = command
        .arg(cgroup.path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start netprobe");
    let pid = child.id();
    let what = format!("netprobe {}", args.join(" "));
    let output = finish(child, command_timeout(), &what);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{what} failed ({}): stdout {stdout:?}, stderr {:?}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    (pid, stdout.trim().to_owned())
}

/// `::ffff:a.b.c.d`, which `netprobe` uses on an AF_INET6 socket.
pub fn mapped(addr: Ipv4Addr) -> IpAddr {
    IpAddr::V6(addr.to_ipv6_mapped())
}

/// A TCP listener on `addr` and a free port, run by the test process (outside
/// the test cgroup), so an allowed connect succeeds. The kernel completes
/// the handshake from the backlog; nothing needs to accept.
pub fn tcp_listener(addr: impl Into<IpAddr>) -> (TcpListener, u16) {
    let addr = addr.into();
    let listener = TcpListener::bind((addr, 0))
        .unwrap_or_else(|error| panic!("cannot listen on {addr}: {error}"));
    let port = listener.local_addr().expect("listener address").port();
    (listener, port)
}

/// A UDP socket bound on `addr` and a free port, as a receiver for allowed
/// datagrams.
pub fn udp_receiver(addr: impl Into<IpAddr>) -> (UdpSocket, u16) {
    let addr = addr.into();
    let socket = UdpSocket::bind((addr, 0))
        .unwrap_or_else(|error| panic!("cannot bind UDP on {addr}: {error}"));
    let port = socket.local_addr().expect("socket address").port();
    (socket, port)
}

/// Waits up to `timeout` for a datagram on `socket`.
pub fn received_datagram(socket: &UdpSocket, timeout: Duration) -> bool {
    socket
        .set_read_timeout(Some(timeout))
        .expect("setting a read timeout");
    let mut buffer = [0; 64];
    socket.recv_from(&mut buffer).is_ok()
}

/// The `netprobe` helper of this crate, found by [`helper_bin`].
fn netprobe_bin() -> PathBuf {
    helper_bin("netprobe")
}
