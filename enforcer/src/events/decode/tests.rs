//! Kernel records decoded as the daemon decodes them.

use enforcer_common::event::FAMILY_V6;

use super::*;

fn record<B: RecordBody>(body: B) -> Vec<u8> {
    let record = Record {
        header: B::HEADER,
        body,
    };
    // SAFETY: records are plain data without padding.
    unsafe {
        std::slice::from_raw_parts(
            (&record as *const Record<B>).cast::<u8>(),
            size_of::<Record<B>>(),
        )
    }
    .to_vec()
}

fn sample() -> NetEvent {
    let mut comm = [0u8; 16];
    comm[..7].copy_from_slice(b"curl  x");
    let mut daddr = [0u8; 16];
    daddr[..4].copy_from_slice(&[149, 154, 167, 99]);
    NetEvent {
        boot_ns: 0,
        cgroup_id: 7,
        generation: 3,
        rule: 1,
        pid: u32::MAX,
        tid: 11,
        uid: 1000,
        gid: 1000,
        verdict: Action::Block as u32,
        daddr,
        dport: 443,
        hook: Hook::Connect4 as u8,
        family: FAMILY_V4,
        protocol: IPPROTO_TCP,
        source: Source::Cidr as u8,
        _reserved: [0; 2],
        comm,
        domain_slot: 0,
        _reserved2: 0,
    }
}

#[test]
fn decodes_a_blocked_connect_with_the_rule_name() {
    let rules = RuleBook::default();
    rules.insert(
        3,
        vec!["zoom".into(), "telegram".into()],
        Default::default(),
    );
    let event = decode(&record(sample()), &rules, &mut ProcessCache::default()).unwrap();
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["kind"], "connect");
    assert_eq!(json["verdict"], "blocked");
    let EventBody::Connect(net) = event.body else {
        panic!("not a connect: {event:?}")
    };
    assert_eq!(net.verdict, Verdict::Blocked);
    assert_eq!(net.rule, "telegram");
    assert_eq!(net.daddr, "149.154.167.99");
    assert_eq!(net.dport, 443);
    assert_eq!(net.proto, "tcp");
    assert_eq!(net.process.comm, "curl  x");
    assert_eq!(net.hook, "connect4");
    assert_eq!(net.process.ppid, None, "no process has pid u32::MAX");
}

#[test]
fn decodes_an_audited_ipv6_datagram() {
    let mut raw = sample();
    raw.hook = Hook::Sendmsg6 as u8;
    raw.family = FAMILY_V6;
    raw.daddr = "2001:b28:f23d::1".parse::<Ipv6Addr>().unwrap().octets();
    raw.protocol = IPPROTO_UDP;
    raw.verdict = Action::Audit as u32;
    let event = decode(
        &record(raw),
        &RuleBook::default(),
        &mut ProcessCache::default(),
    )
    .unwrap();
    let EventBody::Sendmsg(net) = event.body else {
        panic!("not a sendmsg: {event:?}")
    };
    assert_eq!(net.verdict, Verdict::Audit);
    assert_eq!(net.daddr, "2001:b28:f23d::1");
    assert_eq!(net.proto, "udp");
    assert_eq!(net.rule, "#1 (generation 3)");
}

fn server_name(verdict: Action) -> DomainEvent {
    let mut name = [0u8; enforcer_common::domain::NAME_BYTES];
    name[..16].copy_from_slice(b"web.whatsapp.com");
    let mut daddr = [0u8; 16];
    daddr[..4].copy_from_slice(&[157, 240, 1, 53]);
    let mut saddr = [0u8; 16];
    saddr[..4].copy_from_slice(&[10, 0, 0, 7]);
    DomainEvent {
        boot_ns: 0,
        cgroup_id: 7,
        generation: 3,
        rule: 0,
        pid: 0,
        tid: 0,
        uid: 1000,
        gid: 0,
        verdict: verdict as u32,
        daddr,
        dport: 443,
        kind: DomainEventKind::ServerName as u8,
        family: FAMILY_V4,
        protocol: IPPROTO_TCP,
        _reserved: 0,
        qtype: 0,
        ttl: 120,
        name_len: 16,
        domain_start: 4,
        comm: [0; 16],
        socket_cookie: 0x1_0000_0002,
        saddr,
        sport: 40_000,
        _reserved2: [0; 6],
        name,
    }
}

#[test]
fn a_blocked_server_name_names_its_connection_to_end() {
    let rules = RuleBook::default();
    let event = decode(
        &record(server_name(Action::Block)),
        &rules,
        &mut ProcessCache::default(),
    )
    .unwrap();
    let EventBody::Sni(verdict) = &event.body else {
        panic!("not an sni event: {event:?}")
    };
    assert_eq!(verdict.domain, "whatsapp.com");
    assert_eq!(verdict.saddr.as_deref(), Some("10.0.0.7"));
    assert_eq!(verdict.sport, Some(40_000));
    assert_eq!(
        verdict.to_end,
        Some(TcpConnection {
            local: "10.0.0.7:40000".parse().unwrap(),
            remote: "157.240.1.53:443".parse().unwrap(),
            cookie: 0x1_0000_0002,
        })
    );
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["sport"], 40_000);
    assert!(json.get("to_end").is_none(), "internal: {json}");

    let audited = decode(
        &record(server_name(Action::Audit)),
        &rules,
        &mut ProcessCache::default(),
    )
    .unwrap();
    let EventBody::Sni(verdict) = &audited.body else {
        panic!("not an sni event: {audited:?}")
    };
    assert_eq!(verdict.to_end, None, "an audited ClientHello went through");
}

#[test]
fn the_tag_picks_the_decoder() {
    let mut comm = [0u8; 16];
    comm[..4].copy_from_slice(b"kill");
    let tamper = TamperEvent {
        boot_ns: 0,
        cgroup_id: 7,
        target: 42,
        pid: u32::MAX,
        tid: 11,
        uid: 0,
        gid: 0,
        attempt: Attempt::Signal as u32,
        detail: 9,
        comm,
    };
    let event = decode(
        &record(tamper),
        &RuleBook::default(),
        &mut ProcessCache::default(),
    )
    .unwrap();
    let EventBody::Tamper(attempt) = event.body else {
        panic!("not a tamper attempt: {event:?}")
    };
    assert_eq!(attempt.attempt, "signal");
    assert_eq!(attempt.target, 42);
    assert_eq!(attempt.detail, 9);
    assert_eq!(attempt.process.comm, "kill");
}

#[test]
fn rejects_malformed_records() {
    let rules = RuleBook::default();
    assert_eq!(
        decode(&[0; 4], &rules, &mut ProcessCache::default()),
        Err(DecodeError::NoHeader(4))
    );
    assert_eq!(
        decode(&[0; 96], &rules, &mut ProcessCache::default()),
        Err(DecodeError::Tag(0))
    );
    let short = record(sample());
    assert_eq!(
        decode(
            &short[..short.len() - 8],
            &rules,
            &mut ProcessCache::default()
        ),
        Err(DecodeError::Length {
            kind: RecordKind::Net,
            len: short.len() - 8,
            expected: short.len(),
        })
    );
    let mut raw = sample();
    raw.hook = 99;
    assert_eq!(
        decode(&record(raw), &rules, &mut ProcessCache::default()),
        Err(DecodeError::Hook(99))
    );
    let mut raw = sample();
    raw.verdict = Action::Allow as u32;
    assert_eq!(
        decode(&record(raw), &rules, &mut ProcessCache::default()),
        Err(DecodeError::Verdict(1))
    );
}

#[test]
fn remembered_processes_are_bounded_and_correct() {
    let mut processes = ProcessCache::default();
    let me = std::process::id();
    // SAFETY: getppid has no preconditions.
    let parent = u32::try_from(unsafe { libc::getppid() }).ok();
    let exe = std::env::current_exe()
        .ok()
        .map(|path| path.display().to_string());
    let seen = Seen { ppid: parent, exe };
    assert_eq!(processes.of(me), seen);
    // Pids above the kernel's limit never exist: each is a miss.
    for pid in (1u32 << 23)..(1u32 << 23) + PROCESSES_KEPT as u32 * 2 {
        assert_eq!(processes.of(pid), Seen::default());
        assert!(processes.known.len() <= PROCESSES_KEPT);
    }
    assert_eq!(processes.of(me), seen);
}

#[test]
fn reads_the_parent_from_a_stat_line_with_a_tricky_name() {
    assert_eq!(parse_stat_ppid("42 (a) b) c) S 17 42 42 0 -1"), Some(17));
    assert_eq!(parse_stat_ppid("garbage"), None);
}
