//! One reconcile: fetch → validate → observe → decide the rollout → render → apply → status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::apply::{self, FIELD_MANAGER};
use super::context::Context;
use super::dns;
use super::error::Error;
use super::finalizer;
use super::observe::{self, Observed};
use super::rollout::{self, RolloutInput};
use super::status::{self, Cond};
use crate::api::{InSyncCloud, InSyncCloudStatus, UpgradePhase, condition, validate};
use crate::render::{self, RenderOptions};
use crate::telemetry::CloudLabels;

pub use super::dns::FINALIZER;

/// The controller's reconcile entry point.
#[tracing::instrument(skip_all, fields(namespace = guard.namespace().unwrap_or_default(), cloud = guard.name_any()))]
pub async fn reconcile(
    guard: Arc<DeserializeGuard<InSyncCloud>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let cloud = match &guard.0 {
        Ok(cloud) => cloud,
        Err(e) => {
            // A malformed object must not stall the others: report it and wait for a change.
            warn!(error = %e, "InSyncCloud does not match the schema; waiting for it to be fixed");
            return Ok(Action::await_change());
        }
    };
    // Writes are only safe once every cache has listed what exists; the controller keeps
    // polling the watches while this waits.
    for kind in &ctx.kinds {
        let _ = kind.store.wait_until_ready().await;
    }
    let result = reconcile_cloud(cloud, &ctx).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

/// Backoff policy: wait for a spec change on invalid input, back off exponentially otherwise.
pub fn error_policy(
    guard: Arc<DeserializeGuard<InSyncCloud>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics
        .errors
        .get_or_create(&crate::telemetry::ErrorLabels {
            kind: error.metric_label().into(),
        })
        .inc();
    warn!(cloud = %guard.name_any(), error = %error, "reconcile failed");
    if !error.is_transient() {
        return Action::await_change();
    }
    let key = ObjectRef::from_obj(&*guard).erase();
    Action::requeue(ctx.backoff.next(&key))
}

async fn reconcile_cloud(cloud: &InSyncCloud, ctx: &Context) -> Result<Action, Error> {
    let namespace = cloud.cloud_namespace().to_owned();
    let name = cloud.cloud_name().to_owned();
    let label = format!("{namespace}/{name}");
    let api: Api<InSyncCloud> = Api::namespaced(ctx.client.clone(), &namespace);
    let cloud_err = |source| Error::Cloud {
        cloud: label.clone(),
        source,
    };

    if cloud.meta().deletion_timestamp.is_some() {
        return cleanup(cloud, ctx, &api).await;
    }
    if dns::wants_finalizer(ctx.dns.as_ref(), cloud)
        && let Some(patch) = finalizer::add(cloud.finalizers(), FINALIZER)
    {
        api.patch_metadata(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
            .map_err(cloud_err)?;
    }

    let now = Timestamp::now();
    let previous = cloud.status.clone().unwrap_or_default();
    let generation = cloud.metadata.generation;
    let mut status = InSyncCloudStatus {
        observed_generation: generation,
        target_version: Some(cloud.spec.version.clone()),
        current_version: previous.current_version.clone(),
        endpoint: previous.endpoint.clone(),
        components: previous.components.clone(),
        upgrade: previous.upgrade.clone(),
        conditions: Vec::new(),
        dns_zones: previous.dns_zones.clone(),
    };

    if let Err(invalid) = validate::validate(cloud) {
        let message = invalid.to_string();
        publish(ctx, cloud, EventType::Warning, "InvalidSpec", &message).await;
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
            Cond::new(condition::DEGRADED, true, "InvalidSpec", message),
        ];
        status.conditions = status::conditions(&previous.conditions, &conds, generation, now);
        write_status(&api, &name, &previous, &status)
            .await
            .map_err(cloud_err)?;
        return Err(Error::Invalid(invalid));
    }

    // Observe, then let the state machine decide which workloads stay on their live tag.
    let unpinned = render::render(cloud, &RenderOptions::default())?;
    let targets = observe::targets(&unpinned);
    let observed = Observed::collect(&unpinned, |object| ctx.cached(&namespace, object));
    let health_timeout = validate::parse_duration(&cloud.spec.upgrade.health_timeout)
        .unwrap_or(Duration::from_secs(600));
    let decision = rollout::decide(&RolloutInput {
        targets: &targets,
        live: &observed.live,
        recorded: previous.upgrade.as_ref(),
        current_version: previous.current_version.as_deref(),
        target_version: &cloud.spec.version,
        max_unavailable: usize::try_from(cloud.spec.upgrade.max_unavailable).unwrap_or(1),
        health_timeout,
        now,
        paused: cloud.spec.paused,
    });
    note_upgrade_transition(
        ctx,
        cloud,
        previous.upgrade.as_ref(),
        decision.upgrade.as_ref(),
    )
    .await;

    let mut conds = Vec::new();
    let mut degraded: Option<(&'static str, String)> = None;
    let mut apply_error = None;
    let mut credentials_lost = false;
    if let Some(missing) = missing_secrets(cloud, ctx, &namespace).await {
        degraded = Some(("MissingSecret", missing));
    }

    if cloud.spec.paused {
        conds.push(Cond::new(
            condition::PAUSED,
            true,
            "Paused",
            "spec.paused is true: the operator makes no changes to this cloud",
        ));
    } else {
        conds.push(Cond::new(
            condition::PAUSED,
            false,
            "Active",
            "the operator manages this cloud",
        ));
        let desired = if decision.pins.is_empty() {
            unpinned
        } else {
            render::render(
                cloud,
                &RenderOptions {
                    pinned_tags: decision.pins.clone(),
                },
            )?
        };
        let uid = cloud.uid().unwrap_or_default();
        // The set of objects only changes with the spec: scanning the caches for orphans is
        // needed once per generation, not on every status-driven wake-up.
        let prune = ctx.needs_prune(&uid, generation);
        match apply::apply_all(&ctx.client, &ctx.kinds, &namespace, &uid, &desired, prune).await {
            Ok(mut report) => {
                ctx.metrics
                    .objects_applied
                    .inc_by(report.applied.len() as u64);
                ctx.metrics.objects_skipped.inc_by(report.unchanged as u64);
                ctx.metrics
                    .objects_pruned
                    .inc_by(report.pruned.len() as u64);
                if !report.applied.is_empty() {
                    info!(applied = ?report.applied, "applied");
                    let note = format!(
                        "applied {} object(s): {}",
                        report.applied.len(),
                        summarize(&report.applied)
                    );
                    publish(ctx, cloud, EventType::Normal, "Applied", &note).await;
                }
                if !report.pruned.is_empty() {
                    info!(pruned = ?report.pruned, "pruned");
                    let note = format!(
                        "deleted {} object(s) the cloud no longer needs: {}",
                        report.pruned.len(),
                        summarize(&report.pruned)
                    );
                    publish(ctx, cloud, EventType::Normal, "Pruned", &note).await;
                }
                if prune && report.failed.is_empty() {
                    ctx.pruned(&uid, generation);
                }
                if !report.withheld.is_empty() {
                    // Above a failed write: acting on it is what unblocks the datastore.
                    let message = report.withheld.join("; ");
                    warn!(%message, "generated credentials withheld over existing data");
                    publish(ctx, cloud, EventType::Warning, "CredentialsLost", &message).await;
                    credentials_lost = true;
                }
                if !report.failed.is_empty() {
                    let message = report
                        .failed
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ");
                    publish(ctx, cloud, EventType::Warning, "ApplyFailed", &message).await;
                    degraded = Some(("ApplyFailed", message));
                    apply_error = Some(report.failed.remove(0));
                }
                if credentials_lost {
                    degraded = Some(("CredentialsLost", report.withheld.join("; ")));
                }
            }
            Err(e) => {
                publish(
                    ctx,
                    cloud,
                    EventType::Warning,
                    "ApplyFailed",
                    &e.to_string(),
                )
                .await;
                degraded = Some(("ApplyFailed", e.to_string()));
                apply_error = Some(e);
            }
        }
    }

    // DNS and endpoint.
    let dns = dns::step(ctx.dns.as_ref(), &ctx.client, &ctx.metrics, cloud).await;
    status.endpoint = dns.endpoint.clone().or(status.endpoint);
    status.dns_zones = dns.zones.clone();
    conds.push(dns.condition.clone());
    if let Some((reason, message)) = &dns.warning {
        publish(ctx, cloud, EventType::Warning, reason, message).await;
    }
    if dns.release_finalizer
        && let Some(patch) = finalizer::remove(cloud.finalizers(), FINALIZER)
    {
        // DNS is not wanted and the records are gone: nothing is left to clean up.
        api.patch_metadata(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
            .map_err(cloud_err)?;
    }

    // Versions, components and the headline conditions.
    status.components = observed.components(&targets);
    status.upgrade = decision.upgrade.clone();
    let settled = observed.all_settled(&targets);
    if settled {
        status.current_version = Some(cloud.spec.version.clone());
    }
    let phase = decision.upgrade.as_ref().map(|u| u.phase);
    ctx.metrics
        .upgrade_phase
        .get_or_create(&CloudLabels {
            namespace: namespace.clone(),
            name: name.clone(),
        })
        .set(phase_number(phase));
    let not_ready: Vec<String> = status
        .components
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.clone())
        .collect();
    let (headline, ready) = status::headline(&status::Health {
        version: &cloud.spec.version,
        upgrade: decision.upgrade.as_ref(),
        settled,
        not_ready,
        degraded: degraded.clone(),
        dns_ready: dns.ready,
        dns_message: &dns.condition.message,
    });
    conds.extend(headline);
    if ready
        && !previous
            .conditions
            .iter()
            .any(|c| c.type_ == condition::READY && c.status == "True")
    {
        publish(
            ctx,
            cloud,
            EventType::Normal,
            "Ready",
            &format!("cloud is ready at {}", cloud.spec.version),
        )
        .await;
    }
    status.conditions = status::conditions(&previous.conditions, &conds, generation, now);
    write_status(&api, &name, &previous, &status)
        .await
        .map_err(cloud_err)?;

    if let Some(e) = apply_error {
        // Recorded in status above; returning it makes error_policy back off.
        return Err(e);
    }
    if credentials_lost {
        // Neither restoring the Secret nor deleting the claims wakes the cloud (neither is
        // owned by it): look again soon.
        return Ok(Action::requeue(Duration::from_secs(30)));
    }
    Ok(Action::requeue(next_wake(
        decision.upgrade.as_ref(),
        health_timeout,
        now,
        settled && dns.ready,
    )))
}

/// When to look at the cloud again without being woken. Child changes and DNS status changes
/// wake the cloud anyway, so the timer only has to catch a rollout step's health deadline
/// (then it fires right at the deadline) and otherwise serves as a safety net. A short fixed
/// timer here multiplied reconciles on a busy cluster for nothing.
pub fn next_wake(
    upgrade: Option<&crate::api::UpgradeStatus>,
    health_timeout: Duration,
    now: Timestamp,
    steady: bool,
) -> Duration {
    let rolling = upgrade.filter(|u| {
        !matches!(u.phase, UpgradePhase::Complete | UpgradePhase::Blocked) && u.paused_at.is_none()
    });
    if let Some(started) = rolling.and_then(|u| u.step_started_at.as_ref()) {
        let waited = now.duration_since(started.0).unsigned_abs();
        let left = health_timeout.saturating_sub(waited);
        return left.clamp(Duration::from_secs(2), Duration::from_secs(60));
    }
    if steady {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(60)
    }
}

fn phase_number(phase: Option<UpgradePhase>) -> i64 {
    match phase {
        None | Some(UpgradePhase::Complete) => 0,
        Some(UpgradePhase::Datastores) => 1,
        Some(UpgradePhase::CloudMaster) => 2,
        Some(UpgradePhase::Nodes) => 3,
        Some(UpgradePhase::Frontend) => 4,
        Some(UpgradePhase::Blocked) => 5,
    }
}

fn summarize(items: &[String]) -> String {
    let mut s = items.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 8 {
        s.push_str(&format!(" and {} more", items.len() - 8));
    }
    s
}

/// Writes status only when it differs from what is there: a steady cloud costs no write.
async fn write_status(
    api: &Api<InSyncCloud>,
    name: &str,
    previous: &InSyncCloudStatus,
    status: &InSyncCloudStatus,
) -> Result<(), kube::Error> {
    if previous == status {
        return Ok(());
    }
    let patch =
        json!({"apiVersion": "insync.dev/v1alpha1", "kind": "InSyncCloud", "status": status});
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Secrets the spec references that do not exist: the schema cannot know, so it is a condition.
async fn missing_secrets(cloud: &InSyncCloud, ctx: &Context, namespace: &str) -> Option<String> {
    let spec = &cloud.spec;
    let mut refs: Vec<(&str, &str)> = Vec::new();
    if let Some(e) = &spec.database.external {
        refs.push(("spec.database.external.secretRef", &e.secret_ref.name));
    }
    if let Some(s) = spec
        .metadata_store
        .external
        .as_ref()
        .and_then(|e| e.secret_ref.as_ref())
    {
        refs.push(("spec.metadataStore.external.secretRef", &s.name));
    }
    if let Some(s) = spec
        .object_store
        .s3
        .as_ref()
        .and_then(|e| e.secret_ref.as_ref())
    {
        refs.push(("spec.objectStore.s3.secretRef", &s.name));
    }
    if refs.is_empty() {
        return None;
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let mut missing = Vec::new();
    for (field, secret) in refs {
        if let Ok(None) = api.get_metadata_opt(secret).await {
            missing.push(format!(
                "{field}: Secret {namespace}/{secret} does not exist"
            ));
        }
    }
    (!missing.is_empty()).then(|| missing.join("; "))
}

async fn note_upgrade_transition(
    ctx: &Context,
    cloud: &InSyncCloud,
    before: Option<&crate::api::UpgradeStatus>,
    after: Option<&crate::api::UpgradeStatus>,
) {
    let Some(after) = after else { return };
    let key = |u: &crate::api::UpgradeStatus| (u.to_version.clone(), u.phase, u.component.clone());
    if before.map(key) == Some(key(after)) {
        return;
    }
    let message = after.message.clone().unwrap_or_default();
    let (kind, reason) = match after.phase {
        UpgradePhase::Blocked => (EventType::Warning, "UpgradeBlocked"),
        UpgradePhase::Complete => (EventType::Normal, "UpgradeComplete"),
        _ => (EventType::Normal, "Upgrading"),
    };
    info!(phase = ?after.phase, component = ?after.component, to = %after.to_version, "upgrade step");
    publish(ctx, cloud, kind, reason, &message).await;
}

async fn publish(ctx: &Context, cloud: &InSyncCloud, type_: EventType, reason: &str, note: &str) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: reason.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &cloud.object_ref(&())).await {
        warn!(error = %e, "cannot publish event");
    }
}

/// Deletion: remove the cloud's DNS records, then let garbage collection take the children.
/// PVCs carry no owner reference, so data survives.
async fn cleanup(
    cloud: &InSyncCloud,
    ctx: &Context,
    api: &Api<InSyncCloud>,
) -> Result<Action, Error> {
    if !cloud.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    match dns::remove_on_delete(ctx.dns.as_ref(), cloud).await {
        Ok(()) => {}
        Err(dns::RemoveError::Blocked(message)) => {
            // Dropping the finalizer now would leave the records in Route53 for good.
            warn!(%message, "DNS records cannot be removed; keeping the finalizer");
            publish(
                ctx,
                cloud,
                EventType::Warning,
                "DNSCleanupBlocked",
                &message,
            )
            .await;
            let previous = cloud.status.clone().unwrap_or_default();
            let mut status = previous.clone();
            let cond = Cond::new(condition::DNS_READY, false, "CannotRemoveRecords", message);
            let mut conds: Vec<_> = previous
                .conditions
                .iter()
                .filter(|c| c.type_ != condition::DNS_READY)
                .cloned()
                .collect();
            conds.extend(status::conditions(
                &previous.conditions,
                &[cond],
                cloud.metadata.generation,
                Timestamp::now(),
            ));
            status.conditions = conds;
            write_status(api, &cloud.name_any(), &previous, &status)
                .await
                .map_err(|source| Error::Cloud {
                    cloud: cloud.name_any(),
                    source,
                })?;
            return Ok(Action::requeue(Duration::from_secs(300)));
        }
        Err(dns::RemoveError::Failed(source)) => {
            return Err(Error::Dns {
                cloud: format!("{}/{}", cloud.cloud_namespace(), cloud.cloud_name()),
                source,
            });
        }
    }
    publish(
        ctx,
        cloud,
        EventType::Normal,
        "DNSRemoved",
        "removed the cloud's DNS records",
    )
    .await;
    if let Some(patch) = finalizer::remove(cloud.finalizers(), FINALIZER) {
        api.patch_metadata(
            &cloud.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
        .map_err(|source| Error::Cloud {
            cloud: cloud.name_any(),
            source,
        })?;
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::UpgradeStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("valid")
    }

    fn step(phase: UpgradePhase, started: i64) -> UpgradeStatus {
        UpgradeStatus {
            from_version: None,
            to_version: "v2".into(),
            phase,
            component: Some("cloudmaster".into()),
            step_started_at: Some(Time(at(started))),
            rolling: Default::default(),
            paused_at: None,
            started_at: None,
            message: None,
        }
    }

    #[test]
    fn a_rolling_step_wakes_at_its_health_deadline() {
        let timeout = Duration::from_secs(15);
        let rolling = step(UpgradePhase::CloudMaster, 0);
        assert_eq!(
            next_wake(Some(&rolling), timeout, at(5), false),
            Duration::from_secs(10)
        );
        assert_eq!(
            next_wake(Some(&rolling), timeout, at(20), false),
            Duration::from_secs(2),
            "overdue: soon"
        );
        let long = Duration::from_secs(600);
        assert_eq!(
            next_wake(Some(&rolling), long, at(0), false),
            Duration::from_secs(60),
            "capped"
        );
    }

    #[test]
    fn without_a_rolling_step_the_timer_is_only_a_safety_net() {
        let timeout = Duration::from_secs(15);
        let blocked = step(UpgradePhase::Blocked, 0);
        assert_eq!(
            next_wake(Some(&blocked), timeout, at(5), false),
            Duration::from_secs(60)
        );
        // A paused step's clock is stopped: its deadline is not coming.
        let paused = UpgradeStatus {
            paused_at: Some(Time(at(1))),
            ..step(UpgradePhase::CloudMaster, 0)
        };
        assert_eq!(
            next_wake(Some(&paused), timeout, at(500), false),
            Duration::from_secs(60)
        );
        assert_eq!(
            next_wake(None, timeout, at(5), false),
            Duration::from_secs(60)
        );
        assert_eq!(
            next_wake(None, timeout, at(5), true),
            Duration::from_secs(300)
        );
    }
}
