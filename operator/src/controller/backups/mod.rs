//! The backup controller (`backups`, beside the Job runner `crate::runner`): one `InSyncCloudBackup` → one Job (rendered by
//! [`crate::render::backup`]) → the backup's status, from the Job and the runner's report.
//!
//! Each reconcile observes (the backup, its cloud, its Job and pod, all from the caches of
//! [`watch`]), decides ([`decide`], pure) and acts (create the Job, write status). It runs beside
//! the cloud controller in the same process and never touches a cloud.

mod decide;
mod expire;
mod health;
mod retention;
mod reverify;
mod round;
mod schedule;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::api::{BackupPhase, InSyncCloud, InSyncCloudBackup, VerifyPhase};
use crate::controller::cache::Synced;
use crate::controller::cache::job_state::JobState;
use crate::render::backup::{BACKUP_COMPONENT, DELETE_COMPONENT, delete_job_name, job_name};
use crate::render::verify::{VERIFY_COMPONENT, verify_job_name};
pub(crate) use health::health;
pub(crate) use round::Limits;
pub(crate) use watch::{Caches, Watches, backups_of};

/// Why a backup reconcile failed (the API server; retried with a backoff).
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A read or write of the Kubernetes API failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done.
        action: &'static str,
        /// kube's error.
        #[source]
        source: kube::Error,
    },
}

struct Context {
    client: Client,
    runner_image: Option<String>,
    caches: Caches,
    /// Every cache of the process (the cloud controller's and these) has listed.
    synced: Synced,
    /// Events on backups (a deletion of files that failed).
    recorder: Recorder,
}

/// Runs the backup controller until the stream ends (the process stops). `watches` are the
/// backups', Jobs' and pods' (their caches must be in `synced`); `clouds` is the cloud
/// controller's cache.
pub(crate) async fn run(
    client: Client,
    runner_image: Option<String>,
    limits: Limits,
    clouds: Store<DeserializeGuard<InSyncCloud>>,
    watches: Watches,
    synced: Synced,
) {
    if runner_image.is_none() {
        warn!("INSYNC_OPERATOR_IMAGE is unset: backups will fail until it is set");
    }
    let Watches {
        backups,
        backup_events,
        jobs,
        job_events,
    } = watches;
    let caches = Caches {
        clouds,
        backups: backups.clone(),
        jobs,
    };
    tokio::spawn(schedule_loop(
        client.clone(),
        limits,
        caches.clouds.clone(),
        caches.backups.clone(),
    ));
    let reporter = Reporter {
        controller: "insync-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        runner_image,
        caches,
        synced,
    });
    Controller::for_shared_stream(backup_events, backups)
        .owns_stream(job_events.jobs)
        .watches_stream(job_events.pods, |pod| watch::backup_of_pod(&pod))
        .with_config(Config::default().concurrency(4))
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "backup reconcile error");
            }
        })
        .await;
}

/// Everything a reconcile reads, from the caches.
fn observe<'a>(
    backup: &'a InSyncCloudBackup,
    cloud: Option<&'a InSyncCloud>,
    caches: &Caches,
    runner_image: Option<&'a str>,
) -> decide::Observed<'a> {
    let namespace = backup.backup_namespace();
    let job = (!backup.phase().is_final())
        .then(|| caches.job(namespace, &job_name(backup), BACKUP_COMPONENT))
        .flatten();
    let verifying = backup.phase() == BackupPhase::Complete
        && cloud.is_some_and(|c| c.spec.backup.as_ref().is_some_and(|b| b.verify));
    let verify_job = verifying
        .then(|| caches.job(namespace, &verify_job_name(backup), VERIFY_COMPONENT))
        .flatten();
    decide::Observed {
        backup,
        cloud,
        job,
        job_gone: false,
        verify_job,
        verify_job_gone: false,
        scratch_secret: Alphanumeric.sample_string(&mut rand::rng(), 32),
        ahead: (backup.phase() == BackupPhase::Pending)
            .then(|| caches.older_unfinished(backup))
            .flatten(),
        runner_image,
        now: Timestamp::now(),
    }
}

/// Whether the API server has no Job `name`: asked only when the cache shows none for a Job
/// the status says runs, since the cache may not have the Job this controller just created.
async fn job_gone(jobs: &Api<Job>, name: &str) -> Result<bool, BackupError> {
    jobs.get_metadata_opt(name)
        .await
        .map(|job| job.is_none())
        .map_err(|source| BackupError::Kube {
            action: "read a Job the cache does not show",
            source,
        })
}

#[tracing::instrument(skip_all, fields(namespace = backup.namespace().unwrap_or_default(), backup = backup.name_any()))]
async fn reconcile(
    backup: Arc<InSyncCloudBackup>,
    ctx: Arc<Context>,
) -> Result<Action, BackupError> {
    if backup.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    // Until every cache has listed, a Job not read yet would pass for one deleted by hand (and
    // fail its running backup), right after a restart: wait.
    ctx.synced.wait().await;
    let namespace = backup.backup_namespace();
    let kube = |action| move |source| BackupError::Kube { action, source };

    let guard = ctx.caches.cloud(namespace, &backup.spec.cloud);
    let cloud = guard.as_deref().and_then(|g| g.0.as_ref().ok());
    if retention::is_expired(&backup) {
        let state = ctx
            .caches
            .job(namespace, &delete_job_name(&backup), DELETE_COMPONENT);
        return expire(&backup, cloud, state, &ctx).await;
    }
    let mut seen = observe(&backup, cloud, &ctx.caches, ctx.runner_image.as_deref());
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    if seen.job.is_none() && backup.phase() == BackupPhase::Running {
        seen.job_gone = job_gone(&jobs, &job_name(&backup)).await?;
    }
    let verification_runs = backup
        .status
        .as_ref()
        .and_then(|s| s.verification.as_ref())
        .is_some_and(|v| v.phase == Some(VerifyPhase::Running));
    if seen.verify_job.is_none() && verification_runs {
        seen.verify_job_gone = job_gone(&jobs, &verify_job_name(&backup)).await?;
    }

    // Decide, then act.
    let decision = decide::decide(&seen);
    if let Some(job) = &decision.create {
        match jobs.create(&PostParams::default(), job).await {
            Ok(_) => info!(job = ?job.metadata.name, "Job created"),
            // Created by an earlier reconcile whose status write was lost (or before the Job
            // cache saw it): follow it.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(source) => return Err(kube("create the Job")(source)),
        }
    }
    if decision.delete_verify_job {
        match jobs
            .delete(&verify_job_name(&backup), &DeleteParams::foreground())
            .await
        {
            Ok(_) => info!("the last verification's Job deleted: a new run was asked for"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => return Err(kube("delete the last verification Job")(source)),
        }
    }
    if let Some(status) = &decision.status {
        let backups: Api<InSyncCloudBackup> = Api::namespaced(ctx.client.clone(), namespace);
        backups
            .patch_status(
                &backup.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .map_err(kube("write the status"))?;
        info!(phase = ?status.phase, reason = ?status.reason, "backup status");
    }
    Ok(decision
        .requeue
        .map_or_else(Action::await_change, Action::requeue))
}

/// Deletes an expired backup's files, then the object ([`expire::decide_expiry`]).
async fn expire(
    backup: &InSyncCloudBackup,
    cloud: Option<&InSyncCloud>,
    job: Option<JobState>,
    ctx: &Context,
) -> Result<Action, BackupError> {
    let kube = |action| move |source| BackupError::Kube { action, source };
    let namespace = backup.backup_namespace();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    let backups: Api<InSyncCloudBackup> = Api::namespaced(ctx.client.clone(), namespace);
    let reader = ctx.caches.restoring_from(namespace, backup.backup_name());
    let expiry = expire::decide_expiry(
        backup,
        cloud,
        reader.as_deref(),
        job.as_ref(),
        ctx.runner_image.as_deref(),
        Timestamp::now(),
    );
    if let Some(message) = &expiry.warning {
        warn!(message = %message, "expired backup");
        let event = Event {
            type_: EventType::Warning,
            reason: "FilesNotDeleted".into(),
            note: Some(message.chars().take(1000).collect()),
            action: "DeleteFiles".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &backup.object_ref(&())).await {
            warn!(error = %e, "cannot publish event");
        }
    }
    if let Some(deletion) = &expiry.status {
        backups
            .patch_status(
                &backup.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": { "deletion": deletion } })),
            )
            .await
            .map_err(kube("write the status"))?;
    }
    if expiry.delete_job {
        match jobs
            .delete(&delete_job_name(backup), &DeleteParams::foreground())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => return Err(kube("delete the failed deletion Job")(source)),
        }
    }
    if let Some(job) = &expiry.create {
        match jobs.create(&PostParams::default(), job).await {
            Ok(_) => info!(job = ?job.metadata.name, "deletion Job created"),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(source) => return Err(kube("create the deletion Job")(source)),
        }
    }
    if expiry.delete_backup {
        match backups
            .delete(&backup.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {
                info!(location = ?backup.status.as_ref().and_then(|s| s.location.as_ref()), "expired backup deleted with its files")
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => return Err(kube("delete the expired backup")(source)),
        }
        return Ok(Action::await_change());
    }
    Ok(expiry
        .requeue
        .map_or_else(Action::await_change, Action::requeue))
}

/// How often schedules are looked at: well inside a slot's minute and its starting deadline.
const SCHEDULE_TICK: Duration = Duration::from_secs(20);

/// Takes the backups `spec.backup.schedule` owes, asks for the verifications
/// `verify`/`verifySchedule` owe, and marks expired the backups `retention` lets go.
/// Clouds and backups are read from the controllers' caches: a round costs no reads, only the
/// writes it decides on. Before a cache has listed it reads as empty, which takes and deletes
/// nothing.
async fn schedule_loop(
    client: Client,
    limits: Limits,
    clouds: Store<DeserializeGuard<InSyncCloud>>,
    backups: Store<InSyncCloudBackup>,
) {
    let mut tick = tokio::time::interval(SCHEDULE_TICK);
    loop {
        tick.tick().await;
        if let Err(e) = schedule_once(&client, limits, &clouds, &backups).await {
            warn!(error = %e, "backup schedule round failed");
        }
    }
}

async fn schedule_once(
    client: &Client,
    limits: Limits,
    clouds: &Store<DeserializeGuard<InSyncCloud>>,
    cached_backups: &Store<InSyncCloudBackup>,
) -> Result<(), BackupError> {
    let kube = |action| move |source| BackupError::Kube { action, source };
    let now = Timestamp::now();
    let every_cloud = clouds.state();
    // A cloud that does not parse is reported by the cloud controller.
    let parsed: Vec<&InSyncCloud> = every_cloud
        .iter()
        .filter_map(|g| g.0.as_ref().ok())
        .collect();
    for cloud in &parsed {
        if cloud.spec.backup.is_none() {
            continue;
        }
        let namespace = cloud.cloud_namespace();
        let neighbours: Vec<&InSyncCloud> = parsed
            .iter()
            .copied()
            .filter(|c| c.cloud_namespace() == namespace)
            .collect();
        let of_cloud = backups_of(cached_backups, namespace, cloud.cloud_name());
        let round = round::plan(cloud, &neighbours, &of_cloud, limits, now);
        if let Some(why) = &round.held {
            debug!(cloud = cloud.cloud_name(), why, "no scheduled backups now");
            continue;
        }
        if let Some(why) = &round.skipped {
            info!(
                cloud = cloud.cloud_name(),
                why, "a scheduled slot is skipped"
            );
        }
        let backups: Api<InSyncCloudBackup> = Api::namespaced(client.clone(), namespace);
        match round.take {
            None => {}
            Some(Err(e)) => warn!(cloud = cloud.cloud_name(), error = %e, "no scheduled backups"),
            Some(Ok(backup)) => match backups.create(&PostParams::default(), &backup).await {
                Ok(_) => info!(backup = backup.backup_name(), "scheduled backup created"),
                // This slot's backup exists: taken already.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(source) => return Err(kube("create a scheduled backup")(source)),
            },
        }
        if let Some((name, when)) = round.verify {
            let patch = json!({"metadata": {"annotations": {
                reverify::VERIFY_REQUESTED_ANNOTATION: when.to_string()
            }}});
            match backups
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => info!(backup = %name, at = %when, "verification asked for"),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(source) => return Err(kube("ask for a verification")(source)),
            }
        }
        for name in round.expire {
            // Marked, not deleted: the backup controller deletes the files first, then the
            // object (see `expire`).
            let patch = json!({"metadata": {"annotations": {
                retention::EXPIRED_ANNOTATION: format!("retention, {now}")
            }}});
            match backups
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => info!(backup = %name, "backup expired by retention"),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(source) => return Err(kube("mark an expired backup")(source)),
            }
        }
    }
    Ok(())
}

fn error_policy(_: Arc<InSyncCloudBackup>, error: &BackupError, _: Arc<Context>) -> Action {
    warn!(error = %error, "backup reconcile failed");
    Action::requeue(Duration::from_secs(15))
}
