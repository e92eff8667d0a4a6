//! `enforcer policy check`: exit codes and `FILE:LINE:COL: message` errors.
//! It loads nothing, so these tests need no cgroup.

use enforcer_integration_tests::{
    command::{assert_exit_code, enforcer, run, stderr_lines},
    temp::TempDir,
};

const VALID: &str = r#"version = 1
mode = "enforce"

[[block]]
name = "test-block"
cidrs = ["127.0.0.7/32", "::1/128"]
ports = ["80", "9000-9010"]
protocols = ["tcp"]

[[allow]]
name = "exception"
cidrs = ["127.0.0.8/32"]
"#;

/// Line 6, column 10 is the opening quote of the CIDR.
const HOST_BITS_SET: &str = r#"version = 1

[[block]]
name = "bad"

cidrs = ["10.0.0.1/8"]
"#;

#[test]
fn policy_check_accepts_a_valid_file() {
    let dir = TempDir::new();
    let file = dir.write("valid.toml", VALID);

    let output = run(enforcer(["policy", "check"]).arg(&file));

    assert_exit_code(&output, 0, "policy check of a valid file");
}

#[test]
fn policy_check_reports_an_invalid_file_with_its_position() {
    let dir = TempDir::new();
    let file = dir.write("invalid.toml", HOST_BITS_SET);

    let output = run(enforcer(["policy", "check"]).arg(&file));

    assert_exit_code(&output, 1, "policy check of an invalid file");
    let expected = format!(
        "{}:6:10: host bits set in 10.0.0.1/8; did you mean 10.0.0.0/8?",
        file.display()
    );
    let errors = stderr_lines(&output);
    assert!(
        errors.contains(&expected),
        "expected the line {expected:?} on stderr, got {errors:#?}"
    );
}

#[test]
fn policy_check_reports_every_bad_file_and_only_those() {
    let dir = TempDir::new();
    let valid = dir.write("valid.toml", VALID);
    let invalid = dir.write("invalid.toml", HOST_BITS_SET);
    let missing = dir.path().join("missing.toml");

    let output = run(enforcer(["policy", "check"])
        .arg(&valid)
        .arg(&invalid)
        .arg(&missing));

    assert_exit_code(&output, 1, "policy check of three files");
    let errors = stderr_lines(&output);
    let starts = |prefix: String| errors.iter().any(|line| line.starts_with(&prefix));
    assert!(
        starts(format!("{}:6:10: ", invalid.display())),
        "no error for the invalid file: {errors:#?}"
    );
    assert!(
        starts(format!("{}:0:0: ", missing.display())),
        "no line 0, column 0 error for the missing file: {errors:#?}"
    );
    assert!(
        !errors
            .iter()
            .any(|line| line.starts_with(&valid.display().to_string())),
        "the valid file was reported: {errors:#?}"
    );
}

#[test]
fn policy_check_reads_a_directory_in_name_order_and_names_the_file_at_fault() {
    let dir = TempDir::new();
    dir.write("10-valid.toml", VALID);
    let invalid = dir.write("20-invalid.toml", HOST_BITS_SET);
    dir.write("20-invalid.toml~", "an editor's backup, not read");

    let output = run(enforcer(["policy", "check", "--dir"]).arg(dir.path()));

    assert_exit_code(
        &output,
        1,
        "policy check of a directory with an invalid file",
    );
    let expected = format!(
        "{}:6:10: host bits set in 10.0.0.1/8; did you mean 10.0.0.0/8?",
        invalid.display()
    );
    assert!(
        stderr_lines(&output).contains(&expected),
        "expected {expected:?}: {output:?}"
    );

    std::fs::remove_file(&invalid).unwrap();
    let output = run(enforcer(["policy", "check", "--dir"]).arg(dir.path()));
    assert_exit_code(&output, 0, "policy check of a directory of valid files");
}

#[test]
fn policy_check_of_a_directory_without_policy_files_says_so() {
    let dir = TempDir::new();
    dir.write("notes.txt", "");

    let output = run(enforcer(["policy", "check", "--dir"]).arg(dir.path()));

    assert_exit_code(
        &output,
        1,
        "policy check of a directory without policy files",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "policy directory {}: no *.toml file in it",
            dir.path().display()
        )),
        "{stderr}"
    );
}

/// `/snap/bin/APP` is a link to `/usr/bin/snap`: banning it would ban every
/// snap. `policy check` accepts such a policy and warns, naming both.
#[test]
fn policy_check_warns_of_a_banned_link_to_a_shared_launcher() {
    let dir = TempDir::new();
    let launcher = dir.write("snap", "");
    let app = dir.path().join("telegram-desktop");
    std::os::unix::fs::symlink(&launcher, &app).unwrap();
    let file = dir.write(
        "links.toml",
        &format!(
            "version = 1\n[[block]]\nname = \"telegram\"\nexec_paths = [{:?}]\n",
            app.display().to_string()
        ),
    );

    let output = run(enforcer(["policy", "check"]).arg(&file));

    assert_exit_code(&output, 0, "policy check of a banned link");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let target = std::fs::canonicalize(&launcher).unwrap();
    assert!(
        stderr.contains(&format!(
            "{}:2: warning: rule \"telegram\": {} is a link to {}",
            file.display(),
            app.display(),
            target.display()
        )),
        "{stderr}"
    );
}
