//! The rollout scenarios: a fixture cloud driven through reconciles by [`decide`], the cluster
//! simulated by `apply` and `settle`; one file a job of the state machine.

mod back;
mod forward;
mod pause;
mod revisions;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::{LiveWorkload, RolloutDecision, RolloutInput, TargetWorkload, decide};
use crate::api::{OnFailure, UpgradePhase, UpgradeStatus};
use crate::controller::gate::Hold;
use crate::render::Component;

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

/// Adds node `id` on `tag` to what render wants, not yet live (a scale-up).
fn scale_up(f: &mut Fixture, id: &str, tag: &str) {
    f.targets.insert(
        id.to_owned(),
        TargetWorkload {
            component: Component::Node,
            tag: tag.to_owned(),
            revision: String::new(),
        },
    );
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
