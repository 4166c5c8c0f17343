//! Backups on real pods (the real node of `e2e/cluster up --real-node`, images built by
//! `e2e/images/build`): the operator installed with its chart, a cloud placed on the real node,
//! a marker written through the stand-in CloudMaster into MySQL and the metadata store, then an
//! on-demand `InSyncCloudBackup`. The backup must complete with a manifest and parts in MinIO of
//! the recorded sizes and checksums, the marker in the MySQL dump and in the metadata export;
//! a backup across an operator restart completes once; backups to a store that does not answer
//! or to a destination with wrong keys fail with a readable reason, leave no manifest, leave
//! the cloud Ready, and the schedule tries again. Then verification, and a lost cloud restored
//! by its backup's name (a tampered copy refused).

mod common;
#[path = "common/real_pods.rs"]
mod real_pods;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{condition, fcloud_no_dns};
use insync_e2e::real_node;
use insync_e2e::{TestNamespace, kubectl, poll_until, unique_name};
use insync_operator::api::{
    BackupPhase, InSyncCloud, InSyncCloudBackup, InSyncCloudBackupSpec, RestorePhase, VerifyPhase,
};
use insync_operator::contract::Manifest;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use real_pods::http_at as http;
use serde_json::json;
use sha2::{Digest, Sha256};

const VERSION: &str = "5.9.1-r4178";
/// Real pods start in seconds, MySQL initialises in a few more; but with other builds on the
/// 2 shared cores a whole cloud took more than 7 minutes once, so this is generous.
const READY_TIMEOUT: Duration = Duration::from_secs(900);
const BACKUP_TIMEOUT: Duration = Duration::from_secs(300);

/// fcloud (no DNS, a ClusterIP front end of one replica) on the real node.
fn cloud_on_real_node(namespace: &str) -> Result<InSyncCloud> {
    let mut cloud = fcloud_no_dns(namespace)?;
    cloud.spec.version = VERSION.to_owned();
    cloud.spec.frontend.service.type_ = insync_operator::api::ServiceType::ClusterIP;
    real_pods::place_on_real_node(&mut cloud)?;
    cloud.spec.frontend.replicas = 1;
    Ok(cloud)
}

/// The operator installed with its chart as a real pod, watching `watch`, no DNS.
async fn install_operator(release_ns: &str, watch: &str) -> Result<real_pods::OperatorRelease> {
    real_pods::install_operator(release_ns, watch, None).await
}

/// Waits for `fcloud` to be Ready (with what was missing on failure).
async fn wait_ready(clouds: &Api<InSyncCloud>) -> Result<()> {
    real_pods::wait_cloud_ready(clouds, VERSION).await.map(drop)
}

/// Loses the cloud `fcloud`: deletes it, then its volumes, and waits for its pods (not the
/// backups' and verifications', which carry its labels too) and claims to be gone.
async fn lose_cloud(ns: &TestNamespace) -> Result<()> {
    let clouds: Api<InSyncCloud> = ns.api();
    let pods: Api<Pod> = ns.api();
    clouds.delete("fcloud", &Default::default()).await?;
    poll_until("fcloud to be gone", READY_TIMEOUT, || async {
        Ok(clouds.get_opt("fcloud").await?.is_none().then_some(()))
    })
    .await?;
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = ns.api();
    let instance = ListParams::default().labels("app.kubernetes.io/instance=fcloud");
    claims
        .delete_collection(&Default::default(), &instance)
        .await?;
    let workloads = ListParams::default().labels(
        "app.kubernetes.io/instance=fcloud,app.kubernetes.io/component notin (backup,verify)",
    );
    poll_until(
        "fcloud's pods and volumes to be gone",
        READY_TIMEOUT,
        || async {
            let left = claims.list(&instance).await?.items.len()
                + pods.list(&workloads).await?.items.len();
            Ok((left == 0).then_some(()))
        },
    )
    .await
}

/// Removes the operator and the test's namespace.
async fn tear_down(ns: TestNamespace, release: real_pods::OperatorRelease) -> Result<()> {
    release.uninstall().await?;
    ns.delete_and_wait(Duration::from_secs(180)).await
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
        insync_operator::runner::sdk_config("us-east-1", Some(&endpoint), Some(credentials)).await;
    Ok(aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    ))
}

/// Checks a Complete backup against the cloud's MinIO: its manifest is there and lists the
/// parts its status does, every part has the recorded size and sha256, and the status's size
/// counts them all plus the manifest. Returns the manifest and every part's content.
async fn check_stored(
    s3: &aws_sdk_s3::Client,
    status: &insync_operator::api::InSyncCloudBackupStatus,
) -> Result<(Manifest, BTreeMap<String, String>)> {
    let manifest_key = status.manifest.clone().context("no manifest in status")?;
    let prefix = manifest_key
        .strip_suffix("manifest.json")
        .context("manifest key")?;
    let manifest: Manifest = serde_json::from_slice(&get_object(s3, &manifest_key).await?)?;
    ensure!(
        manifest.parts == status.parts,
        "manifest and status disagree"
    );
    ensure!(manifest.insync_version == VERSION);
    let mut total = 0;
    let mut contents = BTreeMap::new();
    for part in &manifest.parts {
        let bytes = get_object(s3, &format!("{prefix}{}", part.name)).await?;
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
    Ok((manifest, contents))
}

/// The key prefix a backup's status records: `status.location` without `s3://<bucket>/`.
fn recorded_prefix(backup: &InSyncCloudBackup) -> Result<String> {
    let location = backup
        .status
        .as_ref()
        .and_then(|s| s.location.clone())
        .context("no location")?;
    let (_, prefix) = location
        .trim_start_matches("s3://")
        .split_once('/')
        .context("no prefix")?;
    Ok(prefix.to_owned())
}

/// `<namespace>/<cloud>/<backup>-<uid>/`: where a backup's own files go under a destination's
/// root (the namespace and the object's uid keep tenants and re-created objects apart).
fn own_folder(backup: &InSyncCloudBackup) -> String {
    format!(
        "{}/{}/{}-{}/",
        backup.backup_namespace(),
        backup.spec.cloud,
        backup.backup_name(),
        backup.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// The keys stored under `prefix` in the cloud's bucket.
async fn keys_under(s3: &aws_sdk_s3::Client, prefix: &str) -> Result<Vec<String>> {
    let listed = s3
        .list_objects_v2()
        .bucket("insync")
        .prefix(prefix)
        .send()
        .await?;
    Ok(listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect())
}

/// The scheduled backups of fcloud, by name (oldest slot first).
async fn scheduled_backups(api: &Api<InSyncCloudBackup>) -> Result<Vec<InSyncCloudBackup>> {
    let mut list = api
        .list(&ListParams::default().labels("insync.dev/scheduled=true,insync.dev/cloud=fcloud"))
        .await?
        .items;
    list.sort_by_key(|b| b.metadata.name.clone());
    Ok(list)
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

/// What each backup test starts from: a restricted namespace (`<purpose>-…`) watched by an
/// operator release of its own, and the APIs the tests read there.
struct Stage {
    ns: TestNamespace,
    release: real_pods::OperatorRelease,
    clouds: Api<InSyncCloud>,
    pods: Api<Pod>,
    backups: Api<InSyncCloudBackup>,
}

impl Stage {
    async fn new(purpose: &str) -> Result<Self> {
        let client: Client = real_node::cluster().await?;
        let ns = real_pods::restricted_namespace(&client, purpose).await?;
        let release_ns = unique_name(&format!("e2e-{purpose}-sys"));
        let release = install_operator(&release_ns, ns.name()).await?;
        Ok(Self {
            clouds: ns.api(),
            pods: ns.api(),
            backups: ns.api(),
            ns,
            release,
        })
    }
}

/// Creates `cloud` and waits for it to be Ready.
async fn start_cloud(clouds: &Api<InSyncCloud>, cloud: &InSyncCloud) -> Result<()> {
    clouds.create(&PostParams::default(), cloud).await?;
    wait_ready(clouds).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_demand_backup_holds_the_markers_and_a_bad_destination_fails_cleanly() -> Result<()> {
    let Stage {
        ns,
        release,
        clouds,
        pods,
        backups,
    } = Stage::new("backup").await?;
    let creating = Instant::now();
    start_cloud(&clouds, &cloud_on_real_node(ns.name())?).await?;
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
    let expected = format!("s3://insync/insync-backups/{}", own_folder(&backup));
    ensure!(
        status.location.as_deref() == Some(&*expected),
        "location {:?}, expected {expected}",
        status.location
    );
    // The cloud's status names it: the newest backup, and the newest Complete one.
    let named = poll_until(
        "fcloud's status.backup to name backup first",
        Duration::from_secs(60),
        || async {
            let cloud = clouds.get("fcloud").await?;
            Ok(cloud.status.and_then(|s| s.backup).filter(|b| {
                b.last_backup.as_ref().is_some_and(|l| l.backup == "first")
                    && b.last_successful
                        .as_ref()
                        .is_some_and(|l| l.backup == "first")
            }))
        },
    )
    .await?;
    eprintln!("fcloud status.backup: {}", serde_json::to_string(&named)?);

    // What MinIO holds is what the status and the manifest say.
    let s3 = minio(&ns, &pods).await?;
    let (manifest, contents) = check_stored(&s3, &status).await?;
    // Every MySQL table's rows, counted in the dump: the stand-in's markers table holds one.
    eprintln!("manifest mysqlRows: {:?}", manifest.mysql_rows);
    ensure!(
        manifest.mysql_rows.values().sum::<i64>() >= 1 && !manifest.mysql_rows.is_empty(),
        "no MySQL row counts in the manifest: {:?}",
        manifest.mysql_rows
    );
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

    // The operator stopped while a backup's Job runs, and still down when the Job finishes:
    // started again, it completes that backup from the Job it finds, once, from one run.
    let jobs: Api<Job> = ns.api();
    let mut attempt = 0;
    let (name, job_name, down_at) = loop {
        attempt += 1;
        let name = format!("across-restart-{attempt}");
        let job_name = format!("{name}-backup");
        create_backup(&backups, &name).await?;
        poll_until("the backup's Job to be created", BACKUP_TIMEOUT, || async {
            Ok(jobs.get_opt(&job_name).await?.map(drop))
        })
        .await?;
        release.scale(0).await?;
        let down_at = k8s_openapi::jiff::Timestamp::now();
        // Running, or not even recorded as such: either way the operator left it unfinished.
        if !backups.get(&name).await?.phase().is_final() {
            break (name, job_name, down_at);
        }
        // The Job finished and was recorded before the operator stopped: nothing was tried.
        ensure!(
            attempt < 3,
            "the backup finished before the operator stopped, 3 times"
        );
        release.scale(1).await?;
    };
    let finished = poll_until(
        "the Job to finish while the operator is down",
        BACKUP_TIMEOUT,
        || async {
            let status = jobs.get(&job_name).await?.status.unwrap_or_default();
            Ok(status.completion_time.or_else(|| {
                (status.failed.unwrap_or_default() > 0).then(|| {
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::now(),
                    )
                })
            }))
        },
    )
    .await?;
    ensure!(
        !backups.get(&name).await?.phase().is_final(),
        "the backup changed while no operator ran"
    );
    let restarting = Instant::now();
    release.scale(1).await?;
    let done = wait_backup(&backups, &name).await?;
    let status = done.status.clone().unwrap_or_default();
    eprintln!(
        "backup {name}: the operator stopped {:.1}s after the Job's creation, the Job finished {:+.1}s after that, the backup {:?} {:.1?} after the operator was started again",
        down_at
            .duration_since(
                jobs.get(&job_name)
                    .await?
                    .metadata
                    .creation_timestamp
                    .context("creation")?
                    .0
            )
            .as_secs_f64(),
        finished.0.duration_since(down_at).as_secs_f64(),
        status.phase,
        restarting.elapsed()
    );
    ensure!(
        status.phase == Some(BackupPhase::Complete),
        "backup {name} after the restart: {}",
        serde_yaml::to_string(&status)?
    );
    let runs = jobs
        .list(&ListParams::default().labels(&format!("insync.dev/backup={name}")))
        .await?
        .items;
    ensure!(runs.len() == 1, "{} Jobs for one backup", runs.len());
    let run = runs[0].status.clone().unwrap_or_default();
    ensure!(
        run.succeeded == Some(1) && run.failed.unwrap_or_default() == 0,
        "the Job ran more than once: {run:?}"
    );
    let run_pods = pods
        .list(&ListParams::default().labels(&format!("job-name={job_name}")))
        .await?
        .items;
    ensure!(
        run_pods.len() == 1,
        "{} pods ran the backup",
        run_pods.len()
    );
    let (manifest, _) = check_stored(&s3, &status).await?;
    // The status keeps whole seconds; the manifest, the runner's clock.
    let manifest_end: k8s_openapi::jiff::Timestamp = manifest.completed_at.parse()?;
    ensure!(
        status.completed_at.as_ref().map(|t| t.0.as_second()) == Some(manifest_end.as_second()),
        "the status's completedAt {:?} is not the manifest's {}",
        status.completed_at,
        manifest.completed_at
    );

    // An object store that does not answer: a Service with no endpoints (kube-proxy rejects
    // connections to it). Every slot of the schedule tries again and fails, quickly and
    // saying why, and leaves nothing behind; once the Service finds the cloud's MinIO, the
    // next slot's backup completes.
    let services: Api<Service> = ns.api();
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "no-store"},
                "spec": {"selector": {"e2e": "nothing-here"},
                         "ports": [{"name": "s3", "port": 9000}]}
            }))?,
        )
        .await?;
    clouds
        .patch(
            "fcloud",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"backup": {
                "schedule": "* * * * *",
                "destination": {"s3": {
                    "bucket": "insync",
                    "prefix": "unreachable/",
                    "endpoint": format!("http://no-store.{}.svc.cluster.local:9000", ns.name()),
                    "secretRef": {"name": "fcloud-minio-credentials"}
                }}
            }}})),
        )
        .await?;
    let failures = poll_until("two scheduled backups to fail", BACKUP_TIMEOUT, || async {
        let scheduled = scheduled_backups(&backups).await?;
        if let Some(b) = scheduled
            .iter()
            .find(|b| b.phase() == BackupPhase::Complete)
        {
            anyhow::bail!("{} completed without a store", b.backup_name());
        }
        let failed: Vec<_> = scheduled
            .into_iter()
            .filter(|b| b.phase() == BackupPhase::Failed)
            .collect();
        Ok((failed.len() >= 2).then_some(failed))
    })
    .await?;
    for failed in &failures {
        let status = failed.status.clone().unwrap_or_default();
        let reason = status.reason.clone().unwrap_or_default();
        let took = status
            .completed_at
            .as_ref()
            .zip(failed.metadata.creation_timestamp.as_ref())
            .map(|(end, start)| end.0.duration_since(start.0).as_secs_f64())
            .unwrap_or(f64::MAX);
        eprintln!(
            "backup {}: Failed {took:.1}s after its creation: {reason}",
            failed.backup_name()
        );
        ensure!(
            reason.contains("the object store could not be reached"),
            "the reason does not say the store could not be reached: {reason}"
        );
        ensure!(took < 90.0, "the failure took {took:.1}s");
    }
    // The cloud's status says the newest backup failed, that the newest Complete one is still
    // the backup taken across the restart, and when the schedule tries again.
    let restarted = name.as_str();
    let newest_failure = failures
        .iter()
        .filter_map(|b| b.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .max()
        .context("no creation time")?;
    let named = poll_until(
        "fcloud's status.backup to name a failed backup and the next slot",
        Duration::from_secs(90),
        || async {
            let cloud = clouds.get("fcloud").await?;
            Ok(cloud.status.and_then(|s| s.backup).filter(|b| {
                b.last_backup
                    .as_ref()
                    .is_some_and(|l| l.phase == Some(BackupPhase::Failed))
                    && b.last_successful
                        .as_ref()
                        .is_some_and(|l| l.backup == restarted)
                    && b.next_scheduled_time
                        .as_ref()
                        .is_some_and(|t| t.0 > newest_failure)
            }))
        },
    )
    .await;
    let named = match named {
        Ok(named) => named,
        Err(e) => {
            let seen = clouds.get("fcloud").await?.status.and_then(|s| s.backup);
            anyhow::bail!("{e:#}; status.backup: {}", serde_json::to_string(&seen)?);
        }
    };
    eprintln!(
        "fcloud status.backup while the store is unreachable: {}",
        serde_json::to_string(&named)?
    );
    let cloud = clouds.get("fcloud").await?;
    ensure!(
        condition(&cloud, "Ready").0 == "True",
        "the cloud is not Ready while its backups fail: {:?}",
        condition(&cloud, "Ready")
    );
    services
        .patch(
            "no-store",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"selector": {
                "e2e": null,
                "app.kubernetes.io/instance": "fcloud",
                "app.kubernetes.io/component": "minio"
            }}})),
        )
        .await?;
    let last_failed = failures
        .iter()
        .filter_map(|b| b.metadata.name.clone())
        .max()
        .unwrap_or_default();
    let fixed = Instant::now();
    let scheduled = poll_until(
        "a later scheduled backup to complete",
        BACKUP_TIMEOUT,
        || async {
            Ok(scheduled_backups(&backups).await?.into_iter().find(|b| {
                b.metadata.name.as_deref() > Some(last_failed.as_str())
                    && b.phase() == BackupPhase::Complete
            }))
        },
    )
    .await?;
    clouds
        .patch(
            "fcloud",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"backup": null}})),
        )
        .await?;
    let name = scheduled.metadata.name.clone().unwrap_or_default();
    eprintln!(
        "scheduled backup {name}: Complete {:.1?} after the store answered",
        fixed.elapsed()
    );
    ensure!(
        name.len() == "fcloud-".len() + 12 && name.starts_with("fcloud-20"),
        "scheduled backup name {name}"
    );
    check_stored(&s3, &scheduled.status.clone().unwrap_or_default()).await?;
    for failed in &failures {
        let left = keys_under(
            &s3,
            &format!("unreachable/fcloud/{}/", failed.backup_name()),
        )
        .await?;
        ensure!(left.is_empty(), "a failed backup left {left:?}");
    }

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

    tear_down(ns, release).await
}

const OFFSITE_USER: &str = "offsite-admin";
const OFFSITE_KEY: &str = "offsite-secret-key";
const OFFSITE_BUCKET: &str = "offsite";

/// A MinIO of the test's own beside the cloud (a plain pod, emptyDir): where backups go, so they
/// outlive the cloud and its volumes. Returns an S3 client for it from the host and its
/// in-cluster endpoint.
async fn offsite_store(ns: &TestNamespace) -> Result<(aws_sdk_s3::Client, String)> {
    let mut pod_spec = real_node::pod_spec_fields();
    let spec = pod_spec.as_object_mut().context("pod spec")?;
    spec.insert(
        "securityContext".to_owned(),
        json!({"runAsNonRoot": true, "runAsUser": 10001, "runAsGroup": 10001,
               "seccompProfile": {"type": "RuntimeDefault"}}),
    );
    spec.insert(
        "containers".to_owned(),
        json!([{
            "name": "minio",
            "image": "registry.example.com/insync/minio:RELEASE.2025-04-22T22-12-26Z",
            "imagePullPolicy": "Never",
            "args": ["server", "/data", "--address", ":9000", "--certs-dir", "/tmp/certs"],
            "env": [{"name": "MINIO_ROOT_USER", "value": OFFSITE_USER},
                    {"name": "MINIO_ROOT_PASSWORD", "value": OFFSITE_KEY}],
            "ports": [{"name": "s3", "containerPort": 9000}],
            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "data", "mountPath": "/data"},
                             {"name": "tmp", "mountPath": "/tmp"}]
        }]),
    );
    spec.insert(
        "volumes".to_owned(),
        json!([{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]),
    );
    let manifest = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "offsite", "namespace": ns.name(), "labels": {"app": "offsite"}},
         "spec": pod_spec},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "offsite", "namespace": ns.name()},
         "spec": {"selector": {"app": "offsite"}, "ports": [{"name": "s3", "port": 9000}]}},
        {"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": "offsite-keys", "namespace": ns.name()},
         "stringData": {"accessKeyId": OFFSITE_USER, "secretAccessKey": OFFSITE_KEY}},
    ]});
    insync_e2e::kubectl_stdin(&["apply", "-f", "-"], &manifest.to_string()).await?;
    let pods: Api<Pod> = ns.api();
    let ip = poll_until("the offsite MinIO pod to run", READY_TIMEOUT, || async {
        let pod = pods.get("offsite").await?;
        let status = pod.status.unwrap_or_default();
        Ok((status.phase.as_deref() == Some("Running"))
            .then_some(status.pod_ip)
            .flatten())
    })
    .await?;
    let credentials =
        aws_sdk_s3::config::Credentials::new(OFFSITE_USER, OFFSITE_KEY, None, None, "e2e");
    let config = insync_operator::runner::sdk_config(
        "us-east-1",
        Some(&format!("http://{ip}:9000")),
        Some(credentials),
    )
    .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    poll_until(
        "the offsite bucket to be created",
        READY_TIMEOUT,
        || async {
            Ok(s3
                .create_bucket()
                .bucket(OFFSITE_BUCKET)
                .send()
                .await
                .is_ok()
                .then_some(()))
        },
    )
    .await?;
    Ok((
        s3,
        format!("http://offsite.{}.svc.cluster.local:9000", ns.name()),
    ))
}

/// `spec.backup` with the offsite store (at `endpoint`) as its destination, under `clouds/`.
fn offsite_destination(endpoint: &str) -> Result<insync_operator::api::BackupSpec> {
    Ok(serde_json::from_value(json!({"destination": {"s3": {
        "bucket": OFFSITE_BUCKET, "prefix": "clouds/", "endpoint": endpoint,
        "secretRef": {"name": "offsite-keys"}}}}))?)
}

/// `spec.restore` from an S3 location alone (bucket, prefix, endpoint, Secret).
fn restore_from(endpoint: &str, prefix: &str) -> insync_operator::api::RestoreSpec {
    insync_operator::api::RestoreSpec {
        backup: None,
        s3: Some(insync_operator::api::RestoreS3 {
            bucket: OFFSITE_BUCKET.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: Some(endpoint.to_owned()),
            region: None,
            secret_ref: Some(insync_operator::api::SecretRef {
                name: "offsite-keys".to_owned(),
            }),
        }),
    }
}

async fn wait_restore(
    clouds: &Api<InSyncCloud>,
    name: &str,
    timeout: Duration,
) -> Result<insync_operator::api::RestoreStatus> {
    poll_until(
        &format!("the restore of {name} to finish"),
        timeout,
        || async {
            let cloud = clouds.get(name).await?;
            let restore = cloud.status.and_then(|s| s.restore);
            Ok(restore
                .filter(|r| matches!(r.phase, Some(RestorePhase::Complete | RestorePhase::Failed))))
        },
    )
    .await
}

/// Waits for the backup's verification to pass or fail.
async fn wait_verified(
    api: &Api<InSyncCloudBackup>,
    name: &str,
) -> Result<insync_operator::api::Verification> {
    poll_until(
        &format!("the verification of {name}"),
        READY_TIMEOUT,
        || async {
            let backup = api.get(name).await?;
            Ok(backup
                .status
                .and_then(|s| s.verification)
                .filter(|v| matches!(v.phase, Some(VerifyPhase::Passed | VerifyPhase::Failed))))
        },
    )
    .await
}

/// How long ago the backup completed.
async fn backup_age(api: &Api<InSyncCloudBackup>, name: &str) -> Result<Duration> {
    let backup = api.get(name).await?;
    let completed = backup
        .status
        .and_then(|s| s.completed_at)
        .context("no completedAt")?;
    let age = k8s_openapi::jiff::Timestamp::now().duration_since(completed.0);
    Ok(Duration::try_from(age).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_cloud_comes_back_from_its_backup_and_a_tampered_backup_is_refused() -> Result<()> {
    let Stage {
        ns,
        release,
        clouds,
        pods,
        backups,
    } = Stage::new("restore").await?;
    let (offsite, endpoint) = offsite_store(&ns).await?;
    let mut cloud = cloud_on_real_node(ns.name())?;
    let mut backup_spec = offsite_destination(&endpoint)?;
    backup_spec.verify = true;
    cloud.spec.backup = Some(backup_spec);
    start_cloud(&clouds, &cloud).await?;

    // Markers through the stand-in CloudMaster: rows in MySQL, items in the metadata store.
    let master = format!("{}:8443", pod_ip(&pods, "cloudmaster").await?);
    let markers: Vec<(String, String)> = (0..3)
        .map(|i| (unique_name("marker"), format!("value-{i}")))
        .collect();
    for (key, value) in &markers {
        poll_until("a marker to be written", READY_TIMEOUT, || async {
            let answer = http(&master, "PUT", &format!("/markers/{key}"), value).await;
            Ok(matches!(answer, Ok((200, _))).then_some(()))
        })
        .await?;
    }
    create_backup(&backups, "before-loss").await?;
    let backup = wait_backup(&backups, "before-loss").await?;
    let status = backup.status.clone().unwrap_or_default();
    ensure!(
        status.phase == Some(BackupPhase::Complete),
        "backup: {}",
        serde_yaml::to_string(&status)?
    );
    let prefix = &*format!("clouds/{}", own_folder(&backup));
    ensure!(status.location.as_deref() == Some(&*format!("s3://{OFFSITE_BUCKET}/{prefix}")));

    // Verification: restored into throwaway datastores, checked against the manifest.
    let verified = wait_verified(&backups, "before-loss").await?;
    eprintln!(
        "verification of before-loss: {:?} {:.1?} after the backup completed: {}",
        verified.phase,
        backup_age(&backups, "before-loss").await?,
        verified.message.clone().unwrap_or_default()
    );
    ensure!(verified.phase == Some(VerifyPhase::Passed), "{verified:?}");
    let healthy = poll_until("fcloud to say BackupHealthy", BACKUP_TIMEOUT, || async {
        let cloud = clouds.get("fcloud").await?;
        let last = cloud
            .status
            .as_ref()
            .and_then(|s| s.backup.as_ref())
            .and_then(|b| b.last_verified.clone());
        Ok(last
            .filter(|l| l.backup == "before-loss")
            .map(|_| condition(&cloud, "BackupHealthy")))
    })
    .await?;
    ensure!(healthy.0 == "True", "BackupHealthy {healthy:?}");
    let verify_pods = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=verify"))
        .await?;
    ensure!(
        verify_pods
            .items
            .iter()
            .all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")),
        "a throwaway datastore still runs"
    );

    // A backup whose dump was deleted from the bucket by hand: its verification says so.
    clouds
        .patch(
            "fcloud",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"backup": {"verify": false}}})),
        )
        .await?;
    create_backup(&backups, "hand-deleted").await?;
    let hand_deleted = wait_backup(&backups, "hand-deleted").await?;
    ensure!(hand_deleted.phase() == BackupPhase::Complete);
    offsite
        .delete_object()
        .bucket(OFFSITE_BUCKET)
        .key(format!("{}mysql.sql", recorded_prefix(&hand_deleted)?))
        .send()
        .await?;
    clouds
        .patch(
            "fcloud",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"backup": {"verify": true}}})),
        )
        .await?;
    // A backup is verified when it is reconciled; the cloud's change does not wake it.
    backups
        .patch(
            "hand-deleted",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"e2e/verify": "now"}}})),
        )
        .await?;
    let broken = wait_verified(&backups, "hand-deleted").await?;
    eprintln!("verification of hand-deleted: {broken:?}");
    let message = broken.message.clone().unwrap_or_default();
    ensure!(
        broken.phase == Some(VerifyPhase::Failed) && message.contains("mysql.sql: missing"),
        "{broken:?}"
    );
    let unhealthy = poll_until(
        "fcloud to say the backup is not healthy",
        BACKUP_TIMEOUT,
        || async {
            let cloud = clouds.get("fcloud").await?;
            let (status, reason, message) = condition(&cloud, "BackupHealthy");
            Ok((status == "False").then_some((reason, message)))
        },
    )
    .await?;
    eprintln!("BackupHealthy=False {unhealthy:?}");
    ensure!(unhealthy.0 == "VerificationFailed", "{unhealthy:?}");

    // Lose the cloud: delete it, then its volumes.
    lose_cloud(&ns).await?;

    // A copy of the backup with one byte of the dump changed (same size): the restore is
    // refused before anything of the cloud starts.
    let listed = offsite
        .list_objects_v2()
        .bucket(OFFSITE_BUCKET)
        .prefix(prefix)
        .send()
        .await?;
    for object in listed.contents() {
        let key = object.key().context("key")?;
        let mut bytes = offsite
            .get_object()
            .bucket(OFFSITE_BUCKET)
            .key(key)
            .send()
            .await?
            .body
            .collect()
            .await?
            .to_vec();
        if key.ends_with("mysql.sql") {
            let last = bytes.len() - 2;
            bytes[last] ^= 0x01;
        }
        offsite
            .put_object()
            .bucket(OFFSITE_BUCKET)
            .key(key.replacen(prefix, "clouds/tampered/", 1))
            .body(bytes.into())
            .send()
            .await?;
    }
    let mut refused = cloud_on_real_node(ns.name())?;
    refused.metadata.name = Some("refused".to_owned());
    refused.spec.restore = Some(restore_from(&endpoint, "clouds/tampered/"));
    clouds.create(&PostParams::default(), &refused).await?;
    let outcome = wait_restore(&clouds, "refused", BACKUP_TIMEOUT).await?;
    eprintln!("restore from a tampered backup: {outcome:?}");
    ensure!(outcome.phase == Some(RestorePhase::Failed), "{outcome:?}");
    let message = outcome.message.clone().unwrap_or_default();
    ensure!(
        message.starts_with("refused: ")
            && message.contains("mysql.sql")
            && message.contains("sha256"),
        "the refusal does not name the part and its checksum: {message}"
    );
    let refused_cloud = clouds.get("refused").await?;
    ensure!(
        condition(&refused_cloud, "Restored").1 == "RestoreRefused",
        "{:?}",
        condition(&refused_cloud, "Restored")
    );
    let started = pods
        .list(&ListParams::default().labels("app.kubernetes.io/instance=refused"))
        .await?
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .filter(|name| !name.starts_with("refused-restore-check"))
        .collect::<Vec<_>>();
    ensure!(started.is_empty(), "a refused restore started {started:?}");
    clouds.delete("refused", &Default::default()).await?;

    // Restore into a new cloud of the same namespace by the backup's name: read at the
    // location its status records, with the keys of the new cloud's own destination. (The
    // location alone is what the refused restore above and the measurement below read from.)
    let mut restored = cloud_on_real_node(ns.name())?;
    restored.spec.backup = Some(offsite_destination(&endpoint)?);
    restored.spec.restore = Some(insync_operator::api::RestoreSpec {
        backup: Some("before-loss".to_owned()),
        s3: None,
    });
    let began = Instant::now();
    clouds.create(&PostParams::default(), &restored).await?;
    let outcome = wait_restore(&clouds, "fcloud", READY_TIMEOUT).await?;
    let restore_took = began.elapsed();
    ensure!(outcome.phase == Some(RestorePhase::Complete), "{outcome:?}");
    ensure!(
        outcome.source.as_deref() == Some(&*format!("s3://{OFFSITE_BUCKET}/{prefix}")),
        "restored from {:?}",
        outcome.source
    );
    wait_ready(&clouds).await?;
    eprintln!(
        "restore by name: Complete {restore_took:.1?} after the cloud's creation, Ready after {:.1?}: {:?}",
        began.elapsed(),
        outcome.message
    );
    // The message counts every part restored, the MySQL dump with its rows included.
    let message = outcome.message.clone().unwrap_or_default();
    ensure!(
        message.contains("mysql.sql (") && !message.contains("(0 bytes"),
        "restore message: {message}"
    );
    let master = format!("{}:8443", pod_ip(&pods, "cloudmaster").await?);
    for (key, value) in &markers {
        let body = poll_until("a marker to read back", READY_TIMEOUT, || async {
            Ok(
                match http(&master, "GET", &format!("/markers/{key}"), "").await {
                    Ok((200, body)) => Some(body),
                    _ => None,
                },
            )
        })
        .await?;
        let got: serde_json::Value = serde_json::from_str(&body)?;
        ensure!(
            got["database"] == json!(value) && got["metadata"] == json!(value),
            "marker {key} after the restore: {body}"
        );
    }
    eprintln!("all {} markers are back", markers.len());

    tear_down(ns, release).await
}

/// Runs SQL as MySQL's root inside the cloud's MySQL pod; returns what it printed.
async fn mysql_exec(ns: &TestNamespace, sql: &str) -> Result<String> {
    kubectl(&[
        "exec",
        "-n",
        ns.name(),
        "fcloud-mysql-0",
        "--",
        "sh",
        "-c",
        &format!("MYSQL_PWD=\"$MYSQL_ROOT_PASSWORD\" mysql -uroot -N -B insync -e \"{sql}\""),
    ])
    .await
}

/// Backup and restore of a catalogue of a million rows (docs/backups.md, "Measured"). Slow and
/// heavy: run it on its own with `--ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: minutes, and a 100 MB dump"]
async fn measure_backup_and_restore_of_a_million_catalogue_rows() -> Result<()> {
    let rows: u64 = std::env::var("INSYNC_E2E_CATALOGUE_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1_000_000);
    let Stage {
        ns,
        release,
        clouds,
        backups,
        ..
    } = Stage::new("measure").await?;
    let (offsite, endpoint) = offsite_store(&ns).await?;
    let mut cloud = cloud_on_real_node(ns.name())?;
    cloud.spec.backup = Some(offsite_destination(&endpoint)?);
    start_cloud(&clouds, &cloud).await?;

    // A catalogue table shaped like a file index: path, size, content hash, time.
    let filling = Instant::now();
    mysql_exec(
        &ns,
        &format!(
            "SET SESSION max_recursive_iterations = {rows}; \
             CREATE TABLE catalogue (id BIGINT PRIMARY KEY, path VARCHAR(255) NOT NULL, \
             size BIGINT NOT NULL, sha256 CHAR(64) NOT NULL, modified DATETIME NOT NULL) ENGINE=InnoDB; \
             INSERT INTO catalogue WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {rows}) \
             SELECT n, CONCAT('/users/', n % 5000, '/backup/', n, '.dat'), n * 4099 % 1000000007, SHA2(n, 256), \
             TIMESTAMP('2026-01-01') + INTERVAL n SECOND FROM seq;"
        ),
    )
    .await?;
    let count = mysql_exec(&ns, "SELECT COUNT(*) FROM catalogue").await?;
    eprintln!(
        "catalogue: {} rows written in {:.1?}",
        count.trim(),
        filling.elapsed()
    );

    let started = Instant::now();
    create_backup(&backups, "million").await?;
    let backup = wait_backup(&backups, "million").await?;
    let took = started.elapsed();
    let status = backup.status.clone().unwrap_or_default();
    ensure!(status.phase == Some(BackupPhase::Complete), "{status:?}");
    let dump = status
        .parts
        .iter()
        .find(|p| p.name == "mysql.sql")
        .map(|p| p.size_bytes)
        .unwrap_or_default();
    let timing =
        |from: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
         to: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
            match (from, to) {
                (Some(a), Some(b)) => format!("{:.1}", b.0.duration_since(a.0).as_secs_f64()),
                _ => "?".to_owned(),
            }
        };
    eprintln!(
        "backup of {rows} rows: Complete {took:.1?} after its creation (dump start -> manifest: {} s), {} bytes in all, mysql.sql {dump} bytes",
        timing(&status.started_at, &status.completed_at),
        status.size_bytes.unwrap_or_default()
    );

    lose_cloud(&ns).await?;

    let mut restored = cloud_on_real_node(ns.name())?;
    restored.spec.restore = Some(restore_from(&endpoint, &recorded_prefix(&backup)?));
    let began = Instant::now();
    clouds.create(&PostParams::default(), &restored).await?;
    let outcome = wait_restore(&clouds, "fcloud", READY_TIMEOUT).await?;
    let restore_took = began.elapsed();
    ensure!(outcome.phase == Some(RestorePhase::Complete), "{outcome:?}");
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = ns.api();
    let job_time = |name: &'static str| {
        let jobs = jobs.clone();
        async move {
            let job = jobs.get(name).await?;
            let status = job.status.unwrap_or_default();
            Ok::<_, anyhow::Error>(timing(&status.start_time, &status.completion_time))
        }
    };
    eprintln!(
        "restore of {rows} rows: Complete {restore_took:.1?} after the cloud's creation (check Job {} s, restore Job {} s): {:?}",
        job_time("fcloud-restore-check").await?,
        job_time("fcloud-restore").await?,
        outcome.message
    );
    let count = mysql_exec(&ns, "SELECT COUNT(*) FROM catalogue").await?;
    ensure!(count.trim() == rows.to_string(), "restored rows: {count}");
    drop(offsite);

    tear_down(ns, release).await
}

/// Retention on real pods: three backups the schedule could have taken (labelled as its own)
/// and one taken by hand, all Complete with files in MinIO; then `retention: {keepLast: 1}`.
/// The two older scheduled backups must go with their files (their prefixes empty in MinIO),
/// the newest and the hand-made one must stay with theirs. Deleting the hand-made backup's
/// object by hand must leave its files in the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_expired_backups_files_and_keeps_the_rest() -> Result<()> {
    let Stage {
        ns,
        release,
        clouds,
        pods,
        backups,
    } = Stage::new("retention").await?;
    start_cloud(&clouds, &cloud_on_real_node(ns.name())?).await?;

    let scheduled = [
        "fcloud-202611280100",
        "fcloud-202611280200",
        "fcloud-202611280300",
    ];
    for name in scheduled.iter().copied().chain(["by-hand"]) {
        let mut backup = InSyncCloudBackup::new(
            name,
            InSyncCloudBackupSpec {
                cloud: "fcloud".to_owned(),
            },
        );
        if name != "by-hand" {
            backup.metadata.labels = Some(BTreeMap::from([
                ("insync.dev/cloud".to_owned(), "fcloud".to_owned()),
                ("insync.dev/scheduled".to_owned(), "true".to_owned()),
            ]));
        }
        backups.create(&PostParams::default(), &backup).await?;
        let done = wait_backup(&backups, name).await?;
        ensure!(
            done.phase() == BackupPhase::Complete,
            "backup {name}: {:?}",
            done.status
        );
        // Creation times are in seconds: the next backup must be visibly newer.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let s3 = minio(&ns, &pods).await?;
    let mut prefixes = std::collections::BTreeMap::new();
    for name in scheduled.iter().copied().chain(["by-hand"]) {
        prefixes.insert(name, recorded_prefix(&backups.get(name).await?)?);
    }
    let prefix = |name: &str| prefixes.get(name).cloned().unwrap_or_default();
    for name in scheduled.iter().copied().chain(["by-hand"]) {
        let keys = keys_under(&s3, &prefix(name)).await?;
        ensure!(
            keys.iter().any(|k| k.ends_with("manifest.json")),
            "{name} before retention: {keys:?}"
        );
    }

    let expiring = Instant::now();
    let watched = scheduled[0];
    clouds
        .patch(
            "fcloud",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"backup": {"retention": {"keepLast": 1}}}})),
        )
        .await?;
    // What an expiring backup shows while its files go.
    if let Ok(Some(seen)) = poll_until(
        "an expired backup's deletion status",
        Duration::from_secs(60),
        || async {
            let backup = backups.get_opt(watched).await?;
            Ok(match backup {
                None => Some(None),
                Some(b) => b
                    .status
                    .and_then(|s| s.deletion)
                    .map(|d| Some((b.metadata.annotations, d))),
            })
        },
    )
    .await
    {
        eprintln!("{watched} while expiring: {seen:?}");
    }
    for name in &scheduled[..2] {
        poll_until(
            &format!("expired backup {name} to be deleted"),
            BACKUP_TIMEOUT,
            || async { Ok(backups.get_opt(name).await?.is_none().then_some(())) },
        )
        .await?;
    }
    eprintln!(
        "retention keepLast 1: two expired backups deleted with their files {:.1?} after the cloud's change",
        expiring.elapsed()
    );
    for name in &scheduled[..2] {
        let keys = keys_under(&s3, &prefix(name)).await?;
        ensure!(keys.is_empty(), "{name} expired, yet in MinIO: {keys:?}");
    }
    for name in [scheduled[2], "by-hand"] {
        let kept = backups.get(name).await?;
        ensure!(
            kept.status
                .as_ref()
                .and_then(|s| s.deletion.as_ref())
                .is_none(),
            "{name} is kept: {:?}",
            kept.status
        );
        let keys = keys_under(&s3, &prefix(name)).await?;
        ensure!(keys.len() >= 2, "{name} kept, its files: {keys:?}");
        eprintln!("kept {name}: {} files", keys.len());
    }

    // Deleting a backup object by hand keeps its files (restore after loss depends on them).
    backups
        .delete("by-hand", &kube::api::DeleteParams::default())
        .await?;
    poll_until("by-hand to be deleted", Duration::from_secs(60), || async {
        Ok(backups.get_opt("by-hand").await?.is_none().then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let keys = keys_under(&s3, &prefix("by-hand")).await?;
    ensure!(
        keys.iter().any(|k| k.ends_with("manifest.json")),
        "by-hand's object deleted by hand: its files must stay, found {keys:?}"
    );
    eprintln!("by-hand deleted by hand: its {} files stay", keys.len());

    tear_down(ns, release).await
}
