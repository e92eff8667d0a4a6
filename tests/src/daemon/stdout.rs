//! The lines a daemon, or an `enforcer events --follow`, prints on stdout,
//! collected on a thread of their own so a test can wait for an event.

use std::{
    io::{BufRead, BufReader, Read},
    process::Child,
    sync::{Arc, Condvar, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// The daemon's stdout, line by line, as its reader thread sees it.
#[derive(Default)]
struct Stdout {
    lines: Vec<String>,
    closed: bool,
}

#[derive(Default)]
pub(super) struct StdoutLog {
    state: Mutex<Stdout>,
    changed: Condvar,
}

impl StdoutLog {
    /// Collects the lines of `pipe` on a thread of their own.
    pub(super) fn collect(pipe: impl Read + Send + 'static) -> Arc<Self> {
        let log = Arc::new(Self::default());
        let writer = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                writer.state.lock().unwrap().lines.push(line);
                writer.changed.notify_all();
            }
            writer.state.lock().unwrap().closed = true;
            writer.changed.notify_all();
        });
        log
    }

    /// The first line from the `skip`th on that parses as JSON satisfying
    /// `predicate`, waiting up to `timeout` for it.
    pub(super) fn wait_for_event(
        &self,
        skip: usize,
        predicate: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Value> {
        self.wait_for(timeout, |lines| {
            lines
                .iter()
                .skip(skip)
                .map(|line| parse_event(line))
                .find(|event| predicate(event))
        })
    }

    /// Waits until `found` returns `Some` for the lines so far, the stream
    /// closes, or `timeout` passes.
    pub(super) fn wait_for<T>(
        &self,
        timeout: Duration,
        mut found: impl FnMut(&[String]) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap();
        loop {
            if let Some(result) = found(&state.lines) {
                return Some(result);
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                return None;
            }
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
    }

    pub(super) fn lines(&self) -> Vec<String> {
        self.state.lock().unwrap().lines.clone()
    }
}

/// A running `enforcer events --follow`, killed on drop.
pub struct EventFollower {
    child: Child,
    stdout: Arc<StdoutLog>,
}

impl EventFollower {
    /// Collects the events `child` (an `enforcer events --follow` with
    /// piped stdout) prints until the follower is dropped.
    pub(super) fn new(mut child: Child) -> Self {
        let stdout = StdoutLog::collect(child.stdout.take().expect("piped stdout"));
        Self { child, stdout }
    }

    /// The first event line that satisfies `predicate`, waiting up to
    /// `timeout` for it.
    pub fn wait_for_event(
        &self,
        predicate: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Value> {
        self.stdout.wait_for_event(0, predicate, timeout)
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.stdout.lines()
    }
}

impl Drop for EventFollower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn parse_event(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|error| {
        panic!("the daemon printed a stdout line that is not JSON ({error}): {line}")
    })
}
