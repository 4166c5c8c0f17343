//! The version a workload runs survives the round trip render → cluster → observe without loss,
//! whatever tag the CRD accepts (up to 128 characters, starting with `_`), while the
//! `app.kubernetes.io/version` label stays a valid label value.

use std::collections::BTreeMap;
use std::time::Duration;

use insync_operator::api::{InSyncCloud, InSyncCloudSpec, OnFailure};
use insync_operator::controller::apply::FIELD_MANAGER;
use insync_operator::controller::cache;
use insync_operator::controller::observe::{self, Observed, WorkloadCounts};
use insync_operator::controller::rollout::{self, RolloutInput};
use insync_operator::render::{self, Component, RenderOptions, keys};
use k8s_openapi::jiff::Timestamp;

/// What the controller counts off a workload (in its watch) when the live one is as rendered.
fn workload_counts(object: &kube::api::DynamicObject) -> WorkloadCounts {
    cache::project_typed(object, FIELD_MANAGER)
        .workload()
        .map(|w| w.counts.clone())
        .unwrap_or_default()
}

fn cloud(version: &str) -> InSyncCloud {
    let mut cloud = InSyncCloud::new("long", InSyncCloudSpec::with_version(version));
    cloud.metadata.namespace = Some("versions".to_owned());
    cloud
}

/// Tags the CRD accepts that a label value cannot hold as they are.
fn awkward_tags() -> Vec<String> {
    vec![
        format!("_{}", "a".repeat(127)),
        format!("5.9.2-{}", "x".repeat(100)),
        "_hotfix.".to_owned(),
    ]
}

#[test]
fn the_observed_tag_of_a_rendered_workload_is_its_full_image_tag() {
    for tag in awkward_tags() {
        let rendered = render::render(&cloud(&tag), &RenderOptions::default()).expect("renders");
        let targets = observe::targets(&rendered);
        let follow_the_version: Vec<_> = targets
            .iter()
            .filter(|(_, t)| !matches!(t.component, Component::Mysql | Component::Minio))
            .collect();
        assert!(!follow_the_version.is_empty());
        for (id, target) in follow_the_version {
            assert_eq!(target.tag, tag, "target of {id}");
        }
        for desired in &rendered {
            let Some((_, id)) = &desired.workload else {
                continue;
            };
            assert_eq!(
                workload_counts(&desired.object).tag.as_ref(),
                Some(&targets[id].tag),
                "live tag of {id}"
            );
            let label = desired
                .object
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(keys::VERSION))
                .cloned()
                .unwrap_or_default();
            assert!(
                label.len() <= 63
                    && label.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && label.ends_with(|c: char| c.is_ascii_alphanumeric()),
                "{label:?} is not a label value"
            );
        }
    }
}

/// The first step of a rollout `from` → `to` on a settled cloud running `from`.
fn first_step(from: &str, to: &str) -> rollout::RolloutDecision {
    let live_objects = render::render(&cloud(from), &RenderOptions::default()).expect("renders");
    let wanted = render::render(&cloud(to), &RenderOptions::default()).expect("renders");
    let targets = observe::targets(&wanted);
    let counts = live_objects
        .iter()
        .filter_map(|d| Some((d.workload.clone()?.1, workload_counts(&d.object))))
        .collect();
    let observed = Observed::new(counts);
    let live: BTreeMap<_, _> = observed
        .live
        .into_iter()
        .map(|(id, mut w)| {
            w.settled = true;
            (id, w)
        })
        .collect();
    rollout::decide(&RolloutInput {
        targets: &targets,
        live: &live,
        recorded: None,
        current_version: Some(from),
        target_version: to,
        max_unavailable: 1,
        health_timeout: Duration::from_secs(600),
        now: Timestamp::UNIX_EPOCH,
        paused: false,
        hold: None,
        on_failure: OnFailure::Halt,
        rollback_datastores: false,
    })
}

#[test]
fn workloads_not_yet_reached_are_pinned_to_their_full_old_tag() {
    for from in awkward_tags() {
        let decision = first_step(&from, "5.9.3-r1");
        assert!(!decision.pins.is_empty(), "{from}: nothing pinned");
        for (id, pin) in &decision.pins {
            assert_eq!(
                pin, &from,
                "{id} would run an image tag that does not exist"
            );
        }
    }
}

#[test]
fn versions_sharing_their_first_63_characters_still_roll_in_order() {
    let common = format!("5.9.2-{}", "x".repeat(70));
    let decision = first_step(&format!("{common}-a"), &format!("{common}-b"));
    let upgrade = decision.upgrade.expect("a rollout starts");
    assert_eq!(upgrade.component.as_deref(), Some("bynamo"));
    assert_eq!(
        decision.pins.get("cloudmaster"),
        Some(&format!("{common}-a")),
        "cloudmaster waits for bynamo"
    );
}
