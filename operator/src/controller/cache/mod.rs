//! The controller's caches hold projections, never whole objects: what the operator reads of a
//! child (or Secret, or Node), computed once in the watch stream. At 1000 clouds of 31 children
//! whole objects cost hundreds of MiB; a projection is a few hundred bytes.
//!
//! Drift is seen through [`digest`]: the projection carries a digest of the live values of the
//! fields the operator owns, compared with the digest of what it would send.

pub mod digest;
pub(crate) mod job_state;
pub(crate) mod jobs;
pub mod kinds;
mod synced;
pub mod watch;
pub mod workload;

use std::borrow::Cow;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use kube::api::DynamicObject;
use kube::core::{ApiResource, DeserializeGuard, PartialObjectMeta};
use kube::runtime::reflector::{Lookup, ObjectRef};
use kube::runtime::watcher;
use serde_json::Value;

use crate::api::{InSyncCloud, Quantity};
pub use digest::Digest;
pub use synced::{Synced, listed};
pub use workload::WorkloadCounts;

/// The annotations the operator reads on a cloud or a backup: its own (`insync.dev/expired`,
/// `insync.dev/verify-requested`, ...).
const OWN_ANNOTATIONS: &str = "insync.dev/";

/// What of a tenant's cloud or backup metadata the caches keep: no managedFields, and only
/// the operator's own annotations. Clouds and backups are cached whole (their spec and status
/// are the operator's input), but their annotations are anyone's: a tenant's megabytes of
/// `kubectl.kubernetes.io/last-applied-configuration` or of its own annotations would
/// otherwise sit in the shared operator's memory, and be parsed again on every re-list.
pub(crate) fn trim_tenant_metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.retain(|key, _| key.starts_with(OWN_ANNOTATIONS));
    }
}

/// What the operator knows of one live object: a few words per object, none of them a whole
/// `ObjectMeta` (measured: ~1.25 KB per cached child with one, claim templates as JSON trees).
///
/// Not a kube `Resource`: the reflector's store only needs [`Lookup`] (name and namespace for
/// its key), and the watch wakes the owning cloud through [`Child::cloud`] instead of kube's
/// owner-reference trigger, which reads a whole `ObjectMeta`.
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    /// `metadata.name`.
    pub name: Box<str>,
    /// `metadata.namespace` (`None` for a Node), shared by every object of the namespace.
    pub namespace: Option<Arc<str>>,
    /// The InSyncCloud that owns the object: the controlling one, or else the first (pruning,
    /// and the owner lookup that wakes a cloud). Owner references of other kinds are dropped.
    pub owner: Option<Owner>,
    /// The cloud an object without a cloud owner reference belongs to, by its
    /// `app.kubernetes.io/instance` label when the operator manages it: generated Secrets carry
    /// no owner reference (they outlive their cloud, with its volumes), yet their deletion must
    /// wake the cloud.
    pub instance: Option<Arc<str>>,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// Digest of the live values of the fields the operator owns; `None` when it owns none
    /// (or the object was watched metadata-only).
    pub owned: Option<Digest>,
    /// What is read of the object's kind.
    pub facts: Facts,
}

/// The InSyncCloud owning a [`Child`]. Name and uid are shared by the ~31 children of a cloud.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The cloud's name (in the child's namespace).
    pub name: Arc<str>,
    /// The cloud's uid.
    pub uid: Arc<str>,
    /// Whether it is the controlling owner reference.
    pub controller: bool,
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
    /// Replica counts, settledness and template tag ([`workload::counts`]).
    pub counts: WorkloadCounts,
    /// A StatefulSet's `spec.volumeClaimTemplates` as [`digest::of_claim_templates`] (the
    /// fields render sets, normalized); `None` for a Deployment. Immutable in the API, so
    /// compared with what render wants to decide on recreating the set.
    pub claim_templates: Option<Digest>,
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

impl Lookup for Child {
    type DynamicType = ChildType;

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
    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.name))
    }
    fn namespace(&self) -> Option<Cow<'_, str>> {
        self.namespace.as_deref().map(Cow::Borrowed)
    }
    // No resourceVersion or uid: the store would copy them into every key, and the watcher
    // tracks versions on the objects it receives, before they are projected.
    fn resource_version(&self) -> Option<Cow<'_, str>> {
        None
    }
    fn uid(&self) -> Option<Cow<'_, str>> {
        None
    }
}

/// Shared copies of strings many cached objects repeat (namespaces, the owning cloud's name
/// and uid): one allocation per distinct value instead of one per object. Values no object
/// holds any more are dropped when the table has doubled since it was last swept.
#[derive(Default)]
struct Interner {
    strings: std::collections::HashSet<Arc<str>>,
    swept_at: usize,
}

static INTERNED: std::sync::Mutex<Option<Interner>> = std::sync::Mutex::new(None);

/// The shared copy of `text`.
fn intern(text: &str) -> Arc<str> {
    let mut guard = INTERNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let table = guard.get_or_insert_with(Interner::default);
    if let Some(shared) = table.strings.get(text) {
        return shared.clone();
    }
    if table.strings.len() >= 2 * table.swept_at.max(512) {
        table.strings.retain(|s| Arc::strong_count(s) > 1);
        table.swept_at = table.strings.len();
    }
    let shared: Arc<str> = Arc::from(text);
    table.strings.insert(shared.clone());
    shared
}

/// The InSyncCloud owner of an object with these owner references (see [`Child::owner`]).
fn cloud_owner(references: Option<&[OwnerReference]>) -> Option<Owner> {
    let api_version = <InSyncCloud as Resource>::api_version(&());
    let kind = <InSyncCloud as Resource>::kind(&());
    let clouds = || {
        references
            .unwrap_or_default()
            .iter()
            .filter(|o| o.api_version == api_version && o.kind == kind)
    };
    let owner = clouds()
        .find(|o| o.controller == Some(true))
        .or_else(|| clouds().next())?;
    Some(Owner {
        name: intern(&owner.name),
        uid: intern(&owner.uid),
        controller: owner.controller == Some(true),
    })
}

/// The cloud named by the instance label of an object the operator manages, for one without a
/// cloud owner (see [`Child::instance`]).
fn managed_instance(meta: &ObjectMeta) -> Option<Arc<str>> {
    use crate::render::keys::{INSTANCE, MANAGED_BY, MANAGER};
    let labels = meta.labels.as_ref()?;
    if labels.get(MANAGED_BY).map(String::as_str) != Some(MANAGER) {
        return None;
    }
    labels.get(INSTANCE).map(|name| intern(name))
}

/// What a projection keeps of an object's metadata: name and namespace (the store's key), the
/// owning cloud and deletion. No labels or annotations beyond the instance of an unowned
/// object: nothing reads them off a live object (the applied-hash annotation is inside the
/// digest). The generation is read into the workload counts before this.
fn child_of(meta: &ObjectMeta, owned: Option<Digest>, facts: Facts) -> Child {
    let owner = cloud_owner(meta.owner_references.as_deref());
    Child {
        name: meta.name.as_deref().unwrap_or_default().into(),
        namespace: meta.namespace.as_deref().map(intern),
        instance: owner.is_none().then(|| managed_instance(meta)).flatten(),
        owner,
        deleting: meta.deletion_timestamp.is_some(),
        owned,
        facts,
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
    child_of(
        &metadata,
        digest::of_owned(&managed, manager, &body),
        facts_of(kind, &body),
    )
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
    child_of(&object.metadata, None, Facts::None)
}

fn facts_of(kind: &str, body: &Value) -> Facts {
    match kind {
        "Deployment" | "StatefulSet" => Facts::Workload(Workload {
            counts: workload::counts(kind, body),
            claim_templates: body
                .pointer("/spec/volumeClaimTemplates")
                .map(digest::of_claim_templates),
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

    /// Whether `uid` is the object's controlling owner.
    pub fn controlled_by(&self, uid: &str) -> bool {
        self.owner
            .as_ref()
            .is_some_and(|o| o.controller && &*o.uid == uid)
    }

    /// The cloud to wake when this object changes (a deletion included): its InSyncCloud
    /// owner, or the cloud an unowned managed object belongs to, in its namespace.
    pub fn cloud(&self) -> Option<ObjectRef<DeserializeGuard<InSyncCloud>>> {
        let name = match (&self.owner, &self.instance) {
            (Some(owner), _) => &owner.name,
            (None, Some(instance)) => instance,
            (None, None) => return None,
        };
        let cloud = ObjectRef::new(name);
        Some(match self.namespace.as_deref() {
            Some(ns) => cloud.within(ns),
            None => cloud,
        })
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
    fn an_unowned_generated_secret_wakes_its_cloud_and_a_strangers_secret_none() {
        let secret = |labels: Value| {
            let object: PartialObjectMeta<DynamicObject> = serde_json::from_value(json!({
                "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                "metadata": {"name": "fcloud-mysql-credentials", "namespace": "fcloud",
                    "labels": labels}
            }))
            .expect("metadata");
            project_meta(object)
        };
        let generated = secret(json!({
            crate::render::keys::MANAGED_BY: crate::render::keys::MANAGER,
            crate::render::keys::INSTANCE: "fcloud",
        }));
        assert_eq!(
            generated.cloud(),
            Some(ObjectRef::new("fcloud").within("fcloud"))
        );
        assert_eq!(generated.owner, None, "no owner: pruning never deletes it");
        let theirs = secret(json!({crate::render::keys::INSTANCE: "fcloud"}));
        assert_eq!(theirs.cloud(), None);
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
        assert_eq!(&*child.name, "s");
        assert_eq!(child.namespace.as_deref(), Some("ns"));
        assert!(child.controlled_by("cloud"));
        assert!(!child.controlled_by("other"));
        assert!(!child.deleting);
        assert_eq!(
            child.cloud(),
            Some(ObjectRef::new("c").within("ns")),
            "a change wakes the owning cloud"
        );
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
        // What the API server added (status, apiVersion/kind, the default volumeMode) is no
        // part of the templates' digest.
        assert_eq!(
            workload.claim_templates,
            Some(digest::of_claim_templates(
                &json!([{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "5120Mi"}}}}])
            ))
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
    fn a_projection_keeps_the_cloud_owner_only_and_shares_its_strings() {
        let child = |name: &str, owners: Value| {
            project(
                "ConfigMap",
                object(json!({"metadata": {"name": name, "namespace": "ns",
                    "deletionTimestamp": "2026-11-29T00:00:00Z", "ownerReferences": owners}})),
                "insync-operator",
            )
        };
        let cloud = |uid: &str, controller: bool| {
            json!({"apiVersion": "insync.dev/v1alpha1", "kind": "InSyncCloud", "name": "c",
                "uid": uid, "controller": controller})
        };
        let other = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r",
            "uid": "rs", "controller": true});

        let a = child(
            "a",
            json!([other.clone(), cloud("u1", false), cloud("u2", true)]),
        );
        assert!(a.deleting);
        assert!(a.controlled_by("u2"), "the controlling cloud is kept");
        assert!(!a.controlled_by("rs"), "owners of other kinds are dropped");
        let b = child("b", json!([cloud("u2", true)]));
        let (a_owner, b_owner) = (a.owner.expect("owner"), b.owner.expect("owner"));
        assert!(
            Arc::ptr_eq(&a_owner.uid, &b_owner.uid),
            "one uid for every child"
        );
        assert!(Arc::ptr_eq(
            a.namespace.as_ref().expect("ns"),
            b.namespace.as_ref().expect("ns")
        ));

        let c = child("c", json!([cloud("u3", false)]));
        assert!(!c.controlled_by("u3"), "an owner, not the controller");
        assert!(c.cloud().is_some(), "but its changes still wake it");
        assert_eq!(child("d", json!([other])).cloud(), None);
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

#[cfg(test)]
mod trim_tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Issue 18, item 4: a tenant's annotations reached the shared operator's caches whole.
    #[test]
    fn only_the_operators_own_annotations_stay_in_the_cache() {
        let mut meta = ObjectMeta {
            annotations: Some(BTreeMap::from([
                ("insync.dev/expired".to_owned(), "retention".to_owned()),
                (
                    "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
                    "x".repeat(200 * 1024),
                ),
                ("tenant.example/blob".to_owned(), "y".repeat(200 * 1024)),
            ])),
            managed_fields: Some(vec![Default::default()]),
            ..ObjectMeta::default()
        };
        trim_tenant_metadata(&mut meta);
        assert_eq!(meta.managed_fields, None);
        let kept: Vec<&str> = meta
            .annotations
            .iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(kept, ["insync.dev/expired"]);
    }
}
