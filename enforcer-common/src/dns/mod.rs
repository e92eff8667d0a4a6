//! The parts of DNS messages (RFC 1035) the kernel programs read: the
//! question of a query, and the answers of a response.
//!
//! Packets are hostile input, so every loop has a fixed bound and every
//! read is checked (see [`crate::packet`]). Names may use compression
//! pointers, but each pointer must lead strictly before the part of the
//! name being read, so a chain of pointers always ends; on top of that,
//! their number is bounded. Anything outside these rules is
//! [`Malformed`](crate::packet::Malformed); what the programs do with a
//! malformed message is the caller's rule, documented where they call.

mod message;
mod name;
mod pending;
mod response;

pub use self::{
    message::{
        HEADER_LEN, Learned, MAX_ANSWERS, MAX_TCP_MESSAGES, PORT, Question, Record, Stop, TYPE_A,
        TYPE_AAAA, TYPE_CNAME, question, record, tcp_messages,
    },
    name::{MAX_POINTERS, NameRead, read_name, skip_name},
    pending::{ANSWER_WINDOW_SECONDS, PENDING_QUERIES, PendingQueries, PendingQuery, name_digest},
    response::{
        Cnames, MAX_CNAMES, Response, find_cnames, judge_cnames, judge_question, judge_response,
        learn_addresses, walk_response,
    },
};
