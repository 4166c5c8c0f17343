//! Building the cloud's status. Conditions keep their `lastTransitionTime` unless their status
//! flips, so an unchanged cloud produces an identical status and costs no write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::api::{UpgradePhase, UpgradeStatus, condition};

/// One condition as the reconcile sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    /// Condition type.
    pub type_: &'static str,
    /// True or false.
    pub status: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl Cond {
    /// A condition.
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// Turns the reconcile's conditions into API conditions, keeping the transition time of each
/// condition whose status did not change.
pub fn conditions(
    previous: &[Condition],
    wanted: &[Cond],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    wanted
        .iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" }.to_owned();
            let last_transition_time = previous
                .iter()
                .find(|p| p.type_ == c.type_ && p.status == status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: c.type_.to_owned(),
                status,
                reason: c.reason.to_owned(),
                message: c.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// What the headline conditions are derived from.
#[derive(Clone, Debug)]
pub struct Health<'a> {
    /// `spec.version`.
    pub version: &'a str,
    /// The rollout decided for this reconcile.
    pub upgrade: Option<&'a UpgradeStatus>,
    /// Every workload exists, runs its target tag and is settled.
    pub settled: bool,
    /// Components that are not ready.
    pub not_ready: Vec<String>,
    /// A problem found in this reconcile: (reason, message).
    pub degraded: Option<(&'static str, String)>,
    /// Whether DNS counts as ready.
    pub dns_ready: bool,
    /// The DNSReady condition's message.
    pub dns_message: &'a str,
}

/// UpgradeBlocked, Progressing, Degraded and Ready from the reconcile's findings, and whether
/// the cloud is Ready.
pub fn headline(h: &Health<'_>) -> (Vec<Cond>, bool) {
    let phase = h.upgrade.map(|u| u.phase);
    let blocked = phase == Some(UpgradePhase::Blocked);
    // Held by a gate before it started: the cloud runs its previous version, unchanged.
    let waiting = phase == Some(UpgradePhase::Waiting);
    // A step missed its gate and the rollout moves, or has moved, back (onFailure: Rollback).
    let rolling_back = phase == Some(UpgradePhase::RollingBack);
    let rolled_back = phase == Some(UpgradePhase::RolledBack);
    let upgrading = phase.is_some_and(|p| {
        !matches!(
            p,
            UpgradePhase::Complete
                | UpgradePhase::Blocked
                | UpgradePhase::RollingBack
                | UpgradePhase::RolledBack
        )
    });
    let upgrade_message = h
        .upgrade
        .and_then(|u| u.message.clone())
        .unwrap_or_default();
    // What Ready=False names: the components not ready, else the rollout step, else the
    // problem that holds a cloud whose components all run (e.g. its credentials were lost).
    let waiting_for = if !h.not_ready.is_empty() {
        h.not_ready.join(", ")
    } else if let (true, Some((reason, message))) = (upgrade_message.is_empty(), &h.degraded) {
        format!("{reason}: {message}")
    } else {
        upgrade_message.clone()
    };
    let ready = h.settled
        && !blocked
        && !upgrading
        && !rolling_back
        && !rolled_back
        && h.degraded.is_none()
        && h.dns_ready;
    let conds = vec![
        if rolled_back {
            Cond::new(
                condition::UPGRADE_BLOCKED,
                true,
                "RolledBack",
                upgrade_message.clone(),
            )
        } else if blocked {
            Cond::new(
                condition::UPGRADE_BLOCKED,
                true,
                "HealthTimeout",
                upgrade_message.clone(),
            )
        } else {
            Cond::new(
                condition::UPGRADE_BLOCKED,
                false,
                "NotBlocked",
                "no rollout is blocked",
            )
        },
        if rolling_back {
            Cond::new(
                condition::PROGRESSING,
                true,
                "RollingBack",
                upgrade_message.clone(),
            )
        } else if waiting {
            Cond::new(
                condition::PROGRESSING,
                true,
                "UpgradeWaiting",
                upgrade_message.clone(),
            )
        } else if upgrading {
            Cond::new(
                condition::PROGRESSING,
                true,
                "Upgrading",
                upgrade_message.clone(),
            )
        } else if !h.settled && !blocked && !rolled_back {
            Cond::new(
                condition::PROGRESSING,
                true,
                "RollingOut",
                format!("waiting for: {waiting_for}"),
            )
        } else {
            Cond::new(
                condition::PROGRESSING,
                false,
                "Stable",
                "nothing is rolling out",
            )
        },
        match &h.degraded {
            Some((reason, message)) => {
                Cond::new(condition::DEGRADED, true, reason, message.clone())
            }
            None if rolling_back => Cond::new(
                condition::DEGRADED,
                true,
                "RollingBack",
                upgrade_message.clone(),
            ),
            None if rolled_back => Cond::new(
                condition::DEGRADED,
                true,
                "RolledBack",
                upgrade_message.clone(),
            ),
            None if blocked => Cond::new(
                condition::DEGRADED,
                true,
                "UpgradeBlocked",
                upgrade_message.clone(),
            ),
            None => Cond::new(condition::DEGRADED, false, "Healthy", "no problems found"),
        },
        if ready {
            Cond::new(
                condition::READY,
                true,
                "Ready",
                format!("every component runs {} and is ready", h.version),
            )
        } else if waiting && h.degraded.is_none() {
            Cond::new(
                condition::READY,
                false,
                "UpgradeWaiting",
                format!("{} has not started: {upgrade_message}", h.version),
            )
        } else if rolled_back && h.degraded.is_none() {
            Cond::new(
                condition::READY,
                false,
                "RolledBack",
                upgrade_message.clone(),
            )
        } else if h.settled && !h.dns_ready {
            Cond::new(condition::READY, false, "DNSNotReady", h.dns_message)
        } else {
            Cond::new(
                condition::READY,
                false,
                "NotReady",
                format!("not ready: {waiting_for}"),
            )
        },
    ];
    (conds, ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(upgrade: Option<&UpgradeStatus>) -> Health<'_> {
        Health {
            version: "v2",
            upgrade,
            settled: true,
            not_ready: Vec::new(),
            degraded: None,
            dns_ready: true,
            dns_message: "published",
        }
    }

    fn find<'a>(conds: &'a [Cond], type_: &str) -> &'a Cond {
        conds
            .iter()
            .find(|c| c.type_ == type_)
            .expect("condition present")
    }

    fn upgrade(phase: UpgradePhase) -> UpgradeStatus {
        UpgradeStatus {
            component: Some("bynamo".into()),
            message: Some("bynamo did not become ready".into()),
            ..UpgradeStatus::new(Some("v1".into()), "v2", phase)
        }
    }

    #[test]
    fn healthy_cloud_is_ready_and_stable() {
        let (conds, ready) = headline(&health(None));
        assert!(ready);
        assert!(find(&conds, condition::READY).status);
        assert!(!find(&conds, condition::PROGRESSING).status);
        assert!(!find(&conds, condition::DEGRADED).status);
        assert!(!find(&conds, condition::UPGRADE_BLOCKED).status);
    }

    #[test]
    fn a_degraded_settled_cloud_says_why_it_is_not_ready() {
        // Every component runs and is ready, but the cloud is Degraded (its credentials Secret
        // was deleted): Ready=False must name the reason, not end at "not ready: ".
        let lost = health(None);
        let lost = Health {
            degraded: Some((
                "CredentialsLost",
                "Secret fcloud-mysql-credentials is gone".into(),
            )),
            ..lost
        };
        let (conds, ready) = headline(&lost);
        assert!(!ready);
        let message = &find(&conds, condition::READY).message;
        assert!(
            message.contains("CredentialsLost")
                && message.contains("fcloud-mysql-credentials is gone"),
            "{message}"
        );
    }

    #[test]
    fn blocked_upgrade_is_degraded_and_not_ready() {
        let blocked = upgrade(UpgradePhase::Blocked);
        let (conds, ready) = headline(&health(Some(&blocked)));
        assert!(!ready);
        let b = find(&conds, condition::UPGRADE_BLOCKED);
        assert!(b.status && b.reason == "HealthTimeout" && b.message.contains("bynamo"));
        assert_eq!(find(&conds, condition::DEGRADED).reason, "UpgradeBlocked");
        assert!(
            !find(&conds, condition::PROGRESSING).status,
            "a blocked rollout is not progressing"
        );
    }

    #[test]
    fn upgrading_is_progressing_and_not_ready() {
        let rolling = upgrade(UpgradePhase::Nodes);
        let (conds, ready) = headline(&health(Some(&rolling)));
        assert!(!ready);
        assert_eq!(find(&conds, condition::PROGRESSING).reason, "Upgrading");
        let done = upgrade(UpgradePhase::Complete);
        assert!(
            headline(&health(Some(&done))).1,
            "a completed rollout does not hold Ready back"
        );
    }

    #[test]
    fn a_rollback_is_progressing_then_rolled_back_and_degraded() {
        let back = upgrade(UpgradePhase::RollingBack);
        let (conds, ready) = headline(&health(Some(&back)));
        assert!(!ready);
        assert_eq!(find(&conds, condition::PROGRESSING).reason, "RollingBack");
        assert_eq!(find(&conds, condition::DEGRADED).reason, "RollingBack");
        let done = upgrade(UpgradePhase::RolledBack);
        let mut h = health(Some(&done));
        // The cloud runs v1 while spec.version asks for v2: not settled on its targets.
        h.settled = false;
        let (conds, ready) = headline(&h);
        assert!(!ready);
        assert_eq!(find(&conds, condition::READY).reason, "RolledBack");
        assert_eq!(find(&conds, condition::DEGRADED).reason, "RolledBack");
        assert_eq!(
            find(&conds, condition::UPGRADE_BLOCKED).reason,
            "RolledBack"
        );
        assert!(
            !find(&conds, condition::PROGRESSING).status,
            "a finished rollback is not progressing"
        );
    }

    #[test]
    fn dns_and_problems_hold_ready_back_with_their_reason() {
        let mut h = health(None);
        h.dns_ready = false;
        let (conds, ready) = headline(&h);
        assert!(!ready);
        assert_eq!(find(&conds, condition::READY).reason, "DNSNotReady");
        let mut h = health(None);
        h.degraded = Some(("MissingSecret", "Secret x does not exist".into()));
        let (conds, ready) = headline(&h);
        assert!(!ready);
        assert_eq!(find(&conds, condition::DEGRADED).reason, "MissingSecret");
        let mut h = health(None);
        h.settled = false;
        h.not_ready = vec!["node".into()];
        let (conds, _) = headline(&h);
        assert_eq!(
            find(&conds, condition::PROGRESSING).message,
            "waiting for: node"
        );
    }

    #[test]
    fn transition_time_is_kept_while_status_holds() {
        let t0 = Timestamp::from_second(1_700_000_000).expect("t0");
        let t1 = Timestamp::from_second(1_700_000_100).expect("t1");
        let first = conditions(
            &[],
            &[Cond::new("Ready", false, "Creating", "x")],
            Some(1),
            t0,
        );
        let same = conditions(
            &first,
            &[Cond::new("Ready", false, "Creating", "y")],
            Some(1),
            t1,
        );
        assert_eq!(same[0].last_transition_time, Time(t0));
        let flipped = conditions(
            &same,
            &[Cond::new("Ready", true, "Ready", "z")],
            Some(1),
            t1,
        );
        assert_eq!(flipped[0].last_transition_time, Time(t1));
    }
}
