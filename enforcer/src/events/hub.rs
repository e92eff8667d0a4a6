//! Fans events out: to the daemon's outputs (stdout, the events file), to a
//! short history for `enforcer events`, and to followers.

use std::{
    collections::VecDeque,
    io::Write,
    sync::{Arc, Mutex},
};

use tokio::sync::broadcast;

use serde::Serialize;

use super::{EventFormat, ecs, event::Event};

/// The version of the events' JSON shape, in every event: a consumer can
/// tell a change of it from a new field.
const SCHEMA_VERSION: u32 = 1;

/// Lines kept for `enforcer events` without `--follow`.
const HISTORY: usize = 1024;
/// Lines a slow follower may fall behind before it is told it missed some.
/// At 4096, a follower printing a storm of 100k events a second fell that
/// far behind now and then. The channel keeps its last lines until they
/// are overwritten: after a storm, some 6 MB of them.
const FOLLOWER_BACKLOG: usize = 16384;

pub struct EventHub {
    state: Mutex<HubState>,
    followers: broadcast::Sender<Arc<str>>,
}

struct HubState {
    history: VecDeque<Arc<str>>,
    outputs: Vec<Output>,
    stamp: Stamp,
}

/// What each published event is stamped with, for a SIEM that gathers a
/// fleet's events: where it comes from and an id no other event has.
struct Stamp {
    host: String,
    /// Random per daemon, so that ids stay unique across restarts and
    /// machines; the sequence number follows it.
    instance: String,
    next: u64,
}

impl Stamp {
    fn new() -> Self {
        let instance = crate::host::random::bytes::<8>()
            .map(|bytes| bytes.iter().map(|b| format!("{b:02x}")).collect())
            .unwrap_or_else(|_| format!("pid{}", std::process::id()));
        Self {
            host: host_name(),
            instance,
            next: 0,
        }
    }
}

/// The machine's host name, as `uname -n` gives it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

/// An event as it is published.
#[derive(Serialize)]
struct Stamped<'a> {
    #[serde(flatten)]
    event: &'a Event,
    schema_version: u32,
    id: String,
    host: &'a str,
}

pub struct Output {
    name: String,
    writer: Box<dyn Write + Send>,
    format: EventFormat,
    failed: bool,
}

impl Output {
    /// `writer` is flushed after each batch of events; a buffered one
    /// takes a batch in one write.
    pub fn new(name: impl Into<String>, writer: impl Write + Send + 'static) -> Self {
        Self {
            name: name.into(),
            writer: Box::new(writer),
            format: EventFormat::Json,
            failed: false,
        }
    }

    /// This output in `format`.
    pub fn in_format(self, format: EventFormat) -> Self {
        Self { format, ..self }
    }

    fn check(&mut self, result: std::io::Result<()>) {
        if let Err(error) = result
            && !self.failed
        {
            // Said once: a closed stdout must not flood stderr.
            log::error!("cannot write events to {}: {error}", self.name);
            self.failed = true;
        }
    }
}

impl EventHub {
    pub fn new(outputs: Vec<Output>) -> Self {
        let (followers, _) = broadcast::channel(FOLLOWER_BACKLOG);
        Self {
            state: Mutex::new(HubState {
                history: VecDeque::new(),
                outputs,
                stamp: Stamp::new(),
            }),
            followers,
        }
    }

    pub fn publish(&self, event: &Event) {
        self.publish_all(std::slice::from_ref(event));
    }

    /// Publishes `events` in order, and flushes the outputs once, after
    /// the last: under a storm of verdicts, a write per event per output
    /// cost more than everything else the daemon does for it.
    pub fn publish_all(&self, events: &[Event]) {
        let mut state = self.state.lock().expect("event hub lock");
        let HubState {
            history,
            outputs,
            stamp,
        } = &mut *state;
        for event in events {
            let stamped = Stamped {
                event,
                schema_version: SCHEMA_VERSION,
                id: format!("{}-{}", stamp.instance, stamp.next),
                host: &stamp.host,
            };
            stamp.next += 1;
            let line: Arc<str> = serde_json::to_string(&stamped)
                .expect("events serialize to JSON")
                .into();
            // Mapped once per event, and only when an output wants it.
            let mut ecs_line = None;
            for output in outputs.iter_mut() {
                let written = match output.format {
                    EventFormat::Json => writeln!(output.writer, "{line}"),
                    EventFormat::Ecs => {
                        let mapped = ecs_line.get_or_insert_with(|| {
                            let native =
                                serde_json::to_value(&stamped).expect("events serialize to JSON");
                            ecs::to_ecs(&native).to_string()
                        });
                        writeln!(output.writer, "{mapped}")
                    }
                };
                output.check(written);
            }
            if history.len() == HISTORY {
                history.pop_front();
            }
            history.push_back(line.clone());
            // No followers is not an error.
            let _ = self.followers.send(line);
        }
        for output in outputs.iter_mut() {
            let flushed = output.writer.flush();
            output.check(flushed);
        }
    }

    /// The history so far and a receiver for everything after it, taken
    /// together so that nothing is missed or seen twice.
    pub fn subscribe(&self) -> (Vec<Arc<str>>, broadcast::Receiver<Arc<str>>) {
        let state = self.state.lock().expect("event hub lock");
        (
            state.history.iter().cloned().collect(),
            self.followers.subscribe(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventBody;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn shutdown(reason: &str) -> Event {
        Event::now(EventBody::Shutdown {
            reason: reason.into(),
        })
    }

    #[test]
    fn writes_lines_keeps_history_and_feeds_followers() {
        let sink = Shared::default();
        let hub = EventHub::new(vec![Output::new("test", sink.clone())]);
        hub.publish(&shutdown("one"));
        let (history, mut follower) = hub.subscribe();
        hub.publish(&shutdown("two"));

        assert_eq!(history.len(), 1);
        assert!(history[0].contains("\"one\""));
        assert!(follower.try_recv().unwrap().contains("\"two\""));
        assert!(follower.try_recv().is_err(), "nothing seen twice");
        let written = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(written.lines().count(), 2);
    }

    #[test]
    fn a_batch_reaches_a_buffered_output_in_order_when_it_ends() {
        let sink = Shared::default();
        let hub = EventHub::new(vec![Output::new(
            "test",
            std::io::BufWriter::new(sink.clone()),
        )]);
        let batch: Vec<Event> = (0..3).map(|n| shutdown(&n.to_string())).collect();
        hub.publish_all(&batch);
        let written = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let reasons: Vec<_> = written
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["reason"].clone())
            .collect();
        assert_eq!(reasons, ["0", "1", "2"]);
    }

    #[test]
    fn every_event_carries_the_schema_the_host_and_an_id_of_its_own() {
        let hub = EventHub::new(Vec::new());
        hub.publish_all(&[shutdown("one"), shutdown("two")]);
        let (history, _) = hub.subscribe();
        let events: Vec<serde_json::Value> = history
            .iter()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        for event in &events {
            assert_eq!(event["schema_version"], SCHEMA_VERSION, "{event}");
            assert_eq!(event["host"], host_name(), "{event}");
            assert_eq!(event["kind"], "shutdown", "{event}");
        }
        assert!(!host_name().is_empty());
        assert_ne!(events[0]["id"], events[1]["id"]);
        let other = EventHub::new(Vec::new());
        other.publish(&shutdown("three"));
        let (history, _) = other.subscribe();
        let third: serde_json::Value = serde_json::from_str(&history[0]).unwrap();
        assert_ne!(third["id"], events[0]["id"], "another daemon's ids differ");
    }

    #[test]
    fn history_is_bounded() {
        let hub = EventHub::new(Vec::new());
        for n in 0..HISTORY + 5 {
            hub.publish(&shutdown(&n.to_string()));
        }
        let (history, _) = hub.subscribe();
        assert_eq!(history.len(), HISTORY);
        assert!(history[0].contains("\"5\""));
    }
}
