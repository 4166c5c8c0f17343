//! Which backup to verify (again) now (pure): the newest Complete backup of a cloud with
//! `spec.backup.verify`, at each slot of `verifySchedule`, and once when it was never verified
//! (e.g. it completed while `verify` was off).
//!
//! The request is an annotation on the backup (`insync.dev/verify-requested`, the time asked
//! for): it wakes the backup controller, which verifies a backup again when the request is
//! newer than its last verification.

use k8s_openapi::jiff::Timestamp;

use super::retention::is_expired;
use super::schedule::Cron;
use crate::api::{BackupPhase, InSyncCloud, InSyncCloudBackup, VerifyPhase};

/// Annotation asking for a verification of a backup: the time it was asked for (RFC 3339).
pub(crate) const VERIFY_REQUESTED_ANNOTATION: &str = "insync.dev/verify-requested";

/// When a verification of `backup` was last asked for.
pub(crate) fn requested(backup: &InSyncCloudBackup) -> Option<Timestamp> {
    backup
        .metadata
        .annotations
        .as_ref()?
        .get(VERIFY_REQUESTED_ANNOTATION)?
        .parse()
        .ok()
}

/// Whether `backup` has a request newer than its last finished verification.
pub(crate) fn rerun_requested(backup: &InSyncCloudBackup) -> bool {
    let Some(asked) = requested(backup) else {
        return false;
    };
    let verification = backup.status.as_ref().and_then(|s| s.verification.as_ref());
    match verification {
        None => true,
        Some(v) if v.phase == Some(VerifyPhase::Running) => false,
        Some(v) => v.completed_at.as_ref().is_none_or(|done| done.0 < asked),
    }
}

/// The backup of `cloud` (among `backups`, the namespace's) to ask a verification of at
/// `now`, and the time to write in the request; `None` when nothing is owed.
pub(crate) fn verify_request(
    cloud: &InSyncCloud,
    backups: &[InSyncCloudBackup],
    now: Timestamp,
) -> Option<(String, Timestamp)> {
    let spec = cloud.spec.backup.as_ref().filter(|b| b.verify)?;
    let newest = backups
        .iter()
        .filter(|b| {
            b.spec.cloud == cloud.cloud_name()
                && b.phase() == BackupPhase::Complete
                && b.metadata.deletion_timestamp.is_none()
                && !is_expired(b)
        })
        .max_by_key(|b| {
            (
                b.metadata.creation_timestamp.as_ref().map(|t| t.0),
                b.backup_name().to_owned(),
            )
        })?;
    let verification = newest.status.as_ref().and_then(|s| s.verification.as_ref());
    if verification.and_then(|v| v.phase) == Some(VerifyPhase::Running) {
        return None;
    }
    let asked = requested(newest);
    let slot = spec
        .verify_schedule
        .as_deref()
        .and_then(|s| s.parse::<Cron>().ok())
        .and_then(|cron| cron.due(now));
    if let Some(slot) = slot {
        let last = verification
            .and_then(|v| v.completed_at.as_ref())
            .map(|t| t.0);
        if last.is_none_or(|last| last < slot) && asked.is_none_or(|asked| asked < slot) {
            return Some((newest.backup_name().to_owned(), slot));
        }
    }
    (verification.is_none() && asked.is_none()).then(|| (newest.backup_name().to_owned(), now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        BackupSpec, InSyncCloudBackupSpec, InSyncCloudBackupStatus, InSyncCloudSpec, Verification,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("time")
    }

    fn cloud(verify: bool, schedule: Option<&str>) -> InSyncCloud {
        let mut cloud = InSyncCloud::new("fcloud", InSyncCloudSpec::with_version("5.9.1-r4178"));
        cloud.spec.backup = Some(BackupSpec {
            verify,
            verify_schedule: schedule.map(str::to_owned),
            ..BackupSpec::default()
        });
        cloud
    }

    fn backup(
        name: &str,
        created: &str,
        verified: Option<(VerifyPhase, &str)>,
    ) -> InSyncCloudBackup {
        let mut backup = InSyncCloudBackup::new(
            name,
            InSyncCloudBackupSpec {
                cloud: "fcloud".to_owned(),
            },
        );
        backup.metadata.creation_timestamp = Some(Time(at(created)));
        backup.status = Some(InSyncCloudBackupStatus {
            phase: Some(BackupPhase::Complete),
            verification: verified.map(|(phase, done)| Verification {
                phase: Some(phase),
                completed_at: Some(Time(at(done))),
                message: None,
            }),
            ..InSyncCloudBackupStatus::default()
        });
        backup
    }

    fn asked(mut backup: InSyncCloudBackup, when: &str) -> InSyncCloudBackup {
        backup.metadata.annotations = Some(
            [(VERIFY_REQUESTED_ANNOTATION.to_owned(), when.to_owned())]
                .into_iter()
                .collect(),
        );
        backup
    }

    #[test]
    fn turning_verify_on_asks_for_the_newest_never_verified_backup_once() {
        let backups = [
            backup("old", "2026-11-27T03:00:00Z", None),
            backup("new", "2026-11-28T03:00:00Z", None),
        ];
        let now = at("2026-11-28T10:00:00Z");
        assert_eq!(verify_request(&cloud(false, None), &backups, now), None);
        assert_eq!(
            verify_request(&cloud(true, None), &backups, now),
            Some(("new".to_owned(), now))
        );
        let requested = [asked(backups[1].clone(), "2026-11-28T10:00:00Z")];
        assert_eq!(verify_request(&cloud(true, None), &requested, now), None);
        let verified = [backup(
            "new",
            "2026-11-28T03:00:00Z",
            Some((VerifyPhase::Passed, "2026-11-28T03:05:00Z")),
        )];
        assert_eq!(verify_request(&cloud(true, None), &verified, now), None);
    }

    #[test]
    fn the_verify_schedule_asks_once_a_slot_for_the_newest_complete_backup() {
        let weekly = cloud(true, Some("0 5 * * 0"));
        let verified = backup(
            "nightly",
            "2026-11-22T03:00:00Z",
            Some((VerifyPhase::Passed, "2026-11-22T03:05:00Z")),
        );
        let slot = at("2026-11-29T05:00:00Z");
        let in_slot = at("2026-11-29T05:00:30Z");
        assert_eq!(
            verify_request(&weekly, std::slice::from_ref(&verified), in_slot),
            Some(("nightly".to_owned(), slot))
        );
        // Asked already for this slot, or verified since: nothing more.
        let asked_now = asked(verified.clone(), "2026-11-29T05:00:00Z");
        assert_eq!(verify_request(&weekly, &[asked_now], in_slot), None);
        let fresh = backup(
            "nightly",
            "2026-11-22T03:00:00Z",
            Some((VerifyPhase::Failed, "2026-11-29T05:00:10Z")),
        );
        assert_eq!(verify_request(&weekly, &[fresh], in_slot), None);
        // Outside a slot nothing is asked of a verified backup.
        assert_eq!(
            verify_request(&weekly, &[verified], at("2026-11-29T07:00:00Z")),
            None
        );
    }

    #[test]
    fn a_request_newer_than_the_last_verification_reruns_it() {
        let passed = backup(
            "b",
            "2026-11-22T03:00:00Z",
            Some((VerifyPhase::Passed, "2026-11-22T03:05:00Z")),
        );
        assert!(!rerun_requested(&passed));
        assert!(rerun_requested(&asked(
            passed.clone(),
            "2026-11-29T05:00:00Z"
        )));
        assert!(!rerun_requested(&asked(
            passed.clone(),
            "2026-11-22T03:00:00Z"
        )));
        let mut running = asked(passed, "2026-11-29T05:00:00Z");
        if let Some(v) = running
            .status
            .as_mut()
            .and_then(|s| s.verification.as_mut())
        {
            v.phase = Some(VerifyPhase::Running);
        }
        assert!(!rerun_requested(&running));
    }
}
