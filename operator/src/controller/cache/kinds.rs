//! The kinds of child the operator writes and watches, each with its cache, and the lookups
//! of a live object in them.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::DynamicObject;
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::reflector::{ObjectRef, Store};

use super::{Child, ChildType};
use crate::controller::error::{Error, UnknownKind};
use crate::render::PRUNABLE_KINDS;
use crate::render::keys::{MANAGED_BY, MANAGER};

/// The one field manager the operator writes with (the value of its managed-by label).
pub const FIELD_MANAGER: &str = MANAGER;
/// Label selector every child matches (render puts the managed-by label on all of them);
/// watches are narrowed to it.
pub fn managed_by_selector() -> String {
    format!("{MANAGED_BY}={MANAGER}")
}

/// A kind of child the operator writes, with its cache.
#[derive(Clone)]
pub struct ChildKind {
    /// API coordinates.
    pub resource: ChildType,
    /// Whether objects of this kind that the cloud no longer needs are deleted. Never for
    /// PersistentVolumeClaims (data) or Secrets (credentials of retained data).
    pub prunable: bool,
    /// Reflector cache of the operator's objects of this kind, as projections.
    pub store: Store<Child>,
}

/// The kinds render produces, each with whether it may be pruned. Render's
/// [`PRUNABLE_KINDS`] decides: never PersistentVolumeClaims or Secrets.
pub fn child_resources() -> Vec<(ApiResource, bool)> {
    [
        ApiResource::erase::<ConfigMap>(&()),
        ApiResource::erase::<Secret>(&()),
        ApiResource::erase::<Service>(&()),
        ApiResource::erase::<PersistentVolumeClaim>(&()),
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<StatefulSet>(&()),
        ApiResource::erase::<PodDisruptionBudget>(&()),
        ApiResource::erase::<NetworkPolicy>(&()),
    ]
    .into_iter()
    .map(|resource| {
        let prunable =
            PRUNABLE_KINDS.contains(&(resource.api_version.as_str(), resource.kind.as_str()));
        (resource, prunable)
    })
    .collect()
}

/// Finds the cached kind for an object's apiVersion/kind.
pub fn kind_for<'a>(
    kinds: &'a [ChildKind],
    object: &DynamicObject,
) -> Result<&'a ChildKind, Error> {
    let types = object
        .types
        .as_ref()
        .ok_or(Error::UnknownKind(UnknownKind::Untyped))?;
    let gvk = GroupVersionKind::try_from(types).map_err(|source| {
        Error::UnknownKind(UnknownKind::BadApiVersion {
            api_version: types.api_version.clone(),
            source,
        })
    })?;
    kinds
        .iter()
        .find(|k| {
            k.resource.group == gvk.group
                && k.resource.version == gvk.version
                && k.resource.kind == gvk.kind
        })
        .ok_or_else(|| {
            Error::UnknownKind(UnknownKind::Unwatched(format!(
                "{}/{}",
                types.api_version, types.kind
            )))
        })
}

/// The cached projection of the live object of `kind` named `name` in `namespace`.
pub fn cached(kind: &ChildKind, namespace: &str, name: &str) -> Option<Arc<Child>> {
    kind.store
        .get(&ObjectRef::new_with(name, kind.resource.clone()).within(namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_and_credentials_are_never_pruned() {
        for (resource, prunable) in child_resources() {
            let keep = matches!(resource.kind.as_str(), "PersistentVolumeClaim" | "Secret");
            assert_eq!(prunable, !keep, "{}", resource.kind);
        }
        assert_eq!(
            managed_by_selector(),
            "app.kubernetes.io/managed-by=insync-operator"
        );
    }
}
