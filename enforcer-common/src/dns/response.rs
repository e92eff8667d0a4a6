//! The policy's word on a response: its question, its CNAME chain and the
//! addresses to learn.

use crate::{
    decision::Action,
    domain::{DomainMatch, NAME_BYTES, Name},
    lookup::{Generation, Words},
    packet::{Malformed, Packet},
    repeat::{Repeat, Step},
};

use super::{
    message::{Learned, MAX_ANSWERS, Question, Stop, TYPE_CNAME, address_of, question, record},
    name::read_name,
};

/// What a response says about forbidden names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// The response's question.
    pub question: Question,
    /// The policy's word on the answer chain: the question's name if it is
    /// listed, else the first CNAME target that is. The name buffer holds
    /// that name.
    pub chain: DomainMatch,
    /// Bytes of the name the name buffer holds, in text form.
    pub name_len: usize,
    /// The answer has more CNAMEs than [`MAX_CNAMES`], and none of those
    /// read is listed: its addresses may belong to a listed name further
    /// down the chain, so the response cannot be judged.
    pub chain_cut: bool,
    /// Answer records to read, and where the first one starts.
    answers: u32,
    first_answer: usize,
}

impl Response {
    /// Whether the addresses of the answer are to be learned: blocked or
    /// audited, or allowed, so that an allow by name can open an address
    /// that a block by network closes.
    pub fn learns(&self) -> bool {
        self.chain.decision.action() != Action::None && self.chain.learns_addresses()
    }
}

/// Reads the response at `message` as far as the policy's word on it.
///
/// A response's answer section holds the chain from the question to the
/// addresses it ends at, so its addresses belong to every name on the
/// chain: the question, then the first [`MAX_CNAMES`] CNAME targets in
/// order. The first listed name decides, an allowed one included: its
/// addresses are learned as allowed.
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
        chain_cut: false,
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
    /// The answer has CNAMEs past the first [`MAX_CNAMES`].
    more: bool,
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
        // Opaque: Linux 6.1 checks a `bpf_loop` callback once, from the
        // state it starts with. From a known 0 the branch that finds a
        // CNAME past the last one is never taken, and is removed.
        found: records.opaque(0),
        more: false,
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
        more: records.opaque(usize::from(cnames.more)) != 0,
    })
}

/// The third pass of [`judge_response`]: the word on the first listed
/// CNAME target in `cnames`, with its name read into `name`, in place of
/// the question's in `response`; or, when none is listed and the chain
/// goes on past them, `response.chain_cut`.
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
    response.chain_cut = cnames.more && response.chain.decision.action() == Action::None;
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
    more: bool,
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
                self.more = true;
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
