//! The queries a socket has sent, kept on the socket itself (BPF socket
//! storage), so that only an answer to one of them teaches an address.
//!
//! An answer for a listed name that no query on its socket asked for
//! (forged by a remote host, or sent to a port with nothing pending) is
//! dropped and learns nothing. What is remembered is what the answer must
//! repeat: the resolver's address, the transaction id, and the question's
//! type and name. The resolver's port is 53 on both sides, and the client's
//! port is the socket's own. A socket remembers its last
//! [`PENDING_QUERIES`] queries, so a process can crowd out only its own.

use crate::{
    domain::{Name, hash_step},
    exec::NAME_HASH_SEED,
    repeat::{Repeat, Step},
};

/// Queries remembered per socket: a stub resolver has a few out at once
/// (A and AAAA, each retried).
pub const PENDING_QUERIES: usize = 8;

/// How long a query waits for its answer. Stub resolvers give up after a
/// few seconds and retry; a recursive lookup rarely takes more than ten.
pub const ANSWER_WINDOW_SECONDS: u32 = 30;

/// One query sent and not yet too old to be answered.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingQuery {
    /// The resolver, as the packet headers hold it (IPv4 in the first four
    /// bytes).
    pub resolver: [u8; 16],
    /// [`name_digest`] of the question's name.
    pub name_digest: u64,
    /// `CLOCK_BOOTTIME` in seconds when it was sent, plus one: 0 marks a
    /// slot that holds no query.
    pub sent: u32,
    /// The transaction id.
    pub id: u16,
    /// The question's type.
    pub qtype: u16,
}

/// The queries of one socket, the oldest replaced first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingQueries {
    /// The queries; a slot whose `sent` is 0 is free.
    pub queries: [PendingQuery; PENDING_QUERIES],
    /// The slot the next query takes.
    pub next: u32,
    /// Zero.
    pub reserved: u32,
}

const _: () = {
    assert!(size_of::<PendingQuery>() == 32);
    assert!(core::mem::offset_of!(PendingQuery, name_digest) == 16);
    assert!(core::mem::offset_of!(PendingQuery, sent) == 24);
    assert!(core::mem::offset_of!(PendingQuery, id) == 28);
    assert!(core::mem::offset_of!(PendingQuery, qtype) == 30);
    assert!(size_of::<PendingQueries>() == 32 * PENDING_QUERIES + 8);
};

impl PendingQueries {
    /// Remembers `query`, sent at `now_seconds` of `CLOCK_BOOTTIME`, in
    /// place of the oldest.
    #[inline(always)]
    pub fn remember(&mut self, query: PendingQuery, now_seconds: u32) {
        let slot = self.next as usize % PENDING_QUERIES;
        if let Some(pending) = self.queries.get_mut(slot) {
            *pending = PendingQuery {
                sent: now_seconds.wrapping_add(1),
                ..query
            };
        }
        self.next = self.next.wrapping_add(1);
    }

    /// Whether `answer` (its `sent` unused) answers a query sent in the
    /// [`ANSWER_WINDOW_SECONDS`] before `now_seconds`.
    #[inline(always)]
    pub fn asked(&self, answer: &PendingQuery, now_seconds: u32) -> bool {
        self.queries.iter().any(|query| {
            query.sent != 0
                && now_seconds.wrapping_add(1).wrapping_sub(query.sent) <= ANSWER_WINDOW_SECONDS
                && query.id == answer.id
                && query.qtype == answer.qtype
                && query.name_digest == answer.name_digest
                // As one number: a byte-array comparison would be a call
                // of `bcmp`, which BPF programs cannot make.
                && u128::from_ne_bytes(query.resolver) == u128::from_ne_bytes(answer.resolver)
        })
    }
}

/// A digest of a name in text form, FNV-1a over its bytes (as
/// `exec::name_hash`): the query's and the answer's question are compared
/// by it.
pub fn name_digest(name: &Name<'_>, repeat: &impl Repeat) -> u64 {
    let mut digest = NameDigest {
        name,
        digest: repeat.opaque(0) as u64 ^ NAME_HASH_SEED,
    };
    repeat.repeat(name.len as u32, &mut digest);
    digest.digest
}

struct NameDigest<'a, 'n> {
    name: &'a Name<'n>,
    digest: u64,
}

impl Step for NameDigest<'_, '_> {
    #[inline(always)]
    fn step(&mut self, index: u32) -> bool {
        if index as usize >= self.name.len {
            return false;
        }
        self.digest = hash_step(self.digest, self.name.byte(index as usize));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{domain::NAME_BYTES, repeat::Plain};

    fn digest(text: &str) -> u64 {
        let mut bytes = [0u8; NAME_BYTES];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        name_digest(
            &Name {
                bytes: &bytes,
                len: text.len(),
            },
            &Plain,
        )
    }

    fn query(id: u16, name: &str) -> PendingQuery {
        PendingQuery {
            resolver: [127, 0, 0, 53, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            name_digest: digest(name),
            sent: 0,
            id,
            qtype: 1,
        }
    }

    #[test]
    fn only_an_answer_that_repeats_a_recent_query_was_asked_for() {
        let mut pending = PendingQueries::default();
        assert!(!pending.asked(&query(7, "t.me"), 100));
        pending.remember(query(7, "t.me"), 100);
        assert!(pending.asked(&query(7, "t.me"), 100));
        assert!(pending.asked(&query(7, "t.me"), 100 + ANSWER_WINDOW_SECONDS));
        assert!(!pending.asked(&query(7, "t.me"), 101 + ANSWER_WINDOW_SECONDS));
        assert!(!pending.asked(&query(8, "t.me"), 100), "another id");
        assert!(!pending.asked(&query(7, "t.mf"), 100), "another name");
        let other_type = PendingQuery {
            qtype: 28,
            ..query(7, "t.me")
        };
        assert!(!pending.asked(&other_type, 100));
        let other_resolver = PendingQuery {
            resolver: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ..query(7, "t.me")
        };
        assert!(!pending.asked(&other_resolver, 100));
    }

    #[test]
    fn the_oldest_query_makes_room() {
        let mut pending = PendingQueries::default();
        for id in 0..=PENDING_QUERIES as u16 {
            pending.remember(query(id, "t.me"), 5);
        }
        assert!(!pending.asked(&query(0, "t.me"), 5));
        for id in 1..=PENDING_QUERIES as u16 {
            assert!(pending.asked(&query(id, "t.me"), 5), "{id}");
        }
    }

    #[test]
    fn the_digest_is_fnv1a_of_the_text() {
        assert_eq!(
            digest("web.telegram.org"),
            crate::exec::name_hash(b"web.telegram.org")
        );
        assert_ne!(digest("a.b"), digest("b.a"));
    }
}
