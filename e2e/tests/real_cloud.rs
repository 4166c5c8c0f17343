//! A whole inSync Cloud on real pods (the real node of `e2e/cluster up --real-node`, images
//! built here by `e2e/images/build`): the operator installed with its Helm chart runs as a pod,
//! `examples/fcloud.yaml` (placed on the real node) comes up Ready by its containers' own probes
//! in a namespace that enforces the `restricted` Pod Security Standard, `/health` answers through
//! HAProxy's NodePort on this machine, and markers written in MySQL, the metadata store and the
//! object store survive a version bump, a killed datastore pod, an operator restart, and deleting
//! the cloud and applying it again.

mod common;
#[path = "../../operator/tests/support/moto.rs"]
#[allow(dead_code)]
mod moto;
#[path = "common/real_pods.rs"]
mod real_pods;
#[path = "../../operator/tests/support/route53.rs"]
#[allow(dead_code)]
mod route53;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::condition;
use insync_e2e::real_node;
use insync_e2e::{poll_until, unique_name, wait_for};
use insync_operator::api::{ImageOverride, InSyncCloud};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// The inSync release the cloud starts on and the one it is bumped to: both are built by
/// `e2e/images/build` (see docs/images.md).
const FROM_VERSION: &str = "5.9.1-r4178";
const TO_VERSION: &str = "5.9.2-r4190";
/// Node ports for this test's cloud (not fcloud's own 30443/30661, which `make demo` uses).
const MASTER_NODE_PORT: u16 = 30543;
const STORAGE_NODE_PORT: u16 = 30561;
use real_pods::{READY_TIMEOUT, wait_cloud_ready};

/// The helpers shared with the other real-pod tests, on this test's node ports.
async fn http(port: u16, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    real_pods::http(port, method, path, body).await
}

async fn put_marker(key: &str, value: &str) -> Result<()> {
    real_pods::put_marker(MASTER_NODE_PORT, key, value).await
}

async fn expect_markers(markers: &BTreeMap<&str, &str>, after: &str) -> Result<()> {
    real_pods::expect_markers(MASTER_NODE_PORT, markers, after).await
}

fn real_fcloud(namespace: &str) -> Result<InSyncCloud> {
    real_pods::real_fcloud(namespace, FROM_VERSION, MASTER_NODE_PORT, STORAGE_NODE_PORT)
}

async fn install_operator(
    release_ns: &str,
    watch: &str,
    dns_endpoint: &str,
) -> Result<real_pods::OperatorRelease> {
    real_pods::install_operator(release_ns, watch, Some(dns_endpoint)).await
}

/// CloudMaster's `/health` through HAProxy, parsed.
async fn health() -> Result<(u16, Value)> {
    let (code, body) = http(MASTER_NODE_PORT, "GET", "/health", "").await?;
    let json = serde_json::from_str(&body).with_context(|| format!("/health body {body:?}"))?;
    Ok((code, json))
}

/// Waits until `/health` through the front end says every datastore is ok at `version`.
async fn wait_healthy(version: &str) -> Result<Value> {
    poll_until(
        &format!("/health through the front end to report every datastore ok at {version}"),
        READY_TIMEOUT,
        || async {
            Ok(match health().await {
                Ok((200, h))
                    if ["database", "metadata", "objectstore"]
                        .iter()
                        .all(|k| h[k] == "ok")
                        && h["version"] == version =>
                {
                    Some(h)
                }
                _ => None,
            })
        },
    )
    .await
}

/// The cloud's pods that are not on their way out (a stopping pod drains for a few seconds).
async fn live_pods(api: &Api<Pod>) -> Result<Vec<Pod>> {
    let list = api
        .list(&ListParams::default().labels("app.kubernetes.io/instance=fcloud"))
        .await?;
    Ok(list
        .into_iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .collect())
}

/// Live pods of the cloud by name: (uid, component, creation time, ready).
async fn pods(api: &Api<Pod>) -> Result<BTreeMap<String, (String, String, String, bool)>> {
    Ok(live_pods(api)
        .await?
        .into_iter()
        .map(|pod| {
            let labels = pod.labels();
            let component = labels
                .get("app.kubernetes.io/component")
                .cloned()
                .unwrap_or_default();
            let created = pod
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default();
            let ready = pod_ready(&pod);
            (
                pod.name_any(),
                (pod.uid().unwrap_or_default(), component, created, ready),
            )
        })
        .collect())
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Every pod of the cloud runs on the real node, and every container is ready by its own probe.
async fn all_pods_real_and_ready(api: &Api<Pod>) -> Result<()> {
    let list = live_pods(api).await?;
    ensure!(
        list.len() >= 8,
        "expected at least 8 pods, got {}",
        list.len()
    );
    for pod in &list {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        ensure!(
            node == real_node::NODE_NAME,
            "pod {} runs on {node:?}",
            pod.name_any()
        );
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        ensure!(
            !statuses.is_empty(),
            "pod {} has no container status",
            pod.name_any()
        );
        for status in statuses {
            ensure!(
                status.ready && status.state.as_ref().is_some_and(|s| s.running.is_some()),
                "container {} of {} is not running and ready: {:?}",
                status.name,
                pod.name_any(),
                status.state
            );
            ensure!(
                status.image_id.starts_with("sha256:") || status.image_id.contains("@sha256:"),
                "container {} of {} ran no real image: {:?}",
                status.name,
                pod.name_any(),
                status.image_id
            );
        }
    }
    Ok(())
}

/// What the front end answered while a rollout ran.
#[derive(Debug, Default)]
struct Answers {
    /// 200 from CloudMaster with every datastore ok.
    ok: u64,
    /// 503 from CloudMaster: it was reached, but a datastore it checks was restarting (the
    /// single-replica Bynamo rolls with every inSync version).
    datastore_down: u64,
    /// The front end failed the request: refused, reset, timed out, or an answer that was not
    /// CloudMaster's.
    failed: u64,
}

/// While `running`, GETs `/health` through the front end every 50 ms and sorts the answers.
fn probe_front_end(running: Arc<AtomicBool>) -> tokio::task::JoinHandle<Answers> {
    tokio::spawn(async move {
        let mut answers = Answers::default();
        while running.load(Ordering::Relaxed) {
            match http(MASTER_NODE_PORT, "GET", "/health", "").await {
                Ok((200, _)) => answers.ok += 1,
                Ok((503, body)) if body.contains("\"role\":\"cloudmaster\"") => {
                    answers.datastore_down += 1
                }
                _ => answers.failed += 1,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        answers
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fcloud_runs_on_real_pods_and_its_data_survives() -> Result<()> {
    let client: Client = real_node::cluster().await?;
    common::install_crd().await?;

    // Route53 (moto) on the node's address, where the operator's pod can reach it.
    let host = real_node::node_ip()?;
    let moto = moto::Moto::start_on(&host);
    let r53 = route53::client(&moto.endpoint()).await;
    route53::create_zone(&r53, "drtst.org").await;

    // The cloud's namespace enforces the restricted Pod Security Standard.
    let ns = real_pods::restricted_namespace(&client, "real").await?;

    let release_ns = unique_name("e2e-real-sys");
    let started = Instant::now();
    let operator = install_operator(&release_ns, ns.name(), &moto.endpoint()).await?;
    eprintln!("operator pod Ready in {:.1?}", started.elapsed());

    let api: Api<InSyncCloud> = ns.api();
    let pod_api: Api<Pod> = ns.api();
    let applied = Instant::now();
    api.create(&PostParams::default(), &real_fcloud(ns.name())?)
        .await?;
    let cloud = wait_cloud_ready(&api, FROM_VERSION).await?;
    eprintln!("apply -> Ready on real pods: {:.1?}", applied.elapsed());
    all_pods_real_and_ready(&pod_api).await?;
    ensure!(
        condition(&cloud, "DNSReady").0 == "True",
        "DNSReady: {:?}",
        condition(&cloud, "DNSReady")
    );

    // Through HAProxy's NodePort on this machine to CloudMaster, which checks its datastores.
    let health = wait_healthy(FROM_VERSION).await?;
    eprintln!("/health through the front end: {health}");
    let mut markers = BTreeMap::new();
    put_marker("before-upgrade", "m1").await?;
    markers.insert("before-upgrade", "m1");
    expect_markers(&markers, "writing").await?;

    // A version bump: every inSync pod replaced, in order, datastores whose image did not change
    // untouched, the front end answering throughout.
    let before = pods(&pod_api).await?;
    let running = Arc::new(AtomicBool::new(true));
    let prober = probe_front_end(running.clone());
    let bump = Instant::now();
    api.patch(
        "fcloud",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"version": TO_VERSION}})),
    )
    .await?;
    wait_cloud_ready(&api, TO_VERSION).await?;
    let rollout = bump.elapsed();
    running.store(false, Ordering::Relaxed);
    let answers = prober.await?;
    eprintln!(
        "rollout {FROM_VERSION} -> {TO_VERSION}: {rollout:.1?}; /health through the front end \
         every 50 ms: {answers:?}"
    );
    ensure!(
        answers.ok > 0,
        "no request succeeded during the rollout: {answers:?}"
    );
    wait_healthy(TO_VERSION).await?;
    all_pods_real_and_ready(&pod_api).await?;
    let after = pods(&pod_api).await?;
    for (name, (uid, component, ..)) in &before {
        let kept = after.get(name).is_some_and(|(new_uid, ..)| new_uid == uid);
        let datastore_kept = matches!(component.as_str(), "mysql" | "minio");
        ensure!(
            kept == datastore_kept,
            "pod {name} ({component}) {} across the bump",
            if kept { "was kept" } else { "was replaced" }
        );
    }
    // The order promised: Bynamo, then CloudMaster, then the storage nodes, then HAProxy.
    // (first, last) creation time of a component's pods (RFC 3339 strings order as times).
    let started = |component: &str| {
        let times: Vec<&String> = after
            .values()
            .filter(|(_, c, ..)| c == component)
            .map(|(_, _, created, _)| created)
            .collect();
        let first = times
            .iter()
            .min()
            .map(|t| t.to_string())
            .unwrap_or_default();
        let last = times
            .iter()
            .max()
            .map(|t| t.to_string())
            .unwrap_or_default();
        (first, last)
    };
    for (earlier, later) in [
        ("bynamo", "cloudmaster"),
        ("cloudmaster", "node"),
        ("node", "haproxy"),
    ] {
        let ((_, last_earlier), (first_later, _)) = (started(earlier), started(later));
        ensure!(
            !last_earlier.is_empty() && last_earlier <= first_later,
            "{later} pods started ({first_later}) before the last {earlier} pod ({last_earlier})"
        );
    }
    expect_markers(&markers, "the version bump").await?;
    eprintln!("markers intact after the version bump; pods replaced in order");
    put_marker("after-upgrade", "m2").await?;
    markers.insert("after-upgrade", "m2");

    // A killed datastore pod comes back with its data.
    for datastore in ["fcloud-mysql-0", "fcloud-bynamo-0", "fcloud-minio-0"] {
        let old = pod_api.get(datastore).await?.uid();
        pod_api.delete(datastore, &DeleteParams::default()).await?;
        wait_for(
            &format!("{datastore} to come back Ready"),
            READY_TIMEOUT,
            || async {
                Ok(pod_api
                    .get_opt(datastore)
                    .await?
                    .is_some_and(|p| p.uid() != old && pod_ready(&p)))
            },
        )
        .await?;
        wait_healthy(TO_VERSION).await?;
        expect_markers(&markers, &format!("killing {datastore}")).await?;
        eprintln!("markers intact after killing {datastore}");
    }

    // An operator restart changes nothing.
    let operator_pods: Api<Pod> = Api::namespaced(client.clone(), &release_ns);
    let selector = "app.kubernetes.io/name=insync-operator";
    let old: Vec<String> = operator_pods
        .list(&ListParams::default().labels(selector))
        .await?
        .into_iter()
        .filter_map(|p| p.uid())
        .collect();
    operator_pods
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(selector),
        )
        .await?;
    wait_for("a new operator pod to be Ready", READY_TIMEOUT, || async {
        Ok(operator_pods
            .list(&ListParams::default().labels(selector))
            .await?
            .iter()
            .any(|p| !old.contains(&p.uid().unwrap_or_default()) && pod_ready(p)))
    })
    .await?;
    wait_cloud_ready(&api, TO_VERSION).await?;
    expect_markers(&markers, "an operator restart").await?;
    eprintln!("markers intact after an operator pod restart");

    // Delete the cloud: its pods go, its volumes and credentials stay; apply it again and the
    // same data is back.
    let volumes: Api<PersistentVolumeClaim> = ns.api();
    let claims_before: Vec<String> = volumes
        .list(&ListParams::default())
        .await?
        .into_iter()
        .map(|c| c.uid().unwrap_or_default())
        .collect();
    api.delete("fcloud", &DeleteParams::default()).await?;
    wait_for(
        "the cloud and its pods to be gone",
        READY_TIMEOUT,
        || async {
            Ok(api.get_opt("fcloud").await?.is_none()
                && pod_api
                    .list(&ListParams::default().labels("app.kubernetes.io/instance=fcloud"))
                    .await?
                    .items
                    .is_empty())
        },
    )
    .await?;
    let claims_after: Vec<String> = volumes
        .list(&ListParams::default())
        .await?
        .into_iter()
        .map(|c| c.uid().unwrap_or_default())
        .collect();
    ensure!(
        claims_after == claims_before,
        "volumes changed on delete: {claims_before:?} -> {claims_after:?}"
    );
    let secrets: Api<Secret> = ns.api();
    ensure!(
        secrets.get_opt("fcloud-mysql-credentials").await?.is_some(),
        "the MySQL credentials went with the cloud"
    );
    let mut again = real_fcloud(ns.name())?;
    again.spec.version = TO_VERSION.to_owned();
    api.create(&PostParams::default(), &again).await?;
    wait_cloud_ready(&api, TO_VERSION).await?;
    wait_healthy(TO_VERSION).await?;
    expect_markers(&markers, "deleting the cloud and applying it again").await?;
    eprintln!("markers intact after deleting the cloud and applying it again");

    // A datastore image change is a real rollout too: MySQL to another tag, data kept.
    api.patch(
        "fcloud",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"database": {"managed": {"image": ImageOverride {
                repository: None,
                tag: Some("8.4.6".to_owned()),
            }}}}}),
        ),
    )
    .await?;
    wait_for("MySQL to run 8.4.6", READY_TIMEOUT, || async {
        let pod = pod_api.get_opt("fcloud-mysql-0").await?;
        Ok(pod.is_some_and(|p| {
            pod_ready(&p)
                && p.spec.as_ref().is_some_and(|s| {
                    s.containers[0]
                        .image
                        .as_deref()
                        .is_some_and(|i| i.ends_with(":8.4.6"))
                })
        }))
    })
    .await?;
    wait_healthy(TO_VERSION).await?;
    expect_markers(&markers, "a MySQL image change").await?;
    eprintln!("markers intact after MySQL 8.4.5 -> 8.4.6");

    // Tear down in dependency order: the cloud while its operator still runs (its DNS
    // finalizer removes the records), then the operator, then the namespaces.
    api.delete("fcloud", &DeleteParams::default()).await?;
    wait_for("the cloud to be deleted", READY_TIMEOUT, || async {
        Ok(api.get_opt("fcloud").await?.is_none())
    })
    .await?;
    operator.uninstall().await?;
    ns.delete_and_wait(Duration::from_secs(180)).await?;
    Ok(())
}
