//! Domain names: the most specific listed domain, found as the packet
//! programs find it in a DNS question or a TLS server name.

use enforcer_common::{
    decision::Action,
    domain::{NAME_BYTES, Name},
    lookup::{Fault, Generation},
    repeat::Plain,
};

use super::{
    report::{Finding, RuleRef},
    subject::Subject,
};
use crate::policy::{Domain, RuleKind};

pub(super) fn explain(
    subject: &Subject<'_>,
    domain: &Domain,
) -> Result<(Vec<Finding>, Vec<String>), Fault> {
    let text = domain.as_str();
    let mut bytes = [0u8; NAME_BYTES];
    bytes[..text.len()].copy_from_slice(text.as_bytes());
    let generation = Generation::new(subject.image);
    let found = generation.domain(
        &Name {
            bytes: &bytes,
            len: text.len(),
        },
        &Plain,
    )?;
    let listed = &text[found.start() as usize..];
    let decision = found.decision;
    let because = if listed == text {
        format!("{listed} is listed")
    } else {
        format!("{listed} is listed, and covers its subdomains")
    };
    let finding = subject.finding(None, decision, because);
    let mut notes = Vec::new();
    match decision.action() {
        Action::Block | Action::Audit => {
            let options = &subject.policy.options;
            let mut acts = Vec::new();
            if options.dns_block_queries {
                acts.push("DNS queries for it are dropped");
            }
            if found.learns_addresses() {
                acts.push("the addresses answers give for it are refused");
            } else {
                acts.push("its addresses are not refused (learn_addresses = false)");
            }
            if found.judges_server_name() {
                acts.push("a TLS ClientHello naming it is dropped");
            }
            notes.push(acts.join("; "));
        }
        Action::Allow => notes
            .push("the addresses answers give for it to a system resolver are allowed".to_owned()),
        Action::None => {}
    }
    // Other rules that list the name or one of its parents, and lose to
    // the most specific entry or to an allow of the same entry.
    for (index, rule) in subject.policy.rules.iter().enumerate() {
        if finding.rule.is_some() && index as u32 == decision.rule() {
            continue;
        }
        for listed_there in &rule.domains {
            let name = listed_there.as_str();
            let covers = text == name || text.ends_with(&format!(".{name}"));
            if !covers {
                continue;
            }
            let kind = match rule.kind {
                RuleKind::Allow => "allows",
                RuleKind::Block => "blocks",
            };
            let why = if name.len() < listed.len() {
                "a more specific listed name decides"
            } else {
                "another rule listing the same name decides (an allow wins, then the first block)"
            };
            notes.push(format!(
                "rule {} also {kind} {name}, but {why}",
                RuleRef::of(rule)
            ));
        }
    }
    Ok((vec![finding], notes))
}
