//! The upgrade state machine, as a pure function.
//!
//! Given what render wants (a target image tag per workload), what the cluster runs (the live
//! tag per workload and whether its rollout is settled), and the rollout recorded in status,
//! it decides which workloads stay pinned to their live tag and what status to record. All
//! state lives in the cloud's status and the live objects, so an operator restart resumes.
//!
//! Order: datastores (only those whose own image changed), CloudMaster, storage nodes
//! (`maxUnavailable` at a time), HAProxy. A step that is not settled within the health
//! timeout blocks the rollout until `spec.version` changes again.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::{UpgradePhase, UpgradeStatus};
use crate::render::Component;

/// What the cluster runs for one workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveWorkload {
    /// Tag of the workload's pod template.
    pub tag: String,
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
}

/// What to render and record.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutDecision {
    /// Workloads to keep on their live tag for now.
    pub pins: BTreeMap<String, String>,
    /// The rollout to record in status (`None` when none ever started).
    pub upgrade: Option<UpgradeStatus>,
}

fn phase_of(component: Component) -> UpgradePhase {
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
fn workload_order(id: &str) -> (String, u64) {
    match id.rsplit_once('-') {
        Some((prefix, n)) if n.chars().all(|c| c.is_ascii_digit()) => {
            (prefix.to_owned(), n.parse().unwrap_or(0))
        }
        _ => (id.to_owned(), 0),
    }
}

/// Decides the next step of the rollout.
pub fn decide(input: &RolloutInput<'_>) -> RolloutDecision {
    // Existing workloads whose live tag differs from the target: the work still to do.
    let stale: BTreeMap<&str, &str> = input
        .targets
        .iter()
        .filter_map(|(id, target)| {
            let live = input.live.get(id)?;
            (live.tag != target.tag).then_some((id.as_str(), live.tag.as_str()))
        })
        .collect();
    let pin_all_stale = || {
        stale
            .iter()
            .map(|(id, tag)| ((*id).to_owned(), (*tag).to_owned()))
            .collect()
    };

    let recorded = input
        .recorded
        .filter(|r| r.to_version == input.target_version);
    let in_progress = recorded.is_some_and(|r| !matches!(r.phase, UpgradePhase::Complete));

    if let Some(blocked) = recorded.filter(|r| r.phase == UpgradePhase::Blocked) {
        // Blocked stays blocked until spec.version changes: freeze everything where it is.
        return RolloutDecision {
            pins: pin_all_stale(),
            upgrade: Some(blocked.clone()),
        };
    }
    if stale.is_empty() && !in_progress {
        return RolloutDecision {
            pins: BTreeMap::new(),
            upgrade: input.recorded.cloned(),
        };
    }

    // The first phase with a workload that is stale or not yet settled is the current step.
    let in_phase = |phase: UpgradePhase| {
        let mut ids: Vec<&str> = input
            .targets
            .iter()
            .filter(|(id, t)| {
                phase_of(t.component) == phase && input.live.contains_key(id.as_str())
            })
            .map(|(id, _)| id.as_str())
            .collect();
        ids.sort_by_key(|id| workload_order(id));
        ids
    };
    let unsettled = |id: &str| input.live.get(id).is_some_and(|l| !l.settled);
    let current = PHASES.iter().copied().find(|phase| {
        in_phase(*phase)
            .iter()
            .any(|id| stale.contains_key(id) || unsettled(id))
    });

    let from_version = recorded
        .and_then(|r| r.from_version.clone())
        .or_else(|| input.current_version.map(str::to_owned));
    let started_at = recorded
        .and_then(|r| r.started_at.clone())
        .unwrap_or(Time(input.now));

    let Some(phase) = current else {
        let upgrade = UpgradeStatus {
            from_version,
            to_version: input.target_version.to_owned(),
            phase: UpgradePhase::Complete,
            component: None,
            step_started_at: None,
            started_at: Some(started_at),
            message: Some(format!("every component runs {}", input.target_version)),
        };
        return RolloutDecision {
            pins: BTreeMap::new(),
            upgrade: Some(upgrade),
        };
    };

    let mut pins: BTreeMap<String, String> = pin_all_stale();
    let phase_ids = in_phase(phase);
    let rolling: Vec<&str> = if phase == UpgradePhase::Nodes {
        // Nodes already on the target but not ready count against maxUnavailable.
        let in_flight: Vec<&str> = phase_ids
            .iter()
            .copied()
            .filter(|id| !stale.contains_key(id) && unsettled(id))
            .collect();
        let room = input.max_unavailable.max(1).saturating_sub(in_flight.len());
        let next: Vec<&str> = phase_ids
            .iter()
            .copied()
            .filter(|id| stale.contains_key(id))
            .take(room)
            .collect();
        in_flight.into_iter().chain(next).collect()
    } else {
        phase_ids
            .iter()
            .copied()
            .filter(|id| stale.contains_key(id) || unsettled(id))
            .collect()
    };
    for id in &rolling {
        pins.remove(*id);
    }

    let component = rolling.join(",");
    let same_step = recorded
        .is_some_and(|r| r.phase == phase && r.component.as_deref() == Some(component.as_str()));
    let step_started_at = recorded
        .filter(|_| same_step)
        .and_then(|r| r.step_started_at.clone())
        .unwrap_or(Time(input.now));
    let waited = input.now.duration_since(step_started_at.0);
    let overdue = waited.as_secs() >= 0 && waited.unsigned_abs() > input.health_timeout;

    let mut upgrade = UpgradeStatus {
        from_version,
        to_version: input.target_version.to_owned(),
        phase,
        component: Some(component.clone()),
        step_started_at: Some(step_started_at),
        started_at: Some(started_at),
        message: Some(format!("rolling {component} to {}", input.target_version)),
    };
    if overdue {
        // Freeze: the failing workloads stay where they are, nothing else rolls.
        for id in &rolling {
            if let Some((id, tag)) = stale.get_key_value(id) {
                pins.insert((*id).to_owned(), (*tag).to_owned());
            }
        }
        upgrade.phase = UpgradePhase::Blocked;
        upgrade.message = Some(format!(
            "{component} did not become ready on {} within {}s; the rollout is stopped and no further component rolls until spec.version changes",
            input.target_version,
            input.health_timeout.as_secs()
        ));
    }
    RolloutDecision {
        pins,
        upgrade: Some(upgrade),
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
                },
            );
            live.insert(
                id.to_owned(),
                LiveWorkload {
                    tag: from.to_owned(),
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
        decide(&RolloutInput {
            targets: &f.targets,
            live: &f.live,
            recorded,
            current_version: Some("v1"),
            target_version: "v2",
            max_unavailable,
            health_timeout: Duration::from_secs(600),
            now: at(now),
        })
    }

    /// Simulates the cluster applying the unpinned targets: they become the live tag, unsettled.
    fn apply(f: &mut Fixture, d: &RolloutDecision) -> Vec<String> {
        let mut rolled = Vec::new();
        for (id, t) in &f.targets {
            let live = f.live.get_mut(id).expect("live");
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
        let mut recorded = None;
        let mut order = Vec::new();
        for t in 0..20 {
            let d = step(&f, recorded.as_ref(), t, 1);
            let rolled = apply(&mut f, &d);
            order.push(rolled);
            recorded = d.upgrade.clone();
            settle_all(&mut f);
            if recorded
                .as_ref()
                .is_some_and(|u| u.phase == UpgradePhase::Complete)
            {
                break;
            }
        }
        let order: Vec<Vec<String>> = order.into_iter().filter(|r| !r.is_empty()).collect();
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
        let done = recorded.expect("recorded");
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
        assert!(apply(&mut f, &d).is_empty(), "nothing further rolls");
        // Still blocked later, even if it settles: only a spec change restarts.
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
            },
        );
        let d = step(&f, None, 0, 1);
        assert!(d.pins.is_empty());
        assert_eq!(d.upgrade, None);
    }
}
