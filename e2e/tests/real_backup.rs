//! Backups on real pods (the real node of `e2e/cluster up --real-node`, images built by
//! `e2e/images/build`): the operator installed with its chart, a cloud placed on the real node,
//! a marker written through the stand-in CloudMaster into MySQL and the metadata store, then an
//! on-demand `InSyncCloudBackup`. The backup must complete with a manifest and parts in MinIO of
//! the recorded sizes and checksums, the marker in the MySQL dump and in the metadata export;
//! a backup to a destination with wrong keys must fail with a readable reason, leave no
//! manifest, and leave the cloud Ready.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{condition, fcloud_no_dns};
use insync_e2e::real_node::{self, REAL_NODE_LABEL, REAL_STORAGE_CLASS};
use insync_e2e::{TestNamespace, helm, kubectl, poll_until, repo_root, unique_name};
use insync_operator::api::{
    BackupPhase, InSyncCloud, InSyncCloudBackup, InSyncCloudBackupSpec, Placement, StorageSpec,
};
use insync_operator::backup::manifest::Manifest;
use k8s_openapi::api::core::v1::{Namespace, Pod, ResourceRequirements, Secret, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const VERSION: &str = "5.9.1-r4178";
/// Real pods start in seconds, MySQL initialises in a few more; but with other builds on the
/// 2 shared cores a whole cloud took more than 7 minutes once, so this is generous.
const READY_TIMEOUT: Duration = Duration::from_secs(900);
const BACKUP_TIMEOUT: Duration = Duration::from_secs(300);

/// fcloud (no DNS) on the real node: its nodeSelector and toleration, volumes of the real
/// node's StorageClass, and small requests (the defaults ask for more than this machine has).
fn cloud_on_real_node(namespace: &str) -> Result<InSyncCloud> {
    let mut cloud = fcloud_no_dns(namespace)?;
    cloud.spec.version = VERSION.to_owned();
    cloud.spec.frontend.service.type_ = insync_operator::api::ServiceType::ClusterIP;
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
    spec.frontend.replicas = 1;
    Ok(cloud)
}

/// The operator's chart with its image (built by e2e/images/build) on the real node, watching
/// `watch`, no DNS.
async fn install_operator(release_ns: &str, watch: &str) -> Result<()> {
    let chart = repo_root()
        .join("charts/insync-operator")
        .display()
        .to_string();
    let label = REAL_NODE_LABEL.replace('.', "\\.");
    helm(&[
        "install",
        "iscb",
        &chart,
        "-n",
        release_ns,
        "--create-namespace",
        "--wait",
        "--timeout",
        "5m",
        "--set",
        // `dev` is what e2e/images/build imports; another tag lets a run use its own build
        // while other runs use theirs.
        &format!(
            "image.tag={}",
            std::env::var("INSYNC_E2E_OPERATOR_TAG").unwrap_or_else(|_| "dev".to_owned())
        ),
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
    ])
    .await
    .context("helm install of the operator as a real pod")?;
    Ok(())
}

/// The IP of the running pod of `component` (the host reaches the real node's pods directly).
async fn pod_ip(pods: &Api<Pod>, component: &str) -> Result<String> {
    poll_until(
        &format!("a running {component} pod with an IP"),
        Duration::from_secs(60),
        || async {
            let list = pods
                .list(&ListParams::default().labels(&format!(
                    "app.kubernetes.io/instance=fcloud,app.kubernetes.io/component={component}"
                )))
                .await?;
            Ok(list
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .find_map(|p| p.status.as_ref()?.pod_ip.clone()))
        },
    )
    .await
}

/// One plain HTTP/1.1 request: (status, body).
async fn http(addr: &str, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
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

async fn wait_backup(api: &Api<InSyncCloudBackup>, name: &str) -> Result<InSyncCloudBackup> {
    poll_until(
        &format!("InSyncCloudBackup {name} to finish"),
        BACKUP_TIMEOUT,
        || async {
            let backup = api.get(name).await?;
            Ok(backup.phase().is_final().then_some(backup))
        },
    )
    .await
}

async fn create_backup(api: &Api<InSyncCloudBackup>, name: &str) -> Result<()> {
    let backup = InSyncCloudBackup::new(
        name,
        InSyncCloudBackupSpec {
            cloud: "fcloud".to_owned(),
        },
    );
    api.create(&PostParams::default(), &backup).await?;
    Ok(())
}

/// An S3 client for the cloud's MinIO at its pod IP, with the cloud's generated keys.
async fn minio(ns: &TestNamespace, pods: &Api<Pod>) -> Result<aws_sdk_s3::Client> {
    let secrets: Api<Secret> = ns.api();
    let secret = secrets.get("fcloud-minio-credentials").await?;
    let data = secret.data.unwrap_or_default();
    let key = |name: &str| -> Result<String> {
        let bytes = data.get(name).with_context(|| format!("no {name}"))?;
        Ok(String::from_utf8(bytes.0.clone())?)
    };
    let credentials = aws_sdk_s3::config::Credentials::new(
        key("accessKeyId")?,
        key("secretAccessKey")?,
        None,
        None,
        "e2e",
    );
    let endpoint = format!("http://{}:9000", pod_ip(pods, "minio").await?);
    let config =
        insync_operator::backup::sdk_config("us-east-1", Some(&endpoint), Some(credentials)).await;
    Ok(aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    ))
}

async fn get_object(s3: &aws_sdk_s3::Client, key: &str) -> Result<Vec<u8>> {
    let object = s3
        .get_object()
        .bucket("insync")
        .key(key)
        .send()
        .await
        .with_context(|| format!("GET s3://insync/{key}"))?;
    Ok(object.body.collect().await?.into_bytes().to_vec())
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_demand_backup_holds_the_markers_and_a_bad_destination_fails_cleanly() -> Result<()> {
    let client: Client = real_node::cluster().await?;
    common::install_crd().await?;
    let backup_crd = repo_root().join("crds/insynccloudbackups.insync.dev.yaml");
    kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &backup_crd.display().to_string(),
    ])
    .await?;
    kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/insynccloudbackups.insync.dev",
        "--timeout=60s",
    ])
    .await?;

    // The cloud's namespace enforces the restricted Pod Security Standard: the backup Job's pod
    // must pass it like every other pod.
    let ns = TestNamespace::create(&client, "backup").await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            ns.name(),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            }}})),
        )
        .await?;
    let release_ns = unique_name("e2e-backup-sys");
    install_operator(&release_ns, ns.name()).await?;

    let clouds: Api<InSyncCloud> = ns.api();
    let pods: Api<Pod> = ns.api();
    let backups: Api<InSyncCloudBackup> = ns.api();
    clouds
        .create(&PostParams::default(), &cloud_on_real_node(ns.name())?)
        .await?;
    let creating = Instant::now();
    let ready = poll_until("fcloud to be Ready", READY_TIMEOUT, || async {
        let cloud = clouds.get("fcloud").await?;
        Ok((condition(&cloud, "Ready").0 == "True").then_some(()))
    })
    .await;
    if let Err(e) = ready {
        // What was still missing, for the post-mortem.
        if let Ok(out) =
            kubectl(&["get", "pods,pvc,insynccloud", "-o", "wide", "-n", ns.name()]).await
        {
            eprintln!("{out}");
        }
        return Err(e);
    }
    eprintln!("fcloud Ready {:.1?} after its creation", creating.elapsed());

    // A marker through the stand-in CloudMaster into MySQL, the metadata store and MinIO.
    let master = format!("{}:8443", pod_ip(&pods, "cloudmaster").await?);
    let marker = unique_name("marker");
    poll_until("the marker to be written", READY_TIMEOUT, || async {
        let answer = http(&master, "PUT", &format!("/markers/{marker}"), "backed-up").await;
        Ok(matches!(answer, Ok((200, _))).then_some(()))
    })
    .await?;

    // An on-demand backup.
    let started = Instant::now();
    create_backup(&backups, "first").await?;
    let backup = wait_backup(&backups, "first").await?;
    let took = started.elapsed();
    let status = backup.status.clone().unwrap_or_default();
    ensure!(
        status.phase == Some(BackupPhase::Complete),
        "backup first: {}",
        serde_yaml::to_string(&status)?
    );
    eprintln!(
        "backup first: Complete in {took:.1?} (created -> Complete), {} bytes, parts: {}",
        status.size_bytes.unwrap_or_default(),
        status
            .parts
            .iter()
            .map(|p| format!("{} {} B rows {:?}", p.name, p.size_bytes, p.rows))
            .collect::<Vec<_>>()
            .join(", ")
    );
    ensure!(
        status.location.as_deref() == Some("s3://insync/insync-backups/fcloud/first/"),
        "location {:?}",
        status.location
    );

    // What MinIO holds is what the status and the manifest say.
    let s3 = minio(&ns, &pods).await?;
    let manifest_key = status.manifest.clone().context("no manifest in status")?;
    let manifest: Manifest = serde_json::from_slice(&get_object(&s3, &manifest_key).await?)?;
    ensure!(
        manifest.parts == status.parts,
        "manifest and status disagree"
    );
    ensure!(manifest.insync_version == VERSION);
    let mut total = 0;
    let mut contents = BTreeMap::new();
    for part in &manifest.parts {
        let bytes = get_object(&s3, &format!("insync-backups/fcloud/first/{}", part.name)).await?;
        ensure!(
            bytes.len() as i64 == part.size_bytes,
            "{}: {} bytes stored, {} recorded",
            part.name,
            bytes.len(),
            part.size_bytes
        );
        ensure!(
            sha256_hex(&bytes) == part.sha256,
            "{}: checksum differs",
            part.name
        );
        total += part.size_bytes;
        contents.insert(
            part.name.clone(),
            String::from_utf8_lossy(&bytes).into_owned(),
        );
    }
    ensure!(total < status.size_bytes.unwrap_or_default());
    let dump = contents.get("mysql.sql").context("no mysql.sql part")?;
    ensure!(
        dump.contains(&marker) && dump.contains("backed-up"),
        "the MySQL dump lacks the marker"
    );
    let export = contents
        .iter()
        .find(|(name, _)| name.starts_with("metadata/") && name.ends_with("insync_markers.jsonl"))
        .context("no metadata export of the markers table")?;
    ensure!(
        export.1.contains(&marker),
        "the metadata export lacks the marker"
    );
    let markers_part = manifest
        .parts
        .iter()
        .find(|p| p.name == *export.0)
        .context("part")?;
    ensure!(markers_part.rows >= Some(1), "rows {:?}", markers_part.rows);

    // The schedule: every minute, until the first scheduled backup is Complete.
    clouds
        .patch(
            "fcloud",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"backup": {"schedule": "* * * * *"}}})),
        )
        .await?;
    let scheduled = poll_until("a scheduled backup to complete", BACKUP_TIMEOUT, || async {
        let list = backups
            .list(
                &ListParams::default().labels("insync.dev/scheduled=true,insync.dev/cloud=fcloud"),
            )
            .await?;
        Ok(list
            .items
            .into_iter()
            .find(|b| b.phase() == BackupPhase::Complete))
    })
    .await?;
    clouds
        .patch(
            "fcloud",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"backup": null}})),
        )
        .await?;
    let name = scheduled.metadata.name.clone().unwrap_or_default();
    eprintln!("scheduled backup {name}: Complete");
    ensure!(
        name.len() == "fcloud-".len() + 12 && name.starts_with("fcloud-20"),
        "scheduled backup name {name}"
    );

    // A destination whose keys are wrong: Failed, with the store's reason, and no manifest.
    let secrets: Api<Secret> = ns.api();
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "wrong-keys"},
                "stringData": {"accessKeyId": "nobody", "secretAccessKey": "not-the-key"}
            }))?,
        )
        .await?;
    clouds
        .patch(
            "fcloud",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"backup": {"destination": {"s3": {
                "bucket": "insync",
                "prefix": "elsewhere/",
                "endpoint": format!("http://fcloud-minio.{}.svc.cluster.local:9000", ns.name()),
                "secretRef": {"name": "wrong-keys"}
            }}}}})),
        )
        .await?;
    create_backup(&backups, "wrong-keys").await?;
    let failed = wait_backup(&backups, "wrong-keys").await?;
    let status = failed.status.clone().unwrap_or_default();
    let reason = status.reason.clone().unwrap_or_default();
    eprintln!("backup wrong-keys: {:?}: {reason}", status.phase);
    ensure!(
        status.phase == Some(BackupPhase::Failed),
        "backup wrong-keys: {}",
        serde_yaml::to_string(&status)?
    );
    ensure!(
        reason.contains("InvalidAccessKeyId") || reason.contains("Access Key"),
        "the reason does not name the credentials: {reason}"
    );
    let leftover = s3
        .head_object()
        .bucket("insync")
        .key("elsewhere/fcloud/wrong-keys/manifest.json")
        .send()
        .await;
    ensure!(leftover.is_err(), "a failed backup left a manifest");
    let cloud = clouds.get("fcloud").await?;
    ensure!(
        condition(&cloud, "Ready").0 == "True",
        "the cloud is not Ready after a failed backup: {:?}",
        condition(&cloud, "Ready")
    );
    let (code, body) = http(&master, "GET", "/health", "").await?;
    ensure!(code == 200, "/health after a failed backup: {code} {body}");

    helm(&["uninstall", "iscb", "-n", &release_ns]).await.ok();
    kubectl(&["delete", "namespace", &release_ns, "--wait=false"])
        .await
        .ok();
    ns.delete_and_wait(Duration::from_secs(180)).await?;
    Ok(())
}
