//! Pure builders: an `InSyncCloud` in, every desired Kubernetes object out.
//!
//! Nothing here touches the network or the clock, so the same function serves the controller,
//! `insync-operator render -f`, and the unit and snapshot tests.

use std::collections::BTreeMap;

use kube::api::DynamicObject;

use crate::api::InSyncCloud;

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
    pub const ALL: [Component; 6] =
        [Self::Mysql, Self::Bynamo, Self::Minio, Self::CloudMaster, Self::Node, Self::Haproxy];

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
    /// an owner reference.
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

/// A cloud that cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The spec failed validation.
    #[error(transparent)]
    Invalid(#[from] crate::api::validate::InvalidCloud),
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

/// Renders every object `cloud` needs.
pub fn render(cloud: &InSyncCloud, options: &RenderOptions) -> Result<Vec<Desired>, RenderError> {
    crate::api::validate::validate(cloud)?;
    let _ = options;
    Ok(Vec::new())
}
