//! Revisions: a change of configuration, env or resources rolls like an image.

use super::*;

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

fn at_v2<'a>(f: &'a Fixture, recorded: Option<&'a UpgradeStatus>, now: i64) -> RolloutInput<'a> {
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
