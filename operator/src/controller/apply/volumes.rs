//! Volumes: claims grow with the spec (claims kept from a scale-down too), and a StatefulSet
//! whose immutable claim templates changed is re-created with its pods orphaned, not deleted.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::ApiResource;
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::api::Quantity;
use crate::controller::cache::Child;
use crate::controller::cache::digest::{self};

use super::Outcome;

pub(super) fn requested_storage(claim_spec: Option<&Value>) -> Option<Quantity> {
    let text = claim_spec?
        .pointer("/resources/requests/storage")?
        .as_str()?;
    Quantity::parse(text).ok()
}

/// Raises a PVC's storage request, which is how Kubernetes expands a volume.
pub(super) async fn request_storage(
    claims: &Api<DynamicObject>,
    name: &str,
    size: Value,
) -> Result<(), kube::Error> {
    let patch = serde_json::json!({"spec": {"resources": {"requests": {"storage": size}}}});
    claims
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// A create-only PVC is never rewritten, but it may grow: the schema lets sizes increase only,
/// and a larger request is how Kubernetes expands a volume (where its StorageClass allows).
pub(super) async fn grow_claim(
    api: &Api<DynamicObject>,
    desired: &DynamicObject,
    live: &Child,
) -> Result<Outcome, kube::Error> {
    let want = requested_storage(desired.data.get("spec"));
    let have = live.storage();
    match (want, have) {
        (Some(want), Some(have)) if want > have => {
            let size = desired
                .data
                .pointer("/spec/resources/requests/storage")
                .cloned()
                .unwrap_or_default();
            request_storage(api, &desired.name_any(), size).await?;
            Ok(Outcome::Written)
        }
        _ => Ok(Outcome::Unchanged),
    }
}

/// Whether a StatefulSet's volume claim templates (immutable in the API) differ from the live
/// ones: both sides as [`digest::of_claim_templates`], which keeps the fields render sets, so
/// what the API server added to the live templates is no difference.
pub(super) fn claim_templates_differ(desired: &DynamicObject, live: &Child) -> bool {
    let Some(live) = live.workload().filter(|_| is_statefulset(desired)) else {
        return false;
    };
    let want = desired
        .data
        .pointer("/spec/volumeClaimTemplates")
        .map(digest::of_claim_templates);
    want != live.claim_templates
}

/// Whether applying `desired` raises a live StatefulSet's replicas.
pub(super) fn scales_up(desired: &DynamicObject, live: &Child) -> bool {
    let want = desired
        .data
        .pointer("/spec/replicas")
        .and_then(Value::as_i64);
    let have = live.workload().map(|w| i64::from(w.counts.desired));
    is_statefulset(desired) && want.unwrap_or(1) > have.unwrap_or(1)
}

pub(super) fn is_statefulset(object: &DynamicObject) -> bool {
    object
        .types
        .as_ref()
        .is_some_and(|t| t.kind == "StatefulSet")
}

/// The claims of a StatefulSet's volume claim template, by name: `<template>-<set>-<ordinal>`.
pub(super) fn is_claim_of(claim: &str, template: &str, statefulset: &str) -> bool {
    claim
        .strip_prefix(&format!("{template}-{statefulset}-"))
        .is_some_and(|ordinal| !ordinal.is_empty() && ordinal.bytes().all(|b| b.is_ascii_digit()))
}

/// Of `claims` (name, requested storage), those of `template` of `statefulset` smaller than
/// `want`: every ordinal found, not only the current replicas, because the claims a scale-down
/// kept are reused as they are when the set scales up again.
pub(super) fn claims_to_grow(
    template: &str,
    statefulset: &str,
    want: Quantity,
    claims: &[(String, Option<Quantity>)],
) -> Vec<String> {
    claims
        .iter()
        .filter(|(name, have)| {
            is_claim_of(name, template, statefulset) && have.is_some_and(|have| have < want)
        })
        .map(|(name, _)| name.clone())
        .collect()
}

pub(super) async fn grow_statefulset_claims(
    client: &Client,
    namespace: &str,
    desired: &DynamicObject,
) -> Result<(), kube::Error> {
    let name = desired.name_any();
    let claims: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<PersistentVolumeClaim>(&()),
    );
    let templates = desired
        .data
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for template in &templates {
        let template_name = template
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(want) = requested_storage(template.get("spec")) else {
            continue;
        };
        let size = template
            .pointer("/spec/resources/requests/storage")
            .cloned()
            .unwrap_or_default();
        // The claims carry the template's labels (the cloud's and component's selector).
        let selector = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let existing: Vec<(String, Option<Quantity>)> = claims
            .list(&ListParams::default().labels(&selector))
            .await?
            .items
            .iter()
            .map(|c| (c.name_any(), requested_storage(c.data.get("spec"))))
            .collect();
        for claim in claims_to_grow(template_name, &name, want, &existing) {
            request_storage(&claims, &claim, size.clone()).await?;
        }
    }
    Ok(())
}

/// Grows the claims to the new template sizes, then deletes the StatefulSet with its pods
/// orphaned, so nothing restarts; the next reconcile creates it again.
pub(super) async fn recreate_statefulset(
    client: &Client,
    namespace: &str,
    desired: &DynamicObject,
) -> Result<Outcome, kube::Error> {
    grow_statefulset_claims(client, namespace, desired).await?;
    let name = desired.name_any();
    let statefulsets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<StatefulSet>(&()),
    );
    match statefulsets.delete(&name, &DeleteParams::orphan()).await {
        Ok(_) => Ok(Outcome::Recreating),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Outcome::Recreating),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::cache::kinds::FIELD_MANAGER;
    use serde_json::json;

    #[test]
    fn a_claim_template_size_written_differently_is_not_a_change() {
        let sts = |size: &str| -> DynamicObject {
            serde_json::from_value(json!({
                "apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "fcloud-mysql"},
                "spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}]}
            }))
            .expect("statefulset")
        };
        let live =
            |size: &str| crate::controller::cache::project("StatefulSet", sts(size), FIELD_MANAGER);
        assert!(!claim_templates_differ(&sts("5120Mi"), &live("5Gi")));
        assert!(claim_templates_differ(&sts("6Gi"), &live("5Gi")));
    }

    #[test]
    fn claims_kept_from_a_scale_down_are_grown_too() {
        let q = |s: &str| Quantity::parse(s).ok();
        let claims = vec![
            ("data-fcloud-bynamo-0".to_owned(), q("10Gi")),
            // Kept from a scale-down from 3 replicas to 1.
            ("data-fcloud-bynamo-1".to_owned(), q("10Gi")),
            ("data-fcloud-bynamo-2".to_owned(), q("25Gi")),
            // Not this set's.
            ("data-fcloud-bynamo-extra-0".to_owned(), q("1Gi")),
            ("data-other-bynamo-0".to_owned(), q("1Gi")),
        ];
        let want = Quantity::parse("25Gi").expect("quantity");
        assert_eq!(
            claims_to_grow("data", "fcloud-bynamo", want, &claims),
            ["data-fcloud-bynamo-0", "data-fcloud-bynamo-1"]
        );
    }
}
