//! Defects of the ordered, health-gated rollout (issue 11), end to end on the local control
//! plane: the operator runs as a process and kwok plays the kubelet. Failures are staged with
//! the never-ready convention ([`NEVER_READY_VERSION`]).
//!
//! Run: `cargo build -p insync-operator && cargo test -p insync-e2e --test upgrade_defects`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{Operator, condition, create, fcloud_no_dns, wait_ready};
use insync_e2e::{NEVER_READY_VERSION, TestNamespace, cluster, holds_for, poll_until, wait_for};
use insync_operator::api::{InSyncCloud, UpgradePhase};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodTemplateSpec};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

const READY_TIMEOUT: Duration = Duration::from_secs(180);
const OLD: &str = "5.9.1-r4178";

fn instance(name: &str) -> ListParams {
    ListParams::default().labels(&format!("app.kubernetes.io/instance={name}"))
}

/// The tag of the image a pod template runs: what the cluster would pull.
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

/// The image tag of every workload of the cloud, keyed by object name.
async fn image_tags(ns: &TestNamespace, cloud: &str) -> Result<BTreeMap<String, String>> {
    let mut tags = BTreeMap::new();
    for d in ns.api::<Deployment>().list(&instance(cloud)).await? {
        if let Some(spec) = &d.spec {
            tags.insert(d.name_any(), image_tag(&spec.template));
        }
    }
    for s in ns.api::<StatefulSet>().list(&instance(cloud)).await? {
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

fn upgrade_phase(cloud: &InSyncCloud) -> Option<(String, UpgradePhase)> {
    let upgrade = cloud.status.as_ref()?.upgrade.as_ref()?;
    Some((upgrade.to_version.clone(), upgrade.phase))
}

/// Waits until the cloud's rollout is Blocked and returns the cloud.
async fn wait_blocked(api: &Api<InSyncCloud>, op: &Operator) -> Result<InSyncCloud> {
    poll_until("UpgradeBlocked=True", Duration::from_secs(90), || async {
        let cloud = api.get("fcloud").await?;
        Ok((condition(&cloud, "UpgradeBlocked").0 == "True").then_some(cloud))
    })
    .await
    .with_context(|| op.log_tail())
}

/// A cloud created at `version` with the given health timeout, Ready.
async fn ready_cloud(
    ns: &TestNamespace,
    op: &Operator,
    version: &str,
    health_timeout: &str,
    nodes: i32,
) -> Result<Api<InSyncCloud>> {
    let api: Api<InSyncCloud> = ns.api();
    let mut cloud = fcloud_no_dns(ns.name())?;
    cloud.spec.version = version.to_owned();
    cloud.spec.upgrade.health_timeout = health_timeout.to_owned();
    cloud.spec.nodes.replicas = nodes;
    create(&api, &cloud).await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, op).await?;
    Ok(api)
}

/// Upgrading from a 128-character tag that starts with `_` (valid in the CRD, not as a label
/// value): the workloads not yet reached stay on that exact tag, never on a shortened one that
/// does not exist, and the rollout completes in order.
#[tokio::test]
async fn an_upgrade_from_a_long_tag_pins_workloads_to_that_exact_tag() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "longtag").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let long = format!("_{}", "7".repeat(127));
    let api = ready_cloud(&ns, &op, &long, "5m", 2).await?;
    let components = api
        .get("fcloud")
        .await?
        .status
        .context("status")?
        .components;
    ensure!(
        components
            .iter()
            .filter(|c| c.name == "cloudmaster")
            .all(|c| c.version.as_deref() == Some(long.as_str())),
        "the version reported is the full tag: {components:?}"
    );

    let new = "5.9.2-r4200";
    patch_spec(&api, json!({ "version": new })).await?;
    let started = Instant::now();
    loop {
        for (name, tag) in image_tags(&ns, "fcloud").await? {
            let known =
                tag == long || tag == new || name.ends_with("mysql") || name.ends_with("minio");
            ensure!(
                known,
                "{name} runs image tag {tag:?}, neither {long} nor {new}"
            );
        }
        let cloud = api.get("fcloud").await?;
        let current = cloud
            .status
            .as_ref()
            .and_then(|s| s.current_version.clone());
        if condition(&cloud, "Ready").0 == "True" && current.as_deref() == Some(new) {
            break;
        }
        ensure!(
            started.elapsed() < READY_TIMEOUT,
            "the rollout did not complete\n{}",
            op.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// A failed image override, reverted by hand, leaves the cloud healthy at its version: the
/// block lifts without a spec.version change.
#[tokio::test]
async fn reverting_a_failed_image_override_unblocks_the_cloud() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "revert").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api = ready_cloud(&ns, &op, OLD, "15s", 2).await?;

    let bynamo_image =
        |tag: Option<&str>| json!({"metadataStore": {"managed": {"image": {"tag": tag}}}});
    patch_spec(&api, bynamo_image(Some(NEVER_READY_VERSION))).await?;
    let blocked = wait_blocked(&api, &op).await?;
    let (_, reason, message) = condition(&blocked, "UpgradeBlocked");
    ensure!(
        message.contains("bynamo"),
        "UpgradeBlocked: {reason}: {message}"
    );

    patch_spec(&api, bynamo_image(None)).await?;
    let ready = wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;
    ensure!(
        condition(&ready, "UpgradeBlocked").0 == "False",
        "UpgradeBlocked: {:?}",
        condition(&ready, "UpgradeBlocked")
    );
    let tags = image_tags(&ns, "fcloud").await?;
    ensure!(
        tags.get("fcloud-bynamo").map(String::as_str) == Some(OLD),
        "bynamo runs {:?}",
        tags.get("fcloud-bynamo")
    );
    Ok(())
}

/// Pausing mid-rollout for longer than the health timeout, then resuming, completes the
/// rollout: nothing times out while nothing is applied.
#[tokio::test]
async fn pausing_mid_rollout_longer_than_the_health_timeout_does_not_block() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "pause").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api = ready_cloud(&ns, &op, OLD, "10s", 4).await?;

    let new = "5.9.2-r4200";
    patch_spec(&api, json!({ "version": new })).await?;
    wait_for("the rollout to start", Duration::from_secs(60), || async {
        Ok(upgrade_phase(&api.get("fcloud").await?).is_some_and(|(to, _)| to == new))
    })
    .await
    .with_context(|| op.log_tail())?;
    patch_spec(&api, json!({ "paused": true })).await?;
    let paused = poll_until(
        "the pause to take effect",
        Duration::from_secs(30),
        || async {
            let cloud = api.get("fcloud").await?;
            Ok((condition(&cloud, "Paused").0 == "True").then_some(cloud))
        },
    )
    .await
    .with_context(|| op.log_tail())?;
    ensure!(
        upgrade_phase(&paused).is_some_and(|(_, phase)| phase != UpgradePhase::Complete),
        "the rollout finished before the pause took effect; nothing was tested"
    );

    holds_for(
        "no block while paused (3 health timeouts)",
        Duration::from_secs(30),
        || async { Ok(condition(&api.get("fcloud").await?, "UpgradeBlocked").0 != "True") },
    )
    .await
    .with_context(|| op.log_tail())?;

    patch_spec(&api, json!({ "paused": false })).await?;
    let done = wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;
    ensure!(
        done.status
            .as_ref()
            .and_then(|s| s.current_version.as_deref())
            == Some(new),
        "currentVersion: {:?}",
        done.status.as_ref().and_then(|s| s.current_version.clone())
    );
    Ok(())
}

/// While blocked on the first step, a deleted Deployment and a new storage node come back on
/// the version the cloud ran, not on the version that failed.
#[tokio::test]
async fn absent_workloads_come_back_at_the_version_the_rollout_reached() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "absent").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api = ready_cloud(&ns, &op, OLD, "15s", 2).await?;

    patch_spec(&api, json!({ "version": NEVER_READY_VERSION })).await?;
    wait_blocked(&api, &op).await?;

    let deployments = ns.api::<Deployment>();
    for name in ["fcloud-haproxy", "fcloud-node-1"] {
        deployments.delete(name, &DeleteParams::default()).await?;
    }
    patch_spec(&api, json!({ "nodes": { "replicas": 3 } })).await?;
    let tags = poll_until(
        "the deleted and the new workloads to exist",
        Duration::from_secs(60),
        || async {
            let tags = image_tags(&ns, "fcloud").await?;
            let back = ["fcloud-haproxy", "fcloud-node-1", "fcloud-node-2"]
                .iter()
                .all(|name| tags.contains_key(*name));
            Ok(back.then_some(tags))
        },
    )
    .await
    .with_context(|| op.log_tail())?;
    for name in [
        "fcloud-haproxy",
        "fcloud-node-1",
        "fcloud-node-2",
        "fcloud-cloudmaster",
    ] {
        ensure!(
            tags.get(name).map(String::as_str) == Some(OLD),
            "{name} runs {:?} while the rollout is blocked on bynamo: {tags:?}",
            tags.get(name)
        );
    }
    ensure!(
        condition(&api.get("fcloud").await?, "UpgradeBlocked").0 == "True",
        "still blocked"
    );
    Ok(())
}

/// Adding a storage node leaves HAProxy's ConfigMap and Deployment as they are: its pods are
/// not replaced, so no client connection is dropped.
#[tokio::test]
async fn scaling_storage_nodes_does_not_restart_haproxy() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "scale").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api = ready_cloud(&ns, &op, OLD, "5m", 2).await?;

    let deployments = ns.api::<Deployment>();
    let config_maps = ns.api::<ConfigMap>();
    let before = deployments.get("fcloud-haproxy").await?;
    // The ConfigMap HAProxy mounts (named after its content).
    let config_name = before
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.volumes.as_ref())
        .and_then(|v| v.iter().find_map(|v| v.config_map.as_ref()))
        .map(|c| c.name.clone())
        .context("HAProxy mounts no ConfigMap")?;
    let config_before = config_maps.get(&config_name).await?.data;

    patch_spec(&api, json!({ "nodes": { "replicas": 3 } })).await?;
    wait_for("node-2 to exist", Duration::from_secs(60), || async {
        Ok(deployments.get_opt("fcloud-node-2").await?.is_some())
    })
    .await
    .with_context(|| op.log_tail())?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;

    let after = deployments.get("fcloud-haproxy").await?;
    ensure!(
        after.metadata.generation == before.metadata.generation,
        "the HAProxy Deployment changed: generation {:?} -> {:?}",
        before.metadata.generation,
        after.metadata.generation
    );
    ensure!(
        config_maps.get(&config_name).await?.data == config_before,
        "haproxy.cfg changed"
    );
    let replica_sets = ns
        .api::<ReplicaSet>()
        .list(&ListParams::default().labels("app.kubernetes.io/component=haproxy"))
        .await?;
    ensure!(
        replica_sets.items.len() == 1,
        "HAProxy rolled: {} ReplicaSets",
        replica_sets.items.len()
    );
    Ok(())
}

/// With `maxUnavailable: 1` and a storage node already down on the old version, no other node is
/// taken down: the down node is rolled first (rolling it costs no availability), then the others
/// one at a time.
#[tokio::test]
async fn a_node_already_down_counts_against_max_unavailable() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "maxunavail").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api = ready_cloud(&ns, &op, OLD, "2m", 3).await?;

    // Take node-1 down on the old version: its pod turns NotReady, as a kubelet would report a
    // failing readiness probe (kwok only moves Pending pods, so it leaves this one alone).
    let pods = ns.api::<Pod>();
    let node_1 = ListParams::default().labels("insync.dev/node-index=1");
    let not_ready = json!({"status": {"conditions": [
        {"type": "Ready", "status": "False"},
        {"type": "ContainersReady", "status": "False"},
    ]}});
    for pod in pods.list(&node_1).await? {
        pods.patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(not_ready.clone()),
        )
        .await?;
    }
    let deployments = ns.api::<Deployment>();
    wait_for("node-1 to be down", Duration::from_secs(60), || async {
        let d = deployments.get("fcloud-node-1").await?;
        let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
        Ok(ready == 0)
    })
    .await
    .with_context(|| op.log_tail())?;

    let new = "5.9.2-r4200";
    patch_spec(&api, json!({ "version": new })).await?;
    let started = Instant::now();
    let mut first_seen: BTreeMap<String, Duration> = BTreeMap::new();
    loop {
        for (name, tag) in image_tags(&ns, "fcloud").await? {
            if tag == new && name.starts_with("fcloud-node-") {
                first_seen.entry(name).or_insert_with(|| started.elapsed());
            }
        }
        let cloud = api.get("fcloud").await?;
        let current = cloud
            .status
            .as_ref()
            .and_then(|s| s.current_version.clone());
        if condition(&cloud, "Ready").0 == "True" && current.as_deref() == Some(new) {
            break;
        }
        ensure!(
            started.elapsed() < READY_TIMEOUT,
            "the rollout did not complete; nodes rolled at {first_seen:?}\n{}",
            op.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let order = ["fcloud-node-1", "fcloud-node-0", "fcloud-node-2"];
    for pair in order.windows(2) {
        let (a, b) = (first_seen.get(pair[0]), first_seen.get(pair[1]));
        ensure!(
            matches!((a, b), (Some(a), Some(b)) if a < b),
            "{} must roll before {}: {first_seen:?}",
            pair[0],
            pair[1]
        );
    }
    Ok(())
}
