//! `netprobe CGROUP_DIR OP ARGS...`: joins the cgroup v2 directory
//! CGROUP_DIR, then performs one network operation and prints its outcome,
//! one line on stdout.
//!
//! The socket operations, `OP ADDR PORT`, print `ok` or `errno N`:
//! - `tcp-connect`: a blocking TCP connect();
//! - `udp-connect`: connect() on a UDP socket;
//! - `udp-sendto`: one datagram with sendto() on an unconnected, unbound UDP
//!   socket;
//! - `tcp-fastopen`: sendto() with MSG_FASTOPEN on a fresh TCP socket, which
//!   connects without calling connect().
//!
//! The others speak a real protocol, as a client inside the cgroup would:
//! - `dns-query udp|tcp SERVER_ADDR NAME QTYPE` sends one DNS query
//!   (recursion desired, random id; QTYPE is `A`, `AAAA`, another type's
//!   name or a number) to SERVER_ADDR:53, over UDP by sendto() on an
//!   unconnected socket, or over TCP with the 2-byte length prefix and the
//!   message in one write. It prints the first reply, whatever its id:
//!   `answer` followed by ` TYPE=VALUE` for each answer record (the tests'
//!   zones hold A, AAAA and CNAME records, whose values have no spaces),
//!   or `rcode N` for a non-zero rcode, or `malformed` for a reply that is
//!   no DNS message; `errno N` when sending (or connecting) fails,
//!   `timeout` when no reply comes within 2 seconds, and over TCP `closed`
//!   when the server closes the connection first.
//! - `tls-hello ADDR PORT SNI [FIRST]` connects, sends a TLS ClientHello
//!   naming SNI (see `enforcer_integration_tests::tls`), shuts its side
//!   down, waits up to 2 seconds for the peer to answer or close, and
//!   prints `sent`, or `errno N` when connecting or writing fails or the
//!   wait ends with the connection aborted (`ECONNABORTED`). With
//!   FIRST, as a splitter such as byedpi does, it sends the first FIRST
//!   bytes in a segment of their own (`TCP_NODELAY`, then a pause) before
//!   the rest. The kernel may drop segments silently: the test asks its
//!   listener what arrived.
//! - `dns-gso SERVER_ADDR NAME...` sends an A query for each NAME (all of
//!   one length) in one `sendto()` of a socket with `UDP_SEGMENT` set to a
//!   query's size, so the kernel sends them as that many datagrams, and
//!   prints `sent` or `errno N`; the test asks its server what arrived.
//! - `dns-flood SERVER_ADDR SUFFIX FIRST COUNT` asks, one after another
//!   over one UDP socket, for the A records of `FIRST.SUFFIX`,
//!   `FIRST+1.SUFFIX`, ... (COUNT names), and prints `answered N`: how
//!   many got a reply in time.
//! - `exec PROGRAM ARGS...` execs PROGRAM, so that a real client (such as
//!   `openssl s_client`) runs inside the cgroup; it prints nothing itself.
//!
//! The socket's family follows the address: an IPv4 address gets an AF_INET
//! socket, an IPv6 one (including an IPv4-mapped `::ffff:a.b.c.d`) an
//! AF_INET6 socket.
//!
//! The cgroup is joined first because the kernel judges a socket by the
//! cgroup it was created in. Anything that is not the operation's own
//! outcome (bad arguments, failing to join the cgroup, to create the socket
//! or to exec) exits with status 2 and a message on stderr.

use std::{
    env,
    fmt::Write as _,
    io::{self, Read, Write},
    mem,
    net::{IpAddr, Shutdown, SocketAddr, TcpStream, UdpSocket},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::process::CommandExt,
    },
    path::Path,
    process::{Command, ExitCode},
    thread,
    time::{Duration, Instant},
};

use enforcer_integration_tests::{dns::DNS_PORT, tls::client_hello};
use hickory_proto::{
    op::{Message, Query},
    rr::{Name, RecordType},
};

const USAGE: &str = "usage: netprobe CGROUP_DIR OP ARGS...
  tcp-connect|udp-connect|udp-sendto|tcp-fastopen ADDR PORT
  dns-query udp|tcp SERVER_ADDR NAME QTYPE
  dns-gso SERVER_ADDR NAME...
  dns-flood SERVER_ADDR SUFFIX FIRST COUNT
  tls-hello ADDR PORT SNI [FIRST]
  exec PROGRAM ARGS...";

/// With this variable set, netprobe stays alive after printing its line
/// until its stdin closes, so that a test can look at it while it lives.
const HOLD: &str = "NETPROBE_HOLD";

/// How long `dns-query` waits for a reply and `tls-hello` for the peer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// What to do once inside the cgroup.
enum Request {
    Connect {
        kind: libc::c_int,
        dest: SocketAddr,
    },
    Sendto {
        kind: libc::c_int,
        dest: SocketAddr,
        flags: libc::c_int,
    },
    DnsQuery {
        tcp: bool,
        server: SocketAddr,
        query: Vec<u8>,
    },
    DnsSegmented {
        server: SocketAddr,
        queries: Vec<Vec<u8>>,
    },
    DnsFlood {
        server: SocketAddr,
        suffix: String,
        names: std::ops::Range<u32>,
    },
    TlsHello {
        dest: SocketAddr,
        hello: Vec<u8>,
        /// Bytes sent in a segment of their own first; 0 for none.
        first: usize,
    },
    Exec {
        program: String,
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some((cgroup, request)) = args
        .split_first()
        .and_then(|(cgroup, rest)| Some((cgroup, parse(rest)?)))
    else {
        return fail(USAGE);
    };

    if let Err(error) = enforcer_integration_tests::privilege::join_cgroup(Path::new(cgroup)) {
        return fail(&error);
    }

    let result = match request {
        Request::Connect { kind, dest } => socket_op(kind, dest, |fd| connect(fd, dest)),
        Request::Sendto { kind, dest, flags } => {
            socket_op(kind, dest, |fd| sendto(fd, dest, b"netprobe", flags))
        }
        Request::DnsQuery {
            tcp: false,
            server,
            query,
        } => dns_udp(server, &query),
        Request::DnsQuery {
            tcp: true,
            server,
            query,
        } => dns_tcp(server, &query),
        Request::DnsSegmented { server, queries } => dns_segmented(server, &queries),
        Request::DnsFlood {
            server,
            suffix,
            names,
        } => dns_flood(server, &suffix, names),
        Request::TlsHello { dest, hello, first } => tls_hello(dest, &hello, first),
        Request::Exec { program, args } => {
            let error = Command::new(&program).args(args).exec();
            Err(format!("cannot exec {program}: {error}"))
        }
    };
    match result {
        Ok(line) => {
            println!("{line}");
            if env::var_os(HOLD).is_some() {
                // Flushed by println!; now stay alive until stdin closes.
                let _ = io::copy(&mut io::stdin(), &mut io::sink());
            }
            ExitCode::SUCCESS
        }
        Err(message) => fail(&message),
    }
}

/// The request of the arguments after CGROUP_DIR, or `None` when they
/// do not follow [`USAGE`].
fn parse(args: &[String]) -> Option<Request> {
    let (op, rest) = args.split_first()?;
    Some(match (op.as_str(), rest) {
        ("tcp-connect", [addr, port]) => Request::Connect {
            kind: libc::SOCK_STREAM,
            dest: socket_addr(addr, port)?,
        },
        ("udp-connect", [addr, port]) => Request::Connect {
            kind: libc::SOCK_DGRAM,
            dest: socket_addr(addr, port)?,
        },
        ("udp-sendto", [addr, port]) => Request::Sendto {
            kind: libc::SOCK_DGRAM,
            dest: socket_addr(addr, port)?,
            flags: 0,
        },
        ("tcp-fastopen", [addr, port]) => Request::Sendto {
            kind: libc::SOCK_STREAM,
            dest: socket_addr(addr, port)?,
            flags: libc::MSG_FASTOPEN,
        },
        ("dns-gso", [server, names @ ..]) if !names.is_empty() => Request::DnsSegmented {
            server: SocketAddr::new(server.parse().ok()?, DNS_PORT),
            queries: names
                .iter()
                .map(|name| dns_message(name, "A"))
                .collect::<Option<_>>()?,
        },
        ("dns-query", [transport, server, name, qtype]) => Request::DnsQuery {
            tcp: match transport.as_str() {
                "udp" => false,
                "tcp" => true,
                _ => return None,
            },
            server: SocketAddr::new(server.parse().ok()?, DNS_PORT),
            query: dns_message(name, qtype)?,
        },
        ("dns-flood", [server, suffix, first, count]) => {
            let first: u32 = first.parse().ok()?;
            Request::DnsFlood {
                server: socket_addr(server, "53")?,
                suffix: suffix.clone(),
                names: first..first.checked_add(count.parse().ok()?)?,
            }
        }
        ("tls-hello", [addr, port, sni, first @ ..]) if first.len() <= 1 => Request::TlsHello {
            dest: socket_addr(addr, port)?,
            hello: client_hello(sni),
            first: match first {
                [first] => first.parse().ok()?,
                _ => 0,
            },
        },
        ("exec", [program, args @ ..]) => Request::Exec {
            program: program.clone(),
            args: args.to_vec(),
        },
        _ => return None,
    })
}

fn socket_addr(addr: &str, port: &str) -> Option<SocketAddr> {
    Some(SocketAddr::new(
        addr.parse::<IpAddr>().ok()?,
        port.parse().ok()?,
    ))
}

/// A DNS query for `name` and `qtype`, with recursion desired and a random
/// id.
fn dns_message(name: &str, qtype: &str) -> Option<Vec<u8>> {
    let qtype = match qtype.parse::<u16>() {
        Ok(number) => RecordType::from(number),
        Err(_) => qtype.parse().ok()?,
    };
    let mut name = Name::from_ascii(name).ok()?;
    name.set_fqdn(true);
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name, qtype));
    query.to_vec().ok()
}

fn fail(message: &str) -> ExitCode {
    eprintln!("netprobe: {message}");
    ExitCode::from(2)
}

/// The line for an operation that failed with `error`: `errno N`. An error
/// without an errno is netprobe's own failure.
fn errno_line(error: &io::Error, what: &str) -> Result<String, String> {
    match error.raw_os_error() {
        Some(errno) => Ok(format!("errno {errno}")),
        None => Err(format!("{what} failed without an errno: {error}")),
    }
}

fn new_socket(dest: SocketAddr, kind: libc::c_int) -> Result<OwnedFd, String> {
    socket(dest, kind).map_err(|error| format!("cannot create a socket: {error}"))
}

/// `ok` or `errno N` for `op` on a fresh socket.
fn socket_op(
    kind: libc::c_int,
    dest: SocketAddr,
    op: impl FnOnce(&OwnedFd) -> io::Result<()>,
) -> Result<String, String> {
    let fd = new_socket(dest, kind)?;
    match op(&fd) {
        Ok(()) => Ok("ok".to_owned()),
        Err(error) => errno_line(&error, "the operation"),
    }
}

fn dns_udp(server: SocketAddr, query: &[u8]) -> Result<String, String> {
    let fd = new_socket(server, libc::SOCK_DGRAM)?;
    if let Err(error) = sendto(&fd, server, query, 0) {
        return errno_line(&error, "sendto");
    }
    let socket = UdpSocket::from(fd);
    socket
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .map_err(|error| format!("cannot set a read timeout: {error}"))?;
    let mut reply = vec![0; usize::from(u16::MAX)];
    match socket.recv(&mut reply) {
        Ok(len) => Ok(reply_line(&reply[..len])),
        Err(error) if is_timeout(&error) => Ok("timeout".to_owned()),
        Err(error) => errno_line(&error, "recv"),
    }
}

fn dns_segmented(server: SocketAddr, queries: &[Vec<u8>]) -> Result<String, String> {
    let size = queries[0].len();
    if queries.iter().any(|query| query.len() != size) {
        return Err("dns-gso needs names of one length".to_owned());
    }
    let fd = new_socket(server, libc::SOCK_DGRAM)?;
    let segment = size as libc::c_int;
    // SAFETY: an int option of the size given, on a socket this owns.
    let set = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&raw const segment).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return Err(format!("UDP_SEGMENT: {}", io::Error::last_os_error()));
    }
    match sendto(&fd, server, &queries.concat(), 0) {
        Ok(()) => Ok("sent".to_owned()),
        Err(error) => errno_line(&error, "sendto"),
    }
}

fn dns_flood(
    server: SocketAddr,
    suffix: &str,
    names: std::ops::Range<u32>,
) -> Result<String, String> {
    let socket = UdpSocket::from(new_socket(server, libc::SOCK_DGRAM)?);
    socket
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .map_err(|error| format!("cannot set a read timeout: {error}"))?;
    let mut reply = vec![0; usize::from(u16::MAX)];
    let mut answered = 0;
    for index in names {
        let query = dns_message(&format!("{index}.{suffix}"), "A")
            .ok_or_else(|| format!("{index}.{suffix} is no DNS name"))?;
        if let Err(error) = socket.send_to(&query, server) {
            return errno_line(&error, "sendto");
        }
        if socket.recv(&mut reply).is_ok() {
            answered += 1;
        }
    }
    Ok(format!("answered {answered}"))
}

fn dns_tcp(server: SocketAddr, query: &[u8]) -> Result<String, String> {
    let fd = new_socket(server, libc::SOCK_STREAM)?;
    if let Err(error) = connect(&fd, server) {
        return errno_line(&error, "connect");
    }
    let mut stream = TcpStream::from(fd);
    let length = u16::try_from(query.len()).expect("a DNS query fits 64 KiB");
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    if let Err(error) = stream.write_all(&framed) {
        return errno_line(&error, "write");
    }
    let deadline = Instant::now() + REPLY_TIMEOUT;
    let reply = read_within(&mut stream, 2, deadline).and_then(|length| {
        let length = u16::from_be_bytes([length[0], length[1]]);
        read_within(&mut stream, usize::from(length), deadline)
    });
    match reply {
        Ok(reply) => Ok(reply_line(&reply)),
        Err(error) if is_timeout(&error) => Ok("timeout".to_owned()),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok("closed".to_owned()),
        Err(error) => errno_line(&error, "reading the reply"),
    }
}

/// Reads exactly `len` bytes unless `deadline` passes first.
fn read_within(stream: &mut TcpStream, len: usize, deadline: Instant) -> io::Result<Vec<u8>> {
    // A zero timeout would mean none: wait at least a millisecond.
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    stream.set_read_timeout(Some(left))?;
    let mut bytes = vec![0; len];
    stream.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// The line that reports the DNS message `reply`.
fn reply_line(reply: &[u8]) -> String {
    let Ok(message) = Message::from_vec(reply) else {
        return "malformed".to_owned();
    };
    let rcode = u16::from(message.metadata.response_code);
    if rcode != 0 {
        return format!("rcode {rcode}");
    }
    let mut line = "answer".to_owned();
    for record in &message.answers {
        // Only an OPT record, which has no place in an answer, has no text.
        if write!(line, " {}={}", record.record_type(), record.data).is_err() {
            return "malformed".to_owned();
        }
    }
    line
}

fn tls_hello(dest: SocketAddr, hello: &[u8], first: usize) -> Result<String, String> {
    let fd = new_socket(dest, libc::SOCK_STREAM)?;
    if let Err(error) = connect(&fd, dest) {
        return errno_line(&error, "connect");
    }
    let mut stream = TcpStream::from(fd);
    let (head, rest) = hello.split_at(first.min(hello.len()));
    if !head.is_empty() {
        stream
            .set_nodelay(true)
            .map_err(|error| format!("TCP_NODELAY: {error}"))?;
        if let Err(error) = stream.write_all(head) {
            return errno_line(&error, "write");
        }
        // Long enough for the head to leave alone.
        thread::sleep(Duration::from_millis(50));
    }
    if let Err(error) = stream.write_all(rest) {
        return errno_line(&error, "write");
    }
    // Closing our side tells the listener the hello is complete; waiting
    // for the peer keeps the connection up while the segment is delivered
    // (or dropped), whatever the peer does.
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(REPLY_TIMEOUT));
    match stream.read(&mut [0; 1]) {
        // Ended from outside: the enforcer resets a refused ClientHello's
        // connection.
        Err(error) if error.raw_os_error() == Some(libc::ECONNABORTED) => {
            errno_line(&error, "read")
        }
        _ => Ok("sent".to_owned()),
    }
}

/// Whether `error` is a read timeout (Linux reports EAGAIN for it).
fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
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

fn sendto(fd: &OwnedFd, dest: SocketAddr, payload: &[u8], flags: libc::c_int) -> io::Result<()> {
    let (storage, len) = sockaddr(dest);
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
