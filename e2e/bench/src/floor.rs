//! The API server's floor: the same clouds and the same child objects the operator writes,
//! written directly by the bench with the operator's parallelism and no operator, timed until
//! every workload is settled. Convergence divided by this is the operator's overhead.
//!
//! Included, as in the operator's convergence: the N InSyncCloud creates (same parallelism,
//! same clock start), one write per rendered child (server-side apply, or create for the
//! create-only Secrets and PVCs), each cloud's children written one after another with
//! `concurrency` clouds at a time (the operator's workers), and the controller-manager,
//! scheduler, volume provisioner and kwok bringing every Deployment and StatefulSet to settled
//! (the same test as the operator's own: observed generation, updated = ready = replicas, and
//! the rollout finished), seen by a list every `poll` like the operator run's list of clouds.
//!
//! Not included: anything the operator does besides those writes: watching (its reaction
//! time and the 500 ms debounce), reconciles that re-check, status and finalizer writes,
//! Events, and the time from the last workload settling to the cloud's `Ready` status being
//! written and seen.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use insync_operator::api::InSyncCloud;
use insync_operator::render::{ApplyPolicy, RenderOptions, render};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::Client;
use kube::api::{
    Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams, ResourceExt,
};
use kube::core::GroupVersionKind;

/// Field manager of the bench's direct writes.
const MANAGER: &str = "insync-bench-floor";

/// What the floor run measured.
#[derive(Debug, Default, serde::Serialize)]
pub struct Floor {
    /// First create to every workload settled.
    pub secs: f64,
    /// First create to the last cloud created.
    pub create_secs: f64,
    /// First create to the last child written.
    pub written_secs: f64,
    /// Child objects written (one request each).
    pub children_written: usize,
    pub workloads: usize,
    pub load_start: String,
    pub load_end: String,
    /// All clients' writes, as the API server counts them.
    pub api: crate::ApiSnapshot,
}

/// What to create and how fast.
pub struct FloorPlan<'a> {
    pub clouds: Vec<InSyncCloud>,
    pub create_parallelism: usize,
    pub concurrency: usize,
    pub poll: Duration,
    pub timeout: Duration,
    pub plane: &'a crate::plane::PlaneArgs,
}

/// Deployments and StatefulSets a cloud renders.
pub fn workloads_per_cloud(cloud: &InSyncCloud) -> Result<usize> {
    Ok(render(cloud, &RenderOptions::default())?
        .iter()
        .filter(|d| d.workload.is_some())
        .count())
}

/// Runs the floor on a prepared plane (CRDs, namespaces and node capacity in place).
pub async fn run(client: &Client, plan: FloorPlan<'_>) -> Result<Floor> {
    let n = plan.clouds.len();
    let workloads = match plan.clouds.first() {
        Some(cloud) => workloads_per_cloud(cloud)? * n,
        None => 0,
    };
    let mut floor = Floor {
        workloads,
        load_start: crate::loadavg(),
        ..Default::default()
    };
    // The operator run's clock starts after the operator has listed and watched the clouds
    // (and 2 s of rest): warm the same API path here, so the first create costs the same.
    let clouds_api: Api<InSyncCloud> = Api::all(client.clone());
    clouds_api.list(&ListParams::default()).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let api_before = crate::ApiSnapshot::take(plan.plane).await?;
    let start = Instant::now();

    // The clouds are created as fast as the operator run creates them, whatever the writers'
    // pace; each created cloud (with its uid, for the children's owner references) goes to
    // the writers, `concurrency` clouds at a time.
    let (tx, rx) = futures::channel::mpsc::unbounded::<InSyncCloud>();
    let creator = {
        let client = client.clone();
        let clouds = plan.clouds;
        let parallelism = plan.create_parallelism;
        tokio::spawn(async move {
            futures::stream::iter(clouds)
                .map(|cloud| {
                    let api: Api<InSyncCloud> = Api::namespaced(
                        client.clone(),
                        cloud.metadata.namespace.as_deref().unwrap_or_default(),
                    );
                    async move { api.create(&PostParams::default(), &cloud).await }
                })
                .buffer_unordered(parallelism)
                .map_err(anyhow::Error::from)
                .try_for_each(|created| {
                    let sent = tx.unbounded_send(created).context("the writers stopped");
                    async move { sent }
                })
                .await
                .map(|()| start.elapsed())
        })
    };
    let written: Vec<usize> = rx
        .map(|cloud| write_children(client, cloud))
        .buffer_unordered(plan.concurrency)
        .try_collect()
        .await?;
    floor.create_secs = creator.await??.as_secs_f64();
    floor.written_secs = start.elapsed().as_secs_f64();
    floor.children_written = written.iter().sum();
    eprintln!(
        "floor: created {n} clouds in {:.1}s, wrote {} children by {:.1}s; waiting for {workloads} workloads",
        floor.create_secs, floor.children_written, floor.written_secs
    );

    let deployments: Api<Deployment> = Api::all(client.clone());
    let statefulsets: Api<StatefulSet> = Api::all(client.clone());
    // resourceVersion=0: from the watch cache, as the operator run's list of clouds.
    let cheap = ListParams::default().match_any();
    let mut last_report = Instant::now();
    loop {
        let settled = deployments
            .list(&cheap)
            .await?
            .iter()
            .filter(|d| is_bench(d.namespace()) && deployment_settled(d))
            .count()
            + statefulsets
                .list(&cheap)
                .await?
                .iter()
                .filter(|s| is_bench(s.namespace()) && statefulset_settled(s))
                .count();
        if settled == workloads {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(15) {
            eprintln!(
                "floor: {:>6.0}s settled {settled}/{workloads} workloads, load {}",
                start.elapsed().as_secs_f64(),
                crate::loadavg()
            );
            last_report = Instant::now();
        }
        if start.elapsed() >= plan.timeout {
            bail!(
                "floor: only {settled}/{workloads} workloads settled after {:?}",
                plan.timeout
            );
        }
        tokio::time::sleep(plan.poll).await;
    }
    floor.secs = start.elapsed().as_secs_f64();
    floor.load_end = crate::loadavg();
    floor.api = crate::ApiSnapshot::take(plan.plane)
        .await?
        .minus(&api_before);
    Ok(floor)
}

fn is_bench(namespace: Option<String>) -> bool {
    namespace.is_some_and(|ns| ns.starts_with(crate::NAMESPACE_PREFIX))
}

/// Writes what render gives for `cloud`, one object after another, as the operator's first
/// pass does. Returns how many objects it wrote.
async fn write_children(client: &Client, cloud: InSyncCloud) -> Result<usize> {
    let namespace = cloud.namespace().unwrap_or_default();
    let desired = render(&cloud, &RenderOptions::default())?;
    for item in &desired {
        let types = item
            .object
            .types
            .as_ref()
            .context("rendered object without kind")?;
        let resource = ApiResource::from_gvk(&GroupVersionKind::try_from(types)?);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);
        let name = item.object.name_any();
        match item.policy {
            ApplyPolicy::CreateOnly => {
                let params = PostParams {
                    field_manager: Some(MANAGER.into()),
                    ..Default::default()
                };
                api.create(&params, &item.object).await.map(drop)
            }
            ApplyPolicy::Apply => api
                .patch(
                    &name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&item.object),
                )
                .await
                .map(drop),
        }
        .with_context(|| format!("floor: writing {}/{name} in {namespace}", types.kind))?;
    }
    Ok(desired.len())
}

fn deployment_settled(d: &Deployment) -> bool {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = d.status.as_ref() else {
        return false;
    };
    status.observed_generation >= d.metadata.generation
        && status.updated_replicas == Some(desired)
        && status.ready_replicas == Some(desired)
        && status.replicas == Some(desired)
        && status.available_replicas == Some(desired)
}

fn statefulset_settled(s: &StatefulSet) -> bool {
    let desired = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = s.status.as_ref() else {
        return false;
    };
    status.observed_generation >= s.metadata.generation
        && status.updated_replicas == Some(desired)
        && status.ready_replicas == Some(desired)
        && status.replicas == desired
        && status.current_revision.is_some()
        && status.current_revision == status.update_revision
}
