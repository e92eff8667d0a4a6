//! Keeping the learned-address map within its bounds: the kernel never
//! evicts (see `enforcer_common::learned`), so the owner deletes what has
//! expired, which gives each owner the room back, and reports
//! when addresses could not be stored.

use std::{
    thread,
    time::{Duration, Instant},
};

use tokio::sync::mpsc;

use super::state::{Command, LearnedUpkeep, Owner};
use crate::{
    events::{Event, EventBody, LearnedOwner},
    kernel::learned::{LearnedMaps, now_boot_ns},
};
use enforcer_common::learned::{SHARED_OWNER, SHARED_QUOTA};

/// How often expired entries are deleted: an owner at its quota gets room
/// back this long after its entries expire, at most.
const SWEEP_PERIOD: Duration = Duration::from_secs(5);

/// Addresses that could not be stored are reported at most this often.
const FULL_REPORT_PERIOD: Duration = Duration::from_secs(60);

impl LearnedUpkeep {
    pub(super) fn new(maps: LearnedMaps) -> Self {
        Self {
            maps,
            unstored_reported: 0,
            reported_at: None,
        }
    }
}

/// Asks the owner for a sweep every [`SWEEP_PERIOD`], until the daemon
/// stops.
pub(super) fn sweep_periodically(commands: mpsc::WeakSender<Command>) {
    let ticker = move || {
        loop {
            thread::sleep(SWEEP_PERIOD);
            let Some(commands) = commands.upgrade() else {
                return;
            };
            // A full queue means the owner is busy: the next tick asks again.
            if let Err(mpsc::error::TrySendError::Closed(_)) =
                commands.try_send(Command::SweepLearned)
            {
                return;
            }
        }
    };
    if let Err(error) = thread::Builder::new()
        .name("enforcer-sweep".into())
        .spawn(ticker)
    {
        log::error!("learned addresses will not expire until a restart: {error}");
    }
}

impl Owner {
    pub(super) fn sweep_learned(&mut self) {
        let quota = u64::from(self.live.policy.options.learned_per_user);
        let unstored = self
            .counters
            .totals()
            .map(|totals| totals.learned_unstored)
            .unwrap_or_default();
        let Some(upkeep) = &mut self.learned else {
            return;
        };
        let sweep = upkeep.maps.sweep(now_boot_ns());
        let due = upkeep
            .reported_at
            .is_none_or(|at| at.elapsed() >= FULL_REPORT_PERIOD);
        if unstored <= upkeep.unstored_reported || !due {
            return;
        }
        let full = sweep
            .live
            .iter()
            .filter_map(|(&owner, &entries)| {
                let (uid, quota) = if owner == SHARED_OWNER {
                    (None, SHARED_QUOTA)
                } else {
                    (Some(owner), quota)
                };
                (entries >= quota).then_some(LearnedOwner {
                    uid,
                    entries,
                    quota,
                })
            })
            .collect();
        self.hub.publish(&Event::now(EventBody::LearnedFull {
            unstored: unstored - upkeep.unstored_reported,
            full,
        }));
        upkeep.unstored_reported = unstored;
        upkeep.reported_at = Some(Instant::now());
    }
}
