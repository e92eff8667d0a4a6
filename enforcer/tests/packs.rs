//! Keeps the shipped packs true (`cargo xtask packs-check` runs this
//! alone): every pack is valid alone and with the others, every rule says
//! where its data comes from, when, and what it cannot cover, every
//! banned service is decided by a rule of its own, and no pack blocks
//! what must keep working: the approved domestic services, and Teams
//! through the Skype pack.
//!
//! The questions are answered by `policy explain`'s engine, which searches
//! the compiled policy with the kernel programs' own lookups.

use std::{
    fs,
    path::{Path, PathBuf},
};

use enforcer::{
    explain::{Explainer, Verdict},
    policy::{Policy, RuleKind, files_in_dir, load_files},
};

/// The services of the ban list, by the prefix of their rules' names, and
/// targets each must decide.
const SERVICES: &[(&str, &[&str])] = &[
    (
        "telegram",
        &[
            "149.154.167.50:443/tcp",
            "[2001:b28:f23d::a]:443/tcp",
            "web.telegram.org",
            "t.me",
            "telegra.ph",
            "/usr/bin/telegram-desktop",
            "/opt/Telegram/Telegram",
        ],
    ),
    ("whatsapp", &["web.whatsapp.com", "g.whatsapp.net", "wa.me"]),
    ("instagram", &["www.instagram.com", "instagram.com"]),
    ("viber", &["viber.com", "/opt/viber/Viber"]),
    ("signal", &["signal.org", "/opt/Signal/signal-desktop"]),
    ("skype", &["web.skype.com", "/usr/bin/skypeforlinux"]),
    ("zoom", &["zoom.us", "us05web.zoom.us", "/opt/zoom/zoom"]),
    ("webex", &["web.webex.com", "webex.com"]),
    (
        "google-workspace",
        &[
            "docs.google.com",
            "drive.google.com",
            "mail.google.com",
            "gmail.com",
        ],
    ),
    (
        "microsoft-exchange",
        &["outlook.office365.com", "outlook.office.com"],
    ),
    (
        "microsoft-teams",
        &["teams.microsoft.com", "teams.live.com"],
    ),
    ("yahoo-mail", &["mail.yahoo.com"]),
    ("outlook-com", &["outlook.live.com", "hotmail.com"]),
    ("aol", &["mail.aol.com"]),
];

/// The other prefixes a rule of the ban list may have.
const OTHER_PREFIXES: &[&str] = &["browser-channel", "doh"];

/// Names and addresses Microsoft lists for Teams (Microsoft 365 endpoints,
/// service area "Skype", IDs 11, 12 and 127): the Skype pack must leave
/// them alone.
const TEAMS_NEEDS: &[&str] = &[
    "teams.microsoft.com",
    "teams.cloud.microsoft",
    "api.flightproxy.skype.com",
    "join.secure.skypeassets.com",
    "config.teams.skype.com",
    "go.trouter.skype.com",
    "webdir.online.lync.com",
    "52.112.0.1:3478/udp",
    "52.122.0.1:443/tcp",
    "[2603:1063::1]:443/tcp",
];

fn policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

fn ban_files() -> Vec<PathBuf> {
    files_in_dir(&policies().join("ban")).expect("policies/ban has packs")
}

fn profile() -> PathBuf {
    policies().join("profiles/approved-only.toml")
}

fn load(files: &[PathBuf]) -> Policy {
    load_files(files).unwrap_or_else(|errors| panic!("{errors}"))
}

fn explainer(files: &[PathBuf]) -> Explainer {
    Explainer::new(load(files)).expect("the packs compile")
}

/// The verdict on `target` and the name of the rule behind it.
fn decide(explainer: &Explainer, target: &str) -> (Verdict, Option<String>) {
    let explanation = explainer
        .explain(&target.parse().unwrap_or_else(|e| panic!("{target}: {e}")))
        .unwrap();
    let strongest = explanation
        .findings
        .iter()
        .max_by_key(|finding| match finding.verdict {
            Verdict::None => 0,
            Verdict::Audit => 1,
            Verdict::Block => 2,
            Verdict::Allow => 3,
        })
        .expect("one finding at least");
    (
        strongest.verdict,
        strongest.rule.as_ref().map(|rule| rule.name.clone()),
    )
}

#[test]
fn every_pack_is_valid_alone_and_with_the_others() {
    let files = ban_files();
    for file in &files {
        load(std::slice::from_ref(file));
    }
    load(&files);
    let mut with_profile = files.clone();
    with_profile.push(profile());
    load(&with_profile);
    load(&[profile()]);
}

/// Each `[[block]]`/`[[allow]]` header has, right above it, a comment that
/// names a source with its date and says what the rule cannot cover.
#[test]
fn every_rule_names_its_source_its_date_and_what_it_cannot_cover() {
    let mut files = ban_files();
    files.push(profile());
    let mut missing = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            if !matches!(line.trim(), "[[block]]" | "[[allow]]") {
                continue;
            }
            let comment: Vec<&str> = lines[..index]
                .iter()
                .rev()
                .take_while(|line| line.starts_with('#'))
                .copied()
                .collect();
            let dated_source = comment
                .iter()
                .rev()
                .skip_while(|line| !line.starts_with("# Source:"))
                .take_while(|line| line.starts_with("# Source:") || line.starts_with("#   "))
                .any(|line| has_date(line));
            let gaps = comment
                .iter()
                .any(|line| line.starts_with("# Not covered:"));
            if !dated_source || !gaps {
                missing.push(format!(
                    "{}:{}: {}{}",
                    file.display(),
                    index + 1,
                    if dated_source {
                        ""
                    } else {
                        "no `# Source:` with a YYYY-MM-DD date; "
                    },
                    if gaps { "" } else { "no `# Not covered:`" }
                ));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

fn has_date(line: &str) -> bool {
    line.as_bytes().windows(10).any(|w| {
        let digits = |range: std::ops::Range<usize>| w[range].iter().all(u8::is_ascii_digit);
        digits(0..4) && w[4] == b'-' && digits(5..7) && w[7] == b'-' && digits(8..10)
    })
}

#[test]
fn every_rule_is_named_after_its_service() {
    let policy = load(&ban_files());
    let prefixes: Vec<&str> = SERVICES
        .iter()
        .map(|(service, _)| *service)
        .chain(OTHER_PREFIXES.iter().copied())
        .collect();
    for rule in &policy.rules {
        assert!(
            prefixes
                .iter()
                .any(|prefix| rule.name.starts_with(&format!("{prefix}-"))),
            "rule {} ({}:{}) is named after no service of {prefixes:?}",
            rule.name,
            rule.origin.file,
            rule.origin.line
        );
    }
}

#[test]
fn every_banned_service_is_blocked_by_a_rule_of_its_own() {
    let explainer = explainer(&ban_files());
    for (service, targets) in SERVICES {
        for target in *targets {
            let (verdict, rule) = decide(&explainer, target);
            assert!(
                verdict == Verdict::Block
                    && rule
                        .as_deref()
                        .is_some_and(|rule| rule.starts_with(&format!("{service}-"))),
                "{target}: {verdict:?} by {rule:?}, not blocked by a rule of {service}"
            );
        }
    }
}

/// Every name, path and file name a block rule lists is decided by a block
/// rule: no allow, and no more specific entry, takes it away unnoticed.
#[test]
fn every_listed_entry_resolves_to_a_block() {
    let policy = load(&ban_files());
    let explainer = Explainer::new(policy.clone()).unwrap();
    for rule in policy.rules.iter().filter(|r| r.kind == RuleKind::Block) {
        let targets = rule
            .domains
            .iter()
            .map(ToString::to_string)
            .chain(rule.exec_paths.iter().map(|entry| {
                // A directory covers what is below it.
                let path = entry.path.display().to_string();
                if entry.directory {
                    format!("{}/below", path.trim_end_matches('/'))
                } else {
                    path
                }
            }))
            .chain(
                rule.exec_names
                    .iter()
                    .map(|name| format!("/nowhere/{name}")),
            );
        for target in targets {
            let (verdict, by) = decide(&explainer, &target);
            assert_eq!(
                verdict,
                Verdict::Block,
                "{target}, listed by {}, is decided by {by:?}",
                rule.name
            );
        }
    }
}

/// What the approved-only profile allows by name, no pack blocks; with
/// the profile, each is allowed.
#[test]
fn no_pack_blocks_an_approved_service() {
    let bans = explainer(&ban_files());
    let profile_policy = load(&[profile()]);
    let mut with_profile = ban_files();
    with_profile.push(profile());
    let together = explainer(&with_profile);
    let approved: Vec<String> = profile_policy
        .rules
        .iter()
        .filter(|rule| rule.kind == RuleKind::Allow && rule.name.starts_with("approved-"))
        .flat_map(|rule| rule.domains.iter().map(ToString::to_string))
        .collect();
    assert!(!approved.is_empty(), "the profile allows services by name");
    for name in &approved {
        assert_eq!(decide(&bans, name).0, Verdict::None, "{name}");
        assert_eq!(decide(&together, name).0, Verdict::Allow, "{name}");
        assert_eq!(
            decide(&bans, &format!("www.{name}")).0,
            Verdict::None,
            "www.{name}"
        );
    }
}

/// Consumer Skype is banned on its own; Teams calls through names under
/// skype.com and through the Skype service area's ranges, so the Skype
/// pack must leave them to the Teams pack.
#[test]
fn the_skype_pack_leaves_teams_to_the_teams_pack() {
    let skype = explainer(&[policies().join("ban/skype.toml")]);
    let all = explainer(&ban_files());
    for target in TEAMS_NEEDS {
        assert_eq!(
            decide(&skype, target),
            (Verdict::None, None),
            "the Skype pack decides {target}"
        );
        let (verdict, rule) = decide(&all, target);
        assert!(
            verdict == Verdict::Block
                && rule
                    .as_deref()
                    .is_some_and(|rule| rule.starts_with("microsoft-teams-")),
            "{target}: {verdict:?} by {rule:?}; Teams is banned too, by its own pack"
        );
    }
}

/// The profile alone: Telegram's networks, and anything not approved, are
/// refused by its catch-all.
#[test]
fn the_approved_only_profile_refuses_what_it_does_not_approve() {
    let profile = explainer(&[profile()]);
    for target in [
        "149.154.167.50:443/tcp",
        "8.8.8.8:53/udp",
        "[2a03:2880::1]:443/tcp",
    ] {
        assert_eq!(
            decide(&profile, target),
            (
                Verdict::Block,
                Some("approved-only-everything-else".to_owned())
            ),
            "{target}"
        );
    }
}
