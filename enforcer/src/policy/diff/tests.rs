use super::*;
use crate::policy::load::parse;
use crate::policy::source::Source;

fn policy(text: &str) -> Policy {
    parse(&[Source {
        name: "p.toml".into(),
        text: text.into(),
    }])
    .unwrap()
}

#[test]
fn reports_added_removed_changed_and_unchanged_rules() {
    let old = policy(
        r#"
version = 1
[[block]]
name = "telegram"
cidrs = ["149.154.160.0/20", "91.108.4.0/22"]
[[block]]
name = "skype"
cidrs = ["52.112.0.0/14"]
[[allow]]
name = "relay"
cidrs = ["149.154.167.99/32"]
"#,
    );
    let new = policy(
        r#"
version = 1
[[allow]]
name = "relay"
cidrs = ["149.154.167.99/32"]
[[block]]
name = "telegram"
ports = ["443"]
cidrs = ["149.154.160.0/20", "91.108.8.0/22"]
[[block]]
name = "zoom"
cidrs = ["3.7.35.0/25"]
"#,
    );
    let diff = PolicyDiff::between(&old, &new);
    assert_eq!(
        diff.added
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["zoom"]
    );
    assert_eq!(
        diff.removed
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["skype"]
    );
    assert_eq!(diff.unchanged, 1, "moving a rule changes nothing");
    let [telegram] = diff.changed.as_slice() else {
        panic!("{diff:?}")
    };
    assert_eq!(telegram.entries("cidrs", "added"), ["91.108.8.0/22"]);
    assert_eq!(telegram.entries("cidrs", "removed"), ["91.108.4.0/22"]);
    assert_eq!(telegram.settings, [r#"ports: None -> Some(["443"])"#]);
    let text = diff.to_string();
    assert!(text.contains("+ zoom (block enforce, 1 CIDR"), "{text}");
    assert!(text.contains("~ telegram: +1 CIDRs, -1 CIDRs"), "{text}");
}

#[test]
fn reports_exec_changes() {
    let hash = "AB".repeat(32);
    let old = policy(&format!(
        r#"
version = 1
[[block]]
name = "telegram"
cidrs = ["149.154.160.0/20"]
exec_paths = ["/opt/Telegram/Telegram"]
exec_names = ["telegram-desktop"]
[[allow]]
name = "updater"
exec_paths = ["/opt/Telegram/updater"]
[[block]]
name = "hashes"
exec_sha256 = ["{hash}"]
"#
    ));
    let new = policy(
        r#"
version = 1
[[block]]
name = "telegram"
cidrs = ["149.154.160.0/20"]
exec_paths = ["/opt/Telegram/", "/opt/Telegram/Telegram"]
exec_sha256 = ["0000000000000000000000000000000000000000000000000000000000000000"]
[[allow]]
name = "updater"
exec_paths = ["/opt/Telegram/updater"]
[[block]]
name = "names"
exec_names = ["Telegram", "telegram-desktop"]
"#,
    );
    let diff = PolicyDiff::between(&old, &new);
    assert_eq!(diff.unchanged, 1);
    let [added] = diff.added.as_slice() else {
        panic!("{diff:?}")
    };
    assert_eq!((added.count("cidrs"), added.count("exec_names")), (0, 2));
    let [removed] = diff.removed.as_slice() else {
        panic!("{diff:?}")
    };
    assert_eq!(
        (removed.count("exec_paths"), removed.count("exec_sha256")),
        (0, 1)
    );
    let [telegram] = diff.changed.as_slice() else {
        panic!("{diff:?}")
    };
    assert!(
        telegram.entries("cidrs", "added").is_empty()
            && telegram.entries("cidrs", "removed").is_empty()
    );
    assert_eq!(
        telegram.entries("exec", "added"),
        [
            "path /opt/Telegram/",
            "sha256 0000000000000000000000000000000000000000000000000000000000000000",
        ]
    );
    assert_eq!(
        telegram.entries("exec", "removed"),
        ["name telegram-desktop"]
    );
    assert!(telegram.settings.is_empty(), "{:?}", telegram.settings);

    let text = diff.to_string();
    assert!(
        text.contains("+ names (block enforce, 2 exec names)\n"),
        "{text}"
    );
    assert!(
        text.contains("- hashes (block enforce, 1 exec hash)\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "~ telegram: +0 CIDRs, -0 CIDRs, +2 exec, -1 exec\n    + path /opt/Telegram/\n"
        ),
        "{text}"
    );
    assert!(text.contains("    - name telegram-desktop\n"), "{text}");
}

#[test]
fn reports_domain_changes() {
    let old = policy(
        r#"
version = 1
[[block]]
name = "telegram"
domains = ["telegram.org", "t.me"]
exec_names = ["telegram-desktop"]
[[allow]]
name = "mirror"
domains = ["corp-mirror.telegram.org"]
"#,
    );
    let new = policy(
        r#"
version = 1
[[block]]
name = "telegram"
domains = ["Telegram.org.", "telegram.me"]
exec_names = ["telegram-desktop"]
[[allow]]
name = "mirror"
domains = ["corp-mirror.telegram.org"]
[[block]]
name = "whatsapp"
domains = ["whatsapp.com", "whatsapp.net"]
"#,
    );
    let diff = PolicyDiff::between(&old, &new);
    assert_eq!(diff.unchanged, 1);
    let [telegram] = diff.changed.as_slice() else {
        panic!("{diff:?}")
    };
    assert_eq!(telegram.entries("domains", "added"), ["telegram.me"]);
    assert_eq!(telegram.entries("domains", "removed"), ["t.me"]);
    assert!(
        telegram.entries("cidrs", "added").is_empty()
            && telegram.entries("exec", "added").is_empty()
    );
    assert!(telegram.settings.is_empty(), "{:?}", telegram.settings);
    assert_eq!(
        diff.to_string(),
        "+ whatsapp (block enforce, 2 domains)\n\
         ~ telegram: +0 CIDRs, -0 CIDRs, +1 domains, -1 domains\n    \
         + telegram.me\n    \
         - t.me\n\
         1 rule unchanged\n"
    );

    // A diff from a daemon that predates domains still reads.
    let json = r#"{"added":[{"name":"a","kind":"block","mode":"enforce","cidrs":1,
        "ports":null,"protocols":null,"exec_paths":0,"exec_names":0,"exec_sha256":0}],
        "removed":[],"changed":[{"name":"b","cidrs_added":["10.0.0.0/8"],
        "cidrs_removed":[],"exec_added":[],"exec_removed":[],"settings":[]}],
        "unchanged":0}"#;
    let old_diff: PolicyDiff = serde_json::from_str(json).unwrap();
    assert_eq!(old_diff.added[0].count("domains"), 0);
    assert!(old_diff.changed[0].entries("domains", "added").is_empty());
}

#[test]
fn summary_of_a_rule_with_networks_and_executables() {
    let policy = policy(
        r#"
version = 1
[[block]]
name = "t"
cidrs = ["10.0.0.0/8"]
ports = [443]
exec_paths = ["/opt/t/"]
"#,
    );
    assert_eq!(
        RuleSummary::of(&policy.rules[0]).to_string(),
        "t (block enforce, 1 CIDR, ports 443, protocols all, 1 exec path)"
    );
}

#[test]
fn summary_of_a_rule_with_domains() {
    let policy = policy(
        r#"
version = 1
[[block]]
name = "d"
domains = ["telegram.org"]
exec_paths = ["/opt/t/"]
[[block]]
name = "n"
cidrs = ["10.0.0.0/8"]
domains = ["telegram.org", "t.me"]
"#,
    );
    assert_eq!(
        RuleSummary::of(&policy.rules[0]).to_string(),
        "d (block enforce, 1 domain, 1 exec path)"
    );
    assert_eq!(
        RuleSummary::of(&policy.rules[1]).to_string(),
        "n (block enforce, 1 CIDR, ports all, protocols all, 2 domains)"
    );
}

#[test]
fn a_switch_turned_off_shows_in_the_summary_and_the_change() {
    let rule = |switch: &str| {
        policy(&format!(
            "version = 1\n[[block]]\nname = \"docs\"\ndomains = [\"docs.google.com\"]\n{switch}"
        ))
    };
    let (old, new) = (rule(""), rule("learn_addresses = false\n"));
    assert_eq!(
        RuleSummary::of(&old.rules[0]).to_string(),
        "docs (block enforce, 1 domain)"
    );
    assert_eq!(
        RuleSummary::of(&new.rules[0]).to_string(),
        "docs (block enforce, 1 domain, learn_addresses off)"
    );
    let diff = PolicyDiff::between(&old, &new);
    assert_eq!(diff.changed.len(), 1, "{diff:?}");
    assert_eq!(diff.changed[0].settings, ["learn_addresses: true -> false"]);
    // Written out as on, a switch is the same rule as without it.
    let diff = PolicyDiff::between(&old, &rule("sni = true\n"));
    assert!(diff.changed.is_empty(), "{diff:?}");
}

#[test]
fn reports_option_changes() {
    let rule = "[[block]]\nname = \"a\"\ncidrs = [\"10.0.0.0/8\"]\n";
    let old = policy(&format!(
        "version = 1\n[options]\nexec_hash_strict = true\nexec_block_loader = false\n{rule}"
    ));
    let new = policy(&format!(
        "version = 1\n[options]\nexec_block_anonymous = true\nexec_block_loader = false\n{rule}"
    ));
    let diff = PolicyDiff::between(&old, &new);
    assert!(!diff.is_empty());
    assert_eq!(
        diff.options_changed,
        [
            "exec_block_anonymous: false -> true",
            "exec_hash_strict: true -> false",
        ]
    );
    assert_eq!(diff.unchanged, 1);
    assert_eq!(
        diff.to_string(),
        "~ option exec_block_anonymous: false -> true\n\
         ~ option exec_hash_strict: true -> false\n\
         1 rule unchanged\n"
    );
    assert!(PolicyDiff::between(&new, &new).options_changed.is_empty());

    // A diff from a daemon that predates options still reads.
    let json = r#"{"added":[],"removed":[],"changed":[],"unchanged":2}"#;
    let old_diff: PolicyDiff = serde_json::from_str(json).unwrap();
    assert!(old_diff.is_empty() && old_diff.options_changed.is_empty());
}

#[test]
fn reports_dns_option_changes() {
    let old = policy("version = 1\n");
    let new =
        policy("version = 1\n[options]\ndns_ttl_min_seconds = 60\ndns_block_queries = false\n");
    assert_eq!(
        PolicyDiff::between(&old, &new).options_changed,
        [
            "dns_block_queries: true -> false",
            "dns_ttl_min_seconds: 300 -> 60"
        ]
    );
}

#[test]
fn summaries_and_changes_keep_their_wire_fields() {
    let old = policy("version = 1\n[[block]]\nname = \"a\"\ncidrs = [\"10.0.0.0/8\"]\n");
    let new = policy(
        "version = 1\n[[block]]\nname = \"a\"\nmode = \"audit\"\ncidrs = [\"10.0.0.0/8\"]\n\
         ports = [443]\nexec_names = [\"x\"]\n",
    );
    let summary = serde_json::to_value(RuleSummary::of(&new.rules[0])).unwrap();
    assert_eq!(
        summary,
        serde_json::json!({"name": "a", "kind": "block", "mode": "audit", "cidrs": 1,
            "domains": 0, "ports": ["443"], "protocols": null, "exec_paths": 0,
            "exec_names": 1, "exec_sha256": 0})
    );
    let diff = PolicyDiff::between(&old, &new);
    let change = serde_json::to_value(&diff.changed[0]).unwrap();
    assert_eq!(
        change,
        serde_json::json!({"name": "a", "cidrs_added": [], "cidrs_removed": [],
            "domains_added": [], "domains_removed": [], "exec_added": ["name x"],
            "exec_removed": [], "settings": ["mode: enforce -> audit",
            r#"ports: None -> Some(["443"])"#]})
    );
    let back: PolicyDiff = serde_json::from_value(serde_json::to_value(&diff).unwrap()).unwrap();
    assert_eq!(back, diff);
}

#[test]
fn the_same_policy_changes_nothing() {
    let text = "version = 1\n[[block]]\nname = \"a\"\ncidrs = [\"10.0.0.0/8\"]\n";
    let diff = PolicyDiff::between(&policy(text), &policy(text));
    assert!(diff.is_empty());
    assert_eq!(diff.to_string(), "no rule changed (1 unchanged)\n");
}
