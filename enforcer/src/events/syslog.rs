//! Events to the system log: each event line as one message on the local
//! syslog socket (`/dev/log`, which journald also serves), for fleets that
//! collect logs centrally.
//!
//! Messages use the local form of RFC 3164, `<PRI>TAG[PID]: MESSAGE`,
//! with the JSON line as the message, facility `authpriv`, and a
//! severity from the event: alert for an attempt on the enforcer itself,
//! warning for a refusal, notice for an audit, info for everything else.

use std::{
    io::{self, Write},
    os::unix::net::UnixDatagram,
    path::Path,
};

const FACILITY_AUTHPRIV: u8 = 10;
const SEVERITY_ALERT: u8 = 1;
const SEVERITY_WARNING: u8 = 4;
const SEVERITY_NOTICE: u8 = 5;
const SEVERITY_INFO: u8 = 6;

/// A writer that sends what it was given since the last flush as one
/// message: the event hub writes a line and flushes, once per event.
pub(crate) struct SyslogWriter {
    socket: UnixDatagram,
    line: Vec<u8>,
}

impl SyslogWriter {
    pub(crate) fn connect(path: &Path) -> io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        Ok(Self {
            socket,
            line: Vec::new(),
        })
    }
}

impl Write for SyslogWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
        }
        if self.line.is_empty() {
            return Ok(());
        }
        let message = message(&self.line, std::process::id());
        self.line.clear();
        self.socket.send(&message).map(drop)
    }
}

fn message(line: &[u8], pid: u32) -> Vec<u8> {
    let severity = if contains(line, br#""kind":"tamper""#) {
        SEVERITY_ALERT
    } else if contains(line, br#""verdict":"blocked""#) {
        SEVERITY_WARNING
    } else if contains(line, br#""verdict":"audit""#) {
        SEVERITY_NOTICE
    } else {
        SEVERITY_INFO
    };
    let mut message =
        format!("<{}>enforcer[{pid}]: ", FACILITY_AUTHPRIV * 8 + severity).into_bytes();
    message.extend_from_slice(line);
    message
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_follows_the_verdict() {
        let blocked = message(br#"{"kind":"connect","verdict":"blocked"}"#, 7);
        assert!(blocked.starts_with(b"<84>enforcer[7]: {"));
        assert!(message(br#"{"verdict":"audit"}"#, 7).starts_with(b"<85>"));
        assert!(message(br#"{"kind":"ready"}"#, 7).starts_with(b"<86>"));
        assert!(message(br#"{"kind":"tamper"}"#, 7).starts_with(b"<81>"));
    }

    #[test]
    fn each_flush_sends_one_message_without_the_newline() {
        let (receiver, sender) = UnixDatagram::pair().unwrap();
        let mut writer = SyslogWriter {
            socket: sender,
            line: Vec::new(),
        };
        writer.write_all(br#"{"kind":"ready"}"#).unwrap();
        writeln!(writer).unwrap();
        writer.flush().unwrap();
        let mut buffer = [0u8; 256];
        let received = receiver.recv(&mut buffer).unwrap();
        let text = std::str::from_utf8(&buffer[..received]).unwrap();
        assert!(text.ends_with(r#": {"kind":"ready"}"#), "{text}");
    }
}
