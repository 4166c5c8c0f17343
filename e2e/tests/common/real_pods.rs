//! Helpers of the tests on real pods (the real node of `e2e/cluster up --real-node`): the
//! operator installed as a pod with its chart, the fcloud example placed on the real node, and
//! the stand-in's marker API through HAProxy's NodePort. Included with `#[path]` by each such
//! test.
// Each test uses only some of these.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use insync_e2e::real_node::{REAL_NODE_LABEL, REAL_STORAGE_CLASS};
use insync_e2e::{helm, kubectl, poll_until, repo_root};
use insync_operator::api::{InSyncCloud, Placement, StorageSpec};
use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::Api;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::common::{condition, fcloud};

/// Real pods start in seconds, MySQL initialises in a few more; generous for a loaded machine.
pub const READY_TIMEOUT: Duration = Duration::from_secs(420);

/// One plain HTTP/1.1 request to 127.0.0.1:`port` (the front end's NodePort on this machine):
/// (status, body).
pub async fn http(port: u16, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    http_at(&format!("127.0.0.1:{port}"), method, path, body).await
}

/// One plain HTTP/1.1 request to `addr` (`host:port`): (status, body).
pub async fn http_at(addr: &str, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    let mut stream =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
            .await
            .context("connect timed out")??;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: fcloud\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .context("response timed out")??;
    let out = String::from_utf8_lossy(&out).into_owned();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("not an HTTP response: {out:?}"))?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

/// Writes a marker through the front end (HAProxy's master NodePort `port` on this machine) into MySQL, the metadata store and the object store.
pub async fn put_marker(port: u16, key: &str, value: &str) -> Result<()> {
    let (code, body) = http(port, "PUT", &format!("/markers/{key}"), value).await?;
    ensure!(
        (200..300).contains(&code),
        "PUT /markers/{key}: {code} {body}"
    );
    Ok(())
}

/// Every marker must read back from all three stores.
pub async fn expect_markers(port: u16, markers: &BTreeMap<&str, &str>, after: &str) -> Result<()> {
    for (key, value) in markers {
        let (code, body) = http(port, "GET", &format!("/markers/{key}"), "").await?;
        ensure!(
            code == 200,
            "after {after}: GET /markers/{key}: {code} {body}"
        );
        let stores: Value = serde_json::from_str(&body)?;
        for store in ["database", "metadata", "objectstore"] {
            ensure!(
                stores[store] == *value,
                "after {after}: marker {key} in {store} is {} (want {value:?}); all: {body}",
                stores[store]
            );
        }
    }
    Ok(())
}

/// The fcloud example placed on the real node ([`place_on_real_node`]) at `version`, with two
/// CloudMasters (so a rollout can keep serving) and the given node ports (one pair per test, so
/// tests can run side by side).
pub fn real_fcloud(
    namespace: &str,
    version: &str,
    master_node_port: u16,
    storage_node_port: u16,
) -> Result<InSyncCloud> {
    let mut cloud = fcloud(namespace)?;
    cloud.spec.version = version.to_owned();
    place_on_real_node(&mut cloud)?;
    cloud.spec.master.replicas = 2;
    cloud.spec.frontend.service.master_node_port = Some(master_node_port.into());
    cloud.spec.frontend.service.storage_node_port = Some(storage_node_port.into());
    Ok(cloud)
}

/// Places a cloud with managed datastores on the real node: a nodeSelector and toleration for
/// the whole cloud, volumes of the real node's StorageClass, and small CPU requests (the
/// defaults ask for more than this 2-core machine has).
pub fn place_on_real_node(cloud: &mut InSyncCloud) -> Result<()> {
    cloud.spec.placement = Placement {
        node_selector: Some(BTreeMap::from([(
            REAL_NODE_LABEL.to_owned(),
            "true".to_owned(),
        )])),
        tolerations: Some(vec![Toleration {
            key: Some(REAL_NODE_LABEL.to_owned()),
            operator: Some("Exists".to_owned()),
            effect: Some("NoSchedule".to_owned()),
            ..Toleration::default()
        }]),
        ..Placement::default()
    };
    let small = Some(ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity("50m".to_owned())),
            ("memory".to_owned(), Quantity("64Mi".to_owned())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_owned(),
            Quantity("1Gi".to_owned()),
        )])),
        ..ResourceRequirements::default()
    });
    let spec = &mut cloud.spec;
    let mysql = spec.database.managed.as_mut().context("managed MySQL")?;
    let bynamo = spec
        .metadata_store
        .managed
        .as_mut()
        .context("managed Bynamo")?;
    let minio = spec.object_store.minio.as_mut().context("managed MinIO")?;
    let storages: [&mut StorageSpec; 4] = [
        &mut spec.nodes.storage,
        &mut mysql.storage,
        &mut bynamo.storage,
        &mut minio.storage,
    ];
    for storage in storages {
        storage.storage_class_name = Some(REAL_STORAGE_CLASS.to_owned());
    }
    for resources in [
        &mut spec.master.resources,
        &mut spec.nodes.resources,
        &mut spec.frontend.resources,
        &mut mysql.resources,
        &mut bynamo.resources,
        &mut minio.resources,
    ] {
        resources.clone_from(&small);
    }
    Ok(())
}

/// Waits until the cloud `fcloud` is Ready at `version`; on failure, says what its status and
/// the pods were.
pub async fn wait_cloud_ready(api: &Api<InSyncCloud>, version: &str) -> Result<InSyncCloud> {
    wait_named_cloud_ready(api, "fcloud", version).await
}

/// Waits until the cloud `name` is Ready at `version`; on failure, says what its status and the
/// pods were.
pub async fn wait_named_cloud_ready(
    api: &Api<InSyncCloud>,
    name: &str,
    version: &str,
) -> Result<InSyncCloud> {
    let result = poll_until(
        &format!("InSyncCloud {name} to be Ready at {version}"),
        READY_TIMEOUT,
        || async {
            let cloud = api.get(name).await?;
            let status = cloud.status.as_ref();
            let ready = condition(&cloud, "Ready").0 == "True"
                && status.and_then(|s| s.observed_generation) == cloud.metadata.generation
                && status.and_then(|s| s.current_version.as_deref()) == Some(version);
            Ok(ready.then_some(cloud))
        },
    )
    .await;
    match result {
        Ok(cloud) => Ok(cloud),
        Err(e) => {
            let status = api.get(name).await.ok().and_then(|c| c.status);
            let pods = kubectl(&["get", "pods", "-A", "-o", "wide"])
                .await
                .unwrap_or_default();
            bail!(
                "{e:#}\nstatus: {}\npods:\n{pods}",
                serde_yaml::to_string(&status).unwrap_or_default()
            )
        }
    }
}

/// An operator installed with the chart in a namespace of its own. Whatever way the test ends,
/// it goes: [`OperatorRelease::uninstall`] on the way out, or, when the test fails before
/// that, its drop (a failing test used to leave its operator running on the shared node,
/// watching a namespace that no longer exists).
#[must_use = "dropping the release uninstalls the operator"]
pub struct OperatorRelease {
    namespace: String,
    /// The namespace the operator watches.
    watch: String,
    uninstalled: bool,
}

impl OperatorRelease {
    /// The chart's release name.
    pub const NAME: &'static str = "isc";

    /// The operator's Deployment scaled to `replicas`; with 0, returns once no operator pod is
    /// left (none reconciles any more).
    pub async fn scale(&self, replicas: u32) -> Result<()> {
        let release_ns = self.namespace.as_str();
        kubectl(&[
            "-n",
            release_ns,
            "scale",
            "deployment",
            "--all",
            &format!("--replicas={replicas}"),
        ])
        .await?;
        if replicas == 0 {
            poll_until("the operator pods to be gone", READY_TIMEOUT, || async {
                let left = kubectl(&["-n", release_ns, "get", "pods", "-o", "name"]).await?;
                Ok(left.trim().is_empty().then_some(()))
            })
            .await?;
        }
        Ok(())
    }

    /// Uninstalls the chart (waiting for its pods to go) and deletes its namespace.
    pub async fn uninstall(mut self) -> Result<()> {
        self.uninstalled = true;
        helm(&["uninstall", Self::NAME, "-n", &self.namespace, "--wait"]).await?;
        kubectl(&["delete", "namespace", &self.namespace, "--wait=false"]).await?;
        Ok(())
    }
}

impl Drop for OperatorRelease {
    fn drop(&mut self) {
        if self.uninstalled || std::env::var("INSYNC_E2E_KEEP_NAMESPACES").is_ok_and(|v| v == "1") {
            return;
        }
        // Drop cannot be async and the test's runtime may be shutting down: ask the tools.
        let run = |program: std::path::PathBuf, args: &[&str]| {
            let _ = std::process::Command::new(program)
                .env("KUBECONFIG", insync_e2e::kubeconfig_path())
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        };
        // The clouds first, while their operator runs: their finalizers (DNS records) would
        // otherwise hold the test's namespace in Terminating for good.
        run(
            insync_e2e::kubectl_path(),
            &[
                "delete",
                "insyncclouds",
                "--all",
                "-n",
                &self.watch,
                "--timeout=120s",
            ],
        );
        run(
            insync_e2e::helm_path(),
            &[
                "uninstall",
                Self::NAME,
                "-n",
                &self.namespace,
                "--wait=false",
            ],
        );
        run(
            insync_e2e::kubectl_path(),
            &[
                "delete",
                "namespace",
                &self.namespace,
                "--wait=false",
                "--ignore-not-found",
            ],
        );
    }
}

/// The operator's chart, installed with its image (built by e2e/images/build) on the real node,
/// watching `watch` and, given `dns_endpoint`, publishing DNS there (moto).
pub async fn install_operator(
    release_ns: &str,
    watch: &str,
    dns_endpoint: Option<&str>,
) -> Result<OperatorRelease> {
    let chart = repo_root()
        .join("charts/insync-operator")
        .display()
        .to_string();
    kubectl(&["create", "namespace", release_ns]).await?;
    let release = OperatorRelease {
        namespace: release_ns.to_owned(),
        watch: watch.to_owned(),
        uninstalled: false,
    };
    // The chart's CRDs, applied like common::install_crd does (taking their fields over), and
    // the chart installed with --skip-crds: on the shared plane other checkouts apply their own
    // CRDs with kubectl, and helm's server-side apply of the same CRDs then fails on the
    // conflict (`conflict with "kubectl": .spec.versions`).
    let crds = repo_root()
        .join("charts/insync-operator/crds")
        .display()
        .to_string();
    kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &crds]).await?;
    kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/insyncclouds.insync.dev",
        "crd/insynccloudbackups.insync.dev",
        "--timeout=60s",
    ])
    .await?;
    let label = REAL_NODE_LABEL.replace('.', "\\.");
    let mut args: Vec<String> = [
        "install",
        OperatorRelease::NAME,
        &chart,
        "--skip-crds",
        "-n",
        release_ns,
        "--wait",
        "--timeout",
        "5m",
        "--set",
        // `dev` is what e2e/images/build imports; another tag lets a run use its own build
        // while other runs use theirs.
        &format!("image.tag={}", operator_tag()),
        "--set",
        "image.pullPolicy=Never",
        "--set",
        &format!("watchNamespace={watch}"),
        "--set-string",
        &format!("nodeSelector.{label}=true"),
        "--set",
        &format!("tolerations[0].key={REAL_NODE_LABEL}"),
        "--set",
        "tolerations[0].operator=Exists",
        "--set",
        "tolerations[0].effect=NoSchedule",
        "--set",
        "logFormat=text",
        // The tests take backups on `* * * * *`: every slot counts.
        "--set",
        "backups.minInterval=0s",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    if let Some(endpoint) = dns_endpoint {
        kubectl(&[
            "-n",
            release_ns,
            "create",
            "secret",
            "generic",
            "route53",
            "--from-literal=AWS_ACCESS_KEY_ID=testing",
            "--from-literal=AWS_SECRET_ACCESS_KEY=testing",
        ])
        .await?;
        for setting in [
            format!("dns.endpoint={endpoint}"),
            "dns.ownerId=e2e-real".to_owned(),
            // DNS is denied without an allow-list; the clouds publish under drtst.org.
            "dns.allowedDomains={drtst.org}".to_owned(),
            "aws.region=us-east-1".to_owned(),
            "aws.existingSecret=route53".to_owned(),
        ] {
            args.extend(["--set".to_owned(), setting]);
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    helm(&args)
        .await
        .context("helm install of the operator as a real pod")?;
    Ok(release)
}

/// The operator image's tag: `INSYNC_E2E_OPERATOR_TAG`, `dev` by default.
fn operator_tag() -> String {
    std::env::var("INSYNC_E2E_OPERATOR_TAG").unwrap_or_else(|_| "dev".to_owned())
}

/// A test namespace enforcing the restricted Pod Security Standard: every pod the operator
/// makes there (the cloud's, its backups' and restores') must pass it.
pub async fn restricted_namespace(
    client: &kube::Client,
    prefix: &str,
) -> Result<insync_e2e::TestNamespace> {
    let ns = insync_e2e::TestNamespace::create(client, prefix).await?;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            ns.name(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"metadata": {"labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            }}})),
        )
        .await?;
    Ok(ns)
}
