//! The message and its records: the question, answer records and the
//! addresses they give, and the messages of a TCP segment.

use crate::{
    domain::NAME_BYTES,
    lookup::Fault,
    packet::{Malformed, Packet},
    repeat::{Repeat, Step},
};

use super::name::{read_name, skip_name};

/// The port DNS servers listen on.
pub const PORT: u16 = 53;
/// Bytes of a message's header, before the question.
pub const HEADER_LEN: usize = 12;
/// Record type of an IPv4 address.
pub const TYPE_A: u16 = 1;
/// Record type of a canonical name.
pub const TYPE_CNAME: u16 = 5;
/// Record type of an IPv6 address.
pub const TYPE_AAAA: u16 = 28;

const FLAG_RESPONSE: u16 = 0x8000;
/// Answer records a response walk reads; records after these are not
/// looked at.
pub const MAX_ANSWERS: u16 = 16;
/// Messages in one TCP segment the query check reads.
pub const MAX_TCP_MESSAGES: usize = 2;

/// The one question of a message. Its name is in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Question {
    /// Bytes of the name in text form.
    pub name_len: usize,
    /// The type asked for.
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
    /// The record's type.
    pub rtype: u16,
    /// Seconds the answer may be cached.
    pub ttl: u32,
    /// Where the record's data starts in the message.
    pub data: usize,
    /// Bytes of the record's data.
    pub data_len: usize,
}

impl Record {
    /// Where the next record starts.
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
    /// IPv6 in network order; IPv4 as `::ffff:a.b.c.d`.
    pub address: [u8; 16],
    /// Whether it came from an A record.
    pub v4: bool,
    /// The answer's TTL in seconds, before the policy bounds it.
    pub ttl: u32,
}

/// The address in network order of `record`, if it is an A or AAAA record.
pub(super) fn address_of(
    packet: &Packet<'_>,
    record: &Record,
) -> Result<Option<Learned>, Malformed> {
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
    /// The message is not one the parsers read.
    Malformed,
    /// A lookup left the image (see [`Fault`]).
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
