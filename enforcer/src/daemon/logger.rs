//! The daemon's own diagnostics (not its events) go through the `log`
//! facade to stderr. Under systemd, stderr is a journal stream, and each
//! line starts with its syslog priority in angle brackets, which journald
//! takes as the entry's priority (sd-daemon(3)); elsewhere a line reads
//! `enforcer: message`, as it always has.

use std::{io::Write as _, os::unix::fs::MetadataExt as _};

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLogger {
    journal: bool,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= Level::Info
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        // A diagnostic that cannot be written has nowhere else to go.
        let _ = if self.journal {
            writeln!(stderr, "<{}>{}", priority(record.level()), record.args())
        } else {
            writeln!(stderr, "enforcer: {}", record.args())
        };
    }

    fn flush(&self) {}
}

/// syslog(3) priorities.
fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// systemd names the journal stream it gives a service in
/// `JOURNAL_STREAM` as `DEVICE:INODE`; stderr is that stream only if it is
/// that file (a redirected stderr inherits the variable but not the file).
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stderr) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    stream.to_string_lossy() == format!("{}:{}", stderr.dev(), stderr.ino())
}

/// Installs the logger; a second call changes nothing.
pub fn init_logging() {
    let logger = StderrLogger {
        journal: stderr_is_journal(),
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_warnings_keep_their_syslog_priority() {
        assert_eq!(priority(Level::Error), 3);
        assert_eq!(priority(Level::Warn), 4);
        assert_eq!(priority(Level::Info), 6);
    }

    #[test]
    fn an_inherited_journal_stream_is_not_stderr() {
        // SAFETY: this test's process reads JOURNAL_STREAM only here.
        unsafe { std::env::set_var("JOURNAL_STREAM", "0:0") };
        assert!(!stderr_is_journal());
    }
}
