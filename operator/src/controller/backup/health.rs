//! What a cloud's status says about its backups (pure): the newest verification
//! (`status.backup.lastVerified`, the `BackupHealthy` condition) and whether its schedule can
//! be read (`BackupScheduled`: the CRD accepts any five fields, the parser is stricter).

use super::schedule::Cron;
use crate::api::{CloudBackupStatus, InSyncCloud, InSyncCloudBackup, LastVerified, VerifyPhase};
use crate::controller::status::Cond;

/// Condition type: the newest verified backup of the cloud restored and matched its manifest.
pub(crate) const BACKUP_HEALTHY: &str = "BackupHealthy";
/// Condition type: `spec.backup.schedule` is readable and backups are taken on it.
pub(crate) const BACKUP_SCHEDULED: &str = "BackupScheduled";

/// `status.backup` and the backup conditions of `cloud`, from the backups of its namespace.
pub(crate) fn health(
    cloud: &InSyncCloud,
    backups: &[InSyncCloudBackup],
) -> (Option<CloudBackupStatus>, Vec<Cond>) {
    let Some(spec) = &cloud.spec.backup else {
        return (None, Vec::new());
    };
    let mut conds = Vec::new();
    if let Some(schedule) = &spec.schedule {
        conds.push(match schedule.parse::<Cron>() {
            Ok(_) => Cond::new(
                BACKUP_SCHEDULED,
                true,
                "Scheduled",
                format!("backups are taken on \"{schedule}\" (UTC)"),
            ),
            Err(e) => Cond::new(
                BACKUP_SCHEDULED,
                false,
                "InvalidSchedule",
                format!("no scheduled backups: {e}"),
            ),
        });
    }
    let newest = backups
        .iter()
        .filter(|b| b.spec.cloud == cloud.cloud_name())
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
    if let Some(last) = &newest {
        let message = format!(
            "backup {}: {}",
            last.backup,
            last.message.clone().unwrap_or_default()
        );
        conds.push(match last.result {
            VerifyPhase::Passed => Cond::new(BACKUP_HEALTHY, true, "Verified", message),
            _ => Cond::new(BACKUP_HEALTHY, false, "VerificationFailed", message),
        });
    } else if spec.verify {
        conds.push(Cond::new(
            BACKUP_HEALTHY,
            false,
            "NotVerifiedYet",
            "no backup of this cloud has been verified yet",
        ));
    }
    let status = newest.map(|last| CloudBackupStatus {
        last_verified: Some(last),
    });
    (status, conds)
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
        let (status, conds) = health(&cloud(None), &backups);
        let last = status.and_then(|s| s.last_verified).expect("last");
        assert_eq!(
            (last.backup.as_str(), last.result),
            ("b", VerifyPhase::Failed)
        );
        assert_eq!(
            cond(&conds, BACKUP_HEALTHY),
            Some((false, "VerificationFailed"))
        );
        let (_, conds) = health(&cloud(None), &backups[..1]);
        assert_eq!(cond(&conds, BACKUP_HEALTHY), Some((true, "Verified")));
        let (status, conds) = health(&cloud(None), &[]);
        assert!(status.is_none());
        assert_eq!(
            cond(&conds, BACKUP_HEALTHY),
            Some((false, "NotVerifiedYet"))
        );
    }

    #[test]
    fn a_schedule_the_crd_accepts_but_the_parser_refuses_is_a_condition() {
        let (_, conds) = health(&cloud(Some("0 25 * * *")), &[]);
        assert_eq!(
            cond(&conds, BACKUP_SCHEDULED),
            Some((false, "InvalidSchedule"))
        );
        let (_, conds) = health(&cloud(Some("0 3 * * *")), &[]);
        assert_eq!(cond(&conds, BACKUP_SCHEDULED), Some((true, "Scheduled")));
    }
}
