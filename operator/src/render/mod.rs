//! Pure builders: an `InSyncCloud` in, every desired Kubernetes object out.
//!
//! Nothing here touches the network or the clock, so the same function serves the controller,
//! `insync-operator render -f`, and the unit and snapshot tests.
//!
//! Every component has its own module (`mysql`, `bynamo`, `minio`, `cloudmaster`, `nodes`,
//! `haproxy`); the shapes they share live in one place each: names, labels and owner references
//! in `meta`, pods (image, security context, resources, probes, config hash) in `pod`,
//! Deployments, StatefulSets, Services, PDBs and ConfigMaps in `workload`, how pods reach the
//! datastores in `wiring`, generated credentials in `secrets` and NetworkPolicies in `network`.
//!
//! The Jobs the operator runs for backups are rendered here too, by their own functions:
//! `backup` (taking one, deleting one's files), `restore` and `verify`, all from the runner-pod
//! toolkit in `job`, their init containers built in `container`.
//! Builders produce typed k8s-openapi objects; [`to_dynamic`] turns them into
//! [`DynamicObject`]s as they are collected.

use std::collections::BTreeMap;

use kube::Resource;
use kube::api::DynamicObject;
use serde::Serialize;

use crate::api::InSyncCloud;

pub mod backup;
mod bynamo;
mod cloudmaster;
mod container;
mod haproxy;
pub mod job;
mod meta;
mod minio;
mod mysql;
mod network;
mod nodes;
mod pod;
pub mod restore;
pub mod revision;
mod secrets;
pub mod verify;
mod wiring;
mod workload;

pub use haproxy::haproxy_cfg;
pub use meta::CLUSTER_DOMAIN;
pub use pod::{MINIO_DEFAULT_TAG, MYSQL_DEFAULT_TAG};

/// Label and annotation keys the rendered objects carry, for the controller to select, prune
/// and inspect them.
pub mod keys {
    /// `app.kubernetes.io/name`: always `insync`.
    pub const NAME: &str = "app.kubernetes.io/name";
    /// `app.kubernetes.io/instance`: the cloud's name.
    pub const INSTANCE: &str = "app.kubernetes.io/instance";
    /// `app.kubernetes.io/component`: [`super::Component::name`].
    pub const COMPONENT: &str = "app.kubernetes.io/component";
    /// `app.kubernetes.io/version`: the image tag the object's component runs (or is pinned to),
    /// for people: a label value holds at most 63 characters and no leading `_`, so long tags
    /// are shortened. The controller reads [`WORKLOAD_VERSION`] instead.
    pub const VERSION: &str = "app.kubernetes.io/version";
    /// Deployment and StatefulSet annotation: the image tag of the workload's pod template, in
    /// full. It is on the workload, not in the template, so that adding it restarts no pod.
    pub(crate) const WORKLOAD_VERSION: &str = "insync.dev/version";
    /// Deployment and StatefulSet annotation: the revision of the workload's pod template
    /// (see [`super::revision`]): what the rollout compares to tell that its pods would restart.
    pub(crate) const REVISION: &str = "insync.dev/revision";
    /// `app.kubernetes.io/managed-by`: always [`MANAGER`].
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// `app.kubernetes.io/part-of`: always `insync`.
    pub const PART_OF: &str = "app.kubernetes.io/part-of";
    /// Index of a storage node (`0..nodes.replicas`), on its Deployment, pods and data PVC.
    pub const NODE_INDEX: &str = "insync.dev/node-index";
    /// Pod-template annotation: sha256 of the ConfigMap data the pod mounts (the ConfigMap is
    /// named after its first characters, so each revision of the config has its own).
    pub const CONFIG_HASH: &str = "insync.dev/config-hash";
    /// Secret annotation: comma-separated keys the controller fills with random values when it
    /// creates the Secret (never regenerated afterwards).
    pub const GENERATE_KEYS: &str = "insync.dev/generate-keys";
    /// Value of [`MANAGED_BY`].
    pub(crate) const MANAGER: &str = "insync-operator";
}

/// A component of a cloud, in upgrade order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// Managed MySQL StatefulSet.
    Mysql,
    /// Managed Bynamo StatefulSet.
    Bynamo,
    /// Managed MinIO StatefulSet.
    Minio,
    /// CloudMaster Deployment.
    CloudMaster,
    /// Storage node Deployments (one per node).
    Node,
    /// HAProxy front end Deployment.
    Haproxy,
}

impl Component {
    /// Every component, in upgrade order.
    pub const ALL: [Component; 6] = [
        Self::Mysql,
        Self::Bynamo,
        Self::Minio,
        Self::CloudMaster,
        Self::Node,
        Self::Haproxy,
    ];

    /// Stable name used in object names, labels and status.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mysql => "mysql",
            Self::Bynamo => "bynamo",
            Self::Minio => "minio",
            Self::CloudMaster => "cloudmaster",
            Self::Node => "node",
            Self::Haproxy => "haproxy",
        }
    }

    /// Whether this is a datastore (rolled first, and only when its own image changes).
    pub fn is_datastore(self) -> bool {
        matches!(self, Self::Mysql | Self::Bynamo | Self::Minio)
    }
}

/// How the controller must write an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyPolicy {
    /// Server-side apply under the operator's field manager; drift is reverted.
    Apply,
    /// Create when missing, never update or delete: data volumes and generated credentials.
    CreateOnly,
}

/// One object the cloud needs.
#[derive(Clone, Debug)]
pub struct Desired {
    /// The object, with apiVersion, kind, name, namespace, labels and (when the cloud has a uid)
    /// an owner reference; storage nodes' data PVCs have none, so they outlive the cloud.
    pub object: DynamicObject,
    /// How to write it.
    pub policy: ApplyPolicy,
    /// The workload this object is, when it is one (Deployment or StatefulSet), for rollout
    /// gating: `(component, workload id)` where the id is e.g. "cloudmaster" or "node-3".
    pub workload: Option<(Component, String)>,
}

/// Inputs besides the cloud that the controller decides (pure data, no I/O).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// Image tags to keep a workload on, keyed by workload id ("cloudmaster", "node-3",
    /// "bynamo", ...). The rollout state machine pins workloads it has not reached yet to the
    /// version they run, so a version bump rolls one component at a time.
    pub pinned_tags: BTreeMap<String, String>,
}

/// A value the renderer will not write where it would change the meaning of what it is written
/// into: a line break in a config file (a new `[section]`), a database name that would read as
/// an option or break out of SQL. Validation and the CRD refuse these first; this is the
/// renderer's own check, for an object that never went through either.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{setting} = {value:?} {reason}")]
pub struct UnsafeValue {
    /// Where the value was going, e.g. `[database] host` or `DB_NAME`.
    pub setting: String,
    /// The value refused.
    pub value: String,
    /// Why.
    pub reason: &'static str,
}

impl UnsafeValue {
    /// The same problem as validation reports it, so a refusing render ends as the cloud's
    /// InvalidSpec condition like any other invalid spec.
    pub fn into_invalid(self, cloud: &InSyncCloud) -> crate::api::validate::InvalidCloud {
        crate::api::validate::InvalidCloud {
            cloud: format!("{}/{}", cloud.cloud_namespace(), cloud.cloud_name()),
            errors: vec![crate::api::validate::FieldError {
                path: self.setting,
                message: format!("{:?} {}", self.value, self.reason),
            }],
        }
    }
}

/// A cloud that cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The spec failed validation.
    #[error(transparent)]
    Invalid(#[from] crate::api::validate::InvalidCloud),
    /// A value that would change the meaning of a config file or command line.
    #[error(transparent)]
    Unsafe(#[from] UnsafeValue),
    /// An object could not be serialized (a bug, not a user error).
    #[error("cannot serialize {kind} {name}: {source}")]
    Serialize {
        /// Kind of the object.
        kind: String,
        /// Name of the object.
        name: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

/// Kinds the controller may delete when a rendered object of that kind disappears (a PDB when
/// replicas drop to 1, the objects of a datastore switched to external, ...), as
/// `(apiVersion, kind)`. PersistentVolumeClaims and Secrets are deliberately absent: data
/// volumes and generated credentials are only ever removed by a person.
pub(crate) const PRUNABLE_KINDS: [(&str, &str); 6] = [
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
];

/// Renders every object `cloud` needs, in a stable order: per component in upgrade order
/// (MySQL, Bynamo, MinIO, CloudMaster, Nodes, HAProxy), then the NetworkPolicies.
pub fn render(cloud: &InSyncCloud, options: &RenderOptions) -> Result<Vec<Desired>, RenderError> {
    crate::api::validate::validate(cloud)?;
    let ctx = meta::Ctx::new(cloud, options);
    let mut out = Out::default();
    mysql::render(&ctx, &mut out)?;
    bynamo::render(&ctx, &mut out)?;
    minio::render(&ctx, &mut out)?;
    cloudmaster::render(&ctx, &mut out)?;
    nodes::render(&ctx, &mut out)?;
    haproxy::render(&ctx, &mut out)?;
    network::render(&ctx, &mut out)?;
    Ok(out.0)
}

/// The objects as a multi-document YAML stream (what `insync-operator render -f` prints), each
/// preceded by a comment with its apply policy and workload id.
pub fn to_yaml_stream(objects: &[Desired]) -> Result<String, serde_yaml::Error> {
    let mut text = String::new();
    for desired in objects {
        let policy = match desired.policy {
            ApplyPolicy::Apply => "apply",
            ApplyPolicy::CreateOnly => "create-only",
        };
        text.push_str("---\n# policy: ");
        text.push_str(policy);
        if let Some((component, id)) = &desired.workload {
            text.push_str(&format!(", workload: {}/{id}", component.name()));
        }
        text.push('\n');
        text.push_str(&serde_yaml::to_string(&desired.object)?);
    }
    Ok(text)
}

/// Converts a typed object into a [`DynamicObject`] (apiVersion and kind included).
pub(crate) fn to_dynamic<K>(object: &K) -> Result<DynamicObject, RenderError>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let error = |source| RenderError::Serialize {
        kind: K::kind(&()).into_owned(),
        name: object.meta().name.clone().unwrap_or_default(),
        source,
    };
    serde_json::to_value(object)
        .and_then(serde_json::from_value)
        .map_err(error)
}

/// Collects the rendered objects in order, converting each as it comes.
#[derive(Default)]
struct Out(Vec<Desired>);

impl Out {
    fn push<K>(
        &mut self,
        object: &K,
        policy: ApplyPolicy,
        workload: Option<(Component, String)>,
    ) -> Result<(), RenderError>
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let object = to_dynamic(object)?;
        self.0.push(Desired {
            object,
            policy,
            workload,
        });
        Ok(())
    }

    /// An object the controller server-side applies.
    fn apply<K>(&mut self, object: &K) -> Result<(), RenderError>
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        self.push(object, ApplyPolicy::Apply, None)
    }

    /// An object the controller creates once and never touches again.
    fn create_only<K>(&mut self, object: &K) -> Result<(), RenderError>
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        self.push(object, ApplyPolicy::CreateOnly, None)
    }

    /// A Deployment or StatefulSet, applied and gated by the rollout as `(component, id)`.
    fn workload<K>(&mut self, object: &K, component: Component, id: &str) -> Result<(), RenderError>
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        self.push(object, ApplyPolicy::Apply, Some((component, id.to_owned())))
    }

    /// Applies `object` if there is one (e.g. a PDB only rendered for several replicas).
    fn apply_some<K>(&mut self, object: Option<K>) -> Result<(), RenderError>
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        object.map_or(Ok(()), |object| self.apply(&object))
    }
}
