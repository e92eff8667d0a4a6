//! `enforcer events`: the daemon's events as JSON lines, optionally only
//! those of some kinds, some rules, or since a time. The daemon sends
//! every event; the filter reads each line's `kind`, `rule` and `ts`.

use std::{io::Write as _, path::Path, process::ExitCode, time::SystemTime};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;

use crate::control::{Client, Request, Response};

/// Which events to print; each given flag must match.
#[derive(Args, Debug, Default, Clone)]
pub struct EventFilter {
    /// Only events of this kind (repeatable): connect, sendmsg, exec, dns,
    /// sni, learned, policy_applied, degraded, ...
    #[arg(long = "kind")]
    pub kinds: Vec<String>,
    /// Only events this rule decided (repeatable).
    #[arg(long = "rule")]
    pub rules: Vec<String>,
    /// Only events at or after this time: RFC 3339 (`2026-12-08T10:00:00Z`)
    /// or a span before now (`15m`, `2h`, `1day`).
    #[arg(long, value_parser = parse_since)]
    pub since: Option<SystemTime>,
}

fn parse_since(text: &str) -> Result<SystemTime, String> {
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return Ok(time);
    }
    let span = humantime::parse_duration(text).map_err(|_| {
        format!("{text:?} is neither an RFC 3339 time nor a span such as 15m or 2h")
    })?;
    SystemTime::now()
        .checked_sub(span)
        .ok_or_else(|| format!("{text:?} reaches before 1970"))
}

impl EventFilter {
    fn is_empty(&self) -> bool {
        self.kinds.is_empty() && self.rules.is_empty() && self.since.is_none()
    }

    /// Whether the event `line` passes. A line that is not an event
    /// object passes only an empty filter: nothing in it can match.
    pub fn passes(&self, line: &str) -> bool {
        if self.is_empty() {
            return true;
        }
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            return false;
        };
        let field = |name: &str| event.get(name).and_then(Value::as_str);
        let listed = |wanted: &[String], value: Option<&str>| {
            wanted.is_empty() || value.is_some_and(|value| wanted.iter().any(|w| w == value))
        };
        let recent = match self.since {
            None => true,
            Some(since) => field("ts")
                .and_then(|ts| humantime::parse_rfc3339(ts).ok())
                .is_some_and(|ts| ts >= since),
        };
        listed(&self.kinds, field("kind")) && listed(&self.rules, field("rule")) && recent
    }
}

pub async fn events(follow: bool, filter: &EventFilter, socket: &Path) -> Result<ExitCode> {
    let mut client = Client::request(socket, &Request::Events { follow }).await?;
    // Buffered, and flushed whenever the next line has yet to arrive: a
    // line per write could not keep up with a storm.
    let mut out = std::io::BufWriter::new(std::io::stdout());
    loop {
        if !client.has_buffered() {
            out.flush().context("writing events")?;
        }
        match client.receive().await? {
            Response::Event { line } if filter.passes(&line) => {
                writeln!(out, "{line}").context("writing events")?;
            }
            Response::Event { .. } => {}
            Response::Lagged { skipped } => {
                out.flush().context("writing events")?;
                eprintln!("enforcer: fell behind and missed {skipped} events")
            }
            Response::EndOfEvents => {
                out.flush().context("writing events")?;
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(other.unexpected().into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const CONNECT: &str = r#"{"ts":"2026-12-08T10:00:00.123456Z","kind":"connect","verdict":"blocked","rule":"telegram-addresses"}"#;
    const EXEC: &str = r#"{"ts":"2026-12-08T11:00:00Z","kind":"exec","verdict":"blocked","rule":"telegram-clients"}"#;
    const READY: &str = r#"{"ts":"2026-12-08T09:00:00Z","kind":"ready","generation":1}"#;

    fn filter(kinds: &[&str], rules: &[&str], since: Option<&str>) -> EventFilter {
        EventFilter {
            kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
            rules: rules.iter().map(|r| (*r).to_owned()).collect(),
            since: since.map(|text| parse_since(text).unwrap()),
        }
    }

    fn passing(filter: &EventFilter) -> Vec<&'static str> {
        [CONNECT, EXEC, READY]
            .into_iter()
            .filter(|line| filter.passes(line))
            .collect()
    }

    #[test]
    fn each_flag_narrows_and_all_must_match() {
        assert_eq!(passing(&EventFilter::default()), [CONNECT, EXEC, READY]);
        assert_eq!(
            passing(&filter(&["exec", "ready"], &[], None)),
            [EXEC, READY]
        );
        assert_eq!(
            passing(&filter(&[], &["telegram-addresses"], None)),
            [CONNECT]
        );
        assert_eq!(
            passing(&filter(&["exec"], &["telegram-addresses"], None)),
            Vec::<&str>::new()
        );
        assert_eq!(
            passing(&filter(&[], &[], Some("2026-12-08T10:00:00Z"))),
            [CONNECT, EXEC],
            "microseconds after the second count as after it"
        );
        assert!(!filter(&["exec"], &[], None).passes("not json"));
    }

    #[test]
    fn since_takes_a_time_or_a_span_before_now() {
        let since = parse_since("15m").unwrap();
        let expected = SystemTime::now() - Duration::from_secs(15 * 60);
        let gap = expected
            .duration_since(since)
            .unwrap_or_else(|e| e.duration());
        assert!(gap < Duration::from_secs(5), "{gap:?}");
        assert_eq!(
            parse_since("yesterday").unwrap_err(),
            r#""yesterday" is neither an RFC 3339 time nor a span such as 15m or 2h"#
        );
    }
}
