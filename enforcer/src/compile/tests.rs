//! The compiler is checked through the kernel's own lookup code
//! (`enforcer_common::lookup`) against a direct reading of the policy's
//! semantics, on hand-picked and on pseudo-random policies.

use std::net::{Ipv4Addr, Ipv6Addr};

use enforcer_common::{
    decision::{Action, Decision},
    lookup::Generation,
    proto,
};

use super::*;
use crate::policy::{DomainSwitches, Mode, Origin, PortRange, ProtocolSet, Rule, RuleKind};

fn rule(name: &str, kind: RuleKind, mode: Mode, cidrs: &[&str]) -> Rule {
    Rule {
        name: name.to_string(),
        kind,
        mode,
        cidrs: cidrs
            .iter()
            .map(|c| c.parse().expect("test CIDR"))
            .collect(),
        domains: Vec::new(),
        domain_switches: DomainSwitches::default(),
        exec_paths: Vec::new(),
        exec_names: Vec::new(),
        exec_sha256: Vec::new(),
        ports: None,
        protocols: None,
        origin: Origin {
            file: "test.toml".into(),
            line: 1,
        },
    }
}

fn block(name: &str, cidrs: &[&str]) -> Rule {
    rule(name, RuleKind::Block, Mode::Enforce, cidrs)
}

fn allow(name: &str, cidrs: &[&str]) -> Rule {
    rule(name, RuleKind::Allow, Mode::Enforce, cidrs)
}

#[derive(Clone, Copy, Debug)]
enum Dest {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

/// What the kernel programs would decide, read from the compiled image.
fn kernel_decision(image: &[u64], dest: Dest, ipproto: u32, port: u16) -> Decision {
    let generation = Generation::new(image);
    let class = match dest {
        Dest::V4(addr) => generation.v4_class(addr.into()),
        Dest::V6(addr) => {
            let bits = u128::from(addr);
            generation.v6_class((bits >> 64) as u64, bits as u64)
        }
    }
    .expect("lookup stays inside the image");
    generation
        .decision(class, proto::class_of(ipproto), port)
        .expect("lookup stays inside the image")
}

/// The policy's meaning, straight from the rules.
fn reference_decision(rules: &[Rule], dest: Dest, ipproto: u32, port: u16) -> Decision {
    let matches = |rule: &Rule| {
        let address = rule.cidrs.iter().any(|cidr| match (*cidr, dest) {
            (Cidr::V4 { addr, prefix_len }, Dest::V4(d)) => {
                prefix_len == 0 || (u32::from(addr) ^ u32::from(d)) >> (32 - prefix_len) == 0
            }
            (Cidr::V6 { addr, prefix_len }, Dest::V6(d)) => {
                prefix_len == 0 || (u128::from(addr) ^ u128::from(d)) >> (128 - prefix_len) == 0
            }
            _ => false,
        });
        let protocol = match rule.protocols {
            None => true,
            Some(set) => (ipproto == 6 && set.tcp) || (ipproto == 17 && set.udp),
        };
        let port_ok = rule
            .ports
            .as_ref()
            .is_none_or(|ranges| ranges.iter().any(|r| r.first <= port && port <= r.last));
        address && protocol && port_ok
    };
    let first = |kind: RuleKind, mode: Option<Mode>| {
        rules
            .iter()
            .position(|r| r.kind == kind && mode.is_none_or(|m| r.mode == m) && matches(r))
    };
    if let Some(index) = first(RuleKind::Allow, None) {
        Decision::new(Action::Allow, index as u32)
    } else if let Some(index) = first(RuleKind::Block, Some(Mode::Enforce)) {
        Decision::new(Action::Block, index as u32)
    } else if let Some(index) = first(RuleKind::Block, Some(Mode::Audit)) {
        Decision::new(Action::Audit, index as u32)
    } else {
        Decision::NONE
    }
}

fn v4(text: &str) -> Dest {
    Dest::V4(text.parse().unwrap())
}

fn v6(text: &str) -> Dest {
    Dest::V6(text.parse().unwrap())
}

const TCP: u32 = 6;
const UDP: u32 = 17;
const SCTP: u32 = 132;

fn compiled(rules: Vec<Rule>) -> (Policy, Vec<u64>) {
    let policy = Policy {
        rules,
        ..Default::default()
    };
    let image = compile(&policy, &[], 0).expect("policy compiles").image;
    (policy, image)
}

#[test]
fn empty_policy_decides_nothing() {
    let (_, image) = compiled(vec![]);
    assert_eq!(
        kernel_decision(&image, v4("149.154.167.99"), TCP, 443),
        Decision::NONE
    );
    assert_eq!(
        kernel_decision(&image, v6("2001:b28:f23d::1"), UDP, 53),
        Decision::NONE
    );
}

#[test]
fn blocks_listed_prefixes_of_both_families_and_nothing_else() {
    let (_, image) = compiled(vec![block(
        "telegram",
        &["149.154.160.0/20", "91.108.4.0/22", "2001:b28:f23d::/48"],
    )]);
    let blocked = Decision::new(Action::Block, 0);
    for dest in [
        v4("149.154.160.0"),
        v4("149.154.175.255"),
        v4("91.108.6.1"),
        v6("2001:b28:f23d::"),
        v6("2001:b28:f23d:ffff:ffff:ffff:ffff:ffff"),
    ] {
        assert_eq!(kernel_decision(&image, dest, TCP, 443), blocked, "{dest:?}");
    }
    for dest in [
        v4("149.154.159.255"),
        v4("149.154.176.0"),
        v4("91.108.8.0"),
        v6("2001:b28:f23c:ffff::"),
        v6("2001:b28:f23e::"),
    ] {
        assert_eq!(
            kernel_decision(&image, dest, TCP, 443),
            Decision::NONE,
            "{dest:?}"
        );
    }
}

#[test]
fn allow_exception_wins_over_an_earlier_block() {
    let (_, image) = compiled(vec![
        block("telegram", &["149.154.160.0/20"]),
        allow("corporate-relay", &["149.154.167.99/32"]),
    ]);
    assert_eq!(
        kernel_decision(&image, v4("149.154.167.99"), TCP, 443),
        Decision::new(Action::Allow, 1)
    );
    assert_eq!(
        kernel_decision(&image, v4("149.154.167.98"), TCP, 443),
        Decision::new(Action::Block, 0)
    );
}

#[test]
fn enforce_wins_over_audit_and_the_first_rule_names_the_verdict() {
    let (_, image) = compiled(vec![
        rule("watch", RuleKind::Block, Mode::Audit, &["10.0.0.0/8"]),
        block("first", &["10.1.0.0/16"]),
        block("second", &["10.1.2.0/24"]),
    ]);
    assert_eq!(
        kernel_decision(&image, v4("10.1.2.3"), TCP, 1),
        Decision::new(Action::Block, 1)
    );
    assert_eq!(
        kernel_decision(&image, v4("10.2.0.0"), TCP, 1),
        Decision::new(Action::Audit, 0)
    );
}

#[test]
fn ports_and_protocols_qualify_a_rule() {
    let mut voice = block("voice", &["10.0.0.0/24"]);
    voice.ports = Some(vec![
        PortRange {
            first: 3478,
            last: 3481,
        },
        PortRange {
            first: 443,
            last: 443,
        },
    ]);
    voice.protocols = Some(ProtocolSet {
        tcp: false,
        udp: true,
    });
    let (_, image) = compiled(vec![voice]);
    let blocked = Decision::new(Action::Block, 0);
    assert_eq!(kernel_decision(&image, v4("10.0.0.9"), UDP, 3478), blocked);
    assert_eq!(kernel_decision(&image, v4("10.0.0.9"), UDP, 3481), blocked);
    assert_eq!(kernel_decision(&image, v4("10.0.0.9"), UDP, 443), blocked);
    assert_eq!(
        kernel_decision(&image, v4("10.0.0.9"), UDP, 3482),
        Decision::NONE
    );
    assert_eq!(
        kernel_decision(&image, v4("10.0.0.9"), UDP, 442),
        Decision::NONE
    );
    assert_eq!(
        kernel_decision(&image, v4("10.0.0.9"), TCP, 3478),
        Decision::NONE
    );
    assert_eq!(
        kernel_decision(&image, v4("10.0.0.9"), SCTP, 3478),
        Decision::NONE
    );
}

#[test]
fn a_rule_without_protocols_covers_other_protocols_too() {
    let (_, image) = compiled(vec![block("all", &["10.0.0.0/24"])]);
    assert_eq!(
        kernel_decision(&image, v4("10.0.0.1"), SCTP, 9),
        Decision::new(Action::Block, 0)
    );
}

#[test]
fn the_whole_address_space_and_its_edges() {
    let (_, image) = compiled(vec![
        block("everything4", &["0.0.0.0/0"]),
        allow("top4", &["255.255.255.255/32"]),
        block("everything6", &["::/0"]),
        allow("bottom6", &["::/128"]),
    ]);
    assert_eq!(
        kernel_decision(&image, v4("0.0.0.0"), TCP, 0),
        Decision::new(Action::Block, 0)
    );
    assert_eq!(
        kernel_decision(&image, v4("255.255.255.255"), TCP, 65535),
        Decision::new(Action::Allow, 1)
    );
    assert_eq!(
        kernel_decision(&image, v6("::"), UDP, 1),
        Decision::new(Action::Allow, 3)
    );
    assert_eq!(
        kernel_decision(&image, v6("::1"), UDP, 1),
        Decision::new(Action::Block, 2)
    );
    assert_eq!(
        kernel_decision(
            &image,
            v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            UDP,
            1
        ),
        Decision::new(Action::Block, 2)
    );
}

#[test]
fn compilation_is_deterministic() {
    let rules = || {
        vec![
            block("a", &["149.154.160.0/20", "2001:b28:f23d::/48"]),
            allow("b", &["149.154.167.99/32"]),
        ]
    };
    let policy = || Policy {
        rules: rules(),
        ..Default::default()
    };
    let first = compile(&policy(), &[], 0).unwrap();
    let second = compile(&policy(), &[], 0).unwrap();
    assert_eq!(first, second);
}

#[test]
fn stats_count_the_sections() {
    let (policy, image) = compiled(vec![block("a", &["10.0.0.0/24", "10.0.2.0/24"])]);
    let stats = compile(&policy, &[], 0).unwrap().stats;
    // 10.0.0.0/24, the gap, 10.0.2.0/24 and the rest of the bucket.
    assert_eq!(stats.v4_ranges, 4);
    assert_eq!(stats.v6_ranges, 0);
    assert_eq!(stats.words, image.len());
}

/// xorshift64*: deterministic, good enough to spread test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// Prefixes crowded into a few buckets so that rules overlap, nest and
/// straddle bucket edges; addresses probed at every prefix edge.
#[test]
fn random_policies_match_the_reference() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..40 {
        let mut rules = Vec::new();
        let mut probes = Vec::new();
        for index in 0..1 + rng.below(8) {
            let kind = if rng.below(4) == 0 {
                RuleKind::Allow
            } else {
                RuleKind::Block
            };
            let mode = if rng.below(3) == 0 {
                Mode::Audit
            } else {
                Mode::Enforce
            };
            let mut r = rule(&format!("r{index}"), kind, mode, &[]);
            for _ in 0..1 + rng.below(6) {
                if rng.below(3) == 0 {
                    let len = 14 + rng.below(115) as u8;
                    let raw = (0x2001_0db8u128 << 96) | ((rng.next() as u128) << 64 >> 14);
                    let mask = if len == 0 {
                        0
                    } else {
                        u128::MAX << (128 - len)
                    };
                    let addr = raw & mask;
                    r.cidrs.push(Cidr::V6 {
                        addr: addr.into(),
                        prefix_len: len,
                    });
                    probes.extend(
                        [
                            addr,
                            addr | !mask,
                            (addr | !mask).wrapping_add(1),
                            addr.wrapping_sub(1),
                        ]
                        .map(|a| v6(&Ipv6Addr::from(a).to_string())),
                    );
                } else {
                    let len = 12 + rng.below(21) as u32;
                    let raw = 0x0a00_0000u32 | (rng.next() as u32 >> 12);
                    let mask = u32::MAX << (32 - len);
                    let addr = raw & mask;
                    r.cidrs.push(Cidr::V4 {
                        addr: addr.into(),
                        prefix_len: len as u8,
                    });
                    probes.extend(
                        [
                            addr,
                            addr | !mask,
                            (addr | !mask).wrapping_add(1),
                            addr.wrapping_sub(1),
                        ]
                        .map(|a| Dest::V4(a.into())),
                    );
                }
            }
            r.cidrs.sort();
            r.cidrs.dedup();
            if rng.below(2) == 0 {
                let first = rng.below(1000) as u16;
                r.ports = Some(vec![PortRange {
                    first,
                    last: first + rng.below(50) as u16,
                }]);
            }
            if rng.below(2) == 0 {
                r.protocols = Some(ProtocolSet {
                    tcp: rng.below(2) == 0,
                    udp: true,
                });
            }
            rules.push(r);
        }
        let (policy, image) = compiled(rules);
        for dest in probes {
            for ipproto in [TCP, UDP, SCTP] {
                for port in [0, 1, rng.below(1100) as u16, 999, 65535] {
                    assert_eq!(
                        kernel_decision(&image, dest, ipproto, port),
                        reference_decision(&policy.rules, dest, ipproto, port),
                        "round {round}: {dest:?} proto {ipproto} port {port}\n{:#?}",
                        policy.rules
                    );
                }
            }
        }
    }
}

#[test]
fn a_million_prefixes_compile_and_stay_searchable() {
    let cidrs: Vec<Cidr> = (0..1_000_000u32)
        .map(|i| Cidr::V4 {
            addr: Ipv4Addr::from(0x2000_0000 + i * 4),
            prefix_len: 31,
        })
        .collect();
    let mut big = block("big", &[]);
    big.cidrs = cidrs;
    let (_, image) = compiled(vec![big]);
    assert_eq!(
        kernel_decision(&image, v4("32.0.0.0"), TCP, 1),
        Decision::new(Action::Block, 0)
    );
    assert_eq!(
        kernel_decision(&image, v4("32.0.0.2"), TCP, 1),
        Decision::NONE
    );
    let last = Ipv4Addr::from(0x2000_0000 + 999_999 * 4 + 1);
    assert_eq!(
        kernel_decision(&image, Dest::V4(last), TCP, 1),
        Decision::new(Action::Block, 0)
    );
}

#[test]
fn network_switches_block_their_ports_everywhere_unless_allowed() {
    let mut policy = Policy {
        rules: vec![allow("resolver", &["9.9.9.9/32"])],
        ..Default::default()
    };
    policy.options.block_dot = true;
    policy.options.block_quic = true;
    let image = compile(&policy, &[], 0).unwrap().image;
    let dot = Decision::new(Action::Block, 1);
    let quic = Decision::new(Action::Block, 2);
    assert_eq!(kernel_decision(&image, v4("1.1.1.1"), TCP, 853), dot);
    assert_eq!(
        kernel_decision(&image, v6("2606:4700::1111"), UDP, 853),
        dot
    );
    assert_eq!(kernel_decision(&image, v4("142.250.1.1"), UDP, 443), quic);
    assert_eq!(
        kernel_decision(&image, v4("142.250.1.1"), TCP, 443),
        Decision::NONE
    );
    assert_eq!(
        kernel_decision(&image, v4("9.9.9.9"), TCP, 853),
        Decision::new(Action::Allow, 0)
    );
    assert_eq!(
        policy
            .enforced_rules()
            .iter()
            .map(|rule| rule.name.as_str())
            .collect::<Vec<_>>(),
        ["resolver", "options.block_dot", "options.block_quic"]
    );
}
