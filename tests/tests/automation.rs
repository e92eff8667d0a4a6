//! What configuration management (Ansible, Salt) needs from the CLI: an
//! apply that tells whether it changed anything, and one JSON object from
//! each policy command, errors included. The rules name 127.0.4.100 and
//! 127.0.4.101, which nothing connects to.

use enforcer_integration_tests::{
    cgroup::TestCgroup,
    command::{assert_exit_code, enforcer, run},
    daemon::Daemon,
};
use serde_json::Value;

const FIRST: &str = r#"
version = 1
[[block]]
name = "automation-first"
cidrs = ["127.0.4.100/32"]
"#;

const SECOND: &str = r#"
version = 1
[[block]]
name = "automation-second"
cidrs = ["127.0.4.101/32"]
"#;

/// Runs `enforcer ARGS... --json` and returns its exit code and its one
/// JSON object.
fn json(daemon: &Daemon, args: &[&str], file: Option<&std::path::Path>) -> (i32, Value) {
    let mut command = enforcer(args);
    command.arg("--json").arg("--socket").arg(daemon.socket());
    if let Some(file) = file {
        command.arg(file);
    }
    let output = run(&mut command);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value = serde_json::from_str(stdout.trim()).unwrap_or_else(|error| {
        panic!(
            "{args:?}: not one JSON object ({error}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), value)
}

#[test]
fn an_identical_apply_changes_nothing_and_says_so() {
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, FIRST);
    // The file the daemon was started with, as it was given.
    let started_with = daemon.dir().path().join("policy.toml");
    let (code, same) = json(&daemon, &["policy", "apply"], Some(&started_with));
    assert_eq!(
        (code, &same["changed"], &same["generation"]),
        (0, &false.into(), &1.into()),
        "{same}"
    );
    assert_eq!(
        daemon.status_json()["generation"],
        1,
        "nothing was switched"
    );

    let second = daemon.dir().write("second.toml", SECOND);
    let (code, changed) = json(&daemon, &["policy", "apply"], Some(&second));
    assert_eq!(
        (code, &changed["changed"], &changed["generation"]),
        (0, &true.into(), &2.into()),
        "{changed}"
    );
    assert_eq!(
        changed["diff"]["added"][0]["name"], "automation-second",
        "{changed}"
    );
    let (_, again) = json(&daemon, &["policy", "apply"], Some(&second));
    assert_eq!(
        (&again["changed"], &again["generation"]),
        (&false.into(), &2.into()),
        "{again}"
    );

    // The same rules from another file are another policy: its hash names
    // the files.
    let copy = daemon.dir().write("copy.toml", SECOND);
    let (_, copied) = json(&daemon, &["policy", "apply"], Some(&copy));
    assert_eq!(copied["changed"], true, "{copied}");

    let (code, rolled_back) = json(&daemon, &["policy", "rollback"], None);
    assert_eq!(
        (code, &rolled_back["changed"]),
        (0, &true.into()),
        "{rolled_back}"
    );
}

#[test]
fn policy_errors_come_as_json_with_their_positions() {
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&cgroup, FIRST);
    let bad = daemon.dir().write(
        "bad.toml",
        "version = 1\n[[block]]\nname = \"x\"\ncidrs = [\"10.0.0.1/8\"]\n",
    );
    let (code, refused) = json(&daemon, &["policy", "apply"], Some(&bad));
    assert_eq!(code, 1);
    assert_eq!(refused["valid"], false, "{refused}");
    assert_eq!(refused["errors"][0]["line"], 4, "{refused}");
    assert_eq!(refused["errors"][0]["column"], 10, "{refused}");
    assert_eq!(
        refused["errors"][0]["message"],
        "host bits set in 10.0.0.1/8; did you mean 10.0.0.0/8?"
    );
    assert_eq!(daemon.status_json()["generation"], 1, "nothing was applied");

    let output = run(enforcer(["policy", "check", "--json"]).arg(&bad));
    assert_exit_code(&output, 1, "policy check --json of a bad file");
    let checked: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(checked["errors"], refused["errors"]);
    let good = daemon.dir().write("good.toml", SECOND);
    let output = run(enforcer(["policy", "check", "--json"]).arg(&good));
    assert_exit_code(&output, 0, "policy check --json of a good file");
    let checked: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        checked,
        serde_json::json!({"valid": true, "rules": 1, "files": 1, "warnings": []})
    );
}
