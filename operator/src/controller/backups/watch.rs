//! What the backup controller reads, from caches: the backups (one watch, shared with the cloud
//! controller, which reads them for `BackupHealthy` and is woken by their verifications), and
//! the Jobs and pods of backups and verifications ([`crate::controller::cache::jobs`]). A
//! reconcile reads nothing from the API server.

use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, ReflectHandle, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::api::{InSyncCloud, InSyncCloudBackup};
use crate::controller::cache::job_state::JobState;
use crate::controller::cache::jobs::{JobCache, JobEvents};
use crate::controller::cache::listed;
use crate::render::backup::BACKUP_LABEL;

/// How many backup events a subscriber may fall behind before the watch waits for it.
const BACKUP_EVENTS_BUFFER: usize = 256;

/// The backup controller's caches.
#[derive(Clone)]
pub(crate) struct Caches {
    /// The cloud controller's cache of clouds.
    pub clouds: Store<DeserializeGuard<InSyncCloud>>,
    /// Every backup (whole, without managedFields).
    pub backups: Store<InSyncCloudBackup>,
    /// The operator's Jobs and their pods.
    pub jobs: JobCache,
}

impl Caches {
    /// The cloud `name` of `namespace`, if it exists and parses (one that does not parse is
    /// reported by the cloud controller).
    pub fn cloud(&self, namespace: &str, name: &str) -> Option<Arc<DeserializeGuard<InSyncCloud>>> {
        self.clouds
            .get(&ObjectRef::new(name).within(namespace))
            .filter(|guard| guard.0.is_ok())
    }

    /// The oldest backup of `backup`'s cloud that has not finished and was made before it
    /// (creation time, then name), if any: that one runs first.
    pub fn older_unfinished(&self, backup: &InSyncCloudBackup) -> Option<String> {
        let key = |b: &InSyncCloudBackup| {
            (
                b.metadata.creation_timestamp.as_ref().map(|t| t.0),
                b.backup_name().to_owned(),
            )
        };
        backups_of(&self.backups, backup.backup_namespace(), &backup.spec.cloud)
            .into_iter()
            .filter(|b| {
                !b.phase().is_final()
                    && b.metadata.deletion_timestamp.is_none()
                    && !super::retention::is_expired(b)
                    && key(b) < key(backup)
            })
            .min_by_key(key)
            .map(|b| b.backup_name().to_owned())
    }

    /// The cloud of `namespace` being restored from the backup `name`, if any.
    pub fn restoring_from(&self, namespace: &str, name: &str) -> Option<String> {
        self.clouds.state().iter().find_map(|guard| {
            let cloud = guard.0.as_ref().ok()?;
            (cloud.cloud_namespace() == namespace && cloud.restoring_from() == Some(name))
                .then(|| cloud.cloud_name().to_owned())
        })
    }

    /// Where the Job `name` stands, read with its pods; `main` is the container that reports.
    pub fn job(&self, namespace: &str, name: &str, main: &str) -> Option<JobState> {
        self.jobs.job(namespace, name, main)
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
    /// Every backup as it changes, for the backup controller.
    pub backup_events: ReflectHandle<InSyncCloudBackup>,
    /// The Jobs' and pods' caches.
    pub jobs: JobCache,
    /// Jobs and pods as they change: wake the backup that owns them.
    pub job_events: JobEvents,
}

impl Watches {
    /// Starts the backup watch (one, shared by its subscribers); `namespace` as the operator's,
    /// `jobs` the Job watches' cache and this controller's share of their events. Also
    /// returns every backup as it changes, for the cloud controller (a finished verification
    /// wakes its cloud): a subscriber that must be polled, or the watch stalls.
    pub fn start(
        client: &Client,
        namespace: Option<&str>,
        jobs: JobCache,
        job_events: JobEvents,
    ) -> (Self, ReflectHandle<InSyncCloudBackup>) {
        let api: Api<InSyncCloudBackup> = match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let (backups, writer) = reflector::store_shared(BACKUP_EVENTS_BUFFER);
        // Subscribed before the watch starts: both see the first list.
        let backup_events = writer.subscribe().expect("a shared store has subscribers");
        let cloud_wakes = writer.subscribe().expect("a shared store has subscribers");
        let root = watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|backup| {
                crate::controller::cache::trim_tenant_metadata(kube::Resource::meta_mut(backup))
            })
            .reflect_shared(writer);
        tokio::spawn(root.for_each(|_| async {}));
        let watches = Self {
            backups,
            backup_events,
            jobs,
            job_events,
        };
        (watches, cloud_wakes)
    }

    /// The future that resolves once the backups' cache has listed, for
    /// [`crate::controller::cache::Synced`] (the Jobs' are the cloud controller's to wait for).
    pub fn listed(&self) -> Vec<BoxFuture<'static, ()>> {
        vec![listed(self.backups.clone())]
    }
}

/// The backup a pod belongs to (its label), for waking it.
pub(crate) fn backup_of_pod(pod: &Pod) -> Option<ObjectRef<InSyncCloudBackup>> {
    let name = pod.labels().get(BACKUP_LABEL)?;
    Some(ObjectRef::new(name).within(&pod.namespace()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::cache::job_state as job;
    use crate::controller::cache::jobs::{project_job, project_pod};
    use k8s_openapi::api::batch::v1::Job;
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
