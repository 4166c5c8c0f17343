//! The rolling update: order, batches, health gates and blocks, absent workloads.

use super::*;

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
    scale_up(&mut f, "node-3", "v2");
    let d = step(&f, None, 0, 1);
    assert!(d.pins.is_empty());
    assert_eq!(d.upgrade, None);
}

#[test]
fn absent_workloads_are_created_at_the_version_the_rollout_reached() {
    let mut f = cloud("v1", "v2");
    already_on(&mut f, "v2", &["bynamo"]);
    scale_up(&mut f, "node-3", "v2");
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
