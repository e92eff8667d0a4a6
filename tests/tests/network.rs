//! Verdicts: what the kernel programs refuse (EPERM) and let through, for
//! each kind of rule, on IPv4, IPv6 and IPv4-mapped IPv6 destinations.

use std::net::{Ipv4Addr, Ipv6Addr};

use enforcer_integration_tests::{
    cgroup::TestCgroup,
    daemon::Daemon,
    net::{
        EPERM, LISTED, Op, Outcome, UNLISTED, mapped, probe, received_datagram, tcp_listener,
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

#[test]
fn tcp_connect_to_listed_ipv4_is_refused_and_unlisted_is_allowed() {
    let (_listed, listed_port) = tcp_listener(LISTED);
    let (_unlisted, unlisted_port) = tcp_listener(UNLISTED);
    let cgroup = TestCgroup::new();
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, LISTED, listed_port),
        Outcome::Ok,
        "without the daemon the listener must be reachable"
    );

    let _daemon = Daemon::start(&cgroup, BLOCK_LISTED);

    assert_eq!(probe(&cgroup, Op::TcpConnect, LISTED, listed_port), EPERM);
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, UNLISTED, unlisted_port),
        Outcome::Ok
    );
}

#[test]
fn tcp_fast_open_to_listed_address_is_refused() {
    let (_listed, listed_port) = tcp_listener(LISTED);
    let (_unlisted, unlisted_port) = tcp_listener(UNLISTED);
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(&cgroup, BLOCK_LISTED);

    // sendto(MSG_FASTOPEN) connects without connect(); the kernel still
    // runs the connect hook for it.
    assert_eq!(probe(&cgroup, Op::TcpFastOpen, LISTED, listed_port), EPERM);
    assert_eq!(
        probe(&cgroup, Op::TcpFastOpen, UNLISTED, unlisted_port),
        Outcome::Ok
    );
}

#[test]
fn processes_outside_the_enforced_cgroup_are_not_affected() {
    let (_listener, port) = tcp_listener(LISTED);
    let enforced = TestCgroup::new();
    let sibling = TestCgroup::new();
    let _daemon = Daemon::start(&enforced, BLOCK_LISTED);

    assert_eq!(probe(&enforced, Op::TcpConnect, LISTED, port), EPERM);
    assert_eq!(probe(&sibling, Op::TcpConnect, LISTED, port), Outcome::Ok);
}

#[test]
fn tcp_connect_to_listed_ipv6_loopback_is_refused() {
    let (_listener, port) = tcp_listener(Ipv6Addr::LOCALHOST);
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(
        &cgroup,
        r#"
version = 1

[[block]]
name = "block-v6-loopback"
cidrs = ["::1/128"]
"#,
    );

    assert_eq!(
        probe(&cgroup, Op::TcpConnect, Ipv6Addr::LOCALHOST, port),
        EPERM
    );
}

#[test]
fn ipv6_loopback_outside_the_listed_prefix_is_allowed() {
    let (_listener, port) = tcp_listener(Ipv6Addr::LOCALHOST);
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(
        &cgroup,
        r#"
version = 1

[[block]]
name = "block-documentation-prefix"
cidrs = ["2001:db8::/32"]
"#,
    );

    assert_eq!(
        probe(&cgroup, Op::TcpConnect, Ipv6Addr::LOCALHOST, port),
        Outcome::Ok
    );
}

#[test]
fn udp_connect_and_unconnected_sendto_to_listed_address_are_refused() {
    let (receiver, port) = udp_receiver(UNLISTED);
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(&cgroup, BLOCK_LISTED);

    assert_eq!(probe(&cgroup, Op::UdpConnect, LISTED, port), EPERM);
    assert_eq!(probe(&cgroup, Op::UdpSendto, LISTED, port), EPERM);

    assert_eq!(probe(&cgroup, Op::UdpConnect, UNLISTED, port), Outcome::Ok);
    assert_eq!(probe(&cgroup, Op::UdpSendto, UNLISTED, port), Outcome::Ok);
    assert!(
        received_datagram(&receiver, std::time::Duration::from_secs(5)),
        "the allowed datagram did not arrive"
    );
}

#[test]
fn ipv4_mapped_ipv6_destination_on_inet6_socket_is_refused() {
    let (_listed, listed_port) = tcp_listener(LISTED);
    let (_unlisted, unlisted_port) = tcp_listener(UNLISTED);
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(&cgroup, BLOCK_LISTED);

    assert_eq!(
        probe(&cgroup, Op::TcpConnect, mapped(LISTED), listed_port),
        EPERM
    );
    assert_eq!(
        probe(&cgroup, Op::UdpSendto, mapped(LISTED), listed_port),
        EPERM
    );
    assert_eq!(
        probe(&cgroup, Op::UdpConnect, mapped(LISTED), listed_port),
        EPERM
    );
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, mapped(UNLISTED), unlisted_port),
        Outcome::Ok,
        "an unlisted mapped destination must go through"
    );
}

#[test]
fn ipv4_mapped_cidr_in_policy_blocks_plain_ipv4() {
    let (_listener, port) = tcp_listener(LISTED);
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(
        &cgroup,
        r#"
version = 1

[[block]]
name = "mapped-form"
cidrs = ["::ffff:127.0.0.7/128"]
"#,
    );

    assert_eq!(probe(&cgroup, Op::TcpConnect, LISTED, port), EPERM);
    assert_eq!(probe(&cgroup, Op::TcpConnect, mapped(LISTED), port), EPERM);
}

#[test]
fn port_qualified_rule_refuses_only_listed_ports() {
    let (_listed, listed_port) = tcp_listener(LISTED);
    let (_other, other_port) = tcp_listener(LISTED);
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(
        &cgroup,
        &format!(
            r#"
version = 1

[[block]]
name = "one-port"
cidrs = ["127.0.0.7/32"]
ports = ["{listed_port}"]
"#
        ),
    );

    assert_eq!(probe(&cgroup, Op::TcpConnect, LISTED, listed_port), EPERM);
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, LISTED, other_port),
        Outcome::Ok
    );
}

#[test]
fn port_range_rule_refuses_ports_inside_the_range() {
    let (_listener, port) = tcp_listener(LISTED);
    let (low, high) = (port.saturating_sub(1).max(1), port.saturating_add(1));
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(
        &cgroup,
        &format!(
            r#"
version = 1

[[block]]
name = "port-range"
cidrs = ["127.0.0.7/32"]
ports = ["{low}-{high}"]
"#
        ),
    );

    assert_eq!(probe(&cgroup, Op::TcpConnect, LISTED, port), EPERM);
}

#[test]
fn protocol_qualified_rule_refuses_only_listed_protocol() {
    let (_listener, port) = tcp_listener(LISTED);
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(
        &cgroup,
        r#"
version = 1

[[block]]
name = "udp-only"
cidrs = ["127.0.0.7/32"]
protocols = ["udp"]
"#,
    );

    assert_eq!(probe(&cgroup, Op::UdpConnect, LISTED, port), EPERM);
    assert_eq!(probe(&cgroup, Op::UdpSendto, LISTED, port), EPERM);
    assert_eq!(probe(&cgroup, Op::TcpConnect, LISTED, port), Outcome::Ok);
}

#[test]
fn allow_exception_inside_blocked_cidr_wins() {
    // 127.0.0.16/28 is 127.0.0.16–127.0.0.31.
    let exception = Ipv4Addr::new(127, 0, 0, 20);
    let blocked = Ipv4Addr::new(127, 0, 0, 21);
    let (_exception, exception_port) = tcp_listener(exception);
    let (_blocked, blocked_port) = tcp_listener(blocked);
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(
        &cgroup,
        r#"
version = 1

[[block]]
name = "block-range"
cidrs = ["127.0.0.16/28"]

[[allow]]
name = "exception"
cidrs = ["127.0.0.20/32"]
"#,
    );

    assert_eq!(
        probe(&cgroup, Op::TcpConnect, exception, exception_port),
        Outcome::Ok
    );
    assert_eq!(
        probe(&cgroup, Op::UdpSendto, exception, exception_port),
        Outcome::Ok
    );
    assert_eq!(probe(&cgroup, Op::TcpConnect, blocked, blocked_port), EPERM);
    assert_eq!(probe(&cgroup, Op::UdpSendto, blocked, blocked_port), EPERM);
}

#[test]
fn block_quic_and_block_dot_refuse_their_ports_to_any_address() {
    let (_https, https_port) = tcp_listener(UNLISTED);
    let cgroup = TestCgroup::new();
    let _daemon = Daemon::start(
        &cgroup,
        "version = 1\n[options]\nblock_quic = true\nblock_dot = true\n",
    );

    assert_eq!(probe(&cgroup, Op::UdpSendto, UNLISTED, 443), EPERM, "QUIC");
    assert_eq!(
        probe(&cgroup, Op::UdpSendto, UNLISTED, 853),
        EPERM,
        "DNS over QUIC"
    );
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, UNLISTED, 853),
        EPERM,
        "DNS over TLS"
    );
    // Only the switched ports: plain TCP to the same address still works.
    assert_eq!(
        probe(&cgroup, Op::TcpConnect, UNLISTED, https_port),
        Outcome::Ok
    );
}
