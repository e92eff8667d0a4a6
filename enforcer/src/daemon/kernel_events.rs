//! The task that drains the kernel's event ring into the hub.

use std::sync::Arc;

use aya::maps::{MapData, RingBuf};
use tokio::io::{Interest, unix::AsyncFd};

use crate::{
    events::{Event, EventBody, decode, hub::EventHub, rules::RuleBook},
    host::sock_diag::{Ending, SockDiag},
};

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
    let mut processes = decode::ProcessCache::default();
    let mut sock_diag = SockDiag::open()
        .inspect_err(|error| log::warn!("connections of refused ClientHellos stay open: {error}"))
        .ok();
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
            match decode::decode(&record, &rules, &mut processes) {
                Ok(mut event) => {
                    end_refused_connection(&mut event, sock_diag.as_mut());
                    batch.push(event);
                }
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

/// Resets the connection whose ClientHello was dropped, so that the client
/// fails at once rather than when its own timeout runs out, and says so in
/// the event. A packet program cannot end a connection itself.
fn end_refused_connection(event: &mut Event, sock_diag: Option<&mut SockDiag>) {
    let EventBody::Sni(verdict) = &mut event.body else {
        return;
    };
    let Some(connection) = verdict.to_end.take() else {
        return;
    };
    let ending = match sock_diag.map(|sock_diag| sock_diag.destroy(&connection)) {
        None => Ending::Failed,
        Some(Ok(())) => Ending::Reset,
        Some(Err(error)) => {
            let ending = error.ending();
            if ending == Ending::Failed {
                log::warn!(
                    "cannot reset {} -> {}: {error}",
                    connection.local,
                    connection.remote
                );
            }
            ending
        }
    };
    verdict.connection = Some(ending);
}
