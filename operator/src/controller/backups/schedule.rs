//! `spec.backup.schedule`: 5-field cron in UTC, and which backup a schedule owes now (pure).
//!
//! Fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12), day of week (0-7,
//! 0 and 7 are Sunday); each `*`, a number, a range `a-b`, a list `a,b,c`, with an optional
//! step `/n` after `*` or a range. As in cron, when both day fields are restricted (neither
//! starts with `*`) a day matching either one matches.

use std::collections::BTreeMap;

use k8s_openapi::jiff::civil::{Date, Time};
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{Timestamp, ToSpan};

use crate::api::{InSyncCloud, InSyncCloudBackup, InSyncCloudBackupSpec};

/// A slot missed by more than this (the operator was down) is skipped, like a CronJob's
/// `startingDeadlineSeconds`: a backup hours late is rarely the one wanted.
pub(crate) const STARTING_DEADLINE_MINUTES: i64 = 60;

/// A parsed schedule: the allowed values of each field as bit sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether the day-of-month and day-of-week fields start with `*` (`*` or `*/n`).
    any_day: bool,
    any_weekday: bool,
}

/// Why a schedule cannot be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("schedule {schedule:?}: {problem}")]
pub(crate) struct CronError {
    schedule: String,
    problem: String,
}

impl std::str::FromStr for Cron {
    type Err = CronError;

    fn from_str(schedule: &str) -> Result<Self, Self::Err> {
        let error = |problem: String| CronError {
            schedule: schedule.to_owned(),
            problem,
        };
        let fields: Vec<&str> = schedule.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(error(format!("{} fields, want 5", fields.len())));
        };
        let parse = |text: &str, name: &str, min: u32, max: u32| {
            field(text, min, max).map_err(|problem| error(format!("{name}: {problem}")))
        };
        let mut weekdays = parse(weekday, "day of week", 0, 7)?;
        // 7 is Sunday too.
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Self {
            minutes: parse(minute, "minute", 0, 59)?,
            hours: parse(hour, "hour", 0, 23)?,
            days: parse(day, "day of month", 1, 31)?,
            months: parse(month, "month", 1, 12)?,
            weekdays,
            // `*/n` is unrestricted too (cron's and the CronJob parser's rule: a field that
            // starts with '*'), so `0 0 */1 * 1` is Mondays, not every day.
            any_day: day.starts_with('*'),
            any_weekday: weekday.starts_with('*'),
        })
    }
}

/// One field as a bit set of the allowed values.
fn field(text: &str, min: u32, max: u32) -> Result<u64, String> {
    let mut set = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (
                range,
                step.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("bad step {step:?}"))?,
            ),
            None => (item, 1),
        };
        let number = |n: &str| {
            n.parse::<u32>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| format!("{n:?} is not a number from {min} to {max}"))
        };
        let (low, high) = match range {
            "*" => (min, max),
            _ => match range.split_once('-') {
                Some((low, high)) => (number(low)?, number(high)?),
                None if step > 1 => return Err(format!("a step needs '*' or a range: {item:?}")),
                None => (number(range)?, number(range)?),
            },
        };
        if low > high {
            return Err(format!("empty range {range:?}"));
        }
        for value in (low..=high).step_by(step as usize) {
            set |= 1 << value;
        }
    }
    Ok(set)
}

/// Whether bit `value` of `set` is set.
fn has(set: u64, value: i64) -> bool {
    set & (1 << value) != 0
}

impl Cron {
    /// Whether the minute starting at `time` is a slot.
    pub(crate) fn matches(&self, time: Timestamp) -> bool {
        let at = time.to_zoned(TimeZone::UTC).datetime();
        has(self.minutes, at.minute().into())
            && has(self.hours, at.hour().into())
            && has(self.months, at.month().into())
            && self.day_matches(at.date())
    }

    /// Whether `date` is a day of the schedule: day of month and day of week, or either one
    /// when both are restricted (as in cron).
    fn day_matches(&self, date: Date) -> bool {
        let day = has(self.days, date.day().into());
        let weekday = has(self.weekdays, date.weekday().to_sunday_zero_offset().into());
        match (self.any_day, self.any_weekday) {
            (false, false) => day || weekday,
            _ => day && weekday,
        }
    }

    /// The first slot after `now` (the minute after `now`'s at the earliest), within five years:
    /// none for a schedule no calendar reaches (`0 0 31 2 *`). Skips whole months, days and hours
    /// that cannot match, so even a yearly schedule takes a few hundred steps.
    pub(crate) fn next_after(&self, now: Timestamp) -> Option<Timestamp> {
        let minute = now.as_second().div_euclid(60) * 60 + 60;
        let start = Timestamp::from_second(minute).ok()?;
        let mut at = start.to_zoned(TimeZone::UTC).datetime();
        let limit = at.checked_add(5.years()).ok()?;
        while at < limit {
            let date = at.date();
            at = if !has(self.months, date.month().into()) {
                date.first_of_month()
                    .checked_add(1.month())
                    .ok()?
                    .to_datetime(Time::midnight())
            } else if !self.day_matches(date) {
                date.tomorrow().ok()?.to_datetime(Time::midnight())
            } else if !has(self.hours, at.hour().into()) {
                at.date()
                    .to_datetime(Time::new(at.hour(), 0, 0, 0).ok()?)
                    .checked_add(1.hour())
                    .ok()?
            } else if !has(self.minutes, at.minute().into()) {
                at.checked_add(1.minute()).ok()?
            } else {
                return at.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp());
            };
        }
        None
    }

    /// The latest slot at or before `now`, if one lies within the starting deadline.
    pub(crate) fn due(&self, now: Timestamp) -> Option<Timestamp> {
        let minute = now.as_second().div_euclid(60) * 60;
        (0..=STARTING_DEADLINE_MINUTES)
            .filter_map(|back| Timestamp::from_second(minute - back * 60).ok())
            .find(|slot| self.matches(*slot))
    }
}

/// The name of the backup a schedule takes at `slot`: `<cloud>-<YYYYMMDDHHMM>` (UTC), so each
/// slot is taken once, whoever asks and however often.
pub(crate) fn backup_name(cloud: &str, slot: Timestamp) -> String {
    format!("{cloud}-{}", slot.strftime("%Y%m%d%H%M"))
}

/// Labels on the backups a schedule takes: the cloud, and that the schedule took it (so
/// retention never deletes a backup a person made).
pub(crate) const CLOUD_LABEL: &str = "insync.dev/cloud";
pub(crate) const SCHEDULED_LABEL: &str = "insync.dev/scheduled";

/// The backup `cloud`'s schedule owes at `now`, if any: due, and not before the cloud existed.
pub(crate) fn scheduled_backup(
    cloud: &InSyncCloud,
    now: Timestamp,
) -> Option<Result<InSyncCloudBackup, CronError>> {
    let schedule = cloud.spec.backup.as_ref()?.schedule.as_ref()?;
    let cron = match schedule.parse::<Cron>() {
        Ok(cron) => cron,
        Err(e) => return Some(Err(e)),
    };
    let slot = cron.due(now)?;
    let created = cloud.metadata.creation_timestamp.as_ref().map(|t| t.0);
    if created.is_some_and(|created| slot < created) {
        return None;
    }
    let mut backup = InSyncCloudBackup::new(
        &backup_name(cloud.cloud_name(), slot),
        InSyncCloudBackupSpec {
            cloud: cloud.cloud_name().to_owned(),
        },
    );
    backup.metadata.namespace = Some(cloud.cloud_namespace().to_owned());
    backup.metadata.labels = Some(BTreeMap::from([
        (CLOUD_LABEL.to_owned(), cloud.cloud_name().to_owned()),
        (SCHEDULED_LABEL.to_owned(), "true".to_owned()),
    ]));
    Some(Ok(backup))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BackupSpec, InSyncCloudSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn scheduled_cloud(schedule: &str, created: &str) -> InSyncCloud {
        let mut cloud = InSyncCloud::new("fcloud", InSyncCloudSpec::with_version("5.9.1-r4178"));
        cloud.metadata.namespace = Some("fcloud".to_owned());
        cloud.metadata.creation_timestamp = Some(Time(at(created)));
        cloud.spec.backup = Some(BackupSpec {
            schedule: Some(schedule.to_owned()),
            ..BackupSpec::default()
        });
        cloud
    }

    #[test]
    fn the_next_slot_is_the_first_minute_after_now_that_matches() {
        let cases = [
            // (schedule, now, next)
            ("0 3 * * *", "2026-11-28T03:00:00Z", "2026-11-29T03:00:00Z"),
            ("0 3 * * *", "2026-11-28T02:59:59Z", "2026-11-28T03:00:00Z"),
            (
                "*/15 * * * *",
                "2026-11-28T10:14:10Z",
                "2026-11-28T10:15:00Z",
            ),
            ("30 1 * * 0", "2026-11-28T12:00:00Z", "2026-11-29T01:30:00Z"), // a Sunday
            ("0 0 1 * *", "2026-12-31T23:59:00Z", "2027-01-01T00:00:00Z"),
            ("0 0 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
            // both day fields restricted: the 1st or a Monday, whichever comes first
            ("0 6 1 * 1", "2026-11-25T00:00:00Z", "2026-11-30T06:00:00Z"),
            // a day field that starts with '*' is unrestricted, steps included (as in cron and
            // the CronJob parser): Mondays only, not every day (issue 20, item 9)
            (
                "0 0 */1 * 1",
                "2026-12-07T00:30:00Z",
                "2026-12-14T00:00:00Z",
            ),
            (
                "0 0 * * */1",
                "2026-12-07T00:30:00Z",
                "2026-12-08T00:00:00Z",
            ),
            (
                "0 0 1 * */2",
                "2026-12-07T00:30:00Z",
                "2027-04-01T00:00:00Z",
            ), // a Thursday
        ];
        for (schedule, now, next) in cases {
            let cron: Cron = schedule.parse().expect("valid");
            assert_eq!(
                cron.next_after(at(now)),
                Some(at(next)),
                "{schedule} after {now}"
            );
        }
        let never: Cron = "0 0 31 2 *".parse().expect("valid");
        assert_eq!(never.next_after(at("2026-11-28T00:00:00Z")), None);
    }

    #[test]
    fn the_next_slot_agrees_with_a_minute_by_minute_search() {
        let schedules = [
            "7 */5 * * *",
            "0 0 13 * 5",
            "15 9 * 2-3 1-5",
            "59 23 31 * *",
        ];
        for schedule in schedules {
            let cron: Cron = schedule.parse().expect("valid");
            let mut now = at("2026-01-30T22:10:17Z");
            for _ in 0..12 {
                let next = cron.next_after(now).expect("a slot");
                let mut search =
                    Timestamp::from_second(now.as_second().div_euclid(60) * 60 + 60).expect("time");
                while !cron.matches(search) {
                    search = search.checked_add(1.minute()).expect("time");
                }
                assert_eq!(next, search, "{schedule} after {now}");
                now = next;
            }
        }
    }

    #[test]
    fn a_due_schedule_owes_one_labelled_backup_per_slot() {
        let cloud = scheduled_cloud("0 3 * * *", "2026-11-01T00:00:00Z");
        let backup = scheduled_backup(&cloud, at("2026-11-28T03:00:30Z"))
            .expect("due")
            .expect("valid");
        assert_eq!(backup.backup_name(), "fcloud-202611280300");
        assert_eq!(backup.spec.cloud, "fcloud");
        let labels = backup.metadata.labels.expect("labels");
        assert_eq!(
            labels.get(SCHEDULED_LABEL).map(String::as_str),
            Some("true")
        );
        assert_eq!(labels.get(CLOUD_LABEL).map(String::as_str), Some("fcloud"));
        assert!(scheduled_backup(&cloud, at("2026-11-28T05:00:00Z")).is_none());
    }

    #[test]
    fn no_backup_for_a_slot_before_the_cloud_existed_or_without_a_schedule() {
        let young = scheduled_cloud("0 3 * * *", "2026-11-28T03:00:20Z");
        assert!(scheduled_backup(&young, at("2026-11-28T03:00:30Z")).is_none());
        let mut manual = young.clone();
        manual.spec.backup = None;
        assert!(scheduled_backup(&manual, at("2026-11-29T03:00:30Z")).is_none());
    }

    #[test]
    fn a_broken_schedule_is_reported_not_guessed() {
        let cloud = scheduled_cloud("0 25 * * *", "2026-11-01T00:00:00Z");
        let result = scheduled_backup(&cloud, at("2026-11-28T03:00:00Z")).expect("reported");
        assert!(result.is_err());
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("time")
    }

    fn cron(text: &str) -> Cron {
        text.parse().expect("schedule")
    }

    #[test]
    fn fields_accept_stars_steps_ranges_and_lists() {
        let every_15 = cron("*/15 * * * *");
        assert!(every_15.matches(at("2026-11-28T19:45:00Z")));
        assert!(!every_15.matches(at("2026-11-28T19:46:00Z")));
        let office = cron("0 9-17/2 * * 1-5");
        assert!(office.matches(at("2026-11-27T11:00:00Z")), "Friday 11:00");
        assert!(
            !office.matches(at("2026-11-27T10:00:00Z")),
            "10 is not in 9-17/2"
        );
        assert!(!office.matches(at("2026-11-28T11:00:00Z")), "Saturday");
        let sundays = cron("30 3 * * 7");
        assert!(sundays.matches(at("2026-11-29T03:30:00Z")), "7 is Sunday");
        let list = cron("0 0 1,15 * *");
        assert!(list.matches(at("2026-12-15T00:00:00Z")));
        assert!(!list.matches(at("2026-12-14T00:00:00Z")));
    }

    #[test]
    fn restricted_day_fields_match_either_like_cron() {
        let either = cron("0 0 13 * 5");
        assert!(either.matches(at("2026-11-13T00:00:00Z")), "the 13th");
        assert!(either.matches(at("2026-11-27T00:00:00Z")), "a Friday");
        assert!(!either.matches(at("2026-11-26T00:00:00Z")));
    }

    #[test]
    fn bad_schedules_say_which_field_is_wrong() {
        for (text, problem) in [
            ("* * * *", "4 fields, want 5"),
            ("60 * * * *", "minute: \"60\" is not a number from 0 to 59"),
            (
                "* * 0 * *",
                "day of month: \"0\" is not a number from 1 to 31",
            ),
            ("*/0 * * * *", "minute: bad step \"0\""),
            (
                "5/2 * * * *",
                "minute: a step needs '*' or a range: \"5/2\"",
            ),
            ("* 10-2 * * *", "hour: empty range \"10-2\""),
        ] {
            let err = text.parse::<Cron>().expect_err(text);
            assert!(err.to_string().ends_with(problem), "{text}: {err}");
        }
    }

    #[test]
    fn the_due_slot_is_the_latest_within_the_deadline() {
        let nightly = cron("0 3 * * *");
        assert_eq!(
            nightly.due(at("2026-11-28T03:00:42Z")),
            Some(at("2026-11-28T03:00:00Z"))
        );
        assert_eq!(
            nightly.due(at("2026-11-28T03:59:59Z")),
            Some(at("2026-11-28T03:00:00Z"))
        );
        assert_eq!(
            nightly.due(at("2026-11-28T04:01:00Z")),
            None,
            "past the deadline"
        );
        assert_eq!(nightly.due(at("2026-11-28T02:59:59Z")), None, "not yet");
    }

    #[test]
    fn a_slot_has_one_backup_name() {
        assert_eq!(
            backup_name("fcloud", at("2026-11-28T03:00:00Z")),
            "fcloud-202611280300"
        );
    }
}
