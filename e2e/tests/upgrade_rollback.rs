//! Automatic rollback (`spec.upgrade.onFailure: Rollback`) on the local control plane: the
//! operator runs as a process and kwok plays the kubelet. The failing step is staged with the
//! never-ready convention: the storage nodes' image override names the tag
//! `0.0.0-never-ready`, whose pods run but never become Ready.
//!
//! Run: `cargo build -p insync-operator && cargo test -p insync-e2e --test upgrade_rollback`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{Operator, condition, create, fcloud_no_dns, wait_ready};
use insync_e2e::{NEVER_READY_VERSION, TestNamespace, cluster, holds_for};
use insync_operator::api::{InSyncCloud, OnFailure, UpgradePhase};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

const READY_TIMEOUT: Duration = Duration::from_secs(180);
const OLD: &str = "5.9.1-r4178";
const NEW: &str = "5.9.2-r4190";

fn image_tag(template: &PodTemplateSpec) -> String {
    template
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.as_deref())
        .and_then(|image| image.rsplit_once(':'))
        .map(|(_, tag)| tag.to_owned())
        .unwrap_or_default()
}

/// The image tag of every workload of the cloud `fcloud`, keyed by object name.
async fn image_tags(ns: &TestNamespace) -> Result<BTreeMap<String, String>> {
    let by_instance = ListParams::default().labels("app.kubernetes.io/instance=fcloud");
    let mut tags = BTreeMap::new();
    for d in ns.api::<Deployment>().list(&by_instance).await? {
        if let Some(spec) = &d.spec {
            tags.insert(d.name_any(), image_tag(&spec.template));
        }
    }
    for s in ns.api::<StatefulSet>().list(&by_instance).await? {
        if let Some(spec) = &s.spec {
            tags.insert(s.name_any(), image_tag(&spec.template));
        }
    }
    Ok(tags)
}

async fn patch_spec(api: &Api<InSyncCloud>, spec: Value) -> Result<()> {
    api.patch(
        "fcloud",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await?;
    Ok(())
}

fn phase(cloud: &InSyncCloud) -> Option<UpgradePhase> {
    Some(cloud.status.as_ref()?.upgrade.as_ref()?.phase)
}

/// A version change whose storage nodes never get ready rolls CloudMaster and node-0 back to
/// the old version (node first), keeps Bynamo on its new image, says so in the conditions,
/// does not try again while nothing changes, and rolls forward once the node image is fixed.
#[tokio::test]
async fn a_failed_node_step_rolls_back_to_the_old_version_and_stays_there() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "rollback").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api: Api<InSyncCloud> = ns.api();
    let mut cloud = fcloud_no_dns(ns.name())?;
    cloud.spec.version = OLD.to_owned();
    cloud.spec.nodes.replicas = 3;
    cloud.spec.upgrade.health_timeout = "15s".to_owned();
    cloud.spec.upgrade.on_failure = OnFailure::Rollback;
    create(&api, &cloud).await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;

    let started = Instant::now();
    patch_spec(
        &api,
        json!({ "version": NEW, "nodes": { "image": { "tag": NEVER_READY_VERSION } } }),
    )
    .await?;

    // Watch the rollout: what is left, the phases it goes through, and the rollback's reason.
    let mut remaining_seen: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut phases: Vec<UpgradePhase> = Vec::new();
    let mut rolling_back_reason = None;
    let mut rollback_started = None;
    let deadline = Instant::now() + Duration::from_secs(150);
    let done = loop {
        let cloud = api.get("fcloud").await?;
        if let Some(upgrade) = cloud.status.as_ref().and_then(|s| s.upgrade.as_ref()) {
            if !upgrade.remaining.is_empty() {
                remaining_seen.insert(upgrade.remaining.clone());
            }
            if phases.last() != Some(&upgrade.phase) {
                phases.push(upgrade.phase);
            }
            if upgrade.phase == UpgradePhase::RollingBack {
                rollback_started.get_or_insert_with(Instant::now);
                let (_, reason, message) = condition(&cloud, "Degraded");
                rolling_back_reason.get_or_insert((reason, message));
            }
        }
        if phase(&cloud) == Some(UpgradePhase::RolledBack) {
            break cloud;
        }
        ensure!(
            Instant::now() < deadline,
            "no RolledBack after 150s (phases {phases:?}): {}",
            op.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let rolled_back_after = started.elapsed();
    eprintln!(
        "figures: rollout then rollback took {rolled_back_after:?}, rollback alone {:?}; phases {phases:?}",
        rollback_started.map(|t| t.elapsed())
    );

    ensure!(
        remaining_seen
            .iter()
            .any(|r| r.first().map(String::as_str) == Some("cloudmaster")
                && r.iter().any(|s| s == "haproxy")),
        "status.upgrade.remaining listed what was left: {remaining_seen:?}"
    );
    let (reason, message) = rolling_back_reason.context("a RollingBack status was seen")?;
    ensure!(
        reason == "RollingBack" && message.contains("node-0 did not become ready on"),
        "Degraded while rolling back: {reason}: {message}"
    );
    let (ready, ready_reason, _) = condition(&done, "Ready");
    let (degraded, degraded_reason, degraded_message) = condition(&done, "Degraded");
    ensure!(
        ready == "False" && ready_reason == "RolledBack",
        "Ready={ready} {ready_reason}"
    );
    ensure!(
        degraded == "True" && degraded_reason == "RolledBack",
        "Degraded={degraded} {degraded_reason}"
    );
    ensure!(
        degraded_message.starts_with(&format!(
            "rolled back to {OLD}: node-0 did not become ready"
        )) && degraded_message.contains("bynamo kept on the new image"),
        "{degraded_message}"
    );
    ensure!(
        done.status
            .as_ref()
            .and_then(|s| s.current_version.as_deref())
            == Some(OLD),
        "the cloud still runs {OLD}"
    );

    let tags = image_tags(&ns).await?;
    for name in [
        "fcloud-cloudmaster",
        "fcloud-node-0",
        "fcloud-node-1",
        "fcloud-node-2",
        "fcloud-haproxy",
    ] {
        ensure!(
            tags.get(name).map(String::as_str) == Some(OLD),
            "{name} is back on {OLD}: {tags:?}"
        );
    }
    ensure!(
        tags.get("fcloud-bynamo").map(String::as_str) == Some(NEW),
        "bynamo, a datastore, stays on its new image: {tags:?}"
    );

    // Nothing is tried again while the spec stays as it is, well past the health timeout.
    holds_for(
        "RolledBack with nothing moving",
        Duration::from_secs(20),
        || {
            let api = api.clone();
            let ns = &ns;
            let tags = &tags;
            async move {
                let cloud = api.get("fcloud").await?;
                Ok(phase(&cloud) == Some(UpgradePhase::RolledBack)
                    && image_tags(ns).await? == *tags)
            }
        },
    )
    .await?;

    // A fixed node image retargets what failed: the rollout starts again and completes.
    patch_spec(&api, json!({ "nodes": { "image": null } })).await?;
    let ready = wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;
    ensure!(
        ready
            .status
            .as_ref()
            .and_then(|s| s.current_version.as_deref())
            == Some(NEW),
        "the cloud runs {NEW} after the fix"
    );
    Ok(())
}
