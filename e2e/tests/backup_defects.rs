//! The backup defects of issue 20 that need the control plane (kwok nodes, where a Job of a
//! cloud on the never-ready version never finishes: a restore that stays in progress). Each
//! failed on the operator before its fix. What a Job does is tested on the real node
//! (`real_backup`).
//!
//! Run: `cargo build -p insync-operator && cargo test -p insync-e2e --test backup_defects`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, ensure};
use common::{Operator, fcloud_no_dns, install_crd};
use insync_e2e::{NEVER_READY_VERSION, TestNamespace, cluster, holds_for, wait_for};
use insync_operator::api::{
    BackupPhase, BackupRetention, BackupSpec, InSyncCloud, InSyncCloudBackup,
    InSyncCloudBackupSpec, RestorePhase, RestoreSpec,
};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const SOURCE: &str = "fcloud-202612050000";
const OLDER_SLOTS: [&str; 3] = [SOURCE, "fcloud-202612060000", "fcloud-202612070000"];

/// A Complete scheduled backup of fcloud (as the schedule labels them) in an off-site bucket,
/// status written by the test: nothing runs for it.
async fn complete_scheduled_backup(api: &Api<InSyncCloudBackup>, name: &str) -> Result<()> {
    let mut backup = InSyncCloudBackup::new(
        name,
        InSyncCloudBackupSpec {
            cloud: "fcloud".to_owned(),
        },
    );
    backup.metadata.labels = Some(BTreeMap::from([
        ("insync.dev/cloud".to_owned(), "fcloud".to_owned()),
        ("insync.dev/scheduled".to_owned(), "true".to_owned()),
    ]));
    api.create(&PostParams::default(), &backup).await?;
    let status = json!({"status": {
        "phase": "Complete",
        "location": format!("s3://offsite/clouds/fcloud/{name}/"),
        "store": {"kind": "OffSite", "s3": {"bucket": "offsite", "prefix": "clouds/"}},
        "completedAt": "2026-12-07T00:05:00Z",
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    Ok(())
}

fn restore_phase(cloud: &InSyncCloud) -> Option<RestorePhase> {
    cloud.status.as_ref()?.restore.as_ref()?.phase
}

/// Defect 1: a cloud re-created with `restore.backup: <older slot>` and its usual schedule took
/// dumps of its half-loaded databases, and its retention expired the backup being restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restoring_cloud_takes_no_backup_and_keeps_the_backup_it_reads() -> Result<()> {
    let client = cluster().await?;
    install_crd().await?;
    let ns = TestNamespace::create(&client, "restoring").await?;
    let backups: Api<InSyncCloudBackup> = ns.api();
    for name in OLDER_SLOTS {
        complete_scheduled_backup(&backups, name).await?;
    }
    // The lost cloud comes back from its oldest backup, with a schedule that is due every
    // minute and keeps one backup.
    let clouds: Api<InSyncCloud> = ns.api();
    let mut cloud = fcloud_no_dns(ns.name())?;
    // On the never-ready version the restore's Jobs never finish (e2e/kwok/pod-stages.yaml).
    cloud.spec.version = NEVER_READY_VERSION.to_owned();
    cloud.spec.restore = Some(RestoreSpec {
        backup: Some(SOURCE.to_owned()),
        s3: None,
    });
    cloud.spec.backup = Some(BackupSpec {
        schedule: Some("* * * * *".to_owned()),
        retention: Some(BackupRetention {
            keep_last: Some(1),
            ..BackupRetention::default()
        }),
        ..BackupSpec::default()
    });
    clouds.create(&PostParams::default(), &cloud).await?;
    let operator = Operator::start_with_env(
        ns.name(),
        &[],
        &[(
            "INSYNC_OPERATOR_IMAGE",
            "ghcr.io/insync-operator/insync-operator:e2e",
        )],
    )
    .await?;

    // kwok never finishes the check Job: the restore stays Checking.
    wait_for(
        "the restore to be Checking",
        Duration::from_secs(60),
        || async {
            Ok(restore_phase(&clouds.get("fcloud").await?) == Some(RestorePhase::Checking))
        },
    )
    .await?;
    // A backup asked for by hand waits too, and says why.
    backups
        .create(
            &PostParams::default(),
            &InSyncCloudBackup::new(
                "by-hand",
                InSyncCloudBackupSpec {
                    cloud: "fcloud".to_owned(),
                },
            ),
        )
        .await?;
    wait_for(
        "the backup by hand to wait",
        Duration::from_secs(60),
        || async {
            let backup = backups.get("by-hand").await?;
            let reason = backup.status.as_ref().and_then(|s| s.reason.clone());
            Ok(backup.phase() == BackupPhase::Pending
                && reason.is_some_and(|r| r.contains("being restored")))
        },
    )
    .await?;
    // Across more than one slot and two schedule rounds: nothing taken, nothing expired.
    holds_for(
        "no new backup and no expired one",
        Duration::from_secs(75),
        || async {
            let all = backups.list(&Default::default()).await?.items;
            let names: Vec<String> = all.iter().map(ResourceExt::name_any).collect();
            let expired: Vec<&str> = all
                .iter()
                .filter(|b| b.annotations().contains_key("insync.dev/expired"))
                .map(|b| b.backup_name())
                .collect();
            ensure!(
                names.len() == OLDER_SLOTS.len() + 1 && expired.is_empty(),
                "backups {names:?}, expired {expired:?}"
            );
            Ok(true)
        },
    )
    .await?;
    ensure!(restore_phase(&clouds.get("fcloud").await?) == Some(RestorePhase::Checking));
    drop(operator);
    ns.delete_and_wait(Duration::from_secs(120)).await?;
    Ok(())
}

/// Defect 8: `spec.restore` could be removed mid-restore (the gate opened and CloudMaster
/// started on a partly loaded database). The CRD refuses it until the restore is Complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_restore_stays_until_the_restore_completes() -> Result<()> {
    let client = cluster().await?;
    install_crd().await?;
    // No operator: the test writes the status a restore would have.
    let ns = TestNamespace::create(&client, "restore-removal").await?;
    let clouds: Api<InSyncCloud> = ns.api();
    let mut cloud = fcloud_no_dns(ns.name())?;
    cloud.spec.restore = Some(RestoreSpec {
        backup: Some(SOURCE.to_owned()),
        s3: None,
    });
    clouds.create(&PostParams::default(), &cloud).await?;
    let set_phase = |phase: &'static str| {
        let clouds = clouds.clone();
        async move {
            clouds
                .patch_status(
                    "fcloud",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"restore": {"phase": phase}}})),
                )
                .await
        }
    };
    let remove = || {
        let clouds = clouds.clone();
        async move {
            clouds
                .patch(
                    "fcloud",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"restore": null}})),
                )
                .await
        }
    };

    let refused = remove()
        .await
        .expect_err("removed before the restore began");
    ensure!(
        refused.to_string().contains("can be removed only once"),
        "{refused}"
    );
    for phase in ["Checking", "Restoring", "Failed"] {
        set_phase(phase).await?;
        let refused = remove()
            .await
            .expect_err("removed while the restore was not Complete");
        ensure!(
            refused
                .to_string()
                .contains("status.restore.phase is Complete"),
            "{phase}: {refused}"
        );
    }
    set_phase("Complete").await?;
    let removed = remove().await?;
    ensure!(removed.spec.restore.is_none());
    ns.delete_and_wait(Duration::from_secs(120)).await?;
    Ok(())
}

/// Defect 2: a restore by name of a backup kept in the restoring cloud's own MinIO could not
/// work (that MinIO does not run before the restore). It is refused before anything starts,
/// saying why, and no Job is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_no_store_can_serve_is_refused_before_anything_starts() -> Result<()> {
    let client = cluster().await?;
    install_crd().await?;
    let ns = TestNamespace::create(&client, "own-minio").await?;
    let backups: Api<InSyncCloudBackup> = ns.api();
    complete_scheduled_backup(&backups, SOURCE).await?;
    backups
        .patch_status(
            SOURCE,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"store": {"kind": "CloudMinio", "s3": null}}})),
        )
        .await?;
    let clouds: Api<InSyncCloud> = ns.api();
    let mut cloud = fcloud_no_dns(ns.name())?;
    cloud.spec.restore = Some(RestoreSpec {
        backup: Some(SOURCE.to_owned()),
        s3: None,
    });
    clouds.create(&PostParams::default(), &cloud).await?;
    let operator = Operator::start_with_env(
        ns.name(),
        &[],
        &[(
            "INSYNC_OPERATOR_IMAGE",
            "ghcr.io/insync-operator/insync-operator:e2e",
        )],
    )
    .await?;
    let refused = insync_e2e::poll_until(
        "the restore to be refused",
        Duration::from_secs(60),
        || async {
            let cloud = clouds.get("fcloud").await?;
            let restore = cloud.status.as_ref().and_then(|s| s.restore.clone());
            Ok(restore.filter(|r| r.phase == Some(RestorePhase::Failed)))
        },
    )
    .await?;
    let message = refused.message.unwrap_or_default();
    ensure!(
        message.contains("this cloud's own object store") && message.contains("destination.s3"),
        "{message}"
    );
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = ns.api();
    let names: Vec<String> = jobs
        .list(&Default::default())
        .await?
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    ensure!(names.is_empty(), "Jobs {names:?}");
    let workloads: Api<k8s_openapi::api::apps::v1::StatefulSet> = ns.api();
    ensure!(
        workloads.list(&Default::default()).await?.items.is_empty(),
        "a datastore started"
    );
    drop(operator);
    ns.delete_and_wait(Duration::from_secs(120)).await?;
    Ok(())
}
