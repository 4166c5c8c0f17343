//! The `InSyncCloud` API (`insync.dev/v1alpha1`): spec, status, condition vocabulary and the
//! validation the CRD schema cannot express.

mod backup;
mod quantity;
mod spec;
mod status;
pub mod validate;

pub use backup::*;
pub use quantity::{Quantity, QuantityError};
pub use spec::*;
pub use status::*;

/// Condition types the operator sets on every cloud.
pub mod condition {
    /// Every component is rolled out and ready at `spec.version`, and DNS is published.
    pub(crate) const READY: &str = "Ready";
    /// The operator is creating, scaling or upgrading something.
    pub(crate) const PROGRESSING: &str = "Progressing";
    /// Something the cloud needs is missing or failing (see the reason).
    pub(crate) const DEGRADED: &str = "Degraded";
    /// The cloud's DNS record is published (or DNS is off).
    pub(crate) const DNS_READY: &str = "DNSReady";
    /// A rollout stopped because a component missed its health deadline.
    pub(crate) const UPGRADE_BLOCKED: &str = "UpgradeBlocked";
    /// `spec.paused` is true: the operator makes no changes.
    pub(crate) const PAUSED: &str = "Paused";
}

/// The CustomResourceDefinition, with descriptions reflowed for `kubectl explain`.
///
/// Doc comments arrive with the source's hard line breaks; `kubectl explain` wraps text itself,
/// so single newlines become spaces and only paragraph breaks stay.
pub(crate) fn crd()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use kube::CustomResourceExt;
    reflowed(InSyncCloud::crd())
}

/// The `InSyncCloudBackup` CustomResourceDefinition, reflowed like [`crd`].
pub(crate) fn backup_crd()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use kube::CustomResourceExt;
    reflowed(InSyncCloudBackup::crd())
}

fn reflowed(
    mut crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    if let Some(schema) = crd
        .spec
        .versions
        .iter_mut()
        .filter_map(|v| v.schema.as_mut())
        .find_map(|s| s.open_api_v3_schema.as_mut())
    {
        reflow(schema);
    }
    crd
}

fn reflow(
    schema: &mut k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
) {
    if let Some(text) = schema.description.as_mut() {
        *text = text
            .split("\n\n")
            .map(|paragraph| {
                paragraph
                    .split('\n')
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n\n");
    }
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        reflow(child);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(items)) = schema.items.as_mut() {
        reflow(items);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrBool::Schema(extra)) = schema.additional_properties.as_mut() {
        reflow(extra);
    }
}

impl InSyncCloudSpec {
    /// A minimal spec at `version` with every default: the smallest valid cloud.
    pub fn with_version(version: &str) -> Self {
        Self {
            version: version.to_owned(),
            images: ImagesSpec::default(),
            placement: Placement::default(),
            master: MasterSpec::default(),
            nodes: NodesSpec::default(),
            database: DatabaseSpec::default(),
            metadata_store: MetadataStoreSpec::default(),
            object_store: ObjectStoreSpec::default(),
            frontend: FrontendSpec::default(),
            dns: None,
            upgrade: UpgradePolicy::default(),
            backup: None,
            restore: None,
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

    /// Whether the cloud was created from a backup (`spec.restore`) and the restore has not
    /// completed: its datastores hold nothing yet, or part of the backup. Nothing may take a
    /// backup of it, nor expire the backup it is read from, until it has.
    pub fn is_restoring(&self) -> bool {
        self.spec.restore.is_some() && self.restore_phase() != Some(RestorePhase::Complete)
    }

    /// `status.restore.phase`, when a restore was recorded.
    pub fn restore_phase(&self) -> Option<RestorePhase> {
        self.status
            .as_ref()
            .and_then(|s| s.restore.as_ref())
            .and_then(|r| r.phase)
    }

    /// The backup of this namespace the cloud is being restored from (`spec.restore.backup`),
    /// while the restore has not completed.
    pub fn restoring_from(&self) -> Option<&str> {
        let restore = self.spec.restore.as_ref()?;
        self.is_restoring()
            .then_some(restore.backup.as_deref())
            .flatten()
    }

    /// `<cloud>.<domain>` when DNS is configured.
    pub fn hostname(&self) -> Option<String> {
        self.spec
            .dns
            .as_ref()
            .map(|dns| format!("{}.{}", self.cloud_name(), dns.domain))
    }
}
