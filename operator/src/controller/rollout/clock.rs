//! The health clocks: each workload of a step has its own, started when it began rolling to its
//! target; one that runs past the health timeout is a missed gate.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::RolloutInput;
use crate::api::{RollingWorkload, UpgradePhase, UpgradeStatus};

/// The recorded step whose clocks carry over into this decision: one in progress or complete,
/// never a block being lifted, a wait or a rollback.
pub(crate) fn carried(recorded: Option<&UpgradeStatus>) -> Option<&UpgradeStatus> {
    recorded.filter(|recorded| {
        !matches!(
            recorded.phase,
            UpgradePhase::Blocked
                | UpgradePhase::Waiting
                | UpgradePhase::RollingBack
                | UpgradePhase::RolledBack
        )
    })
}

/// When workload `id` started rolling to `tag` (and `revision`), per the recorded step. A status written before
/// per-workload clocks existed only has the step's start, which then stands for its workloads.
pub(crate) fn rolling_since(
    recorded: &UpgradeStatus,
    phase: UpgradePhase,
    id: &str,
    tag: &str,
    revision: Option<&str>,
) -> Option<Time> {
    if let Some(workload) = recorded.rolling.get(id) {
        // A new revision on the same tag (the config changed again mid-step) is a new target:
        // a fresh clock. A record without a revision predates revisions and only knows tags.
        let same_revision = workload.revision.is_none() || workload.revision.as_deref() == revision;
        return (workload.tag == tag && same_revision).then(|| workload.since.clone());
    }
    let listed = recorded
        .component
        .as_deref()
        .is_some_and(|component| component.split(',').any(|listed| listed == id));
    (recorded.rolling.is_empty() && recorded.phase == phase && listed)
        .then(|| recorded.step_started_at.clone())
        .flatten()
}

/// When the step of `rolling` started: the earliest of its workloads' clocks.
pub(crate) fn step_started(rolling: &BTreeMap<String, RollingWorkload>) -> Option<Time> {
    rolling
        .values()
        .map(|workload| workload.since.clone())
        .min_by_key(|since| since.0)
}

/// Whether a workload rolling `since` then has waited longer than the health timeout.
pub(crate) fn past_health_timeout(input: &RolloutInput<'_>, since: &Time) -> bool {
    let waited = input.now.duration_since(since.0);
    waited.is_positive() && waited.unsigned_abs() > input.health_timeout
}
