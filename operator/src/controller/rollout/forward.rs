//! The rolling update: one step at a time in [`PHASES`](super::PHASES) order, each workload of a
//! step through its health gate; a step that misses its gate blocks the rollout (or, with
//! `onFailure: Rollback`, turns it back).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::view::View;
use super::{RolloutDecision, RolloutInput, back, clock, message, pause};
use crate::api::{OnFailure, RollingWorkload, UpgradePhase, UpgradeStatus};

/// Blocked holds until a person changes the target of what failed (spec.version or an image
/// override) or the cloud is healthy at one version anyway (a step that got ready just after
/// its deadline, a failed override reverted by hand). `None` when `recorded` is not blocked or
/// the block lifts.
pub(crate) fn still_blocked(view: &View<'_>, recorded: &UpgradeStatus) -> Option<RolloutDecision> {
    if recorded.phase != UpgradePhase::Blocked {
        return None;
    }
    let failed = recorded.rolling.iter().map(|(id, workload)| {
        (
            id.as_str(),
            workload.tag.as_str(),
            workload.revision.as_deref(),
        )
    });
    if view.retargeted(failed) || view.consistent() {
        return None;
    }
    let failed_at = view.blocked_phase(recorded);
    Some(RolloutDecision {
        pins: view.pins(|its_phase| its_phase < failed_at),
        upgrade: Some(recorded.clone()),
    })
}

/// The next move of a rollout with work left: the current step rolls, or the rollout is
/// complete, or the step missed its gate. `recorded` is the rollout this one continues,
/// `carried` the step whose clocks carry over.
pub(crate) fn roll_forward(
    input: &RolloutInput<'_>,
    view: &View<'_>,
    recorded: Option<&UpgradeStatus>,
    carried: Option<&UpgradeStatus>,
) -> RolloutDecision {
    let Some(phase) = view.current_step() else {
        return complete(input, view, recorded);
    };
    let step = Step {
        input,
        view,
        recorded,
        carried,
        phase,
        batch: view.batch(phase),
    };
    if let Some(paused) = pause::between_steps(input, view, carried, phase, &step.batch) {
        return paused;
    }
    let upgrade = step.status();
    let overdue = step.overdue(&upgrade);
    if overdue.is_empty() {
        return step.roll(upgrade);
    }
    if input.on_failure == OnFailure::Rollback && moved_an_image(&upgrade, &overdue) {
        return back::start(input, view, upgrade, &overdue);
    }
    step.block(upgrade, &overdue)
}

/// When the rollout started: as recorded, or now.
fn started_at(input: &RolloutInput<'_>, recorded: Option<&UpgradeStatus>) -> Time {
    recorded
        .and_then(|recorded| recorded.started_at.clone())
        .unwrap_or(Time(input.now))
}

/// Every workload runs its target and is settled: the rollout is complete.
fn complete(
    input: &RolloutInput<'_>,
    view: &View<'_>,
    recorded: Option<&UpgradeStatus>,
) -> RolloutDecision {
    let upgrade = UpgradeStatus {
        started_at: Some(started_at(input, recorded)),
        message: Some(format!("every component runs {}", input.target_version)),
        ..UpgradeStatus::new(
            view.from_version.clone(),
            input.target_version,
            UpgradePhase::Complete,
        )
    };
    RolloutDecision {
        pins: BTreeMap::new(),
        upgrade: Some(upgrade),
    }
}

/// Whether a workload of `overdue` moved to another image. A rollback returns images: a step
/// that failed on configuration, env or resources alone has no image to return to, so it halts
/// like `Halt` (the plan says so too).
fn moved_an_image(upgrade: &UpgradeStatus, overdue: &[&str]) -> bool {
    overdue.iter().any(|id| {
        upgrade
            .previous_tags
            .get(*id)
            .is_some_and(|before| *before != upgrade.rolling[*id].tag)
    })
}

/// The current step of a rollout going forward: the workloads of `batch`, of `phase`.
struct Step<'a> {
    input: &'a RolloutInput<'a>,
    view: &'a View<'a>,
    /// The rollout this one continues.
    recorded: Option<&'a UpgradeStatus>,
    /// The step whose clocks carry over.
    carried: Option<&'a UpgradeStatus>,
    phase: UpgradePhase,
    batch: Vec<&'a str>,
}

impl<'a> Step<'a> {
    /// The status of the step: its workloads, their clocks and the rollout around it.
    fn status(&self) -> UpgradeStatus {
        let rolling = self.rolling_workloads();
        let component = self.batch.join(",");
        let why = message::reasons_of(&rolling);
        UpgradeStatus {
            message: Some(message::rolling(self.input, &component, why.as_deref())),
            component: Some(component),
            step_started_at: Some(clock::step_started(&rolling).unwrap_or(Time(self.input.now))),
            rolling,
            started_at: Some(started_at(self.input, self.recorded)),
            remaining: self.view.remaining(self.phase),
            previous_tags: self.previous_tags(),
            ..UpgradeStatus::new(
                self.view.from_version.clone(),
                self.input.target_version,
                self.phase,
            )
        }
    }

    /// The workloads of the step, each with the target it rolls to, its health clock and why
    /// it restarts.
    fn rolling_workloads(&self) -> BTreeMap<String, RollingWorkload> {
        self.batch
            .iter()
            .map(|id| ((*id).to_owned(), self.rolling(id)))
            .collect()
    }

    /// Workload `id` of the step on its way to its target.
    fn rolling(&self, id: &str) -> RollingWorkload {
        let target = &self.input.targets[id];
        let tag = target.tag.clone();
        let revision = Some(target.revision.clone()).filter(|revision| !revision.is_empty());
        let since = self
            .carried
            .and_then(|step| clock::rolling_since(step, self.phase, id, &tag, revision.as_deref()))
            .unwrap_or(Time(self.input.now));
        // A workload of the batch that only waits to be ready again keeps the reason it
        // started rolling for.
        let reason = self.view.reason(id).or_else(|| {
            self.carried
                .and_then(|step| step.rolling.get(id))
                .and_then(|workload| workload.reason.clone())
        });
        RollingWorkload {
            tag,
            revision,
            reason,
            since,
        }
    }

    /// Where each workload was before this rollout moved it, for a rollback: as recorded, plus
    /// the live tags of the stale workloads of the step. A finished rollout's record is not
    /// carried: the next change on the same version starts from what runs then.
    fn previous_tags(&self) -> BTreeMap<String, String> {
        let mut previous_tags = self
            .recorded
            .filter(|recorded| recorded.phase != UpgradePhase::Complete)
            .map(|recorded| recorded.previous_tags.clone())
            .unwrap_or_default();
        for id in &self.batch {
            if let Some(tag) = self.view.stale.get(id) {
                previous_tags
                    .entry((*id).to_owned())
                    .or_insert_with(|| (*tag).to_owned());
            }
        }
        previous_tags
    }

    /// The workloads of the step whose clock in `upgrade` ran past the health timeout.
    fn overdue(&self, upgrade: &UpgradeStatus) -> Vec<&'a str> {
        self.batch
            .iter()
            .copied()
            .filter(|id| clock::past_health_timeout(self.input, &upgrade.rolling[*id].since))
            .collect()
    }

    /// The step goes on: its workloads move to their targets, the phases after it stay where
    /// they are.
    fn roll(&self, upgrade: UpgradeStatus) -> RolloutDecision {
        let mut pins = self.view.pins(|its_phase| its_phase <= self.phase);
        for id in &self.batch {
            pins.remove(*id);
        }
        RolloutDecision {
            pins,
            upgrade: Some(upgrade),
        }
    }

    /// Freeze: the failing workloads stay where they are, nothing else rolls. What failed, and
    /// on which tag, is kept to tell a new target from the same one.
    fn block(&self, mut upgrade: UpgradeStatus, overdue: &[&str]) -> RolloutDecision {
        let tag = upgrade.rolling[overdue[0]].tag.clone();
        upgrade
            .rolling
            .retain(|id, _| overdue.contains(&id.as_str()));
        upgrade.phase = UpgradePhase::Blocked;
        upgrade.component = Some(overdue.join(","));
        upgrade.message = Some(message::blocked(self.input, overdue, tag, &upgrade.rolling));
        RolloutDecision {
            pins: self.view.pins(|its_phase| its_phase < self.phase),
            upgrade: Some(upgrade),
        }
    }
}
