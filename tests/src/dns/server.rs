//! A small DNS server for the domain tests, on `ADDR:53` over UDP and TCP.
//!
//! Domain enforcement judges names in real DNS traffic, so the tests need
//! a real server on a loopback address: one that answers like the resolver
//! a process would ask (the whole CNAME chain in one answer section, names
//! compressed), that records every query it was sent, so a test can show
//! that a forbidden query never reached it ([`DnsServer::queries`]), and
//! that can answer with bytes of the test's choosing, for malformed replies
//! ([`DnsServer::raw`]). Messages are built and parsed with `hickory-proto`,
//! not by hand, so the bytes are what a real server sends.
//!
//! The server listens on port 53, the port resolvers use, and so needs
//! root, like the tests. It stops, and its sockets close, when it is
//! dropped (see [`crate::serve`]).

use std::{
    io::Write,
    net::{Ipv4Addr, Ipv6Addr, TcpListener, TcpStream, UdpSocket},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use hickory_proto::{
    op::{Message, OpCode, Query, ResponseCode},
    rr::{
        Name, RData, Record, RecordType,
        rdata::{A, AAAA, CNAME},
    },
};

use super::{DNS_PORT, Transport};
use crate::serve::{self, POLL, Threads};

/// How many CNAME records an answer follows before it stops, so that a
/// zone with a CNAME loop still gets a reply.
const MAX_CHAIN: usize = 16;

/// The records a [`DnsServer`] answers from, built with [`Zone::a`],
/// [`Zone::aaaa`] and [`Zone::cname`]. Names are given with or without
/// their trailing dot and match queries whatever their case.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    records: Vec<Record>,
}

impl Zone {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn a(self, name: &str, addr: Ipv4Addr, ttl: u32) -> Self {
        self.with(name, ttl, RData::A(A(addr)))
    }

    pub fn aaaa(self, name: &str, addr: Ipv6Addr, ttl: u32) -> Self {
        self.with(name, ttl, RData::AAAA(AAAA(addr)))
    }

    /// `name` is an alias of `target`, which need not be in the zone.
    pub fn cname(self, name: &str, target: &str, ttl: u32) -> Self {
        self.with(name, ttl, RData::CNAME(CNAME(fqdn(target))))
    }

    fn with(mut self, name: &str, ttl: u32, data: RData) -> Self {
        self.records.push(Record::from_rdata(fqdn(name), ttl, data));
        self
    }

    /// The authoritative reply to the DNS message `query`, or `None` when
    /// it is no DNS message (the server then stays silent).
    ///
    /// A name the zone does not hold gets NXDOMAIN. Otherwise the answer
    /// section holds the CNAME chain from the name, then the records of
    /// the asked type at its end, if the zone has them: a chain that leaves
    /// the zone ends with its last CNAME, and a name without records of
    /// that type gets an empty answer.
    fn answer(&self, query: &[u8]) -> Option<Vec<u8>> {
        let query = Message::from_vec(query).ok()?;
        let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
        reply.metadata.authoritative = true;
        reply.metadata.recursion_desired = query.metadata.recursion_desired;
        reply.metadata.recursion_available = true;
        match query.queries.first() {
            None => reply.metadata.response_code = ResponseCode::FormErr,
            Some(question) => {
                reply.add_query(question.clone());
                if self.holds(question.name()) {
                    reply.add_answers(self.chain(question.name(), question.query_type()));
                } else {
                    reply.metadata.response_code = ResponseCode::NXDomain;
                }
            }
        }
        Some(reply.to_vec().expect("encoding a DNS reply"))
    }

    /// The answer for `name` and `qtype`: the CNAME records from `name` on
    /// (at most [`MAX_CHAIN`]), then the `qtype` records where the chain
    /// ends.
    fn chain(&self, name: &Name, qtype: RecordType) -> Vec<Record> {
        let mut answers = Vec::new();
        let mut owner = name.clone();
        for _ in 0..MAX_CHAIN {
            let records = self.records_of(&owner);
            if records.iter().any(|record| record.record_type() == qtype) {
                let found = records
                    .into_iter()
                    .filter(|record| record.record_type() == qtype);
                answers.extend(found.cloned());
                break;
            }
            let Some((alias, target)) = records.into_iter().find_map(|record| match &record.data {
                RData::CNAME(CNAME(target)) => Some((record, target)),
                _ => None,
            }) else {
                break;
            };
            answers.push(alias.clone());
            owner = target.clone();
        }
        answers
    }

    fn holds(&self, name: &Name) -> bool {
        !self.records_of(name).is_empty()
    }

    fn records_of(&self, name: &Name) -> Vec<&Record> {
        // Case-insensitive, and blind to whether either name is written
        // with its trailing dot.
        self.records
            .iter()
            .filter(|record| record.name.eq_ignore_root(name))
            .collect()
    }
}

/// A reply function for [`DnsServer::raw`]: a query for `N.anything`
/// gets `per_name` A records, `10.x.y.z` addresses that no other `N`
/// gets, with a TTL of an hour: a flood of distinct addresses.
pub fn numbered_answers(per_name: u32) -> impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static {
    move |query| {
        let Ok(query) = Message::from_vec(query) else {
            return Vec::new();
        };
        let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
        reply.metadata.recursion_available = true;
        if let Some(question) = query.queries.first() {
            reply.add_query(question.clone());
            let number: u32 = question
                .name()
                .iter()
                .next()
                .and_then(|label| std::str::from_utf8(label).ok()?.parse().ok())
                .unwrap_or(0);
            for index in 0..per_name {
                let host = (number * per_name + index) & 0x00ff_ffff;
                let addr = Ipv4Addr::from(0x0a00_0000 | host);
                reply.add_answer(Record::from_rdata(
                    question.name().clone(),
                    3600,
                    RData::A(A(addr)),
                ));
            }
        }
        reply.to_vec().expect("encoding a DNS reply")
    }
}

/// A reply function for [`DnsServer::forging`]: to every query, a
/// response whose question and answer say that `name` has the address
/// `addr`, with the query's id XORed with `id_change` (0 keeps it). With
/// another id it is what an off-path attacker guesses; with another name,
/// an answer to a question nobody asked.
pub fn forged_answers(
    name: &str,
    addr: Ipv4Addr,
    id_change: u16,
) -> impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static {
    let name = fqdn(name);
    move |query| {
        let Ok(query) = Message::from_vec(query) else {
            return Vec::new();
        };
        let mut reply = Message::response(query.metadata.id ^ id_change, query.metadata.op_code);
        reply.metadata.recursion_available = true;
        reply.add_query(Query::query(name.clone(), RecordType::A));
        reply.add_answer(Record::from_rdata(name.clone(), 3600, RData::A(A(addr))));
        reply.to_vec().expect("encoding a DNS reply")
    }
}

/// A response saying that `name` has the address `addr`, framed with its
/// TCP length prefix: a second message for [`DnsServer::with_tcp_trailer`].
pub fn framed_answer(name: &str, addr: Ipv4Addr) -> Vec<u8> {
    let name = fqdn(name);
    let mut reply = Message::response(0x1234, OpCode::Query);
    reply.add_query(Query::query(name.clone(), RecordType::A));
    reply.add_answer(Record::from_rdata(name, 3600, RData::A(A(addr))));
    let bytes = reply.to_vec().expect("encoding a DNS reply");
    let length = u16::try_from(bytes.len()).expect("a short reply");
    [length.to_be_bytes().as_slice(), &bytes].concat()
}

/// `name` as a fully qualified DNS name; panics on one that is not valid.
fn fqdn(name: &str) -> Name {
    let mut parsed =
        Name::from_ascii(name).unwrap_or_else(|error| panic!("bad DNS name {name:?}: {error}"));
    parsed.set_fqdn(true);
    parsed
}

/// What the server answers with.
enum Reply {
    Zone(Zone),
    /// The caller's bytes, whatever the query.
    Raw(Box<RawReply>),
    /// The caller's bytes exactly, id and all.
    Forged(Box<RawReply>),
}

/// The reply function of [`DnsServer::raw`]: query bytes in, reply out.
type RawReply = dyn Fn(&[u8]) -> Vec<u8> + Send + Sync;

/// A query as [`DnsServer::queries`] reports it: the name, lowercased and
/// without its trailing dot, the query type, and how it came.
pub type ReceivedQuery = (String, u16, Transport);

/// How a TCP reply is written.
enum TcpWrites {
    /// In one write.
    Whole,
    /// Followed by these bytes, in the same write.
    WithTrailer(Vec<u8>),
    /// Its first bytes in a segment of their own (`TCP_NODELAY`, then a
    /// pause), then the rest: a reply that spans segments.
    SplitAt(usize),
}

/// What the UDP and TCP threads share.
struct Shared {
    reply: Reply,
    tcp_writes: TcpWrites,
    queries: Mutex<Vec<ReceivedQuery>>,
}

impl Shared {
    /// Records `query` and returns the reply to send, if any.
    fn handle(&self, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let (name, qtype) = question(query);
        self.queries.lock().unwrap().push((name, qtype, transport));
        match &self.reply {
            Reply::Zone(zone) => zone.answer(query),
            Reply::Raw(reply) => {
                let mut bytes = reply(query);
                if bytes.len() >= 2 && query.len() >= 2 {
                    bytes[..2].copy_from_slice(&query[..2]);
                }
                Some(bytes)
            }
            Reply::Forged(reply) => Some(reply(query)),
        }
    }
}

/// The first question of `query` as it is recorded; a message whose
/// question cannot be read is recorded as `("", 0)`, so that it still shows
/// it reached the server.
fn question(query: &[u8]) -> (String, u16) {
    let Some(question) = Message::from_vec(query)
        .ok()
        .and_then(|message| message.queries.into_iter().next())
    else {
        return (String::new(), 0);
    };
    let name = question.name().to_ascii().to_ascii_lowercase();
    let name = name.strip_suffix('.').unwrap_or(&name).to_owned();
    (name, question.query_type().into())
}

/// A DNS server on `ADDR:53`, UDP and TCP, each served by a thread of its
/// own. Dropping it stops both and closes its sockets.
pub struct DnsServer {
    shared: Arc<Shared>,
    /// Stopped and joined on drop.
    _threads: Threads,
}

impl DnsServer {
    /// Serves `zone` on `addr`:53 (a 127.0.0.x address: tests never leave
    /// the machine).
    pub fn start(addr: Ipv4Addr, zone: Zone) -> Self {
        Self::serve(addr, Reply::Zone(zone), TcpWrites::Whole)
    }

    /// Serves `zone` as [`DnsServer::start`] does, but writes `trailer`
    /// after every TCP reply in the same write, so that the reply and
    /// whatever the trailer holds (a second framed message, say) travel in
    /// one segment.
    pub fn with_tcp_trailer(addr: Ipv4Addr, zone: Zone, trailer: Vec<u8>) -> Self {
        Self::serve(addr, Reply::Zone(zone), TcpWrites::WithTrailer(trailer))
    }

    /// Serves `zone` as [`DnsServer::start`] does, but sends the first
    /// `at` bytes of every TCP reply (its length prefix included) in a
    /// segment of their own, and the rest after a pause.
    pub fn with_tcp_split(addr: Ipv4Addr, zone: Zone, at: usize) -> Self {
        Self::serve(addr, Reply::Zone(zone), TcpWrites::SplitAt(at))
    }

    /// Answers every query on `addr`:53 with `reply(query bytes)`, over UDP
    /// and TCP, with the query's id written over its first two bytes when
    /// both are at least that long: for tests of malformed replies.
    pub fn raw(addr: Ipv4Addr, reply: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static) -> Self {
        Self::serve(addr, Reply::Raw(Box::new(reply)), TcpWrites::Whole)
    }

    /// Answers every query on `addr`:53 with `reply(query bytes)` as it
    /// is, its id included: for tests of answers that no query asked for.
    pub fn forging(
        addr: Ipv4Addr,
        reply: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static,
    ) -> Self {
        Self::serve(addr, Reply::Forged(Box::new(reply)), TcpWrites::Whole)
    }

    fn serve(addr: Ipv4Addr, reply: Reply, tcp_writes: TcpWrites) -> Self {
        let udp = UdpSocket::bind((addr, DNS_PORT)).unwrap_or_else(|error| {
            panic!("cannot bind a DNS server on UDP {addr}:{DNS_PORT} (needs root): {error}")
        });
        udp.set_read_timeout(Some(POLL))
            .expect("setting a read timeout");
        let tcp = TcpListener::bind((addr, DNS_PORT)).unwrap_or_else(|error| {
            panic!("cannot bind a DNS server on TCP {addr}:{DNS_PORT} (needs root): {error}")
        });
        let shared = Arc::new(Shared {
            reply,
            tcp_writes,
            queries: Mutex::new(Vec::new()),
        });
        let mut threads = Threads::new();
        let udp_shared = Arc::clone(&shared);
        threads.spawn(move |stop| serve_udp(&udp, &udp_shared, stop));
        let tcp_shared = Arc::clone(&shared);
        threads.spawn(move |stop| {
            serve::accept_until(&tcp, stop, |stream| {
                serve_connection(stream, &tcp_shared, stop);
            });
        });
        Self {
            shared,
            _threads: threads,
        }
    }

    /// Every query received so far, in order.
    pub fn queries(&self) -> Vec<ReceivedQuery> {
        self.shared.queries.lock().unwrap().clone()
    }
}

fn serve_udp(socket: &UdpSocket, shared: &Shared, stop: &AtomicBool) {
    let mut buffer = vec![0; usize::from(u16::MAX)];
    while !stop.load(Ordering::Relaxed) {
        // Errors are the read timeouts that let the loop see `stop`.
        let Ok((len, peer)) = socket.recv_from(&mut buffer) else {
            continue;
        };
        if let Some(reply) = shared.handle(&buffer[..len], Transport::Udp) {
            let _ = socket.send_to(&reply, peer);
        }
    }
}

/// Answers the length-prefixed messages of one TCP connection (RFC 1035
/// §4.2.2) until the client closes it or the server stops.
fn serve_connection(mut stream: TcpStream, shared: &Shared, stop: &AtomicBool) {
    let mut length = [0; 2];
    while serve::fill(&mut stream, &mut length, stop) {
        let mut query = vec![0; usize::from(u16::from_be_bytes(length))];
        if !serve::fill(&mut stream, &mut query, stop) {
            return;
        }
        let Some(reply) = shared.handle(&query, Transport::Tcp) else {
            continue;
        };
        let length = u16::try_from(reply.len()).unwrap_or_else(|_| {
            panic!(
                "a DNS reply of {} bytes does not fit a TCP length prefix",
                reply.len()
            )
        });
        let mut framed = length.to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        let written = match &shared.tcp_writes {
            TcpWrites::Whole => stream.write_all(&framed),
            TcpWrites::WithTrailer(trailer) => {
                framed.extend_from_slice(trailer);
                stream.write_all(&framed)
            }
            TcpWrites::SplitAt(at) => {
                let (first, rest) = framed.split_at((*at).min(framed.len()));
                stream.set_nodelay(true).and_then(|()| {
                    stream.write_all(first)?;
                    thread::sleep(Duration::from_millis(50));
                    stream.write_all(rest)
                })
            }
        };
        if written.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Zone {
        Zone::new()
            .cname("www.example.com", "edge.example.net.", 300)
            .cname("edge.example.net", "Host.Example.Org", 60)
            .a("host.example.org.", Ipv4Addr::new(192, 0, 2, 7), 30)
            .a("host.example.org", Ipv4Addr::new(192, 0, 2, 8), 30)
            .aaaa("host.example.org", Ipv6Addr::LOCALHOST, 30)
            .cname("away.example.com", "elsewhere.example.", 10)
            .cname("loop-a.example", "loop-b.example", 10)
            .cname("loop-b.example", "loop-a.example", 10)
    }

    /// Asks `zone` `name`/`qtype` and parses its reply. On the wire every
    /// name is fully qualified, with or without the dot in `name`.
    fn ask(zone: &Zone, name: &str, qtype: RecordType) -> Message {
        let mut query = Message::query();
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(fqdn(name), qtype));
        let reply = zone
            .answer(&query.to_vec().unwrap())
            .expect("a reply to a valid query");
        let reply = Message::from_vec(&reply).expect("the reply parses");
        assert_eq!(reply.metadata.id, query.metadata.id);
        assert_eq!(reply.queries, query.queries);
        assert!(reply.metadata.authoritative);
        assert!(reply.metadata.recursion_desired);
        reply
    }

    /// The answer section as `owner TYPE value` lines.
    fn answers(reply: &Message) -> Vec<String> {
        reply
            .answers
            .iter()
            .map(|record| format!("{} {} {}", record.name, record.record_type(), record.data))
            .collect()
    }

    #[test]
    fn a_cname_chain_is_answered_whole() {
        let reply = ask(&zone(), "www.example.com.", RecordType::A);
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            answers(&reply),
            [
                "www.example.com. CNAME edge.example.net.",
                "edge.example.net. CNAME Host.Example.Org.",
                "host.example.org. A 192.0.2.7",
                "host.example.org. A 192.0.2.8",
            ]
        );
        assert_eq!(reply.answers[0].ttl, 300);
    }

    #[test]
    fn aaaa_follows_the_same_chain() {
        let reply = ask(&zone(), "www.example.com", RecordType::AAAA);
        assert_eq!(
            answers(&reply),
            [
                "www.example.com. CNAME edge.example.net.",
                "edge.example.net. CNAME Host.Example.Org.",
                "host.example.org. AAAA ::1",
            ]
        );
    }

    #[test]
    fn names_match_whatever_their_case() {
        let reply = ask(&zone(), "HOST.example.ORG.", RecordType::A);
        assert_eq!(
            answers(&reply),
            [
                "host.example.org. A 192.0.2.7",
                "host.example.org. A 192.0.2.8"
            ]
        );
    }

    #[test]
    fn an_unknown_name_is_nxdomain() {
        let reply = ask(&zone(), "nothere.example.com.", RecordType::A);
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
        assert!(reply.answers.is_empty());
    }

    #[test]
    fn a_known_name_without_the_type_gets_an_empty_answer() {
        let zone = Zone::new().a("v4only.example", Ipv4Addr::new(192, 0, 2, 1), 5);
        let reply = ask(&zone, "v4only.example.", RecordType::AAAA);
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.answers.is_empty());
    }

    #[test]
    fn a_chain_leaving_the_zone_ends_with_its_last_cname() {
        let reply = ask(&zone(), "away.example.com.", RecordType::A);
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            answers(&reply),
            ["away.example.com. CNAME elsewhere.example."]
        );
    }

    #[test]
    fn a_cname_query_gets_the_cname_alone() {
        let reply = ask(&zone(), "www.example.com.", RecordType::CNAME);
        assert_eq!(
            answers(&reply),
            ["www.example.com. CNAME edge.example.net."]
        );
    }

    #[test]
    fn a_cname_loop_still_gets_a_bounded_reply() {
        let reply = ask(&zone(), "loop-a.example.", RecordType::A);
        assert_eq!(reply.answers.len(), MAX_CHAIN);
    }

    #[test]
    fn names_in_the_reply_are_compressed() {
        let mut query = Message::query();
        query.add_query(Query::query(
            Name::from_ascii("www.example.com.").unwrap(),
            RecordType::A,
        ));
        let reply = zone().answer(&query.to_vec().unwrap()).unwrap();
        // The answer's owner name points back at the question (0xc00c).
        let question_end = 12 + "www.example.com.".len() + 1 + 4;
        assert_eq!(reply[question_end..question_end + 2], [0xc0, 0x0c]);
    }

    #[test]
    fn what_is_no_dns_message_gets_no_reply() {
        assert_eq!(zone().answer(&[0x12]), None);
    }

    #[test]
    fn queries_are_recorded_lowercased_without_the_dot() {
        let mut query = Message::query();
        query.add_query(Query::query(
            Name::from_ascii("WWW.Example.com.").unwrap(),
            RecordType::AAAA,
        ));
        assert_eq!(
            question(&query.to_vec().unwrap()),
            ("www.example.com".to_owned(), 28)
        );
        assert_eq!(question(b"junk"), (String::new(), 0));
    }

    #[test]
    fn raw_replies_carry_the_query_id() {
        let shared = Shared {
            reply: Reply::Raw(Box::new(|_| vec![0, 0, 0xff])),
            tcp_writes: TcpWrites::Whole,
            queries: Mutex::new(Vec::new()),
        };
        let reply = shared.handle(&[0xab, 0xcd, 1, 2], Transport::Tcp);
        assert_eq!(reply, Some(vec![0xab, 0xcd, 0xff]));
        let short = Shared {
            reply: Reply::Raw(Box::new(|_| vec![7])),
            tcp_writes: TcpWrites::Whole,
            queries: Mutex::new(Vec::new()),
        };
        assert_eq!(short.handle(&[0xab, 0xcd], Transport::Udp), Some(vec![7]));
        assert_eq!(
            *shared.queries.lock().unwrap(),
            [(String::new(), 0, Transport::Tcp)]
        );
    }
}
