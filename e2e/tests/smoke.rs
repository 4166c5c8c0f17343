//! Smoke tests: prove the e2e cluster is a real Kubernetes control plane (controllers,
//! scheduler, garbage collector, CEL validation, storage) before the operator's tests rely on it.
//! Each asserts state read back from the API server.
//!
//! Run: `CARGO_TARGET_DIR=$HOME/.cache/insync-operator/target cargo test -p insync-e2e --test smoke`
//! (starts the local control plane unless KUBECONFIG names a cluster; see docs/e2e.md).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use insync_e2e::{
    NEVER_READY_VERSION, TestNamespace, cluster, holds_for, kubectl, kubectl_output, kubectl_stdin,
    poll_until, wait_for,
};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);

// Real, tiny images, so the tests also pass on kind (kind nodes carry pause:3.10 already). On
// the local control plane no image is ever pulled.
const IMAGE_V1: &str = "registry.k8s.io/pause:3.10";
const IMAGE_V2: &str = "registry.k8s.io/pause:3.9";

/// A readiness probe that fails on a real kubelet (nothing listens on port 1): on clusters
/// without the kwok never-ready stage, it keeps the never-ready pods NotReady the same way.
fn failing_probe() -> serde_json::Value {
    json!({"tcpSocket": {"port": 1}, "periodSeconds": 1})
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn deployment(name: &str, replicas: i32, image: &str, labels: &BTreeMap<&str, &str>) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v)))
                    .chain([("app".to_string(), json!(name))]).collect::<serde_json::Map<_, _>>()},
                "spec": {"containers": [{
                    "name": "app",
                    "image": image,
                    "readinessProbe": if labels.get("app.kubernetes.io/version") == Some(&NEVER_READY_VERSION) { failing_probe() } else { json!(null) },
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}
                }]}
            }
        }
    }))
    .expect("valid Deployment")
}

async fn ready_pods(pods: &Api<Pod>, selector: &str) -> Result<Vec<Pod>> {
    Ok(pods
        .list(&ListParams::default().labels(selector))
        .await?
        .items
        .into_iter()
        .filter(pod_ready)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_pods_become_ready_and_a_new_image_rolls_out() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "deploy").await?;
    let deployments: Api<Deployment> = ns.api();
    let pods: Api<Pod> = ns.api();
    let rss: Api<ReplicaSet> = ns.api();

    deployments
        .create(
            &PostParams::default(),
            &deployment("web", 3, IMAGE_V1, &BTreeMap::new()),
        )
        .await?;

    // The scheduler binds each pod to a fake node and kwok reports it Running + Ready.
    wait_for("3 Ready pods of deployment web", TIMEOUT, || async {
        let ready = ready_pods(&pods, "app=web").await?;
        Ok(ready.len() == 3)
    })
    .await?;
    for pod in ready_pods(&pods, "app=web").await? {
        let spec = pod.spec.as_ref().context("pod spec")?;
        let node = spec.node_name.as_deref().unwrap_or("");
        ensure!(
            node.starts_with("kwok-node-"),
            "pod {} scheduled on {node:?}",
            pod.name_any()
        );
        ensure!(
            pod_phase(&pod) == "Running",
            "pod {} is {}",
            pod.name_any(),
            pod_phase(&pod)
        );
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .unwrap_or("");
        ensure!(!ip.is_empty(), "pod {} has no IP", pod.name_any());
    }
    wait_for(
        "deployment web to report 3 available replicas",
        TIMEOUT,
        || async {
            let d = deployments.get("web").await?;
            Ok(d.status.and_then(|s| s.available_replicas) == Some(3))
        },
    )
    .await?;

    // A new image makes a second ReplicaSet; the rollout completes.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": IMAGE_V2}]}}}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await?;
    kubectl(&[
        "-n",
        ns.name(),
        "rollout",
        "status",
        "deployment/web",
        "--timeout=120s",
    ])
    .await?;

    let owned: Vec<ReplicaSet> = rss
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items
        .into_iter()
        .filter(|rs| {
            rs.owner_references()
                .iter()
                .any(|o| o.kind == "Deployment" && o.name == "web")
        })
        .collect();
    ensure!(
        owned.len() == 2,
        "expected 2 ReplicaSets after the image change, found {}",
        owned.len()
    );
    let image = |rs: &ReplicaSet| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.spec.as_ref())
            .map(|s| s.containers[0].image.clone().unwrap_or_default())
            .unwrap_or_default()
    };
    for rs in &owned {
        let status = rs.status.as_ref().context("rs status")?;
        match image(rs).as_str() {
            IMAGE_V2 => ensure!(
                status.ready_replicas == Some(3),
                "new rs not ready: {status:?}"
            ),
            IMAGE_V1 => {
                ensure!(status.replicas == 0, "old rs still has pods: {status:?}")
            }
            other => anyhow::bail!("unexpected image {other}"),
        }
    }
    // The old pods are really gone (kwok's pod-delete stage), only new ones remain.
    wait_for("only web:2 pods left", TIMEOUT, || async {
        let all = pods
            .list(&ListParams::default().labels("app=web"))
            .await?
            .items;
        Ok(all.len() == 3
            && all.iter().all(|p| {
                p.spec
                    .as_ref()
                    .is_some_and(|s| s.containers[0].image.as_deref() == Some(IMAGE_V2))
            }))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_creates_ordered_pods_with_bound_pvcs() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "sts").await?;
    let sts_api: Api<StatefulSet> = ns.api();
    let pods: Api<Pod> = ns.api();
    let pvcs: Api<PersistentVolumeClaim> = ns.api();

    let sts: StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db",
            "replicas": 3,
            "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{
                    "name": "db", "image": IMAGE_V1,
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]
                }]}
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
            }]
        }
    }))?;
    sts_api.create(&PostParams::default(), &sts).await?;

    wait_for(
        "statefulset db to have 3 ready replicas",
        Duration::from_secs(120),
        || async {
            let s = sts_api.get("db").await?;
            Ok(s.status.and_then(|s| s.ready_replicas) == Some(3))
        },
    )
    .await?;

    // OrderedReady: db-N is created only after db-(N-1) is Ready.
    let mut previous_ready: Option<k8s_openapi::jiff::Timestamp> = None;
    for i in 0..3 {
        let pod = pods.get(&format!("db-{i}")).await?;
        ensure!(pod_ready(&pod), "db-{i} not ready");
        let created = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .context("creationTimestamp")?
            .0;
        if let Some(prev) = previous_ready {
            ensure!(
                created >= prev,
                "db-{i} created at {created} before db-{} was ready at {prev}",
                i - 1
            );
        }
        let ready_at = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .and_then(|c| c.last_transition_time.as_ref())
            .context("Ready transition time")?
            .0;
        previous_ready = Some(ready_at);
    }

    // Each replica has its own claim, Bound to a volume the hostPath provisioner made.
    for i in 0..3 {
        let claim = format!("data-db-{i}");
        let pvc = poll_until(&format!("pvc {claim} Bound"), TIMEOUT, || async {
            let pvc = pvcs.get(&claim).await?;
            let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
            Ok(bound.then_some(pvc))
        })
        .await?;
        let spec = pvc.spec.context("pvc spec")?;
        ensure!(
            spec.storage_class_name.as_deref() == Some("standard"),
            "default class not applied: {spec:?}"
        );
        let pv_name = spec.volume_name.context("bound pvc has no volume")?;
        let pv = Api::<PersistentVolume>::all(client.clone())
            .get(&pv_name)
            .await?;
        let claim_ref = pv
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .context("pv claimRef")?;
        ensure!(
            claim_ref.name.as_deref() == Some(claim.as_str()),
            "pv {pv_name} bound to {claim_ref:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_owner_garbage_collects_its_dependents() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "gc").await?;
    let cms: Api<ConfigMap> = ns.api();
    let deployments: Api<Deployment> = ns.api();
    let pods: Api<Pod> = ns.api();
    let rss: Api<ReplicaSet> = ns.api();

    // 1. An owner reference we set ourselves, as the operator does on every child.
    let owner = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}, "data": {"k": "v"}}))?,
        )
        .await?;
    let uid = owner.uid().context("owner uid")?;
    let dependent: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "dependent", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid,
            "controller": true, "blockOwnerDeletion": true
        }]},
        "data": {"k": "v"}
    }))?;
    cms.create(&PostParams::default(), &dependent).await?;
    cms.delete("owner", &DeleteParams::background()).await?;
    wait_for(
        "configmap dependent to be garbage-collected",
        TIMEOUT,
        || async { Ok(cms.get_opt("dependent").await?.is_none()) },
    )
    .await?;

    // 2. A Deployment's ReplicaSets and pods go with it.
    deployments
        .create(
            &PostParams::default(),
            &deployment("gc", 2, IMAGE_V1, &BTreeMap::new()),
        )
        .await?;
    wait_for("2 Ready pods of deployment gc", TIMEOUT, || async {
        Ok(ready_pods(&pods, "app=gc").await?.len() == 2)
    })
    .await?;
    deployments
        .delete("gc", &DeleteParams::foreground())
        .await?;
    wait_for(
        "deployment gc, its ReplicaSet and pods to be gone",
        TIMEOUT,
        || async {
            Ok(deployments.get_opt("gc").await?.is_none()
                && rss
                    .list(&ListParams::default().labels("app=gc"))
                    .await?
                    .items
                    .is_empty()
                && pods
                    .list(&ListParams::default().labels("app=gc"))
                    .await?
                    .items
                    .is_empty())
        },
    )
    .await?;
    Ok(())
}

const CRD_NAME: &str = "smokewidgets.e2e.insync.dev";

async fn ensure_cel_crd(client: &Client) -> Result<()> {
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": "e2e.insync.dev",
            "scope": "Namespaced",
            "names": {"plural": "smokewidgets", "singular": "smokewidget", "kind": "SmokeWidget"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "required": ["minReplicas", "maxReplicas", "storage"],
                        "properties": {
                            "minReplicas": {"type": "integer"},
                            "maxReplicas": {"type": "integer"},
                            "storage": {"type": "integer"}
                        },
                        "x-kubernetes-validations": [
                            {"rule": "self.minReplicas <= self.maxReplicas",
                             "message": "minReplicas must not exceed maxReplicas"},
                            {"rule": "self.storage >= oldSelf.storage",
                             "message": "storage may not shrink"}
                        ]
                    }}
                }}
            }]
        }
    }))?;
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.patch(
        CRD_NAME,
        &PatchParams::apply("insync-e2e-smoke").force(),
        &Patch::Apply(&crd),
    )
    .await?;
    wait_for("CRD to be Established", TIMEOUT, || async {
        let crd = crds.get(CRD_NAME).await?;
        Ok(crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True"))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_cel_rule_rejects_a_bad_object_with_its_message() -> Result<()> {
    let client = cluster().await?;
    ensure_cel_crd(&client).await?;
    let ns = TestNamespace::create(&client, "cel").await?;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("e2e.insync.dev", "v1", "SmokeWidget"),
        "smokewidgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns.name(), &ar);
    let widget = |name: &str, min: i64, max: i64, storage: i64| -> Result<DynamicObject> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "e2e.insync.dev/v1", "kind": "SmokeWidget",
            "metadata": {"name": name},
            "spec": {"minReplicas": min, "maxReplicas": max, "storage": storage}
        }))?)
    };

    // A valid object is accepted (retried: discovery of a new CRD can lag Established briefly).
    let good = widget("good", 1, 3, 10)?;
    poll_until("a valid SmokeWidget to be accepted", TIMEOUT, || async {
        match widgets.create(&PostParams::default(), &good).await {
            Ok(_) => Ok(Some(())),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Some(())),
            Err(e) => Err(e.into()),
        }
    })
    .await?;

    // The CEL rule refuses min > max, with the rule's message.
    let err = widgets
        .create(&PostParams::default(), &widget("bad", 5, 2, 10)?)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        anyhow::bail!("expected an API error, got {err:?}")
    };
    ensure!(status.code == 422, "expected 422 Invalid, got {status:?}");
    ensure!(
        status
            .message
            .contains("minReplicas must not exceed maxReplicas"),
        "message: {}",
        status.message
    );
    ensure!(
        widgets.get_opt("bad").await?.is_none(),
        "the invalid object was stored"
    );

    // A transition rule (oldSelf) refuses shrinking on update; kubectl shows the same message.
    let shrink = json!({"spec": {"storage": 5}});
    let err = widgets
        .patch("good", &PatchParams::default(), &Patch::Merge(&shrink))
        .await
        .unwrap_err();
    ensure!(err.to_string().contains("storage may not shrink"), "{err}");
    let out = kubectl_output(&[
        "-n",
        ns.name(),
        "patch",
        "smokewidget",
        "good",
        "--type=merge",
        "-p",
        r#"{"spec":{"storage":1}}"#,
    ])
    .await?;
    ensure!(
        !out.status.success(),
        "kubectl patch that shrinks storage succeeded"
    );
    ensure!(
        String::from_utf8_lossy(&out.stderr).contains("storage may not shrink"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let grown = json!({"spec": {"storage": 20}});
    widgets
        .patch("good", &PatchParams::default(), &Patch::Merge(&grown))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_ready_version_stays_not_ready_while_others_become_ready() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "never-ready").await?;
    let pods: Api<Pod> = ns.api();

    let manifest = format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: healthy
  labels: {{app: probe, app.kubernetes.io/version: "1.2.3"}}
spec:
  containers: [{{name: app, image: "{IMAGE_V1}"}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: broken
  labels: {{app: probe, app.kubernetes.io/version: "{NEVER_READY_VERSION}"}}
spec:
  containers:
  - name: app
    image: "{IMAGE_V1}"
    readinessProbe: {{tcpSocket: {{port: 1}}, periodSeconds: 1}}
"#
    );
    kubectl_stdin(&["-n", ns.name(), "apply", "-f", "-"], &manifest).await?;

    wait_for("pod healthy to be Ready", TIMEOUT, || async {
        Ok(pod_ready(&pods.get("healthy").await?))
    })
    .await?;
    wait_for("pod broken to be Running", TIMEOUT, || async {
        Ok(pod_phase(&pods.get("broken").await?) == "Running")
    })
    .await?;
    holds_for(
        "pod broken Running and not Ready",
        Duration::from_secs(5),
        || async {
            let p = pods.get("broken").await?;
            Ok(pod_phase(&p) == "Running" && !pod_ready(&p))
        },
    )
    .await?;
    let broken = pods.get("broken").await?;
    let statuses = broken
        .status
        .and_then(|s| s.container_statuses)
        .unwrap_or_default();
    ensure!(
        statuses.len() == 1 && !statuses[0].ready,
        "container statuses: {statuses:?}"
    );

    // A Deployment whose new pods carry the version never finishes its rollout: this is how
    // the operator's tests stage a failed upgrade.
    let labels = BTreeMap::from([("app.kubernetes.io/version", NEVER_READY_VERSION)]);
    let deployments: Api<Deployment> = ns.api();
    deployments
        .create(
            &PostParams::default(),
            &deployment("stuck", 1, IMAGE_V1, &labels),
        )
        .await?;
    let out = kubectl_output(&[
        "-n",
        ns.name(),
        "rollout",
        "status",
        "deployment/stuck",
        "--timeout=5s",
    ])
    .await?;
    ensure!(
        !out.status.success(),
        "rollout of a never-ready deployment completed"
    );
    let d = deployments.get("stuck").await?;
    ensure!(
        d.status.and_then(|s| s.ready_replicas).unwrap_or(0) == 0,
        "stuck deployment has ready replicas"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_are_issued_and_verified() -> Result<()> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenReview};
    use k8s_openapi::api::core::v1::{Secret, ServiceAccount};

    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "sa").await?;
    let sas: Api<ServiceAccount> = ns.api();
    let secrets: Api<Secret> = ns.api();

    // The service-account controller gives every namespace its `default` ServiceAccount.
    wait_for(
        "ServiceAccount default in the new namespace",
        TIMEOUT,
        || async { Ok(sas.get_opt("default").await?.is_some()) },
    )
    .await?;

    // TokenRequest: the apiserver signs a token with the service-account key…
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "robot"}}))?,
    )
    .await?;
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 600}}))?;
    let issued = sas
        .create_token_request("robot", &PostParams::default(), &request)
        .await?;
    let token = issued.status.context("token request status")?.token;
    ensure!(!token.is_empty(), "empty token");

    // …and authenticates it as that ServiceAccount.
    let review: TokenReview = serde_json::from_value(json!({"spec": {"token": token}}))?;
    let reviewed = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    let status = reviewed.status.context("token review status")?;
    ensure!(
        status.authenticated == Some(true),
        "token not authenticated: {status:?}"
    );
    let user = status.user.and_then(|u| u.username).unwrap_or_default();
    ensure!(
        user == format!("system:serviceaccount:{}:robot", ns.name()),
        "authenticated as {user}"
    );

    // The token controller fills a legacy service-account-token Secret.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "robot-token", "annotations": {"kubernetes.io/service-account.name": "robot"}},
        "type": "kubernetes.io/service-account-token"
    }))?;
    secrets.create(&PostParams::default(), &secret).await?;
    wait_for(
        "the token controller to fill secret robot-token",
        TIMEOUT,
        || async {
            let s = secrets.get("robot-token").await?;
            let data = s.data.unwrap_or_default();
            Ok(data.get("token").is_some_and(|t| !t.0.is_empty()) && data.contains_key("ca.crt"))
        },
    )
    .await?;
    Ok(())
}
