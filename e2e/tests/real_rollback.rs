//! An automatic rollback on real pods (the real node of `e2e/cluster up --real-node`, images
//! built by `e2e/images/build`), with the operator installed by its chart as a pod: a version
//! change whose storage node image never becomes ready (a tag no image carries, as a bad
//! release push would be) rolls back to the old version, through the same gates, and the
//! markers written before in MySQL, the metadata store and the object store are still there.
//!
//! Run: `cargo test -p insync-e2e --test real_rollback` (needs root for the real node; builds the
//! operator image from this checkout's HEAD when it changed).

mod common;
#[path = "common/real_pods.rs"]
mod real_pods;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::condition;
use insync_e2e::real_node;
use insync_e2e::{TestNamespace, helm, kubectl, poll_until, unique_name};
use insync_operator::api::{DnsProvider, InSyncCloud, OnFailure, UpgradePhase};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use real_pods::{READY_TIMEOUT, expect_markers, http, put_marker, real_fcloud, wait_cloud_ready};
use serde_json::json;

const OLD: &str = "5.9.1-r4178";
const NEW: &str = "5.9.2-r4190";
/// No image carries this tag: the node pods of the new version never start.
const MISSING_TAG: &str = "0.0.0-never-ready";
/// Node ports of this test's cloud (neither fcloud's 30443/30661 nor real_cloud's 30543/30561).
const MASTER_NODE_PORT: u16 = 30643;
const STORAGE_NODE_PORT: u16 = 30663;

/// Waits until CloudMaster's `/health`, through HAProxy, reports every datastore ok at `version`.
async fn wait_healthy(version: &str) -> Result<()> {
    poll_until(
        &format!("/health at {version} with every datastore ok"),
        READY_TIMEOUT,
        || async {
            let Ok((200, body)) = http(MASTER_NODE_PORT, "GET", "/health", "").await else {
                return Ok(None);
            };
            let health: serde_json::Value = serde_json::from_str(&body)?;
            let ok = ["database", "metadata", "objectstore"]
                .iter()
                .all(|k| health[k] == "ok")
                && health["version"] == version;
            Ok(ok.then_some(()))
        },
    )
    .await
}

async fn image_of(ns: &TestNamespace, deployment: &str) -> Result<String> {
    let d = ns.api::<Deployment>().get(deployment).await?;
    Ok(d.spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.first().and_then(|c| c.image.clone()))
        .unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_on_real_pods_keeps_the_data() -> Result<()> {
    let client = real_node::cluster().await?;
    common::install_crd().await?;
    let ns = TestNamespace::create(&client, "real-rollback").await?;
    let release_ns = unique_name("e2e-rollback-sys");
    real_pods::install_operator(&release_ns, ns.name(), None).await?;

    let api: Api<InSyncCloud> = ns.api();
    let mut cloud = real_fcloud(ns.name(), OLD, MASTER_NODE_PORT, STORAGE_NODE_PORT)?;
    if let Some(dns) = cloud.spec.dns.as_mut() {
        dns.provider = DnsProvider::None;
    }
    cloud.spec.upgrade.on_failure = OnFailure::Rollback;
    cloud.spec.upgrade.health_timeout = "60s".to_owned();
    api.create(&PostParams::default(), &cloud).await?;
    wait_cloud_ready(&api, OLD).await?;
    wait_healthy(OLD).await?;
    let mut markers = BTreeMap::new();
    put_marker(MASTER_NODE_PORT, "before-rollback", "r1").await?;
    markers.insert("before-rollback", "r1");
    expect_markers(MASTER_NODE_PORT, &markers, "writing").await?;

    let started = Instant::now();
    api.patch(
        "fcloud",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {
            "version": NEW,
            "nodes": {"image": {"tag": MISSING_TAG}},
        }})),
    )
    .await?;
    let mut rolling_back_at = None;
    let done = poll_until("the rollout to roll back", READY_TIMEOUT, || {
        let api = api.clone();
        async move {
            let cloud = api.get("fcloud").await?;
            let phase = cloud
                .status
                .as_ref()
                .and_then(|s| s.upgrade.as_ref())
                .map(|u| u.phase);
            Ok(match phase {
                Some(UpgradePhase::RollingBack) => Some((false, cloud)),
                Some(UpgradePhase::RolledBack) => Some((true, cloud)),
                _ => None,
            })
        }
    })
    .await?;
    if !done.0 {
        rolling_back_at = Some(started.elapsed());
    }
    let done = poll_until("RolledBack", READY_TIMEOUT, || {
        let api = api.clone();
        async move {
            let cloud = api.get("fcloud").await?;
            let rolled_back = cloud
                .status
                .as_ref()
                .and_then(|s| s.upgrade.as_ref())
                .is_some_and(|u| u.phase == UpgradePhase::RolledBack);
            Ok(rolled_back.then_some(cloud))
        }
    })
    .await?;
    eprintln!(
        "figures: version change -> RollingBack {rolling_back_at:?}, -> RolledBack {:?} (healthTimeout 60s)",
        started.elapsed()
    );
    let (_, reason, message) = condition(&done, "Degraded");
    ensure!(
        reason == "RolledBack" && message.contains("node-0 did not become ready"),
        "Degraded: {reason}: {message}"
    );

    for deployment in [
        "fcloud-cloudmaster",
        "fcloud-node-0",
        "fcloud-node-1",
        "fcloud-haproxy",
    ] {
        let image = image_of(&ns, deployment).await?;
        ensure!(
            image.ends_with(&format!(":{OLD}")),
            "{deployment} runs {image}"
        );
    }
    let bynamo = ns.api::<StatefulSet>().get("fcloud-bynamo").await?;
    let bynamo_image = bynamo
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.first().and_then(|c| c.image.clone()))
        .unwrap_or_default();
    ensure!(
        bynamo_image.ends_with(&format!(":{NEW}")),
        "Bynamo, a datastore, stays on its new image: {bynamo_image}"
    );

    // The old version serves again, on real pods, with the data written before the attempt.
    wait_healthy(OLD).await.context("the old version serving")?;
    expect_markers(MASTER_NODE_PORT, &markers, "the rollback").await?;
    put_marker(MASTER_NODE_PORT, "after-rollback", "r2").await?;
    markers.insert("after-rollback", "r2");
    expect_markers(MASTER_NODE_PORT, &markers, "writing after the rollback").await?;

    api.delete("fcloud", &DeleteParams::default()).await?;
    helm(&["uninstall", "isc", "-n", &release_ns, "--wait"]).await?;
    kubectl(&["delete", "namespace", &release_ns, "--wait=false"]).await?;
    ns.delete_and_wait(Duration::from_secs(180)).await?;
    Ok(())
}
