//! The server name (SNI, RFC 6066) of a TLS ClientHello, the one clear-text
//! name a TLS connection carries.
//!
//! A segment that starts like a ClientHello record but whose server name
//! cannot be read in full is [`Malformed`]: browsers send their ClientHello
//! whole, in one record and one write, so only a client that splits it on
//! purpose, to hide the name, ends up there.

use crate::{
    domain::{MAX_NAME_LEN, NAME_BYTES, NAME_MASK, fold_case},
    packet::{Malformed, Packet},
    repeat::{Repeat, Step},
};

const CONTENT_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXTENSION_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST: u8 = 0;
const RECORD_HEADER_LEN: usize = 5;
const HANDSHAKE_HEADER_LEN: usize = 4;
const RANDOM_LEN: usize = 32;
const MAX_SESSION_ID_LEN: usize = 32;
/// Extensions one ClientHello may carry before its server name; browsers
/// send fewer than 25.
pub const MAX_EXTENSIONS: usize = 64;

/// The bytes [`looks_like_client_hello`] reads: a record header and the
/// handshake type.
pub const SIGNATURE_LEN: usize = RECORD_HEADER_LEN + 1;

/// Whether the payload starts like a TLS handshake record carrying a
/// ClientHello: worth parsing at all.
#[inline(always)]
pub fn looks_like_client_hello(first: [u8; SIGNATURE_LEN]) -> bool {
    first[0] == CONTENT_HANDSHAKE && first[1] == 3 && first[5] == HANDSHAKE_CLIENT_HELLO
}

/// Whether a payload shorter than [`SIGNATURE_LEN`], of which these are
/// the first byte and the second if it has one, could be the start of a
/// ClientHello: the bytes it has are what one has there.
#[inline(always)]
pub fn could_start_client_hello(first: u8, second: Option<u8>) -> bool {
    first == CONTENT_HANDSHAKE && second.is_none_or(|second| second == 3)
}

/// Reads the host name of the ClientHello at the start of `packet` into
/// `out` in text form (lowercase, without a trailing dot) and returns its
/// length, or `None` when the ClientHello has no server name.
pub fn server_name(
    packet: &Packet<'_>,
    out: &mut [u8; NAME_BYTES],
    repeat: &impl Repeat,
) -> Result<Option<usize>, Malformed> {
    if packet.u8(0)? != CONTENT_HANDSHAKE || packet.u8(1)? != 3 {
        return Err(Malformed);
    }
    let record_end = RECORD_HEADER_LEN + packet.u16(3)? as usize;
    if packet.u8(RECORD_HEADER_LEN)? != HANDSHAKE_CLIENT_HELLO {
        return Err(Malformed);
    }
    // A ClientHello spread over several records hides its name.
    let hello_end =
        RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN + packet.u24(RECORD_HEADER_LEN + 1)? as usize;
    if hello_end > record_end || record_end > packet.len() {
        return Err(Malformed);
    }
    let session_id = RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN + 2 + RANDOM_LEN;
    let session_id_len = packet.u8(session_id)? as usize;
    if session_id_len > MAX_SESSION_ID_LEN {
        return Err(Malformed);
    }
    let cipher_suites = session_id + 1 + session_id_len;
    let compression = cipher_suites + 2 + packet.u16(cipher_suites)? as usize;
    let extensions = compression + 1 + packet.u8(compression)? as usize;
    if extensions == hello_end {
        return Ok(None);
    }
    let extensions_end = extensions + 2 + packet.u16(extensions)? as usize;
    if extensions_end > hello_end {
        return Err(Malformed);
    }
    let mut position = extensions + 2;
    let mut server_name = None;
    for _ in 0..MAX_EXTENSIONS {
        if position == extensions_end {
            break;
        }
        let kind = packet.u16(position)?;
        let body = position + 4;
        let body_end = body + packet.u16(position + 2)? as usize;
        if body_end > extensions_end {
            return Err(Malformed);
        }
        if kind == EXTENSION_SERVER_NAME {
            server_name = Some((body, body_end));
            break;
        }
        position = body_end;
    }
    match server_name {
        Some((body, body_end)) => host_name(packet, body, body_end, out, repeat).map(Some),
        None if position == extensions_end => Ok(None),
        None => Err(Malformed),
    }
}

/// The first entry of a server_name extension's list, which must be a host
/// name: RFC 6066 allows no other type, and no two host names.
fn host_name(
    packet: &Packet<'_>,
    body: usize,
    body_end: usize,
    out: &mut [u8; NAME_BYTES],
    repeat: &impl Repeat,
) -> Result<usize, Malformed> {
    let list_end = body + 2 + packet.u16(body)? as usize;
    if list_end > body_end || packet.u8(body + 2)? != NAME_TYPE_HOST {
        return Err(Malformed);
    }
    let mut len = packet.u16(body + 3)? as usize;
    let name = body + 5;
    if name + len > list_end {
        return Err(Malformed);
    }
    if len > 0 && packet.u8(name + len - 1)? == b'.' {
        len -= 1;
    }
    if len == 0 || len > MAX_NAME_LEN {
        return Err(Malformed);
    }
    let mut copy = Copy {
        packet,
        from: name,
        len,
        out,
        previous: b'.',
        failed: false,
    };
    repeat.repeat(MAX_NAME_LEN as u32, &mut copy);
    if copy.failed {
        return Err(Malformed);
    }
    Ok(len)
}

/// Copies the host name one byte per step, case folded. A name that is
/// not a host name (a byte other than a letter, a digit, `-` and `_`
/// between dots, or an empty label) fails: a server may read
/// `t.me\0` or `.t.me.` as `t.me`, and the matcher would not.
struct Copy<'r, 'p> {
    packet: &'r Packet<'p>,
    from: usize,
    len: usize,
    out: &'r mut [u8; NAME_BYTES],
    /// The byte before, `.` before the first.
    previous: u8,
    failed: bool,
}

impl Step for Copy<'_, '_> {
    #[inline(always)]
    fn step(&mut self, index: u32) -> bool {
        let index = index as usize;
        if index >= self.len {
            return false;
        }
        let Ok(byte) = self.packet.u8(self.from + index) else {
            self.failed = true;
            return false;
        };
        let host_name_byte = match byte {
            b'.' => self.previous != b'.' && index + 1 != self.len,
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => true,
            _ => false,
        };
        if !host_name_byte {
            self.failed = true;
            return false;
        }
        self.previous = byte;
        self.out[index & NAME_MASK] = fold_case(byte);
        true
    }
}
