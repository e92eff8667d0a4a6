//! How long the harness waits for the daemon, its events and the probes.

use std::{env, time::Duration};

/// How long the daemon may take to print its ready line.
pub fn ready_timeout() -> Duration {
    scaled(20)
}
/// How long an event may take to show up on the daemon's stdout.
pub fn event_timeout() -> Duration {
    scaled(10)
}
/// How long the daemon may take to exit after SIGTERM.
pub fn stop_timeout() -> Duration {
    scaled(10)
}
/// How long a CLI command or a probe may take.
pub fn command_timeout() -> Duration {
    scaled(30)
}

/// `seconds`, times `ENFORCER_TEST_TIME_SCALE` when that is set: on an
/// emulated CPU (`cargo xtask vm-test`) everything takes several times as
/// long, and the verifier most of all.
fn scaled(seconds: u64) -> Duration {
    let scale = env::var("ENFORCER_TEST_TIME_SCALE")
        .ok()
        .and_then(|scale| scale.parse::<u64>().ok())
        .filter(|&scale| scale > 0)
        .unwrap_or(1);
    Duration::from_secs(seconds * scale)
}
