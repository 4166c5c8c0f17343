//! A rollout that may not move: `spec.paused` (the clocks stop, and move on by the time paused
//! once it ends), a gate that holds a version change before it starts, and a maintenance window
//! that closes between two steps.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::view::View;
use super::{RolloutDecision, RolloutInput};
use crate::api::{UpgradePhase, UpgradeStatus};
use crate::controller::gate::Hold;

/// Nothing is applied while paused: keep the recorded rollout and note when its clocks stopped.
/// A version change while paused starts no rollout until the pause ends.
pub(crate) fn hold_while_paused(input: &RolloutInput<'_>) -> RolloutDecision {
    let upgrade = input.recorded.cloned().map(|mut upgrade| {
        let rolling = !matches!(
            upgrade.phase,
            UpgradePhase::Complete | UpgradePhase::Blocked | UpgradePhase::RolledBack
        );
        if rolling && upgrade.paused_at.is_none() {
            upgrade.paused_at = Some(Time(input.now));
        }
        upgrade
    });
    RolloutDecision {
        pins: BTreeMap::new(),
        upgrade,
    }
}

/// The recorded rollout with its clocks moved forward by the time spent paused.
pub(crate) fn resumed(recorded: &UpgradeStatus, now: Timestamp) -> UpgradeStatus {
    let mut upgrade = recorded.clone();
    let Some(paused_at) = upgrade.paused_at.take() else {
        return upgrade;
    };
    let paused_for = now.duration_since(paused_at.0);
    let shift = |time: &mut Time| {
        if let Ok(moved) = time.0.checked_add(paused_for) {
            time.0 = moved;
        }
    };
    if paused_for.is_positive() {
        upgrade.step_started_at.iter_mut().for_each(shift);
        upgrade
            .rolling
            .values_mut()
            .for_each(|workload| shift(&mut workload.since));
    }
    upgrade
}

/// A version change held before it starts: every workload stays where it is (absent ones come
/// back on the version the cloud ran) and status says what it waits for.
pub(crate) fn waiting(input: &RolloutInput<'_>, view: &View<'_>, hold: &Hold) -> RolloutDecision {
    RolloutDecision {
        pins: view.pins(|_| false),
        upgrade: Some(UpgradeStatus {
            message: Some(hold.message().to_owned()),
            remaining: view.remaining(UpgradePhase::Datastores),
            ..UpgradeStatus::new(
                view.from_version.clone(),
                input.target_version,
                UpgradePhase::Waiting,
            )
        }),
    }
}

/// The maintenance window closed while the rollout of `carried` runs: the step in flight
/// finishes, the next one (`batch` of `phase`) does not begin and the clocks stop. `None` when
/// no window is closed or a workload of `batch` is in flight.
pub(crate) fn between_steps(
    input: &RolloutInput<'_>,
    view: &View<'_>,
    carried: Option<&UpgradeStatus>,
    phase: UpgradePhase,
    batch: &[&str],
) -> Option<RolloutDecision> {
    let (Some(hold @ Hold::Window { .. }), Some(carried)) = (input.hold, carried) else {
        return None;
    };
    let in_flight = batch.iter().any(|id| carried.rolling.contains_key(*id));
    if in_flight {
        return None;
    }
    let mut upgrade = carried.clone();
    upgrade.paused_at = Some(Time(input.now));
    upgrade.message = Some(format!("rollout paused: {}", hold.message()));
    Some(RolloutDecision {
        pins: view.pins(|its_phase| its_phase < phase),
        upgrade: Some(upgrade),
    })
}
