//! Elastic Common Schema: with `--event-format ecs` the daemon writes each
//! event as ECS fields, so that a SIEM takes them without a parser of its
//! own. The mapping reads the native event, the one `enforcer events`
//! prints, and keeps it whole under `enforcer`: the two never disagree,
//! and nothing is lost that ECS has no field for.

use serde_json::{Map, Value, json};

/// The ECS version the field names follow.
pub(crate) const ECS_VERSION: &str = "8.11.0";

/// The ECS document for a native event.
pub(crate) fn to_ecs(native: &Value) -> Value {
    let text = |key: &str| native.get(key).and_then(Value::as_str);
    let kind = text("kind").unwrap_or_default();
    let verdict = text("verdict");
    let (category, types) = classify(kind, verdict);
    let mut event = json!({
        "kind": if kind == "tamper" { "alert" } else { "event" },
        "category": [category],
        "type": types,
        "action": kind,
        "module": "enforcer",
        "dataset": "enforcer.events",
    });
    put(&mut event, "id", native.get("id"));
    if let Some(outcome) = match verdict {
        Some("blocked") => Some("failure"),
        Some("audit") => Some("success"),
        _ => None,
    } {
        put(&mut event, "outcome", Some(&json!(outcome)));
    }
    let mut ecs = json!({
        "@timestamp": native.get("ts"),
        "ecs": { "version": ECS_VERSION },
        "event": event,
        "message": message(native, kind),
        "enforcer": native,
    });
    put_at(&mut ecs, &["host", "name"], native.get("host"));
    put_at(&mut ecs, &["rule", "name"], native.get("rule"));
    process(&mut ecs, native, kind);
    network(&mut ecs, native, kind);
    if kind == "exec" {
        put_at(&mut ecs, &["file", "path"], native.get("path"));
        let inode = native.get("ino").map(|ino| json!(ino.to_string()));
        put_at(&mut ecs, &["file", "inode"], inode.as_ref());
        put_at(&mut ecs, &["file", "hash", "sha256"], native.get("sha256"));
    }
    ecs
}

/// `event.category` and `event.type` of a native kind.
fn classify(kind: &str, verdict: Option<&str>) -> (&'static str, Vec<&'static str>) {
    let decided = match verdict {
        Some("blocked") => Some("denied"),
        Some("audit") => Some("allowed"),
        _ => None,
    };
    let with = |first: &'static str| std::iter::once(first).chain(decided).collect();
    match kind {
        "connect" | "sendmsg" => ("network", with("connection")),
        "dns" | "sni" => ("network", with("protocol")),
        "learned" => ("network", vec!["info"]),
        "exec" => ("process", with("start")),
        "tamper" => ("intrusion_detection", vec!["denied"]),
        "policy_refused" => ("configuration", vec!["denied"]),
        "policy_applied"
        | "unloaded"
        | "takeover"
        | "exec_paths_resolved"
        | "exec_content_found" => ("configuration", vec!["change"]),
        _ => ("configuration", vec!["info"]),
    }
}

fn process(ecs: &mut Value, native: &Value, kind: &str) {
    if native.get("pid").and_then(Value::as_u64).unwrap_or(0) == 0 {
        return;
    }
    put_at(ecs, &["process", "pid"], native.get("pid"));
    put_at(ecs, &["process", "parent", "pid"], native.get("ppid"));
    put_at(ecs, &["process", "thread", "id"], native.get("tid"));
    put_at(ecs, &["process", "name"], native.get("comm"));
    // An exec event's process is the one the judged file was to become.
    let executable = if kind == "exec" { "path" } else { "exe" };
    put_at(ecs, &["process", "executable"], native.get(executable));
    let id = |key: &str| native.get(key).map(|id| json!(id.to_string()));
    put_at(ecs, &["user", "id"], id("uid").as_ref());
    put_at(ecs, &["group", "id"], id("gid").as_ref());
}

fn network(ecs: &mut Value, native: &Value, kind: &str) {
    let Some(daddr) = native.get("daddr").and_then(Value::as_str) else {
        return;
    };
    put_at(ecs, &["destination", "ip"], Some(&json!(daddr)));
    put_at(ecs, &["destination", "port"], native.get("dport"));
    put_at(ecs, &["destination", "domain"], native.get("domain"));
    put_at(ecs, &["source", "ip"], native.get("saddr"));
    put_at(ecs, &["source", "port"], native.get("sport"));
    put_at(ecs, &["network", "transport"], native.get("proto"));
    let family = if daddr.contains(':') { "ipv6" } else { "ipv4" };
    put_at(ecs, &["network", "type"], Some(&json!(family)));
    match kind {
        "dns" => {
            put_at(ecs, &["dns", "question", "name"], native.get("name"));
            put_at(ecs, &["dns", "question", "type"], native.get("qtype"));
        }
        "sni" => put_at(ecs, &["tls", "client", "server_name"], native.get("name")),
        _ => {}
    }
}

/// A line a person can read.
fn message(native: &Value, kind: &str) -> String {
    let field = |key: &str| match native.get(key) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => "?".to_owned(),
        Some(other) => other.to_string(),
    };
    let by = format!("by rule {}", field("rule"));
    let who = format!("{} (pid {})", field("comm"), field("pid"));
    match kind {
        "connect" | "sendmsg" => format!(
            "{} {kind} to {}:{}/{} {by}, from {who}",
            field("verdict"),
            field("daddr"),
            field("dport"),
            field("proto")
        ),
        "dns" | "sni" | "learned" => {
            format!("{} {kind} for {} {by}", field("verdict"), field("name"))
        }
        "exec" => format!(
            "{} exec of {} {by}, from {who}",
            field("verdict"),
            field("path")
        ),
        _ => kind.replace('_', " "),
    }
}

/// Sets `key` of the object `target` to `value`, when there is one.
fn put(target: &mut Value, key: &str, value: Option<&Value>) {
    if let (Some(value), Value::Object(map)) = (value.filter(|v| !v.is_null()), target) {
        map.insert(key.to_owned(), value.clone());
    }
}

/// Sets the nested field `path` of `target` to `value`, when there is
/// one, making the objects on the way.
fn put_at(target: &mut Value, path: &[&str], value: Option<&Value>) {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return;
    };
    let (last, parents) = path.split_last().expect("a field has a name");
    let mut object = target;
    for parent in parents {
        let Value::Object(map) = object else { return };
        object = map
            .entry((*parent).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    put(object, last, Some(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connect_maps_to_ecs_network_fields() {
        let native = json!({
            "ts": "2026-12-08T10:00:00.123456Z", "kind": "connect", "verdict": "blocked",
            "rule": "telegram-addresses", "pid": 15075, "ppid": 14482,
            "exe": "/opt/Telegram/Telegram", "tid": 15076, "uid": 1000, "gid": 1000,
            "comm": "Telegram", "cgroup_id": 63, "daddr": "149.154.167.50", "dport": 443,
            "proto": "tcp", "hook": "connect4", "generation": 3,
            "schema_version": 1, "id": "5f0c2a9e41d7b388-17", "host": "ws-0412"
        });
        let ecs = to_ecs(&native);
        assert_eq!(
            ecs,
            json!({
                "@timestamp": "2026-12-08T10:00:00.123456Z",
                "ecs": { "version": ECS_VERSION },
                "event": {
                    "kind": "event", "category": ["network"], "type": ["connection", "denied"],
                    "action": "connect", "module": "enforcer", "dataset": "enforcer.events",
                    "id": "5f0c2a9e41d7b388-17", "outcome": "failure"
                },
                "message": "blocked connect to 149.154.167.50:443/tcp by rule telegram-addresses, \
                            from Telegram (pid 15075)",
                "enforcer": native,
                "host": { "name": "ws-0412" },
                "rule": { "name": "telegram-addresses" },
                "process": {
                    "pid": 15075, "parent": { "pid": 14482 }, "thread": { "id": 15076 },
                    "name": "Telegram", "executable": "/opt/Telegram/Telegram"
                },
                "user": { "id": "1000" },
                "group": { "id": "1000" },
                "destination": { "ip": "149.154.167.50", "port": 443 },
                "network": { "transport": "tcp", "type": "ipv4" }
            })
        );
    }

    #[test]
    fn names_execs_and_state_changes_take_their_own_fields() {
        let sni = to_ecs(&json!({
            "kind": "sni", "verdict": "audit", "rule": "r", "domain": "t.me", "name": "web.t.me",
            "pid": 7, "daddr": "2001:db8::1", "dport": 443, "proto": "tcp",
            "saddr": "2001:db8::2", "sport": 50000
        }));
        assert_eq!(sni["event"]["type"], json!(["protocol", "allowed"]));
        assert_eq!(sni["event"]["outcome"], "success");
        assert_eq!(sni["tls"]["client"]["server_name"], "web.t.me");
        assert_eq!(sni["destination"]["domain"], "t.me");
        assert_eq!(sni["network"]["type"], "ipv6");
        assert_eq!(sni["source"], json!({ "ip": "2001:db8::2", "port": 50000 }));

        let answer = to_ecs(&json!({
            "kind": "dns", "verdict": "blocked", "rule": "r", "name": "t.me", "qtype": "A",
            "pid": 0, "uid": 0, "daddr": "10.0.0.53", "dport": 53, "proto": "udp"
        }));
        assert_eq!(
            answer["dns"]["question"],
            json!({ "name": "t.me", "type": "A" })
        );
        assert!(answer.get("process").is_none(), "an answer has no process");

        let exec = to_ecs(&json!({
            "kind": "exec", "verdict": "blocked", "rule": "c", "pid": 9, "exe": null,
            "path": "/opt/Telegram/Telegram", "ino": 1234, "sha256": null
        }));
        assert_eq!(exec["event"]["category"], json!(["process"]));
        assert_eq!(exec["process"]["executable"], "/opt/Telegram/Telegram");
        assert_eq!(
            exec["file"],
            json!({ "path": "/opt/Telegram/Telegram", "inode": "1234" })
        );

        let applied = to_ecs(&json!({ "kind": "policy_applied", "generation": 2 }));
        assert_eq!(applied["event"]["type"], json!(["change"]));
        assert!(applied["event"].get("outcome").is_none());
        assert_eq!(applied["message"], "policy applied");
        assert_eq!(
            to_ecs(&json!({ "kind": "tamper", "pid": 5 }))["event"]["kind"],
            "alert"
        );
    }
}
