//! One round of the schedule loop for one cloud (pure): the backup its schedule owes, the
//! verification its `verifySchedule` asks for, and the backups its retention lets go.
//!
//! What a schedule may cost is bounded for a shared cluster: no slot is taken while a backup of
//! the cloud is still unfinished (at most one runs), none sooner than the operator's minimum
//! interval after the previous scheduled one (`--min-backup-interval`: `* * * * *` would make
//! 1,440 backups, Jobs and pods a day), and a schedule without `retention` keeps
//! [`DEFAULT_RETENTION`], not everything forever.
//!
//! A cloud that is being deleted, paused or restored takes no backup and expires nothing: a
//! restoring cloud's databases hold nothing yet or part of a backup, and a dump of them would
//! count as Complete, push the real backups out of retention, and expire the very backup the
//! restore is reading. For the same reason a backup that any cloud of the namespace is being
//! restored from never expires, whichever cloud's retention would let it go.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use super::schedule::{self, CLOUD_LABEL, CronError, SCHEDULED_LABEL};
use super::{retention, reverify};
use crate::api::{InSyncCloud, InSyncCloudBackup};

/// The retention of a schedule that sets none: the newest 7 backups, and the newest of each of
/// the last 7 days and 4 weeks (a month of restore points for a daily schedule).
pub(crate) const DEFAULT_RETENTION: retention::Rules = retention::Rules {
    last: 7,
    daily: 7,
    weekly: 4,
    monthly: 0,
};

/// The operator's bounds on every schedule (flags).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// The shortest time between two scheduled backups of one cloud.
    pub min_interval: SignedDuration,
}

/// What a round does for one cloud.
#[derive(Debug, Default)]
pub(crate) struct Round {
    /// Why nothing is done for the cloud now (deleted, paused, restoring).
    pub held: Option<String>,
    /// The backup the schedule owes now (an unreadable schedule is reported, not guessed).
    pub take: Option<Result<InSyncCloudBackup, CronError>>,
    /// Why the slot due now is skipped (a backup still runs, or the last one is too recent).
    pub skipped: Option<String>,
    /// The backup to ask a verification of, and the time of the request.
    pub verify: Option<(String, Timestamp)>,
    /// Scheduled backups to mark expired.
    pub expire: Vec<String>,
}

/// Why `cloud`'s schedule and retention must do nothing now, if so.
pub(crate) fn held(cloud: &InSyncCloud) -> Option<String> {
    if cloud.metadata.deletion_timestamp.is_some() {
        return Some("the cloud is being deleted".to_owned());
    }
    if cloud.spec.paused {
        return Some("the cloud is paused (spec.paused)".to_owned());
    }
    if cloud.is_restoring() {
        return Some(
            "the cloud is being restored (status.restore): its databases do not hold the cloud yet"
                .to_owned(),
        );
    }
    None
}

/// The round for `cloud` at `now`, given its namespace's clouds (itself included) and its own
/// backups.
pub(crate) fn plan(
    cloud: &InSyncCloud,
    namespace_clouds: &[&InSyncCloud],
    backups: &[InSyncCloudBackup],
    limits: Limits,
    now: Timestamp,
) -> Round {
    let mut round = Round::default();
    let Some(spec) = cloud.spec.backup.as_ref() else {
        return round;
    };
    if let Some(why) = held(cloud) {
        round.held = Some(why);
        return round;
    }
    round.take = schedule::scheduled_backup(cloud, now);
    if let Some(Ok(due)) = &round.take {
        round.skipped = skip_reason(due, backups, limits, now);
        if round.skipped.is_some() {
            round.take = None;
        }
    }
    round.verify = reverify::verify_request(cloud, backups, now);
    let rules = match (&spec.retention, &spec.schedule) {
        (Some(retention), _) => retention::Rules::from(retention),
        (None, Some(_)) => DEFAULT_RETENTION,
        (None, None) => return round,
    };
    // Only the schedule's own backups: one a person made is theirs to delete.
    let scheduled: Vec<InSyncCloudBackup> = backups
        .iter()
        .filter(|b| {
            b.labels().get(CLOUD_LABEL).map(String::as_str) == Some(cloud.cloud_name())
                && b.labels().get(SCHEDULED_LABEL).map(String::as_str) == Some("true")
        })
        .cloned()
        .collect();
    let sources: Vec<&str> = namespace_clouds
        .iter()
        .filter_map(|c| c.restoring_from())
        .collect();
    round.expire = retention::expired(&scheduled, rules)
        .into_iter()
        .filter(|name| !sources.contains(&name.as_str()))
        .collect();
    round
}

/// Why the slot whose backup is `due` is skipped, if it is: another backup of the cloud has not
/// finished, or the newest scheduled one is younger than the minimum interval. (The slot's own
/// backup, already taken, is left to the API server's conflict.)
fn skip_reason(
    due: &InSyncCloudBackup,
    backups: &[InSyncCloudBackup],
    limits: Limits,
    now: Timestamp,
) -> Option<String> {
    let others = || {
        backups
            .iter()
            .filter(|b| b.backup_name() != due.backup_name())
    };
    if let Some(unfinished) = others().find(|b| {
        !b.phase().is_final()
            && !retention::is_expired(b)
            && b.metadata.deletion_timestamp.is_none()
    }) {
        return Some(format!(
            "backup {} of this cloud has not finished: one backup of a cloud runs at a time",
            unfinished.backup_name()
        ));
    }
    let newest_scheduled = others()
        .filter(|b| b.labels().get(SCHEDULED_LABEL).map(String::as_str) == Some("true"))
        .filter_map(|b| b.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .max()?;
    let since = now.duration_since(newest_scheduled);
    (since < limits.min_interval).then(|| {
        format!(
            "the last scheduled backup is {}s old, less than the operator's minimum interval of {}s (--min-backup-interval)",
            since.as_secs(),
            limits.min_interval.as_secs()
        )
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::{
        BackupPhase, BackupRetention, BackupSpec, InSyncCloudBackupSpec, InSyncCloudBackupStatus,
        InSyncCloudSpec, InSyncCloudStatus, RestorePhase, RestoreSpec, RestoreStatus,
    };

    const NOW: &str = "2026-12-08T10:00:30Z";
    const LIMITS: Limits = Limits {
        min_interval: SignedDuration::from_mins(15),
    };

    fn now() -> Timestamp {
        NOW.parse().expect("time")
    }

    /// fcloud, backed up every minute and keeping only the newest backup.
    fn every_minute() -> InSyncCloud {
        let mut spec = InSyncCloudSpec::with_version("5.9.1-r4178");
        spec.backup = Some(BackupSpec {
            schedule: Some("* * * * *".to_owned()),
            retention: Some(BackupRetention {
                keep_last: Some(1),
                ..BackupRetention::default()
            }),
            ..BackupSpec::default()
        });
        let mut cloud = InSyncCloud::new("fcloud", spec);
        cloud.metadata.namespace = Some("fcloud".to_owned());
        cloud.metadata.creation_timestamp = Some(Time("2026-12-01T00:00:00Z".parse().expect("t")));
        cloud
    }

    /// The same cloud re-created from `backup`, its restore at `phase` (None: not started).
    fn restoring_from(backup: &str, phase: Option<RestorePhase>) -> InSyncCloud {
        let mut cloud = every_minute();
        cloud.spec.restore = Some(RestoreSpec {
            backup: Some(backup.to_owned()),
            s3: None,
        });
        cloud.status = phase.map(|phase| InSyncCloudStatus {
            restore: Some(RestoreStatus {
                phase: Some(phase),
                ..RestoreStatus::default()
            }),
            ..InSyncCloudStatus::default()
        });
        cloud
    }

    /// Three Complete scheduled backups of fcloud, a day apart, oldest first.
    fn scheduled_backups() -> Vec<InSyncCloudBackup> {
        [
            "2026-12-05T00:00:00Z",
            "2026-12-06T00:00:00Z",
            "2026-12-07T00:00:00Z",
        ]
        .into_iter()
        .map(|at| {
            let time: Timestamp = at.parse().expect("time");
            let mut backup = InSyncCloudBackup::new(
                &schedule::backup_name("fcloud", time),
                InSyncCloudBackupSpec {
                    cloud: "fcloud".to_owned(),
                },
            );
            backup.metadata.namespace = Some("fcloud".to_owned());
            backup.metadata.creation_timestamp = Some(Time(time));
            backup.metadata.labels = Some(BTreeMap::from([
                (CLOUD_LABEL.to_owned(), "fcloud".to_owned()),
                (SCHEDULED_LABEL.to_owned(), "true".to_owned()),
            ]));
            backup.status = Some(InSyncCloudBackupStatus {
                phase: Some(BackupPhase::Complete),
                ..InSyncCloudBackupStatus::default()
            });
            backup
        })
        .collect()
    }

    #[test]
    fn a_running_cloud_takes_its_backup_and_expires_past_its_retention() {
        let cloud = every_minute();
        let round = plan(&cloud, &[&cloud], &scheduled_backups(), LIMITS, now());
        assert_eq!(round.held, None);
        let taken = round.take.expect("due").expect("readable");
        assert_eq!(taken.backup_name(), "fcloud-202612081000");
        assert_eq!(round.expire, ["fcloud-202612060000", "fcloud-202612050000"]);
    }

    /// Issue 20, defect 1: a cloud re-created from its oldest backup with its usual schedule
    /// took dumps of its half-loaded databases, and its retention expired the restore's source.
    #[test]
    fn a_restoring_cloud_takes_no_backup_and_its_source_never_expires() {
        let backups = scheduled_backups();
        let source = backups[0].backup_name().to_owned();
        for phase in [
            None,
            Some(RestorePhase::Checking),
            Some(RestorePhase::Restoring),
            Some(RestorePhase::Failed),
        ] {
            let cloud = restoring_from(&source, phase);
            let round = plan(&cloud, &[&cloud], &backups, LIMITS, now());
            assert!(round.take.is_none(), "{phase:?}: took a backup");
            assert!(round.expire.is_empty(), "{phase:?}: {:?}", round.expire);
            assert!(
                round
                    .held
                    .as_deref()
                    .is_some_and(|h| h.contains("restored")),
                "{phase:?}: {:?}",
                round.held
            );
        }
        // Complete: the cloud is itself again, and its source is just an old backup.
        let cloud = restoring_from(&source, Some(RestorePhase::Complete));
        let round = plan(&cloud, &[&cloud], &backups, LIMITS, now());
        assert!(round.take.is_some());
        assert!(round.expire.contains(&source), "{:?}", round.expire);
    }

    #[test]
    fn a_backup_another_cloud_is_restored_from_outlives_its_own_clouds_retention() {
        let cloud = every_minute();
        let backups = scheduled_backups();
        let source = backups[0].backup_name().to_owned();
        let mut copy = restoring_from(&source, Some(RestorePhase::Restoring));
        copy.metadata.name = Some("fcloud-copy".to_owned());
        let round = plan(&cloud, &[&cloud, &copy], &backups, LIMITS, now());
        assert_eq!(round.expire, ["fcloud-202612060000"]);
    }

    fn taken_at(name: &str, at: &str, phase: Option<BackupPhase>) -> InSyncCloudBackup {
        let mut backup = scheduled_backups().remove(0);
        backup.metadata.name = Some(name.to_owned());
        backup.metadata.creation_timestamp = Some(Time(at.parse().expect("time")));
        backup.status = phase.map(|phase| InSyncCloudBackupStatus {
            phase: Some(phase),
            ..InSyncCloudBackupStatus::default()
        });
        backup
    }

    /// Issue 18, item 5: `* * * * *` took a backup every minute, however long each took, and
    /// a schedule without retention kept them all.
    #[test]
    fn slots_wait_for_the_running_backup_and_the_minimum_interval() {
        let cloud = every_minute();
        let running = taken_at(
            "fcloud-202612080959",
            "2026-12-08T09:59:00Z",
            Some(BackupPhase::Running),
        );
        let round = plan(&cloud, &[&cloud], &[running], LIMITS, now());
        assert!(round.take.is_none());
        assert!(
            round
                .skipped
                .as_deref()
                .is_some_and(|s| s.contains("has not finished")),
            "{:?}",
            round.skipped
        );

        let recent = taken_at(
            "fcloud-202612080950",
            "2026-12-08T09:50:00Z",
            Some(BackupPhase::Complete),
        );
        let round = plan(
            &cloud,
            &[&cloud],
            std::slice::from_ref(&recent),
            LIMITS,
            now(),
        );
        assert!(round.take.is_none());
        assert!(
            round
                .skipped
                .as_deref()
                .is_some_and(|s| s.contains("minimum interval")),
            "{:?}",
            round.skipped
        );

        let old_enough = taken_at(
            "fcloud-202612080945",
            "2026-12-08T09:45:00Z",
            Some(BackupPhase::Complete),
        );
        let round = plan(&cloud, &[&cloud], &[old_enough], LIMITS, now());
        assert!(round.take.is_some() && round.skipped.is_none());
    }

    #[test]
    fn a_schedule_without_retention_keeps_the_default_not_everything() {
        let mut cloud = every_minute();
        if let Some(spec) = cloud.spec.backup.as_mut() {
            spec.retention = None;
        }
        let backups: Vec<InSyncCloudBackup> = (0..20)
            .map(|day| {
                taken_at(
                    &format!("fcloud-202611{:02}0000", day + 1),
                    &format!("2026-11-{:02}T00:00:00Z", day + 1),
                    Some(BackupPhase::Complete),
                )
            })
            .collect();
        let round = plan(&cloud, &[&cloud], &backups, LIMITS, now());
        // 7 newest (Nov 14-20) are kept by keepLast and keepDaily, plus the newest of 4 weeks.
        assert!(
            !round.expire.is_empty() && round.expire.len() < 20 - 7,
            "{:?}",
            round.expire
        );
        assert!(!round.expire.contains(&"fcloud-202611200000".to_owned()));
        // Nov 2 is neither among the newest 7 days nor the newest of its week (Nov 8 is).
        assert!(round.expire.contains(&"fcloud-202611020000".to_owned()));
    }

    #[test]
    fn a_paused_or_deleted_cloud_is_held() {
        let mut paused = every_minute();
        paused.spec.paused = true;
        assert!(
            plan(&paused, &[], &scheduled_backups(), LIMITS, now())
                .take
                .is_none()
        );
        let mut deleted = every_minute();
        deleted.metadata.deletion_timestamp = Some(Time(now()));
        let round = plan(&deleted, &[], &scheduled_backups(), LIMITS, now());
        assert!(round.take.is_none() && round.expire.is_empty());
    }
}
