//! `netprobe CGROUP_DIR OP ADDR PORT`: joins the cgroup v2 directory
//! CGROUP_DIR, then performs one network operation and prints its outcome,
//! `ok` or `errno N`, on stdout.
//!
//! OP is one of
//! - `tcp-connect`: a blocking TCP connect();
//! - `udp-connect`: connect() on a UDP socket;
//! - `udp-sendto`: one datagram with sendto() on an unconnected, unbound UDP
//!   socket;
//! - `tcp-fastopen`: sendto() with MSG_FASTOPEN on a fresh TCP socket, which
//!   connects without calling connect().
//!
//! The socket's family follows ADDR: an IPv4 address gets an AF_INET socket,
//! an IPv6 one (including an IPv4-mapped `::ffff:a.b.c.d`) an AF_INET6
//! socket.
//!
//! The cgroup is joined first because the kernel judges a socket by the
//! cgroup it was created in. Anything that is not the operation's own
//! outcome (bad arguments, failing to join the cgroup or to create the
//! socket) exits with status 2 and a message on stderr.

use std::{
    env, fs, io, mem,
    net::{IpAddr, SocketAddr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
    process::ExitCode,
};

const USAGE: &str =
    "usage: netprobe CGROUP_DIR tcp-connect|udp-connect|udp-sendto|tcp-fastopen ADDR PORT";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let [cgroup, op, addr, port] = args.as_slice() else {
        return fail(USAGE);
    };
    let (Ok(addr), Ok(port)) = (addr.parse::<IpAddr>(), port.parse::<u16>()) else {
        return fail(USAGE);
    };
    let dest = SocketAddr::new(addr, port);

    // "0" moves the writing process itself.
    let procs = Path::new(cgroup).join("cgroup.procs");
    if let Err(error) = fs::write(&procs, "0") {
        return fail(&format!("cannot join {}: {error}", procs.display()));
    }

    let result = match op.as_str() {
        "tcp-connect" => socket(dest, libc::SOCK_STREAM).map(|fd| connect(&fd, dest)),
        "udp-connect" => socket(dest, libc::SOCK_DGRAM).map(|fd| connect(&fd, dest)),
        "udp-sendto" => socket(dest, libc::SOCK_DGRAM).map(|fd| sendto(&fd, dest, 0)),
        "tcp-fastopen" => {
            socket(dest, libc::SOCK_STREAM).map(|fd| sendto(&fd, dest, libc::MSG_FASTOPEN))
        }
        _ => return fail(USAGE),
    };
    match result {
        Err(error) => fail(&format!("cannot create a socket: {error}")),
        Ok(Ok(())) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Ok(Err(error)) => match error.raw_os_error() {
            Some(errno) => {
                println!("errno {errno}");
                ExitCode::SUCCESS
            }
            None => fail(&format!("{op} failed without an errno: {error}")),
        },
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("netprobe: {message}");
    ExitCode::from(2)
}

fn socket(dest: SocketAddr, kind: libc::c_int) -> io::Result<OwnedFd> {
    let family = match dest {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain syscall; the returned descriptor is checked and owned.
    let fd = unsafe { libc::socket(family, kind | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn connect(fd: &OwnedFd, dest: SocketAddr) -> io::Result<()> {
    let (storage, len) = sockaddr(dest);
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&raw const storage).cast::<libc::sockaddr>(),
            len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn sendto(fd: &OwnedFd, dest: SocketAddr, flags: libc::c_int) -> io::Result<()> {
    let (storage, len) = sockaddr(dest);
    let payload = b"netprobe";
    // SAFETY: `payload` and `storage` are valid for the lengths given.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            payload.as_ptr().cast(),
            payload.len(),
            flags,
            (&raw const storage).cast::<libc::sockaddr>(),
            len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn sockaddr(dest: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match dest {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
            unsafe { (&raw mut storage).cast::<libc::sockaddr_in>().write(sin) };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above.
            unsafe { (&raw mut storage).cast::<libc::sockaddr_in6>().write(sin6) };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}
