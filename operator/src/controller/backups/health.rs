//! What a cloud's status says about its backups (pure): the newest backup and the newest
//! Complete one (`status.backup.lastBackup`, `lastSuccessful`), the next slot of the schedule
//! (`nextScheduledTime`), the newest verification (`lastVerified`, the `BackupHealthy`
//! condition) and whether the schedule can be read (`BackupScheduled`: the CRD accepts any five
//! fields, the parser is stricter).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::schedule::Cron;
use crate::api::{
    BackupPhase, BackupSummary, CloudBackupStatus, InSyncCloud, InSyncCloudBackup, LastVerified,
    StoreKind, VerifyPhase,
};
use crate::controller::status::Cond;

/// Condition type: the newest verified backup of the cloud restored and matched its manifest.
pub(crate) const BACKUP_HEALTHY: &str = "BackupHealthy";
/// Condition type: `spec.backup.schedule` is readable and backups are taken on it.
pub(crate) const BACKUP_SCHEDULED: &str = "BackupScheduled";

/// `status.backup` and the backup conditions of `cloud` at `now`, from the backups of its
/// namespace (the conditions only when `spec.backup` is set).
pub(crate) fn health(
    cloud: &InSyncCloud,
    backups: &[InSyncCloudBackup],
    now: Timestamp,
) -> (Option<CloudBackupStatus>, Vec<Cond>) {
    // Backups made by hand exist without `spec.backup`: the status names them all the same.
    let spec = cloud.spec.backup.as_ref();
    let mut conds = Vec::new();
    let mut next_scheduled_time = None;
    if let Some(schedule) = spec.and_then(|s| s.schedule.as_ref()) {
        conds.push(match schedule.parse::<Cron>() {
            Ok(cron) => {
                next_scheduled_time = cron.next_after(now).map(Time);
                Cond::new(
                    BACKUP_SCHEDULED,
                    true,
                    "Scheduled",
                    format!("backups are taken on \"{schedule}\" (UTC)"),
                )
            }
            Err(e) => Cond::new(
                BACKUP_SCHEDULED,
                false,
                "InvalidSchedule",
                format!("no scheduled backups: {e}"),
            ),
        });
    }
    let own: Vec<&InSyncCloudBackup> = backups
        .iter()
        .filter(|b| b.spec.cloud == cloud.cloud_name())
        .collect();
    let summary = |b: &InSyncCloudBackup| BackupSummary {
        backup: b.backup_name().to_owned(),
        phase: b.status.as_ref().and_then(|s| s.phase),
        completed_at: b.status.as_ref().and_then(|s| s.completed_at.clone()),
    };
    let last_backup = newest_by(own.iter().copied(), |b| {
        b.metadata.creation_timestamp.as_ref().map(|t| t.0)
    })
    .map(summary);
    let last_successful = newest_by(
        own.iter()
            .copied()
            .filter(|b| b.phase() == BackupPhase::Complete),
        |b| {
            b.status
                .as_ref()
                .and_then(|s| s.completed_at.as_ref())
                .map(|t| t.0)
        },
    )
    .map(summary);
    let newest = own
        .iter()
        .filter_map(|b| {
            let verification = b.status.as_ref()?.verification.as_ref()?;
            let result = verification.phase.filter(|p| *p != VerifyPhase::Running)?;
            Some(LastVerified {
                time: verification.completed_at.clone(),
                backup: b.backup_name().to_owned(),
                result,
                message: verification.message.clone(),
            })
        })
        .max_by(|a, b| {
            let at = |v: &LastVerified| v.time.as_ref().map(|t| t.0);
            at(a).cmp(&at(b)).then_with(|| a.backup.cmp(&b.backup))
        });
    let latest_finished = newest_by(own.iter().copied().filter(|b| b.phase().is_final()), |b| {
        b.metadata.creation_timestamp.as_ref().map(|t| t.0)
    });
    let newest_complete = newest_by(
        own.iter()
            .copied()
            .filter(|b| b.phase() == BackupPhase::Complete),
        |b| b.metadata.creation_timestamp.as_ref().map(|t| t.0),
    );
    let in_own_minio = newest_complete
        .and_then(|b| b.status.as_ref()?.store.as_ref()?.kind)
        .is_some_and(|kind| kind == StoreKind::CloudMinio);
    // BackupHealthy speaks for the cloud's backup settings: none without them. A failed
    // newest backup comes first (a verification of an older one says nothing about it), then
    // the newest verification, then where the backups are kept.
    if let Some(failed) = latest_finished
        .filter(|b| b.phase() == BackupPhase::Failed)
        .filter(|_| spec.is_some())
    {
        let reason = failed
            .status
            .as_ref()
            .and_then(|s| s.reason.clone())
            .unwrap_or_default();
        let fallback = match newest_complete {
            Some(b) => format!("the newest Complete backup is {}", b.backup_name()),
            None => "no backup of this cloud is Complete".to_owned(),
        };
        conds.push(Cond::new(
            BACKUP_HEALTHY,
            false,
            "BackupFailed",
            format!(
                "the newest backup {} failed: {reason}; {fallback}",
                failed.backup_name()
            ),
        ));
    } else if let Some(last) = newest.as_ref().filter(|_| spec.is_some()) {
        let message = format!(
            "backup {}: {}",
            last.backup,
            last.message.clone().unwrap_or_default()
        );
        conds.push(match last.result {
            VerifyPhase::Passed if in_own_minio => not_off_site(&message),
            VerifyPhase::Passed => Cond::new(BACKUP_HEALTHY, true, "Verified", message),
            _ => Cond::new(BACKUP_HEALTHY, false, "VerificationFailed", message),
        });
    } else if spec.is_some() && in_own_minio {
        conds.push(not_off_site("not verified"));
    } else if spec.is_some_and(|s| s.verify) {
        conds.push(Cond::new(
            BACKUP_HEALTHY,
            false,
            "NotVerifiedYet",
            "no backup of this cloud has been verified yet",
        ));
    }
    let status = CloudBackupStatus {
        last_backup,
        last_successful,
        next_scheduled_time,
        last_verified: newest,
    };
    let status = (status != CloudBackupStatus::default()).then_some(status);
    (status, conds)
}

/// BackupHealthy of a cloud whose backups are kept in its own MinIO: they share its fate.
fn not_off_site(verified: &str) -> Cond {
    Cond::new(
        BACKUP_HEALTHY,
        false,
        "NotOffSite",
        format!(
            "backups are kept in this cloud's own MinIO ({verified}): losing the cloud's volumes loses them too, and a restore of this cloud cannot read them before that MinIO runs; set spec.backup.destination.s3 to keep them off-site"
        ),
    )
}

/// The backup with the greatest `key` (a time), the greater name between equals.
fn newest_by<'a, K: Ord>(
    backups: impl Iterator<Item = &'a InSyncCloudBackup>,
    key: impl Fn(&InSyncCloudBackup) -> K,
) -> Option<&'a InSyncCloudBackup> {
    backups.max_by(|a, b| {
        key(a)
            .cmp(&key(b))
            .then_with(|| a.backup_name().cmp(b.backup_name()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        BackupPhase, BackupSpec, InSyncCloudBackupSpec, InSyncCloudBackupStatus, InSyncCloudSpec,
        Verification,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn cloud(schedule: Option<&str>) -> InSyncCloud {
        let mut spec = InSyncCloudSpec::with_version("5.9.1-r4178");
        spec.backup = Some(BackupSpec {
            schedule: schedule.map(str::to_owned),
            verify: true,
            ..BackupSpec::default()
        });
        InSyncCloud::new("fcloud", spec)
    }

    fn verified(name: &str, at: &str, phase: VerifyPhase) -> InSyncCloudBackup {
        let mut backup = InSyncCloudBackup::new(
            name,
            InSyncCloudBackupSpec {
                cloud: "fcloud".to_owned(),
            },
        );
        backup.status = Some(InSyncCloudBackupStatus {
            phase: Some(BackupPhase::Complete),
            verification: Some(Verification {
                phase: Some(phase),
                completed_at: Some(Time(at.parse().expect("time"))),
                message: Some(format!("{phase:?}")),
            }),
            ..InSyncCloudBackupStatus::default()
        });
        backup
    }

    fn now() -> Timestamp {
        "2026-11-28T12:00:00Z".parse().expect("time")
    }

    fn cond(conds: &[Cond], type_: &str) -> Option<(bool, &'static str)> {
        conds
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status, c.reason))
    }

    #[test]
    fn the_newest_verification_decides_backup_health() {
        let backups = [
            verified("a", "2026-11-28T01:00:00Z", VerifyPhase::Passed),
            verified("b", "2026-11-28T02:00:00Z", VerifyPhase::Failed),
        ];
        let (status, conds) = health(&cloud(None), &backups, now());
        let last = status.and_then(|s| s.last_verified).expect("last");
        assert_eq!(
            (last.backup.as_str(), last.result),
            ("b", VerifyPhase::Failed)
        );
        assert_eq!(
            cond(&conds, BACKUP_HEALTHY),
            Some((false, "VerificationFailed"))
        );
        let (_, conds) = health(&cloud(None), &backups[..1], now());
        assert_eq!(cond(&conds, BACKUP_HEALTHY), Some((true, "Verified")));
        let (status, conds) = health(&cloud(None), &[], now());
        assert!(status.is_none());
        assert_eq!(
            cond(&conds, BACKUP_HEALTHY),
            Some((false, "NotVerifiedYet"))
        );
    }

    fn created_at(mut backup: InSyncCloudBackup, at: &str) -> InSyncCloudBackup {
        backup.metadata.creation_timestamp = Some(Time(at.parse().expect("time")));
        backup
    }

    /// Issue 20, defect 6: BackupHealthy followed only the newest verification, and stayed
    /// `True Verified` while every later backup failed.
    #[test]
    fn a_failed_newest_backup_makes_backups_unhealthy_whatever_was_verified() {
        let verified_one = created_at(
            verified("a", "2026-11-28T01:10:00Z", VerifyPhase::Passed),
            "2026-11-28T01:00:00Z",
        );
        let mut failed = created_at(
            InSyncCloudBackup::new(
                "b",
                InSyncCloudBackupSpec {
                    cloud: "fcloud".to_owned(),
                },
            ),
            "2026-11-28T02:00:00Z",
        );
        failed.status = Some(InSyncCloudBackupStatus {
            phase: Some(BackupPhase::Failed),
            reason: Some("mysqldump: Access denied".to_owned()),
            ..InSyncCloudBackupStatus::default()
        });
        let backups = [verified_one.clone(), failed];
        let (_, conds) = health(&cloud(None), &backups, now());
        assert_eq!(cond(&conds, BACKUP_HEALTHY), Some((false, "BackupFailed")));
        let message = &conds
            .iter()
            .find(|c| c.type_ == BACKUP_HEALTHY)
            .expect("c")
            .message;
        assert!(
            message.contains("b failed: mysqldump: Access denied")
                && message.contains("newest Complete backup is a"),
            "{message}"
        );
        // A newer backup that completes makes the verification speak again.
        let mut recovered = backups.to_vec();
        let mut good = created_at(
            verified("c", "2026-11-28T03:10:00Z", VerifyPhase::Passed),
            "2026-11-28T03:00:00Z",
        );
        good.status.as_mut().expect("status").verification = None;
        recovered.push(good);
        let (_, conds) = health(&cloud(None), &recovered, now());
        assert_eq!(cond(&conds, BACKUP_HEALTHY), Some((true, "Verified")));
    }

    /// Issue 20, defect 2: a verified backup kept in the cloud's own MinIO said
    /// `BackupHealthy=True`, though it is lost with the cloud and no restore of it can read it.
    #[test]
    fn backups_kept_in_the_clouds_own_minio_are_not_healthy() {
        let mut kept_inside = verified("a", "2026-11-28T01:10:00Z", VerifyPhase::Passed);
        kept_inside.status.as_mut().expect("status").store = Some(crate::api::BackupStore {
            kind: Some(StoreKind::CloudMinio),
            s3: None,
        });
        let (_, conds) = health(&cloud(None), std::slice::from_ref(&kept_inside), now());
        assert_eq!(cond(&conds, BACKUP_HEALTHY), Some((false, "NotOffSite")));
        let message = &conds
            .iter()
            .find(|c| c.type_ == BACKUP_HEALTHY)
            .expect("c")
            .message;
        assert!(message.contains("spec.backup.destination.s3"), "{message}");
        // Off-site: verified is healthy.
        kept_inside.status.as_mut().expect("status").store = Some(crate::api::BackupStore {
            kind: Some(StoreKind::OffSite),
            s3: None,
        });
        let (_, conds) = health(&cloud(None), &[kept_inside], now());
        assert_eq!(cond(&conds, BACKUP_HEALTHY), Some((true, "Verified")));
    }

    #[test]
    fn a_schedule_the_crd_accepts_but_the_parser_refuses_is_a_condition() {
        let (_, conds) = health(&cloud(Some("0 25 * * *")), &[], now());
        assert_eq!(
            cond(&conds, BACKUP_SCHEDULED),
            Some((false, "InvalidSchedule"))
        );
        let (_, conds) = health(&cloud(Some("0 3 * * *")), &[], now());
        assert_eq!(cond(&conds, BACKUP_SCHEDULED), Some((true, "Scheduled")));
    }

    #[test]
    fn the_status_names_the_newest_backup_the_newest_complete_one_and_the_next_slot() {
        let backup = |name: &str, created: &str, phase: BackupPhase, done: &str| {
            let mut b = InSyncCloudBackup::new(
                name,
                InSyncCloudBackupSpec {
                    cloud: "fcloud".to_owned(),
                },
            );
            b.metadata.creation_timestamp = Some(Time(created.parse().expect("time")));
            b.status = Some(InSyncCloudBackupStatus {
                phase: Some(phase),
                completed_at: Some(Time(done.parse().expect("time"))),
                ..InSyncCloudBackupStatus::default()
            });
            b
        };
        let mut other_cloud = backup(
            "other",
            "2026-11-28T11:00:00Z",
            BackupPhase::Complete,
            "2026-11-28T11:01:00Z",
        );
        other_cloud.spec.cloud = "another".to_owned();
        let backups = [
            backup(
                "old",
                "2026-11-27T03:00:00Z",
                BackupPhase::Complete,
                "2026-11-27T03:02:00Z",
            ),
            backup(
                "good",
                "2026-11-28T03:00:00Z",
                BackupPhase::Complete,
                "2026-11-28T03:02:00Z",
            ),
            backup(
                "bad",
                "2026-11-28T09:00:00Z",
                BackupPhase::Failed,
                "2026-11-28T09:00:15Z",
            ),
            other_cloud,
        ];
        let (status, _) = health(&cloud(Some("0 3 * * *")), &backups, now());
        let status = status.expect("a status");
        let last = status.last_backup.expect("last backup");
        assert_eq!(
            (last.backup.as_str(), last.phase),
            ("bad", Some(BackupPhase::Failed))
        );
        let good = status.last_successful.expect("last successful");
        assert_eq!(good.backup, "good");
        assert_eq!(
            good.completed_at.map(|t| t.0),
            Some("2026-11-28T03:02:00Z".parse().expect("time"))
        );
        assert_eq!(
            status.next_scheduled_time.map(|t| t.0),
            Some("2026-11-29T03:00:00Z".parse().expect("time"))
        );

        // No schedule and no backups: nothing to say.
        let mut unscheduled = cloud(None);
        if let Some(spec) = unscheduled.spec.backup.as_mut() {
            spec.verify = false;
        }
        assert_eq!(health(&unscheduled, &[], now()).0, None);

        // A cloud without spec.backup names the backups made by hand (verified ones too), with
        // no conditions.
        let mut by_hand = cloud(None);
        by_hand.spec.backup = None;
        let mut with_verified = backups.to_vec();
        with_verified.push(verified(
            "checked",
            "2026-11-28T04:00:00Z",
            VerifyPhase::Passed,
        ));
        let (status, conds) = health(&by_hand, &with_verified, now());
        let status = status.expect("a status");
        assert_eq!(
            status.last_successful.map(|b| b.backup),
            Some("good".to_owned())
        );
        assert_eq!(
            status.last_verified.map(|v| v.backup),
            Some("checked".to_owned())
        );
        assert_eq!(status.next_scheduled_time, None);
        assert!(conds.is_empty(), "{conds:?}");
    }
}
