//! The plan of a reconcile: what to apply (pinned by the rollout, filtered by the restore's
//! gate), what to prune, the DNS intent and the events owed before acting.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kube::ResourceExt;

use super::{Note, Plan, Settings};
use crate::api::validate::{self};
use crate::api::{InSyncCloud, UpgradePhase, UpgradeStatus};
use crate::controller::dns::{self as dns_step, FINALIZER};
use crate::controller::error::Error;
use crate::controller::finalizer;
use crate::controller::gate::{self, GateInput};
use crate::controller::observe::{Observation, Observed, targets, version_change};
use crate::controller::restore::{self};
use crate::controller::rollout::{self, RolloutInput};
use crate::render::{self, Desired, RenderOptions};

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
