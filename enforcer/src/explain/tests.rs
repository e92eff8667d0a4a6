use super::*;
use crate::{
    policy::{Source, parse},
    testutil::ScratchDir,
};

const POLICY: &str = r#"version = 1

[[block]]
name = "telegram-addresses"
cidrs = ["149.154.160.0/20", "2001:b28:f23d::/48"]

[[allow]]
name = "corporate-relay"
cidrs = ["149.154.167.99/32"]

[[block]]
name = "voip"
mode = "audit"
cidrs = ["10.0.0.0/8"]
ports = ["3478-3481", 5222]
protocols = ["udp"]

[[block]]
name = "whatsapp-domains"
domains = ["whatsapp.com", "whatsapp.net"]

[[block]]
name = "google-docs"
domains = ["docs.google.com"]
learn_addresses = false

[[allow]]
name = "corporate-mirror"
domains = ["mirror.whatsapp.com"]

[[block]]
name = "telegram-clients"
exec_paths = ["/usr/bin/telegram-desktop", "/opt/Telegram/"]
exec_names = ["Telegram"]

[[allow]]
name = "corporate-chat"
exec_paths = ["/opt/Telegram/corporate-chat"]
"#;

fn explainer(text: &str) -> Explainer {
    let policy = parse(&[Source {
        name: "p.toml".into(),
        text: text.into(),
    }])
    .unwrap();
    Explainer::new(policy).unwrap()
}

fn explain(target: &str) -> Explanation {
    explainer(POLICY).explain(&target.parse().unwrap()).unwrap()
}

/// (case, verdict, rule name) of each finding.
fn verdicts(explanation: &Explanation) -> Vec<(Option<&str>, Verdict, Option<&str>)> {
    explanation
        .findings
        .iter()
        .map(|finding| {
            (
                finding.case.as_deref(),
                finding.verdict,
                finding.rule.as_ref().map(|rule| rule.name.as_str()),
            )
        })
        .collect()
}

#[test]
fn an_endpoint_is_decided_by_the_rule_whose_network_holds_it() {
    let explanation = explain("149.154.167.50:443/tcp");
    assert_eq!(
        verdicts(&explanation),
        [(None, Verdict::Block, Some("telegram-addresses"))]
    );
    assert_eq!(
        explanation.to_string(),
        "149.154.167.50:443/tcp: blocked by rule telegram-addresses (p.toml:3): \
         149.154.160.0/20 holds the address\n\
         - addresses that DNS answers give for listed names are learned at run time; \
         offline, only the rules' own networks are known\n"
            .replace("\n- ", "\n  - ")
    );
    // IPv4-mapped, as the hooks judge it; and IPv6.
    assert_eq!(
        verdicts(&explain("[::ffff:149.154.167.50]:443/tcp"))[0].2,
        Some("telegram-addresses")
    );
    assert_eq!(
        verdicts(&explain("[2001:b28:f23d::1]:443/udp"))[0].2,
        Some("telegram-addresses")
    );
}

#[test]
fn an_allow_wins_and_the_block_it_beats_is_named() {
    let explanation = explain("149.154.167.99:443/tcp");
    assert_eq!(
        verdicts(&explanation),
        [(None, Verdict::Allow, Some("corporate-relay"))]
    );
    assert!(
        explanation.notes[0].starts_with(
            "rule telegram-addresses (p.toml:3) also lists 149.154.160.0/20, but does not decide"
        ),
        "{:?}",
        explanation.notes
    );
}

#[test]
fn without_a_port_the_port_table_is_shown() {
    assert_eq!(
        verdicts(&explain("10.1.2.3")),
        [
            (Some("tcp, every port"), Verdict::None, None),
            (Some("udp 1-3477"), Verdict::None, None),
            (Some("udp 3478-3481"), Verdict::Audit, Some("voip")),
            (Some("udp 3482-5221"), Verdict::None, None),
            (Some("udp 5222"), Verdict::Audit, Some("voip")),
            (Some("udp 5223-65535"), Verdict::None, None),
            (Some("other protocols, every port"), Verdict::None, None),
        ]
    );
    assert_eq!(
        verdicts(&explain("10.1.2.3:3479")),
        [
            (Some("tcp 3479"), Verdict::None, None),
            (Some("udp 3479"), Verdict::Audit, Some("voip")),
        ]
    );
    assert_eq!(
        explain("10.1.2.3:3479/udp").findings[0].because.as_deref(),
        Some("10.0.0.0/8 holds the address, ports 3478-3481, 5222, udp")
    );
}

#[test]
fn a_name_is_decided_by_its_most_specific_listed_domain() {
    let explanation = explain("web.whatsapp.com");
    assert_eq!(
        verdicts(&explanation),
        [(None, Verdict::Block, Some("whatsapp-domains"))]
    );
    assert_eq!(
        explanation.findings[0].because.as_deref(),
        Some("whatsapp.com is listed, and covers its subdomains")
    );
    assert_eq!(
        explanation.notes,
        [
            "DNS queries for it are dropped; the addresses answers give for it are refused; \
          a TLS ClientHello naming it is dropped"
        ]
    );
    let mirror = explain("a.mirror.whatsapp.com");
    assert_eq!(
        verdicts(&mirror),
        [(None, Verdict::Allow, Some("corporate-mirror"))]
    );
    assert_eq!(
        mirror.notes[1],
        "rule whatsapp-domains (p.toml:18) also blocks whatsapp.com, \
         but a more specific listed name decides"
    );
    assert!(explain("docs.google.com").notes[0].contains("learn_addresses = false"));
    assert_eq!(verdicts(&explain("google.com"))[0].1, Verdict::None);
    assert_eq!(verdicts(&explain("notwhatsapp.com"))[0].1, Verdict::None);
}

#[test]
fn an_executable_is_judged_by_file_then_directories_then_name() {
    let by_path = explain("/usr/bin/telegram-desktop");
    assert_eq!(
        verdicts(&by_path),
        [(None, Verdict::Block, Some("telegram-clients"))]
    );
    assert_eq!(
        by_path.findings[0].because.as_deref(),
        Some("/usr/bin/telegram-desktop is listed")
    );
    let below = explain("/opt/Telegram/bin/Updater");
    assert_eq!(
        below.findings[0].because.as_deref(),
        Some("it is below /opt/Telegram, which is listed")
    );
    let by_name = explain("/home/user/Downloads/Telegram");
    assert_eq!(
        by_name.findings[0].because.as_deref(),
        Some("its file name Telegram is listed")
    );
    // The allow of a file below a banned directory wins.
    assert_eq!(
        verdicts(&explain("/opt/Telegram/corporate-chat")),
        [(None, Verdict::Allow, Some("corporate-chat"))]
    );
    assert_eq!(verdicts(&explain("/usr/bin/true"))[0].1, Verdict::None);
}

#[test]
fn a_file_on_this_host_is_followed_and_judged_by_its_content() {
    let dir = ScratchDir::new("explain-host-file");
    let real = dir.join("real-client");
    std::fs::write(&real, b"#!/bin/sh\necho banned\n").unwrap();
    let link = dir.join("innocent-name");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let real = std::fs::canonicalize(&real).unwrap();
    let digest = {
        use sha2::Digest as _;
        let bytes: [u8; 32] = sha2::Sha256::digest(b"#!/bin/sh\necho banned\n").into();
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let policy = format!(
        "version = 1\n[[block]]\nname = \"by-path\"\nexec_paths = [{real:?}]\n\
         [[block]]\nname = \"by-content\"\nexec_sha256 = [\"{digest}\"]\n"
    );
    let explainer = explainer(&policy);
    let link_target: Target = link.to_str().unwrap().parse().unwrap();
    let explanation = explainer.explain(&link_target).unwrap();
    assert_eq!(
        verdicts(&explanation),
        [(None, Verdict::Block, Some("by-path"))]
    );
    assert!(explanation.notes[0].contains("leads to"), "{explanation}");

    let copy = dir.join("copy");
    std::fs::write(&copy, b"#!/bin/sh\necho banned\n").unwrap();
    let explanation = explainer
        .explain(&copy.to_str().unwrap().parse().unwrap())
        .unwrap();
    assert_eq!(
        verdicts(&explanation),
        [(None, Verdict::Block, Some("by-content"))]
    );
    assert_eq!(
        explanation.findings[0].because.as_deref(),
        Some("its content's SHA-256 is listed")
    );
}

#[test]
fn options_switches_name_their_rule() {
    let explainer = explainer("version = 1\n[options]\nblock_quic = true\n");
    let explanation = explainer
        .explain(&"192.0.2.1:443/udp".parse().unwrap())
        .unwrap();
    assert_eq!(
        explanation.to_string(),
        "192.0.2.1:443/udp: blocked by rule options.block_quic ([options]): \
         0.0.0.0/0 holds the address, ports 443, udp\n"
    );
}
