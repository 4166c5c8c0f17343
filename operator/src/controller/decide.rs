//! Decide: from what was observed to what to do ([`plan`]), and from what was done to what to
//! report ([`conclude`]). Pure: no client and no clock (the clock reading is part of the
//! observation), so every branch is table-tested below.
//!
//! A reconcile is `observe → plan → act → conclude → record`: the status a reconcile writes
//! depends on what its writes did (a refused object, withheld credentials, the DNS syncer's
//! answer), so deciding comes in two halves around acting.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::apply::ApplyReport;
use super::backup;
use super::dns::{self as dns_step, DnsIntent, DnsOutcome, FINALIZER};
use super::error::Error;
use super::finalizer;
use super::gate::{self, GateInput, Hold};
use super::observe::{Observation, Observed, targets, version_change};
use super::restore::{self, Gate};
use super::rollout::{self, RolloutDecision, RolloutInput, TargetWorkload};
use super::status::{self, Cond};
use crate::api::validate::{self, InvalidCloud};
use crate::api::{InSyncCloud, InSyncCloudStatus, UpgradePhase, UpgradeStatus, condition};
use crate::dns::AllowList;
use crate::render::{self, Desired, RenderOptions};

/// An event to publish on the cloud.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Normal or Warning.
    pub type_: EventType,
    /// CamelCase reason.
    pub reason: &'static str,
    /// What happened, for a person.
    pub message: String,
}

impl Note {
    pub(super) fn normal(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            type_: EventType::Normal,
            reason,
            message: message.into(),
        }
    }

    pub(super) fn warning(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            type_: EventType::Warning,
            reason,
            message: message.into(),
        }
    }
}

/// The operator-wide settings a decision depends on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Settings<'a> {
    /// The DNS allow-list when the operator publishes to Route53, `None` when it runs without.
    pub dns: Option<&'a AllowList>,
    /// The image restore Jobs run (the operator's own), `None` when the operator was not told.
    pub runner_image: Option<&'a str>,
}

/// What a reconcile of a live, valid cloud will do.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The finalizer patch to send first, when the cloud needs the DNS finalizer.
    pub add_finalizer: Option<json_patch::Patch>,
    /// Objects to apply; `None` while the cloud is paused.
    pub apply: Option<Vec<Desired>>,
    /// Whether to scan the caches for objects the cloud no longer needs.
    pub prune: bool,
    /// The rollout step.
    pub rollout: RolloutDecision,
    /// Target tag per workload.
    pub targets: BTreeMap<String, TargetWorkload>,
    /// The workloads as observed.
    pub observed: Observed,
    /// `spec.upgrade.healthTimeout`.
    pub health_timeout: Duration,
    /// The DNS step.
    pub dns: DnsIntent,
    /// Events owed before acting (a rollout step starting, blocking or completing).
    pub notes: Vec<Note>,
    /// The gate holding a version change, if any.
    pub hold: Option<Hold>,
    /// Objects to leave alone when pruning although `apply` does not list them, as
    /// `(kind, name)`: the workloads held as they are live, and the ConfigMaps live workloads
    /// mount (a held workload's pods restarting still find their own config).
    pub keep: BTreeSet<(String, String)>,
    /// The restore step: which workloads may exist yet, the restore Job to create, and
    /// `status.restore`.
    pub restore: restore::Decision,
}

/// What acting on a plan did.
#[derive(Debug)]
pub struct Acted {
    /// The apply pass, when the plan applied anything; `Err` when it could not run at all.
    pub apply: Option<Result<ApplyReport, Error>>,
    /// The DNS step's outcome.
    pub dns: DnsOutcome,
}

/// What to record after acting.
#[derive(Debug)]
pub struct Conclusion {
    /// The status to write (written only when it differs from the previous one).
    pub status: InSyncCloudStatus,
    /// Events to publish.
    pub notes: Vec<Note>,
    /// The finalizer patch that releases the cloud, when its DNS records are proven gone.
    pub remove_finalizer: Option<json_patch::Patch>,
    /// When to look again without being woken.
    pub requeue: Duration,
    /// The error to return after recording (so the error policy backs off).
    pub error: Option<Error>,
}

/// The unpinned render of a valid spec, or why the spec is refused.
pub fn wish(cloud: &InSyncCloud) -> Result<Result<Vec<Desired>, InvalidCloud>, Error> {
    if let Err(invalid) = validate::validate(cloud) {
        return Ok(Err(invalid));
    }
    Ok(Ok(render::render(cloud, &RenderOptions::default())?))
}

/// Plans the reconcile of a live cloud with a valid spec; `wished` is its unpinned render.
pub fn plan(
    settings: Settings<'_>,
    cloud: &InSyncCloud,
    wished: Vec<Desired>,
    seen: &Observation,
) -> Result<Plan, Error> {
    let previous = cloud.status.clone().unwrap_or_default();
    let add_finalizer = dns_step::wants_finalizer(settings.dns, cloud)
        .then(|| finalizer::add(cloud.finalizers(), FINALIZER))
        .flatten();

    // A cloud restored from a backup holds its workloads back until the restore is done.
    let restore = restore::decide(cloud, &seen.restore, settings.runner_image, seen.now);
    let wished = restore.gate.filter(wished);
    let targets = targets(&wished);
    let observed = Observed::new(
        seen.workloads
            .iter()
            .filter(|(id, _)| targets.contains_key(*id))
            .map(|(id, counts)| (id.clone(), counts.clone()))
            .collect(),
    );
    let health_timeout = validate::parse_duration(&cloud.spec.upgrade.health_timeout)
        .unwrap_or(Duration::from_secs(600));
    let hold = version_change(cloud)
        .then(|| {
            gate::hold(&GateInput {
                now: seen.now,
                windows: &cloud.spec.upgrade.windows,
                ring: cloud.spec.upgrade.ring,
                version: &cloud.spec.version,
                fleet: &seen.gates.fleet,
                max_concurrent: seen.gates.max_concurrent,
                has_slot: seen.gates.has_slot,
            })
        })
        .flatten();
    let rollout = rollout::decide(&RolloutInput {
        targets: &targets,
        live: &observed.live,
        recorded: previous.upgrade.as_ref(),
        current_version: previous.current_version.as_deref(),
        target_version: &cloud.spec.version,
        max_unavailable: usize::try_from(cloud.spec.upgrade.max_unavailable).unwrap_or(1),
        health_timeout,
        now: seen.now,
        paused: cloud.spec.paused,
        hold: hold.as_ref(),
        on_failure: cloud.spec.upgrade.on_failure,
        rollback_datastores: cloud.spec.upgrade.rollback_datastores,
    });
    let notes = upgrade_transition(previous.upgrade.as_ref(), rollout.upgrade.as_ref())
        .into_iter()
        .collect();

    let mut keep: BTreeSet<(String, String)> = observed
        .config_maps()
        .into_iter()
        .map(|name| ("ConfigMap".to_owned(), name))
        .collect();
    let apply = if cloud.spec.paused {
        None
    } else if rollout.pins.is_empty() {
        Some(wished)
    } else {
        let pinned = render::render(
            cloud,
            &RenderOptions {
                pinned_tags: rollout.pins.clone(),
            },
        )?;
        let (apply, held) = without_held(pinned, &rollout.pins, &observed);
        keep.extend(held);
        Some(apply)
    };
    // A finished rollout leaves the ConfigMaps of the revisions it moved away from unused:
    // look for them now, not at the next spec change.
    let finished = |u: Option<&UpgradeStatus>| u.is_some_and(|u| u.phase == UpgradePhase::Complete);
    let just_finished = finished(rollout.upgrade.as_ref()) && !finished(previous.upgrade.as_ref());
    Ok(Plan {
        add_finalizer,
        apply,
        prune: seen.needs_prune || just_finished,
        rollout,
        targets,
        observed,
        health_timeout,
        dns: dns_step::intent(settings.dns, cloud, &seen.dns),
        notes,
        hold,
        keep,
        restore,
    })
}

/// The render without the workloads the rollout holds where they are: those that exist and are
/// pinned to the tag they run. Their pods must not restart before the rollout reaches them, for
/// any change (a new config, env or resources as much as a new image), so their template is
/// not written at all and stays as it is live, the ConfigMap it mounts included. Absent
/// workloads are created pinned, and workloads rolling back are written at their old tag.
/// Returns the objects to apply and the held ones as `(kind, name)`, which pruning must leave.
fn without_held(
    rendered: Vec<Desired>,
    pins: &BTreeMap<String, String>,
    observed: &Observed,
) -> (Vec<Desired>, Vec<(String, String)>) {
    let (held, apply): (Vec<Desired>, Vec<Desired>) = rendered.into_iter().partition(|d| {
        d.workload.as_ref().is_some_and(|(_, id)| {
            pins.get(id)
                .zip(observed.live.get(id))
                .is_some_and(|(pin, live)| *pin == live.tag)
        })
    });
    let held = held
        .iter()
        .map(|d| {
            let kind = d.object.types.as_ref().map(|t| t.kind.clone());
            (kind.unwrap_or_default(), d.object.name_any())
        })
        .collect();
    (apply, held)
}

/// The event of a rollout step that started, blocked or completed.
fn upgrade_transition(
    before: Option<&UpgradeStatus>,
    after: Option<&UpgradeStatus>,
) -> Option<Note> {
    let after = after?;
    let key = |u: &UpgradeStatus| (u.to_version.clone(), u.phase, u.component.clone());
    if before.map(key) == Some(key(after)) {
        return None;
    }
    let message = after.message.clone().unwrap_or_default();
    Some(match after.phase {
        UpgradePhase::Blocked => Note::warning("UpgradeBlocked", message),
        UpgradePhase::Complete => Note::normal("UpgradeComplete", message),
        UpgradePhase::Waiting => Note::normal("UpgradeWaiting", message),
        UpgradePhase::RollingBack => Note::warning("RollingBack", message),
        UpgradePhase::RolledBack => Note::warning("RolledBack", message),
        _ => Note::normal("Upgrading", message),
    })
}

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
    let (backup, backup_conds) = backup::health(cloud, &seen.backups, seen.now);
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
fn next_wake(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::error::UnknownKind;
    use crate::controller::observe::WorkloadCounts;
    use crate::dns::AllowList;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;

    use super::super::dns::DnsObservation;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("valid")
    }

    fn fcloud() -> InSyncCloud {
        let mut cloud: InSyncCloud =
            serde_yaml::from_str(include_str!("../../../examples/fcloud.yaml")).expect("example");
        cloud.metadata.uid = Some("uid-1".into());
        cloud.metadata.generation = Some(3);
        cloud
    }

    fn wished(cloud: &InSyncCloud) -> Vec<Desired> {
        wish(cloud).expect("renders").expect("valid")
    }

    /// An observation of every workload of `cloud` settled at its target tag.
    fn settled(cloud: &InSyncCloud) -> Observation {
        let workloads = targets(&wished(cloud))
            .into_iter()
            .map(|(id, t)| {
                let counts = WorkloadCounts {
                    desired: 1,
                    ready: 1,
                    updated: 1,
                    settled: true,
                    tag: Some(t.tag),
                    revision: Some(t.revision),
                    config_maps: Vec::new(),
                };
                (id, counts)
            })
            .collect();
        Observation {
            now: at(0),
            workloads,
            missing_secrets: Vec::new(),
            dns: DnsObservation {
                frontend: None,
                known_zones: None,
            },
            needs_prune: false,
            gates: Default::default(),
            restore: Default::default(),
            backups: Vec::new(),
        }
    }

    fn dns(ready: bool, reason: &'static str) -> DnsOutcome {
        DnsOutcome {
            endpoint: Some("fcloud.drtst.org".into()),
            condition: Cond::new(condition::DNS_READY, ready, reason, "m"),
            ready,
            zones: vec!["Z1".into()],
            release_finalizer: false,
            warning: None,
        }
    }

    fn report() -> ApplyReport {
        ApplyReport::default()
    }

    fn condition_of<'a>(status: &'a InSyncCloudStatus, type_: &str) -> &'a Condition {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_} condition"))
    }

    fn reasons(notes: &[Note]) -> Vec<&'static str> {
        notes.iter().map(|n| n.reason).collect()
    }

    fn was_ready(cloud: &mut InSyncCloud) {
        cloud.status = Some(InSyncCloudStatus {
            conditions: vec![Condition {
                type_: condition::READY.into(),
                status: "True".into(),
                reason: "Ready".into(),
                message: String::new(),
                observed_generation: Some(3),
                last_transition_time: Time(at(-100)),
            }],
            ..Default::default()
        });
    }

    #[test]
    fn conclusions_table() {
        struct Case {
            name: &'static str,
            setup: fn(&mut InSyncCloud, &mut Observation),
            apply: fn() -> Option<Result<ApplyReport, Error>>,
            dns: DnsOutcome,
            ready: &'static str,
            degraded: &'static str,
            notes: Vec<&'static str>,
            requeue: u64,
            error: bool,
        }
        let cases = vec![
            Case {
                name: "a settled cloud with DNS published turns Ready, once",
                setup: |_, _| {},
                apply: || Some(Ok(report())),
                dns: dns(true, "Published"),
                ready: "True",
                degraded: "False",
                notes: vec!["Ready"],
                requeue: 300,
                error: false,
            },
            Case {
                name: "a cloud already Ready publishes no event and writes nothing new",
                setup: |c, _| was_ready(c),
                apply: || Some(Ok(report())),
                dns: dns(true, "Published"),
                ready: "True",
                degraded: "False",
                notes: vec![],
                requeue: 300,
                error: false,
            },
            Case {
                name: "DNS not published yet holds Ready back and looks again within a minute",
                setup: |_, _| {},
                apply: || Some(Ok(report())),
                dns: dns(false, "Pending"),
                ready: "False",
                degraded: "False",
                notes: vec![],
                requeue: 60,
                error: false,
            },
            Case {
                name: "a refused write is Degraded, reported, and returned for backoff",
                setup: |_, _| {},
                apply: || {
                    Some(Ok(ApplyReport {
                        failed: vec![Error::UnknownKind(UnknownKind::Unwatched(
                            "v1/Thing".into(),
                        ))],
                        ..report()
                    }))
                },
                dns: dns(true, "Published"),
                ready: "False",
                degraded: "True",
                notes: vec!["ApplyFailed"],
                // Unused: the returned error makes the error policy back off instead.
                requeue: 60,
                error: true,
            },
            Case {
                name: "withheld credentials are Degraded above a failed write and retried soon",
                setup: |_, _| {},
                apply: || {
                    Some(Ok(ApplyReport {
                        withheld: vec!["mysql data exists".into()],
                        ..report()
                    }))
                },
                dns: dns(true, "Published"),
                ready: "False",
                degraded: "True",
                notes: vec!["CredentialsLost"],
                requeue: 30,
                error: false,
            },
            Case {
                name: "a missing referenced Secret is Degraded",
                setup: |_, seen| {
                    seen.missing_secrets = vec![("spec.objectStore.s3.secretRef", "s3".into())]
                },
                apply: || Some(Ok(report())),
                dns: dns(true, "Published"),
                ready: "False",
                degraded: "True",
                notes: vec![],
                requeue: 60,
                error: false,
            },
            Case {
                name: "a workload not settled keeps the cloud Progressing, not Ready",
                setup: |_, seen| {
                    if let Some(w) = seen.workloads.get_mut("cloudmaster") {
                        w.settled = false;
                    }
                },
                apply: || Some(Ok(report())),
                dns: dns(true, "Published"),
                ready: "False",
                degraded: "False",
                notes: vec![],
                requeue: 60,
                error: false,
            },
            Case {
                name: "a paused cloud applies nothing and still reports",
                setup: |c, _| c.spec.paused = true,
                apply: || None,
                dns: dns(true, "Published"),
                ready: "True",
                degraded: "False",
                notes: vec!["Ready"],
                requeue: 300,
                error: false,
            },
        ];
        for case in cases {
            let mut cloud = fcloud();
            let mut seen = settled(&cloud);
            (case.setup)(&mut cloud, &mut seen);
            let allowed = AllowList::default();
            let settings = Settings {
                dns: Some(&allowed),
                ..Settings::default()
            };
            let plan = plan(settings, &cloud, wished(&cloud), &seen).expect("plans");
            assert_eq!(plan.apply.is_none(), cloud.spec.paused, "{}", case.name);
            let acted = Acted {
                apply: (case.apply)(),
                dns: case.dns.clone(),
            };
            let c = conclude(&cloud, &seen, &plan, acted);
            assert_eq!(
                condition_of(&c.status, condition::READY).status,
                case.ready,
                "{}: Ready",
                case.name
            );
            assert_eq!(
                condition_of(&c.status, condition::DEGRADED).status,
                case.degraded,
                "{}: Degraded",
                case.name
            );
            assert_eq!(reasons(&c.notes), case.notes, "{}: events", case.name);
            assert_eq!(
                c.requeue,
                Duration::from_secs(case.requeue),
                "{}",
                case.name
            );
            assert_eq!(c.error.is_some(), case.error, "{}: error", case.name);
            assert_eq!(c.status.observed_generation, Some(3), "{}", case.name);
        }
    }

    #[test]
    fn a_steady_cloud_concludes_to_the_status_it_already_has() {
        // Zero writes in steady state: concluding twice over the same observation must give
        // the status the first conclusion wrote, so write_status sends nothing.
        let mut cloud = fcloud();
        let seen = settled(&cloud);
        let settings = Settings::default();
        let first = {
            let plan = plan(settings, &cloud, wished(&cloud), &seen).expect("plans");
            let acted = Acted {
                apply: Some(Ok(report())),
                dns: dns(true, "Published"),
            };
            conclude(&cloud, &seen, &plan, acted)
        };
        cloud.status = Some(first.status.clone());
        let later = Observation {
            now: at(600),
            ..seen
        };
        let plan = plan(settings, &cloud, wished(&cloud), &later).expect("plans");
        let acted = Acted {
            apply: Some(Ok(report())),
            dns: dns(true, "Published"),
        };
        let second = conclude(&cloud, &later, &plan, acted);
        assert_eq!(second.status, first.status);
        assert!(second.notes.is_empty(), "{:?}", second.notes);
    }

    #[test]
    fn the_dns_finalizer_is_added_only_where_this_operator_publishes() {
        let cloud = fcloud();
        let seen = settled(&cloud);
        let everything = AllowList::default();
        let elsewhere = AllowList::parse(&["example.com"]).expect("parses");
        let with = |allowed: Option<&AllowList>| {
            plan(
                Settings {
                    dns: allowed,
                    ..Settings::default()
                },
                &cloud,
                wished(&cloud),
                &seen,
            )
            .expect("plans")
            .add_finalizer
            .is_some()
        };
        assert!(with(Some(&everything)), "route53 and allowed");
        assert!(!with(Some(&elsewhere)), "domain not allowed");
        assert!(!with(None), "operator without Route53");
        let mut finalized = fcloud();
        finalized.metadata.finalizers = Some(vec![FINALIZER.into()]);
        let plan = plan(
            Settings {
                dns: Some(&everything),
                ..Settings::default()
            },
            &finalized,
            wished(&finalized),
            &seen,
        )
        .expect("plans");
        assert!(plan.add_finalizer.is_none(), "already there");
    }

    #[test]
    fn a_released_dns_finalizer_is_removed_without_touching_others() {
        let mut cloud = fcloud();
        cloud.metadata.finalizers = Some(vec!["example.com/keep-me".into(), FINALIZER.into()]);
        let seen = settled(&cloud);
        let plan = plan(Settings::default(), &cloud, wished(&cloud), &seen).expect("plans");
        let mut outcome = dns(true, "NotConfigured");
        outcome.release_finalizer = true;
        let c = conclude(
            &cloud,
            &seen,
            &plan,
            Acted {
                apply: Some(Ok(report())),
                dns: outcome,
            },
        );
        let patch = serde_json::to_value(c.remove_finalizer.expect("released")).expect("json");
        assert_eq!(patch[1]["path"], "/metadata/finalizers/1", "{patch}");
    }

    #[test]
    fn an_invalid_spec_is_refused_with_its_reason() {
        let mut cloud = fcloud();
        cloud.spec.upgrade.health_timeout = "soon".into();
        let invalid = wish(&cloud).expect("no render error").expect_err("invalid");
        let c = refuse(&cloud, &invalid, &settled(&fcloud()));
        let degraded = condition_of(&c.status, condition::DEGRADED);
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "InvalidSpec")
        );
        assert!(
            degraded.message.contains("healthTimeout"),
            "{}",
            degraded.message
        );
        assert_eq!(reasons(&c.notes), vec!["InvalidSpec"]);
    }

    fn step(phase: UpgradePhase, started: i64) -> UpgradeStatus {
        UpgradeStatus {
            component: Some("cloudmaster".into()),
            step_started_at: Some(Time(at(started))),
            ..UpgradeStatus::new(None, "v2", phase)
        }
    }

    fn seen_at(secs: i64) -> Observation {
        Observation {
            now: at(secs),
            ..settled(&fcloud())
        }
    }

    #[test]
    fn a_rolling_step_wakes_at_its_health_deadline() {
        let timeout = Duration::from_secs(15);
        let rolling = step(UpgradePhase::CloudMaster, 0);
        assert_eq!(
            next_wake(Some(&rolling), timeout, &seen_at(5), false),
            Duration::from_secs(10)
        );
        assert_eq!(
            next_wake(Some(&rolling), timeout, &seen_at(20), false),
            Duration::from_secs(2),
            "overdue: soon"
        );
        let long = Duration::from_secs(600);
        assert_eq!(
            next_wake(Some(&rolling), long, &seen_at(0), false),
            Duration::from_secs(60),
            "capped"
        );
    }

    #[test]
    fn without_a_rolling_step_the_timer_is_only_a_safety_net() {
        let timeout = Duration::from_secs(15);
        let blocked = step(UpgradePhase::Blocked, 0);
        assert_eq!(
            next_wake(Some(&blocked), timeout, &seen_at(5), false),
            Duration::from_secs(60)
        );
        // A paused step's clock is stopped: its deadline is not coming.
        let paused = UpgradeStatus {
            paused_at: Some(Time(at(1))),
            ..step(UpgradePhase::CloudMaster, 0)
        };
        assert_eq!(
            next_wake(Some(&paused), timeout, &seen_at(500), false),
            Duration::from_secs(60)
        );
        assert_eq!(
            next_wake(None, timeout, &seen_at(5), false),
            Duration::from_secs(60)
        );
        assert_eq!(
            next_wake(None, timeout, &seen_at(5), true),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn a_resources_change_writes_only_the_step_it_reached_and_keeps_the_rest_as_they_run() {
        let mut cloud = fcloud();
        let mut seen = settled(&cloud);
        // What the live workloads mount: the ConfigMaps of the revision they run.
        for (id, counts) in &mut seen.workloads {
            counts.config_maps = vec![format!("{id}-config-old")];
        }
        cloud.status = Some(InSyncCloudStatus {
            current_version: Some(cloud.spec.version.clone()),
            ..Default::default()
        });
        cloud.spec.nodes.resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
            requests: Some(BTreeMap::from([(
                "cpu".to_owned(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("2".into()),
            )])),
            ..Default::default()
        });
        let plan = plan(Settings::default(), &cloud, wished(&cloud), &seen).expect("plans");
        let upgrade = plan.rollout.upgrade.clone().expect("a rollout");
        assert_eq!(upgrade.phase, UpgradePhase::Nodes);
        assert_eq!(upgrade.component.as_deref(), Some("node-0"));
        assert_eq!(
            upgrade.rolling["node-0"].reason.as_deref(),
            Some("resources")
        );
        let written: Vec<String> = plan
            .apply
            .as_ref()
            .expect("applies")
            .iter()
            .filter(|d| d.workload.is_some())
            .map(|d| d.object.name_any())
            .collect();
        assert!(written.contains(&"fcloud-node-0".to_owned()), "{written:?}");
        assert!(
            !written.contains(&"fcloud-node-1".to_owned()),
            "node-1 is held as it runs: {written:?}"
        );
        assert!(
            written.contains(&"fcloud-cloudmaster".to_owned()),
            "unchanged workloads are still applied: {written:?}"
        );
        assert!(
            plan.keep
                .contains(&("Deployment".to_owned(), "fcloud-node-1".to_owned())),
            "a held workload is not pruned: {:?}",
            plan.keep
        );
        assert!(
            plan.keep
                .contains(&("ConfigMap".to_owned(), "node-1-config-old".to_owned())),
            "nor the ConfigMap it mounts: {:?}",
            plan.keep
        );
    }
}

#[cfg(test)]
mod restore_seam_tests {
    //! The seam between the restore step and the cloud's own conclusion (issue 22): while a
    //! restore holds the cloud's workloads back, nothing of the cloud runs, and "nothing runs"
    //! must not read as "everything is settled".
    use super::*;
    use crate::api::{InSyncCloudStatus, RestorePhase, RestoreS3, RestoreSpec, RestoreStatus};
    use crate::controller::cache::job_state::JobState;
    use crate::dns::AllowList;
    use k8s_openapi::jiff::Timestamp;

    use super::super::dns::DnsObservation;

    fn now() -> Timestamp {
        "2026-12-07T22:00:00Z".parse().expect("time")
    }

    /// fcloud created from an offsite backup, its restore at `phase`.
    fn restoring(phase: RestorePhase) -> InSyncCloud {
        let mut cloud: InSyncCloud =
            serde_yaml::from_str(include_str!("../../../examples/fcloud.yaml")).expect("example");
        cloud.metadata.uid = Some("uid-1".into());
        cloud.metadata.generation = Some(1);
        cloud.spec.dns = None;
        cloud.spec.restore = Some(RestoreSpec {
            backup: None,
            s3: Some(RestoreS3 {
                bucket: "offsite".to_owned(),
                prefix: "clouds/fcloud/nightly/".to_owned(),
                endpoint: Some("http://minio.backups:9000".to_owned()),
                region: None,
                secret_ref: None,
            }),
        });
        cloud.status = Some(InSyncCloudStatus {
            restore: Some(RestoreStatus {
                phase: Some(phase),
                source: Some("s3://offsite/clouds/fcloud/nightly/".to_owned()),
                ..RestoreStatus::default()
            }),
            ..InSyncCloudStatus::default()
        });
        cloud
    }

    /// One reconcile of `cloud` from wish to conclusion, with nothing live (no workload has
    /// been created: the restore holds them back) and the check Job still running.
    fn reconcile(cloud: &InSyncCloud) -> Conclusion {
        let seen = Observation {
            now: now(),
            workloads: BTreeMap::new(),
            missing_secrets: Vec::new(),
            dns: DnsObservation {
                frontend: None,
                known_zones: None,
            },
            needs_prune: false,
            gates: Default::default(),
            restore: restore::Seen {
                check: Some(JobState::Running),
                ..restore::Seen::default()
            },
            backups: Vec::new(),
        };
        let allowed = AllowList::default();
        let settings = Settings {
            dns: Some(&allowed),
            runner_image: Some("operator:dev"),
        };
        let plan = plan(
            settings,
            cloud,
            wish(cloud).expect("renders").expect("valid"),
            &seen,
        )
        .expect("plans");
        let acted = Acted {
            apply: Some(Ok(ApplyReport::default())),
            dns: DnsOutcome {
                endpoint: None,
                condition: Cond::new(condition::DNS_READY, true, "NotRequested", "no DNS"),
                ready: true,
                zones: Vec::new(),
                release_finalizer: false,
                warning: None,
            },
        };
        conclude(cloud, &seen, &plan, acted)
    }

    #[test]
    fn a_cloud_waiting_for_its_restore_is_neither_ready_nor_at_a_version() {
        for phase in [RestorePhase::Checking, RestorePhase::Failed] {
            let cloud = restoring(phase);
            let concluded = reconcile(&cloud);
            let reasons: Vec<&str> = concluded.notes.iter().map(|n| n.reason).collect();
            assert!(
                !reasons.contains(&"Ready"),
                "{phase:?}: a Ready event while nothing runs: {reasons:?}"
            );
            assert_eq!(
                concluded.status.current_version, None,
                "{phase:?}: currentVersion set while nothing of the cloud runs"
            );
            let ready = concluded
                .status
                .conditions
                .iter()
                .find(|c| c.type_ == condition::READY)
                .expect("Ready");
            assert_eq!(ready.status, "False", "{phase:?}");
            let progressing = concluded
                .status
                .conditions
                .iter()
                .find(|c| c.type_ == condition::PROGRESSING)
                .expect("Progressing");
            assert_ne!(
                progressing.reason, "Stable",
                "{phase:?}: 'nothing is rolling out' while the restore holds the cloud back"
            );
        }
    }
}
