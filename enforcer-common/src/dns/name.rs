//! Names in DNS messages: labels and compression pointers.

use crate::{
    domain::{MAX_LABEL_LEN, MAX_NAME_LEN, NAME_BYTES, NAME_MASK, fold_case},
    packet::{Malformed, Packet},
    repeat::{Repeat, Step},
};

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
/// A name read into a buffer: its length in text form, and where the
/// name's bytes end in the message (after its terminator or first pointer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameRead {
    /// Bytes of the name in text form.
    pub len: usize,
    /// Where the name's bytes end in the message.
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
