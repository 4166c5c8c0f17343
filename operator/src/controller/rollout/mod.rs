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

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::gate::Hold;
use crate::api::{OnFailure, RollingWorkload, UpgradePhase, UpgradeStatus};
use crate::render::Component;
use crate::render::revision::{self, Change};

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
        return hold_while_paused(input);
    }
    let resumed = input.recorded.map(|r| resumed(r, input.now));
    let recorded = resumed
        .as_ref()
        .filter(|r| r.to_version == input.target_version);
    let from_version = recorded
        .and_then(|r| r.from_version.clone())
        .or_else(|| input.current_version.map(str::to_owned));
    let view = View::new(input, from_version.clone());
    // A change after a finished rollout on the same version (a new config, resources, an image
    // override) is a rollout of its own: from the version the cloud runs, starting now.
    let finished = recorded.is_some_and(|r| r.phase == UpgradePhase::Complete);
    let (recorded, view) = if finished && !view.stale.is_empty() {
        let from_version = input.current_version.map(str::to_owned);
        (None, View::new(input, from_version))
    } else {
        (recorded, view)
    };
    let from_version = view.from_version.clone();

    if let Some(blocked) = recorded.filter(|r| r.phase == UpgradePhase::Blocked) {
        // Blocked holds until a person changes the target of what failed (spec.version or an
        // image override) or the cloud is healthy at one version anyway (a step that got ready
        // just after its deadline, a failed override reverted by hand).
        let failed = blocked
            .rolling
            .iter()
            .map(|(id, w)| (id.as_str(), w.tag.as_str(), w.revision.as_deref()));
        if !view.retargeted(failed) && !view.consistent() {
            let at = view.blocked_phase(blocked);
            return RolloutDecision {
                pins: view.pins(|phase| phase < at),
                upgrade: Some(blocked.clone()),
            };
        }
    }
    if let Some(back) = recorded.filter(|r| {
        matches!(
            r.phase,
            UpgradePhase::RollingBack | UpgradePhase::RolledBack
        )
    }) {
        // A rollback runs to its end, and the version it left is not tried again, until a
        // person changes the target of what failed (spec.version or an image override).
        let failed = back
            .failed
            .iter()
            .map(|(id, tag)| (id.as_str(), tag.as_str(), None));
        if !view.retargeted(failed) {
            return roll_back(input, &view, back);
        }
    }
    // Clocks carry over from the step in progress, never from a block being lifted.
    let carried = recorded.filter(|r| {
        !matches!(
            r.phase,
            UpgradePhase::Blocked
                | UpgradePhase::Waiting
                | UpgradePhase::RollingBack
                | UpgradePhase::RolledBack
        )
    });
    let started = carried.is_some_and(|r| r.phase != UpgradePhase::Complete);
    if let Some(hold) = input.hold.filter(|_| !started && !view.stale.is_empty()) {
        return waiting(input, &view, hold);
    }
    let in_progress = recorded
        .is_some_and(|r| !matches!(r.phase, UpgradePhase::Complete | UpgradePhase::Waiting));
    if view.stale.is_empty() && !in_progress {
        return RolloutDecision {
            pins: BTreeMap::new(),
            upgrade: resumed,
        };
    }

    // The first phase with a workload that is stale or not yet settled is the current step.
    let current = PHASES.iter().copied().find(|phase| {
        view.ids_in(*phase)
            .iter()
            .any(|id| view.stale.contains_key(id) || view.unsettled(id))
    });
    let started_at = recorded
        .and_then(|r| r.started_at.clone())
        .unwrap_or(Time(input.now));

    let Some(phase) = current else {
        let upgrade = UpgradeStatus {
            started_at: Some(started_at),
            message: Some(format!("every component runs {}", input.target_version)),
            ..UpgradeStatus::new(from_version, input.target_version, UpgradePhase::Complete)
        };
        return RolloutDecision {
            pins: BTreeMap::new(),
            upgrade: Some(upgrade),
        };
    };

    let batch = view.batch(phase);
    if let (Some(hold @ Hold::Window { .. }), Some(carried)) = (input.hold, carried) {
        // The window closed: the step in flight finishes, the next one does not begin.
        let in_flight = batch.iter().any(|id| carried.rolling.contains_key(*id));
        if !in_flight {
            let mut upgrade = carried.clone();
            upgrade.paused_at = Some(Time(input.now));
            upgrade.message = Some(format!("rollout paused: {}", hold.message()));
            return RolloutDecision {
                pins: view.pins(|p| p < phase),
                upgrade: Some(upgrade),
            };
        }
    }
    let rolling: BTreeMap<String, RollingWorkload> = batch
        .iter()
        .map(|id| {
            let target = &input.targets[*id];
            let tag = target.tag.clone();
            let revision = Some(target.revision.clone()).filter(|r| !r.is_empty());
            let since = carried
                .and_then(|r| rolling_since(r, phase, id, &tag, revision.as_deref()))
                .unwrap_or(Time(input.now));
            // A workload of the batch that only waits to be ready again keeps the reason it
            // started rolling for.
            let reason = view.reason(id).or_else(|| {
                carried
                    .and_then(|r| r.rolling.get(*id))
                    .and_then(|w| w.reason.clone())
            });
            let workload = RollingWorkload {
                tag,
                revision,
                reason,
                since,
            };
            ((*id).to_owned(), workload)
        })
        .collect();
    let step_started_at = rolling
        .values()
        .map(|w| w.since.clone())
        .min_by_key(|since| since.0)
        .unwrap_or(Time(input.now));
    let overdue: Vec<&str> = batch
        .iter()
        .copied()
        .filter(|id| {
            let waited = input.now.duration_since(rolling[*id].since.0);
            waited.is_positive() && waited.unsigned_abs() > input.health_timeout
        })
        .collect();

    // Where each workload was before this rollout moved it, for a rollback. A finished
    // rollout's record is not carried: the next change on the same version starts from what
    // runs then.
    let mut previous_tags = recorded
        .filter(|r| r.phase != UpgradePhase::Complete)
        .map(|r| r.previous_tags.clone())
        .unwrap_or_default();
    for id in &batch {
        if let Some(tag) = view.stale.get(id) {
            previous_tags
                .entry((*id).to_owned())
                .or_insert_with(|| (*tag).to_owned());
        }
    }
    let component = batch.join(",");
    let why = reasons_of(&rolling);
    let mut upgrade = UpgradeStatus {
        component: Some(component.clone()),
        step_started_at: Some(step_started_at),
        rolling,
        started_at: Some(started_at),
        message: Some(format!(
            "rolling {component} to {}{}",
            input.target_version,
            why.as_deref()
                .map(|why| format!(" ({why})"))
                .unwrap_or_default()
        )),
        remaining: view.remaining(phase),
        previous_tags,
        ..UpgradeStatus::new(from_version, input.target_version, phase)
    };
    if overdue.is_empty() {
        let mut pins = view.pins(|p| p <= phase);
        for id in &batch {
            pins.remove(*id);
        }
        return RolloutDecision {
            pins,
            upgrade: Some(upgrade),
        };
    }

    // A rollback returns images: a step that failed on configuration, env or resources alone
    // has no image to return to, so it halts like `Halt` (the plan says so too).
    let image_moved = overdue.iter().any(|id| {
        upgrade
            .previous_tags
            .get(*id)
            .is_some_and(|before| *before != upgrade.rolling[*id].tag)
    });
    if input.on_failure == OnFailure::Rollback && image_moved {
        upgrade.failed = overdue
            .iter()
            .map(|id| ((*id).to_owned(), upgrade.rolling[*id].tag.clone()))
            .collect();
        upgrade.phase = UpgradePhase::RollingBack;
        return roll_back(input, &view, &upgrade);
    }
    // Freeze: the failing workloads stay where they are, nothing else rolls. What failed, and
    // on which tag, is kept to tell a new target from the same one.
    let failed = overdue.join(",");
    let tag = upgrade.rolling[overdue[0]].tag.clone();
    upgrade
        .rolling
        .retain(|id, _| overdue.contains(&id.as_str()));
    let fields = image_fields(input, overdue.iter().copied());
    // What a person changes to lift the block: the image, or (when the pods restarted for
    // something else) whatever changed their template.
    let (on, until) = match reasons_of(&upgrade.rolling) {
        Some(why) if why != Change::Image.to_string() => (
            format!("{tag} ({why})"),
            format!("spec.version, {fields} or the {why} of {failed}"),
        ),
        _ => (tag, format!("spec.version or {fields}")),
    };
    upgrade.phase = UpgradePhase::Blocked;
    upgrade.component = Some(failed.clone());
    upgrade.message = Some(format!(
        "{failed} did not become ready on {on} within {}s; the rollout is stopped and no further component rolls until {until} changes",
        input.health_timeout.as_secs(),
    ));
    RolloutDecision {
        pins: view.pins(|p| p < phase),
        upgrade: Some(upgrade),
    }
}

/// The reasons the workloads of a step restart, each once, in [`Change`] order of first
/// appearance: "configuration" or "image, resources".
fn reasons_of(rolling: &BTreeMap<String, RollingWorkload>) -> Option<String> {
    let mut seen: Vec<&str> = Vec::new();
    for reason in rolling.values().filter_map(|w| w.reason.as_deref()) {
        for part in reason.split(", ") {
            if !seen.contains(&part) {
                seen.push(part);
            }
        }
    }
    (!seen.is_empty()).then(|| seen.join(", "))
}

/// The spec fields that retarget the workloads `ids`, joined with "or".
fn image_fields<'b>(input: &RolloutInput<'_>, ids: impl Iterator<Item = &'b str>) -> String {
    let mut fields: Vec<&str> = ids
        .filter_map(|id| input.targets.get(id))
        .map(|t| image_field(t.component))
        .collect();
    fields.sort_unstable();
    fields.dedup();
    fields.join(" or ")
}

/// The spec field of a component's image override, for people reading why a rollout stopped.
fn image_field(component: Component) -> &'static str {
    match component {
        Component::Mysql => "spec.database.managed.image",
        Component::Bynamo => "spec.metadataStore.managed.image",
        Component::Minio => "spec.objectStore.minio.image",
        Component::CloudMaster => "spec.master.image",
        Component::Node => "spec.nodes.image",
        Component::Haproxy => "spec.frontend.image",
    }
}

/// A version change held before it starts: every workload stays where it is (absent ones come
/// back on the version the cloud ran) and status says what it waits for.
fn waiting(input: &RolloutInput<'_>, view: &View<'_>, hold: &Hold) -> RolloutDecision {
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

/// The rollback of a rollout whose step `recorded.failed` missed its gate: the workloads it
/// moved go back to their previous tags, HAProxy first and datastores last (only when
/// `rollbackDatastores` allows), one step at a time through the same health gates. Once all are
/// back and settled the rollout is RolledBack and stays so until the spec changes.
fn roll_back(
    input: &RolloutInput<'_>,
    view: &View<'_>,
    recorded: &UpgradeStatus,
) -> RolloutDecision {
    let returns = |id: &str| {
        input.targets.get(id).is_some_and(|t| {
            input.rollback_datastores || phase_of(t.component) != UpgradePhase::Datastores
        }) && recorded.previous_tags.contains_key(id)
    };
    let previous = |id: &str| recorded.previous_tags[id].as_str();
    let to_move =
        |id: &str| returns(id) && input.live.get(id).is_some_and(|l| l.tag != previous(id));
    let pending = |id: &str| to_move(id) || (returns(id) && view.unsettled(id));
    let failed: Vec<&str> = recorded.failed.keys().map(String::as_str).collect();
    let failed_tag = recorded.failed.values().next().cloned().unwrap_or_default();
    let from = view
        .from_version
        .clone()
        .unwrap_or_else(|| "the previous version".to_owned());
    let reason = format!(
        "{} did not become ready on {failed_tag} within {}s",
        failed.join(","),
        input.health_timeout.as_secs()
    );
    let kept: Vec<String> = recorded
        .previous_tags
        .keys()
        .filter(|id| {
            !returns(id)
                && view
                    .input
                    .live
                    .get(id.as_str())
                    .is_some_and(|l| l.tag != previous(id))
        })
        .cloned()
        .collect();
    let kept_note = if kept.is_empty() {
        String::new()
    } else {
        format!(
            "; {} kept on the new image (its on-disk format may have changed; spec.upgrade.rollbackDatastores allows moving it back)",
            kept.join(",")
        )
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
    let current = PHASES
        .iter()
        .rev()
        .copied()
        .find(|phase| view.ids_in(*phase).iter().any(|id| pending(id)));
    let Some(phase) = current else {
        upgrade.phase = UpgradePhase::RolledBack;
        upgrade.message = Some(format!(
            "rolled back to {from}: {reason}{kept_note}. spec.version still asks for {}; it is not tried again until spec.version or {} changes",
            input.target_version,
            image_fields(input, failed.iter().copied())
        ));
        return RolloutDecision {
            pins,
            upgrade: Some(upgrade),
        };
    };

    let batch = view.batch_among(phase, returns, to_move);
    upgrade.rolling = batch
        .iter()
        .map(|id| {
            let tag = previous(id).to_owned();
            let since = rolling_since(recorded, phase, id, &tag, None).unwrap_or(Time(input.now));
            let workload = RollingWorkload {
                tag,
                revision: None,
                reason: Some(Change::Image.to_string()),
                since,
            };
            ((*id).to_owned(), workload)
        })
        .collect();
    for (id, workload) in &upgrade.rolling {
        pins.insert(id.clone(), workload.tag.clone());
    }
    upgrade.step_started_at = upgrade
        .rolling
        .values()
        .map(|w| w.since.clone())
        .min_by_key(|t| t.0);
    upgrade.phase = UpgradePhase::RollingBack;
    upgrade.component = Some(batch.join(","));
    upgrade.remaining = PHASES
        .iter()
        .rev()
        .filter(|p| **p <= phase)
        .flat_map(|p| view.ids_in(*p))
        .filter(|id| pending(id))
        .map(str::to_owned)
        .collect();
    let stalled: Vec<&str> = upgrade
        .rolling
        .iter()
        .filter(|(_, w)| {
            let waited = input.now.duration_since(w.since.0);
            waited.is_positive() && waited.unsigned_abs() > input.health_timeout
        })
        .map(|(id, _)| id.as_str())
        .collect();
    let progress = if stalled.is_empty() {
        String::new()
    } else {
        format!(
            "; {} not ready on {from} after {}s either, the rollback waits for it",
            stalled.join(","),
            input.health_timeout.as_secs()
        )
    };
    upgrade.message = Some(format!(
        "rolling back {} to {from}: {reason}{kept_note}{progress}",
        batch.join(",")
    ));
    RolloutDecision {
        pins,
        upgrade: Some(upgrade),
    }
}

/// Nothing is applied while paused: keep the recorded rollout and note when its clocks stopped.
/// A version change while paused starts no rollout until the pause ends.
fn hold_while_paused(input: &RolloutInput<'_>) -> RolloutDecision {
    let upgrade = input.recorded.cloned().map(|mut u| {
        let rolling = !matches!(
            u.phase,
            UpgradePhase::Complete | UpgradePhase::Blocked | UpgradePhase::RolledBack
        );
        if rolling && u.paused_at.is_none() {
            u.paused_at = Some(Time(input.now));
        }
        u
    });
    RolloutDecision {
        pins: BTreeMap::new(),
        upgrade,
    }
}

/// The recorded rollout with its clocks moved forward by the time spent paused.
fn resumed(recorded: &UpgradeStatus, now: Timestamp) -> UpgradeStatus {
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
            .for_each(|w| shift(&mut w.since));
    }
    upgrade
}

/// When workload `id` started rolling to `tag` (and `revision`), per the recorded step. A status written before
/// per-workload clocks existed only has the step's start, which then stands for its workloads.
fn rolling_since(
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
        .is_some_and(|c| c.split(',').any(|listed| listed == id));
    (recorded.rolling.is_empty() && recorded.phase == phase && listed)
        .then(|| recorded.step_started_at.clone())
        .flatten()
}

/// Whether a live workload runs the target's revision. One written before revisions were
/// recorded does not: the operator that wrote it named its ConfigMaps differently, so its
/// template changes anyway, and it is rolled in its turn like any other change (a workload
/// whose template did not change settles at once). A target without a revision (tests of the
/// tag rules) is compared by its tag alone.
fn same_revision(live: &LiveWorkload, target: &TargetWorkload) -> bool {
    target.revision.is_empty() || live.revision.as_deref() == Some(target.revision.as_str())
}

/// The targets and live workloads of one decision, with what is derived from them.
struct View<'a> {
    input: &'a RolloutInput<'a>,
    /// Existing workloads whose live tag or revision differs from the target, with their live
    /// tag: the work still to do. A change of configuration, env or resources is work like a
    /// new image: it restarts the pods, so it goes through the same ordered steps.
    stale: BTreeMap<&'a str, &'a str>,
    /// The version the cloud ran before this rollout.
    from_version: Option<String>,
}

impl<'a> View<'a> {
    fn new(input: &'a RolloutInput<'a>, from_version: Option<String>) -> Self {
        let stale = input
            .targets
            .iter()
            .filter_map(|(id, target)| {
                let live = input.live.get(id)?;
                let moved = live.tag != target.tag || !same_revision(live, target);
                moved.then_some((id.as_str(), live.tag.as_str()))
            })
            .collect();
        Self {
            input,
            stale,
            from_version,
        }
    }

    /// Why workload `id` restarts on its way to the target: what differs between its live
    /// template and the target one, e.g. "image" or "configuration, env".
    fn reason(&self, id: &str) -> Option<String> {
        let target = self.input.targets.get(id)?;
        let live = self.input.live.get(id)?;
        let mut changes = match &live.revision {
            Some(revision) => revision::changes(revision, &target.revision),
            None if same_revision(live, target) => Vec::new(),
            None => vec![Change::Template],
        };
        if live.tag != target.tag && !changes.contains(&Change::Image) {
            changes.insert(0, Change::Image);
        }
        (!changes.is_empty()).then(|| {
            changes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        })
    }

    fn unsettled(&self, id: &str) -> bool {
        self.input.live.get(id).is_some_and(|l| !l.settled)
    }

    /// Every workload exists, runs its target and is settled.
    fn consistent(&self) -> bool {
        self.stale.is_empty()
            && self
                .input
                .targets
                .keys()
                .all(|id| self.input.live.get(id).is_some_and(|l| l.settled))
    }

    /// Existing workloads of `phase`, `node-10` after `node-9`.
    fn ids_in(&self, phase: UpgradePhase) -> Vec<&'a str> {
        let mut ids: Vec<&'a str> = self
            .input
            .targets
            .iter()
            .filter(|(id, t)| phase_of(t.component) == phase && self.input.live.contains_key(*id))
            .map(|(id, _)| id.as_str())
            .collect();
        ids.sort_by_key(|id| workload_order(id));
        ids
    }

    /// The workloads of the current step.
    fn batch(&self, phase: UpgradePhase) -> Vec<&'a str> {
        self.batch_among(phase, |_| true, |id| self.stale.contains_key(id))
    }

    /// The workloads of `phase` that move now, among those `eligible`, where `to_move` tells a
    /// workload whose live tag is not yet where this step takes it.
    fn batch_among(
        &self,
        phase: UpgradePhase,
        eligible: impl Fn(&str) -> bool,
        to_move: impl Fn(&str) -> bool,
    ) -> Vec<&'a str> {
        let ids = self.ids_in(phase);
        if phase != UpgradePhase::Nodes {
            return ids
                .into_iter()
                .filter(|id| eligible(id) && (to_move(id) || self.unsettled(id)))
                .collect();
        }
        // Every node that is not ready counts against maxUnavailable, whatever version it runs.
        // Rolling a node that is down already costs no availability, so those go first.
        let down: Vec<&'a str> = ids
            .iter()
            .copied()
            .filter(|id| self.unsettled(id))
            .collect();
        let room = self.input.max_unavailable.max(1).saturating_sub(down.len());
        let next = ids
            .iter()
            .copied()
            .filter(|id| eligible(id) && to_move(id) && !self.unsettled(id))
            .take(room);
        down.iter()
            .copied()
            .filter(|id| eligible(id))
            .chain(next)
            .collect()
    }

    /// Whether the target of a workload that failed differs from the tag it failed on.
    /// (A failure recorded with its revision is retargeted by any change of the pod template,
    /// a configuration fix for one.)
    fn retargeted<'b>(
        &self,
        failed: impl IntoIterator<Item = (&'b str, &'b str, Option<&'b str>)>,
    ) -> bool {
        failed.into_iter().any(|(id, tag, revision)| {
            self.input.targets.get(id).is_some_and(|target| {
                target.tag != tag || revision.is_some_and(|r| r != target.revision)
            })
        })
    }

    /// Workloads still to roll from `phase` on, in rollout order.
    fn remaining(&self, phase: UpgradePhase) -> Vec<String> {
        PHASES
            .iter()
            .filter(|p| **p >= phase)
            .flat_map(|p| self.ids_in(*p))
            .filter(|id| self.stale.contains_key(id) || self.unsettled(id))
            .map(str::to_owned)
            .collect()
    }

    /// The phase of the workloads a blocked rollout failed on.
    fn blocked_phase(&self, blocked: &UpgradeStatus) -> UpgradePhase {
        let listed = blocked.component.iter().flat_map(|c| c.split(','));
        blocked
            .rolling
            .keys()
            .map(String::as_str)
            .chain(listed)
            .filter_map(|id| self.input.targets.get(id))
            .map(|t| phase_of(t.component))
            .min()
            .unwrap_or(UpgradePhase::Datastores)
    }

    /// Tags for the workloads that must not move now: existing stale ones stay on their live
    /// tag, and absent ones (a scale-up, a deleted Deployment, a re-created StatefulSet) of a
    /// phase not `reached` come back on the tag their component ran before the rollout.
    fn pins(&self, reached: impl Fn(UpgradePhase) -> bool) -> BTreeMap<String, String> {
        let mut pins: BTreeMap<String, String> = self
            .stale
            .iter()
            .map(|(id, tag)| ((*id).to_owned(), (*tag).to_owned()))
            .collect();
        for (id, target) in self.input.targets {
            if self.input.live.contains_key(id) || reached(phase_of(target.component)) {
                continue;
            }
            if let Some(tag) = self.tag_before(target) {
                pins.insert(id.clone(), tag);
            }
        }
        pins
    }

    /// The tag a component ran before the rollout: that of a workload of it still on the old
    /// tag, else (for a component that follows spec.version) the version the cloud ran.
    /// `None` when the rollout does not change the component.
    fn tag_before(&self, target: &TargetWorkload) -> Option<String> {
        let mut siblings: Vec<&str> = self
            .input
            .targets
            .iter()
            .filter(|(id, t)| t.component == target.component && self.input.live.contains_key(*id))
            .map(|(id, _)| id.as_str())
            .collect();
        if !siblings.is_empty() {
            siblings.sort_by_key(|id| workload_order(id));
            return siblings
                .iter()
                .find_map(|id| self.stale.get(id))
                .map(|tag| (*tag).to_owned());
        }
        if target.tag == self.input.target_version {
            return self.from_version.clone();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        targets: BTreeMap<String, TargetWorkload>,
        live: BTreeMap<String, LiveWorkload>,
    }

    /// A cloud with mysql (own tag), bynamo, cloudmaster, 3 nodes and haproxy, all live at
    /// `from` and settled, and targets at `to`.
    fn cloud(from: &str, to: &str) -> Fixture {
        let mut targets = BTreeMap::new();
        let mut live = BTreeMap::new();
        let mut add = |id: &str, component: Component, from: &str, to: &str| {
            targets.insert(
                id.to_owned(),
                TargetWorkload {
                    component,
                    tag: to.to_owned(),
                    revision: String::new(),
                },
            );
            live.insert(
                id.to_owned(),
                LiveWorkload {
                    tag: from.to_owned(),
                    revision: None,
                    settled: true,
                },
            );
        };
        add("mysql", Component::Mysql, "8.4", "8.4");
        add("bynamo", Component::Bynamo, from, to);
        add("cloudmaster", Component::CloudMaster, from, to);
        for i in 0..3 {
            add(&format!("node-{i}"), Component::Node, from, to);
        }
        add("haproxy", Component::Haproxy, from, to);
        Fixture { targets, live }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("valid")
    }

    fn step(
        f: &Fixture,
        recorded: Option<&UpgradeStatus>,
        now: i64,
        max_unavailable: usize,
    ) -> RolloutDecision {
        decide(&input(f, recorded, now, max_unavailable))
    }

    /// The input of a reconcile at `now` rolling v1 -> v2 with a 600 s health timeout.
    fn input<'a>(
        f: &'a Fixture,
        recorded: Option<&'a UpgradeStatus>,
        now: i64,
        max_unavailable: usize,
    ) -> RolloutInput<'a> {
        RolloutInput {
            targets: &f.targets,
            live: &f.live,
            recorded,
            current_version: Some("v1"),
            target_version: "v2",
            max_unavailable,
            health_timeout: Duration::from_secs(600),
            now: at(now),
            paused: false,
            hold: None,
            on_failure: OnFailure::Halt,
            rollback_datastores: false,
        }
    }

    fn phase(d: &RolloutDecision) -> Option<UpgradePhase> {
        d.upgrade.as_ref().map(|u| u.phase)
    }

    fn component(d: &RolloutDecision) -> Option<String> {
        d.upgrade.as_ref().and_then(|u| u.component.clone())
    }

    fn settle(f: &mut Fixture, id: &str) {
        f.live.get_mut(id).expect("live").settled = true;
    }

    /// Sets the live tag of `ids` (settled), as if an earlier step had rolled them.
    fn already_on(f: &mut Fixture, tag: &str, ids: &[&str]) {
        for id in ids {
            let live = f.live.get_mut(*id).expect("live");
            live.tag = tag.to_owned();
            live.settled = true;
        }
    }

    /// Simulates the cluster applying the decision: rendered tags (pinned or target) become the
    /// live tag, unsettled; absent workloads are created.
    fn apply(f: &mut Fixture, d: &RolloutDecision) -> Vec<String> {
        let mut rolled = Vec::new();
        for (id, t) in &f.targets {
            let live = f.live.entry(id.clone()).or_insert_with(|| LiveWorkload {
                tag: String::new(),
                revision: None,
                settled: false,
            });
            let tag = d.pins.get(id).unwrap_or(&t.tag);
            if &live.tag != tag {
                live.tag = tag.clone();
                live.settled = false;
                rolled.push(id.clone());
            }
        }
        rolled
    }

    fn settle_all(f: &mut Fixture) {
        f.live.values_mut().for_each(|l| l.settled = true);
    }

    /// Drives reconciles one second apart until the rollout is Complete (at most 20): each
    /// decides, lets `look` see the decision, applies it with `apply` and settles everything.
    /// Returns what each reconcile rolled (reconciles that rolled nothing left out) and the
    /// last recorded status.
    fn roll_to_complete(
        f: &mut Fixture,
        decide_at: impl Fn(&Fixture, Option<&UpgradeStatus>, i64) -> RolloutDecision,
        apply: fn(&mut Fixture, &RolloutDecision) -> Vec<String>,
        mut look: impl FnMut(i64, &RolloutDecision),
    ) -> (Vec<Vec<String>>, UpgradeStatus) {
        let mut recorded: Option<UpgradeStatus> = None;
        let mut order = Vec::new();
        for t in 0..20 {
            let d = decide_at(f, recorded.as_ref(), t);
            look(t, &d);
            order.push(apply(f, &d));
            recorded = d.upgrade.clone();
            settle_all(f);
            if recorded
                .as_ref()
                .is_some_and(|u| u.phase == UpgradePhase::Complete)
            {
                break;
            }
        }
        order.retain(|rolled| !rolled.is_empty());
        (order, recorded.expect("a rollout was recorded"))
    }

    #[test]
    fn steady_cloud_has_no_rollout() {
        let f = cloud("v2", "v2");
        let d = step(&f, None, 0, 1);
        assert!(d.pins.is_empty());
        assert_eq!(d.upgrade, None);
    }

    #[test]
    fn upgrade_rolls_components_in_order_and_nodes_one_at_a_time() {
        let mut f = cloud("v1", "v2");
        let (order, done) = roll_to_complete(
            &mut f,
            |f, recorded, t| step(f, recorded, t, 1),
            apply,
            |_, _| {},
        );
        assert_eq!(
            order,
            vec![
                vec!["bynamo".to_owned()],
                vec!["cloudmaster".to_owned()],
                vec!["node-0".to_owned()],
                vec!["node-1".to_owned()],
                vec!["node-2".to_owned()],
                vec!["haproxy".to_owned()],
            ],
            "mysql keeps its own tag and never rolls; the rest roll one step at a time"
        );
        assert_eq!(done.phase, UpgradePhase::Complete);
        assert_eq!(done.from_version.as_deref(), Some("v1"));
    }

    #[test]
    fn max_unavailable_rolls_nodes_in_batches() {
        let mut f = cloud("v1", "v2");
        for id in ["bynamo", "cloudmaster"] {
            f.live.get_mut(id).expect("live").tag = "v2".into();
        }
        let d = step(&f, None, 0, 2);
        assert_eq!(
            d.upgrade
                .as_ref()
                .and_then(|u| u.component.clone())
                .as_deref(),
            Some("node-0,node-1")
        );
        assert_eq!(d.pins.get("node-2").map(String::as_str), Some("v1"));
        assert_eq!(d.pins.get("haproxy").map(String::as_str), Some("v1"));
    }

    #[test]
    fn unsettled_step_waits_then_blocks_after_the_health_timeout() {
        let mut f = cloud("v1", "v2");
        let d = step(&f, None, 0, 1);
        apply(&mut f, &d); // bynamo now on v2, never settles
        let d = step(&f, d.upgrade.as_ref(), 300, 1);
        assert_eq!(
            d.upgrade.as_ref().map(|u| u.phase),
            Some(UpgradePhase::Datastores)
        );
        assert_eq!(d.pins.get("cloudmaster").map(String::as_str), Some("v1"));
        let d = step(&f, d.upgrade.as_ref(), 601, 1);
        let blocked = d.upgrade.clone().expect("upgrade");
        assert_eq!(blocked.phase, UpgradePhase::Blocked);
        assert!(
            blocked
                .message
                .as_deref()
                .unwrap_or_default()
                .contains("bynamo did not become ready on v2")
        );
        assert!(
            blocked
                .message
                .as_deref()
                .unwrap_or_default()
                .ends_with("until spec.version or spec.metadataStore.managed.image changes"),
            "the message says what to change: {:?}",
            blocked.message
        );
        assert!(apply(&mut f, &d).is_empty(), "nothing further rolls");
        // Still blocked later, even if it settles: the rest still runs v1, so the cloud is not
        // healthy at one version, and nothing gave bynamo a new target.
        settle_all(&mut f);
        let d = step(&f, Some(&blocked), 1200, 1);
        assert_eq!(
            d.upgrade.as_ref().map(|u| u.phase),
            Some(UpgradePhase::Blocked)
        );
        assert!(apply(&mut f, &d).is_empty());
    }

    #[test]
    fn restart_resumes_from_recorded_status_and_live_state() {
        let mut f = cloud("v1", "v2");
        let d = step(&f, None, 0, 1);
        apply(&mut f, &d);
        settle_all(&mut f);
        let d = step(&f, d.upgrade.as_ref(), 10, 1);
        apply(&mut f, &d); // cloudmaster rolling
        // "Restart": decide again from the same recorded status; the step clock is kept.
        let again = step(&f, d.upgrade.as_ref(), 20, 1);
        assert_eq!(
            again.upgrade.as_ref().map(|u| u.phase),
            Some(UpgradePhase::CloudMaster)
        );
        assert_eq!(
            again
                .upgrade
                .as_ref()
                .and_then(|u| u.step_started_at.clone()),
            Some(Time(at(10)))
        );
        assert!(apply(&mut f, &again).is_empty(), "nothing is rolled twice");
    }

    #[test]
    fn rollback_uses_the_same_machinery() {
        let mut f = cloud("v1", "v2");
        let d = step(&f, None, 0, 1);
        apply(&mut f, &d); // bynamo on v2
        settle_all(&mut f);
        // The user sets spec.version back to v1: targets become v1 again.
        for t in f
            .targets
            .values_mut()
            .filter(|t| t.component != Component::Mysql)
        {
            t.tag = "v1".into();
        }
        let d = decide(&RolloutInput {
            targets: &f.targets,
            live: &f.live,
            recorded: d.upgrade.as_ref(),
            current_version: Some("v1"),
            target_version: "v1",
            max_unavailable: 1,
            health_timeout: Duration::from_secs(600),
            now: at(30),
            paused: false,
            hold: None,
            on_failure: OnFailure::Halt,
            rollback_datastores: false,
        });
        assert_eq!(apply(&mut f, &d), vec!["bynamo".to_owned()]);
        assert_eq!(d.upgrade.map(|u| u.to_version), Some("v1".to_owned()));
    }

    #[test]
    fn new_workloads_are_created_at_the_target_without_a_rollout() {
        let mut f = cloud("v2", "v2");
        f.targets.insert(
            "node-3".into(),
            TargetWorkload {
                component: Component::Node,
                tag: "v2".into(),
                revision: String::new(),
            },
        );
        let d = step(&f, None, 0, 1);
        assert!(d.pins.is_empty());
        assert_eq!(d.upgrade, None);
    }

    #[test]
    fn blocked_clears_when_the_last_step_turns_ready_just_after_its_deadline() {
        let mut f = cloud("v1", "v2");
        already_on(
            &mut f,
            "v2",
            &["bynamo", "cloudmaster", "node-0", "node-1", "node-2"],
        );
        let d = step(&f, None, 0, 1);
        assert_eq!(apply(&mut f, &d), vec!["haproxy".to_owned()]);
        let d = step(&f, d.upgrade.as_ref(), 601, 1);
        assert_eq!(phase(&d), Some(UpgradePhase::Blocked));
        // A second later HAProxy is ready: every component runs v2 and is settled.
        settle(&mut f, "haproxy");
        let d = step(&f, d.upgrade.as_ref(), 602, 1);
        assert_eq!(phase(&d), Some(UpgradePhase::Complete), "{:?}", d.upgrade);
        assert!(d.pins.is_empty());
    }

    #[test]
    fn reverting_a_failed_image_override_unblocks_the_rollout() {
        // spec.version stays v2 throughout; only bynamo's override tag changes.
        let mut f = cloud("v2", "v2");
        f.targets.get_mut("bynamo").expect("target").tag = "v2-bad".into();
        let d = step(&f, None, 0, 1);
        assert_eq!(apply(&mut f, &d), vec!["bynamo".to_owned()]);
        let blocked = step(&f, d.upgrade.as_ref(), 601, 1);
        assert_eq!(phase(&blocked), Some(UpgradePhase::Blocked));

        // Deleting the failed workload is not a new target: the rollout stays blocked. Its
        // previous tag is unknown (an override, no sibling), so it comes back on its target.
        let mut deleted = cloud("v2", "v2");
        deleted.targets = f.targets.clone();
        deleted.live.remove("bynamo");
        let d = step(&deleted, blocked.upgrade.as_ref(), 650, 1);
        assert_eq!(phase(&d), Some(UpgradePhase::Blocked));
        assert_eq!(d.pins.get("bynamo"), None);

        // The override is removed: bynamo rolls back to v2 under a fresh clock and the cloud
        // completes.
        f.targets.get_mut("bynamo").expect("target").tag = "v2".into();
        let d = step(&f, blocked.upgrade.as_ref(), 700, 1);
        assert_eq!(phase(&d), Some(UpgradePhase::Datastores), "{:?}", d.upgrade);
        assert_eq!(
            d.upgrade.as_ref().and_then(|u| u.step_started_at.clone()),
            Some(Time(at(700)))
        );
        assert_eq!(apply(&mut f, &d), vec!["bynamo".to_owned()]);
        settle_all(&mut f);
        let d = step(&f, d.upgrade.as_ref(), 710, 1);
        assert_eq!(phase(&d), Some(UpgradePhase::Complete), "{:?}", d.upgrade);
    }

    #[test]
    fn pause_freezes_the_step_clock() {
        let mut f = cloud("v1", "v2");
        let d = step(&f, None, 0, 1);
        apply(&mut f, &d); // bynamo rolling since 0, not ready yet
        let paused = |recorded: Option<&UpgradeStatus>, now: i64, f: &Fixture| {
            decide(&RolloutInput {
                paused: true,
                hold: None,
                ..input(f, recorded, now, 1)
            })
        };
        let d = paused(d.upgrade.as_ref(), 300, &f);
        assert_eq!(phase(&d), Some(UpgradePhase::Datastores));
        // Paused for far longer than the health timeout: nothing times out.
        let d = paused(d.upgrade.as_ref(), 5_000, &f);
        assert_eq!(phase(&d), Some(UpgradePhase::Datastores), "{:?}", d.upgrade);
        // Resumed at 5,000: 300 s were used before the pause, 300 are left.
        let d = step(&f, d.upgrade.as_ref(), 5_000, 1);
        assert_eq!(phase(&d), Some(UpgradePhase::Datastores), "{:?}", d.upgrade);
        let d = step(&f, d.upgrade.as_ref(), 5_299, 1);
        assert_eq!(phase(&d), Some(UpgradePhase::Datastores), "{:?}", d.upgrade);
        let d = step(&f, d.upgrade.as_ref(), 5_301, 1);
        assert_eq!(
            phase(&d),
            Some(UpgradePhase::Blocked),
            "300 + 301 s > 600 s"
        );
    }

    #[test]
    fn a_version_change_while_paused_starts_no_clock() {
        let f = cloud("v1", "v2");
        let d = decide(&RolloutInput {
            paused: true,
            ..input(&f, None, 0, 1)
        });
        assert_eq!(d.upgrade, None, "nothing is rolling while paused");
        let d = step(&f, d.upgrade.as_ref(), 5_000, 1);
        assert_eq!(phase(&d), Some(UpgradePhase::Datastores));
    }

    #[test]
    fn max_unavailable_counts_nodes_already_down_on_the_old_version() {
        let cases: [(&[&str], usize, &str); 4] = [
            // (nodes down on v1, maxUnavailable, the batch)
            (&["node-2"], 1, "node-2"),
            (&["node-1"], 2, "node-1,node-0"),
            (&["node-0", "node-2"], 1, "node-0,node-2"),
            (&[], 1, "node-0"),
        ];
        for (down, max_unavailable, batch) in cases {
            let mut f = cloud("v1", "v2");
            already_on(&mut f, "v2", &["bynamo", "cloudmaster"]);
            for id in down {
                f.live.get_mut(*id).expect("live").settled = false;
            }
            let d = step(&f, None, 0, max_unavailable);
            assert_eq!(component(&d).as_deref(), Some(batch), "down {down:?}");
            // Whatever is not in the batch stays where it is.
            let up_and_pinned = ["node-0", "node-1", "node-2"]
                .iter()
                .filter(|id| !batch.split(',').any(|b| b == **id))
                .all(|id| d.pins.get(*id).map(String::as_str) == Some("v1"));
            assert!(up_and_pinned, "down {down:?}: {:?}", d.pins);
        }
    }

    #[test]
    fn the_deadline_follows_the_workload_not_the_batch() {
        let mut f = cloud("v1", "v2");
        already_on(&mut f, "v2", &["bynamo", "cloudmaster"]);
        let d = step(&f, None, 0, 2);
        assert_eq!(
            apply(&mut f, &d),
            vec!["node-0".to_owned(), "node-1".to_owned()]
        );
        // node-0 gets ready, node-1 never does; node-2 joins the batch at 100.
        settle(&mut f, "node-0");
        let d = step(&f, d.upgrade.as_ref(), 100, 2);
        assert_eq!(component(&d).as_deref(), Some("node-1,node-2"));
        assert_eq!(
            d.upgrade.as_ref().and_then(|u| u.step_started_at.clone()),
            Some(Time(at(0))),
            "the step waits on node-1 since 0"
        );
        apply(&mut f, &d);
        let d = step(&f, d.upgrade.as_ref(), 601, 2);
        assert_eq!(phase(&d), Some(UpgradePhase::Blocked), "{:?}", d.upgrade);
        assert_eq!(component(&d).as_deref(), Some("node-1"));
    }

    #[test]
    fn absent_workloads_are_created_at_the_version_the_rollout_reached() {
        let mut f = cloud("v1", "v2");
        already_on(&mut f, "v2", &["bynamo"]);
        f.targets.insert(
            "node-3".into(),
            TargetWorkload {
                component: Component::Node,
                tag: "v2".into(),
                revision: String::new(),
            },
        );
        f.live.remove("haproxy");
        f.live.remove("bynamo");
        let d = step(&f, None, 0, 1);
        assert_eq!(phase(&d), Some(UpgradePhase::CloudMaster));
        let pin = |d: &RolloutDecision, id: &str| d.pins.get(id).cloned();
        assert_eq!(pin(&d, "node-3").as_deref(), Some("v1"), "a new node");
        assert_eq!(pin(&d, "haproxy").as_deref(), Some("v1"), "a deleted one");
        assert_eq!(pin(&d, "bynamo"), None, "its phase is done");

        // Blocked on cloudmaster: nothing after it comes back at v2 either.
        apply(&mut f, &d);
        settle(&mut f, "bynamo");
        let d = step(&f, d.upgrade.as_ref(), 601, 1);
        assert_eq!(phase(&d), Some(UpgradePhase::Blocked));
        f.live.remove("node-0");
        f.live.remove("cloudmaster");
        let d = step(&f, d.upgrade.as_ref(), 700, 1);
        assert_eq!(phase(&d), Some(UpgradePhase::Blocked));
        assert_eq!(pin(&d, "node-0").as_deref(), Some("v1"));
        assert_eq!(pin(&d, "haproxy").as_deref(), Some("v1"));
        assert_eq!(
            pin(&d, "cloudmaster").as_deref(),
            Some("v1"),
            "the failed one itself comes back on the version the cloud ran"
        );
    }

    fn held<'a>(
        f: &'a Fixture,
        recorded: Option<&'a UpgradeStatus>,
        now: i64,
        hold: &'a Hold,
    ) -> RolloutDecision {
        decide(&RolloutInput {
            hold: Some(hold),
            ..input(f, recorded, now, 1)
        })
    }

    #[test]
    fn a_held_version_change_waits_with_everything_on_the_old_version() {
        let mut f = cloud("v1", "v2");
        let ring = Hold::Start {
            reason: "WaitingForRing",
            message: "waiting for ring 0".into(),
        };
        let d = held(&f, None, 0, &ring);
        let waiting = d.upgrade.clone().expect("recorded");
        assert_eq!(waiting.phase, UpgradePhase::Waiting);
        assert_eq!(waiting.message.as_deref(), Some("waiting for ring 0"));
        assert!(apply(&mut f, &d).is_empty(), "nothing moves: {:?}", d.pins);
        // Still held later: nothing moves, no clock started.
        let d = held(&f, Some(&waiting), 900, &ring);
        assert_eq!(phase(&d), Some(UpgradePhase::Waiting));
        assert!(apply(&mut f, &d).is_empty());
        // Released: the rollout starts from the beginning, its clocks from now.
        let d = step(&f, Some(&waiting), 1000, 1);
        assert_eq!(phase(&d), Some(UpgradePhase::Datastores));
        assert_eq!(
            d.upgrade.as_ref().and_then(|u| u.step_started_at.clone()),
            Some(Time(at(1000)))
        );
        assert_eq!(apply(&mut f, &d), ["bynamo"]);
    }

    #[test]
    fn a_ring_or_queue_hold_does_not_stop_a_rollout_already_running() {
        let mut f = cloud("v1", "v2");
        let d = step(&f, None, 0, 1);
        apply(&mut f, &d);
        let ring = Hold::Start {
            reason: "WaitingForRing",
            message: "a canary failed".into(),
        };
        let d = held(&f, d.upgrade.as_ref(), 10, &ring);
        assert_eq!(phase(&d), Some(UpgradePhase::Datastores));
    }

    #[test]
    fn a_closing_window_lets_the_step_in_flight_finish_then_pauses_the_clocks() {
        let mut f = cloud("v1", "v2");
        let d = step(&f, None, 0, 1);
        apply(&mut f, &d); // bynamo rolling
        let closed = Hold::Window {
            opens_at: at(5000),
            message: "outside the maintenance windows".into(),
        };
        // The window closes with bynamo in flight: it goes on.
        let d = held(&f, d.upgrade.as_ref(), 100, &closed);
        assert_eq!(phase(&d), Some(UpgradePhase::Datastores));
        assert_eq!(d.upgrade.as_ref().and_then(|u| u.paused_at.clone()), None);
        settle_all(&mut f);
        // Bynamo done: the CloudMaster step does not begin; the clocks stop.
        let d = held(&f, d.upgrade.as_ref(), 200, &closed);
        let paused = d.upgrade.clone().expect("recorded");
        assert_eq!(paused.paused_at, Some(Time(at(200))), "{paused:?}");
        assert!(
            apply(&mut f, &d).is_empty(),
            "nothing new rolls: {:?}",
            d.pins
        );
        // Hours later the window opens: CloudMaster rolls with a fresh clock, not Blocked.
        let d = step(&f, Some(&paused), 5000, 1);
        assert_eq!(phase(&d), Some(UpgradePhase::CloudMaster));
        assert_eq!(apply(&mut f, &d), ["cloudmaster"]);
    }

    /// Drives a v1 -> v2 rollout with `onFailure: Rollback` where `never_ready` never gets ready
    /// on v2 (but does on v1): one reconcile every 100 s, each settling what it applied unless
    /// that is `never_ready` on v2. Returns each reconcile's phase and what it rolled.
    fn drive_rollback(
        f: &mut Fixture,
        never_ready: &str,
        rollback_datastores: bool,
        max_unavailable: usize,
    ) -> (Vec<(UpgradePhase, Vec<String>)>, UpgradeStatus) {
        let mut recorded: Option<UpgradeStatus> = None;
        let mut trace = Vec::new();
        for t in 0..60 {
            let d = decide(&RolloutInput {
                on_failure: OnFailure::Rollback,
                rollback_datastores,
                ..input(f, recorded.as_ref(), t * 100, max_unavailable)
            });
            let rolled = apply(f, &d);
            for (id, live) in f.live.iter_mut() {
                live.settled = !(id == never_ready && live.tag == "v2");
            }
            let upgrade = d.upgrade.clone().expect("a rollout");
            trace.push((upgrade.phase, rolled));
            if upgrade.phase == UpgradePhase::RolledBack {
                return (trace, upgrade);
            }
            recorded = Some(upgrade);
        }
        panic!("no rollback finished: {trace:?}");
    }

    fn rolled_in(trace: &[(UpgradePhase, Vec<String>)], phase: UpgradePhase) -> Vec<String> {
        trace
            .iter()
            .filter(|(p, _)| *p == phase)
            .flat_map(|(_, rolled)| rolled.clone())
            .collect()
    }

    #[test]
    fn a_missed_gate_rolls_the_moved_components_back_in_reverse_order() {
        let mut f = cloud("v1", "v2");
        let (trace, done) = drive_rollback(&mut f, "node-1", false, 1);
        // Forward: bynamo, cloudmaster, node-0, node-1 (never ready). Backward: node-1 (down,
        // so first), node-0, cloudmaster. Bynamo is a datastore: kept on v2.
        assert_eq!(
            rolled_in(&trace, UpgradePhase::RollingBack),
            vec!["node-1", "node-0", "cloudmaster"],
            "{trace:?}"
        );
        assert_eq!(done.failed.get("node-1").map(String::as_str), Some("v2"));
        let message = done.message.clone().unwrap_or_default();
        assert!(
            message.starts_with("rolled back to v1: node-1 did not become ready on v2 within 600s; bynamo kept on the new image"),
            "{message}"
        );
        let tags: Vec<(&str, &str)> = f
            .live
            .iter()
            .map(|(id, l)| (id.as_str(), l.tag.as_str()))
            .collect();
        assert_eq!(
            tags,
            vec![
                ("bynamo", "v2"),
                ("cloudmaster", "v1"),
                ("haproxy", "v1"),
                ("mysql", "8.4"),
                ("node-0", "v1"),
                ("node-1", "v1"),
                ("node-2", "v1"),
            ]
        );
        // spec.version still says v2: it is not tried again, whatever time passes.
        let d = decide(&RolloutInput {
            on_failure: OnFailure::Rollback,
            ..input(&f, Some(&done), 99_999, 1)
        });
        assert_eq!(phase(&d), Some(UpgradePhase::RolledBack));
        assert!(apply(&mut f, &d).is_empty(), "nothing moves: {:?}", d.pins);
        // A new node image retargets what failed: the rollout starts again.
        for id in ["node-0", "node-1", "node-2"] {
            f.targets.get_mut(id).expect("target").tag = "v2-fixed".into();
        }
        let d = decide(&RolloutInput {
            on_failure: OnFailure::Rollback,
            ..input(&f, Some(&done), 100_000, 1)
        });
        assert_eq!(
            phase(&d),
            Some(UpgradePhase::CloudMaster),
            "{:?}",
            d.upgrade
        );
        assert_eq!(apply(&mut f, &d), vec!["cloudmaster"]);
    }

    #[test]
    fn rollback_datastores_moves_the_datastores_back_last() {
        let mut f = cloud("v1", "v2");
        let (trace, done) = drive_rollback(&mut f, "node-0", true, 1);
        assert_eq!(
            rolled_in(&trace, UpgradePhase::RollingBack),
            vec!["node-0", "cloudmaster", "bynamo"],
            "{trace:?}"
        );
        assert_eq!(f.live["bynamo"].tag, "v1");
        assert!(!done.message.unwrap_or_default().contains("kept"));
    }

    #[test]
    fn a_failing_frontend_rolls_back_nodes_in_max_unavailable_batches() {
        let mut f = cloud("v1", "v2");
        let (trace, _) = drive_rollback(&mut f, "haproxy", false, 2);
        let back: Vec<&Vec<String>> = trace
            .iter()
            .filter(|(p, rolled)| *p == UpgradePhase::RollingBack && !rolled.is_empty())
            .map(|(_, rolled)| rolled)
            .collect();
        assert_eq!(
            back,
            vec![
                &vec!["haproxy".to_owned()],
                &vec!["node-0".to_owned(), "node-1".to_owned()],
                &vec!["node-2".to_owned()],
                &vec!["cloudmaster".to_owned()],
            ],
            "{trace:?}"
        );
    }

    #[test]
    fn halt_is_the_default_and_does_not_roll_back() {
        assert_eq!(
            crate::api::UpgradePolicy::default().on_failure,
            OnFailure::Halt
        );
        let mut f = cloud("v1", "v2");
        let d = step(&f, None, 0, 1);
        apply(&mut f, &d);
        let d = step(&f, d.upgrade.as_ref(), 601, 1);
        assert_eq!(phase(&d), Some(UpgradePhase::Blocked));
        assert!(apply(&mut f, &d).is_empty());
    }

    #[test]
    fn status_lists_the_steps_left() {
        let mut f = cloud("v1", "v2");
        let d = step(&f, None, 0, 1);
        assert_eq!(
            d.upgrade.as_ref().map(|u| u.remaining.clone()),
            Some(vec![
                "bynamo".to_owned(),
                "cloudmaster".to_owned(),
                "node-0".to_owned(),
                "node-1".to_owned(),
                "node-2".to_owned(),
                "haproxy".to_owned()
            ])
        );
        apply(&mut f, &d);
        settle_all(&mut f);
        let d = step(&f, d.upgrade.as_ref(), 10, 1);
        assert_eq!(
            d.upgrade.as_ref().map(|u| u.remaining.join(",")),
            Some("cloudmaster,node-0,node-1,node-2,haproxy".to_owned())
        );
    }

    // Revisions: a change of configuration, env or resources rolls like an image.

    const R1: &str = "image=i,config=c1,env=e,resources=r1,template=t";
    const R2: &str = "image=i,config=c2,env=e,resources=r1,template=t";

    /// A cloud at v2 where every workload but the datastores runs revision R1 and render wants
    /// R2 (a new config).
    fn reconfigured() -> Fixture {
        let mut f = cloud("v2", "v2");
        for (id, target) in &mut f.targets {
            let changes = !matches!(target.component, Component::Mysql | Component::Bynamo);
            target.revision = if changes { R2 } else { R1 }.to_owned();
            f.live.get_mut(id).expect("live").revision = Some(R1.to_owned());
        }
        f
    }

    fn at_v2<'a>(
        f: &'a Fixture,
        recorded: Option<&'a UpgradeStatus>,
        now: i64,
    ) -> RolloutInput<'a> {
        RolloutInput {
            current_version: Some("v2"),
            ..input(f, recorded, now, 1)
        }
    }

    /// Simulates the cluster applying a decision with revisions: a workload pinned to the tag
    /// it runs is held (not written); any other takes its target revision (at its pinned tag).
    fn apply_revisions(f: &mut Fixture, d: &RolloutDecision) -> Vec<String> {
        let mut rolled = Vec::new();
        for (id, t) in &f.targets {
            let live = f.live.get_mut(id).expect("live");
            if d.pins.get(id) == Some(&live.tag) {
                continue;
            }
            let tag = d.pins.get(id).unwrap_or(&t.tag).clone();
            if live.tag != tag || live.revision.as_deref() != Some(t.revision.as_str()) {
                live.tag = tag;
                live.revision = Some(t.revision.clone());
                live.settled = false;
                rolled.push(id.clone());
            }
        }
        rolled
    }

    #[test]
    fn a_config_change_rolls_in_order_one_node_at_a_time() {
        let mut f = reconfigured();
        let mut messages = Vec::new();
        let (order, done) = roll_to_complete(
            &mut f,
            |f, recorded, t| decide(&at_v2(f, recorded, t)),
            apply_revisions,
            |_, d| {
                messages.extend(d.upgrade.as_ref().and_then(|u| u.message.clone()));
                if let Some(cm) = d
                    .upgrade
                    .as_ref()
                    .and_then(|u| u.rolling.get("cloudmaster"))
                {
                    assert_eq!(cm.reason.as_deref(), Some("configuration"));
                    assert_eq!(cm.revision.as_deref(), Some(R2));
                }
            },
        );
        let one = |id: &str| vec![id.to_owned()];
        assert_eq!(
            order,
            vec![
                one("cloudmaster"),
                one("node-0"),
                one("node-1"),
                one("node-2"),
                one("haproxy")
            ],
            "the datastores' templates did not change; the rest roll one step at a time"
        );
        assert!(
            messages.contains(&"rolling node-1 to v2 (configuration)".to_owned()),
            "{messages:?}"
        );
        assert_eq!(done.phase, UpgradePhase::Complete);
        assert_eq!(done.from_version.as_deref(), Some("v2"));
    }

    #[test]
    fn a_change_after_a_finished_rollout_is_a_rollout_of_its_own() {
        let f = reconfigured();
        let finished = UpgradeStatus {
            started_at: Some(Time(at(-5000))),
            previous_tags: BTreeMap::from([("node-0".to_owned(), "v1".to_owned())]),
            ..UpgradeStatus::new(Some("v1".into()), "v2", UpgradePhase::Complete)
        };
        let d = decide(&at_v2(&f, Some(&finished), 0));
        let u = d.upgrade.expect("a rollout");
        assert_eq!(u.phase, UpgradePhase::CloudMaster);
        assert_eq!(u.from_version.as_deref(), Some("v2"), "from what runs now");
        assert_eq!(u.started_at, Some(Time(at(0))));
        assert_eq!(
            u.previous_tags,
            BTreeMap::from([("cloudmaster".to_owned(), "v2".to_owned())]),
            "the record of the finished rollout is not carried"
        );
        // Nothing not reached yet moves: every node and HAProxy are held on the tag they run.
        for id in ["node-0", "node-1", "node-2", "haproxy"] {
            assert_eq!(d.pins.get(id).map(String::as_str), Some("v2"), "{id}");
        }
    }

    #[test]
    fn a_config_step_that_misses_its_gate_blocks_until_the_config_changes_again() {
        let mut f = reconfigured();
        // CloudMaster moved and is ready; node-0 starts moving, and never gets ready.
        f.live.get_mut("cloudmaster").expect("live").revision = Some(R2.to_owned());
        let first = decide(&at_v2(&f, None, 0)).upgrade.expect("rolling");
        assert_eq!(first.component.as_deref(), Some("node-0"));
        let node = f.live.get_mut("node-0").expect("live");
        node.revision = Some(R2.to_owned());
        node.settled = false;
        let d = decide(&at_v2(&f, Some(&first), 601));
        let blocked = d.upgrade.expect("blocked");
        assert_eq!(blocked.phase, UpgradePhase::Blocked);
        let message = blocked.message.clone().unwrap_or_default();
        assert!(
            message.starts_with("node-0 did not become ready on v2 (configuration) within 600s")
                && message.ends_with("or the configuration of node-0 changes"),
            "{message}"
        );
        for id in ["node-1", "node-2", "haproxy"] {
            assert!(d.pins.contains_key(id), "{id} held while blocked");
        }
        // The same config stays blocked; a corrected one (a third revision) is a new target.
        let still = decide(&at_v2(&f, Some(&blocked), 700));
        assert_eq!(phase(&still), Some(UpgradePhase::Blocked));
        for target in f.targets.values_mut() {
            if target.revision == R2 {
                target.revision = "image=i,config=c3,env=e,resources=r1,template=t".into();
            }
        }
        let fixed = decide(&at_v2(&f, Some(&blocked), 700));
        assert_eq!(phase(&fixed), Some(UpgradePhase::CloudMaster), "re-planned");
    }

    #[test]
    fn a_rollback_returns_images_so_a_config_failure_halts() {
        let mut f = reconfigured();
        for id in ["cloudmaster", "node-0"] {
            f.live.get_mut(id).expect("live").revision = Some(R2.to_owned());
        }
        f.live.get_mut("node-0").expect("live").settled = false;
        let rollback = |f: &'_ Fixture, recorded, now| {
            decide(&RolloutInput {
                on_failure: OnFailure::Rollback,
                ..at_v2(f, recorded, now)
            })
        };
        let first = rollback(&f, None, 0).upgrade.expect("rolling");
        let d = rollback(&f, Some(&first), 601);
        assert_eq!(phase(&d), Some(UpgradePhase::Blocked));
    }

    #[test]
    fn workloads_written_before_revisions_roll_once_in_order() {
        // An operator upgrade: the old one recorded no revision (and named ConfigMaps without
        // their content hash, so the templates change): one ordered rollout, not all at once.
        let mut f = reconfigured();
        f.live.values_mut().for_each(|l| l.revision = None);
        let (order, _) = roll_to_complete(
            &mut f,
            |f, recorded, t| decide(&at_v2(f, recorded, t)),
            apply_revisions,
            |t, d| {
                if t == 0 {
                    let first = d.upgrade.as_ref().expect("a rollout");
                    assert_eq!(first.component.as_deref(), Some("bynamo,mysql"));
                    assert_eq!(
                        first.rolling["bynamo"].reason.as_deref(),
                        Some("pod template")
                    );
                }
            },
        );
        assert_eq!(order.len(), 6, "{order:?}");
        assert_eq!(order[2], ["node-0"], "{order:?}");
        assert_eq!(order[5], ["haproxy"], "{order:?}");
    }
}
