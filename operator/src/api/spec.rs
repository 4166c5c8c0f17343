//! The `InSyncCloud` spec: everything a cloud is made of.
//!
//! Doc comments on every field become `kubectl explain` text, so they are written for the
//! person applying a manifest, not for the Rust reader. CEL rules here are enforced by the API
//! server; [`super::validate`] repeats the ones a local `render -f` must also catch.

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::status::InSyncCloudStatus;

/// An inSync Cloud: CloudMaster, storage Nodes, MySQL, Bynamo, an object store, an HAProxy front
/// end and a DNS name, managed as one object.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "insync.dev",
    version = "v1alpha1",
    kind = "InSyncCloud",
    plural = "insyncclouds",
    shortname = "isc",
    category = "insync",
    namespaced,
    status = "InSyncCloudStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Version","type":"string","description":"Release revision every component runs","jsonPath":".status.currentVersion"}"#,
    printcolumn = r#"{"name":"Target","type":"string","description":"Release revision asked for (spec.version)","jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","description":"Phase of the last rollout","jsonPath":".status.upgrade.phase"}"#,
    printcolumn = r#"{"name":"Step","type":"string","description":"Workloads rolling now","jsonPath":".status.upgrade.component","priority":1}"#,
    printcolumn = r#"{"name":"Ring","type":"integer","description":"Fleet ring","jsonPath":".spec.upgrade.ring"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","description":"Whether the whole cloud is ready","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","description":"Host name clients connect to","jsonPath":".status.endpoint"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("!has(oldSelf.spec.restore) || has(self.spec.restore) || (has(oldSelf.status) && has(oldSelf.status.restore) && has(oldSelf.status.restore.phase) && oldSelf.status.restore.phase == 'Complete')").message("spec.restore can be removed only once status.restore.phase is Complete: until then the datastores hold nothing or part of the backup, and CloudMaster would start on them; delete the cloud to give up the restore"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 40").message("metadata.name must be a DNS label of at most 40 characters (lower-case letters, digits and '-', starting with a letter): it becomes the first label of the cloud's host name and the prefix of every object it owns")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.restore) || has(oldSelf.restore)").message("restore can only be set when a cloud is created: a restore never runs over live data"))]
#[x_kube(validation = Rule::new("!has(self.backup) || has(self.backup.destination) || !has(self.objectStore) || !has(self.objectStore.sharedFilesystem)").message("backup.destination is required when the object store is a shared filesystem: backups are written to S3"))]
pub struct InSyncCloudSpec {
    /// Release revision of inSync, e.g. "5.9.1-r4178". It is the image tag of every component
    /// unless a component overrides it. Changing it starts an ordered rolling upgrade.
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$')").message("version must be a valid image tag: 1-128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'"))]
    pub version: String,

    /// Where component images come from.
    #[serde(default)]
    pub images: ImagesSpec,

    /// Which cluster nodes every component's pods run on, and their priority. A component's own
    /// `placement` overrides these field by field.
    #[serde(default, skip_serializing_if = "Placement::is_empty")]
    pub placement: Placement,

    /// The CloudMaster: the control service clients and nodes talk to.
    #[serde(default)]
    pub master: MasterSpec,

    /// Storage Nodes: each is its own Deployment with its own volume, so nodes keep their data
    /// across restarts and are upgraded one by one.
    #[serde(default)]
    pub nodes: NodesSpec,

    /// The MySQL database: managed in-cluster, or an external server such as Amazon RDS.
    #[serde(default)]
    pub database: DatabaseSpec,

    /// The DynamoDB-compatible metadata store: managed Bynamo, or external DynamoDB.
    #[serde(default)]
    pub metadata_store: MetadataStoreSpec,

    /// The object store for backup data: managed MinIO, external S3, or a shared filesystem.
    #[serde(default)]
    pub object_store: ObjectStoreSpec,

    /// The HAProxy front end that clients connect to.
    #[serde(default)]
    pub frontend: FrontendSpec,

    /// The DNS name of the cloud, `<cloud name>.<domain>`. Without it the cloud is reached
    /// through its Service only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsSpec>,

    /// How version upgrades are rolled out.
    #[serde(default)]
    pub upgrade: UpgradePolicy,

    /// Backups of the cloud's catalogue (MySQL and the metadata store): schedule, retention
    /// and destination. `InSyncCloudBackup` objects are the backups themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<super::backup::BackupSpec>,

    /// Start this new cloud's MySQL and metadata store from a backup (see `RestoreSpec`). It
    /// cannot change, and cannot be added to a cloud that exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("restore cannot change: create a new cloud to restore another backup"))]
    pub restore: Option<super::backup::RestoreSpec>,

    /// While true the operator makes no changes to this cloud (it still reports status).
    #[serde(default)]
    pub paused: bool,
}

/// Where images come from. Each component's image is `<registry>/<component>:<version>`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImagesSpec {
    /// Registry and path prefix, e.g. "registry.example.com/insync".
    #[serde(default = "default_registry")]
    #[schemars(length(max = 255))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]([-a-z0-9._]*[a-z0-9])?)*$')").message("registry must be a registry host (and optional port) with an optional path, e.g. registry.example.com/insync: no trailing '/', tag, digest or spaces"))]
    pub registry: String,

    /// Names of Secrets (type kubernetes.io/dockerconfigjson) in the cloud's namespace used to
    /// pull the images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "pull_secrets_schema")]
    pub pull_secrets: Vec<String>,

    /// Image pull policy for every component.
    #[serde(default)]
    pub pull_policy: PullPolicy,
}

impl Default for ImagesSpec {
    fn default() -> Self {
        Self {
            registry: default_registry(),
            pull_secrets: Vec::new(),
            pull_policy: PullPolicy::default(),
        }
    }
}

/// At most 16 Secret names, each a DNS subdomain: they go into every pod's
/// `imagePullSecrets`, which the API server does not check.
fn pull_secrets_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "maxItems": 16,
        "items": {
            "type": "string",
            "maxLength": 253,
            "x-kubernetes-validations": [{
                "rule": "self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",
                "message": "pullSecrets must be names of Secrets (lower-case letters, digits, '-' and '.')"
            }]
        }
    })
}

fn default_registry() -> String {
    "registry.example.com/insync".to_owned()
}

/// Image pull policy.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Pull only when the image is not on the node (the tag is a release revision, so it never
    /// moves).
    #[default]
    IfNotPresent,
    /// Pull on every pod start.
    Always,
    /// Never pull.
    Never,
}

/// Where pods run: node selection, tolerations, affinity and priority. Used cloud-wide
/// (`spec.placement`) and per component (`<component>.placement`, field by field).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Node labels the pods require, e.g. `{"node-role.example.com/insync": "true"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Taints the pods tolerate (at most 32), as in a pod spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "tolerations_schema")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Node and pod affinity and anti-affinity rules, exactly as in a pod spec
    /// (`kubectl explain pod.spec.affinity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pod_affinity_schema")]
    pub affinity: Option<Affinity>,
    /// PriorityClass of the pods, e.g. to keep a cloud's datastores from being preempted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("priorityClassName must be a DNS subdomain (lower-case letters, digits, '-' and '.')"))]
    pub priority_class_name: Option<String>,
}

/// `affinity` is checked where pods are: by the operator when it reads the cloud and by the API
/// server when it admits the pods. Its full OpenAPI schema, repeated for the cloud and each of
/// six components, would add some 400 KB to the CRD and push it past what client-side
/// `kubectl apply` can store in its last-applied annotation (256 KiB).
fn pod_affinity_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Tolerations with their operator and effect as enums and bounded sizes, so the API server
/// refuses a typo with the allowed values and the one CEL rule stays within its cost budget
/// (repeated for the cloud and six components).
fn tolerations_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "maxItems": 32,
        "items": {
            "type": "object",
            "properties": {
                "key": {"type": "string", "maxLength": 317, "description": "Taint key to tolerate; empty with operator Exists tolerates every taint."},
                "operator": {"type": "string", "enum": ["Exists", "Equal"], "description": "Exists or Equal (the default)."},
                "value": {"type": "string", "maxLength": 63, "description": "Taint value to match with operator Equal."},
                "effect": {"type": "string", "enum": ["", "NoSchedule", "PreferNoSchedule", "NoExecute"], "description": "Taint effect to match; empty matches every effect."},
                "tolerationSeconds": {"type": "integer", "format": "int64", "description": "How long a NoExecute taint is tolerated before eviction."}
            },
            "x-kubernetes-validations": [{
                "rule": "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
                "message": "a toleration with operator Exists must not set a value"
            }]
        }
    })
}

impl Placement {
    /// True when nothing is set.
    pub(crate) fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// `self` with every field that `component` sets replaced by the component's value.
    pub(crate) fn overridden_by(&self, component: Option<&Placement>) -> Placement {
        let Some(component) = component else {
            return self.clone();
        };
        Placement {
            node_selector: component
                .node_selector
                .clone()
                .or_else(|| self.node_selector.clone()),
            tolerations: component
                .tolerations
                .clone()
                .or_else(|| self.tolerations.clone()),
            affinity: component.affinity.clone().or_else(|| self.affinity.clone()),
            priority_class_name: component
                .priority_class_name
                .clone()
                .or_else(|| self.priority_class_name.clone()),
        }
    }
}

/// Overrides the image of one component.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ImageOverride {
    /// Full image repository, e.g. "mirror.example.com/insync/cloudmaster". Defaults to
    /// `<images.registry>/<component>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]([-a-z0-9._]*[a-z0-9])?)*$')").message("repository must be an image repository such as mirror.example.com/insync/cloudmaster: no tag, digest or spaces"))]
    pub repository: Option<String>,

    /// Tag for this component instead of `spec.version`, e.g. a hot fix. The component then
    /// reports this tag as its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$')").message("tag must be a valid image tag"))]
    pub tag: Option<String>,
}

/// A volume size and the StorageClass that provides it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of the volume, e.g. "50Gi". It may grow but never shrink.
    #[x_kube(
        validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("size must be a positive quantity such as 50Gi"),
        validation = Rule::new("!isQuantity(self) || !isQuantity(oldSelf) || quantity(self).compareTo(quantity(oldSelf)) >= 0").message("storage size may not shrink: volumes cannot be made smaller without losing data")
    )]
    pub size: String,

    /// StorageClass of the volume; the cluster default when unset. It cannot change after
    /// creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("storageClassName is immutable: existing volumes keep their class"))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("storageClassName must be a DNS subdomain (lower-case letters, digits, '-' and '.')"))]
    pub storage_class_name: Option<String>,
}

impl StorageSpec {
    /// A volume of `size` on the cluster's default StorageClass.
    pub(crate) fn of(size: &str) -> Self {
        Self {
            size: size.to_owned(),
            storage_class_name: None,
        }
    }
}

/// The CloudMaster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MasterSpec {
    /// Number of CloudMaster replicas (1-9).
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 9").message("master.replicas must be between 1 and 9"))]
    pub replicas: i32,

    /// CPU and memory requests and limits; sensible defaults when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Image override for this component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageOverride>,
    /// Where this component's pods run; each field set here replaces the cloud-wide
    /// `spec.placement` field of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

impl Default for MasterSpec {
    fn default() -> Self {
        Self {
            replicas: 1,
            resources: None,
            image: None,
            placement: None,
        }
    }
}

/// The storage Nodes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodesSpec {
    /// Number of storage nodes (0-100). Scaling down keeps the removed nodes' volumes.
    #[serde(default = "two")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 100").message("nodes.replicas must be between 0 and 100"))]
    pub replicas: i32,

    /// The volume each node stores backup data on.
    #[serde(default = "default_node_storage")]
    pub storage: StorageSpec,

    /// CPU and memory requests and limits; sensible defaults when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Image override for this component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageOverride>,
    /// Where this component's pods run; each field set here replaces the cloud-wide
    /// `spec.placement` field of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

impl Default for NodesSpec {
    fn default() -> Self {
        Self {
            replicas: 2,
            storage: default_node_storage(),
            resources: None,
            image: None,
            placement: None,
        }
    }
}

fn default_node_storage() -> StorageSpec {
    StorageSpec::of("50Gi")
}

/// A reference to a Secret in the cloud's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$') && size(self) <= 253").message("secret name must be a DNS subdomain"))]
    pub name: String,
}

/// The MySQL database. Exactly one of `managed` or `external`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.managed) ? 1 : 0) + (has(self.external) ? 1 : 0) == 1").message("database needs exactly one of 'managed' or 'external'"))]
pub struct DatabaseSpec {
    /// Run MySQL in the cluster as a StatefulSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedDatabase>,
    /// Use an existing MySQL server, e.g. Amazon RDS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalDatabase>,
}

impl Default for DatabaseSpec {
    fn default() -> Self {
        Self {
            managed: Some(ManagedDatabase::default()),
            external: None,
        }
    }
}

/// A MySQL server run by the operator (one replica; its volume survives the cloud).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedDatabase {
    /// The database volume.
    #[serde(default = "default_db_storage")]
    pub storage: StorageSpec,
    /// CPU and memory requests and limits; sensible defaults when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Image override; MySQL is versioned independently of inSync, so it only rolls when this
    /// changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageOverride>,
    /// Where this component's pods run; each field set here replaces the cloud-wide
    /// `spec.placement` field of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

impl Default for ManagedDatabase {
    fn default() -> Self {
        Self {
            storage: default_db_storage(),
            resources: None,
            image: None,
            placement: None,
        }
    }
}

fn default_db_storage() -> StorageSpec {
    StorageSpec::of("20Gi")
}

/// An existing MySQL server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDatabase {
    /// Host name or address, e.g. "fcloud.abc123.us-east-1.rds.amazonaws.com", "10.0.0.5" or
    /// "fd00::5"; the port goes in `port`.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)$')").message("database.external.host must be a host name, an IPv4 or an IPv6 address: letters, digits, '-' and '.' (or hex digits and ':'), no port, path, spaces or line breaks"))]
    pub host: String,
    /// TCP port.
    #[serde(default = "default_mysql_port")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("port must be between 1 and 65535"))]
    pub port: i32,
    /// Schema (database) name inSync uses: 1-64 letters, digits and '_'.
    #[serde(default = "default_db_name")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_]{1,64}$')").message("database.external.database must be 1-64 letters, digits and '_': it is passed to the MySQL tools and into SQL unquoted"))]
    pub database: String,
    /// Secret with keys `username` and `password`.
    pub secret_ref: SecretRef,
}

fn default_mysql_port() -> i32 {
    3306
}

fn default_db_name() -> String {
    "insync".to_owned()
}

/// The DynamoDB-compatible metadata store. Exactly one of `managed` or `external`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.managed) ? 1 : 0) + (has(self.external) ? 1 : 0) == 1").message("metadataStore needs exactly one of 'managed' or 'external'"))]
pub struct MetadataStoreSpec {
    /// Run Bynamo in the cluster as a StatefulSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedBynamo>,
    /// Use Amazon DynamoDB or another DynamoDB-compatible endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalDynamo>,
}

impl Default for MetadataStoreSpec {
    fn default() -> Self {
        Self {
            managed: Some(ManagedBynamo::default()),
            external: None,
        }
    }
}

/// Bynamo run by the operator.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedBynamo {
    /// Number of Bynamo replicas (1-5).
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 5").message("metadataStore.managed.replicas must be between 1 and 5"))]
    pub replicas: i32,
    /// Each replica's volume.
    #[serde(default = "default_bynamo_storage")]
    pub storage: StorageSpec,
    /// CPU and memory requests and limits; sensible defaults when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Image override for this component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageOverride>,
    /// Where this component's pods run; each field set here replaces the cloud-wide
    /// `spec.placement` field of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

impl Default for ManagedBynamo {
    fn default() -> Self {
        Self {
            replicas: 1,
            storage: default_bynamo_storage(),
            resources: None,
            image: None,
            placement: None,
        }
    }
}

fn default_bynamo_storage() -> StorageSpec {
    StorageSpec::of("10Gi")
}

/// An external DynamoDB endpoint.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDynamo {
    /// AWS region, e.g. "us-east-1".
    #[x_kube(validation = Rule::new("self.matches('^[a-z]{2}(-[a-z]+)+-[0-9]+$')").message("region must look like us-east-1"))]
    pub region: String,
    /// Endpoint URL; the region's AWS endpoint when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://([-A-Za-z0-9.]+|\\\\[[0-9A-Fa-f:.]+\\\\])(:[0-9]{1,5})?(/[!-~]*)?$')").message("endpoint must be an http(s) URL such as https://s3.example.com:9000: a host name or address, an optional port and path, no spaces, line breaks or user name"))]
    pub endpoint: Option<String>,
    /// Prefix of the tables inSync creates, so clouds can share an account: at most 64
    /// letters, digits, '_', '.' and '-', not starting with '-'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self.matches('^([A-Za-z0-9_.][-A-Za-z0-9_.]{0,63})?$')").message("tablePrefix must be at most 64 letters, digits, '_', '.' and '-', not starting with '-'"))]
    pub table_prefix: Option<String>,
    /// Secret with keys `accessKeyId` and `secretAccessKey`; omit to use the pod's identity
    /// (e.g. IRSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
}

/// The object store. Exactly one of `minio`, `s3` or `sharedFilesystem`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.minio) ? 1 : 0) + (has(self.s3) ? 1 : 0) + (has(self.sharedFilesystem) ? 1 : 0) == 1").message("objectStore needs exactly one of 'minio', 's3' or 'sharedFilesystem'"))]
pub struct ObjectStoreSpec {
    /// Run MinIO in the cluster as a StatefulSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minio: Option<ManagedMinio>,
    /// Use an S3 bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<ExternalS3>,
    /// Use a shared filesystem through an existing ReadWriteMany PersistentVolumeClaim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_filesystem: Option<SharedFilesystem>,
}

impl Default for ObjectStoreSpec {
    fn default() -> Self {
        Self {
            minio: Some(ManagedMinio::default()),
            s3: None,
            shared_filesystem: None,
        }
    }
}

/// MinIO run by the operator.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedMinio {
    /// Number of MinIO servers: 1 (no redundancy) or 4-32 (erasure coded).
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self == 1 || (self >= 4 && self <= 32)").message("objectStore.minio.replicas must be 1, or between 4 and 32: MinIO erasure sets need at least 4 drives"))]
    pub replicas: i32,
    /// Each server's volume.
    #[serde(default = "default_minio_storage")]
    pub storage: StorageSpec,
    /// CPU and memory requests and limits; sensible defaults when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Image override; MinIO is versioned independently of inSync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageOverride>,
    /// Where this component's pods run; each field set here replaces the cloud-wide
    /// `spec.placement` field of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

impl Default for ManagedMinio {
    fn default() -> Self {
        Self {
            replicas: 1,
            storage: default_minio_storage(),
            resources: None,
            image: None,
            placement: None,
        }
    }
}

fn default_minio_storage() -> StorageSpec {
    StorageSpec::of("100Gi")
}

/// An S3 bucket.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalS3 {
    /// Bucket name.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$')").message("bucket must be a valid S3 bucket name (3-63 lower-case letters, digits, '.', '-')"))]
    pub bucket: String,
    /// AWS region, e.g. "us-east-1".
    #[x_kube(validation = Rule::new("self.matches('^[a-z]{2}(-[a-z]+)+-[0-9]+$')").message("region must look like us-east-1"))]
    pub region: String,
    /// Endpoint URL for S3-compatible stores; AWS when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://([-A-Za-z0-9.]+|\\\\[[0-9A-Fa-f:.]+\\\\])(:[0-9]{1,5})?(/[!-~]*)?$')").message("endpoint must be an http(s) URL such as https://s3.example.com:9000: a host name or address, an optional port and path, no spaces, line breaks or user name"))]
    pub endpoint: Option<String>,
    /// Secret with keys `accessKeyId` and `secretAccessKey`; omit to use the pod's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
}

/// A shared filesystem volume.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SharedFilesystem {
    /// Name of an existing ReadWriteMany PersistentVolumeClaim in the cloud's namespace.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$') && size(self) <= 253").message("claimName must be a DNS subdomain"))]
    pub claim_name: String,
}

/// The HAProxy front end.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FrontendSpec {
    /// Number of HAProxy replicas (1-10).
    #[serde(default = "two")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 10").message("frontend.replicas must be between 1 and 10"))]
    pub replicas: i32,
    /// The Service clients connect to.
    #[serde(default)]
    pub service: FrontendService,
    /// CPU and memory requests and limits; sensible defaults when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Image override for this component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageOverride>,
    /// Where this component's pods run; each field set here replaces the cloud-wide
    /// `spec.placement` field of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

impl Default for FrontendSpec {
    fn default() -> Self {
        Self {
            replicas: 2,
            service: FrontendService::default(),
            resources: None,
            image: None,
            placement: None,
        }
    }
}

/// The front-end Service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type == 'NodePort' || self.type == 'LoadBalancer' || (!has(self.masterNodePort) && !has(self.storageNodePort))").message("node ports can only be set when service.type is NodePort or LoadBalancer"))]
pub struct FrontendService {
    /// Service type: LoadBalancer (cloud providers), NodePort (kind, bare metal) or ClusterIP.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Port for CloudMaster traffic (clients and admin console).
    #[serde(default = "default_master_port")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("port must be between 1 and 65535"))]
    pub master_port: i32,
    /// Port for storage-node traffic (backup data).
    #[serde(default = "default_storage_port")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("port must be between 1 and 65535"))]
    pub storage_port: i32,
    /// Fixed node port for `masterPort` (30000-32767); assigned by Kubernetes when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 30000 && self <= 32767").message("node ports must be between 30000 and 32767"))]
    pub master_node_port: Option<i32>,
    /// Fixed node port for `storagePort` (30000-32767); assigned by Kubernetes when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 30000 && self <= 32767").message("node ports must be between 30000 and 32767"))]
    pub storage_node_port: Option<i32>,
    /// Annotations for the Service, e.g. cloud load-balancer settings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for FrontendService {
    fn default() -> Self {
        Self {
            type_: ServiceType::default(),
            master_port: default_master_port(),
            storage_port: default_storage_port(),
            master_node_port: None,
            storage_node_port: None,
            annotations: BTreeMap::new(),
        }
    }
}

fn default_master_port() -> i32 {
    443
}

fn default_storage_port() -> i32 {
    6061
}

/// Kubernetes Service type of the front end.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ServiceType {
    /// An external load balancer from the cloud provider.
    #[default]
    LoadBalancer,
    /// A port on every node (kind, bare metal).
    NodePort,
    /// Reachable inside the cluster only.
    ClusterIP,
}

impl ServiceType {
    /// The Service `spec.type` string.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::LoadBalancer => "LoadBalancer",
            Self::NodePort => "NodePort",
            Self::ClusterIP => "ClusterIP",
        }
    }
}

/// The cloud's DNS name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DnsSpec {
    /// Domain the cloud's host name is created in, e.g. "drtst.org" gives "fcloud.drtst.org".
    #[x_kube(validation = Rule::new("size(self) <= 200 && self.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?\\\\.)+[a-z]([-a-z0-9]*[a-z0-9])?$')").message("domain must be a lower-case DNS name such as drtst.org"))]
    pub domain: String,
    /// Who publishes the record: route53, or none to only report the host name.
    #[serde(default)]
    pub provider: DnsProvider,
    /// Route53 hosted zone id; found by the longest matching domain suffix when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^(/hostedzone/)?[A-Z0-9]{1,32}$')").message("hostedZoneId must look like Z0123456789ABCDEFGHIJ"))]
    pub hosted_zone_id: Option<String>,
    /// Record TTL in seconds (1-86400).
    #[serde(default = "default_ttl")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 86400").message("ttl must be between 1 and 86400 seconds"))]
    pub ttl: i64,
    /// For NodePort front ends: which node addresses the record points at.
    #[serde(default)]
    pub node_address_type: NodeAddressType,
}

fn default_ttl() -> i64 {
    60
}

/// DNS provider.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DnsProvider {
    /// Amazon Route53 (or a Route53-compatible endpoint).
    #[default]
    Route53,
    /// Publish nothing; the host name is still reported in status.
    None,
}

/// Which node address a NodePort front end's record uses.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NodeAddressType {
    /// The nodes' ExternalIP, falling back to InternalIP where a node has none.
    #[default]
    ExternalIP,
    /// The nodes' InternalIP.
    InternalIP,
}

/// How upgrades roll.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpgradePolicy {
    /// How many storage nodes may be upgrading at the same time (at least 1).
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 1").message("upgrade.maxUnavailable must be at least 1"))]
    pub max_unavailable: i32,
    /// How long each component may take to become ready on the new version before the upgrade
    /// stops with UpgradeBlocked, e.g. "10m", "90s", "1h30m".
    #[serde(default = "default_health_timeout")]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+[hms])+$')").message("healthTimeout must be a duration such as 10m, 90s or 1h30m"))]
    pub health_timeout: String,
    /// Maintenance windows (UTC). A version change starts only inside one; a rollout still
    /// running when its window ends finishes the step in flight and waits for the next one.
    /// Empty: any time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub windows: Vec<MaintenanceWindow>,
    /// Fleet ring (0, 1, 2, ...): a cloud in ring n+1 starts moving to a version only when
    /// every cloud of ring n that asked for the same version runs it and is Ready; a cloud of
    /// ring n whose upgrade is blocked stops the later rings. Unset: no ring, never waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 99").message("upgrade.ring must be between 0 and 99"))]
    pub ring: Option<i32>,
    /// What a step that misses its health gate leads to: `Halt` stops the rollout where it is
    /// (UpgradeBlocked); `Rollback` moves the components already rolled back to the version
    /// the cloud ran before, in reverse order and through the same gates.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Whether a rollback may also move datastores (MySQL, Bynamo, MinIO) whose image changed
    /// back. Off by default: the new image may have changed their on-disk format, which the
    /// old one may not read.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback_datastores: bool,
}

impl Default for UpgradePolicy {
    fn default() -> Self {
        Self {
            max_unavailable: 1,
            health_timeout: default_health_timeout(),
            windows: Vec::new(),
            ring: None,
            on_failure: OnFailure::Halt,
            rollback_datastores: false,
        }
    }
}

/// What a rollout does when a step misses its health gate.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Stop where it is, until the spec changes or the cloud is healthy again.
    #[default]
    Halt,
    /// Move what was rolled back to the previous version, in reverse order.
    Rollback,
}

/// A weekly maintenance window, in UTC.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindow {
    /// Days it opens on; empty: every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 7))]
    pub days: Vec<Weekday>,
    /// Opening time, `HH:MM` UTC.
    #[schemars(length(max = 5))]
    #[x_kube(validation = Rule::new("self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')").message("a maintenance window's start must be HH:MM in UTC, e.g. 02:00"))]
    pub start: String,
    /// How long it stays open, e.g. `4h` or `90m` (at most a week).
    #[schemars(length(max = 12))]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]{1,3}h)?([0-9]{1,4}m)?$') && self != ''").message("a maintenance window's duration must be hours and/or minutes, e.g. 4h or 1h30m"))]
    pub duration: String,
}

/// A day of the week.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

fn default_health_timeout() -> String {
    "10m".to_owned()
}

fn one() -> i32 {
    1
}

fn two() -> i32 {
    2
}
