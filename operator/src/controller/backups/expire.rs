//! An expired backup (marked by retention, or by hand, with `insync.dev/expired`): its files
//! are deleted by a Job, then the object (pure, table-tested).
//!
//! The object is the only record of where the files are, so it goes last: a failed deletion is
//! reported on the backup (`status.deletion`, and a Warning event) and tried again with a
//! growing pause, and the object stays until a Job has emptied the prefix. The files are
//! deleted only where the backup says it wrote them *and* where its cloud's destination puts
//! them today (the keys the Job gets are the destination's): when the two differ, or the cloud
//! is gone, the deletion is refused and the files and the object stay.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::api::{DeletionPhase, FileDeletion, InSyncCloud, InSyncCloudBackup};
use crate::controller::cache::job_state::JobState;
use crate::render::backup::{accepted_locations, render_delete_job};
use crate::render::job::Location;

/// The first pause after a failed attempt; it doubles with each failure, up to [`MAX_RETRY`].
pub(crate) const FIRST_RETRY: Duration = Duration::from_secs(30);
/// The longest pause between attempts.
pub(crate) const MAX_RETRY: Duration = Duration::from_secs(30 * 60);
/// How often a refused or waiting deletion looks again (the cloud may come back, or be fixed).
pub(crate) const LOOK_AGAIN: Duration = Duration::from_secs(5 * 60);

/// What an expired backup needs now.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Expiry {
    /// The deletion Job to create.
    pub create: Option<Job>,
    /// Delete the (failed) deletion Job, so the next attempt can create it again.
    pub delete_job: bool,
    /// The files are gone (or there never were any): delete the object.
    pub delete_backup: bool,
    /// `status.deletion` to record, when it changed.
    pub status: Option<FileDeletion>,
    /// A Warning event to publish (a failure or a refusal).
    pub warning: Option<String>,
    /// Look again after this long.
    pub requeue: Option<Duration>,
}

/// The pause after `attempts` failed attempts.
pub(crate) fn retry_after(attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY)
}

/// Decides the next step of an expired `backup`, from its cloud and its deletion Job.
pub(crate) fn decide_expiry(
    backup: &InSyncCloudBackup,
    cloud: Option<&InSyncCloud>,
    restored_into: Option<&str>,
    job: Option<&JobState>,
    runner_image: Option<&str>,
    now: Timestamp,
) -> Expiry {
    let status = backup.status.clone().unwrap_or_default();
    let current = status.deletion.clone().unwrap_or_default();
    let mut expiry = Expiry::default();
    if !backup.phase().is_final() {
        // A running backup still writes its files; they are deleted once it has finished.
        expiry.requeue = Some(FIRST_RETRY);
        return expiry;
    }
    let Some(recorded) = status.location.as_deref() else {
        // It never got as far as its store: nothing to delete there.
        expiry.delete_backup = true;
        return expiry;
    };
    let with = |phase, message: String, attempts, last_attempt| FileDeletion {
        phase: Some(phase),
        last_attempt,
        attempts,
        message: Some(message),
    };
    let refuse = |expiry: &mut Expiry, message: String| {
        let refused = with(
            DeletionPhase::Refused,
            message.clone(),
            current.attempts,
            current.last_attempt.clone(),
        );
        if refused != current {
            expiry.warning = Some(message);
            expiry.status = Some(refused);
        }
        expiry.requeue = Some(LOOK_AGAIN);
    };
    if let Some(reader) = restored_into {
        refuse(
            &mut expiry,
            format!(
                "InSyncCloud {reader} is being restored from this backup: its files are kept until that restore is Complete"
            ),
        );
        return expiry;
    }
    let Some(cloud) = cloud else {
        refuse(
            &mut expiry,
            format!(
                "InSyncCloud {} does not exist: its destination (and keys) are unknown, so the files at {recorded} are kept; delete them by hand, then this object",
                backup.spec.cloud
            ),
        );
        return expiry;
    };
    let accepted = accepted_locations(cloud, backup);
    match (&accepted, Location::parse(recorded)) {
        (Ok(accepted), Some(recorded)) if accepted.contains(&recorded) => {}
        (accepted, _) => {
            let today = match accepted {
                Ok([today, _]) => today.to_string(),
                Err(e) => e.to_string(),
            };
            refuse(
                &mut expiry,
                format!(
                    "the backup was written to {recorded} but its cloud's destination now gives {today}: not deleting files the operator cannot vouch for; delete them by hand, then this object"
                ),
            );
            return expiry;
        }
    }

    match job {
        Some(JobState::Running) => {}
        Some(JobState::Succeeded { .. }) => expiry.delete_backup = true,
        Some(JobState::Failed { reason }) => {
            let failed = with(
                DeletionPhase::Failed,
                reason.clone(),
                current.attempts,
                current.last_attempt.clone(),
            );
            if failed != current {
                expiry.warning = Some(format!(
                    "deleting the files at {recorded} failed (attempt {}): {reason}",
                    current.attempts
                ));
                expiry.status = Some(failed);
            }
            expiry.delete_job = true;
            expiry.requeue = Some(retry_after(current.attempts));
        }
        None => {
            if current.phase == Some(DeletionPhase::Failed) {
                let since = current
                    .last_attempt
                    .as_ref()
                    .map_or(SignedDuration::MAX, |t| now.duration_since(t.0));
                let pause = SignedDuration::try_from(retry_after(current.attempts))
                    .unwrap_or(SignedDuration::MAX);
                if since < pause {
                    expiry.requeue = (pause - since).try_into().ok();
                    return expiry;
                }
            }
            let attempts = current.attempts + 1;
            let attempt = |phase, message: String| with(phase, message, attempts, Some(Time(now)));
            match runner_image.map(|image| render_delete_job(cloud, backup, image)) {
                Some(Ok(job)) => {
                    expiry.create = Some(job);
                    expiry.status = Some(attempt(
                        DeletionPhase::Running,
                        format!("deleting the files at {recorded}"),
                    ));
                }
                Some(Err(e)) => refuse(&mut expiry, e.to_string()),
                None => {
                    expiry.status = Some(attempt(
                        DeletionPhase::Failed,
                        "the operator does not know its own image: set INSYNC_OPERATOR_IMAGE"
                            .to_owned(),
                    ));
                    expiry.requeue = Some(retry_after(attempts));
                }
            }
        }
    }
    expiry
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        BackupDestination, BackupPhase, BackupS3, BackupSpec, InSyncCloudBackupSpec,
        InSyncCloudBackupStatus, InSyncCloudSpec,
    };

    const IMAGE: &str = "ghcr.io/insync-operator/insync-operator:dev";
    const AT: &str = "s3://insync/insync-backups/fcloud/fcloud-202611280300/";

    fn now() -> Timestamp {
        "2026-11-28T19:00:00Z".parse().expect("time")
    }

    fn cloud() -> InSyncCloud {
        let mut cloud = InSyncCloud::new("fcloud", InSyncCloudSpec::with_version("5.9.1-r4178"));
        cloud.metadata.namespace = Some("fcloud".to_owned());
        cloud
    }

    fn expired(phase: BackupPhase, location: Option<&str>) -> InSyncCloudBackup {
        let mut backup = InSyncCloudBackup::new(
            "fcloud-202611280300",
            InSyncCloudBackupSpec {
                cloud: "fcloud".to_owned(),
            },
        );
        backup.metadata.namespace = Some("fcloud".to_owned());
        backup.metadata.uid = Some("uid".to_owned());
        backup.status = Some(InSyncCloudBackupStatus {
            phase: Some(phase),
            location: location.map(str::to_owned),
            ..InSyncCloudBackupStatus::default()
        });
        backup
    }

    fn with_deletion(mut backup: InSyncCloudBackup, deletion: FileDeletion) -> InSyncCloudBackup {
        if let Some(status) = backup.status.as_mut() {
            status.deletion = Some(deletion);
        }
        backup
    }

    fn decide(backup: &InSyncCloudBackup, job: Option<JobState>) -> Expiry {
        decide_expiry(
            backup,
            Some(&cloud()),
            None,
            job.as_ref(),
            Some(IMAGE),
            now(),
        )
    }

    #[test]
    fn the_files_go_first_then_the_object() {
        let backup = expired(BackupPhase::Complete, Some(AT));
        let first = decide(&backup, None);
        let job = first.create.as_ref().expect("a deletion Job");
        assert_eq!(
            job.metadata.name.as_deref(),
            Some("fcloud-202611280300-delete")
        );
        assert!(!first.delete_backup, "not before the files are gone");
        let status = first.status.clone().expect("status");
        assert_eq!(status.phase, Some(DeletionPhase::Running));
        assert_eq!(status.attempts, 1);

        let running = with_deletion(backup.clone(), status);
        assert_eq!(decide(&running, Some(JobState::Running)), Expiry::default());
        let done = decide(
            &running,
            Some(JobState::Succeeded {
                message: Some("{\"objects\":4}".to_owned()),
            }),
        );
        assert!(done.delete_backup && done.create.is_none());
    }

    #[test]
    fn a_failed_deletion_is_reported_kept_and_retried_later() {
        let running = with_deletion(
            expired(BackupPhase::Complete, Some(AT)),
            FileDeletion {
                phase: Some(DeletionPhase::Running),
                last_attempt: Some(Time(now() - SignedDuration::from_secs(10))),
                attempts: 2,
                message: None,
            },
        );
        let failed = decide(
            &running,
            Some(JobState::Failed {
                reason: "backup-delete: deletion failed: LIST s3://insync/…: AccessDenied"
                    .to_owned(),
            }),
        );
        assert!(!failed.delete_backup, "the object outlives a failure");
        assert!(
            failed.delete_job,
            "the failed Job goes, so a new one can run"
        );
        assert_eq!(failed.requeue, Some(Duration::from_secs(60)));
        let status = failed.status.clone().expect("status");
        assert_eq!(status.phase, Some(DeletionPhase::Failed));
        assert!(failed.warning.unwrap_or_default().contains("AccessDenied"));

        // Within the pause nothing runs; after it, a third attempt.
        let waiting = with_deletion(running.clone(), status.clone());
        let early = decide(&waiting, None);
        assert!(early.create.is_none() && early.status.is_none());
        assert_eq!(early.requeue, Some(Duration::from_secs(50)));
        let later = decide_expiry(
            &waiting,
            Some(&cloud()),
            None,
            None,
            Some(IMAGE),
            now() + SignedDuration::from_secs(60),
        );
        assert!(later.create.is_some());
        assert_eq!(later.status.map(|s| s.attempts), Some(3));
    }

    /// A backup marked expired by hand while a cloud is restored from it keeps its files.
    #[test]
    fn the_backup_a_restore_reads_is_kept_until_the_restore_completes() {
        let backup = expired(BackupPhase::Complete, Some(AT));
        let kept = decide_expiry(
            &backup,
            Some(&cloud()),
            Some("fcloud-copy"),
            None,
            Some(IMAGE),
            now(),
        );
        assert!(kept.create.is_none() && !kept.delete_backup);
        assert_eq!(kept.requeue, Some(LOOK_AGAIN));
        let refused = kept.status.expect("status");
        assert_eq!(refused.phase, Some(DeletionPhase::Refused));
        assert!(
            refused
                .message
                .unwrap_or_default()
                .contains("fcloud-copy is being restored")
        );
    }

    #[test]
    fn files_elsewhere_than_the_destination_says_are_never_deleted() {
        let mut moved = cloud();
        moved.spec.backup = Some(BackupSpec {
            destination: Some(BackupDestination {
                s3: Some(BackupS3 {
                    bucket: "offsite".to_owned(),
                    prefix: None,
                    endpoint: None,
                    region: None,
                    secret_ref: None,
                }),
            }),
            ..BackupSpec::default()
        });
        let backup = expired(BackupPhase::Complete, Some(AT));
        let refused = decide_expiry(&backup, Some(&moved), None, None, Some(IMAGE), now());
        assert!(refused.create.is_none() && !refused.delete_backup);
        let status = refused.status.expect("status");
        assert_eq!(status.phase, Some(DeletionPhase::Refused));
        assert!(
            status
                .message
                .unwrap_or_default()
                .contains("now gives s3://offsite/fcloud/fcloud/fcloud-202611280300-uid/"),
        );

        let orphan = decide_expiry(&backup, None, None, None, Some(IMAGE), now());
        assert!(orphan.create.is_none() && !orphan.delete_backup);
        assert_eq!(
            orphan.status.and_then(|s| s.phase),
            Some(DeletionPhase::Refused)
        );
    }

    #[test]
    fn a_backup_that_never_reached_its_store_goes_at_once_and_a_running_one_waits() {
        let never = expired(BackupPhase::Failed, None);
        assert!(decide(&never, None).delete_backup);
        let running = expired(BackupPhase::Running, Some(AT));
        let wait = decide(&running, None);
        assert!(wait.create.is_none() && !wait.delete_backup);
        // A Failed backup that wrote some parts has them deleted like a Complete one.
        assert!(
            decide(&expired(BackupPhase::Failed, Some(AT)), None)
                .create
                .is_some()
        );
    }

    #[test]
    fn the_pause_doubles_up_to_half_an_hour() {
        let pauses: Vec<u64> = [1, 2, 3, 7, 40]
            .into_iter()
            .map(|n| retry_after(n).as_secs())
            .collect();
        assert_eq!(pauses, [30, 60, 120, 1800, 1800]);
    }
}
