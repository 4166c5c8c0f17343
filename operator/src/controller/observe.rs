//! Observe: every read a reconcile makes, from the caches, gathered into an [`Observation`]
//! before anything is decided: the workloads (counted in the watch, [`super::cache::workload`]),
//! Secrets, DNS, the fleet's gates, the restore's Jobs and the cloud's backups.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

pub use super::cache::workload::WorkloadCounts;
use super::cache::workload::{template_revision, template_tag};
use super::context::Context;
use super::dns::{self as dns_step, DnsObservation};
use super::gate::{self, FleetMember, GateInput};
use super::restore;
use super::rollout::{LiveWorkload, TargetWorkload};
use crate::api::{
    ComponentStatus, DnsProvider, InSyncCloud, InSyncCloudBackup, InSyncCloudSpec, RestorePhase,
};
use crate::render::restore::{RESTORE_COMPONENT, check_job_name, restore_job_name};
use crate::render::{Component, Desired};

/// What a reconcile read about one cloud, besides the cloud itself.
#[derive(Clone, Debug)]
pub struct Observation {
    /// The clock reading every time-based decision uses.
    pub now: Timestamp,
    /// Live state of each workload render wants, by workload id (absent ones are missing).
    pub workloads: BTreeMap<String, WorkloadCounts>,
    /// Secrets the spec references that do not exist: (field, Secret name).
    pub missing_secrets: Vec<(&'static str, String)>,
    /// What the DNS step reads.
    pub dns: DnsObservation,
    /// The cloud's caches must be scanned for orphans: its spec changed since the last
    /// complete prune, or this process has not pruned it yet.
    pub needs_prune: bool,
    /// What the gates in front of a version change look at.
    pub gates: GateObservation,
    /// What the restore step reads (`spec.restore`), nothing without one.
    pub(crate) restore: restore::Seen,
    /// The cloud's backups, for `status.backup` and `BackupHealthy`.
    pub(crate) backups: Vec<InSyncCloudBackup>,
}

/// The fleet around a cloud and its place in the upgrade queue.
#[derive(Clone, Debug, Default)]
pub struct GateObservation {
    /// Every other cloud the operator manages.
    pub fleet: Vec<FleetMember>,
    /// The operator-wide limit on concurrent upgrades, when set.
    pub max_concurrent: Option<usize>,
    /// Whether the cloud holds one of those slots (taken here when its window and ring let it
    /// start: the one write observe makes, to the operator's memory, so that two reconciles can
    /// never both take the last slot).
    pub has_slot: bool,
}

/// Whether the cloud asks to move from the version it ran to another one: what the gates hold.
/// A new cloud (nothing ran yet) is created at once.
pub fn version_change(cloud: &InSyncCloud) -> bool {
    cloud
        .status
        .as_ref()
        .and_then(|s| s.current_version.as_deref())
        .is_some_and(|current| current != cloud.spec.version)
}

fn observe_gates(cloud: &InSyncCloud, ctx: &Context, now: Timestamp) -> GateObservation {
    if !version_change(cloud) {
        return GateObservation::default();
    }
    let fleet = ctx.fleet.members(cloud);
    let mut gates = GateObservation {
        fleet,
        max_concurrent: ctx.fleet.max_concurrent(),
        has_slot: false,
    };
    // Queue only a cloud its window and rings let start now.
    let before_the_queue = gate::hold(&GateInput {
        now,
        windows: &cloud.spec.upgrade.windows,
        ring: cloud.spec.upgrade.ring,
        version: &cloud.spec.version,
        fleet: &gates.fleet,
        max_concurrent: None,
        has_slot: true,
    });
    gates.has_slot = before_the_queue.is_none() && ctx.fleet.admit(cloud);
    gates
}

/// Reads what deciding about `cloud` needs. `wished` is the unpinned render of its spec (its
/// workloads are looked up), `None` when the spec is invalid.
pub async fn observe(
    cloud: &InSyncCloud,
    ctx: &Context,
    wished: Option<&[Desired]>,
) -> Observation {
    let namespace = cloud.cloud_namespace();
    let workloads = wished
        .unwrap_or_default()
        .iter()
        .filter_map(|d| {
            let (_, id) = d.workload.as_ref()?;
            let live = ctx.cached(namespace, &d.object)?;
            Some((id.clone(), live.workload()?.counts.clone()))
        })
        .collect();
    let mut missing_secrets = Vec::new();
    for (field, name) in secret_refs(&cloud.spec) {
        if !ctx.secret_exists(namespace, name) {
            missing_secrets.push((field, name.to_owned()));
        }
    }
    let dns_wanted = ctx.dns.is_some()
        && cloud
            .spec
            .dns
            .as_ref()
            .is_some_and(|d| d.provider == DnsProvider::Route53);
    let frontend = if dns_wanted {
        dns_step::frontend_addresses(ctx, cloud).await
    } else {
        None
    };
    let now = Timestamp::now();
    Observation {
        now,
        gates: observe_gates(cloud, ctx, now),
        workloads,
        missing_secrets,
        dns: DnsObservation {
            frontend,
            known_zones: ctx.dns.as_ref().and_then(|w| w.known_zones(cloud)),
        },
        needs_prune: ctx.needs_prune(&cloud.uid().unwrap_or_default(), cloud.metadata.generation),
        restore: observe_restore(cloud, ctx),
        backups: ctx.backups_of(cloud),
    }
}

/// What the restore step needs, from the caches: the named backup, the check and restore Jobs
/// with their pods, and whether the managed MySQL and metadata store have a ready replica
/// (external ones count as ready).
fn observe_restore(cloud: &InSyncCloud, ctx: &Context) -> restore::Seen {
    let Some(spec) = &cloud.spec.restore else {
        return restore::Seen::default();
    };
    let recorded = cloud
        .status
        .as_ref()
        .and_then(|s| s.restore.as_ref())
        .and_then(|r| r.phase);
    if recorded == Some(RestorePhase::Complete) {
        // Final, and decided without a look at anything.
        return restore::Seen::default();
    }
    let namespace = cloud.cloud_namespace();
    let job = |name: String| ctx.jobs.job(namespace, &name, RESTORE_COMPONENT);
    let managed = [
        (Component::Mysql, cloud.spec.database.managed.is_some()),
        (
            Component::Bynamo,
            cloud.spec.metadata_store.managed.is_some(),
        ),
    ];
    let datastores_ready = managed.into_iter().all(|(component, is_managed)| {
        let name = format!("{}-{}", cloud.cloud_name(), component.name());
        !is_managed
            || ctx
                .cached_named("StatefulSet", namespace, &name)
                .is_some_and(|set| set.workload().is_some_and(|w| w.counts.ready > 0))
    });
    restore::Seen {
        backup: spec
            .backup
            .as_ref()
            .and_then(|name| ctx.backup(namespace, name)),
        check: job(check_job_name(cloud)),
        restore: job(restore_job_name(cloud)),
        datastores_ready,
    }
}

/// The Secrets the spec references, with the field that references each.
pub fn secret_refs(spec: &InSyncCloudSpec) -> Vec<(&'static str, &str)> {
    let mut refs: Vec<(&'static str, &str)> = Vec::new();
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
    refs
}

/// Target tag per workload id from an unpinned render.
pub fn targets(rendered: &[Desired]) -> BTreeMap<String, TargetWorkload> {
    rendered
        .iter()
        .filter_map(|d| {
            let (component, id) = d.workload.clone()?;
            let body = serde_json::to_value(&d.object).ok()?;
            let tag = template_tag(&body)?;
            let revision = template_revision(&body).unwrap_or_default();
            Some((
                id,
                TargetWorkload {
                    component,
                    tag,
                    revision,
                },
            ))
        })
        .collect()
}

/// Live state of every workload render wants, from the caches.
#[derive(Clone, Debug)]
pub struct Observed {
    /// Per workload id.
    pub live: BTreeMap<String, LiveWorkload>,
    /// Per workload id.
    pub counts: BTreeMap<String, WorkloadCounts>,
}

impl Observed {
    /// The rollout's view of the observed workloads.
    pub fn new(counts: BTreeMap<String, WorkloadCounts>) -> Self {
        let live = counts
            .iter()
            .filter_map(|(id, c)| {
                let tag = c.tag.clone()?;
                Some((
                    id.clone(),
                    LiveWorkload {
                        tag,
                        revision: c.revision.clone(),
                        settled: c.settled,
                    },
                ))
            })
            .collect();
        Self { live, counts }
    }

    /// Whether every target exists, runs its target revision and is settled.
    pub fn all_settled(&self, targets: &BTreeMap<String, TargetWorkload>) -> bool {
        targets.iter().all(|(id, t)| {
            self.counts
                .get(id)
                .is_some_and(|c| c.settled && at_target(c, t))
        })
    }

    /// The ConfigMaps the live workloads mount: what pruning must leave in place, whatever
    /// render wants now (a workload the rollout has not reached still runs on its old config).
    pub fn config_maps(&self) -> std::collections::BTreeSet<String> {
        self.counts
            .values()
            .flat_map(|c| c.config_maps.iter().cloned())
            .collect()
    }

    /// Per-component status rows, in upgrade order. Nodes are summed over their Deployments.
    pub fn components(&self, targets: &BTreeMap<String, TargetWorkload>) -> Vec<ComponentStatus> {
        Component::ALL
            .iter()
            .filter_map(|component| {
                let ids: Vec<&String> = targets
                    .iter()
                    .filter(|(_, t)| t.component == *component)
                    .map(|(id, _)| id)
                    .collect();
                if ids.is_empty() {
                    return None;
                }
                let mut row = ComponentStatus {
                    name: component.name().to_owned(),
                    ready: true,
                    ..Default::default()
                };
                let mut tags = std::collections::BTreeSet::new();
                for id in ids {
                    match self.counts.get(id) {
                        Some(c) => {
                            row.desired_replicas += c.desired;
                            row.ready_replicas += c.ready;
                            row.updated_replicas += c.updated;
                            row.ready &=
                                c.settled && targets.get(id).is_some_and(|t| at_target(c, t));
                            tags.insert(c.tag.clone().unwrap_or_default());
                        }
                        None => {
                            row.ready = false;
                            tags.insert(String::new());
                        }
                    }
                }
                // One version only when every workload of the component runs the same one.
                row.version = (tags.len() == 1)
                    .then(|| tags.into_iter().next().unwrap_or_default())
                    .filter(|t| !t.is_empty());
                Some(row)
            })
            .collect()
    }
}

/// Whether a live workload runs its target: the same tag and (when recorded) revision.
fn at_target(live: &WorkloadCounts, target: &TargetWorkload) -> bool {
    live.tag.as_deref() == Some(target.tag.as_str())
        && live
            .revision
            .as_deref()
            .is_none_or(|revision| revision == target.revision)
}
