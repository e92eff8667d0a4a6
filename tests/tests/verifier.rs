//! The regression guard on verifier work: every program of the object
//! must load on this kernel within half the verifier's limit of a million
//! processed instructions, so that the next kernel's verifier, which may
//! need more work for the same code, still accepts it.

use std::time::Duration;

use enforcer_integration_tests::command::{enforcer, run_within};
use serde_json::Value;

/// The verifier takes seconds over the largest programs, and more on an
/// emulated CPU.
fn probe_timeout() -> Duration {
    enforcer_integration_tests::timeouts::command_timeout() * 4
}

#[test]
fn every_program_stays_within_half_the_verifier_limit() {
    let output = run_within(&mut enforcer(["probe", "--json"]), probe_timeout());
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!("enforcer probe --json printed no JSON ({error}): {output:?}")
    });
    let budget = report["budget"].as_u64().expect("a budget");
    assert_eq!(budget, 500_000);
    let programs = report["programs"].as_array().expect("a program list");
    assert!(
        programs.iter().any(|program| program["name"] == "connect4"),
        "{report}"
    );
    let failing: Vec<String> = programs
        .iter()
        .filter_map(|program| {
            let name = program["name"].as_str().unwrap_or("?");
            if program["too_large"] == true {
                return Some(format!(
                    "{name}: refused as too large: {}",
                    program["error"]
                ));
            }
            let count = program["verified_insns"].as_u64()?;
            (count > budget).then(|| format!("{name}: {count} verified instructions"))
        })
        .collect();
    assert!(
        failing.is_empty(),
        "over the budget of {budget} on kernel {}:\n  {}",
        report["kernel"],
        failing.join("\n  ")
    );
    assert!(
        output.status.success(),
        "enforcer probe exited {} with every program within budget",
        output.status
    );
}
