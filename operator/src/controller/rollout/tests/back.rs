//! `onFailure`: a missed gate rolls back what the rollout moved, or halts.

use super::*;

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
