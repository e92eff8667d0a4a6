//! The parts of DNS messages (RFC 1035) the kernel programs read: the
//! question of a query, and the answers of a response.
//!
//! Packets are hostile input, so every loop has a fixed bound and every
//! read is checked (see [`crate::packet`]). Names may use compression
//! pointers, but each pointer must lead strictly before the part of the
//! name being read, so a chain of pointers always ends; on top of that,
//! their number is bounded. Anything outside these rules is
//! [`Malformed`]; what the programs do with a malformed message is the
//! caller's rule, documented where they call.

use crate::{
    decision::Action,
    domain::{DomainMatch, MAX_LABEL_LEN, MAX_NAME_LEN, NAME_BYTES, NAME_MASK, Name, fold_case},
    lookup::{Fault, Generation, Words},
    packet::{Malformed, Packet},
    repeat::{Repeat, Step},
};

pub const PORT: u16 = 53;
pub const HEADER_LEN: usize = 12;
pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_AAAA: u16 = 28;

const FLAG_RESPONSE: u16 = 0x8000;
const POINTER_TAG: u8 = 0xc0;
/// Pointers the steps of [`read_name`] leave room for. Real messages need
/// one. The rule that each pointer leads before the last is what ends any
/// chain; a name whose pointers use up the steps is malformed.
pub const MAX_POINTERS: usize = 16;
/// Labels of the longest name: one byte and a dot each.
const MAX_LABELS: usize = MAX_NAME_LEN.div_ceil(2);
/// Steps of [`read_name`]: one per byte of the name in the message: its
/// text, one length byte per label, the terminator, and two per pointer.
const MAX_NAME_STEPS: usize = MAX_NAME_LEN + 1 + MAX_LABELS + 1 + 2 * MAX_POINTERS;
/// Answer records a response walk reads; records after these are not
/// looked at.
pub const MAX_ANSWERS: u16 = 16;
/// Messages in one TCP segment the query check reads.
pub const MAX_TCP_MESSAGES: usize = 2;

/// A name read into a buffer: its length in text form, and where the
/// name's bytes end in the message (after its terminator or first pointer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameRead {
    pub len: usize,
    pub end: usize,
}

/// Reads the name at `at` into `out` in text form (see
/// [`crate::domain`]). `message` is where the DNS header starts: pointers
/// count from there.
///
/// Labels holding a `.` are malformed: in text form they would read as two
/// labels.
// A function of its own, so that its state is off the stack frame of its
// caller's later steps: Linux 6.1 adds each `bpf_loop` callback's frame to
// its caller's chain, and with this state inlined `dns::judge_response`
// plus the domain lookup under it came to 544 bytes, over the 512 limit.
#[inline(never)]
pub fn read_name(
    packet: &Packet<'_>,
    message: usize,
    at: usize,
    out: &mut [u8; NAME_BYTES],
    repeat: &impl Repeat,
) -> Result<NameRead, Malformed> {
    let mut reader = NameReader {
        packet,
        message,
        out,
        position: repeat.opaque(at),
        floor: repeat.opaque(at),
        end: repeat.opaque(0),
        written: repeat.opaque(0),
        label_left: repeat.opaque(0),
        result: Err(Malformed),
        finished: false,
    };
    repeat.repeat(MAX_NAME_STEPS as u32, &mut reader);
    reader.result
}

/// The state of [`read_name`]: each step reads one byte of the message.
struct NameReader<'r, 'p> {
    packet: &'r Packet<'p>,
    message: usize,
    out: &'r mut [u8; NAME_BYTES],
    position: usize,
    /// A pointer must lead before this: the start of the part being read.
    floor: usize,
    /// Where the name ends in the message; 0 until known.
    end: usize,
    /// Bytes written to `out`: each label is followed by a dot, so that no
    /// step needs to ask whether it is the first.
    written: usize,
    /// Bytes of the current label still to copy.
    label_left: usize,
    /// Stays `Err` unless the name ends within the steps.
    result: Result<NameRead, Malformed>,
    /// The verifier goes on checking steps after the one that ended the
    /// loop; they must do nothing.
    finished: bool,
}

impl Step for NameReader<'_, '_> {
    #[inline(always)]
    fn step(&mut self, _index: u32) -> bool {
        if self.finished {
            return false;
        }
        match self.advance() {
            Ok(None) => return true,
            Ok(Some(read)) => self.result = Ok(read),
            Err(Malformed) => {}
        }
        self.finished = true;
        false
    }
}

impl NameReader<'_, '_> {
    #[inline(always)]
    fn advance(&mut self) -> Result<Option<NameRead>, Malformed> {
        let byte = self.packet.u8(self.position)?;
        if self.label_left > 0 {
            if self.written >= MAX_NAME_LEN || byte == b'.' {
                return Err(Malformed);
            }
            self.out[self.written & NAME_MASK] = fold_case(byte);
            self.written += 1;
            self.label_left -= 1;
            self.position += 1;
            if self.label_left == 0 {
                self.out[self.written & NAME_MASK] = b'.';
                self.written += 1;
            }
            return Ok(None);
        }
        if byte == 0 {
            if self.end == 0 {
                self.end = self.position + 1;
            }
            // The last label's dot is not part of the text.
            let len = self.written.saturating_sub(1);
            return Ok(Some(NameRead { len, end: self.end }));
        }
        match byte & POINTER_TAG {
            POINTER_TAG => {
                let low = self.packet.u8(self.position + 1)? as usize;
                let target = self.message + ((((byte & !POINTER_TAG) as usize) << 8) | low);
                if target >= self.floor {
                    return Err(Malformed);
                }
                if self.end == 0 {
                    self.end = self.position + 2;
                }
                self.floor = target;
                self.position = target;
            }
            0 => {
                self.label_left = byte as usize;
                self.position += 1;
            }
            // The extended label types of RFC 2671 never took off.
            _ => return Err(Malformed),
        }
        Ok(None)
    }
}

/// Where the name at `at` ends, without reading it.
pub fn skip_name(packet: &Packet<'_>, at: usize, repeat: &impl Repeat) -> Result<usize, Malformed> {
    let mut skip = NameSkip {
        packet,
        position: repeat.opaque(at),
        result: Err(Malformed),
        finished: false,
    };
    repeat.repeat(MAX_LABELS as u32 + 1, &mut skip);
    skip.result
}

/// The state of [`skip_name`]: each step skips one label.
struct NameSkip<'a, 'p> {
    packet: &'a Packet<'p>,
    position: usize,
    result: Result<usize, Malformed>,
    /// As in `NameReader`.
    finished: bool,
}

impl Step for NameSkip<'_, '_> {
    #[inline(always)]
    fn step(&mut self, _index: u32) -> bool {
        if self.finished {
            return false;
        }
        let end = match self.packet.u8(self.position) {
            Err(Malformed) => Err(Malformed),
            Ok(0) => Ok(self.position + 1),
            Ok(byte) if byte & POINTER_TAG == POINTER_TAG => {
                self.packet.u8(self.position + 1).map(|_| self.position + 2)
            }
            Ok(byte) if byte as usize > MAX_LABEL_LEN => Err(Malformed),
            Ok(byte) => {
                self.position += 1 + byte as usize;
                return true;
            }
        };
        self.result = end;
        self.finished = true;
        false
    }
}

/// The one question of a message. Its name is in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Question {
    pub name_len: usize,
    pub qtype: u16,
    /// Where the question section ends.
    pub end: usize,
}

/// The question of the message at `message`, which must be a query when
/// `response` is false and a response when it is true. Messages with other
/// than one question are malformed: resolvers refuse them too.
pub fn question(
    packet: &Packet<'_>,
    message: usize,
    response: bool,
    name: &mut [u8; NAME_BYTES],
    repeat: &impl Repeat,
) -> Result<Question, Malformed> {
    let flags = packet.u16(message + 2)?;
    if (flags & FLAG_RESPONSE != 0) != response || packet.u16(message + 4)? != 1 {
        return Err(Malformed);
    }
    let read = read_name(packet, message, message + HEADER_LEN, name, repeat)?;
    let qtype = packet.u16(read.end)?;
    packet.u16(read.end + 2)?; // the class
    Ok(Question {
        name_len: read.len,
        qtype,
        end: read.end + 4,
    })
}

/// One resource record: its type, TTL and where its data lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub rtype: u16,
    pub ttl: u32,
    pub data: usize,
    pub data_len: usize,
}

impl Record {
    pub fn end(&self) -> usize {
        self.data + self.data_len
    }
}

/// The record at `at`. A record whose data runs past the packet is
/// malformed, so its data can be read without further checks.
pub fn record(packet: &Packet<'_>, at: usize, repeat: &impl Repeat) -> Result<Record, Malformed> {
    let fields = skip_name(packet, at, repeat)?;
    let rtype = packet.u16(fields)?;
    let ttl = packet.u32(fields + 4)?;
    let data_len = packet.u16(fields + 8)? as usize;
    let data = fields + 10;
    if data + data_len > packet.len() {
        return Err(Malformed);
    }
    Ok(Record {
        rtype,
        ttl,
        data,
        data_len,
    })
}

/// An address from an A or AAAA record, as an IPv6 address: IPv4 is
/// IPv4-mapped (`::ffff:a.b.c.d`), the form the learned-address map keys on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Learned {
    pub address: [u8; 16],
    pub v4: bool,
    pub ttl: u32,
}

/// The address in network order of `record`, if it is an A or AAAA record.
fn address_of(packet: &Packet<'_>, record: &Record) -> Result<Option<Learned>, Malformed> {
    let mut address = [0u8; 16];
    let v4 = match (record.rtype, record.data_len) {
        (TYPE_A, 4) => {
            address[10] = 0xff;
            address[11] = 0xff;
            for i in 0..4 {
                address[12 + i] = packet.u8(record.data + i)?;
            }
            true
        }
        (TYPE_AAAA, 16) => {
            for (i, byte) in address.iter_mut().enumerate() {
                *byte = packet.u8(record.data + i)?;
            }
            false
        }
        _ => return Ok(None),
    };
    Ok(Some(Learned {
        address,
        v4,
        ttl: record.ttl,
    }))
}

/// Why a walk stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Malformed,
    Fault,
}

impl From<Malformed> for Stop {
    fn from(_: Malformed) -> Self {
        Stop::Malformed
    }
}

impl From<Fault> for Stop {
    fn from(_: Fault) -> Self {
        Stop::Fault
    }
}

/// What a response says about forbidden names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    pub question: Question,
    /// The policy's word on the answer chain: the question's name if it is
    /// listed, else the first CNAME target that is. The name buffer holds
    /// that name.
    pub chain: DomainMatch,
    pub name_len: usize,
    /// Answer records to read, and where the first one starts.
    answers: u32,
    first_answer: usize,
}

impl Response {
    /// Whether the addresses of the answer are to be learned.
    pub fn learns(&self) -> bool {
        matches!(self.chain.decision.action(), Action::Block | Action::Audit)
    }
}

/// Reads the response at `message` as far as the policy's word on it.
///
/// A response's answer section holds the chain from the question to the
/// addresses it ends at, so its addresses belong to every name on the
/// chain: the question, then the first [`MAX_CNAMES`] CNAME targets in
/// order. The first listed name decides; an allowed one, the
/// administrator's exception, makes the response learn nothing.
///
/// Names are read with `repeat`, records with `records`. The three passes
/// (the question, where the CNAME targets are, the targets) are functions
/// of their own: the kernel calls each from a small frame, so that no
/// domain lookup sits below the state of another pass on the stack, and
/// finding the CNAMEs apart from judging them keeps every record step
/// free of a name read (a callback nested in a callback must stay small).
pub fn judge_response<W, R>(
    generation: &Generation<'_, W>,
    packet: &Packet<'_>,
    message: usize,
    name: &mut [u8; NAME_BYTES],
    repeat: &R,
    records: &impl Repeat,
) -> Result<Response, Stop>
where
    W: Words + ?Sized,
    R: Repeat,
{
    let mut response = judge_question(generation, packet, message, name, repeat, records)?;
    let cnames = find_cnames(packet, &response, repeat, records)?;
    judge_cnames(
        generation,
        packet,
        message,
        name,
        repeat,
        &cnames,
        &mut response,
    )?;
    Ok(response)
}

/// The first pass of [`judge_response`]: the question, and the policy's
/// word on its name, which is read into `name`.
pub fn judge_question<W, R>(
    generation: &Generation<'_, W>,
    packet: &Packet<'_>,
    message: usize,
    name: &mut [u8; NAME_BYTES],
    repeat: &R,
    records: &impl Repeat,
) -> Result<Response, Stop>
where
    W: Words + ?Sized,
    R: Repeat,
{
    let question = question(packet, message, true, name, repeat)?;
    let answers = packet.u16(message + 6)?.min(MAX_ANSWERS) as u32;
    let chain = generation.domain(
        &Name {
            bytes: name,
            len: question.name_len,
        },
        repeat,
    )?;
    Ok(Response {
        question,
        chain,
        name_len: question.name_len,
        answers,
        first_answer: records.opaque(question.end),
    })
}

/// Where the CNAME targets of an answer start: what the second pass of
/// [`judge_response`] finds for the third.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cnames {
    targets: [usize; MAX_CNAMES],
    found: usize,
}

/// The second pass of [`judge_response`]: where the answer's first
/// [`MAX_CNAMES`] CNAME targets are, when the question's word leaves the
/// chain undecided; none otherwise.
pub fn find_cnames<R: Repeat>(
    packet: &Packet<'_>,
    response: &Response,
    repeat: &R,
    records: &impl Repeat,
) -> Result<Cnames, Stop> {
    let mut cnames = CnameScan {
        packet,
        repeat,
        answers: response.answers,
        position: response.first_answer,
        targets: [0; MAX_CNAMES],
        found: 0,
        stop: None,
    };
    if response.chain.decision.action() == Action::None {
        records.repeat(MAX_ANSWERS as u32, &mut cnames);
        if let Some(stop) = cnames.stop {
            return Err(stop);
        }
    }
    // Opaque: see `Repeat` on counts a loop leaves behind. Linux 6.1 took
    // this one for at most 1 and dropped the second CNAME target.
    Ok(Cnames {
        targets: cnames.targets,
        found: records.opaque(cnames.found),
    })
}

/// The third pass of [`judge_response`]: the word on the first listed
/// CNAME target in `cnames`, with its name read into `name`, in place of
/// the question's in `response`.
pub fn judge_cnames<W, R>(
    generation: &Generation<'_, W>,
    packet: &Packet<'_>,
    message: usize,
    name: &mut [u8; NAME_BYTES],
    repeat: &R,
    cnames: &Cnames,
    response: &mut Response,
) -> Result<(), Stop>
where
    W: Words + ?Sized,
    R: Repeat,
{
    for (index, &target) in cnames.targets.iter().enumerate() {
        if index >= cnames.found || response.chain.decision.action() != Action::None {
            break;
        }
        response.name_len = read_name(packet, message, target, name, repeat)?.len;
        response.chain = generation.domain(
            &Name {
                bytes: name,
                len: response.name_len,
            },
            repeat,
        )?;
    }
    Ok(())
}

/// Hands each A and AAAA record of `response`'s answer section to `learn`,
/// with the chain's word and `name`, the listed name. Records read before
/// a malformed one have been handed over: an address stays blocked even
/// when a later part of the message is garbage.
pub fn learn_addresses<R: Repeat, L: FnMut(&DomainMatch, &Name<'_>, Learned)>(
    packet: &Packet<'_>,
    response: &Response,
    name: &[u8; NAME_BYTES],
    repeat: &R,
    learn: L,
) -> Result<(), Stop> {
    let mut addresses = AddressScan {
        packet,
        repeat,
        answers: response.answers,
        position: repeat.opaque(response.first_answer),
        chain: &response.chain,
        name: Name {
            bytes: name,
            len: response.name_len,
        },
        learn,
        stop: None,
    };
    repeat.repeat(MAX_ANSWERS as u32, &mut addresses);
    match addresses.stop {
        Some(stop) => Err(stop),
        None => Ok(()),
    }
}

/// [`judge_response`], then [`learn_addresses`] when the chain is listed.
pub fn walk_response<W, R, L>(
    generation: &Generation<'_, W>,
    packet: &Packet<'_>,
    message: usize,
    name: &mut [u8; NAME_BYTES],
    repeat: &R,
    learn: L,
) -> Result<Response, Stop>
where
    W: Words + ?Sized,
    R: Repeat,
    L: FnMut(&DomainMatch, &Name<'_>, Learned),
{
    let response = judge_response(generation, packet, message, name, repeat, repeat)?;
    if response.learns() {
        learn_addresses(packet, &response, name, repeat, learn)?;
    }
    Ok(response)
}

/// CNAME targets a response walk follows.
pub const MAX_CNAMES: usize = 3;

/// The first pass of [`walk_response`]: each step reads one answer record
/// and notes where a CNAME's target is.
struct CnameScan<'a, 'p, R> {
    packet: &'a Packet<'p>,
    repeat: &'a R,
    answers: u32,
    position: usize,
    targets: [usize; MAX_CNAMES],
    found: usize,
    stop: Option<Stop>,
}

impl<R: Repeat> Step for CnameScan<'_, '_, R> {
    #[inline(always)]
    fn step(&mut self, index: u32) -> bool {
        if index >= self.answers || self.stop.is_some() {
            return false;
        }
        let record = match record(self.packet, self.position, self.repeat) {
            Ok(record) => record,
            Err(Malformed) => {
                self.stop = Some(Stop::Malformed);
                return false;
            }
        };
        self.position = record.end();
        if record.rtype == TYPE_CNAME {
            if self.found >= MAX_CNAMES {
                return false;
            }
            self.targets[self.found % MAX_CNAMES] = record.data;
            self.found += 1;
        }
        true
    }
}

/// The last pass of [`walk_response`]: each step reads one answer record
/// and hands an address to `learn`.
struct AddressScan<'a, 'p, 'n, R, L> {
    packet: &'a Packet<'p>,
    repeat: &'a R,
    answers: u32,
    position: usize,
    chain: &'a DomainMatch,
    name: Name<'n>,
    learn: L,
    stop: Option<Stop>,
}

impl<R: Repeat, L: FnMut(&DomainMatch, &Name<'_>, Learned)> Step for AddressScan<'_, '_, '_, R, L> {
    #[inline(always)]
    fn step(&mut self, index: u32) -> bool {
        if index >= self.answers || self.stop.is_some() {
            return false;
        }
        let learned = record(self.packet, self.position, self.repeat).and_then(|record| {
            self.position = record.end();
            address_of(self.packet, &record)
        });
        match learned {
            Ok(Some(learned)) => (self.learn)(self.chain, &self.name, learned),
            Ok(None) => {}
            Err(Malformed) => {
                self.stop = Some(Stop::Malformed);
                return false;
            }
        }
        true
    }
}

/// The messages of a TCP segment to a DNS server: each is a two-byte
/// length and the message. A segment judged by its messages must hold
/// whole messages only, at most [`MAX_TCP_MESSAGES`]: one that starts or
/// ends mid-message, or holds more, is malformed, since its names cannot
/// all be seen.
///
/// `check` gets each message's offset and returns whether to go on.
pub fn tcp_messages(
    packet: &Packet<'_>,
    repeat: &impl Repeat,
    check: impl FnMut(usize) -> Result<bool, Stop>,
) -> Result<(), Stop> {
    let mut messages = TcpMessages {
        packet,
        check,
        position: repeat.opaque(0),
        result: Err(Stop::Malformed),
        finished: false,
    };
    repeat.repeat(MAX_TCP_MESSAGES as u32, &mut messages);
    messages.result
}

/// The state of [`tcp_messages`]: each step checks one message.
struct TcpMessages<'a, 'p, C> {
    packet: &'a Packet<'p>,
    check: C,
    position: usize,
    /// Stays `Err` unless the messages end within the steps.
    result: Result<(), Stop>,
    /// As in `NameReader`.
    finished: bool,
}

impl<C: FnMut(usize) -> Result<bool, Stop>> Step for TcpMessages<'_, '_, C> {
    #[inline(always)]
    fn step(&mut self, _index: u32) -> bool {
        if self.finished {
            return false;
        }
        match self.message() {
            Ok(true) => return true,
            Ok(false) => self.result = Ok(()),
            Err(stop) => self.result = Err(stop),
        }
        self.finished = true;
        false
    }
}

impl<C: FnMut(usize) -> Result<bool, Stop>> TcpMessages<'_, '_, C> {
    /// Checks the message at `position`; `Ok(false)` when done.
    #[inline(always)]
    fn message(&mut self) -> Result<bool, Stop> {
        let len = self.packet.u16(self.position)? as usize;
        let message = self.position + 2;
        if len < HEADER_LEN || message + len > self.packet.len() {
            return Err(Stop::Malformed);
        }
        if !(self.check)(message)? {
            return Ok(false);
        }
        self.position = message + len;
        Ok(self.position != self.packet.len())
    }
}
