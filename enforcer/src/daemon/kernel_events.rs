//! The task that drains the kernel's event ring into the hub.

use std::sync::Arc;

use aya::maps::{MapData, RingBuf};
use tokio::io::{Interest, unix::AsyncFd};

use crate::events::{decode, hub::EventHub, rules::RuleBook};

/// Events published together: enough to write a storm in few syscalls,
/// few enough that none waits long for its batch.
const EVENT_BATCH: usize = 256;

pub(super) async fn read_kernel_events(
    ring: RingBuf<MapData>,
    rules: Arc<RuleBook>,
    hub: Arc<EventHub>,
) {
    // SAFETY: the ring buffer owns its map fd and keeps it open, unchanged,
    // for as long as it lives, which is as long as the AsyncFd.
    let registered = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) };
    let mut ring = match registered {
        Ok(ring) => ring,
        Err(error) => {
            log::error!("cannot watch the events ring buffer: {error}");
            return;
        }
    };
    let mut parents = decode::Parents::default();
    let mut batch = Vec::with_capacity(EVENT_BATCH);
    loop {
        let mut ready = match ring.readable_mut().await {
            Ok(ready) => ready,
            Err(error) => {
                log::error!("events ring buffer: {error}");
                return;
            }
        };
        let records = ready.get_inner_mut();
        while let Some(record) = records.next() {
            match decode::decode(&record, &rules, &mut parents) {
                Ok(event) => batch.push(event),
                Err(error) => log::warn!("skipped an event: {error}"),
            }
            if batch.len() == EVENT_BATCH {
                hub.publish_all(&batch);
                batch.clear();
            }
        }
        hub.publish_all(&batch);
        batch.clear();
        ready.clear_ready();
    }
}
