//! Gates in front of a rollout: maintenance windows, fleet rings and the operator-wide limit on
//! concurrent upgrades. Pure: the clock, the fleet and the number of upgrades in flight are
//! observed; the rollout state machine applies the resulting [`Hold`].

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::api::{MaintenanceWindow, Weekday, validate};

/// Why a rollout may not move now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hold {
    /// A new rollout may not start; one already running carries on (rings, the concurrency
    /// limit: what they protect is decided at the start).
    Start {
        /// CamelCase reason for the condition.
        reason: &'static str,
        /// What it waits for, for a person.
        message: String,
    },
    /// Outside every maintenance window: nothing starts, and a running rollout finishes the
    /// step in flight, then waits.
    Window {
        /// When the next window opens.
        opens_at: Timestamp,
        /// What it waits for, for a person.
        message: String,
    },
}

impl Hold {
    /// The message for status.
    pub fn message(&self) -> &str {
        match self {
            Self::Start { message, .. } | Self::Window { message, .. } => message,
        }
    }
}

const DAY: i64 = 86_400;
const WEEK: i64 = 7 * DAY;

fn weekday_index(day: Weekday) -> i64 {
    match day {
        Weekday::Mon => 0,
        Weekday::Tue => 1,
        Weekday::Wed => 2,
        Weekday::Thu => 3,
        Weekday::Fri => 4,
        Weekday::Sat => 5,
        Weekday::Sun => 6,
    }
}

/// Seconds after midnight of an `HH:MM` start; `None` when malformed (the schema refuses it).
fn start_seconds(start: &str) -> Option<i64> {
    let (h, m) = start.split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some(h * 3600 + m * 60)
}

/// The opening intervals (unix seconds) of `window` that start within a week either side of
/// `now`.
fn openings(window: &MaintenanceWindow, now: i64) -> Vec<(i64, i64)> {
    let (Some(start), Some(length)) = (
        start_seconds(&window.start),
        validate::parse_duration(&window.duration).and_then(|d| i64::try_from(d.as_secs()).ok()),
    ) else {
        return Vec::new();
    };
    let length = length.min(WEEK);
    let today = now.div_euclid(DAY);
    (-8..=8)
        .map(|offset| today + offset)
        // 1970-01-01 was a Thursday (index 3 with Monday as 0).
        .filter(|day| {
            window.days.is_empty()
                || window
                    .days
                    .iter()
                    .any(|d| weekday_index(*d) == (day + 3).rem_euclid(7))
        })
        .map(|day| (day * DAY + start, day * DAY + start + length))
        .collect()
}

/// Whether a maintenance window is open at `now`; `Err(opens_at)` when every window is closed.
/// No windows: always open.
pub fn window_open(windows: &[MaintenanceWindow], now: Timestamp) -> Result<(), Timestamp> {
    if windows.is_empty() {
        return Ok(());
    }
    let t = now.as_second();
    let all: Vec<(i64, i64)> = windows.iter().flat_map(|w| openings(w, t)).collect();
    if all.iter().any(|(from, to)| (*from..*to).contains(&t)) {
        return Ok(());
    }
    let next = all
        .iter()
        .map(|(from, _)| *from)
        .filter(|from| *from > t)
        .min()
        .unwrap_or(t + WEEK);
    Err(Timestamp::from_second(next).unwrap_or(now))
}

/// Another cloud of the fleet, as the ring gate sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetMember {
    /// `namespace/name`.
    pub cloud: String,
    /// Its ring.
    pub ring: Option<i32>,
    /// Its `spec.version`.
    pub version: String,
    /// The version it runs everywhere (`status.currentVersion`).
    pub current_version: Option<String>,
    /// Ready=True for its current spec.
    pub ready: bool,
    /// Its rollout to `version` is blocked.
    pub blocked: bool,
}

/// What the gates look at besides the cloud's own spec.
#[derive(Clone, Debug)]
pub struct GateInput<'a> {
    /// The clock reading.
    pub now: Timestamp,
    /// `spec.upgrade.windows`.
    pub windows: &'a [MaintenanceWindow],
    /// `spec.upgrade.ring`.
    pub ring: Option<i32>,
    /// `spec.version`.
    pub version: &'a str,
    /// Every other cloud the operator manages.
    pub fleet: &'a [FleetMember],
    /// The operator-wide limit on clouds upgrading at once, when set.
    pub max_concurrent: Option<usize>,
    /// Whether this cloud holds one of those slots (it is upgrading, or was just admitted).
    pub has_slot: bool,
}

/// The hold on the cloud's rollout, if any. The window comes first (nothing moves outside
/// it), then the rings, then the concurrency limit.
pub fn hold(input: &GateInput<'_>) -> Option<Hold> {
    if let Err(opens_at) = window_open(input.windows, input.now) {
        return Some(Hold::Window {
            opens_at,
            message: format!("outside the maintenance windows: the next opens at {opens_at}"),
        });
    }
    if let Some(ring) = input.ring.filter(|r| *r > 0) {
        let earlier = input
            .fleet
            .iter()
            .filter(|m| m.ring.is_some_and(|r| r < ring) && m.version == input.version);
        let mut waiting = Vec::new();
        for member in earlier {
            if member.blocked {
                return Some(Hold::Start {
                    reason: "RingHalted",
                    message: format!(
                        "{} (ring {}) failed its upgrade to {}: later rings do not start it",
                        member.cloud,
                        member.ring.unwrap_or_default(),
                        input.version
                    ),
                });
            }
            if !(member.ready && member.current_version.as_deref() == Some(input.version)) {
                waiting.push(member.cloud.clone());
            }
        }
        if !waiting.is_empty() {
            let shown = waiting
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            let more = waiting.len().saturating_sub(5);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            return Some(Hold::Start {
                reason: "WaitingForRing",
                message: format!(
                    "waiting for the earlier rings to run {} and be Ready: {shown}{more}",
                    input.version
                ),
            });
        }
    }
    if let Some(max) = input.max_concurrent.filter(|_| !input.has_slot) {
        return Some(Hold::Start {
            reason: "UpgradeQueued",
            message: format!(
                "{max} cloud(s) are upgrading already (the operator's --max-concurrent-upgrades); this one starts when one finishes"
            ),
        });
    }
    None
}

/// How long a held cloud waits before looking again: until its window opens, or a short while
/// for rings and the queue (the clouds it waits for are not its children, so nothing wakes
/// it).
pub fn recheck(hold: &Hold, now: Timestamp) -> Duration {
    match hold {
        Hold::Window { opens_at, .. } => {
            let left = opens_at.as_second().saturating_sub(now.as_second());
            Duration::from_secs(u64::try_from(left).unwrap_or(0))
                .clamp(Duration::from_secs(5), Duration::from_secs(300))
        }
        Hold::Start { .. } => Duration::from_secs(15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-28 is a Saturday.
    fn sat(hh: i64, mm: i64) -> Timestamp {
        Timestamp::from_second(1_795_824_000 + hh * 3600 + mm * 60).expect("valid")
    }

    fn window(days: &[Weekday], start: &str, duration: &str) -> MaintenanceWindow {
        MaintenanceWindow {
            days: days.to_vec(),
            start: start.into(),
            duration: duration.into(),
        }
    }

    #[test]
    fn the_reference_day_is_a_saturday() {
        assert_eq!(sat(0, 0).to_string(), "2026-11-28T00:00:00Z");
        let only_saturday = [window(&[Weekday::Sat], "00:00", "24h")];
        assert_eq!(window_open(&only_saturday, sat(12, 0)), Ok(()));
        let only_friday = [window(&[Weekday::Fri], "00:00", "24h")];
        assert!(window_open(&only_friday, sat(12, 0)).is_err());
    }

    #[test]
    fn windows_table() {
        type Case = (
            &'static str,
            Vec<MaintenanceWindow>,
            Timestamp,
            Result<(), Timestamp>,
        );
        let cases: Vec<Case> = vec![
            ("no windows: always open", vec![], sat(12, 0), Ok(())),
            (
                "inside a daily window",
                vec![window(&[], "02:00", "4h")],
                sat(3, 0),
                Ok(()),
            ),
            (
                "after today's window: tomorrow's",
                vec![window(&[], "02:00", "4h")],
                sat(6, 0),
                Err(sat(26, 0)),
            ),
            (
                "the end is exclusive",
                vec![window(&[], "02:00", "4h")],
                sat(5, 59),
                Ok(()),
            ),
            (
                "a window from Friday 22:00 spans midnight into Saturday",
                vec![window(&[Weekday::Fri], "22:00", "4h")],
                sat(1, 30),
                Ok(()),
            ),
            (
                "weekdays only, seen on Saturday: Monday",
                vec![window(
                    &[
                        Weekday::Mon,
                        Weekday::Tue,
                        Weekday::Wed,
                        Weekday::Thu,
                        Weekday::Fri,
                    ],
                    "01:00",
                    "2h",
                )],
                sat(12, 0),
                Err(sat(48 + 1, 0)),
            ),
            (
                "the earliest of several",
                vec![
                    window(&[Weekday::Sun], "03:00", "1h"),
                    window(&[Weekday::Sat], "20:30", "30m"),
                ],
                sat(12, 0),
                Err(sat(20, 30)),
            ),
        ];
        for (name, windows, now, expected) in cases {
            assert_eq!(window_open(&windows, now), expected, "{name}");
        }
    }

    fn member(cloud: &str, ring: i32, version: &str, current: &str, ready: bool) -> FleetMember {
        FleetMember {
            cloud: cloud.into(),
            ring: Some(ring),
            version: version.into(),
            current_version: Some(current.into()),
            ready,
            blocked: false,
        }
    }

    fn input<'a>(ring: Option<i32>, fleet: &'a [FleetMember]) -> GateInput<'a> {
        GateInput {
            now: sat(12, 0),
            windows: &[],
            ring,
            version: "v2",
            fleet,
            max_concurrent: None,
            has_slot: false,
        }
    }

    fn reason(hold: Option<Hold>) -> Option<&'static str> {
        hold.map(|h| match h {
            Hold::Start { reason, .. } => reason,
            Hold::Window { .. } => "Window",
        })
    }

    #[test]
    fn rings_table() {
        let done = member("a/canary", 0, "v2", "v2", true);
        let moving = member("a/canary", 0, "v2", "v1", false);
        let other_version = member("a/canary", 0, "v3", "v1", false);
        let later = member("b/late", 2, "v2", "v1", true);
        let blocked = FleetMember {
            blocked: true,
            ..moving.clone()
        };
        type Case = (
            &'static str,
            Option<i32>,
            Vec<FleetMember>,
            Option<&'static str>,
        );
        let cases: Vec<Case> = vec![
            ("no ring never waits", None, vec![moving.clone()], None),
            ("ring 0 never waits", Some(0), vec![moving.clone()], None),
            (
                "ring 1 after a Ready canary",
                Some(1),
                vec![done.clone()],
                None,
            ),
            (
                "ring 1 waits for a canary still moving",
                Some(1),
                vec![done.clone(), moving.clone()],
                Some("WaitingForRing"),
            ),
            (
                "a blocked canary halts the later rings",
                Some(1),
                vec![blocked.clone()],
                Some("RingHalted"),
            ),
            (
                "a canary asked for another version is not waited for",
                Some(1),
                vec![other_version],
                None,
            ),
            ("later rings are not waited for", Some(1), vec![later], None),
            (
                "ring 2 waits for ring 0 too",
                Some(2),
                vec![moving],
                Some("WaitingForRing"),
            ),
        ];
        for (name, ring, fleet, expected) in cases {
            assert_eq!(reason(hold(&input(ring, &fleet))), expected, "{name}");
        }
    }

    #[test]
    fn the_queue_holds_only_clouds_without_a_slot() {
        let fleet = [];
        let queued = GateInput {
            max_concurrent: Some(2),
            ..input(None, &fleet)
        };
        assert_eq!(reason(hold(&queued)), Some("UpgradeQueued"));
        let admitted = GateInput {
            has_slot: true,
            ..queued
        };
        assert_eq!(reason(hold(&admitted)), None);
    }

    #[test]
    fn the_window_comes_first_and_sets_the_recheck() {
        let windows = [window(&[], "13:00", "1h")];
        let fleet = [];
        let closed = GateInput {
            windows: &windows,
            max_concurrent: Some(1),
            ..input(Some(1), &fleet)
        };
        let h = hold(&closed).expect("held");
        assert_eq!(reason(Some(h.clone())), Some("Window"));
        assert_eq!(recheck(&h, sat(12, 0)), Duration::from_secs(300));
        assert_eq!(recheck(&h, sat(12, 59)), Duration::from_secs(60));
    }
}
