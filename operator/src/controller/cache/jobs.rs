//! The Jobs the operator runs (backup, verify, delete and restore) and their pods: one watch
//! each, label-selected and projected to what [`job_state`] reads, shared by the cloud and the
//! backup controllers. A reconcile reads a Job from here, never from the API server.
//!
//! Each watch is driven by a task of its own and its events are handed to every controller
//! that asked for them (kube's shared stores drop deletions, and a Job deleted before it
//! finished is something a backup must hear about).

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use k8s_openapi::api::batch::v1::{Job, JobStatus};
use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::mpsc;
use tracing::warn;

use super::job_state::{JobState, job_state};
use super::listed;
use crate::render::backup::{BACKUP_COMPONENT, DELETE_COMPONENT};
use crate::render::keys;
use crate::render::restore::RESTORE_COMPONENT;
use crate::render::verify::VERIFY_COMPONENT;

/// The label the Job controller puts on a Job's pods.
pub(crate) const JOB_NAME_LABEL: &str = "job-name";

/// How many events a controller may fall behind before the watch waits for it.
const EVENTS_BUFFER: usize = 256;

/// The Jobs' and their pods' caches.
#[derive(Clone)]
pub(crate) struct JobCache {
    /// The operator's Jobs ([`project_job`]).
    pub jobs: Store<Job>,
    /// Their pods ([`project_pod`]).
    pub pods: Store<Pod>,
}

impl JobCache {
    /// Where the Job `name` stands, read with its pods; `main` is the container that reports.
    pub fn job(&self, namespace: &str, name: &str, main: &str) -> Option<JobState> {
        let found = self.jobs.get(&ObjectRef::new(name).within(namespace))?;
        let pods: Vec<Pod> = self
            .pods
            .state()
            .iter()
            .filter(|pod| {
                pod.namespace().as_deref() == Some(namespace)
                    && pod.labels().get(JOB_NAME_LABEL).map(String::as_str) == Some(name)
            })
            .map(|pod| (**pod).clone())
            .collect();
        Some(job_state(&found, &pods, main))
    }

    /// One future per cache that resolves once it has listed, for [`super::Synced`].
    pub fn listed(&self) -> Vec<BoxFuture<'static, ()>> {
        vec![listed(self.jobs.clone()), listed(self.pods.clone())]
    }
}

/// The Jobs and pods as they change (deletions included), for one controller.
pub(crate) struct JobEvents {
    /// Jobs.
    pub jobs: BoxStream<'static, Result<Job, watcher::Error>>,
    /// Pods: a pod's end can be seen after its Job's.
    pub pods: BoxStream<'static, Result<Pod, watcher::Error>>,
}

/// Starts the Job and pod watches (in the operator's namespace, or all) and returns their
/// caches with one [`JobEvents`] per `subscribers`. Every subscriber must be polled, or the
/// watches wait for it.
pub(crate) fn start(
    client: &Client,
    namespace: Option<&str>,
    subscribers: usize,
) -> (JobCache, Vec<JobEvents>) {
    let selected = watcher::Config::default().labels(&format!(
        "{} in ({BACKUP_COMPONENT},{VERIFY_COMPONENT},{DELETE_COMPONENT},{RESTORE_COMPONENT}),{}={}",
        keys::COMPONENT,
        keys::MANAGED_BY,
        keys::MANAGER,
    ));
    let (jobs, job_streams) = watch(
        api::<Job>(client, namespace),
        selected.clone(),
        project_job,
        subscribers,
    );
    let (pods, pod_streams) = watch(
        api::<Pod>(client, namespace),
        selected,
        project_pod,
        subscribers,
    );
    let events = job_streams
        .into_iter()
        .zip(pod_streams)
        .map(|(jobs, pods)| JobEvents { jobs, pods })
        .collect();
    (JobCache { jobs, pods }, events)
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A projected, cached watch of `api`, driven by a task of its own, and its touched objects
/// (applied or deleted) handed to each of `subscribers` streams.
fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    project: fn(&mut K),
    subscribers: usize,
) -> (Store<K>, Vec<BoxStream<'static, Result<K, watcher::Error>>>)
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (store, writer) = reflector::store();
    let mut touched = watcher(api, config)
        .default_backoff()
        .modify(project)
        .reflect(writer)
        .touched_objects()
        .boxed();
    let (senders, streams): (Vec<_>, Vec<_>) = (0..subscribers)
        .map(|_| {
            let (tx, rx) = mpsc::channel::<K>(EVENTS_BUFFER);
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|object| (Ok(object), rx))
            })
            .boxed();
            (tx, stream)
        })
        .unzip();
    tokio::spawn(async move {
        while let Some(event) = touched.next().await {
            match event {
                Ok(object) => {
                    for sender in &senders {
                        // A controller that stopped (the process is shutting down) hears nothing.
                        let _ = sender.send(object.clone()).await;
                    }
                }
                Err(e) => {
                    warn!(error = %e, kind = %K::kind(&K::DynamicType::default()), "watch error")
                }
            }
        }
    });
    (store, streams)
}

/// The cloud a restore Job or its pod belongs to (their instance label), for waking it.
pub(crate) fn restoring_cloud<K: Resource>(object: &K) -> Option<(String, String)> {
    let labels = object.meta().labels.as_ref()?;
    if labels.get(keys::COMPONENT).map(String::as_str) != Some(RESTORE_COMPONENT) {
        return None;
    }
    let cloud = labels.get(keys::INSTANCE)?;
    Some((object.meta().namespace.clone()?, cloud.clone()))
}

/// Identity, labels (the pods' `job-name`, the component and instance) and owners (the owning
/// backup wakes on a change).
fn project_meta(meta: &mut ObjectMeta) {
    *meta = ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        uid: meta.uid.take(),
        resource_version: meta.resource_version.take(),
        labels: meta.labels.take(),
        owner_references: meta.owner_references.take(),
        deletion_timestamp: meta.deletion_timestamp.take(),
        ..ObjectMeta::default()
    };
}

/// A Job as [`job_state`] reads it: its conditions.
pub(crate) fn project_job(job: &mut Job) {
    project_meta(&mut job.metadata);
    job.spec = None;
    job.status = Some(JobStatus {
        conditions: job.status.take().and_then(|s| s.conditions),
        ..JobStatus::default()
    });
}

/// A pod as [`job_state`] reads it: its phase and each container's name and end.
pub(crate) fn project_pod(pod: &mut Pod) {
    project_meta(&mut pod.metadata);
    pod.spec = None;
    let status = pod.status.take().unwrap_or_default();
    let ends = |statuses: Option<Vec<ContainerStatus>>| {
        statuses.map(|statuses| {
            statuses
                .into_iter()
                .map(|s| ContainerStatus {
                    name: s.name,
                    state: s.state.map(|state| ContainerState {
                        terminated: state.terminated,
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                })
                .collect()
        })
    };
    pod.status = Some(PodStatus {
        phase: status.phase,
        init_container_statuses: ends(status.init_container_statuses),
        container_statuses: ends(status.container_statuses),
        ..PodStatus::default()
    });
}
