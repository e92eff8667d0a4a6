//! The policy at rest and in transit: the last applied policy kept on disk
//! ([`saved`]), and signed bundles for fleets ([`signing`]).

pub mod saved;
pub mod signing;
