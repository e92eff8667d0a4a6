//! TLS for the domain tests: the ClientHello `netprobe` sends from inside
//! a test's cgroup ([`tls_hello`]), and a listener that records whether it
//! arrived ([`TlsListener`]).

mod hello;
mod listener;

pub use self::{
    hello::client_hello,
    listener::{TLS_QUIET, TlsListener, tls_hello, tls_hello_as, tls_hello_split_as, tls_listener},
};
