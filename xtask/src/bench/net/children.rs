//! The `bench --storm` children of the `net` scenario: each joins the
//! cgroups it is given and times its workload there, printing the numbers
//! for the parent to read.

use std::{
    fs,
    io::ErrorKind,
    net::{SocketAddr, TcpListener, UdpSocket},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
    process::ExitCode,
    time::Instant,
};

use anyhow::{Context, Result, bail};

use crate::bench::cidrs::SENTINEL_V4;

/// Connects per batch on one socket before the next socket's turn.
pub(super) const UDP_BATCH: usize = 500;

/// `bench --storm udp CONNECTS CGROUP...`: makes an IPv4 and an IPv6 UDP
/// socket in each cgroup (joining each in turn), then connects them to
/// unlisted loopback addresses, `CONNECTS` times each, in interleaved
/// batches. Prints ns per connect, IPv4 and IPv6, for each cgroup.
pub(crate) fn udp_storm_child(args: &[String]) -> Result<ExitCode> {
    let [connects, cgroups @ ..] = args else {
        bail!("usage: --storm udp CONNECTS CGROUP...");
    };
    let connects: usize = connects.parse()?;
    let peers: [SocketAddr; 2] = ["127.0.0.91:9".parse()?, "[::1]:9".parse()?];
    let mut sockets = Vec::new();
    for cgroup in cgroups {
        fs::write(Path::new(cgroup).join("cgroup.procs"), "0").context("joining a cgroup")?;
        sockets.push([
            UdpSocket::bind("127.0.0.92:0")?,
            UdpSocket::bind("[::1]:0")?,
        ]);
    }
    // Warm up: the first connect fills caches.
    for pair in &sockets {
        for (socket, peer) in pair.iter().zip(peers) {
            for _ in 0..UDP_BATCH {
                socket.connect(peer)?;
            }
        }
    }
    let mut nanos = vec![[0u128; 2]; sockets.len()];
    let batches = connects.div_ceil(UDP_BATCH);
    for batch in 0..batches {
        for (family, peer) in peers.into_iter().enumerate() {
            // Rotate who goes first, so no cgroup always follows another.
            for turn in 0..sockets.len() {
                let index = (turn + batch) % sockets.len();
                let socket = &sockets[index][family];
                let started = Instant::now();
                for _ in 0..UDP_BATCH {
                    socket.connect(peer)?;
                }
                nanos[index][family] += started.elapsed().as_nanos();
            }
        }
    }
    let per = (batches * UDP_BATCH) as f64;
    let line: Vec<String> = nanos
        .iter()
        .flat_map(|[v4, v6]| [*v4 as f64 / per, *v6 as f64 / per])
        .map(|ns| format!("{ns:.1}"))
        .collect();
    println!("{}", line.join(" "));
    Ok(ExitCode::SUCCESS)
}

/// Iterations per batch in one cgroup before the next cgroup's turn.
pub(super) const TCP_BATCH: usize = 50;

/// `bench --storm tcp LOOPS CGROUP...`: in each cgroup (joining each in
/// turn) makes a listener on loopback and `LOOPS` client sockets, then
/// runs connect + accept + close with them, in interleaved batches.
/// Prints µs per iteration for each cgroup.
pub(crate) fn tcp_storm_child(args: &[String]) -> Result<ExitCode> {
    let [loops, cgroups @ ..] = args else {
        bail!("usage: --storm tcp LOOPS CGROUP...");
    };
    let loops: usize = loops.parse()?;
    let warm = TCP_BATCH;
    let mut sides = Vec::new();
    for cgroup in cgroups {
        fs::write(Path::new(cgroup).join("cgroup.procs"), "0").context("joining a cgroup")?;
        let listener = TcpListener::bind("127.0.0.93:0")?;
        let clients = (0..loops + warm)
            .map(|_| tcp_socket())
            .collect::<Result<Vec<_>>>()?;
        sides.push((listener, clients));
    }
    let once = |listener: &TcpListener, client: OwnedFd| -> Result<()> {
        tcp_connect(&client, listener.local_addr()?)?;
        let (server, _) = listener.accept()?;
        drop(client);
        drop(server);
        Ok(())
    };
    let mut queues: Vec<_> = sides
        .into_iter()
        .map(|(listener, clients)| (listener, clients.into_iter()))
        .collect();
    for (listener, clients) in &mut queues {
        for client in clients.by_ref().take(warm) {
            once(listener, client)?;
        }
    }
    let mut nanos = vec![0u128; queues.len()];
    let batches = loops / TCP_BATCH;
    for batch in 0..batches {
        for turn in 0..queues.len() {
            let index = (turn + batch) % queues.len();
            let (listener, clients) = &mut queues[index];
            let started = Instant::now();
            for client in clients.by_ref().take(TCP_BATCH) {
                once(listener, client)?;
            }
            nanos[index] += started.elapsed().as_nanos();
        }
    }
    let per = (batches * TCP_BATCH).max(1) as f64;
    let line: Vec<String> = nanos
        .iter()
        .map(|&ns| format!("{:.3}", ns as f64 / per / 1000.0))
        .collect();
    println!("{}", line.join(" "));
    Ok(ExitCode::SUCCESS)
}

/// An IPv4 TCP socket, not yet connected: made in the current cgroup,
/// judged by it wherever the process is when it connects.
fn tcp_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned from here on.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        bail!("socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn tcp_connect(socket: &OwnedFd, peer: SocketAddr) -> Result<()> {
    let SocketAddr::V4(peer) = peer else {
        bail!("an IPv4 peer");
    };
    let address = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: peer.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*peer.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: a valid sockaddr_in of the size given.
    let result = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            (&raw const address).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if result != 0 {
        bail!("connect: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// `bench --storm probe CGROUP`: joins the cgroup, sends one datagram to
/// the sentinel, and prints `sent`, `refused` (EPERM) or the error.
pub(crate) fn probe_child(args: &[String]) -> Result<ExitCode> {
    let [cgroup] = args else {
        bail!("usage: --storm probe CGROUP");
    };
    fs::write(Path::new(cgroup).join("cgroup.procs"), "0").context("joining the cgroup")?;
    let socket = UdpSocket::bind("127.0.0.92:0")?;
    match socket.send_to(b"x", (SENTINEL_V4, 9)) {
        Ok(_) => println!("sent"),
        Err(error) if error.kind() == ErrorKind::PermissionDenied => println!("refused"),
        Err(error) => println!("{error}"),
    }
    Ok(ExitCode::SUCCESS)
}
