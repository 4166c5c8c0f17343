//! `spec.backup.retention`: which scheduled backups expire (pure, table-tested).
//!
//! A backup is kept when any rule keeps it: the newest `keepLast` Complete backups, and the
//! newest Complete backup of each of the last `keepDaily` UTC days, `keepWeekly` ISO weeks and
//! `keepMonthly` months that have one (the periods are counted among those holding a backup,
//! as restic and borg count them: a week with no backup uses up no weekly slot). Backups are
//! placed in time by when they were taken (the object's creation).
//!
//! Whatever the rules say, these are kept: the newest backup whose verification passed (without
//! it, retention could leave only backups nobody has seen restore), a backup being verified,
//! and every backup that is not final. Failed backups count toward no rule; the newest
//! [`FAILED_KEPT`] stay for a look, older ones expire (their half-written files go too).

use std::collections::HashSet;

use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::tz::TimeZone;

use crate::api::{BackupPhase, BackupRetention, InSyncCloudBackup, VerifyPhase};

/// Failed scheduled backups kept (the newest ones), so a run of failures can be read.
pub(crate) const FAILED_KEPT: usize = 3;

/// Annotation that marks a backup as expired: the backup controller deletes its files, then
/// the object. Retention sets it; a person may set it too, to delete a backup with its files.
pub(crate) const EXPIRED_ANNOTATION: &str = "insync.dev/expired";

/// The rules as counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Rules {
    pub last: usize,
    pub daily: usize,
    pub weekly: usize,
    pub monthly: usize,
}

impl From<&BackupRetention> for Rules {
    fn from(retention: &BackupRetention) -> Self {
        let count = |n: Option<i32>| n.and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
        Self {
            last: count(retention.keep_last),
            daily: count(retention.keep_daily),
            weekly: count(retention.keep_weekly),
            monthly: count(retention.keep_monthly),
        }
    }
}

/// When a backup was taken.
fn taken(backup: &InSyncCloudBackup) -> Option<Timestamp> {
    backup.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

fn verification(backup: &InSyncCloudBackup) -> Option<VerifyPhase> {
    backup
        .status
        .as_ref()
        .and_then(|s| s.verification.as_ref())
        .and_then(|v| v.phase)
}

/// Whether `backup` was marked expired already.
pub(crate) fn is_expired(backup: &InSyncCloudBackup) -> bool {
    backup
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(EXPIRED_ANNOTATION))
}

/// Newest first; the name (`<cloud>-<slot>`) breaks ties in creation time.
fn newest_first(backups: &mut [&InSyncCloudBackup]) {
    backups.sort_by(|a, b| {
        taken(b)
            .cmp(&taken(a))
            .then_with(|| b.backup_name().cmp(a.backup_name()))
    });
}

/// A calendar period (UTC) a time falls in, as (year, number in the year).
type Period = fn(Timestamp) -> (i32, i32);

/// The names of the scheduled `backups` of one cloud that `rules` let go, newest first.
/// Backups already being deleted (or marked) are neither counted nor named again.
pub(crate) fn expired(backups: &[InSyncCloudBackup], rules: Rules) -> Vec<String> {
    let live = || {
        backups
            .iter()
            .filter(|b| b.metadata.deletion_timestamp.is_none() && !is_expired(b))
    };
    let mut complete: Vec<&InSyncCloudBackup> = live()
        .filter(|b| b.phase() == BackupPhase::Complete)
        .collect();
    newest_first(&mut complete);

    let mut kept: HashSet<&str> = HashSet::new();
    kept.extend(complete.iter().take(rules.last).map(|b| b.backup_name()));
    let period_rules: [(usize, Period); 3] = [
        (rules.daily, |t| {
            let date = t.to_zoned(TimeZone::UTC).date();
            (date.year().into(), date.day_of_year().into())
        }),
        (rules.weekly, |t| {
            let week = t.to_zoned(TimeZone::UTC).date().iso_week_date();
            (week.year().into(), week.week().into())
        }),
        (rules.monthly, |t| {
            let date = t.to_zoned(TimeZone::UTC).date();
            (date.year().into(), date.month().into())
        }),
    ];
    for (count, period) in period_rules {
        let mut periods = HashSet::new();
        for backup in &complete {
            if periods.len() == count {
                break;
            }
            let Some(at) = taken(backup) else { continue };
            // The first backup met in a period is that period's newest.
            if periods.insert(period(at)) {
                kept.insert(backup.backup_name());
            }
        }
    }
    if let Some(newest_verified) = complete
        .iter()
        .find(|b| verification(b) == Some(VerifyPhase::Passed))
    {
        kept.insert(newest_verified.backup_name());
    }

    let mut failed: Vec<&InSyncCloudBackup> = live()
        .filter(|b| b.phase() == BackupPhase::Failed)
        .collect();
    newest_first(&mut failed);

    let mut gone: Vec<&InSyncCloudBackup> = complete
        .into_iter()
        .filter(|b| !kept.contains(b.backup_name()))
        .filter(|b| verification(b) != Some(VerifyPhase::Running))
        .chain(failed.into_iter().skip(FAILED_KEPT))
        .collect();
    newest_first(&mut gone);
    gone.into_iter()
        .map(|b| b.backup_name().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{InSyncCloudBackupSpec, InSyncCloudBackupStatus, Verification};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    /// A scheduled backup taken at `at` (RFC 3339), named after its slot.
    fn taken_at(at: &str, phase: BackupPhase) -> InSyncCloudBackup {
        let time: Timestamp = at.parse().expect("time");
        let mut backup = InSyncCloudBackup::new(
            &format!("fcloud-{}", time.strftime("%Y%m%d%H%M")),
            InSyncCloudBackupSpec {
                cloud: "fcloud".to_owned(),
            },
        );
        backup.metadata.creation_timestamp = Some(Time(time));
        backup.status = Some(InSyncCloudBackupStatus {
            phase: Some(phase),
            ..InSyncCloudBackupStatus::default()
        });
        backup
    }

    fn complete(at: &str) -> InSyncCloudBackup {
        taken_at(at, BackupPhase::Complete)
    }

    fn verified(mut backup: InSyncCloudBackup, phase: VerifyPhase) -> InSyncCloudBackup {
        if let Some(status) = backup.status.as_mut() {
            status.verification = Some(Verification {
                phase: Some(phase),
                ..Verification::default()
            });
        }
        backup
    }

    fn rules(last: usize, daily: usize, weekly: usize, monthly: usize) -> Rules {
        Rules {
            last,
            daily,
            weekly,
            monthly,
        }
    }

    /// Every 6 hours from 2026-09-01 to 2026-11-28 (Saturday), 03:00 first.
    fn a_season() -> Vec<InSyncCloudBackup> {
        let start: Timestamp = "2026-09-01T03:00:00Z".parse().expect("time");
        (0..(89 * 4))
            .map(|i| {
                let at = start + k8s_openapi::jiff::SignedDuration::from_hours(6 * i);
                complete(&at.to_string())
            })
            .collect()
    }

    fn kept(backups: &[InSyncCloudBackup], rules: Rules) -> Vec<String> {
        let gone: HashSet<String> = expired(backups, rules).into_iter().collect();
        let mut kept: Vec<String> = backups
            .iter()
            .map(|b| b.backup_name().to_owned())
            .filter(|n| !gone.contains(n))
            .collect();
        kept.sort();
        kept.reverse();
        kept
    }

    #[test]
    fn each_rule_keeps_the_newest_backup_of_its_periods() {
        let season = a_season();
        let newest = "fcloud-202611282100";
        for (name, rules, want) in [
            (
                "keepLast 3",
                rules(3, 0, 0, 0),
                vec![newest, "fcloud-202611281500", "fcloud-202611280900"],
            ),
            (
                "keepDaily 3: the last backup of each of the last 3 days",
                rules(0, 3, 0, 0),
                vec![newest, "fcloud-202611272100", "fcloud-202611262100"],
            ),
            (
                // 2026-11-28 is in ISO week 48 (Mon 23 - Sun 29), 22 is the last of week 47.
                "keepWeekly 2",
                rules(0, 0, 2, 0),
                vec![newest, "fcloud-202611222100"],
            ),
            (
                "keepMonthly 3",
                rules(0, 0, 0, 3),
                vec![newest, "fcloud-202610312100", "fcloud-202609302100"],
            ),
            (
                "rules overlap: a backup any rule keeps is kept once",
                rules(2, 2, 2, 2),
                vec![
                    newest,
                    "fcloud-202611281500",
                    "fcloud-202611272100",
                    "fcloud-202611222100",
                    "fcloud-202610312100",
                ],
            ),
        ] {
            assert_eq!(kept(&season, rules), want, "{name}");
        }
    }

    #[test]
    fn periods_without_a_backup_use_up_no_slot() {
        // Two backups in September, one in November: keepMonthly 2 reaches back to September.
        let backups = [
            complete("2026-09-10T03:00:00Z"),
            complete("2026-09-20T03:00:00Z"),
            complete("2026-11-02T03:00:00Z"),
        ];
        assert_eq!(
            kept(&backups, rules(0, 0, 0, 2)),
            ["fcloud-202611020300", "fcloud-202609200300"]
        );
    }

    #[test]
    fn the_iso_week_spans_the_new_year() {
        // 2026-12-31 (Thursday) and 2027-01-02 (Saturday) are both in ISO week 53 of 2026.
        let backups = [
            complete("2026-12-28T03:00:00Z"),
            complete("2026-12-31T03:00:00Z"),
            complete("2027-01-02T03:00:00Z"),
            complete("2027-01-04T03:00:00Z"),
        ];
        assert_eq!(
            kept(&backups, rules(0, 0, 2, 0)),
            ["fcloud-202701040300", "fcloud-202701020300"]
        );
    }

    #[test]
    fn the_newest_verified_and_a_verifying_backup_are_kept() {
        let backups = [
            verified(complete("2026-11-28T01:00:00Z"), VerifyPhase::Passed),
            verified(complete("2026-11-28T02:00:00Z"), VerifyPhase::Passed),
            verified(complete("2026-11-28T03:00:00Z"), VerifyPhase::Running),
            verified(complete("2026-11-28T04:00:00Z"), VerifyPhase::Failed),
            complete("2026-11-28T05:00:00Z"),
        ];
        assert_eq!(
            expired(&backups, rules(1, 0, 0, 0)),
            ["fcloud-202611280400", "fcloud-202611280100"]
        );
    }

    #[test]
    fn failed_backups_count_for_nothing_and_only_the_newest_few_stay() {
        let mut backups: Vec<InSyncCloudBackup> = (1..=5)
            .map(|h| taken_at(&format!("2026-11-28T0{h}:00:00Z"), BackupPhase::Failed))
            .collect();
        backups.push(complete("2026-11-27T03:00:00Z"));
        backups.push(taken_at("2026-11-28T06:00:00Z", BackupPhase::Running));
        backups.push(taken_at("2026-11-28T07:00:00Z", BackupPhase::Pending));
        // keepDaily 1 keeps the Complete backup of the 27th: failures on the 28th take no day.
        assert_eq!(
            expired(&backups, rules(0, 1, 0, 0)),
            ["fcloud-202611280200", "fcloud-202611280100"]
        );
    }

    #[test]
    fn marked_or_deleting_backups_are_not_counted_or_named_again() {
        let mut marked = complete("2026-11-28T05:00:00Z");
        marked.metadata.annotations = Some(
            [(EXPIRED_ANNOTATION.to_owned(), "retention".to_owned())]
                .into_iter()
                .collect(),
        );
        let backups = [
            marked,
            complete("2026-11-28T04:00:00Z"),
            complete("2026-11-28T03:00:00Z"),
        ];
        assert_eq!(
            expired(&backups, rules(1, 0, 0, 0)),
            ["fcloud-202611280300"]
        );
    }

    #[test]
    fn rules_read_absent_counts_as_zero() {
        let retention = BackupRetention {
            keep_daily: Some(7),
            ..BackupRetention::default()
        };
        assert_eq!(Rules::from(&retention), rules(0, 7, 0, 0));
    }
}
