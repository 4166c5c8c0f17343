//! The `InSyncCloud` API (`insync.dev/v1alpha1`): spec, status, condition vocabulary and the
//! validation the CRD schema cannot express.

mod quantity;
mod spec;
mod status;
pub mod validate;

pub use quantity::{Quantity, QuantityError};
pub use spec::*;
pub use status::*;

/// Condition types the operator sets on every cloud.
pub mod condition {
    /// Every component is rolled out and ready at `spec.version`, and DNS is published.
    pub const READY: &str = "Ready";
    /// The operator is creating, scaling or upgrading something.
    pub const PROGRESSING: &str = "Progressing";
    /// Something the cloud needs is missing or failing (see the reason).
    pub const DEGRADED: &str = "Degraded";
    /// The cloud's DNS record is published (or DNS is off).
    pub const DNS_READY: &str = "DNSReady";
    /// A rollout stopped because a component missed its health deadline.
    pub const UPGRADE_BLOCKED: &str = "UpgradeBlocked";
    /// `spec.paused` is true: the operator makes no changes.
    pub const PAUSED: &str = "Paused";
}

impl InSyncCloudSpec {
    /// A minimal spec at `version` with every default: the smallest valid cloud.
    pub fn with_version(version: &str) -> Self {
        Self {
            version: version.to_owned(),
            images: ImagesSpec::default(),
            master: MasterSpec::default(),
            nodes: NodesSpec::default(),
            database: DatabaseSpec::default(),
            metadata_store: MetadataStoreSpec::default(),
            object_store: ObjectStoreSpec::default(),
            frontend: FrontendSpec::default(),
            dns: None,
            upgrade: UpgradePolicy::default(),
            paused: false,
        }
    }
}

impl InSyncCloud {
    /// The cloud's name (`metadata.name`), empty if unset.
    pub fn cloud_name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The cloud's namespace, `default` if unset (as `kubectl apply` would place it).
    pub fn cloud_namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// `<cloud>.<domain>` when DNS is configured.
    pub fn hostname(&self) -> Option<String> {
        self.spec
            .dns
            .as_ref()
            .map(|dns| format!("{}.{}", self.cloud_name(), dns.domain))
    }
}
