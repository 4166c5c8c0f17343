//! The rollback of a rollout whose step missed its gate (`onFailure: Rollback`): the workloads
//! it moved go back to their previous tags, HAProxy first and datastores last (only when
//! `rollbackDatastores` allows), one step at a time through the same health gates. Once all are
//! back and settled the rollout is RolledBack and stays so until the spec changes.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::view::View;
use super::{PHASES, RolloutDecision, RolloutInput, clock, message, phase_of};
use crate::api::{RollingWorkload, UpgradePhase, UpgradeStatus};
use crate::render::revision::Change;

/// Whether `recorded` is a rollback that goes on: a rollback runs to its end, and the version it
/// left is not tried again, until a person changes the target of what failed (spec.version or
/// an image override).
pub(crate) fn runs_on(view: &View<'_>, recorded: &UpgradeStatus) -> bool {
    let rolling_back = matches!(
        recorded.phase,
        UpgradePhase::RollingBack | UpgradePhase::RolledBack
    );
    let failed = recorded
        .failed
        .iter()
        .map(|(id, tag)| (id.as_str(), tag.as_str(), None));
    rolling_back && !view.retargeted(failed)
}

/// Turns the step `upgrade`, whose workloads `overdue` missed their gate, into a rollback.
pub(crate) fn start(
    input: &RolloutInput<'_>,
    view: &View<'_>,
    mut upgrade: UpgradeStatus,
    overdue: &[&str],
) -> RolloutDecision {
    upgrade.failed = overdue
        .iter()
        .map(|id| ((*id).to_owned(), upgrade.rolling[*id].tag.clone()))
        .collect();
    upgrade.phase = UpgradePhase::RollingBack;
    roll_back(input, view, &upgrade)
}

/// The next step of the rollback `recorded`: the last phase with a workload still to return
/// rolls back, or, with none left, the rollout is RolledBack.
pub(crate) fn roll_back(
    input: &RolloutInput<'_>,
    view: &View<'_>,
    recorded: &UpgradeStatus,
) -> RolloutDecision {
    let rollback = Rollback {
        input,
        view,
        recorded,
    };
    let mut pins = view.pins(|_| false);
    let mut upgrade = UpgradeStatus {
        rolling: BTreeMap::new(),
        step_started_at: None,
        component: None,
        paused_at: None,
        remaining: Vec::new(),
        ..recorded.clone()
    };
    let Some(phase) = rollback.current_step() else {
        upgrade.phase = UpgradePhase::RolledBack;
        upgrade.message = Some(rollback.rolled_back_message());
        return RolloutDecision {
            pins,
            upgrade: Some(upgrade),
        };
    };

    let batch = view.batch_among(phase, |id| rollback.returns(id), |id| rollback.to_move(id));
    upgrade.rolling = rollback.rolling_workloads(phase, &batch);
    for (id, workload) in &upgrade.rolling {
        pins.insert(id.clone(), workload.tag.clone());
    }
    upgrade.step_started_at = clock::step_started(&upgrade.rolling);
    upgrade.phase = UpgradePhase::RollingBack;
    upgrade.component = Some(batch.join(","));
    upgrade.remaining = rollback.remaining(phase);
    upgrade.message = Some(rollback.rolling_back_message(&batch, &upgrade.rolling));
    RolloutDecision {
        pins,
        upgrade: Some(upgrade),
    }
}

/// One decision of the rollback `recorded`, and what follows from it for each workload.
struct Rollback<'a> {
    input: &'a RolloutInput<'a>,
    view: &'a View<'a>,
    recorded: &'a UpgradeStatus,
}

impl Rollback<'_> {
    /// Workload `id` goes back: this rollout moved it (so its previous tag is known), and it is
    /// not a datastore kept on the new image.
    fn returns(&self, id: &str) -> bool {
        let allowed = self.input.targets.get(id).is_some_and(|target| {
            self.input.rollback_datastores || phase_of(target.component) != UpgradePhase::Datastores
        });
        allowed && self.recorded.previous_tags.contains_key(id)
    }

    /// The tag workload `id` ran before this rollout moved it.
    fn previous(&self, id: &str) -> &str {
        self.recorded.previous_tags[id].as_str()
    }

    /// Workload `id` was moved away from its previous tag and still runs elsewhere.
    fn moved_away(&self, id: &str) -> bool {
        self.input
            .live
            .get(id)
            .is_some_and(|live| live.tag != self.previous(id))
    }

    /// Workload `id` goes back and is not back yet.
    fn to_move(&self, id: &str) -> bool {
        self.returns(id) && self.moved_away(id)
    }

    /// Workload `id` goes back and is not back, or not yet settled there.
    fn pending(&self, id: &str) -> bool {
        self.to_move(id) || (self.returns(id) && self.view.unsettled(id))
    }

    /// The phase that rolls back now: the last with a workload pending.
    fn current_step(&self) -> Option<UpgradePhase> {
        PHASES
            .iter()
            .rev()
            .copied()
            .find(|phase| self.view.ids_in(*phase).iter().any(|id| self.pending(id)))
    }

    /// The workloads of `batch` on their way back, each with its health clock.
    fn rolling_workloads(
        &self,
        phase: UpgradePhase,
        batch: &[&str],
    ) -> BTreeMap<String, RollingWorkload> {
        batch
            .iter()
            .map(|id| ((*id).to_owned(), self.rolling_back(phase, id)))
            .collect()
    }

    /// Workload `id` of the step of `phase` on its way back to its previous tag.
    fn rolling_back(&self, phase: UpgradePhase, id: &str) -> RollingWorkload {
        let tag = self.previous(id).to_owned();
        let since = clock::rolling_since(self.recorded, phase, id, &tag, None)
            .unwrap_or(Time(self.input.now));
        RollingWorkload {
            tag,
            revision: None,
            reason: Some(Change::Image.to_string()),
            since,
        }
    }

    /// The workloads still to go back from `phase` down to the first phase, in rollback order.
    fn remaining(&self, phase: UpgradePhase) -> Vec<String> {
        PHASES
            .iter()
            .rev()
            .filter(|earlier| **earlier <= phase)
            .flat_map(|earlier| self.view.ids_in(*earlier))
            .filter(|id| self.pending(id))
            .map(str::to_owned)
            .collect()
    }

    /// The message of a finished rollback, and what retries the version it left.
    fn rolled_back_message(&self) -> String {
        let failed = self.recorded.failed.keys().map(String::as_str);
        format!(
            "rolled back to {}: {}{}. spec.version still asks for {}; it is not tried again until spec.version or {} changes",
            self.from(),
            self.reason(),
            self.kept_note(),
            self.input.target_version,
            message::image_fields(self.input, failed)
        )
    }

    /// The message of a rollback step that rolls `batch` back, with those of `rolling` that
    /// are not ready on the version they return to either.
    fn rolling_back_message(
        &self,
        batch: &[&str],
        rolling: &BTreeMap<String, RollingWorkload>,
    ) -> String {
        format!(
            "rolling back {} to {}: {}{}{}",
            batch.join(","),
            self.from(),
            self.reason(),
            self.kept_note(),
            self.stalled_note(rolling)
        )
    }

    /// The version the rollback returns to, for people.
    fn from(&self) -> String {
        self.view
            .from_version
            .clone()
            .unwrap_or_else(|| "the previous version".to_owned())
    }

    /// Why the rollout turned back.
    fn reason(&self) -> String {
        let failed: Vec<&str> = self.recorded.failed.keys().map(String::as_str).collect();
        let failed_tag = self
            .recorded
            .failed
            .values()
            .next()
            .cloned()
            .unwrap_or_default();
        format!(
            "{} did not become ready on {failed_tag} within {}s",
            failed.join(","),
            self.input.health_timeout.as_secs()
        )
    }

    /// The workloads that stay on the new image (datastores, unless `rollbackDatastores`), said
    /// once; empty when there are none.
    fn kept_note(&self) -> String {
        let kept: Vec<&str> = self
            .recorded
            .previous_tags
            .keys()
            .map(String::as_str)
            .filter(|id| !self.returns(id) && self.moved_away(id))
            .collect();
        if kept.is_empty() {
            return String::new();
        }
        format!(
            "; {} kept on the new image (its on-disk format may have changed; spec.upgrade.rollbackDatastores allows moving it back)",
            kept.join(",")
        )
    }

    /// The workloads of `rolling` not ready on the version they return to within the health
    /// timeout either, which the rollback waits for; empty when there are none.
    fn stalled_note(&self, rolling: &BTreeMap<String, RollingWorkload>) -> String {
        let stalled: Vec<&str> = rolling
            .iter()
            .filter(|(_, workload)| clock::past_health_timeout(self.input, &workload.since))
            .map(|(id, _)| id.as_str())
            .collect();
        if stalled.is_empty() {
            return String::new();
        }
        format!(
            "; {} not ready on {} after {}s either, the rollback waits for it",
            stalled.join(","),
            self.from(),
            self.input.health_timeout.as_secs()
        )
    }
}
