//! Harness for enforcer's privileged integration tests.
//!
//! The tests run the real daemon (`$ENFORCER_BIN`, built and set by
//! `cargo xtask test`) as root against the real kernel, each in a cgroup v2
//! directory of its own. One module per concern, each with the constants
//! its tests share:
//!
//! - [`cgroup`]: [`cgroup::TestCgroup`] makes that directory and, on drop
//!   (also on panic), kills whatever is left in it and removes it;
//! - [`daemon`]: [`daemon::Daemon`] runs `enforcer run` attached to it,
//!   collects its event lines and stops it on drop (SIGTERM, then
//!   SIGKILL), so programs are detached whatever happens; a daemon that
//!   does not exit 0 on SIGTERM fails the test;
//! - [`net`]: [`net::probe`] runs the `netprobe` helper, which joins the
//!   cgroup before it opens its socket (the kernel judges a socket by the
//!   cgroup it was created in) and reports `ok` or the errno of one network
//!   operation, against listeners the test runs; [`net::command_in`] runs
//!   any program (a real client such as `openssl s_client`) inside the
//!   cgroup;
//! - [`exec`]: [`exec::exec_probe`] runs the `execprobe` helper, which
//!   joins the cgroup and then starts a program (by `execve`, `execveat` on
//!   an fd, `posix_spawn` or through a shell) and reports what its parent
//!   observes: an exit status, a signal, or the errno of the exec;
//! - [`privilege`]: how both helpers join the cgroup and, for
//!   [`net::probe_as`] and [`exec::exec_probe_as`], drop to an
//!   unprivileged uid;
//! - [`dns`] and [`tls`]: `netprobe` sends a real DNS query or TLS
//!   ClientHello from inside the cgroup, to a [`dns::DnsServer`] or a
//!   [`tls::TlsListener`] run by the test;
//! - [`bpf`]: what the kernel says is attached and loaded;
//! - [`command`], [`temp`] and [`timeouts`]: running the enforcer CLI with
//!   a deadline, temp dirs, and how long anything may take.

pub mod bpf;
pub mod cgroup;
pub mod command;
pub mod daemon;
pub mod dns;
pub mod exec;
pub mod net;
pub mod privilege;
mod serve;
pub mod temp;
pub mod timeouts;
pub mod tls;
