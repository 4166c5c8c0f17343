//! An automatic rollback on real pods (the real node of `e2e/cluster up --real-node`, images
//! built by `e2e/images/build`), with the operator installed by its chart as a pod: a version
//! change whose storage node image starts but never passes its readiness probe (the stand-in's
//! never-ready tag, a release that is broken at run time) rolls the moved components back to
//! the old version in reverse order, through the same gates, and the markers written before in
//! MySQL, the metadata store and the object store are still there.
//!
//! Run: `cargo test -p insync-e2e --test real_rollback` (needs root for the real node; builds the
//! operator image from this checkout's HEAD when it changed).

mod common;
#[path = "common/real_pods.rs"]
mod real_pods;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::condition;
use insync_e2e::real_node;
use insync_e2e::{TestNamespace, poll_until, unique_name};
use insync_operator::api::{DnsProvider, InSyncCloud, OnFailure, UpgradePhase};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use real_pods::{READY_TIMEOUT, expect_markers, http, put_marker, real_fcloud, wait_cloud_ready};
use serde_json::json;

const OLD: &str = "5.9.1-r4178";
const NEW: &str = "5.9.2-r4190";
/// The stand-in images carry this tag too; a container of it runs but never opens its port, so
/// its tcpSocket readiness probe fails (docs/images.md).
const BROKEN_NODE_TAG: &str = insync_e2e::NEVER_READY_VERSION;
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

/// Waits until every Deployment and StatefulSet of the cloud has all its replicas updated and
/// ready: each real pod passes its own probe again.
async fn wait_workloads_ready(ns: &TestNamespace) -> Result<()> {
    poll_until("every workload ready", READY_TIMEOUT, || async {
        let deployments = ns.api::<Deployment>().list(&ListParams::default()).await?;
        let statefulsets = ns.api::<StatefulSet>().list(&ListParams::default()).await?;
        let deployments_ready = deployments.items.iter().all(|d| {
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            d.status.as_ref().is_some_and(|s| {
                s.ready_replicas == Some(want)
                    && s.updated_replicas == Some(want)
                    && s.replicas == Some(want)
            })
        });
        let statefulsets_ready = statefulsets.items.iter().all(|s| {
            let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            s.status
                .as_ref()
                .is_some_and(|s| s.ready_replicas == Some(want) && s.replicas == want)
        });
        Ok((deployments_ready && statefulsets_ready).then_some(()))
    })
    .await
}

/// A pod of node-0 on the broken tag whose container runs and is not ready.
fn broken_node_running_unready(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let on_broken_tag = spec
        .containers
        .first()
        .and_then(|c| c.image.as_deref())
        .is_some_and(|i| i.ends_with(&format!("/node:{BROKEN_NODE_TAG}")));
    let is_node_0 = pod
        .metadata
        .name
        .as_deref()
        .is_some_and(|n| n.starts_with("fcloud-node-0-"));
    let container = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first());
    let running_unready = container
        .is_some_and(|c| !c.ready && c.state.as_ref().is_some_and(|s| s.running.is_some()));
    on_broken_tag && is_node_0 && running_unready
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_on_real_pods_keeps_the_data() -> Result<()> {
    let client = real_node::cluster().await?;
    common::install_crd().await?;
    let ns = TestNamespace::create(&client, "real-rollback").await?;
    let release_ns = unique_name("e2e-rollback-sys");
    let operator = real_pods::install_operator(&release_ns, ns.name(), None).await?;
    roll_back_and_check(&ns).await?;
    let _ = ns
        .api::<InSyncCloud>()
        .delete("fcloud", &DeleteParams::default())
        .await;
    operator.uninstall().await?;
    ns.delete_and_wait(Duration::from_secs(180)).await
}

async fn roll_back_and_check(ns: &TestNamespace) -> Result<()> {
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
            "nodes": {"image": {"tag": BROKEN_NODE_TAG}},
        }})),
    )
    .await?;
    // Every (phase, component) the rollout passes through, in order, with when it was first seen.
    let mut steps: Vec<(UpgradePhase, String, Duration)> = Vec::new();
    let mut node_0_broken_running = false;
    let pods = ns.api::<Pod>();
    // A loop of its own rather than poll_until: a rollout that ends Blocked (rollback broken, or
    // onFailure: Halt) fails the test at once instead of after the timeout.
    let done = loop {
        ensure!(
            started.elapsed() < READY_TIMEOUT,
            "no RolledBack within {READY_TIMEOUT:?}; steps: {steps:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        // API errors (a busy apiserver) are retried until the deadline.
        let Ok(cloud) = api.get("fcloud").await else {
            continue;
        };
        let Some(upgrade) = cloud.status.as_ref().and_then(|s| s.upgrade.clone()) else {
            continue;
        };
        let step = (upgrade.phase, upgrade.component.clone().unwrap_or_default());
        if steps.last().is_none_or(|(p, c, _)| (*p, c.clone()) != step) {
            steps.push((step.0, step.1, started.elapsed()));
        }
        // The failure is real: node-0's new container runs, and its probe keeps it unready.
        if !node_0_broken_running && let Ok(list) = pods.list(&ListParams::default()).await {
            node_0_broken_running = list.items.iter().any(broken_node_running_unready);
        }
        match upgrade.phase {
            UpgradePhase::RolledBack => break cloud,
            UpgradePhase::Blocked | UpgradePhase::Complete => bail!(
                "the rollout ended {:?} instead of rolling back: {}; steps: {steps:?}",
                upgrade.phase,
                upgrade.message.unwrap_or_default()
            ),
            _ => {}
        }
    };
    let seen: Vec<String> = steps
        .iter()
        .map(|(p, c, t)| format!("{p:?} {c} at {:.0}s", t.as_secs_f64()))
        .collect();
    eprintln!(
        "figures: version change -> RolledBack {:.0}s (healthTimeout 60s); steps: {}",
        started.elapsed().as_secs_f64(),
        seen.join(", ")
    );
    ensure!(
        node_0_broken_running,
        "no node-0 pod of {BROKEN_NODE_TAG} was seen running unready: the failure was not a failing probe"
    );
    // Forward: bynamo, cloudmaster, node-0 (which fails); back: node-0 first, then cloudmaster.
    let forward: Vec<&str> = steps
        .iter()
        .filter(|(p, _, _)| {
            matches!(
                p,
                UpgradePhase::Datastores | UpgradePhase::CloudMaster | UpgradePhase::Nodes
            )
        })
        .map(|(_, c, _)| c.as_str())
        .collect();
    let back: Vec<&str> = steps
        .iter()
        .filter(|(p, _, _)| *p == UpgradePhase::RollingBack)
        .map(|(_, c, _)| c.as_str())
        .collect();
    ensure!(
        forward.ends_with(&["node-0"]) && !forward.contains(&"node-1"),
        "forward steps: {seen:?}"
    );
    ensure!(
        back == ["node-0", "cloudmaster"],
        "rollback steps: {seen:?}"
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
        let image = image_of(ns, deployment).await?;
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

    let current = done.status.as_ref().and_then(|s| s.current_version.clone());
    ensure!(
        current.as_deref() == Some(OLD),
        "status.currentVersion after the rollback: {current:?}"
    );

    // The old version serves again, on real pods, with the data written before the attempt.
    wait_workloads_ready(ns).await?;
    wait_healthy(OLD).await.context("the old version serving")?;
    expect_markers(MASTER_NODE_PORT, &markers, "the rollback").await?;
    put_marker(MASTER_NODE_PORT, "after-rollback", "r2").await?;
    markers.insert("after-rollback", "r2");
    expect_markers(MASTER_NODE_PORT, &markers, "writing after the rollback").await
}
