//! The controller's caches hold projections, never whole objects: what the operator reads of a
//! child (or Secret, or Node), computed once in the watch stream. At 1000 clouds of 31 children
//! whole objects cost hundreds of MiB; a projection is a few hundred bytes.
//!
//! Drift is seen through [`digest`]: the projection carries a digest of the live values of the
//! fields the operator owns, compared with the digest of what it would send.

pub mod digest;
mod synced;

use std::borrow::Cow;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DynamicObject;
use kube::core::{ApiResource, DynamicResourceScope, PartialObjectMeta};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::observe::{self, WorkloadCounts};
use crate::api::Quantity;
pub use digest::Digest;
pub use synced::{Synced, listed};

/// What the operator knows of one live object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Child {
    /// Identity, owners and deletion only (see [`trim`]).
    pub metadata: ObjectMeta,
    /// Digest of the live values of the fields the operator owns; `None` when it owns none
    /// (or the object was watched metadata-only).
    pub owned: Option<Digest>,
    /// What is read of the object's kind.
    pub facts: Facts,
}

/// Per kind, what the operator reads of a live object beyond its metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Facts {
    /// Nothing (ConfigMaps, Secrets, PDBs, NetworkPolicies).
    #[default]
    None,
    /// A Deployment or StatefulSet.
    Workload(Workload),
    /// A PersistentVolumeClaim: its requested storage.
    Claim {
        /// `spec.resources.requests.storage`.
        storage: Option<Quantity>,
    },
    /// A Service: where it can be reached.
    Service(ServiceFacts),
    /// A Node: its addresses by type (`InternalIP`, `ExternalIP`), in the Node's order.
    Node(Vec<(String, String)>),
}

/// A live Deployment or StatefulSet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Workload {
    /// Replica counts, settledness and template tag ([`observe::counts`]).
    pub counts: WorkloadCounts,
    /// A StatefulSet's `spec.volumeClaimTemplates`, without what the API server adds
    /// (status, apiVersion/kind); `Null` for a Deployment. Immutable in the API, so compared
    /// with what render wants to decide on recreating the set.
    pub claim_templates: Value,
}

/// A live Service: what the DNS step publishes for a LoadBalancer front end (a NodePort one
/// publishes node addresses; its type and ports come from the cloud's spec).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceFacts {
    /// `status.loadBalancer.ingress`: host names or IPs.
    pub ingress: Vec<Ingress>,
}

/// One LoadBalancer ingress point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ingress {
    /// A host name.
    Hostname(String),
    /// An IP address.
    Ip(String),
}

/// The kind of a [`Child`], shared: every cache key holds its kind, and a shared one costs a
/// pointer where an `ApiResource` costs five strings per cached object.
pub type ChildType = Arc<ApiResource>;

impl Resource for Child {
    type DynamicType = ChildType;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ChildType) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }
    fn group(dt: &ChildType) -> Cow<'_, str> {
        dt.group.as_str().into()
    }
    fn version(dt: &ChildType) -> Cow<'_, str> {
        dt.version.as_str().into()
    }
    fn api_version(dt: &ChildType) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }
    fn plural(dt: &ChildType) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The metadata a projection keeps: name and namespace (the store's key), owner references
/// (pruning, and the owner lookup that wakes a cloud) and deletion. No labels or annotations:
/// nothing reads them off a live object (the applied-hash annotation is inside the digest).
/// No uid, resourceVersion or generation either (the store copies the first two into every
/// key): the watcher tracks versions on the objects it receives, before they are projected,
/// and the generation is read into the workload counts.
pub fn trim(meta: ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        deletion_timestamp: meta.deletion_timestamp,
        owner_references: meta.owner_references,
        ..ObjectMeta::default()
    }
}

/// Projects a child of `kind` watched whole. `manager` is the operator's field manager.
pub fn project(kind: &str, object: DynamicObject, manager: &str) -> Child {
    let DynamicObject {
        mut metadata,
        data: mut body,
        ..
    } = object;
    let managed = metadata.managed_fields.take().unwrap_or_default();
    // The walk reads owned metadata too (labels, annotations, owner references).
    if let Some(map) = body.as_object_mut() {
        map.insert(
            "metadata".to_owned(),
            serde_json::to_value(&metadata).unwrap_or_default(),
        );
    }
    Child {
        owned: digest::of_owned(&managed, manager, &body),
        facts: facts_of(kind, &body),
        metadata: trim(metadata),
    }
}

/// Projects an object that carries its apiVersion/kind, as rendered ones do (for tests of what
/// the operator reads off a workload it rendered).
pub fn project_typed(object: &DynamicObject, manager: &str) -> Child {
    let kind = object
        .types
        .as_ref()
        .map(|t| t.kind.clone())
        .unwrap_or_default();
    project(&kind, object.clone(), manager)
}

/// Projects an object watched metadata-only (Secrets: never cached with their data).
pub fn project_meta(object: PartialObjectMeta<DynamicObject>) -> Child {
    Child {
        metadata: trim(object.metadata),
        owned: None,
        facts: Facts::None,
    }
}

fn facts_of(kind: &str, body: &Value) -> Facts {
    match kind {
        "Deployment" | "StatefulSet" => Facts::Workload(Workload {
            counts: observe::counts(kind, body),
            claim_templates: body
                .pointer("/spec/volumeClaimTemplates")
                .map(|t| digest::normalize(t).unwrap_or(Value::Null))
                .unwrap_or(Value::Null),
        }),
        "PersistentVolumeClaim" => Facts::Claim {
            storage: body
                .pointer("/spec/resources/requests/storage")
                .and_then(Value::as_str)
                .and_then(|s| Quantity::parse(s).ok()),
        },
        "Service" => Facts::Service(ServiceFacts {
            ingress: body
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    let text = |k: &str| i.get(k).and_then(Value::as_str).map(str::to_owned);
                    text("hostname")
                        .map(Ingress::Hostname)
                        .or_else(|| text("ip").map(Ingress::Ip))
                })
                .collect(),
        }),
        "Node" => Facts::Node(
            body.pointer("/status/addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|a| {
                    Some((
                        a.get("type")?.as_str()?.to_owned(),
                        a.get("address")?.as_str()?.to_owned(),
                    ))
                })
                .collect(),
        ),
        _ => Facts::None,
    }
}

/// A watch event of whole objects as an event of projections.
pub fn map_event<K>(event: watcher::Event<K>, f: impl Fn(K) -> Child) -> watcher::Event<Child> {
    use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};
    match event {
        Apply(o) => Apply(f(o)),
        Delete(o) => Delete(f(o)),
        Init => Init,
        InitApply(o) => InitApply(f(o)),
        InitDone => InitDone,
    }
}

impl Child {
    /// The workload facts of a Deployment or StatefulSet.
    pub fn workload(&self) -> Option<&Workload> {
        match &self.facts {
            Facts::Workload(w) => Some(w),
            _ => None,
        }
    }

    /// A claim's requested storage.
    pub fn storage(&self) -> Option<Quantity> {
        match &self.facts {
            Facts::Claim { storage } => *storage,
            _ => None,
        }
    }

    /// A Service's facts.
    pub fn service(&self) -> Option<&ServiceFacts> {
        match &self.facts {
            Facts::Service(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the object is being deleted.
    pub fn deleting(&self) -> bool {
        self.meta().deletion_timestamp.is_some()
    }

    /// Whether `uid` is the object's controlling owner.
    pub fn controlled_by(&self, uid: &str) -> bool {
        self.owner_references()
            .iter()
            .any(|o| o.uid == uid && o.controller == Some(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).expect("object")
    }

    #[test]
    fn a_projection_keeps_what_is_read_and_nothing_else() {
        let child = project(
            "StatefulSet",
            object(json!({
                "metadata": {"name": "s", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                    "generation": 3, "labels": {"a": "b"},
                    "annotations": {"x": "y", crate::render::keys::WORKLOAD_VERSION: "1.0"},
                    "ownerReferences": [{"apiVersion": "insync.dev/v1alpha1", "kind": "InSyncCloud",
                        "name": "c", "uid": "cloud", "controller": true}]},
                "spec": {"replicas": 2,
                    "volumeClaimTemplates": [{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": {"name": "data"}, "spec": {"volumeMode": "Filesystem",
                        "resources": {"requests": {"storage": "5Gi"}}}, "status": {"phase": "Pending"}}]},
                "status": {"observedGeneration": 3, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2,
                    "currentRevision": "r1", "updateRevision": "r1"}
            })),
            "insync-operator",
        );
        assert_eq!(child.name_any(), "s");
        assert!(child.controlled_by("cloud"));
        assert!(child.labels().is_empty() && child.annotations().is_empty());
        assert_eq!(child.meta().resource_version, None);
        assert_eq!(child.owned, None, "no managedFields: nothing owned");
        let workload = child.workload().expect("workload");
        assert_eq!(
            workload.counts,
            WorkloadCounts {
                desired: 2,
                ready: 2,
                updated: 2,
                settled: true,
                tag: Some("1.0".into()),
                revision: None,
                config_maps: Vec::new(),
            }
        );
        assert_eq!(
            workload.claim_templates,
            json!([{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "Quantity(5368709120.0)"}}}}])
        );

        let claim = project(
            "PersistentVolumeClaim",
            object(
                json!({"metadata": {"name": "c"}, "spec": {"resources": {"requests": {"storage": "5120Mi"}}}}),
            ),
            "insync-operator",
        );
        assert_eq!(claim.storage(), Quantity::parse("5Gi").ok());

        let service = project(
            "Service",
            object(
                json!({"metadata": {"name": "f"}, "spec": {"type": "LoadBalancer"},
                "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example"}, {"ip": "10.0.0.1"}]}}}),
            ),
            "insync-operator",
        );
        assert_eq!(
            service.service().map(|s| s.ingress.clone()),
            Some(vec![
                Ingress::Hostname("lb.example".into()),
                Ingress::Ip("10.0.0.1".into())
            ])
        );

        let node = project(
            "Node",
            object(json!({"metadata": {"name": "n"}, "status": {"addresses": [
                {"type": "InternalIP", "address": "10.1.1.1"}, {"type": "Hostname", "address": "n"}],
                "images": [{"names": ["big"], "sizeBytes": 1}]}})),
            "insync-operator",
        );
        assert_eq!(
            node.facts,
            Facts::Node(vec![
                ("InternalIP".into(), "10.1.1.1".into()),
                ("Hostname".into(), "n".into())
            ])
        );
    }

    #[test]
    fn a_deployment_is_settled_only_when_every_replica_is_available() {
        let counts = |available: i64| {
            project(
                "Deployment",
                object(json!({"metadata": {"name": "d", "generation": 2},
                    "spec": {"replicas": 2},
                    "status": {"observedGeneration": 2, "replicas": 2, "readyReplicas": 2,
                        "updatedReplicas": 2, "availableReplicas": available}})),
                "insync-operator",
            )
            .workload()
            .expect("workload")
            .counts
            .settled
        };
        assert!(counts(2));
        assert!(!counts(1));
    }
}
