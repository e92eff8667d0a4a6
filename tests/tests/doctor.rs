//! `enforcer doctor`, the check before a host is enrolled: it must agree
//! with what a daemon then picks on the same kernel, and its exit code
//! must follow its verdict.

use std::os::unix::process::CommandExt as _;

use enforcer_integration_tests::{
    cgroup::TestCgroup, command::enforcer, command::run, daemon::Daemon, privilege::NOBODY,
};
use serde_json::Value;

fn doctor(uid: Option<u32>) -> (i32, Value) {
    let mut command = enforcer(["doctor", "--json"]);
    if let Some(uid) = uid {
        command.uid(uid).gid(uid);
    }
    let output = run(&mut command);
    let diagnosis = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "doctor printed no JSON ({error}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), diagnosis)
}

fn status_of<'a>(diagnosis: &'a Value, check: &str) -> &'a str {
    diagnosis["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["name"] == check)
        .unwrap_or_else(|| panic!("no {check} check in {diagnosis}"))["status"]
        .as_str()
        .unwrap()
}

#[test]
fn doctor_agrees_with_the_daemon_and_exits_by_its_verdict() {
    let (code, diagnosis) = doctor(None);
    let gravest = diagnosis["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|check| match check["status"].as_str().unwrap() {
            "ok" => 0,
            "degraded" => 1,
            _ => 2,
        })
        .max()
        .unwrap();
    let expected = [("ok", 0), ("degraded", 3), ("missing", 1)][gravest];
    assert_eq!(
        (diagnosis["verdict"].as_str().unwrap(), code),
        expected,
        "{diagnosis}"
    );
    for family in ["network", "exec", "domains"] {
        assert_eq!(status_of(&diagnosis, family), "ok", "{diagnosis}");
    }

    // The daemon picks the exec method doctor announced.
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, "version = 1\n");
    let method = daemon.status_json()["exec_enforcement"].clone();
    let announced = if status_of(&diagnosis, "exec_method") == "ok" {
        "lsm"
    } else {
        "signal"
    };
    assert_eq!(method, announced, "{diagnosis}");
    let guarded = daemon.status_json()["self_protection"] == "lsm";
    assert_eq!(
        guarded,
        status_of(&diagnosis, "self_protection") == "ok",
        "{diagnosis}"
    );
}

#[test]
fn doctor_as_a_user_says_the_daemon_would_not_start() {
    let (code, diagnosis) = doctor(Some(NOBODY));
    assert_eq!(code, 1, "{diagnosis}");
    assert_eq!(diagnosis["verdict"], "missing");
    assert_eq!(status_of(&diagnosis, "requirements"), "missing");
    assert_eq!(status_of(&diagnosis, "programs"), "missing");
}
