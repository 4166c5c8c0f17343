//! The conclusion of a reconcile: status, conditions, events, finalizer release and requeue,
//! from what acting did.

use std::time::Duration;

use kube::ResourceExt;

use super::{Acted, Conclusion, Note, Plan};
use crate::api::validate::InvalidCloud;
use crate::api::{InSyncCloud, InSyncCloudStatus, UpgradePhase, UpgradeStatus, condition};
use crate::controller::backups;
use crate::controller::dns::FINALIZER;
use crate::controller::finalizer;
use crate::controller::gate::{self};
use crate::controller::observe::Observation;
use crate::controller::restore::Gate;
use crate::controller::status::{self, Cond};

/// The status of a cloud whose spec is invalid: nothing is applied until it is fixed.
pub fn refuse(cloud: &InSyncCloud, invalid: &InvalidCloud, seen: &Observation) -> Conclusion {
    let previous = cloud.status.clone().unwrap_or_default();
    let message = invalid.to_string();
    let conds = [
        Cond::new(
            condition::READY,
            false,
            "InvalidSpec",
            "the spec is invalid; see the Degraded condition",
        ),
        Cond::new(
            condition::PROGRESSING,
            false,
            "InvalidSpec",
            "nothing is applied until the spec is fixed",
        ),
        Cond::new(condition::DEGRADED, true, "InvalidSpec", message.clone()),
    ];
    let mut status = carried_over(cloud, &previous);
    status.conditions = status::conditions(
        &previous.conditions,
        &conds,
        cloud.metadata.generation,
        seen.now,
    );
    Conclusion {
        status,
        notes: vec![Note::warning("InvalidSpec", message)],
        remove_finalizer: None,
        requeue: Duration::from_secs(300),
        error: None,
    }
}

/// The parts of the previous status a reconcile starts from.
fn carried_over(cloud: &InSyncCloud, previous: &InSyncCloudStatus) -> InSyncCloudStatus {
    InSyncCloudStatus {
        observed_generation: cloud.metadata.generation,
        target_version: Some(cloud.spec.version.clone()),
        conditions: Vec::new(),
        ..previous.clone()
    }
}

/// Turns what acting did into the status, events, finalizer release and requeue.
pub fn conclude(cloud: &InSyncCloud, seen: &Observation, plan: &Plan, acted: Acted) -> Conclusion {
    let previous = cloud.status.clone().unwrap_or_default();
    let mut status = carried_over(cloud, &previous);
    let mut notes = Vec::new();
    let mut conds = Vec::new();
    let mut degraded: Option<(&'static str, String)> = None;
    let mut error = None;
    let mut credentials_lost = false;

    if !seen.missing_secrets.is_empty() {
        let namespace = cloud.cloud_namespace();
        let message = seen
            .missing_secrets
            .iter()
            .map(|(field, secret)| format!("{field}: Secret {namespace}/{secret} does not exist"))
            .collect::<Vec<_>>()
            .join("; ");
        degraded = Some(("MissingSecret", message));
    }

    conds.push(if cloud.spec.paused {
        Cond::new(
            condition::PAUSED,
            true,
            "Paused",
            "spec.paused is true: the operator makes no changes to this cloud",
        )
    } else {
        Cond::new(
            condition::PAUSED,
            false,
            "Active",
            "the operator manages this cloud",
        )
    });

    match acted.apply {
        None => {}
        Some(Ok(mut report)) => {
            notes.extend(listing("Applied", "applied", "", &report.applied));
            notes.extend(listing(
                "Pruned",
                "deleted",
                " the cloud no longer needs",
                &report.pruned,
            ));
            if !report.withheld.is_empty() {
                notes.push(Note::warning("CredentialsLost", report.withheld.join("; ")));
                credentials_lost = true;
            }
            if !report.failed.is_empty() {
                let message = report
                    .failed
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                notes.push(Note::warning("ApplyFailed", message.clone()));
                degraded = Some(("ApplyFailed", message));
                error = Some(report.failed.remove(0));
            }
            // Above a failed write: acting on it is what unblocks the datastore.
            if credentials_lost {
                degraded = Some(("CredentialsLost", report.withheld.join("; ")));
            }
        }
        Some(Err(e)) => {
            notes.push(Note::warning("ApplyFailed", e.to_string()));
            degraded = Some(("ApplyFailed", e.to_string()));
            error = Some(e);
        }
    }

    // DNS and endpoint.
    let dns = acted.dns;
    status.endpoint = dns.endpoint.clone().or(status.endpoint);
    status.dns_zones = dns.zones.clone();
    conds.push(dns.condition.clone());
    if let Some((reason, message)) = &dns.warning {
        notes.push(Note::warning(reason, message.clone()));
    }
    let remove_finalizer = dns
        .release_finalizer
        .then(|| finalizer::remove(cloud.finalizers(), FINALIZER))
        .flatten();

    // Versions, components and the headline conditions.
    let upgrade = plan.rollout.upgrade.as_ref();
    status.components = plan.observed.components(&plan.targets);
    status.upgrade = plan.rollout.upgrade.clone();
    // While a restore holds the cloud back nothing of it runs: not "settled", whatever the
    // (empty) list of targets says.
    let settled = plan.restore.gate == Gate::Open && plan.observed.all_settled(&plan.targets);
    if settled {
        status.current_version = Some(cloud.spec.version.clone());
    }
    let not_ready: Vec<String> = status
        .components
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.clone())
        .collect();
    let (headline, ready) = status::headline(&status::Health {
        version: &cloud.spec.version,
        upgrade,
        settled,
        not_ready,
        degraded,
        dns_ready: dns.ready,
        dns_message: &dns.condition.message,
    });
    conds.extend(headline);
    let was_ready = previous
        .conditions
        .iter()
        .any(|c| c.type_ == condition::READY && c.status == "True");
    if ready && !was_ready {
        notes.push(Note::normal(
            "Ready",
            format!("cloud is ready at {}", cloud.spec.version),
        ));
    }
    // The restore's conditions (Restored, and Ready and Progressing while it holds the cloud)
    // and the backups' (BackupHealthy, BackupScheduled) stand above the headline's.
    if let Some(restore) = &plan.restore.status {
        status.restore = Some(restore.clone());
        overlay(&mut conds, plan.restore.conditions.iter().cloned());
    }
    let (backup, backup_conds) = backups::health(cloud, &seen.backups, seen.now);
    if backup.is_some() {
        status.backup = backup;
    }
    overlay(&mut conds, backup_conds);
    status.conditions = status::conditions(
        &previous.conditions,
        &conds,
        cloud.metadata.generation,
        seen.now,
    );

    let requeue = if credentials_lost {
        // Neither restoring the Secret nor deleting the claims wakes the cloud (neither is
        // owned by it): look again soon.
        Duration::from_secs(30)
    } else {
        // Only a Ready cloud waits long: a missing Secret created later, for one, wakes
        // nothing (it is not the cloud's child).
        let wake = next_wake(upgrade, plan.health_timeout, seen, ready);
        // What a held cloud waits for is no child of it: look again when it may have changed.
        match &plan.hold {
            Some(hold) => wake.min(gate::recheck(hold, seen.now)),
            None => wake,
        }
    };
    let requeue = plan.restore.requeue.map_or(requeue, |r| requeue.min(r));
    Conclusion {
        status,
        notes,
        remove_finalizer,
        requeue,
        error,
    }
}

/// Puts each of `over` in the place of the condition of its type, or after the others.
fn overlay(conds: &mut Vec<Cond>, over: impl IntoIterator<Item = Cond>) {
    for cond in over {
        match conds.iter_mut().find(|c| c.type_ == cond.type_) {
            Some(existing) => *existing = cond,
            None => conds.push(cond),
        }
    }
}

/// When to look at the cloud again without being woken. Child changes and DNS status changes
/// wake the cloud anyway, so the timer only has to catch a rollout step's health deadline
/// (then it fires right at the deadline) and otherwise serves as a safety net. A short fixed
/// timer here multiplied reconciles on a busy cluster for nothing.
pub(super) fn next_wake(
    upgrade: Option<&UpgradeStatus>,
    health_timeout: Duration,
    seen: &Observation,
    steady: bool,
) -> Duration {
    let rolling = upgrade.filter(|u| {
        !matches!(u.phase, UpgradePhase::Complete | UpgradePhase::Blocked) && u.paused_at.is_none()
    });
    if let Some(started) = rolling.and_then(|u| u.step_started_at.as_ref()) {
        let waited = seen.now.duration_since(started.0).unsigned_abs();
        let left = health_timeout.saturating_sub(waited);
        return left.clamp(Duration::from_secs(2), Duration::from_secs(60));
    }
    if steady {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(60)
    }
}

/// The event listing what a write pass did to `items` ("applied 3 object(s): ..."), none when
/// it did nothing.
fn listing(reason: &'static str, verb: &str, why: &str, items: &[String]) -> Option<Note> {
    if items.is_empty() {
        return None;
    }
    let mut shown = items.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 8 {
        shown.push_str(&format!(" and {} more", items.len() - 8));
    }
    let message = format!("{verb} {} object(s){why}: {shown}", items.len());
    Some(Note::normal(reason, message))
}
