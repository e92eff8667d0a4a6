//! Taking over from the daemons that ran before, through their pins (see
//! `crate::kernel::pins`).
//!
//! Before this daemon compiles its first generation it reads where the
//! earlier instance's generations had got to, and its domain seed, so that
//! generation numbers go on rising and addresses it learned stay valid.
//! Once this daemon's programs are attached beside the earlier ones, it
//! drains the events they left in their ring buffer, copies their learned
//! addresses, and removes their pins, which detaches them. At no point is
//! the cgroup without programs.

use std::path::Path;

use aya::maps::{ArrayOfMaps, Map, MapData, RingBuf};
use enforcer_common::{
    image::{MAGIC, header},
    names::{MAP_EVENTS, MAP_GENERATION, MAP_GENERATION_SIZED},
};

use crate::{
    events::{TakeoverReport, decode, hub::EventHub, rules::RuleBook},
    kernel::{
        learned::LearnedMaps,
        pins::{self, Earlier},
    },
};

/// What the earlier instances' generations had reached.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reached {
    /// The highest generation number in force in any of them.
    pub generation: u64,
    /// The domain seed of that generation's image.
    pub domain_seed: Option<u64>,
}

pub fn reached(earlier: &[Earlier]) -> Reached {
    let mut reached = Reached::default();
    for instance in earlier.iter().filter(|e| e.is_current_layout()) {
        let Some((generation, seed)) = image_header(instance) else {
            continue;
        };
        if generation >= reached.generation {
            reached = Reached {
                generation,
                domain_seed: Some(seed),
            };
        }
    }
    reached
}

/// The live image's generation number and domain seed, if the instance's
/// slots hold an image this build wrote. The sized slot is read first, as
/// the hooks read it; an instance older than that slot has none.
fn image_header(instance: &Earlier) -> Option<(u64, u64)> {
    [MAP_GENERATION_SIZED, MAP_GENERATION]
        .into_iter()
        .find_map(|slot| slot_image_header(instance, slot))
}

fn slot_image_header(instance: &Earlier, slot: &str) -> Option<(u64, u64)> {
    let outer = MapData::from_pin(instance.map_path(slot)).ok()?;
    let outer: ArrayOfMaps<MapData, MapData> =
        ArrayOfMaps::try_from(Map::ArrayOfMaps(outer)).ok()?;
    let image = outer.get(&0, 0).ok()?;
    let image: aya::maps::Array<MapData, u64> =
        aya::maps::Array::try_from(Map::Array(image)).ok()?;
    let word = |index: u32| image.get(&index, 0).ok();
    (word(header::MAGIC)? == MAGIC)
        .then(|| Some((word(header::GENERATION)?, word(header::DOMAIN_SEED)?)))
        .flatten()
}

/// Drains, copies and detaches the earlier instances. `own_instance` is
/// this daemon's own pin directory.
pub fn finish(earlier: &[Earlier], own_instance: &Path, hub: &EventHub) -> TakeoverReport {
    let mut report = TakeoverReport::default();
    // Recovered events name their rules by index: the names of the
    // earlier generations went with the daemon that had them.
    let names = RuleBook::default();
    for instance in earlier {
        if instance.is_current_layout() {
            report.instances += 1;
            report.events_recovered += drain_events(instance, &names, hub, &mut report.problems);
            report.addresses_kept += copy_learned(instance, own_instance, &mut report.problems);
        } else {
            report
                .other_layouts
                .push(instance.path.display().to_string());
        }
        match pins::remove_instance(&instance.path) {
            Ok(removed) => report.pins_removed += removed,
            Err(error) => report.problems.push(error.to_string()),
        }
    }
    report
}

fn drain_events(
    instance: &Earlier,
    names: &RuleBook,
    hub: &EventHub,
    problems: &mut Vec<String>,
) -> usize {
    let events = MapData::from_pin(instance.map_path(MAP_EVENTS))
        .map_err(|error| error.to_string())
        .and_then(|map| RingBuf::try_from(Map::RingBuf(map)).map_err(|error| error.to_string()));
    let mut events = match events {
        Ok(events) => events,
        Err(error) => {
            problems.push(format!("{}: events: {error}", instance.path.display()));
            return 0;
        }
    };
    let mut drained = 0;
    let mut processes = decode::ProcessCache::default();
    while let Some(record) = events.next() {
        match decode::decode(&record, names, &mut processes) {
            Ok(event) => {
                hub.publish(&event);
                drained += 1;
            }
            Err(error) => problems.push(format!("a recovered event: {error}")),
        }
    }
    drained
}

fn copy_learned(instance: &Earlier, learned: &Path, problems: &mut Vec<String>) -> usize {
    let maps =
        LearnedMaps::open(&instance.path).and_then(|old| Ok((old, LearnedMaps::open(learned)?)));
    match maps {
        Ok((old, mut new)) => new.copy_from(&old),
        Err(error) => {
            problems.push(format!("{}: {error}", instance.path.display()));
            0
        }
    }
}
