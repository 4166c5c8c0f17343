//! What every reconcile shares: the client, the child caches, metrics, events, DNS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::ObjectRef as Ref;

use super::apply::ChildKind;
use super::error::Error;
use super::status::Cond;
use crate::api::{DnsProvider, InSyncCloud, condition};
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
}

/// The outcome of the DNS step for one cloud.
pub struct DnsOutcome {
    /// Host name (or address) clients use.
    pub endpoint: Option<String>,
    /// The DNSReady condition.
    pub condition: Cond,
    /// Whether DNS counts as ready for the Ready condition.
    pub ready: bool,
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
    pub fn cached(&self, namespace: &str, desired: &DynamicObject) -> Option<Arc<DynamicObject>> {
        let kind = super::apply::kind_for(&self.kinds, desired).ok()?;
        super::apply::cached(kind, namespace, &desired.name_any())
    }

    /// Publishes (or reports) the cloud's DNS name.
    pub async fn dns_step(&self, cloud: &InSyncCloud) -> DnsOutcome {
        let dns_off = cloud
            .spec
            .dns
            .as_ref()
            .is_none_or(|d| d.provider == DnsProvider::None);
        if let (true, Some(wiring)) = (dns_off, &self.dns) {
            wiring.forget(cloud);
        }
        let Some(dns_spec) = &cloud.spec.dns else {
            return DnsOutcome {
                endpoint: None,
                condition: Cond::new(
                    condition::DNS_READY,
                    true,
                    "NotConfigured",
                    "spec.dns is not set; reach the cloud through its Service",
                ),
                ready: true,
            };
        };
        let hostname = cloud.hostname();
        if dns_spec.provider == DnsProvider::None {
            return DnsOutcome {
                endpoint: hostname,
                condition: Cond::new(
                    condition::DNS_READY,
                    true,
                    "Disabled",
                    format!(
                        "dns.provider is none: create the record for {} yourself",
                        cloud.hostname().unwrap_or_default()
                    ),
                ),
                ready: true,
            };
        }
        match &self.dns {
            Some(wiring) => wiring.publish(self, cloud).await,
            None => DnsOutcome {
                endpoint: hostname,
                condition: Cond::new(
                    condition::DNS_READY,
                    false,
                    "OperatorDNSDisabled",
                    "spec.dns.provider is route53 but the operator runs without Route53 (start it with --dns-owner-id)",
                ),
                ready: false,
            },
        }
    }

    /// Removes the cloud's DNS records (deletion).
    pub async fn dns_remove(&self, cloud: &InSyncCloud) -> Result<(), Error> {
        match &self.dns {
            Some(wiring) => wiring.remove(cloud).await,
            None => Ok(()),
        }
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
