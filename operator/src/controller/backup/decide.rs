//! What to do for one backup, from what was observed (pure, table-tested).

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::job::JobState;
use crate::api::{BackupPhase, InSyncCloud, InSyncCloudBackup, InSyncCloudBackupStatus};
use crate::backup::manifest::Report;
use crate::render::backup::{location, render_job};

/// How often a backup waiting for its cloud looks again.
pub(crate) const WAIT_FOR_CLOUD: Duration = Duration::from_secs(30);

/// Everything a backup's reconcile read.
pub(crate) struct Observed<'a> {
    pub backup: &'a InSyncCloudBackup,
    /// The cloud `spec.cloud` names, if it exists.
    pub cloud: Option<&'a InSyncCloud>,
    /// The backup's Job, read with its pod.
    pub job: Option<JobState>,
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
}

/// Decides the next step of a backup.
pub(crate) fn decide(seen: &Observed<'_>) -> Decision {
    let backup = seen.backup;
    let current = backup.status.clone().unwrap_or_default();
    let mut decision = Decision {
        create: None,
        status: None,
        requeue: None,
    };
    if backup.phase().is_final() {
        return decision;
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
        (None, _) if current.phase == Some(BackupPhase::Running) => {
            status = failed(
                &current,
                "the backup Job was deleted before it finished".to_owned(),
                seen.now,
            );
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
        size_bytes: Some(report.size_bytes),
        parts: manifest.parts,
        manifest: Some(report.manifest_key),
        reason: report
            .parts_omitted
            .then(|| "too many parts to list here: see manifest.json".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BackupPart, InSyncCloudBackupSpec, InSyncCloudSpec};
    use crate::backup::manifest::{FORMAT, Manifest};

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
            },
            parts_omitted: false,
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
            Some("s3://insync/insync-backups/fcloud/nightly/")
        );
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
                requeue: None
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
        assert_eq!(
            status.started_at.map(|t| t.0.to_string()).as_deref(),
            Some("2026-11-28T19:00:00Z")
        );
        assert_eq!(status.reason, None);
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
}
