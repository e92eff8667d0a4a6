//! Everything that touches the kernel's BPF objects: what the host offers
//! ([`capabilities`], [`btf`]), the program families and their state
//! ([`family`]), loading and attaching them ([`programs`]), the maps the
//! generations go into ([`maps`]), the learned addresses ([`learned`]), the hit counts per rule ([`hits`]), the pins that keep them in force
//! ([`pins`]), self-protection ([`guard`]) and the verifier budget
//! ([`probe`]).

pub(crate) mod btf;
pub(crate) mod capabilities;
pub mod family;
pub(crate) mod guard;
pub mod hits;
pub mod learned;
pub mod maps;
pub mod pins;
pub mod probe;
pub mod programs;
