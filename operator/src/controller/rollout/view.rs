//! The targets and live workloads of one decision, with what is derived from them: which
//! workloads are stale, which phase is the current step, which workloads it moves, and which
//! must stay where they are.

use std::collections::BTreeMap;

use super::{LiveWorkload, PHASES, RolloutInput, TargetWorkload, phase_of, workload_order};
use crate::api::{UpgradePhase, UpgradeStatus};
use crate::render::revision::{self, Change};

/// Whether a live workload runs the target's revision. One written before revisions were
/// recorded does not: the operator that wrote it named its ConfigMaps differently, so its
/// template changes anyway, and it is rolled in its turn like any other change (a workload
/// whose template did not change settles at once). A target without a revision (tests of the
/// tag rules) is compared by its tag alone.
fn same_revision(live: &LiveWorkload, target: &TargetWorkload) -> bool {
    target.revision.is_empty() || live.revision.as_deref() == Some(target.revision.as_str())
}

/// The targets and live workloads of one decision, with what is derived from them.
pub(crate) struct View<'a> {
    input: &'a RolloutInput<'a>,
    /// Existing workloads whose live tag or revision differs from the target, with their live
    /// tag: the work still to do. A change of configuration, env or resources is work like a
    /// new image: it restarts the pods, so it goes through the same ordered steps.
    pub(crate) stale: BTreeMap<&'a str, &'a str>,
    /// The version the cloud ran before this rollout.
    pub(crate) from_version: Option<String>,
}

impl<'a> View<'a> {
    pub(crate) fn new(input: &'a RolloutInput<'a>, from_version: Option<String>) -> Self {
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
    pub(crate) fn reason(&self, id: &str) -> Option<String> {
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

    pub(crate) fn unsettled(&self, id: &str) -> bool {
        self.input.live.get(id).is_some_and(|live| !live.settled)
    }

    /// Workload `id` is still to roll: stale, or not yet settled.
    fn to_roll(&self, id: &str) -> bool {
        self.stale.contains_key(id) || self.unsettled(id)
    }

    /// Every workload exists, runs its target and is settled.
    pub(crate) fn consistent(&self) -> bool {
        self.stale.is_empty()
            && self
                .input
                .targets
                .keys()
                .all(|id| self.input.live.get(id).is_some_and(|live| live.settled))
    }

    /// Existing workloads of `phase`, `node-10` after `node-9`.
    pub(crate) fn ids_in(&self, phase: UpgradePhase) -> Vec<&'a str> {
        let mut ids: Vec<&'a str> = self
            .input
            .targets
            .iter()
            .filter(|(id, target)| {
                phase_of(target.component) == phase && self.input.live.contains_key(*id)
            })
            .map(|(id, _)| id.as_str())
            .collect();
        ids.sort_by_key(|id| workload_order(id));
        ids
    }

    /// The current step: the first phase with a workload that is stale or not yet settled.
    pub(crate) fn current_step(&self) -> Option<UpgradePhase> {
        PHASES
            .iter()
            .copied()
            .find(|phase| self.ids_in(*phase).iter().any(|id| self.to_roll(id)))
    }

    /// The workloads of the current step.
    pub(crate) fn batch(&self, phase: UpgradePhase) -> Vec<&'a str> {
        self.batch_among(phase, |_| true, |id| self.stale.contains_key(id))
    }

    /// The workloads of `phase` that move now, among those `eligible`, where `to_move` tells a
    /// workload whose live tag is not yet where this step takes it.
    pub(crate) fn batch_among(
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
    pub(crate) fn retargeted<'b>(
        &self,
        failed: impl IntoIterator<Item = (&'b str, &'b str, Option<&'b str>)>,
    ) -> bool {
        failed.into_iter().any(|(id, tag, revision)| {
            self.input.targets.get(id).is_some_and(|target| {
                target.tag != tag || revision.is_some_and(|failed_on| failed_on != target.revision)
            })
        })
    }

    /// Workloads still to roll from `phase` on, in rollout order.
    pub(crate) fn remaining(&self, phase: UpgradePhase) -> Vec<String> {
        PHASES
            .iter()
            .filter(|later| **later >= phase)
            .flat_map(|later| self.ids_in(*later))
            .filter(|id| self.to_roll(id))
            .map(str::to_owned)
            .collect()
    }

    /// The phase of the workloads a blocked rollout failed on.
    pub(crate) fn blocked_phase(&self, blocked: &UpgradeStatus) -> UpgradePhase {
        let listed = blocked
            .component
            .iter()
            .flat_map(|component| component.split(','));
        blocked
            .rolling
            .keys()
            .map(String::as_str)
            .chain(listed)
            .filter_map(|id| self.input.targets.get(id))
            .map(|target| phase_of(target.component))
            .min()
            .unwrap_or(UpgradePhase::Datastores)
    }

    /// Tags for the workloads that must not move now: existing stale ones stay on their live
    /// tag, and absent ones (a scale-up, a deleted Deployment, a re-created StatefulSet) of a
    /// phase not `reached` come back on the tag their component ran before the rollout.
    pub(crate) fn pins(&self, reached: impl Fn(UpgradePhase) -> bool) -> BTreeMap<String, String> {
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
            .filter(|(id, sibling)| {
                sibling.component == target.component && self.input.live.contains_key(*id)
            })
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
