//! Endpoints: the address's class in the image, then its port table, as
//! the socket hooks read them.

use std::{collections::BTreeSet, net::IpAddr};

use enforcer_common::{
    decision::{Action, Decision},
    lookup::{Fault, Generation},
    proto,
};

use super::{
    report::{Finding, RuleRef},
    subject::Subject,
    target::Protocol,
};
use crate::policy::{Cidr, Rule};

/// A protocol class of the port tables, and how a case names it.
const CLASSES: [(u32, &str); 3] = [
    (proto::TCP, "tcp"),
    (proto::UDP, "udp"),
    (proto::OTHER, "other protocols"),
];

pub(super) fn explain(
    subject: &Subject<'_>,
    addr: IpAddr,
    port: Option<u16>,
    protocol: Option<Protocol>,
) -> Result<(Vec<Finding>, Vec<String>), Fault> {
    // The hooks judge an IPv4-mapped IPv6 destination as IPv4.
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    };
    let generation = Generation::new(subject.image);
    let class = match addr {
        IpAddr::V4(v4) => generation.v4_class(u32::from(v4))?,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            generation.v6_class((bits >> 64) as u64, bits as u64)?
        }
    };
    let classes: Vec<(u32, &str)> = match protocol {
        Some(Protocol::Tcp) => vec![CLASSES[0]],
        Some(Protocol::Udp) => vec![CLASSES[1]],
        // A port belongs to TCP or UDP; without one, every class.
        None if port.is_some() => CLASSES[..2].to_vec(),
        None => CLASSES.to_vec(),
    };
    let covering: Vec<(u32, &Rule, Cidr)> = subject
        .rules
        .iter()
        .enumerate()
        .filter_map(|(index, rule)| Some((index as u32, rule, narrowest(rule, addr)?)))
        .collect();
    let mut findings = Vec::new();
    for (class_id, class_name) in classes {
        let ranges = match port {
            Some(port) => vec![(port, port)],
            None => port_ranges(&covering, |first| {
                generation.decision(class, class_id, first)
            })?,
        };
        for (first, last) in ranges {
            let decision = generation.decision(class, class_id, first)?;
            let single = protocol.is_some() && port.is_some();
            let case = (!single).then(|| case(class_name, first, last));
            let because = because(&covering, decision);
            findings.push(subject.finding(case, decision, because));
        }
    }
    let deciding: BTreeSet<&str> = findings
        .iter()
        .filter_map(|finding| finding.rule.as_ref().map(|rule| rule.name.as_str()))
        .collect();
    let mut notes: Vec<String> = covering
        .iter()
        .filter(|(_, rule, _)| {
            !deciding.contains(rule.name.as_str()) && takes(rule, port, protocol)
        })
        .map(|(_, rule, cidr)| {
            format!(
                "rule {} also lists {cidr}, but does not decide {}",
                RuleRef::of(rule),
                if port.is_some() { "it" } else { "any port" }
            )
        })
        .collect();
    if subject
        .policy
        .rules
        .iter()
        .any(|rule| !rule.domains.is_empty() && rule.domain_switches.learn_addresses)
    {
        notes.push(
            "addresses that DNS answers give for listed names are learned at run time; \
             offline, only the rules' own networks are known"
                .to_owned(),
        );
    }
    Ok((findings, notes))
}

/// Whether `rule`'s ports and protocols include the target's, where it
/// names them: a rule for other ports is no contender.
fn takes(rule: &Rule, port: Option<u16>, protocol: Option<Protocol>) -> bool {
    let port_taken = match (port, &rule.ports) {
        (Some(port), Some(ranges)) => ranges.iter().any(|r| (r.first..=r.last).contains(&port)),
        _ => true,
    };
    let protocol_taken = match (protocol, rule.protocols) {
        (Some(Protocol::Tcp), Some(set)) => set.tcp,
        (Some(Protocol::Udp), Some(set)) => set.udp,
        _ => true,
    };
    port_taken && protocol_taken
}

/// The rule's narrowest network that holds `addr`.
fn narrowest(rule: &Rule, addr: IpAddr) -> Option<Cidr> {
    rule.cidrs
        .iter()
        .filter(|cidr| contains(cidr, addr))
        .max_by_key(|cidr| match cidr {
            Cidr::V4 { prefix_len, .. } | Cidr::V6 { prefix_len, .. } => *prefix_len,
        })
        .copied()
}

fn contains(cidr: &Cidr, addr: IpAddr) -> bool {
    match (*cidr, addr) {
        (
            Cidr::V4 {
                addr: net,
                prefix_len,
            },
            IpAddr::V4(addr),
        ) => {
            let shift = 32 - u32::from(prefix_len);
            u64::from(u32::from(net)) >> shift == u64::from(u32::from(addr)) >> shift
        }
        (
            Cidr::V6 {
                addr: net,
                prefix_len,
            },
            IpAddr::V6(addr),
        ) => {
            let shift = 128 - u32::from(prefix_len);
            u128::from(net).checked_shr(shift).unwrap_or(0)
                == u128::from(addr).checked_shr(shift).unwrap_or(0)
        }
        _ => false,
    }
}

/// Ports 1-65535 cut where any covering rule's ports start or end, each
/// run of equal decisions merged into one range.
fn port_ranges(
    covering: &[(u32, &Rule, Cidr)],
    decision_at: impl Fn(u16) -> Result<Decision, Fault>,
) -> Result<Vec<(u16, u16)>, Fault> {
    let mut starts = BTreeSet::from([1u32]);
    for (_, rule, _) in covering {
        for range in rule.ports.iter().flatten() {
            starts.insert(u32::from(range.first));
            starts.insert(u32::from(range.last) + 1);
        }
    }
    starts.retain(|&start| (1..=65_535).contains(&start));
    let starts: Vec<u32> = starts.into_iter().collect();
    let mut ranges: Vec<(u16, u16, Decision)> = Vec::new();
    for (i, &start) in starts.iter().enumerate() {
        let last = starts.get(i + 1).map_or(65_535, |next| next - 1);
        let decision = decision_at(start as u16)?;
        match ranges.last_mut() {
            Some((_, previous_last, previous)) if *previous == decision => {
                *previous_last = last as u16;
            }
            _ => ranges.push((start as u16, last as u16, decision)),
        }
    }
    Ok(ranges
        .into_iter()
        .map(|(first, last, _)| (first, last))
        .collect())
}

fn case(class: &str, first: u16, last: u16) -> String {
    match (first, last) {
        (1, 65_535) => format!("{class}, every port"),
        (first, last) if first == last => format!("{class} {first}"),
        (first, last) => format!("{class} {first}-{last}"),
    }
}

/// What of the deciding rule covers the endpoint.
fn because(covering: &[(u32, &Rule, Cidr)], decision: Decision) -> String {
    if decision.action() == Action::None {
        return String::new();
    }
    let Some((_, rule, cidr)) = covering
        .iter()
        .find(|(index, _, _)| *index == decision.rule())
    else {
        return String::new();
    };
    let mut because = format!("{cidr} holds the address");
    if let Some(ports) = &rule.ports {
        let ports: Vec<String> = ports.iter().map(ToString::to_string).collect();
        because.push_str(&format!(", ports {}", ports.join(", ")));
    }
    if let Some(protocols) = rule.protocols {
        because.push_str(&format!(", {}", protocols.names().join(" and ")));
    }
    because
}
