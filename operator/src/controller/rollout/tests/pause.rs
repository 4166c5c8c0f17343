//! `spec.paused`, gates that hold a rollout before it starts, and maintenance windows.

use super::*;

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
