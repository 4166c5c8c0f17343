//! The `InSyncCloud` status: what the operator observed, never what it hopes.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a cloud.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct InSyncCloudStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions: Ready, Progressing, Degraded, DNSReady, UpgradeBlocked, Paused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The release revision the whole cloud runs, once every component runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,

    /// The release revision being rolled out (`spec.version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<String>,

    /// Host name clients connect to (`<cloud>.<domain>`, or the Service's address without DNS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// Per-component readiness and running version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub components: Vec<ComponentStatus>,

    /// The rollout in progress, if any. It is recorded here so an operator restart resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradeStatus>,

    /// Route53 hosted zone ids that may hold the cloud's DNS records. Recorded so that an
    /// operator restarted after a domain change, or after DNS was turned off, still removes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_zones: Vec<String>,

    /// The restore of a cloud created with `spec.restore`: recorded so it happens once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<super::backup::RestoreStatus>,

    /// The cloud's backups: the newest verification (`spec.backup.verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<super::backup::CloudBackupStatus>,
}

/// One component's observed state.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// Component name: cloudmaster, node, mysql, bynamo, minio, haproxy.
    pub name: String,
    /// Replicas the spec asks for.
    pub desired_replicas: i32,
    /// Replicas that are ready.
    pub ready_replicas: i32,
    /// Replicas already on the desired pod template.
    pub updated_replicas: i32,
    /// Image tag the component's pods run (the oldest one while a rollout is in progress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Whether the component is fully rolled out and ready.
    pub ready: bool,
}

/// A rollout from one release revision to another.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStatus {
    /// Version the cloud ran before this rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<String>,
    /// Version being rolled out.
    pub to_version: String,
    /// Current phase.
    pub phase: UpgradePhase,
    /// Component being rolled now (the phase's component, or the storage node Deployment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// When the longest-waiting workload of the current step started rolling: the first health
    /// deadline counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Time>,
    /// The workloads rolling now (or, once blocked, the ones that missed their deadline), by
    /// workload id: the tag each is moving to and since when. Each keeps its own clock, so a
    /// workload that never gets ready does not get a fresh timeout when the batch around it
    /// changes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rolling: BTreeMap<String, RollingWorkload>,
    /// Set while `spec.paused` holds the rollout: the step clocks do not run while paused, so
    /// on resume they are moved forward by the time spent paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<Time>,
    /// When the rollout started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// Human-readable progress or the reason it is blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The workloads still to roll, in the order they will (during a rollback: still to roll
    /// back).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remaining: Vec<String>,
    /// The tag each workload this rollout moved ran before it moved: where a rollback returns
    /// it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub previous_tags: BTreeMap<String, String>,
    /// The step that missed its gate and started a rollback: workload id and the tag it failed
    /// on. The same version is not tried again until one of those targets (or spec.version)
    /// changes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed: BTreeMap<String, String>,
}

impl UpgradeStatus {
    /// A rollout to `to_version` in `phase`, with nothing else recorded yet.
    pub fn new(from_version: Option<String>, to_version: &str, phase: UpgradePhase) -> Self {
        Self {
            from_version,
            to_version: to_version.to_owned(),
            phase,
            component: None,
            step_started_at: None,
            rolling: BTreeMap::new(),
            paused_at: None,
            started_at: None,
            message: None,
            remaining: Vec::new(),
            previous_tags: BTreeMap::new(),
            failed: BTreeMap::new(),
        }
    }
}

/// One workload of the current rollout step.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RollingWorkload {
    /// The image tag it is moving to.
    pub tag: String,
    /// The revision of the pod template it is moving to (image, configuration, env, resources
    /// and the rest, hashed apart): a change of any of them restarts its pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub revision: Option<String>,
    /// Why its pods restart: what changed in their template (image, configuration, env,
    /// resources, pod template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub reason: Option<String>,
    /// When it started moving to that tag; its health timeout counts from here.
    pub since: Time,
}

/// Phases of a rollout, in order.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum UpgradePhase {
    /// A version change waits for a gate: a maintenance window, an earlier ring, or a free
    /// slot under the operator's limit on concurrent upgrades (the message says which).
    Waiting,
    /// Rolling managed datastores whose own image changed.
    Datastores,
    /// Rolling the CloudMaster.
    CloudMaster,
    /// Rolling storage nodes, `maxUnavailable` at a time.
    Nodes,
    /// Rolling the HAProxy front end.
    Frontend,
    /// Every component runs the new version.
    Complete,
    /// A component missed its health deadline; nothing further rolls until the spec changes.
    Blocked,
    /// A step missed its gate and `onFailure: Rollback` moves what was rolled back to the
    /// previous version: HAProxy, storage nodes, CloudMaster, then (if allowed) datastores.
    RollingBack,
    /// The rollback is done: the cloud runs the previous version and does not try the same one
    /// again until the spec changes.
    RolledBack,
}
