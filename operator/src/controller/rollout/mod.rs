//! The upgrade state machine, as a pure function.
//!
//! Given what render wants (a target image tag and pod-template revision per workload), what the
//! cluster runs (the live tag and revision per workload and whether its rollout is settled), and
//! the rollout recorded in status, it decides which workloads stay pinned to their live tag (and
//! are then not written at all) and what status to record. A new revision on the same tag (a
//! config, env or resources change) is work like a new image. All
//! state lives in the cloud's status and the live objects, so an operator restart resumes.
//!
//! Order: datastores (only those whose own image changed), CloudMaster, storage nodes
//! (`maxUnavailable` at a time, counting every node that is not ready), HAProxy. Each workload
//! of a step has its own health clock; one that is not settled within the health timeout blocks
//! the rollout until the target of what failed changes or the cloud is healthy at one version
//! anyway. Workloads that are absent come back at the version the rollout has reached, and
//! `spec.paused` stops the clocks.
//!
//! [`decide`] picks which of these jobs a reconcile does, each in a module of its own:
//! - `forward`: the ordered rolling update through the health gates, and the block when a
//!   step misses its gate;
//! - `back`: the rollback of the steps a failed rollout moved (`onFailure: Rollback`);
//! - `pause`: `spec.paused`, a gate that holds a rollout before it starts, and a maintenance
//!   window that closes between steps;
//!
//! with what they share: `view` (the targets and live workloads of one decision, and what is
//! derived from them), `clock` (the health clocks) and `message` (the words status uses).

mod back;
mod clock;
mod forward;
mod message;
mod pause;
mod view;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::gate::Hold;
use crate::api::{OnFailure, UpgradePhase, UpgradeStatus};
use crate::render::Component;
use view::View;

/// What the cluster runs for one workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveWorkload {
    /// Tag of the workload's pod template.
    pub tag: String,
    /// Revision of the pod template ([`crate::render::revision`]); `None` on a workload written
    /// before revisions were recorded, which is then compared by its tag alone.
    pub revision: Option<String>,
    /// The rollout of that template is complete and every replica is ready.
    pub settled: bool,
}

/// A workload render wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetWorkload {
    /// Its component.
    pub component: Component,
    /// The tag it should end up on.
    pub tag: String,
    /// The revision of the pod template it should end up on.
    pub revision: String,
}

/// Everything the decision depends on.
#[derive(Clone, Debug)]
pub struct RolloutInput<'a> {
    /// Desired tag per workload id.
    pub targets: &'a BTreeMap<String, TargetWorkload>,
    /// Live state per workload id (missing workloads are absent).
    pub live: &'a BTreeMap<String, LiveWorkload>,
    /// The rollout recorded in status.
    pub recorded: Option<&'a UpgradeStatus>,
    /// The version the whole cloud last ran (`status.currentVersion`).
    pub current_version: Option<&'a str>,
    /// `spec.version`.
    pub target_version: &'a str,
    /// `spec.upgrade.maxUnavailable`.
    pub max_unavailable: usize,
    /// `spec.upgrade.healthTimeout`.
    pub health_timeout: Duration,
    /// The reconcile's clock reading.
    pub now: Timestamp,
    /// `spec.paused`: nothing is applied, so no step clock may run.
    pub paused: bool,
    /// A gate in front of the rollout (maintenance window, ring, concurrency limit).
    pub hold: Option<&'a Hold>,
    /// `spec.upgrade.onFailure`.
    pub on_failure: OnFailure,
    /// `spec.upgrade.rollbackDatastores`.
    pub rollback_datastores: bool,
}

/// What to render and record.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutDecision {
    /// Workloads to keep on their live tag for now.
    pub pins: BTreeMap<String, String>,
    /// The rollout to record in status (`None` when none ever started).
    pub upgrade: Option<UpgradeStatus>,
}

pub(crate) fn phase_of(component: Component) -> UpgradePhase {
    match component {
        Component::Mysql | Component::Bynamo | Component::Minio => UpgradePhase::Datastores,
        Component::CloudMaster => UpgradePhase::CloudMaster,
        Component::Node => UpgradePhase::Nodes,
        Component::Haproxy => UpgradePhase::Frontend,
    }
}

/// The steps of a rollout, in the order it takes them (a rollback takes them in reverse).
const PHASES: [UpgradePhase; 4] = [
    UpgradePhase::Datastores,
    UpgradePhase::CloudMaster,
    UpgradePhase::Nodes,
    UpgradePhase::Frontend,
];

/// Sort key that puts `node-10` after `node-9`.
pub(crate) fn workload_order(id: &str) -> (String, u64) {
    match id.rsplit_once('-') {
        Some((prefix, n)) if n.chars().all(|c| c.is_ascii_digit()) => {
            (prefix.to_owned(), n.parse().unwrap_or(0))
        }
        _ => (id.to_owned(), 0),
    }
}

/// Decides the next step of the rollout.
pub fn decide(input: &RolloutInput<'_>) -> RolloutDecision {
    if input.paused {
        return pause::hold_while_paused(input);
    }
    let resumed = input
        .recorded
        .map(|recorded| pause::resumed(recorded, input.now));
    let (recorded, view) = continued(input, resumed.as_ref());

    if let Some(blocked) = recorded.and_then(|recorded| forward::still_blocked(&view, recorded)) {
        return blocked;
    }
    if let Some(rollback) = recorded.filter(|recorded| back::runs_on(&view, recorded)) {
        return back::roll_back(input, &view, rollback);
    }
    let carried = clock::carried(recorded);
    let started = carried.is_some_and(|step| step.phase != UpgradePhase::Complete);
    if let Some(hold) = input.hold.filter(|_| !started && !view.stale.is_empty()) {
        return pause::waiting(input, &view, hold);
    }
    let in_progress = recorded.is_some_and(|recorded| {
        !matches!(
            recorded.phase,
            UpgradePhase::Complete | UpgradePhase::Waiting
        )
    });
    if view.stale.is_empty() && !in_progress {
        return RolloutDecision {
            pins: BTreeMap::new(),
            upgrade: resumed,
        };
    }
    forward::roll_forward(input, &view, recorded, carried)
}

/// The recorded rollout this decision continues (one to the same version), and the view of the
/// cluster from the version that rollout started at. A change after a finished rollout on the
/// same version (a new config, resources, an image override) is a rollout of its own: from the
/// version the cloud runs, starting now, so no record is continued.
fn continued<'a>(
    input: &'a RolloutInput<'a>,
    resumed: Option<&'a UpgradeStatus>,
) -> (Option<&'a UpgradeStatus>, View<'a>) {
    let recorded = resumed.filter(|recorded| recorded.to_version == input.target_version);
    let from_version = recorded
        .and_then(|recorded| recorded.from_version.clone())
        .or_else(|| input.current_version.map(str::to_owned));
    let view = View::new(input, from_version);
    let finished = recorded.is_some_and(|recorded| recorded.phase == UpgradePhase::Complete);
    if finished && !view.stale.is_empty() {
        let from_version = input.current_version.map(str::to_owned);
        return (None, View::new(input, from_version));
    }
    (recorded, view)
}
