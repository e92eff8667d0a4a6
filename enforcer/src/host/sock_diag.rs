//! Ending a TCP connection from outside its process: `SOCK_DESTROY` over
//! `NETLINK_SOCK_DIAG` (Linux 4.5, `CONFIG_INET_DIAG_DESTROY`). The kernel
//! aborts the socket as `tcp_abort` does: the peer gets a reset, and the
//! process's next read or write fails with `ECONNABORTED`.
//!
//! The request names the connection by its four addresses and by the
//! socket's cookie, so a socket that reuses the addresses after the one
//! meant has closed is never touched (the kernel answers `ESTALE`).

use std::{
    io,
    mem::size_of,
    net::{IpAddr, SocketAddr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

/// A TCP connection as a packet program saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpConnection {
    /// This host's side.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// `bpf_get_socket_cookie` of its socket.
    pub cookie: u64,
}

/// What became of a request to end a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Aborted: reset sent, the process told.
    Reset,
    /// No socket has those addresses and that cookie in the daemon's
    /// network namespace: it closed already, or lives in another one.
    Gone,
    /// The kernel cannot destroy sockets (`CONFIG_INET_DIAG_DESTROY` off,
    /// or no `tcp_diag`).
    Unsupported,
    /// Anything else; the daemon logs why.
    Failed,
}

#[derive(Debug, thiserror::Error)]
pub enum SockDiagError {
    #[error("cannot open a NETLINK_SOCK_DIAG socket: {0}")]
    Open(#[source] io::Error),
    #[error("cannot send SOCK_DESTROY: {0}")]
    Send(#[source] io::Error),
    #[error("no answer to SOCK_DESTROY: {0}")]
    Receive(#[source] io::Error),
    #[error(
        "the kernel's answer to SOCK_DESTROY is {len} bytes of type {kind}, not an acknowledgement"
    )]
    Answer { kind: u16, len: usize },
    #[error("the kernel refused SOCK_DESTROY: {0}")]
    Refused(#[source] io::Error),
    #[error("{local} and {remote} are not of one address family")]
    MixedFamilies {
        local: SocketAddr,
        remote: SocketAddr,
    },
}

impl SockDiagError {
    pub fn ending(&self) -> Ending {
        match self {
            Self::Refused(error) => match error.raw_os_error() {
                Some(libc::ENOENT | libc::ESTALE) => Ending::Gone,
                Some(libc::EOPNOTSUPP) => Ending::Unsupported,
                _ => Ending::Failed,
            },
            _ => Ending::Failed,
        }
    }
}

/// One netlink socket, kept for the daemon's life: a blocked client's
/// retries each bring a request.
pub struct SockDiag {
    socket: OwnedFd,
    sequence: u32,
}

const SOCK_DESTROY: u16 = 21;
const NLMSG_ERROR: u16 = 2;

/// `struct inet_diag_sockid`; addresses and ports in network order.
#[repr(C)]
#[derive(Clone, Copy)]
struct InetDiagSockId {
    sport: [u8; 2],
    dport: [u8; 2],
    src: [u8; 16],
    dst: [u8; 16],
    interface: u32,
    /// Low then high 32 bits, in host order.
    cookie: [u32; 2],
}

/// `struct inet_diag_req_v2`.
#[repr(C)]
#[derive(Clone, Copy)]
struct InetDiagRequest {
    family: u8,
    protocol: u8,
    extensions: u8,
    pad: u8,
    states: u32,
    id: InetDiagSockId,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct DestroyMessage {
    header: libc::nlmsghdr,
    request: InetDiagRequest,
}

const _: () = {
    assert!(size_of::<InetDiagSockId>() == 48);
    assert!(size_of::<InetDiagRequest>() == 56);
    assert!(size_of::<DestroyMessage>() == 72);
};

/// `nlmsghdr` then `nlmsgerr`: the acknowledgement, whose error is 0 or a
/// negated errno. Sized for the request echoed after it.
#[repr(C)]
struct Acknowledgement {
    header: libc::nlmsghdr,
    error: i32,
    request: DestroyMessage,
}

impl SockDiag {
    pub fn open() -> Result<Self, SockDiagError> {
        // SAFETY: plain socket(2); the descriptor is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(SockDiagError::Open(io::Error::last_os_error()));
        }
        Ok(Self {
            // SAFETY: a descriptor just opened and owned by nobody else.
            socket: unsafe { OwnedFd::from_raw_fd(fd) },
            sequence: 0,
        })
    }

    /// Aborts `connection`. The kernel answers before it returns, so on
    /// `Ok` the reset has been sent.
    pub fn destroy(&mut self, connection: &TcpConnection) -> Result<(), SockDiagError> {
        let (family, src, dst) = match (connection.local.ip(), connection.remote.ip()) {
            (IpAddr::V4(local), IpAddr::V4(remote)) => {
                (libc::AF_INET, widen(local.octets()), widen(remote.octets()))
            }
            (IpAddr::V6(local), IpAddr::V6(remote)) => {
                (libc::AF_INET6, local.octets(), remote.octets())
            }
            _ => {
                return Err(SockDiagError::MixedFamilies {
                    local: connection.local,
                    remote: connection.remote,
                });
            }
        };
        self.sequence = self.sequence.wrapping_add(1);
        let message = DestroyMessage {
            header: libc::nlmsghdr {
                nlmsg_len: size_of::<DestroyMessage>() as u32,
                nlmsg_type: SOCK_DESTROY,
                nlmsg_flags: (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16,
                nlmsg_seq: self.sequence,
                nlmsg_pid: 0,
            },
            request: InetDiagRequest {
                family: family as u8,
                protocol: libc::IPPROTO_TCP as u8,
                extensions: 0,
                pad: 0,
                states: u32::MAX,
                id: InetDiagSockId {
                    sport: connection.local.port().to_be_bytes(),
                    dport: connection.remote.port().to_be_bytes(),
                    src,
                    dst,
                    interface: 0,
                    cookie: [connection.cookie as u32, (connection.cookie >> 32) as u32],
                },
            },
        };
        // SAFETY: sends the bytes of a plain-old-data value; the kernel's
        // address is the zeroed sockaddr_nl with its family set.
        let sent = unsafe {
            let mut kernel: libc::sockaddr_nl = std::mem::zeroed();
            kernel.nl_family = libc::AF_NETLINK as u16;
            libc::sendto(
                self.socket.as_raw_fd(),
                (&raw const message).cast(),
                size_of::<DestroyMessage>(),
                0,
                (&raw const kernel).cast(),
                size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if sent != size_of::<DestroyMessage>() as isize {
            return Err(SockDiagError::Send(io::Error::last_os_error()));
        }
        self.acknowledgement()
    }

    /// Reads answers until the one to the current request.
    fn acknowledgement(&self) -> Result<(), SockDiagError> {
        loop {
            let mut answer = std::mem::MaybeUninit::<Acknowledgement>::zeroed();
            // SAFETY: receives into a buffer of the size given; every bit
            // pattern of it is valid.
            let len = unsafe {
                libc::recv(
                    self.socket.as_raw_fd(),
                    answer.as_mut_ptr().cast(),
                    size_of::<Acknowledgement>(),
                    0,
                )
            };
            if len < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(SockDiagError::Receive(error));
            }
            let len = len as usize;
            // SAFETY: zeroed plain-old-data, partly overwritten.
            let answer = unsafe { answer.assume_init() };
            let minimum = size_of::<libc::nlmsghdr>() + size_of::<i32>();
            if len < minimum || answer.header.nlmsg_type != NLMSG_ERROR {
                return Err(SockDiagError::Answer {
                    kind: answer.header.nlmsg_type,
                    len,
                });
            }
            if answer.header.nlmsg_seq != self.sequence {
                // Left from an earlier request whose answer went unread.
                continue;
            }
            return match answer.error {
                0 => Ok(()),
                error => Err(SockDiagError::Refused(io::Error::from_raw_os_error(-error))),
            };
        }
    }
}

/// An IPv4 address in the first four bytes of `inet_diag_sockid`'s field.
fn widen(octets: [u8; 4]) -> [u8; 16] {
    let mut wide = [0; 16];
    wide[..4].copy_from_slice(&octets);
    wide
}
