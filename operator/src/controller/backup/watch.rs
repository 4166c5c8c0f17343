//! What the backup controller reads, from caches: the backups (one watch, shared with the cloud
//! controller, which reads them for `BackupHealthy` and is woken by their verifications), and
//! the Jobs and pods of backups and verifications, label-selected and projected to what
//! [`super::job::job_state`] reads. A reconcile reads nothing from the API server.

use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use k8s_openapi::api::batch::v1::{Job, JobStatus};
use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, ReflectHandle, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};

use super::job::{self, JobState};
use crate::api::{InSyncCloud, InSyncCloudBackup};
use crate::controller::cache::listed;
use crate::render::backup::{BACKUP_COMPONENT, BACKUP_LABEL, DELETE_COMPONENT};
use crate::render::keys;
use crate::render::verify::VERIFY_COMPONENT;

/// How many backup events a subscriber may fall behind before the watch waits for it.
const BACKUP_EVENTS_BUFFER: usize = 256;

/// The label the Job controller puts on a Job's pods.
const JOB_NAME_LABEL: &str = "job-name";

/// The backup controller's caches.
#[derive(Clone)]
pub(crate) struct Caches {
    /// The cloud controller's cache of clouds.
    pub clouds: Store<DeserializeGuard<InSyncCloud>>,
    /// Every backup (whole, without managedFields).
    pub backups: Store<InSyncCloudBackup>,
    /// Backup and verification Jobs ([`project_job`]).
    pub jobs: Store<Job>,
    /// Their pods ([`project_pod`]).
    pub pods: Store<Pod>,
}

impl Caches {
    /// The cloud `name` of `namespace`, if it exists and parses (one that does not parse is
    /// reported by the cloud controller).
    pub fn cloud(&self, namespace: &str, name: &str) -> Option<Arc<DeserializeGuard<InSyncCloud>>> {
        self.clouds
            .get(&ObjectRef::new(name).within(namespace))
            .filter(|guard| guard.0.is_ok())
    }

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
        Some(job::job_state(&found, &pods, main))
    }
}

/// The backups of one cloud in the backups' cache (copied: only that cloud's).
pub(crate) fn backups_of(
    store: &Store<InSyncCloudBackup>,
    namespace: &str,
    cloud: &str,
) -> Vec<InSyncCloudBackup> {
    store
        .state()
        .iter()
        .filter(|b| b.backup_namespace() == namespace && b.spec.cloud == cloud)
        .map(|b| (**b).clone())
        .collect()
}

/// The watches behind [`Caches`], started by [`Watches::start`]; their event streams are the
/// backup controller's triggers.
pub(crate) struct Watches {
    /// The backups' cache.
    pub backups: Store<InSyncCloudBackup>,
    /// The Jobs' cache.
    pub jobs: Store<Job>,
    /// The pods' cache.
    pub pods: Store<Pod>,
    /// Every backup as it changes, for the backup controller.
    pub backup_events: ReflectHandle<InSyncCloudBackup>,
    /// Jobs as they change: wake the backup that owns them.
    pub job_events: BoxStream<'static, Result<Job, watcher::Error>>,
    /// Pods as they change: a pod's end can be seen after its Job's.
    pub pod_events: BoxStream<'static, Result<Pod, watcher::Error>>,
}

impl Watches {
    /// Starts the backup watch (one, shared by its subscribers) and readies the Job and pod
    /// watches (driven by whoever polls their event streams); `namespace` as the operator's.
    /// Also returns every backup as it changes, for the cloud controller (a finished
    /// verification wakes its cloud): a subscriber that must be polled, or the watch stalls.
    pub fn start(
        client: &Client,
        namespace: Option<&str>,
    ) -> (Self, ReflectHandle<InSyncCloudBackup>) {
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
        let (backups, writer) = reflector::store_shared(BACKUP_EVENTS_BUFFER);
        // Subscribed before the watch starts: both see the first list.
        let backup_events = writer.subscribe().expect("a shared store has subscribers");
        let cloud_wakes = writer.subscribe().expect("a shared store has subscribers");
        let root = watcher(
            api::<InSyncCloudBackup>(client, namespace),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(|backup| backup.managed_fields_mut().clear())
        .reflect_shared(writer);
        tokio::spawn(root.for_each(|_| async {}));

        let selected = watcher::Config::default().labels(&format!(
            "{} in ({BACKUP_COMPONENT},{VERIFY_COMPONENT},{DELETE_COMPONENT}),{}={}",
            keys::COMPONENT,
            keys::MANAGED_BY,
            keys::MANAGER,
        ));
        let (jobs, job_writer) = reflector::store();
        let job_events = watcher(api::<Job>(client, namespace), selected.clone())
            .default_backoff()
            .modify(project_job)
            .reflect(job_writer)
            .touched_objects()
            .boxed();
        let (pods, pod_writer) = reflector::store();
        let pod_events = watcher(api::<Pod>(client, namespace), selected)
            .default_backoff()
            .modify(project_pod)
            .reflect(pod_writer)
            .touched_objects()
            .boxed();
        let watches = Self {
            backups,
            jobs,
            pods,
            backup_events,
            job_events,
            pod_events,
        };
        (watches, cloud_wakes)
    }

    /// One future per cache that resolves once it has listed, for [`crate::controller::cache::Synced`].
    pub fn listed(&self) -> Vec<BoxFuture<'static, ()>> {
        vec![
            listed(self.backups.clone()),
            listed(self.jobs.clone()),
            listed(self.pods.clone()),
        ]
    }
}

/// The backup a pod belongs to (its label), for waking it.
pub(crate) fn backup_of_pod(pod: &Pod) -> Option<ObjectRef<InSyncCloudBackup>> {
    let name = pod.labels().get(BACKUP_LABEL)?;
    Some(ObjectRef::new(name).within(&pod.namespace()?))
}

/// Identity, labels (the pods' `job-name`) and owners (the owning backup wakes on a change).
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

/// A Job as [`job::job_state`] reads it: its conditions.
pub(crate) fn project_job(job: &mut Job) {
    project_meta(&mut job.metadata);
    job.spec = None;
    job.status = Some(JobStatus {
        conditions: job.status.take().and_then(|s| s.conditions),
        ..JobStatus::default()
    });
}

/// A pod as [`job::job_state`] reads it: its phase and each container's name and end.
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_projected_pod_keeps_what_job_state_reads_and_nothing_else() {
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "b-backup-x", "namespace": "fcloud",
                         "labels": {"job-name": "b-backup", "insync.dev/backup": "b"},
                         "annotations": {"big": "x"},
                         "managedFields": [{"manager": "kubelet"}]},
            "spec": {"containers": [{"name": "backup", "image": "o"}]},
            "status": {"phase": "Succeeded", "podIP": "10.0.0.1",
                       "containerStatuses": [{"name": "backup", "image": "o", "imageID": "x",
                           "ready": false, "restartCount": 0,
                           "state": {"terminated": {"exitCode": 0, "message": "{\"r\":1}"}}}]}
        }))
        .expect("pod");
        project_pod(&mut pod);
        assert_eq!(pod.spec, None);
        assert_eq!(pod.metadata.annotations, None);
        assert_eq!(pod.metadata.managed_fields, None);
        assert_eq!(
            backup_of_pod(&pod),
            Some(ObjectRef::new("b").within("fcloud"))
        );
        let status = pod.status.clone().expect("status");
        assert_eq!(status.phase.as_deref(), Some("Succeeded"));
        assert_eq!(status.pod_ip, None);
        let main = &status.container_statuses.expect("statuses")[0];
        assert_eq!(main.image, "");
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "b-backup"},
            "status": {"conditions": [{"type": "Complete", "status": "True"}]}
        }))
        .expect("job");
        assert_eq!(
            job::job_state(&job, &[pod], "backup"),
            JobState::Succeeded {
                message: Some("{\"r\":1}".to_owned())
            }
        );
    }

    #[test]
    fn a_projected_job_keeps_its_conditions_and_owner() {
        let mut job: Job = serde_json::from_value(json!({
            "metadata": {"name": "b-backup", "namespace": "fcloud",
                         "ownerReferences": [{"apiVersion": "insync.dev/v1alpha1",
                             "kind": "InSyncCloudBackup", "name": "b", "uid": "u"}]},
            "spec": {"template": {"spec": {"containers": [{"name": "backup", "image": "o"}]}}},
            "status": {"active": 1, "conditions": [{"type": "Failed", "status": "True",
                "reason": "DeadlineExceeded"}]}
        }))
        .expect("job");
        project_job(&mut job);
        assert_eq!(job.spec, None);
        assert_eq!(job.owner_references().len(), 1);
        let status = job.status.clone().expect("status");
        assert_eq!(status.active, None);
        assert!(matches!(
            job::job_state(&job, &[], "backup"),
            JobState::Failed { .. }
        ));
    }
}
