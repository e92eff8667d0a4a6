//! Verdicts: what the kernel programs refuse (EPERM) and let through, for
//! each kind of rule, on IPv4, IPv6 and IPv4-mapped IPv6 destinations.
//!
//! Each test is a case: the listeners it needs, a policy, and a table of
//! [`Check`]s run from inside a cgroup of its own that the daemon enforces
//! on ([`assert_enforced`]).

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use enforcer_integration_tests::{
    cgroup::TestCgroup,
    daemon::Daemon,
    net::{
        Check, LISTED,
        Op::{TcpConnect, TcpFastOpen, UdpConnect, UdpSendto},
        Outcome, UNLISTED, assert_checks, mapped, probe, received_datagram, tcp_listener,
        udp_receiver,
    },
};

const BLOCK_LISTED: &str = r#"
version = 1
mode = "enforce"

[[block]]
name = "test-block"
cidrs = ["127.0.0.7/32"]
"#;

/// A policy of one block rule named `name` for `cidrs`, with `more` (a
/// `ports` or `protocols` line) appended.
fn block(name: &str, cidrs: &str, more: &str) -> String {
    format!("version = 1\n\n[[block]]\nname = \"{name}\"\ncidrs = [\"{cidrs}\"]\n{more}\n")
}

/// Starts a daemon enforcing `policy` on a fresh cgroup and runs `checks`
/// from inside it.
#[track_caller]
fn assert_enforced(policy: &str, checks: &[Check]) {
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(&cgroup, policy);
    assert_checks(&cgroup, checks);
}

#[test]
fn tcp_connect_to_listed_ipv4_is_refused_and_unlisted_is_allowed() {
    let (_listed, listed_port) = tcp_listener(LISTED);
    let (_unlisted, unlisted_port) = tcp_listener(UNLISTED);
    let cgroup = TestCgroup::new();
    assert_eq!(
        probe(&cgroup, TcpConnect, LISTED, listed_port),
        Outcome::Ok,
        "without the daemon the listener must be reachable"
    );

    let _daemon = Daemon::start(&cgroup, BLOCK_LISTED);

    assert_checks(
        &cgroup,
        &[
            Check::refused(TcpConnect, LISTED, listed_port),
            Check::allowed(TcpConnect, UNLISTED, unlisted_port),
        ],
    );
}

#[test]
fn tcp_fast_open_to_listed_address_is_refused() {
    let (_listed, listed_port) = tcp_listener(LISTED);
    let (_unlisted, unlisted_port) = tcp_listener(UNLISTED);
    // sendto(MSG_FASTOPEN) connects without connect(); the kernel still
    // runs the connect hook for it.
    assert_enforced(
        BLOCK_LISTED,
        &[
            Check::refused(TcpFastOpen, LISTED, listed_port),
            Check::allowed(TcpFastOpen, UNLISTED, unlisted_port),
        ],
    );
}

#[test]
fn processes_outside_the_enforced_cgroup_are_not_affected() {
    let (_listener, port) = tcp_listener(LISTED);
    let enforced = TestCgroup::new();
    let sibling = TestCgroup::new();
    let _daemon = Daemon::start(&enforced, BLOCK_LISTED);

    assert_checks(&enforced, &[Check::refused(TcpConnect, LISTED, port)]);
    assert_checks(&sibling, &[Check::allowed(TcpConnect, LISTED, port)]);
}

#[test]
fn tcp_connect_to_listed_ipv6_loopback_is_refused() {
    let (_listener, port) = tcp_listener(Ipv6Addr::LOCALHOST);
    assert_enforced(
        &block("block-v6-loopback", "::1/128", ""),
        &[Check::refused(TcpConnect, Ipv6Addr::LOCALHOST, port)],
    );
}

#[test]
fn ipv6_loopback_outside_the_listed_prefix_is_allowed() {
    let (_listener, port) = tcp_listener(Ipv6Addr::LOCALHOST);
    assert_enforced(
        &block("block-documentation-prefix", "2001:db8::/32", ""),
        &[Check::allowed(TcpConnect, Ipv6Addr::LOCALHOST, port)],
    );
}

#[test]
fn udp_connect_and_unconnected_sendto_to_listed_address_are_refused() {
    let (receiver, port) = udp_receiver(UNLISTED);
    assert_enforced(
        BLOCK_LISTED,
        &[
            Check::refused(UdpConnect, LISTED, port),
            Check::refused(UdpSendto, LISTED, port),
            Check::allowed(UdpConnect, UNLISTED, port),
            Check::allowed(UdpSendto, UNLISTED, port),
        ],
    );
    assert!(
        received_datagram(&receiver, Duration::from_secs(5)),
        "the allowed datagram did not arrive"
    );
}

#[test]
fn ipv4_mapped_ipv6_destination_on_inet6_socket_is_refused() {
    let (_listed, listed_port) = tcp_listener(LISTED);
    let (_unlisted, unlisted_port) = tcp_listener(UNLISTED);
    assert_enforced(
        BLOCK_LISTED,
        &[
            Check::refused(TcpConnect, mapped(LISTED), listed_port),
            Check::refused(UdpSendto, mapped(LISTED), listed_port),
            Check::refused(UdpConnect, mapped(LISTED), listed_port),
            Check::allowed(TcpConnect, mapped(UNLISTED), unlisted_port)
                .because("an unlisted mapped destination must go through"),
        ],
    );
}

#[test]
fn ipv4_mapped_cidr_in_policy_blocks_plain_ipv4() {
    let (_listener, port) = tcp_listener(LISTED);
    assert_enforced(
        &block("mapped-form", "::ffff:127.0.0.7/128", ""),
        &[
            Check::refused(TcpConnect, LISTED, port),
            Check::refused(TcpConnect, mapped(LISTED), port),
        ],
    );
}

#[test]
fn port_qualified_rule_refuses_only_listed_ports() {
    let (_listed, listed_port) = tcp_listener(LISTED);
    let (_other, other_port) = tcp_listener(LISTED);
    assert_enforced(
        &block(
            "one-port",
            "127.0.0.7/32",
            &format!("ports = [\"{listed_port}\"]"),
        ),
        &[
            Check::refused(TcpConnect, LISTED, listed_port),
            Check::allowed(TcpConnect, LISTED, other_port),
        ],
    );
}

#[test]
fn port_range_rule_refuses_ports_inside_the_range() {
    let (_listener, port) = tcp_listener(LISTED);
    let (low, high) = (port.saturating_sub(1).max(1), port.saturating_add(1));
    assert_enforced(
        &block(
            "port-range",
            "127.0.0.7/32",
            &format!("ports = [\"{low}-{high}\"]"),
        ),
        &[Check::refused(TcpConnect, LISTED, port)],
    );
}

#[test]
fn protocol_qualified_rule_refuses_only_listed_protocol() {
    let (_listener, port) = tcp_listener(LISTED);
    assert_enforced(
        &block("udp-only", "127.0.0.7/32", "protocols = [\"udp\"]"),
        &[
            Check::refused(UdpConnect, LISTED, port),
            Check::refused(UdpSendto, LISTED, port),
            Check::allowed(TcpConnect, LISTED, port),
        ],
    );
}

#[test]
fn allow_exception_inside_blocked_cidr_wins() {
    // 127.0.0.16/28 is 127.0.0.16–127.0.0.31.
    let exception = Ipv4Addr::new(127, 0, 0, 20);
    let blocked = Ipv4Addr::new(127, 0, 0, 21);
    let (_exception, exception_port) = tcp_listener(exception);
    let (_blocked, blocked_port) = tcp_listener(blocked);
    assert_enforced(
        r#"
version = 1

[[block]]
name = "block-range"
cidrs = ["127.0.0.16/28"]

[[allow]]
name = "exception"
cidrs = ["127.0.0.20/32"]
"#,
        &[
            Check::allowed(TcpConnect, exception, exception_port),
            Check::allowed(UdpSendto, exception, exception_port),
            Check::refused(TcpConnect, blocked, blocked_port),
            Check::refused(UdpSendto, blocked, blocked_port),
        ],
    );
}

#[test]
fn block_quic_and_block_dot_refuse_their_ports_to_any_address() {
    let (_https, https_port) = tcp_listener(UNLISTED);
    assert_enforced(
        "version = 1\n[options]\nblock_quic = true\nblock_dot = true\n",
        &[
            Check::refused(UdpSendto, UNLISTED, 443).because("QUIC"),
            Check::refused(UdpSendto, UNLISTED, 853).because("DNS over QUIC"),
            Check::refused(TcpConnect, UNLISTED, 853).because("DNS over TLS"),
            // Only the switched ports: plain TCP to the same address still
            // works.
            Check::allowed(TcpConnect, UNLISTED, https_port),
        ],
    );
}
