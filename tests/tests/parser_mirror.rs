//! The kernel's DNS and TLS parsers and its domain matcher, run in
//! userspace: `enforcer_common` is the code the kernel programs run, with
//! plain loops in place of `bpf_loop`. Each property checks it against an
//! independent reference (hickory-proto for DNS messages, a suffix search
//! over the policy's domains for matching), and hostile input (random and
//! mutated packets) must never panic. No kernel is involved.

use std::net::{Ipv4Addr, Ipv6Addr};

use enforcer::{
    compile::compile,
    policy::{Source, parse},
};
use enforcer_common::{
    decision::Action,
    dns::{self, MAX_ANSWERS, MAX_CNAMES, PendingQueries, PendingQuery},
    domain::{NAME_BYTES, Name},
    lookup::Generation,
    packet::{PACKET_BYTES, Packet},
    repeat::Plain,
    tls,
};
use enforcer_integration_tests::tls::client_hello;
use hickory_proto::{
    op::{Message, OpCode, Query},
    rr::{
        Name as DnsName, RData, Record, RecordType,
        rdata::{A, AAAA, CNAME},
    },
};
use proptest::prelude::*;

/// What a listed domain's rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Block,
    Audit,
    Allow,
}

/// Each rule lists one domain; several rules may list the same one.
type Rules = Vec<(String, Kind)>;

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        // Few distinct labels, so names and domains share suffixes.
        prop::sample::select(vec!["a", "b", "Www", "CDN", "x-1"]).prop_map(str::to_string),
        // Hyphens in the third and fourth place mark IDNA labels
        // ("xn--"), which the policy checks as such.
        "[a-zA-Z][a-zA-Z0-9-]{0,10}[a-zA-Z0-9]"
            .prop_filter("not an IDNA-reserved label", |label| label.get(2..4)
                != Some("--")),
    ]
}

fn name() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(label(), 1..6)
}

fn rules() -> impl Strategy<Value = Rules> {
    let kind = prop::sample::select(vec![Kind::Block, Kind::Audit, Kind::Allow]);
    prop::collection::vec((name(), kind), 0..8).prop_map(|rules| {
        rules
            .into_iter()
            .map(|(labels, kind)| (labels.join(".").to_ascii_lowercase(), kind))
            .collect()
    })
}

fn policy_text(rules: &Rules) -> String {
    let mut text = String::from("version = 1\n");
    for (index, (domain, kind)) in rules.iter().enumerate() {
        let (table, mode) = match kind {
            Kind::Block => ("block", "\nmode = \"enforce\""),
            Kind::Audit => ("block", "\nmode = \"audit\""),
            Kind::Allow => ("allow", ""),
        };
        text.push_str(&format!(
            "[[{table}]]\nname = \"r{index}\"{mode}\ndomains = [\"{domain}\"]\n"
        ));
    }
    text
}

fn image(rules: &Rules, seed: u64) -> Vec<u64> {
    let policy = parse(&[Source {
        name: "mirror.toml".into(),
        text: policy_text(rules),
    }])
    .expect("generated policies are valid");
    compile(&policy, &[], seed)
        .expect("generated policies compile")
        .image
}

/// The reference matcher: the longest listed domain that is the name or a
/// parent of it; among the rules listing it, allow wins, then enforce.
fn reference(rules: &Rules, name: &str) -> (Action, usize) {
    let covers = |domain: &str| {
        name == domain
            || name
                .strip_suffix(domain)
                .is_some_and(|rest| rest.ends_with('.'))
    };
    let Some(domain) = rules
        .iter()
        .map(|(domain, _)| domain.as_str())
        .filter(|domain| covers(domain))
        .max_by_key(|domain| domain.len())
    else {
        return (Action::None, 0);
    };
    let kinds: Vec<Kind> = rules
        .iter()
        .filter(|(listed, _)| listed == domain)
        .map(|&(_, kind)| kind)
        .collect();
    let action = if kinds.contains(&Kind::Allow) {
        Action::Allow
    } else if kinds.contains(&Kind::Block) {
        Action::Block
    } else {
        Action::Audit
    };
    (action, name.len() - domain.len())
}

fn name_buffer(text: &str) -> [u8; NAME_BYTES] {
    let mut buffer = [0u8; NAME_BYTES];
    buffer[..text.len()].copy_from_slice(text.as_bytes());
    buffer
}

fn packet_bytes(bytes: &[u8]) -> [u8; PACKET_BYTES] {
    let mut buffer = [0u8; PACKET_BYTES];
    let len = bytes.len().min(PACKET_BYTES);
    buffer[..len].copy_from_slice(&bytes[..len]);
    buffer
}

fn dns_name(labels: &[String]) -> DnsName {
    let mut name = DnsName::from_ascii(labels.join(".")).expect("generated names are valid");
    name.set_fqdn(true);
    name
}

/// A response as a resolver sends it: the question, the CNAME chain from
/// it, then the addresses of the chain's last name.
fn response(question: &[String], chain: &[Vec<String>], addresses: &[(bool, u32)]) -> Vec<u8> {
    let mut message = Message::response(0x1234, OpCode::Query);
    message.add_query(Query::query(dns_name(question), RecordType::A));
    let mut owner = dns_name(question);
    for target in chain {
        let target = dns_name(target);
        message.add_answer(Record::from_rdata(
            owner,
            300,
            RData::CNAME(CNAME(target.clone())),
        ));
        owner = target;
    }
    for (index, &(v4, ttl)) in addresses.iter().enumerate() {
        let data = if v4 {
            RData::A(A(Ipv4Addr::new(192, 0, 2, index as u8)))
        } else {
            RData::AAAA(AAAA(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                0,
                0,
                0,
                0,
                index as u16,
            )))
        };
        message.add_answer(Record::from_rdata(owner.clone(), ttl, data));
    }
    message.to_vec().expect("encoding a response")
}

proptest! {
    #[test]
    fn matching_agrees_with_the_reference(
        rules in rules(),
        names in prop::collection::vec(name(), 1..8),
        seed in any::<u64>(),
    ) {
        let image = image(&rules, seed);
        let generation = Generation::new(image.as_slice());
        // Listed domains themselves, their parents and children too.
        let candidates = names
            .iter()
            .map(|labels| labels.join(".").to_ascii_lowercase())
            .chain(rules.iter().flat_map(|(domain, _)| {
                [domain.clone(), format!("sub.{domain}"), domain.split_once('.').map_or(String::new(), |(_, parent)| parent.to_string())]
            }))
            .filter(|name| !name.is_empty());
        for name in candidates {
            let buffer = name_buffer(&name);
            let found = generation
                .domain(&Name { bytes: &buffer, len: name.len() }, &Plain)
                .expect("the image is well formed");
            let (action, start) = reference(&rules, &name);
            prop_assert_eq!(found.decision.action(), action, "{}", name);
            if action != Action::None {
                prop_assert_eq!(found.start() as usize, start, "{}", name);
            }
        }
    }

    #[test]
    fn a_query_reads_as_hickory_wrote_it(labels in name(), qtype in any::<u16>()) {
        let mut message = Message::query();
        message.add_query(Query::query(dns_name(&labels), RecordType::from(qtype)));
        let bytes = message.to_vec().expect("encoding a query");
        let buffer = packet_bytes(&bytes);
        let packet = Packet::new(&buffer, bytes.len()).expect("fits");
        let mut name = [0u8; NAME_BYTES];
        let question = dns::question(&packet, 0, false, &mut name, &Plain).expect("reads");
        let expected = labels.join(".").to_ascii_lowercase();
        prop_assert_eq!(&name[..question.name_len], expected.as_bytes());
        prop_assert_eq!(question.qtype, qtype);
        prop_assert_eq!(question.end, bytes.len());
    }

    /// A TCP segment to a resolver is read message by message: every query
    /// of a segment of at most two whole messages is seen, and anything
    /// else (a third message, one cut short, a stray byte) is malformed,
    /// so no query rides past the judge behind another.
    #[test]
    fn a_tcp_segment_shows_every_query_or_is_malformed(
        names in prop::collection::vec(name(), 1..5),
        cut in 0usize..3,
    ) {
        let mut segment = Vec::new();
        for labels in &names {
            let mut message = Message::query();
            message.add_query(Query::query(dns_name(labels), RecordType::A));
            let bytes = message.to_vec().expect("encoding a query");
            segment.extend_from_slice(&u16::try_from(bytes.len()).unwrap().to_be_bytes());
            segment.extend_from_slice(&bytes);
        }
        segment.truncate(segment.len() - cut);
        prop_assume!(segment.len() <= PACKET_BYTES);
        let buffer = packet_bytes(&segment);
        let packet = Packet::new(&buffer, segment.len()).expect("fits");
        let mut seen = Vec::new();
        let mut name = [0u8; NAME_BYTES];
        let read = dns::tcp_messages(&packet, &Plain, |message| {
            let question = dns::question(&packet, message, false, &mut name, &Plain)?;
            seen.push(String::from_utf8(name[..question.name_len].to_vec()).unwrap());
            Ok(true)
        });
        if names.len() <= dns::MAX_TCP_MESSAGES && cut == 0 {
            prop_assert!(read.is_ok());
            let expected: Vec<String> = names
                .iter()
                .map(|labels| labels.join(".").to_ascii_lowercase())
                .collect();
            prop_assert_eq!(seen, expected);
        } else {
            prop_assert_eq!(read, Err(dns::Stop::Malformed));
        }
    }

    /// An answer teaches addresses only when it repeats a query its socket
    /// sent within the window: resolver, id, type and name all. A forger
    /// who gets any one of them wrong is not asked.
    #[test]
    fn only_an_answer_that_repeats_a_remembered_query_was_asked(
        resolver in any::<[u8; 16]>(),
        id in any::<u16>(),
        qtype in any::<u16>(),
        digest in any::<u64>(),
        wrong in 0usize..5,
        sent in 0u32..1_000_000,
        waited in 0u32..60,
    ) {
        let query = PendingQuery { resolver, name_digest: digest, sent: 0, id, qtype };
        let mut pending = PendingQueries::default();
        pending.remember(query, sent);
        let mut answer = query;
        match wrong {
            0 => answer.resolver[15] ^= 1,
            1 => answer.id ^= 1,
            2 => answer.qtype ^= 1,
            3 => answer.name_digest ^= 1,
            _ => {}
        }
        let in_window = waited <= dns::ANSWER_WINDOW_SECONDS;
        prop_assert_eq!(pending.asked(&answer, sent + waited), wrong == 4 && in_window);
    }

    #[test]
    fn a_response_learns_what_the_reference_says(
        rules in rules(),
        question in name(),
        chain in prop::collection::vec(name(), 0..MAX_CNAMES + 3),
        addresses in prop::collection::vec((any::<bool>(), any::<u32>()), 0..20),
        seed in any::<u64>(),
    ) {
        let image = image(&rules, seed);
        let generation = Generation::new(image.as_slice());
        let bytes = response(&question, &chain, &addresses);
        prop_assume!(bytes.len() <= PACKET_BYTES);
        let buffer = packet_bytes(&bytes);
        let packet = Packet::new(&buffer, bytes.len()).expect("fits");
        let mut name = [0u8; NAME_BYTES];
        let mut learned = Vec::new();
        let walked = dns::walk_response(&generation, &packet, 0, &mut name, &Plain, |_, _, address| {
            learned.push(address);
        });
        let response = walked.expect("a well-formed response walks");

        // The first listed name along the chain decides.
        let texts = std::iter::once(&question)
            .chain(chain.iter().take(MAX_CNAMES))
            .map(|labels| labels.join(".").to_ascii_lowercase());
        let decided = texts
            .map(|text| reference(&rules, &text).0)
            .find(|&action| action != Action::None)
            .unwrap_or(Action::None);
        prop_assert_eq!(response.chain.decision.action(), decided);
        prop_assert_eq!(
            response.chain_cut,
            decided == Action::None && chain.len() > MAX_CNAMES,
            "a chain of {} CNAMEs", chain.len()
        );
        let records = chain.len() + addresses.len();
        // An allowed chain learns too: its addresses are opened.
        let expected: Vec<(bool, u32)> = if decided != Action::None {
            // Records past the first MAX_ANSWERS are not read.
            addresses
                .iter()
                .copied()
                .take((MAX_ANSWERS as usize).saturating_sub(chain.len()))
                .collect()
        } else {
            Vec::new()
        };
        let got: Vec<(bool, u32)> = learned.iter().map(|l| (l.v4, l.ttl)).collect();
        prop_assert_eq!(got, expected, "{} records", records);
    }

    /// A server may read `t.me\0` or `.t.me` as `t.me`; the matcher would
    /// not, so such a name is malformed (found by the fuzz target).
    #[test]
    fn a_client_hello_naming_no_host_name_is_malformed(
        labels in name(),
        junk in prop::sample::select(vec!["\0", " ", "..", "/", "\u{7f}", "é", "*"]),
        at_start in any::<bool>(),
    ) {
        let host = labels.join(".");
        let sni = if at_start { format!("{junk}{host}") } else { format!("{host}{junk}") };
        let hello = client_hello(&sni);
        let buffer = packet_bytes(&hello);
        let packet = Packet::new(&buffer, hello.len()).expect("fits");
        let mut name = [0u8; NAME_BYTES];
        prop_assert!(tls::server_name(&packet, &mut name, &Plain).is_err(), "{:?}", sni);
        let dotted = client_hello(&format!(".{host}"));
        let buffer = packet_bytes(&dotted);
        let packet = Packet::new(&buffer, dotted.len()).expect("fits");
        prop_assert!(tls::server_name(&packet, &mut name, &Plain).is_err());
    }

    #[test]
    fn a_client_hello_yields_its_server_name(labels in name(), trailing_dot in any::<bool>()) {
        let mut sni = labels.join(".");
        if trailing_dot {
            sni.push('.');
        }
        let hello = client_hello(&sni);
        let buffer = packet_bytes(&hello);
        let packet = Packet::new(&buffer, hello.len()).expect("fits");
        let mut name = [0u8; NAME_BYTES];
        let len = tls::server_name(&packet, &mut name, &Plain).expect("reads").expect("has SNI");
        let expected = labels.join(".").to_ascii_lowercase();
        prop_assert_eq!(&name[..len], expected.as_bytes());
        // Cut anywhere, it is malformed, never misread.
        for cut in [1, 5, 9, 43, hello.len() / 2, hello.len() - 1] {
            let packet = Packet::new(&buffer, cut).expect("fits");
            prop_assert!(tls::server_name(&packet, &mut name, &Plain).is_err());
        }
    }

    #[test]
    fn hostile_bytes_never_panic(
        rules in rules(),
        base in prop_oneof![
            Just(Vec::new()),
            (name(), prop::collection::vec(name(), 0..3), prop::collection::vec((any::<bool>(), any::<u32>()), 0..4))
                .prop_map(|(q, chain, addresses)| response(&q, &chain, &addresses)),
            name().prop_map(|labels| client_hello(&labels.join("."))),
        ],
        noise in prop::collection::vec(any::<u8>(), 0..600),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..12),
    ) {
        let mut bytes = if base.is_empty() { noise } else { base };
        let len = bytes.len();
        for (at, value) in flips {
            if len > 0 {
                bytes[at % len] = value;
            }
        }
        let image = image(&rules, 7);
        let generation = Generation::new(image.as_slice());
        let buffer = packet_bytes(&bytes);
        let packet = Packet::new(&buffer, bytes.len().min(PACKET_BYTES)).expect("fits");
        let mut name = [0u8; NAME_BYTES];
        for message in [0, 2] {
            if let Ok(question) = dns::question(&packet, message, false, &mut name, &Plain) {
                prop_assert!(question.name_len <= 253);
            }
            let _ = dns::walk_response(&generation, &packet, message, &mut name, &Plain, |_, name, _| {
                assert!(name.len <= 253);
            });
        }
        let _ = dns::tcp_messages(&packet, &Plain, |_| Ok(true));
        if let Ok(Some(len)) = tls::server_name(&packet, &mut name, &Plain) {
            prop_assert!(len <= 253);
        }
    }
}

/// Compression pointers that loop, or point forward, end the read: each
/// pointer must lead before the part of the name it was found in.
#[test]
fn pointer_loops_are_malformed() {
    let mut message = vec![0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
    message.extend([0xc0, 12, 0, 1, 0, 1]);
    let mut forward = message[..12].to_vec();
    forward.extend([1, b'a', 0xc0, 16, 0, 0, 1, b'b', 0]);
    let mut backward_loop = message[..12].to_vec();
    // "a" then a pointer back to "a": a pointer may not lead to the part
    // that holds it.
    backward_loop.extend([1, b'a', 0xc0, 12]);
    for bytes in [message, forward, backward_loop] {
        let buffer = packet_bytes(&bytes);
        let packet = Packet::new(&buffer, bytes.len()).unwrap();
        let mut name = [0u8; NAME_BYTES];
        assert_eq!(
            dns::read_name(&packet, 0, 12, &mut name, &Plain),
            Err(enforcer_common::packet::Malformed),
            "{bytes:?}"
        );
    }
}
