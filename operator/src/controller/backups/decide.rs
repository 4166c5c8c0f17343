//! What to do for one backup, from what was observed (pure, table-tested).

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::{
    BackupPhase, InSyncCloud, InSyncCloudBackup, InSyncCloudBackupStatus, Verification, VerifyPhase,
};
use crate::contract::{Report, RestoreReport};
use crate::controller::cache::job_state::JobState;
use crate::render::backup::{location, render_job, store_record};
use crate::render::verify::render_verify_job;

/// How often a requested verification looks whether the last run's Job is gone.
pub(crate) const RERUN_WAIT: Duration = Duration::from_secs(5);
/// How often a backup waiting for its cloud looks again.
pub(crate) const WAIT_FOR_CLOUD: Duration = Duration::from_secs(30);
/// How soon a reconcile looks again for a Job the cache does not show yet.
pub(crate) const CACHE_LAG: Duration = Duration::from_secs(2);

/// Everything a backup's reconcile read.
pub(crate) struct Observed<'a> {
    pub backup: &'a InSyncCloudBackup,
    /// The cloud `spec.cloud` names, if it exists.
    pub cloud: Option<&'a InSyncCloud>,
    /// The backup's Job, read with its pod.
    pub job: Option<JobState>,
    /// The API server said the backup's Job does not exist (asked only when the cache has no
    /// Job for a Running backup: a cache can lag behind the Job this controller just created).
    pub job_gone: bool,
    /// The backup's verification Job, read with its pod.
    pub verify_job: Option<JobState>,
    /// Likewise for the verification Job of a Running verification.
    pub verify_job_gone: bool,
    /// An older unfinished backup of the same cloud, if any: it goes first (one backup of a
    /// cloud runs at a time).
    pub ahead: Option<String>,
    /// The password and keys of a new verification's throwaway stores: random, drawn by the
    /// reconcile (decide stays pure), used only if a verification Job is created now.
    pub scratch_secret: String,
    /// The image backup Jobs run (the operator's own); `None` when the operator was not told.
    pub runner_image: Option<&'a str>,
    /// The time of this reconcile.
    pub now: Timestamp,
}

/// What to write.
#[derive(Debug, PartialEq)]
pub(crate) struct Decision {
    /// A Job to create.
    pub create: Option<Job>,
    /// The status to record, when it differs from the current one.
    pub status: Option<InSyncCloudBackupStatus>,
    /// Look again after this long (besides watch events).
    pub requeue: Option<Duration>,
    /// Delete the finished verification Job, so a requested new one can take its name.
    pub delete_verify_job: bool,
}

/// Decides the next step of a backup.
pub(crate) fn decide(seen: &Observed<'_>) -> Decision {
    let backup = seen.backup;
    let current = backup.status.clone().unwrap_or_default();
    let mut decision = Decision {
        create: None,
        status: None,
        requeue: None,
        delete_verify_job: false,
    };
    if backup.phase().is_final() {
        return verify(seen);
    }
    let mut status = current.clone();
    match (&seen.job, seen.cloud) {
        (Some(JobState::Running), _) => {
            status.phase = Some(BackupPhase::Running);
            status.reason = None;
        }
        (Some(JobState::Succeeded { message }), _) => {
            status = completed(&current, message.as_deref(), seen.now);
        }
        (Some(JobState::Failed { reason }), _) => {
            status = failed(&current, reason.clone(), seen.now);
        }
        // The Job of a running backup is gone (deleted by hand): the backup cannot finish.
        (None, _) if current.phase == Some(BackupPhase::Running) && seen.job_gone => {
            status = failed(
                &current,
                "the backup Job was deleted before it finished".to_owned(),
                seen.now,
            );
        }
        // Created, but not in the cache yet: its watch event is on its way.
        (None, _) if current.phase == Some(BackupPhase::Running) => {
            decision.requeue = Some(CACHE_LAG);
        }
        (None, None) => {
            status.phase = Some(BackupPhase::Pending);
            status.reason = Some(format!(
                "waiting for InSyncCloud {}/{}",
                backup.backup_namespace(),
                backup.spec.cloud
            ));
            decision.requeue = Some(WAIT_FOR_CLOUD);
        }
        // A dump now would copy databases that hold nothing yet, or part of a backup.
        (None, Some(cloud)) if cloud.is_restoring() => {
            status.phase = Some(BackupPhase::Pending);
            status.reason = Some(format!(
                "waiting: InSyncCloud {}/{} is being restored from a backup (status.restore) and holds no data of its own yet",
                backup.backup_namespace(),
                backup.spec.cloud
            ));
            decision.requeue = Some(WAIT_FOR_CLOUD);
        }
        // One backup of a cloud at a time: two dumps compete for the same database.
        (None, Some(_)) if seen.ahead.is_some() => {
            status.phase = Some(BackupPhase::Pending);
            status.reason = Some(format!(
                "waiting for backup {} of this cloud to finish: one backup of a cloud runs at a time",
                seen.ahead.as_deref().unwrap_or_default()
            ));
            decision.requeue = Some(WAIT_FOR_CLOUD);
        }
        (None, Some(cloud)) => match seen.runner_image {
            None => {
                status = failed(
                    &current,
                    "the operator does not know its own image: set INSYNC_OPERATOR_IMAGE (the chart does)".to_owned(),
                    seen.now,
                );
            }
            Some(image) => match render_job(cloud, backup, image) {
                Ok(job) => {
                    status.phase = Some(BackupPhase::Running);
                    status.reason = None;
                    status.location = location(cloud, backup).ok().map(|l| l.to_string());
                    status.store = Some(store_record(cloud));
                    decision.create = Some(job);
                }
                Err(e) => status = failed(&current, e.to_string(), seen.now),
            },
        },
    }
    if status != current {
        decision.status = Some(status);
    }
    decision
}

/// The verification of a Complete backup whose cloud asks for it (`spec.backup.verify`): one
/// Job; its outcome is final until a newer request (`insync.dev/verify-requested`, from the
/// verification schedule) asks for another run, which replaces the finished Job.
fn verify(seen: &Observed<'_>) -> Decision {
    let mut decision = Decision {
        create: None,
        status: None,
        requeue: None,
        delete_verify_job: false,
    };
    let backup = seen.backup;
    let wanted = seen
        .cloud
        .filter(|cloud| cloud.spec.backup.as_ref().is_some_and(|b| b.verify));
    let (Some(cloud), BackupPhase::Complete) = (wanted, backup.phase()) else {
        return decision;
    };
    let current = backup.status.clone().unwrap_or_default();
    let recorded = current.verification.clone();
    let rerun = super::reverify::rerun_requested(backup);
    let mut phase = recorded.as_ref().and_then(|v| v.phase);
    if rerun {
        if seen.verify_job.is_some() {
            // The last run's Job holds the name: it goes first (with its pod, whose report
            // must not pass for the new run's).
            decision.delete_verify_job = true;
            decision.requeue = Some(RERUN_WAIT);
            return decision;
        }
        phase = None;
    } else if phase.is_some_and(|p| p != VerifyPhase::Running) {
        return decision;
    }
    let done = |phase, message: String| Verification {
        phase: Some(phase),
        completed_at: Some(Time(seen.now)),
        message: Some(message),
    };
    let verification = match (&seen.verify_job, phase) {
        (None, None) => match seen
            .runner_image
            .map(|image| render_verify_job(cloud, backup, image, &seen.scratch_secret))
        {
            Some(Ok(job)) => {
                decision.create = Some(job);
                Verification {
                    phase: Some(VerifyPhase::Running),
                    completed_at: None,
                    message: Some("restoring into throwaway datastores".to_owned()),
                }
            }
            Some(Err(e)) => done(VerifyPhase::Failed, e.to_string()),
            None => done(
                VerifyPhase::Failed,
                "the operator does not know its own image: set INSYNC_OPERATOR_IMAGE".to_owned(),
            ),
        },
        (None, Some(_)) if seen.verify_job_gone => done(
            VerifyPhase::Failed,
            "the verification Job was deleted before it finished".to_owned(),
        ),
        // Created, but not in the cache yet.
        (None, Some(_)) => {
            decision.requeue = Some(CACHE_LAG);
            recorded.clone().unwrap_or_default()
        }
        (Some(JobState::Running), _) => recorded.clone().unwrap_or_default(),
        (Some(JobState::Succeeded { message }), _) => {
            done(VerifyPhase::Passed, verified_summary(message.as_deref()))
        }
        (Some(JobState::Failed { reason }), _) => done(VerifyPhase::Failed, reason.clone()),
    };
    if Some(&verification) != recorded.as_ref() {
        decision.status = Some(InSyncCloudBackupStatus {
            verification: Some(verification),
            ..current
        });
    }
    decision
}

/// What a passed verification checked, from the runner's report.
fn verified_summary(message: Option<&str>) -> String {
    let report = message.and_then(|m| serde_json::from_str::<RestoreReport>(m).ok());
    match report {
        Some(report) => format!(
            "restored into throwaway datastores: every part's size and sha256 matched the manifest, and every count after loading too: {}",
            report.restored()
        ),
        None => "restored into throwaway datastores and matched the manifest".to_owned(),
    }
}

fn failed(
    current: &InSyncCloudBackupStatus,
    reason: String,
    now: Timestamp,
) -> InSyncCloudBackupStatus {
    InSyncCloudBackupStatus {
        phase: Some(BackupPhase::Failed),
        reason: Some(reason),
        completed_at: Some(Time(now)),
        ..current.clone()
    }
}

/// Complete, with what the runner's report says; a success without a readable report cannot
/// be shown as a backup.
fn completed(
    current: &InSyncCloudBackupStatus,
    message: Option<&str>,
    now: Timestamp,
) -> InSyncCloudBackupStatus {
    let Some(message) = message else {
        return failed(
            current,
            "the backup Job succeeded but its pod (and the runner's report) is gone".to_owned(),
            now,
        );
    };
    let report: Report = match serde_json::from_str(message) {
        Ok(report) => report,
        Err(e) => {
            return failed(
                current,
                format!("the runner's report is unreadable ({e}): {message}"),
                now,
            );
        }
    };
    let time = |text: &str| text.parse::<Timestamp>().ok().map(Time);
    let manifest = report.manifest;
    InSyncCloudBackupStatus {
        phase: Some(BackupPhase::Complete),
        started_at: time(&manifest.started_at),
        completed_at: time(&manifest.completed_at),
        location: Some(manifest.location),
        store: current.store.clone(),
        size_bytes: Some(report.size_bytes),
        parts: manifest.parts,
        manifest: Some(report.manifest_key),
        manifest_sha256: Some(report.manifest_sha256).filter(|sha| !sha.is_empty()),
        reason: report
            .parts_omitted
            .then(|| "too many parts to list here: see manifest.json".to_owned()),
        verification: None,
        deletion: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BackupPart, InSyncCloudBackupSpec, InSyncCloudSpec};
    use crate::contract::{FORMAT, Manifest};

    fn cloud() -> InSyncCloud {
        let mut cloud = InSyncCloud::new("fcloud", InSyncCloudSpec::with_version("5.9.1-r4178"));
        cloud.metadata.namespace = Some("fcloud".to_owned());
        cloud
    }

    fn backup(phase: Option<BackupPhase>) -> InSyncCloudBackup {
        let mut backup = InSyncCloudBackup::new(
            "nightly",
            InSyncCloudBackupSpec {
                cloud: "fcloud".to_owned(),
            },
        );
        backup.metadata.namespace = Some("fcloud".to_owned());
        backup.metadata.uid = Some("uid-1".to_owned());
        backup.status = phase.map(|phase| InSyncCloudBackupStatus {
            phase: Some(phase),
            ..InSyncCloudBackupStatus::default()
        });
        backup
    }

    fn seen<'a>(
        backup: &'a InSyncCloudBackup,
        cloud: Option<&'a InSyncCloud>,
        job: Option<JobState>,
    ) -> Observed<'a> {
        Observed {
            backup,
            cloud,
            job,
            job_gone: true,
            verify_job: None,
            verify_job_gone: true,
            ahead: None,
            scratch_secret: "s3cr3t".to_owned(),
            runner_image: Some("ghcr.io/insync-operator/insync-operator:dev"),
            now: "2026-11-28T19:00:10Z".parse().expect("time"),
        }
    }

    fn report() -> String {
        serde_json::to_string(&Report {
            manifest_key: "insync-backups/fcloud/nightly/manifest.json".to_owned(),
            size_bytes: 1234,
            manifest: Manifest {
                format: FORMAT,
                insync_version: "5.9.1-r4178".to_owned(),
                started_at: "2026-11-28T19:00:00Z".to_owned(),
                completed_at: "2026-11-28T19:00:07Z".to_owned(),
                location: "s3://insync/insync-backups/fcloud/nightly/".to_owned(),
                parts: vec![BackupPart {
                    name: "mysql.sql".to_owned(),
                    size_bytes: 1000,
                    sha256: "ab".to_owned(),
                    rows: None,
                }],
                mysql_rows: Default::default(),
                writer: None,
                metadata_export: None,
            },
            parts_omitted: false,
            manifest_sha256: "ab".repeat(32),
        })
        .expect("report")
    }

    #[test]
    fn a_new_backup_creates_its_job_and_runs() {
        let (cloud, backup) = (cloud(), backup(None));
        let decision = decide(&seen(&backup, Some(&cloud), None));
        let job = decision.create.expect("a Job");
        assert_eq!(job.metadata.name.as_deref(), Some("nightly-backup"));
        let status = decision.status.expect("status");
        assert_eq!(status.phase, Some(BackupPhase::Running));
        assert_eq!(
            status.location.as_deref(),
            Some("s3://insync/insync-backups/fcloud/fcloud/nightly-uid-1/")
        );
        let store = status.store.expect("the store is recorded");
        assert_eq!(store.kind, Some(crate::api::StoreKind::CloudMinio));
    }

    #[test]
    fn a_backup_waits_for_its_cloud() {
        let backup = backup(None);
        let decision = decide(&seen(&backup, None, None));
        assert_eq!(decision.create, None);
        assert_eq!(decision.requeue, Some(WAIT_FOR_CLOUD));
        let status = decision.status.expect("status");
        assert_eq!(status.phase, Some(BackupPhase::Pending));
        assert_eq!(
            status.reason.as_deref(),
            Some("waiting for InSyncCloud fcloud/fcloud")
        );
    }

    #[test]
    fn a_running_job_writes_nothing_new() {
        let (cloud, backup) = (cloud(), backup(Some(BackupPhase::Running)));
        let decision = decide(&seen(&backup, Some(&cloud), Some(JobState::Running)));
        assert_eq!(
            decision,
            Decision {
                create: None,
                status: None,
                requeue: None,
                delete_verify_job: false,
            }
        );
    }

    #[test]
    fn a_succeeded_job_completes_the_backup_with_the_report() {
        let (cloud, backup) = (cloud(), backup(Some(BackupPhase::Running)));
        let decision = decide(&seen(
            &backup,
            Some(&cloud),
            Some(JobState::Succeeded {
                message: Some(report()),
            }),
        ));
        let status = decision.status.expect("status");
        assert_eq!(status.phase, Some(BackupPhase::Complete));
        assert_eq!(status.size_bytes, Some(1234));
        assert_eq!(status.parts.len(), 1);
        assert_eq!(
            status.manifest.as_deref(),
            Some("insync-backups/fcloud/nightly/manifest.json")
        );
        let recorded = "ab".repeat(32);
        assert_eq!(status.manifest_sha256.as_deref(), Some(recorded.as_str()));
        assert_eq!(
            status.started_at.map(|t| t.0.to_string()).as_deref(),
            Some("2026-11-28T19:00:00Z")
        );
        assert_eq!(status.reason, None);
    }

    #[test]
    fn a_report_from_a_runner_without_the_manifests_sha256_records_none() {
        let (cloud, backup) = (cloud(), backup(Some(BackupPhase::Running)));
        let mut report: serde_json::Value = serde_json::from_str(&report()).expect("json");
        report
            .as_object_mut()
            .expect("object")
            .remove("manifestSha256");
        let decision = decide(&seen(
            &backup,
            Some(&cloud),
            Some(JobState::Succeeded {
                message: Some(report.to_string()),
            }),
        ));
        let status = decision.status.expect("status");
        assert_eq!(status.phase, Some(BackupPhase::Complete));
        assert_eq!(status.manifest_sha256, None);
    }

    #[test]
    fn a_success_without_a_readable_report_is_a_failure() {
        let (cloud, backup) = (cloud(), backup(Some(BackupPhase::Running)));
        for message in [None, Some("not json".to_owned())] {
            let decision = decide(&seen(
                &backup,
                Some(&cloud),
                Some(JobState::Succeeded { message }),
            ));
            let status = decision.status.expect("status");
            assert_eq!(status.phase, Some(BackupPhase::Failed), "{status:?}");
        }
    }

    #[test]
    fn a_failed_job_fails_the_backup_with_its_reason() {
        let (cloud, backup) = (cloud(), backup(Some(BackupPhase::Running)));
        let decision = decide(&seen(
            &backup,
            Some(&cloud),
            Some(JobState::Failed {
                reason: "backup: InvalidAccessKeyId".to_owned(),
            }),
        ));
        let status = decision.status.expect("status");
        assert_eq!(status.phase, Some(BackupPhase::Failed));
        assert_eq!(status.reason.as_deref(), Some("backup: InvalidAccessKeyId"));
    }

    #[test]
    fn a_running_backup_whose_job_vanished_fails() {
        let (cloud, backup) = (cloud(), backup(Some(BackupPhase::Running)));
        let status = decide(&seen(&backup, Some(&cloud), None))
            .status
            .expect("status");
        assert_eq!(status.phase, Some(BackupPhase::Failed));
    }

    /// Issue 20, defect 4: the reconcile after the one that created the Job can run before
    /// the Job cache has it; it failed the backup as "deleted before it finished", for good.
    #[test]
    fn a_job_the_cache_has_not_seen_yet_is_waited_for_not_failed() {
        let (cloud, backup) = (cloud(), backup(Some(BackupPhase::Running)));
        let mut observed = seen(&backup, Some(&cloud), None);
        observed.job_gone = false;
        let decision = decide(&observed);
        assert_eq!(decision.status, None, "{decision:?}");
        assert_eq!(decision.create, None);
        assert_eq!(decision.requeue, Some(CACHE_LAG));

        let cloud = verifying_cloud();
        let mut backup = complete_at_its_location();
        if let Some(status) = backup.status.as_mut() {
            status.verification = Some(Verification {
                phase: Some(VerifyPhase::Running),
                ..Verification::default()
            });
        }
        let mut observed = seen(&backup, Some(&cloud), None);
        observed.verify_job_gone = false;
        let decision = decide(&observed);
        assert_eq!(decision.status, None, "{decision:?}");
        assert_eq!(decision.requeue, Some(CACHE_LAG));
    }

    /// Issue 20, defect 1: a backup of a cloud being restored would dump half-loaded databases.
    #[test]
    fn a_backup_of_a_restoring_cloud_waits_for_the_restore() {
        let mut cloud = cloud();
        cloud.spec.restore = Some(crate::api::RestoreSpec {
            backup: Some("fcloud-202612010000".to_owned()),
            s3: None,
        });
        let backup = backup(None);
        let decision = decide(&seen(&backup, Some(&cloud), None));
        assert_eq!(decision.create, None);
        let status = decision.status.expect("status");
        assert_eq!(status.phase, Some(BackupPhase::Pending));
        assert!(
            status
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("being restored")),
            "{status:?}"
        );
        assert_eq!(decision.requeue, Some(WAIT_FOR_CLOUD));
    }

    /// Issue 18, item 5: nothing stopped two dumps of one cloud running at once.
    #[test]
    fn a_backup_waits_while_an_older_one_of_its_cloud_runs() {
        let (cloud, backup) = (cloud(), backup(None));
        let mut observed = seen(&backup, Some(&cloud), None);
        observed.ahead = Some("nightly-1".to_owned());
        let decision = decide(&observed);
        assert_eq!(decision.create, None);
        let status = decision.status.expect("status");
        assert_eq!(status.phase, Some(BackupPhase::Pending));
        assert!(
            status
                .reason
                .unwrap_or_default()
                .contains("waiting for backup nightly-1")
        );
        assert_eq!(decision.requeue, Some(WAIT_FOR_CLOUD));
    }

    #[test]
    fn final_backups_are_left_alone_even_without_a_job() {
        let cloud = cloud();
        for phase in [BackupPhase::Complete, BackupPhase::Failed] {
            let backup = backup(Some(phase));
            let decision = decide(&seen(&backup, Some(&cloud), None));
            assert_eq!(decision.create, None);
            assert_eq!(decision.status, None);
        }
    }

    #[test]
    fn a_cloud_on_a_shared_filesystem_without_a_destination_fails_with_the_fix() {
        let mut cloud = cloud();
        cloud.spec.object_store.minio = None;
        cloud.spec.object_store.shared_filesystem = Some(crate::api::SharedFilesystem {
            claim_name: "objects".to_owned(),
        });
        let backup = backup(None);
        let decision = decide(&seen(&backup, Some(&cloud), None));
        assert_eq!(decision.create, None);
        let status = decision.status.expect("status");
        assert_eq!(status.phase, Some(BackupPhase::Failed));
        assert!(
            status
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("spec.backup.destination.s3")),
            "{status:?}"
        );
    }

    fn verifying_cloud() -> InSyncCloud {
        let mut cloud = cloud();
        cloud.spec.backup = Some(crate::api::BackupSpec {
            verify: true,
            ..crate::api::BackupSpec::default()
        });
        cloud
    }

    fn complete_at_its_location() -> InSyncCloudBackup {
        let mut backup = backup(Some(BackupPhase::Complete));
        if let Some(status) = backup.status.as_mut() {
            status.location = Some("s3://insync/insync-backups/fcloud/nightly/".to_owned());
        }
        backup
    }

    fn verification(decision: &Decision) -> Option<Verification> {
        decision.status.as_ref()?.verification.clone()
    }

    #[test]
    fn a_complete_backup_of_a_verifying_cloud_is_verified_once() {
        let cloud = verifying_cloud();
        let backup = complete_at_its_location();
        let decision = decide(&seen(&backup, Some(&cloud), None));
        let job = decision.create.as_ref().expect("a verify Job");
        assert_eq!(job.metadata.name.as_deref(), Some("nightly-verify"));
        assert_eq!(
            verification(&decision).and_then(|v| v.phase),
            Some(VerifyPhase::Running)
        );

        let mut running = backup.clone();
        running.status = decision.status.clone();
        let mut observed = seen(&running, Some(&cloud), None);
        observed.verify_job = Some(JobState::Succeeded { message: None });
        let passed = decide(&observed);
        assert!(passed.create.is_none());
        assert_eq!(
            verification(&passed).and_then(|v| v.phase),
            Some(VerifyPhase::Passed)
        );

        // Passed is final: the Job's deletion later changes nothing, nothing runs again.
        let mut done = running.clone();
        done.status = passed.status.clone();
        let later = decide(&seen(&done, Some(&cloud), None));
        assert!(later.create.is_none() && later.status.is_none());
    }

    #[test]
    fn a_failed_verification_keeps_the_runners_reason() {
        let cloud = verifying_cloud();
        let mut backup = complete_at_its_location();
        if let Some(status) = backup.status.as_mut() {
            status.verification = Some(Verification {
                phase: Some(VerifyPhase::Running),
                ..Verification::default()
            });
        }
        let mut observed = seen(&backup, Some(&cloud), None);
        observed.verify_job = Some(JobState::Failed {
            reason:
                "fetch: restore failed: the backup does not match its manifest: mysql.sql: missing"
                    .to_owned(),
        });
        let failed = verification(&decide(&observed)).expect("verification");
        assert_eq!(failed.phase, Some(VerifyPhase::Failed));
        assert!(
            failed
                .message
                .unwrap_or_default()
                .contains("mysql.sql: missing")
        );

        // The Job vanished while it ran: that is a failure too, not a pass.
        let vanished = verification(&decide(&seen(&backup, Some(&cloud), None)));
        assert_eq!(vanished.and_then(|v| v.phase), Some(VerifyPhase::Failed));
    }

    #[test]
    fn without_verify_or_for_a_failed_backup_nothing_is_verified() {
        let plain = cloud();
        let backup = complete_at_its_location();
        assert!(decide(&seen(&backup, Some(&plain), None)).create.is_none());
        let cloud = verifying_cloud();
        let failed = backup_with_phase_failed();
        assert!(decide(&seen(&failed, Some(&cloud), None)).create.is_none());
    }

    #[test]
    fn a_newer_request_replaces_the_finished_verification_with_a_new_run() {
        let cloud = verifying_cloud();
        let mut backup = complete_at_its_location();
        if let Some(status) = backup.status.as_mut() {
            status.verification = Some(Verification {
                phase: Some(VerifyPhase::Passed),
                completed_at: Some(Time("2026-11-22T03:05:00Z".parse().expect("time"))),
                message: None,
            });
        }
        // Without a request, a Passed verification is final.
        let mut observed = seen(&backup, Some(&cloud), None);
        observed.verify_job = Some(JobState::Succeeded { message: None });
        let quiet = decide(&observed);
        assert!(quiet.create.is_none() && quiet.status.is_none() && !quiet.delete_verify_job);

        backup.metadata.annotations = Some(
            [(
                super::super::reverify::VERIFY_REQUESTED_ANNOTATION.to_owned(),
                "2026-11-29T05:00:00Z".to_owned(),
            )]
            .into_iter()
            .collect(),
        );
        // The last run's Job goes first (its pod's report must not pass for the new run's)...
        let mut observed = seen(&backup, Some(&cloud), None);
        observed.verify_job = Some(JobState::Succeeded { message: None });
        let first = decide(&observed);
        assert!(first.delete_verify_job && first.create.is_none() && first.status.is_none());
        assert_eq!(first.requeue, Some(RERUN_WAIT));
        // ...then a new run starts.
        let second = decide(&seen(&backup, Some(&cloud), None));
        assert!(second.create.is_some());
        assert_eq!(
            verification(&second).and_then(|v| v.phase),
            Some(VerifyPhase::Running)
        );
    }

    fn backup_with_phase_failed() -> InSyncCloudBackup {
        backup(Some(BackupPhase::Failed))
    }
}
