//! The operator end to end, on a real control plane: each test runs `insync-operator run` as a
//! process watching a namespace of its own and asserts on what the API server holds.
//!
//! Run: `cargo build -p insync-operator && cargo test -p insync-e2e --test operator`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{Operator, condition, create, fcloud_no_dns, wait_ready};
use insync_e2e::{
    NEVER_READY_VERSION, TestNamespace, cluster, holds_for, kubectl, kubectl_stdin, wait_for,
};
use insync_operator::api::{InSyncCloud, UpgradePhase};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

const READY_TIMEOUT: Duration = Duration::from_secs(180);

fn instance(name: &str) -> ListParams {
    ListParams::default().labels(&format!("app.kubernetes.io/instance={name}"))
}

fn template_tag(labels: Option<&BTreeMap<String, String>>) -> String {
    labels
        .and_then(|l| l.get("app.kubernetes.io/version"))
        .cloned()
        .unwrap_or_default()
}

/// Template tag of every workload of the cloud, keyed by object name.
async fn workload_tags(ns: &TestNamespace, cloud: &str) -> Result<BTreeMap<String, String>> {
    let mut tags = BTreeMap::new();
    for d in ns.api::<Deployment>().list(&instance(cloud)).await? {
        let labels = d
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.as_ref());
        tags.insert(d.name_any(), template_tag(labels));
    }
    for s in ns.api::<StatefulSet>().list(&instance(cloud)).await? {
        let labels = s
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.as_ref());
        tags.insert(s.name_any(), template_tag(labels));
    }
    Ok(tags)
}

async fn set_version(api: &Api<InSyncCloud>, name: &str, version: &str) -> Result<()> {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"version": version}})),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn fcloud_comes_up_ready_with_owned_children_and_costs_no_writes_when_steady() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "ready").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api: Api<InSyncCloud> = ns.api();
    let cloud = create(&api, &fcloud_no_dns(ns.name())?).await?;
    let uid = cloud.uid().context("uid")?;

    let ready = wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;
    let status = ready.status.clone().context("status")?;
    ensure!(
        status.current_version.as_deref() == Some("5.9.1-r4178"),
        "currentVersion: {:?}",
        status.current_version
    );
    ensure!(
        status.endpoint.as_deref() == Some("fcloud.drtst.org"),
        "endpoint: {:?}",
        status.endpoint
    );
    ensure!(
        status.components.iter().all(|c| c.ready),
        "components: {:?}",
        status.components
    );

    // kubectl wait works, and the printer columns show the version and readiness.
    kubectl(&[
        "wait",
        "--for=condition=Ready",
        "insynccloud/fcloud",
        "-n",
        ns.name(),
        "--timeout=30s",
    ])
    .await?;
    let table = kubectl(&["get", "isc", "-n", ns.name()]).await?;
    ensure!(
        table.contains("5.9.1-r4178")
            && table.contains("True")
            && table.contains("fcloud.drtst.org"),
        "kubectl get isc:\n{table}"
    );

    // Every child is owned by the cloud; data PVCs are not, so deleting the cloud keeps them.
    let deployments = ns.api::<Deployment>().list(&instance("fcloud")).await?;
    let names: Vec<String> = deployments.iter().map(ResourceExt::name_any).collect();
    for expected in [
        "fcloud-cloudmaster",
        "fcloud-node-0",
        "fcloud-node-1",
        "fcloud-haproxy",
    ] {
        ensure!(
            names.iter().any(|n| n == expected),
            "missing Deployment {expected}: {names:?}"
        );
    }
    let statefulsets = ns.api::<StatefulSet>().list(&instance("fcloud")).await?;
    ensure!(
        statefulsets.items.len() == 3,
        "expected mysql, bynamo, minio: {:?}",
        statefulsets
            .iter()
            .map(ResourceExt::name_any)
            .collect::<Vec<_>>()
    );
    let owned = |refs: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference]| {
        refs.iter()
            .any(|r| r.uid == uid && r.controller == Some(true))
    };
    for d in &deployments {
        ensure!(
            owned(d.owner_references()),
            "{} lacks the owner reference",
            d.name_any()
        );
    }
    for s in &statefulsets {
        ensure!(
            owned(s.owner_references()),
            "{} lacks the owner reference",
            s.name_any()
        );
    }
    for s in ns.api::<Service>().list(&instance("fcloud")).await? {
        ensure!(
            owned(s.owner_references()),
            "Service {} lacks the owner reference",
            s.name_any()
        );
    }
    for cm in ns.api::<ConfigMap>().list(&instance("fcloud")).await? {
        ensure!(
            owned(cm.owner_references()),
            "ConfigMap {} lacks the owner reference",
            cm.name_any()
        );
    }
    let pvcs = ns
        .api::<PersistentVolumeClaim>()
        .list(&ListParams::default())
        .await?;
    ensure!(
        pvcs.iter().any(|p| p.name_any() == "fcloud-node-0-data"),
        "node PVC missing"
    );
    ensure!(
        pvcs.iter().all(|p| !owned(p.owner_references())),
        "a PVC is owned by the cloud: it would be garbage-collected"
    );

    // Each significant step left an Event on the cloud.
    let events = kubectl(&[
        "get",
        "events",
        "-n",
        ns.name(),
        "--field-selector",
        "involvedObject.kind=InSyncCloud,involvedObject.name=fcloud",
        "-o",
        "jsonpath={.items[*].reason}",
    ])
    .await?;
    ensure!(
        events.contains("Applied") && events.contains("Ready"),
        "events on the cloud: {events}"
    );

    // Steady state: no writes to children or to the cloud's status.
    let applied = op.metric("insync_operator_objects_applied_total").await?;
    let rv = api.get("fcloud").await?.resource_version();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let applied_after = op.metric("insync_operator_objects_applied_total").await?;
    ensure!(
        applied_after == applied,
        "steady cloud caused writes: {applied} -> {applied_after}"
    );
    ensure!(
        api.get("fcloud").await?.resource_version() == rv,
        "steady cloud's object was rewritten"
    );
    ensure!(
        op.metric("insync_operator_objects_skipped_total").await? > 0.0,
        "no reconcile compared objects"
    );
    Ok(())
}

#[tokio::test]
async fn drift_is_healed() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "drift").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api: Api<InSyncCloud> = ns.api();
    create(&api, &fcloud_no_dns(ns.name())?).await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;

    // A deleted Deployment comes back.
    let deployments: Api<Deployment> = ns.api();
    let old_uid = deployments.get("fcloud-cloudmaster").await?.uid();
    deployments
        .delete("fcloud-cloudmaster", &DeleteParams::default())
        .await?;
    wait_for(
        "cloudmaster Deployment to be recreated",
        Duration::from_secs(60),
        || async {
            Ok(deployments
                .get_opt("fcloud-cloudmaster")
                .await?
                .is_some_and(|d| d.uid() != old_uid))
        },
    )
    .await
    .with_context(|| op.log_tail())?;

    // A hand-scaled Deployment is scaled back.
    deployments
        .patch(
            "fcloud-node-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await?;
    wait_for(
        "node-0 to be scaled back to 1",
        Duration::from_secs(60),
        || async {
            Ok(deployments
                .get("fcloud-node-0")
                .await?
                .spec
                .and_then(|s| s.replicas)
                == Some(1))
        },
    )
    .await
    .with_context(|| op.log_tail())?;

    // An edited haproxy.cfg is restored.
    let configmaps: Api<ConfigMap> = ns.api();
    let cm_name = configmaps
        .list(&instance("fcloud"))
        .await?
        .into_iter()
        .find(|cm| {
            cm.data
                .as_ref()
                .is_some_and(|d| d.contains_key("haproxy.cfg"))
        })
        .map(|cm| cm.name_any())
        .context("no ConfigMap with haproxy.cfg")?;
    let original = configmaps
        .get(&cm_name)
        .await?
        .data
        .and_then(|d| d.get("haproxy.cfg").cloned())
        .unwrap_or_default();
    configmaps
        .patch(
            &cm_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"haproxy.cfg": "global\n  # tampered\n"}})),
        )
        .await?;
    wait_for(
        "haproxy.cfg to be restored",
        Duration::from_secs(60),
        || async {
            Ok(configmaps
                .get(&cm_name)
                .await?
                .data
                .and_then(|d| d.get("haproxy.cfg").cloned())
                .as_deref()
                == Some(original.as_str()))
        },
    )
    .await
    .with_context(|| op.log_tail())?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;
    Ok(())
}

#[tokio::test]
async fn version_bump_rolls_components_in_order() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "upgrade").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api: Api<InSyncCloud> = ns.api();
    create(&api, &fcloud_no_dns(ns.name())?).await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;
    let before = workload_tags(&ns, "fcloud").await?;

    let new = "5.9.2-r4200";
    set_version(&api, "fcloud", new).await?;
    // Record when each workload's template first shows the new tag, and the phases seen.
    let started = Instant::now();
    let mut first_seen: BTreeMap<String, Duration> = BTreeMap::new();
    let mut phases = Vec::new();
    loop {
        for (name, tag) in workload_tags(&ns, "fcloud").await? {
            if tag == new {
                first_seen.entry(name).or_insert_with(|| started.elapsed());
            }
        }
        let cloud = api.get("fcloud").await?;
        if let Some(phase) = cloud
            .status
            .as_ref()
            .and_then(|s| s.upgrade.as_ref())
            .filter(|u| u.to_version == new)
            .map(|u| u.phase)
            && phases.last() != Some(&phase)
        {
            phases.push(phase);
        }
        let done = condition(&cloud, "Ready").0 == "True"
            && cloud
                .status
                .as_ref()
                .and_then(|s| s.current_version.as_deref())
                == Some(new);
        if done {
            break;
        }
        ensure!(
            started.elapsed() < READY_TIMEOUT,
            "upgrade did not finish; seen {first_seen:?}, phases {phases:?}\n{}",
            op.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let order = [
        "fcloud-bynamo",
        "fcloud-cloudmaster",
        "fcloud-node-0",
        "fcloud-node-1",
        "fcloud-haproxy",
    ];
    for pair in order.windows(2) {
        let (a, b) = (first_seen.get(pair[0]), first_seen.get(pair[1]));
        ensure!(
            matches!((a, b), (Some(a), Some(b)) if a < b),
            "{} must roll before {}: {first_seen:?}",
            pair[0],
            pair[1]
        );
    }
    // MySQL and MinIO are versioned on their own: a release bump does not restart them.
    let after = workload_tags(&ns, "fcloud").await?;
    for store in ["fcloud-mysql", "fcloud-minio"] {
        ensure!(
            before.get(store) == after.get(store),
            "{store} rolled: {:?} -> {:?}",
            before.get(store),
            after.get(store)
        );
    }
    ensure!(
        phases.first() == Some(&UpgradePhase::Datastores)
            && phases.last() == Some(&UpgradePhase::Complete),
        "phases: {phases:?}"
    );
    ensure!(
        phases.contains(&UpgradePhase::Nodes) && phases.contains(&UpgradePhase::Frontend),
        "phases: {phases:?}"
    );
    // The Deployments really rolled through new ReplicaSets.
    let replicasets = ns
        .api::<ReplicaSet>()
        .list(&ListParams::default().labels("app.kubernetes.io/component=cloudmaster"))
        .await?;
    ensure!(
        replicasets.items.len() == 2,
        "cloudmaster should have an old and a new ReplicaSet, has {}",
        replicasets.items.len()
    );
    let status = api.get("fcloud").await?.status.context("status")?;
    for c in status
        .components
        .iter()
        .filter(|c| !matches!(c.name.as_str(), "mysql" | "minio"))
    {
        ensure!(
            c.version.as_deref() == Some(new),
            "component {} reports {:?}",
            c.name,
            c.version
        );
    }
    Ok(())
}

#[tokio::test]
async fn failing_upgrade_blocks_and_rolls_nothing_further() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "blocked").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api: Api<InSyncCloud> = ns.api();
    let mut cloud = fcloud_no_dns(ns.name())?;
    cloud.spec.upgrade.health_timeout = "15s".into();
    create(&api, &cloud).await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;

    // kwok keeps pods of this version NotReady: the first component to roll (bynamo) fails.
    set_version(&api, "fcloud", NEVER_READY_VERSION).await?;
    let blocked =
        insync_e2e::poll_until("UpgradeBlocked=True", Duration::from_secs(90), || async {
            let cloud = api.get("fcloud").await?;
            Ok((condition(&cloud, "UpgradeBlocked").0 == "True").then_some(cloud))
        })
        .await
        .with_context(|| op.log_tail())?;
    let (_, reason, message) = condition(&blocked, "UpgradeBlocked");
    ensure!(
        reason == "HealthTimeout" && message.contains("bynamo"),
        "UpgradeBlocked: {reason}: {message}"
    );
    ensure!(
        condition(&blocked, "Ready").0 == "False",
        "a blocked cloud is not Ready"
    );
    ensure!(
        blocked
            .status
            .as_ref()
            .and_then(|s| s.upgrade.as_ref())
            .map(|u| u.phase)
            == Some(UpgradePhase::Blocked)
    );

    // Later components stay on the old version.
    holds_for(
        "later components to stay on the old version",
        Duration::from_secs(10),
        || async {
            let tags = workload_tags(&ns, "fcloud").await?;
            Ok([
                "fcloud-cloudmaster",
                "fcloud-node-0",
                "fcloud-node-1",
                "fcloud-haproxy",
            ]
            .iter()
            .all(|w| tags.get(*w).map(String::as_str) == Some("5.9.1-r4178")))
        },
    )
    .await?;

    // Rolling back uses the same machinery and the cloud recovers.
    set_version(&api, "fcloud", "5.9.1-r4178").await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;
    ensure!(condition(&api.get("fcloud").await?, "UpgradeBlocked").0 == "False");
    Ok(())
}

#[tokio::test]
async fn operator_restart_mid_upgrade_resumes_without_duplicates() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "restart").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api: Api<InSyncCloud> = ns.api();
    let mut cloud = fcloud_no_dns(ns.name())?;
    cloud.spec.nodes.replicas = 4;
    create(&api, &cloud).await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;

    let new = "5.9.2-r4300";
    set_version(&api, "fcloud", new).await?;
    wait_for(
        "the upgrade to reach the nodes",
        Duration::from_secs(120),
        || async {
            let c = api.get("fcloud").await?;
            Ok(c.status
                .and_then(|s| s.upgrade)
                .is_some_and(|u| u.phase == UpgradePhase::Nodes))
        },
    )
    .await
    .with_context(|| op.log_tail())?;
    op.kill().await?;

    let op = Operator::start(ns.name(), &[]).await?;
    let done = wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;
    ensure!(
        done.status
            .as_ref()
            .and_then(|s| s.current_version.as_deref())
            == Some(new)
    );
    let tags = workload_tags(&ns, "fcloud").await?;
    for (name, tag) in &tags {
        if !name.ends_with("mysql") && !name.ends_with("minio") {
            ensure!(tag == new, "{name} is on {tag}");
        }
    }
    // Nothing duplicated: each Deployment rolled exactly once (old + new ReplicaSet).
    let mut per_owner: BTreeMap<String, usize> = BTreeMap::new();
    for rs in ns.api::<ReplicaSet>().list(&instance("fcloud")).await? {
        let owner = rs
            .owner_references()
            .first()
            .map(|o| o.name.clone())
            .unwrap_or_default();
        *per_owner.entry(owner).or_default() += 1;
    }
    ensure!(
        per_owner.values().all(|n| *n == 2),
        "ReplicaSets per Deployment: {per_owner:?}"
    );
    ensure!(
        ns.api::<Deployment>()
            .list(&instance("fcloud"))
            .await?
            .items
            .len()
            == 6,
        "expected cloudmaster, 4 nodes, haproxy"
    );
    Ok(())
}

#[tokio::test]
async fn deleting_a_cloud_collects_children_and_keeps_volumes() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "delete").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api: Api<InSyncCloud> = ns.api();
    create(&api, &fcloud_no_dns(ns.name())?).await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;
    let pvcs_before: Vec<String> = ns
        .api::<PersistentVolumeClaim>()
        .list(&ListParams::default())
        .await?
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    ensure!(
        pvcs_before.len() >= 5,
        "expected node and datastore PVCs: {pvcs_before:?}"
    );

    api.delete("fcloud", &DeleteParams::foreground()).await?;
    wait_for(
        "children to be garbage-collected",
        Duration::from_secs(120),
        || async {
            let d = ns
                .api::<Deployment>()
                .list(&instance("fcloud"))
                .await?
                .items
                .len();
            let s = ns
                .api::<StatefulSet>()
                .list(&instance("fcloud"))
                .await?
                .items
                .len();
            let svc = ns
                .api::<Service>()
                .list(&instance("fcloud"))
                .await?
                .items
                .len();
            Ok(d + s + svc == 0 && api.get_opt("fcloud").await?.is_none())
        },
    )
    .await
    .with_context(|| op.log_tail())?;
    let pvcs_after: Vec<String> = ns
        .api::<PersistentVolumeClaim>()
        .list(&ListParams::default())
        .await?
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    ensure!(
        pvcs_after == pvcs_before,
        "PVCs changed: {pvcs_before:?} -> {pvcs_after:?}"
    );
    Ok(())
}

#[tokio::test]
async fn invalid_manifests_are_refused_by_the_api_server() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "invalid").await?;
    common::install_crd().await?;
    let manifest = |spec: &str| {
        format!(
            "apiVersion: insync.dev/v1alpha1\nkind: InSyncCloud\nmetadata: {{name: fcloud, namespace: {}}}\nspec:\n{spec}",
            ns.name()
        )
    };
    let cases = [
        (
            "  version: '5.9'\n  objectStore: {minio: {replicas: 2}}\n",
            "MinIO erasure sets need at least 4 drives",
        ),
        (
            "  version: '5.9'\n  database: {}\n",
            "database needs exactly one of 'managed' or 'external'",
        ),
        (
            "  version: 'bad tag'\n",
            "version must be a valid image tag",
        ),
        (
            "  version: '5.9'\n  master: {replicas: 12}\n",
            "master.replicas must be between 1 and 9",
        ),
        (
            "  version: '5.9'\n  dns: {domain: 'Not A Domain'}\n",
            "domain must be a lower-case DNS name",
        ),
        (
            "  version: '5.9'\n  placement: {tolerations: [{key: k, operator: Matches}]}\n",
            "supported values: \"Exists\", \"Equal\"",
        ),
        (
            "  version: '5.9'\n  nodes: {placement: {tolerations: [{key: k, operator: Exists, value: v}]}}\n",
            "a toleration with operator Exists must not set a value",
        ),
        (
            "  version: '5.9'\n  frontend: {placement: {priorityClassName: Not_Valid}}\n",
            "priorityClassName must be a DNS subdomain",
        ),
        // Issue 18, item 8: strings that reach a config file, SQL, a command line or a URL
        // (these run the CRD's patterns in the API server's own regex engine).
        (
            "  version: '5.9'\n  database: {external: {host: \"db.example\\n[evil]\", port: 3306, database: insync, secretRef: {name: db}}}\n",
            "database.external.host must be a host name",
        ),
        (
            "  version: '5.9'\n  database: {external: {host: db.example, port: 3306, database: '--all-databases', secretRef: {name: db}}}\n",
            "database.external.database must be 1-64 letters",
        ),
        (
            "  version: '5.9'\n  metadataStore: {external: {region: us-east-1, tablePrefix: '-x'}}\n",
            "tablePrefix must be at most 64 letters",
        ),
        (
            "  version: '5.9'\n  objectStore: {s3: {bucket: insync, region: us-east-1, endpoint: 'http://s3.example/ x'}}\n",
            "endpoint must be an http(s) URL",
        ),
        (
            "  version: '5.9'\n  restore: {backup: '../other'}\n",
            "backup must be the name of an InSyncCloudBackup",
        ),
    ];
    for (spec, message) in cases {
        let result = kubectl_stdin(&["apply", "-f", "-"], &manifest(spec)).await;
        let err = result.err().map(|e| format!("{e:#}")).unwrap_or_default();
        ensure!(
            err.contains(message),
            "expected the API server to refuse with {message:?}, got: {err:?}"
        );
    }
    // Storage may grow but never shrink (a transition rule).
    kubectl_stdin(
        &["apply", "-f", "-"],
        &manifest("  version: '5.9'\n  nodes: {storage: {size: 50Gi}}\n"),
    )
    .await?;
    kubectl_stdin(
        &["apply", "-f", "-"],
        &manifest("  version: '5.9'\n  nodes: {storage: {size: 60Gi}}\n"),
    )
    .await?;
    let shrink = kubectl_stdin(
        &["apply", "-f", "-"],
        &manifest("  version: '5.9'\n  nodes: {storage: {size: 10Gi}}\n"),
    )
    .await;
    let err = shrink.err().map(|e| format!("{e:#}")).unwrap_or_default();
    ensure!(
        err.contains("storage size may not shrink"),
        "shrink was not refused: {err:?}"
    );
    // A bad cloud name is refused too.
    let bad_name = "apiVersion: insync.dev/v1alpha1\nkind: InSyncCloud\nmetadata: {name: a.b, namespace: NS}\nspec: {version: '1'}\n".replace("NS", ns.name());
    let err = kubectl_stdin(&["apply", "-f", "-"], &bad_name)
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    ensure!(
        err.contains("metadata.name must be a DNS label"),
        "bad name: {err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn paused_cloud_gets_no_writes() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "paused").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api: Api<InSyncCloud> = ns.api();
    create(&api, &fcloud_no_dns(ns.name())?).await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;
    api.patch(
        "fcloud",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": true}})),
    )
    .await?;
    wait_for("Paused=True", Duration::from_secs(30), || async {
        Ok(condition(&api.get("fcloud").await?, "Paused").0 == "True")
    })
    .await?;
    let deployments: Api<Deployment> = ns.api();
    deployments
        .delete("fcloud-haproxy", &DeleteParams::default())
        .await?;
    holds_for(
        "haproxy to stay deleted while paused",
        Duration::from_secs(8),
        || async { Ok(deployments.get_opt("fcloud-haproxy").await?.is_none()) },
    )
    .await?;
    api.patch(
        "fcloud",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": false}})),
    )
    .await?;
    wait_for(
        "haproxy to come back after unpausing",
        Duration::from_secs(60),
        || async { Ok(deployments.get_opt("fcloud-haproxy").await?.is_some()) },
    )
    .await
    .with_context(|| op.log_tail())?;
    Ok(())
}

#[tokio::test]
async fn leader_election_lets_one_replica_write_and_fails_over() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "leader").await?;
    let lease_args = ["--leader-elect", "--lease-namespace", ns.name()];
    let first = Operator::start(ns.name(), &lease_args).await?;
    // A replica waiting for the lease is ready at once (a standby serves its purpose): the
    // first one leads once its create of the Lease went through, a round trip later.
    wait_for(
        "the first replica to lead",
        Duration::from_secs(30),
        || async { Ok(first.metric("insync_operator_leader").await? == 1.0) },
    )
    .await?;
    // The second replica is a ready standby that does not lead.
    let second = Operator::start(ns.name(), &lease_args).await?;
    ensure!(
        first.metric("insync_operator_leader").await? == 1.0,
        "the first replica should still lead"
    );
    ensure!(
        second.metric("insync_operator_leader").await? == 0.0,
        "the standby must not lead"
    );
    let api: Api<InSyncCloud> = ns.api();
    create(&api, &fcloud_no_dns(ns.name())?).await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &first).await?;
    let lease = kubectl(&[
        "get",
        "lease",
        "insync-operator",
        "-n",
        ns.name(),
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])
    .await?;
    ensure!(!lease.is_empty(), "no lease holder");
    // SIGTERM: the leader exits cleanly and hands the lease over.
    let exit = first.terminate().await?;
    ensure!(exit.success(), "operator exited with {exit}");
    wait_for(
        "the standby to take the lease",
        Duration::from_secs(60),
        || async { Ok(second.metric("insync_operator_leader").await? == 1.0) },
    )
    .await
    .with_context(|| second.log_tail())?;
    ns.api::<Deployment>()
        .delete("fcloud-haproxy", &DeleteParams::default())
        .await?;
    let deployments: Api<Deployment> = ns.api();
    wait_for(
        "the new leader to heal drift",
        Duration::from_secs(60),
        || async { Ok(deployments.get_opt("fcloud-haproxy").await?.is_some()) },
    )
    .await
    .with_context(|| second.log_tail())?;
    Ok(())
}

#[tokio::test]
async fn storage_grows_in_place_without_restarting_datastores() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "grow").await?;
    common::allow_volume_expansion().await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api: Api<InSyncCloud> = ns.api();
    create(&api, &fcloud_no_dns(ns.name())?).await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = ns.api();
    let mysql_pod = pods.get("fcloud-mysql-0").await?.uid();

    api.patch(
        "fcloud",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"nodes": {"storage": {"size": "6Gi"}}, "database": {"managed": {"storage": {"size": "8Gi"}}}}})),
    )
    .await?;
    let claims: Api<PersistentVolumeClaim> = ns.api();
    let requested = |name: &'static str| {
        let claims = claims.clone();
        async move {
            let pvc = claims.get(name).await?;
            Ok::<String, anyhow::Error>(
                pvc.spec
                    .and_then(|s| s.resources)
                    .and_then(|r| r.requests)
                    .and_then(|r| r.get("storage").map(|q| q.0.clone()))
                    .unwrap_or_default(),
            )
        }
    };
    wait_for(
        "node and MySQL claims to grow",
        Duration::from_secs(90),
        || async {
            Ok(requested("fcloud-node-0-data").await? == "6Gi"
                && requested("fcloud-node-1-data").await? == "6Gi"
                && requested("data-fcloud-mysql-0").await? == "8Gi")
        },
    )
    .await
    .with_context(|| op.log_tail())?;
    let statefulsets: Api<StatefulSet> = ns.api();
    wait_for(
        "the MySQL StatefulSet to carry the new claim template",
        Duration::from_secs(90),
        || async {
            let sts = statefulsets.get_opt("fcloud-mysql").await?;
            let size = sts
                .and_then(|s| s.spec)
                .and_then(|s| s.volume_claim_templates)
                .and_then(|t| t.first().cloned())
                .and_then(|t| t.spec)
                .and_then(|s| s.resources)
                .and_then(|r| r.requests)
                .and_then(|r| r.get("storage").map(|q| q.0.clone()));
            Ok(size.as_deref() == Some("8Gi"))
        },
    )
    .await
    .with_context(|| op.log_tail())?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;
    ensure!(
        pods.get("fcloud-mysql-0").await?.uid() == mysql_pod,
        "growing the volume restarted MySQL"
    );
    Ok(())
}

#[tokio::test]
async fn a_refused_object_is_reported_and_the_rest_still_converges() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "refused").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api: Api<InSyncCloud> = ns.api();
    let mut first = fcloud_no_dns(ns.name())?;
    first.spec.frontend.service.master_node_port = Some(30555);
    first.spec.frontend.service.storage_node_port = Some(30556);
    create(&api, &first).await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;

    // A second cloud asks for the same node ports: the API server refuses its front-end
    // Service, which the schema cannot know in advance.
    let mut second = first.clone();
    second.metadata.name = Some("second".into());
    second.metadata.resource_version = None;
    second.metadata.uid = None;
    create(&api, &second).await?;
    let degraded = insync_e2e::poll_until(
        "Degraded=True on the second cloud",
        Duration::from_secs(90),
        || async {
            let c = api.get("second").await?;
            Ok((condition(&c, "Degraded").0 == "True").then_some(c))
        },
    )
    .await
    .with_context(|| op.log_tail())?;
    let (_, reason, message) = condition(&degraded, "Degraded");
    ensure!(
        reason == "ApplyFailed"
            && message.contains("Service/second-haproxy")
            && message.contains("already allocated"),
        "Degraded: {reason}: {message}"
    );
    ensure!(
        !message.contains("Status {"),
        "the message should be the API server's, not a debug dump: {message}"
    );
    ensure!(condition(&degraded, "Ready").0 == "False");
    // Everything else of the second cloud was still applied.
    let deployments: Api<Deployment> = ns.api();
    wait_for(
        "the second cloud's other workloads",
        Duration::from_secs(60),
        || async {
            Ok(deployments.get_opt("second-cloudmaster").await?.is_some()
                && deployments.get_opt("second-node-1").await?.is_some())
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn what_the_schema_cannot_catch_becomes_a_condition() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "semantic").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api: Api<InSyncCloud> = ns.api();

    // A request above its limit passes the schema; the validate step names the field.
    let mut greedy = fcloud_no_dns(ns.name())?;
    greedy.metadata.name = Some("greedy".into());
    greedy.spec.master.resources = Some(serde_json::from_value(
        json!({"requests": {"cpu": "4"}, "limits": {"cpu": "2"}}),
    )?);
    create(&api, &greedy).await?;
    let invalid =
        insync_e2e::poll_until("Degraded=InvalidSpec", Duration::from_secs(60), || async {
            let c = api.get("greedy").await?;
            Ok((condition(&c, "Degraded").1 == "InvalidSpec").then_some(c))
        })
        .await
        .with_context(|| op.log_tail())?;
    let (_, _, message) = condition(&invalid, "Degraded");
    ensure!(
        message.contains("spec.master.resources.requests.cpu")
            && message.contains("larger than the cpu limit"),
        "{message}"
    );
    ensure!(
        ns.api::<Deployment>()
            .list(&instance("greedy"))
            .await?
            .items
            .is_empty(),
        "nothing is applied for an invalid spec"
    );

    // The external-aws example references Secrets that do not exist yet.
    let text = std::fs::read_to_string(insync_e2e::repo_root().join("examples/external-aws.yaml"))?;
    let mut aws: InSyncCloud = serde_yaml::from_str(&text)?;
    aws.metadata.namespace = Some(ns.name().to_owned());
    aws.spec.dns = None;
    aws.spec.nodes.storage.storage_class_name = None;
    create(&api, &aws).await?;
    let missing = insync_e2e::poll_until(
        "Degraded=MissingSecret",
        Duration::from_secs(60),
        || async {
            let c = api.get("acme").await?;
            Ok((condition(&c, "Degraded").1 == "MissingSecret").then_some(c))
        },
    )
    .await
    .with_context(|| op.log_tail())?;
    let (_, _, message) = condition(&missing, "Degraded");
    ensure!(
        message.contains("acme-rds") && message.contains("acme-aws"),
        "{message}"
    );
    // External datastores: no StatefulSet at all, only wiring.
    ensure!(
        ns.api::<StatefulSet>()
            .list(&instance("acme"))
            .await?
            .items
            .is_empty(),
        "external datastores must not get StatefulSets"
    );
    // Creating the Secrets clears the condition.
    for (name, data) in [
        ("acme-rds", json!({"username": "insync", "password": "pw"})),
        (
            "acme-aws",
            json!({"accessKeyId": "a", "secretAccessKey": "b"}),
        ),
    ] {
        let secret: k8s_openapi::api::core::v1::Secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))?;
        ns.api::<k8s_openapi::api::core::v1::Secret>()
            .create(&Default::default(), &secret)
            .await?;
    }
    wait_for(
        "MissingSecret to clear",
        Duration::from_secs(120),
        || async { Ok(condition(&api.get("acme").await?, "Degraded").0 == "False") },
    )
    .await
    .with_context(|| op.log_tail())?;
    Ok(())
}

#[tokio::test]
async fn removed_components_are_pruned_and_their_volumes_kept() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "prune").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api: Api<InSyncCloud> = ns.api();
    create(&api, &fcloud_no_dns(ns.name())?).await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;

    // One node fewer, and MinIO swapped for S3.
    api.patch(
        "fcloud",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"nodes": {"replicas": 1}, "objectStore": {"minio": null, "s3": {"bucket": "fcloud-backups", "region": "us-east-1"}}}})),
    )
    .await?;
    let deployments: Api<Deployment> = ns.api();
    let statefulsets: Api<StatefulSet> = ns.api();
    wait_for(
        "node-1 and MinIO to be pruned",
        Duration::from_secs(90),
        || async {
            Ok(deployments.get_opt("fcloud-node-1").await?.is_none()
                && statefulsets.get_opt("fcloud-minio").await?.is_none())
        },
    )
    .await
    .with_context(|| op.log_tail())?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;
    let claims: Vec<String> = ns
        .api::<PersistentVolumeClaim>()
        .list(&ListParams::default())
        .await?
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    for kept in ["fcloud-node-1-data", "data-fcloud-minio-0"] {
        ensure!(
            claims.iter().any(|c| c == kept),
            "{kept} was deleted: {claims:?}"
        );
    }
    let secrets = ns.api::<k8s_openapi::api::core::v1::Secret>();
    ensure!(
        secrets.get_opt("fcloud-minio-credentials").await?.is_some(),
        "MinIO's credentials must outlive MinIO, like its volume"
    );
    ensure!(
        !ns.api::<Service>()
            .list(&instance("fcloud"))
            .await?
            .iter()
            .any(|s| s.name_any().contains("minio")),
        "MinIO Services were not pruned"
    );
    Ok(())
}

#[tokio::test]
async fn kubectl_explain_documents_every_field() -> Result<()> {
    let _client = cluster().await?;
    common::install_crd().await?;
    // kubectl wraps the text itself; compare with whitespace collapsed.
    let flat = |text: String| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let version = flat(kubectl(&["explain", "insynccloud.spec.version"]).await?);
    ensure!(
        version.contains("Release revision of inSync")
            && version.contains("ordered rolling upgrade"),
        "{version}"
    );
    let minio = flat(kubectl(&["explain", "isc.spec.objectStore.minio.replicas"]).await?);
    ensure!(minio.contains("erasure coded"), "{minio}");
    let categories = kubectl(&["api-resources", "--categories", "insync", "-o", "name"]).await?;
    ensure!(
        categories.contains("insyncclouds.insync.dev"),
        "category insync: {categories}"
    );
    Ok(())
}
