//! What every reconcile shares: the client, the child caches, metrics, events, DNS.
//!
//! The DNS step itself lives in [`super::dns`], which does not depend on this module: it reads
//! the front end through [`super::dns::Frontend`], implemented here over the caches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef as Ref, Store};

use super::cache::kinds::{ChildKind, cached, kind_for};
use super::cache::{Child, Facts, ServiceFacts};
use crate::api::InSyncCloud;
use crate::telemetry::Metrics;

/// Shared state of the controller.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Child kinds with their caches.
    pub kinds: Vec<ChildKind>,
    /// Metrics.
    pub metrics: Metrics,
    /// Event recorder.
    pub recorder: Recorder,
    /// Per-cloud retry backoff.
    pub backoff: Backoff,
    /// DNS publisher; `None` when the operator runs without DNS.
    pub dns: Option<super::dns::DnsWiring>,
    /// The generation each cloud (by uid) was last pruned at.
    pub pruned_at: Mutex<HashMap<String, Option<i64>>>,
    /// Node addresses, watched only when DNS is wired (NodePort front ends publish them).
    pub nodes: Option<Store<Child>>,
    /// Whether every cache (children, and nodes with DNS) has listed what exists.
    pub synced: super::cache::Synced,
    /// Every cloud, for the ring and concurrency gates.
    pub fleet: super::fleet::Fleet,
    /// Every backup (the backup watch's cache), for `BackupHealthy` and restores by name.
    pub backups: Store<crate::api::InSyncCloudBackup>,
    /// The operator's Jobs and their pods (restore Jobs among them).
    pub(crate) jobs: super::cache::jobs::JobCache,
    /// The image restore Jobs run (the operator's own), `None` when the operator was not told.
    pub runner_image: Option<String>,
}

impl Context {
    /// Whether the cloud's caches must be scanned for orphans: its spec changed since the last
    /// complete prune, or this process has not pruned it yet.
    pub fn needs_prune(&self, uid: &str, generation: Option<i64>) -> bool {
        let pruned = self
            .pruned_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pruned.get(uid) != Some(&generation)
    }

    /// Records a complete prune of the cloud at `generation`.
    pub fn pruned(&self, uid: &str, generation: Option<i64>) {
        self.pruned_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(uid.to_owned(), generation);
    }

    /// The cached live counterpart of a desired object.
    pub fn cached(&self, namespace: &str, desired: &DynamicObject) -> Option<Arc<Child>> {
        let kind = kind_for(&self.kinds, desired).ok()?;
        cached(kind, namespace, &desired.name_any())
    }

    /// Whether the Secret `namespace/name` exists. The Secret cache holds every Secret of the
    /// watched namespaces (metadata only), not just the operator's: the spec references Secrets
    /// the user made.
    pub fn secret_exists(&self, namespace: &str, name: &str) -> bool {
        self.kind_named("Secret")
            .is_some_and(|kind| cached(kind, namespace, name).is_some())
    }

    /// The cached object `namespace/name` of the core or apps `kind` the operator watches.
    pub fn cached_named(&self, kind: &str, namespace: &str, name: &str) -> Option<Arc<Child>> {
        cached(self.kind_named(kind)?, namespace, name)
    }

    /// The backup `namespace/name`, if it exists.
    pub fn backup(&self, namespace: &str, name: &str) -> Option<crate::api::InSyncCloudBackup> {
        self.backups
            .get(&Ref::new(name).within(namespace))
            .map(|b| (*b).clone())
    }

    /// The backups of `cloud`.
    pub fn backups_of(&self, cloud: &InSyncCloud) -> Vec<crate::api::InSyncCloudBackup> {
        super::backups::backups_of(&self.backups, cloud.cloud_namespace(), cloud.cloud_name())
    }

    fn kind_named(&self, kind: &str) -> Option<&ChildKind> {
        self.kinds.iter().find(|k| {
            (k.resource.group.is_empty() || k.resource.group == "apps") && k.resource.kind == kind
        })
    }
}

impl super::dns::Frontend for Context {
    fn service(&self, namespace: &str, name: &str) -> Option<ServiceFacts> {
        let kind = self.kind_named("Service")?;
        cached(kind, namespace, name)?.service().cloned()
    }

    async fn node_addresses(&self) -> Vec<Vec<(String, String)>> {
        let Some(nodes) = &self.nodes else {
            return Vec::new();
        };
        // An empty cache before the first list would read as "no address" and unpublish.
        self.synced.wait().await;
        let mut all: Vec<(String, Vec<(String, String)>)> = nodes
            .state()
            .iter()
            .filter_map(|node| match &node.facts {
                Facts::Node(addresses) => Some((node.name.to_string(), addresses.clone())),
                _ => None,
            })
            .collect();
        // In name order, as a list returns them: the published record must not flap.
        all.sort();
        all.into_iter().map(|(_, addresses)| addresses).collect()
    }
}

/// Exponential backoff per cloud for transient errors: 5s, 10s, 20s ... capped at 5 minutes,
/// reset by a successful reconcile.
#[derive(Default)]
pub struct Backoff(Mutex<HashMap<Ref<DynamicObject>, u32>>);

impl Backoff {
    /// The next delay for `key`.
    pub fn next(&self, key: &Ref<DynamicObject>) -> Duration {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        let secs = 5u64.saturating_mul(1 << (*n - 1).min(6)).min(300);
        Duration::from_secs(secs)
    }

    /// Forgets failures of `key`.
    pub fn reset(&self, key: &Ref<DynamicObject>) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}
