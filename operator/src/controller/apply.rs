//! Writing children: server-side apply under one field manager, but only when the live object
//! (its projection in the cache, see [`super::cache`]) differs from what render wants. A steady
//! cluster costs no writes.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::{Client, ResourceExt};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::cache::Child;
use super::cache::digest::{self, Shape};
pub use super::cache::kinds::FIELD_MANAGER;
use super::cache::kinds::{ChildKind, cached, kind_for};
use super::error::Error;
use crate::api::Quantity;
use crate::render::keys::{COMPONENT, GENERATE_KEYS, INSTANCE};
use crate::render::{ApplyPolicy, Desired};

/// Hash of the desired object, so a change in render is noticed even where it removes fields.
pub const APPLIED_HASH: &str = "insync.dev/applied-hash";

/// What one apply pass did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Objects written (created or patched).
    pub applied: Vec<String>,
    /// Objects already as desired.
    pub unchanged: usize,
    /// Objects deleted because the cloud no longer needs them.
    pub pruned: Vec<String>,
    /// Writes that failed. One refused object (say, a node port already taken) must not keep
    /// the rest of the cloud from converging, so the pass goes on and reports them all.
    pub failed: Vec<Error>,
    /// Generated credentials deliberately not created because data they would lock out
    /// exists, each with what happened and the way out (see [`lost_credentials`]).
    pub withheld: Vec<String>,
}

/// Whether every field of `desired` is present in `live` with the same value. Fields the API
/// server adds (defaults, status, managedFields) are ignored; an empty object or list in
/// `desired` matches a missing one, because the server drops empties.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    first_difference(desired, live).is_none()
}

/// The path of the first desired field the live object lacks or holds differently, for the
/// "why did it write" debug log. See [`is_subset`]. Resource quantities (the values under
/// `requests` and `limits`, `sizeLimit` and `storage`: [`Shape`]) compare by amount: the API server stores them in
/// canonical form (`5120Mi` reads back as `5Gi`, `1000m` as `1`).
pub fn first_difference(desired: &Value, live: &Value) -> Option<String> {
    difference(desired, live, Shape::Plain)
}

fn difference(desired: &Value, live: &Value, shape: Shape) -> Option<String> {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => {
            want.iter().find_map(|(k, v)| match have.get(k) {
                Some(h) => difference(v, h, shape.of_field(k)).map(|p| format!(".{k}{p}")),
                None => (!digest::is_zero(v)).then(|| format!(".{k}")),
            })
        }
        (want, Value::Null) => (!digest::is_zero(want)).then(String::new),
        (Value::Array(want), Value::Array(have)) => {
            if want.len() != have.len() {
                return Some(format!("[len {} != {}]", want.len(), have.len()));
            }
            want.iter()
                .zip(have)
                .enumerate()
                .find_map(|(i, (w, h))| difference(w, h, shape).map(|p| format!("[{i}]{p}")))
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => None,
        (Value::String(a), Value::String(b)) if shape == Shape::Quantity => {
            (!Quantity::same(a, b)).then(String::new)
        }
        (a, b) => (a != b).then(String::new),
    }
}

/// The desired object as it is sent: with the hash annotation of its own content.
pub fn with_hash(desired: &DynamicObject) -> Result<DynamicObject, Error> {
    let mut object = desired.clone();
    let body = serde_json::to_vec(&object).map_err(Error::Serialize)?;
    let hash = format!("{:x}", Sha256::digest(&body));
    object
        .annotations_mut()
        .insert(APPLIED_HASH.to_owned(), hash[..16].to_owned());
    Ok(object)
}

/// Whether the live object already is what we would send: the values of the fields the
/// operator owns hash like the object it sends (see [`digest`]). An edit of an owned field by
/// anyone else moves the field's ownership away, and a change in render changes the
/// applied-hash annotation, so either shows as a different digest.
pub fn up_to_date(sent: &DynamicObject, live: &Child) -> Result<bool, Error> {
    let want = digest::of_object(&serde_json::to_value(sent).map_err(Error::Serialize)?);
    let same = live.owned == Some(want);
    if !same {
        tracing::debug!(object = %sent.name_any(), "the operator's fields of the live object differ from desired");
    }
    Ok(same)
}

/// What writing one object did.
enum Outcome {
    Written,
    Unchanged,
    /// Generated credentials not created over existing data: why, and the way out.
    Withheld(String),
    /// A StatefulSet whose volume claim templates changed was deleted with its pods orphaned;
    /// the next reconcile creates it again with the new templates and it adopts the pods.
    Recreating,
}

/// Writes the desired objects that differ from the cache, then prunes the ones no longer
/// needed (when `prune`), leaving alone the objects in `keep` as `(kind, name)` (workloads the
/// rollout holds as they are live, and the ConfigMaps live workloads mount). `owner_uid` identifies this cloud's children among
/// the cached objects. A write the API server refuses is recorded in the report and the pass
/// goes on.
pub async fn apply_all(
    client: &Client,
    kinds: &[ChildKind],
    namespace: &str,
    owner_uid: &str,
    desired: &[Desired],
    prune: bool,
    keep: &BTreeSet<(String, String)>,
) -> Result<ApplyReport, Error> {
    let mut report = ApplyReport::default();
    let mut wanted = keep.clone();
    for item in desired {
        let kind = kind_for(kinds, &item.object)?;
        let name = item.object.name_any();
        wanted.insert((kind.resource.kind.clone(), name.clone()));
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &*kind.resource);
        let live = cached(kind, namespace, &name);
        let label = format!("{}/{name}", kind.resource.kind);
        let outcome = match (item.policy, live.as_deref()) {
            (ApplyPolicy::CreateOnly, None) => create_unless_data(client, &api, &item.object).await,
            (ApplyPolicy::CreateOnly, Some(live)) => grow_claim(&api, &item.object, live).await,
            (ApplyPolicy::Apply, live) => {
                let sent = with_hash(&item.object)?;
                match live {
                    Some(live) if up_to_date(&sent, live)? => Ok(Outcome::Unchanged),
                    Some(live) if claim_templates_differ(&sent, live) => {
                        recreate_statefulset(client, namespace, &sent).await
                    }
                    Some(live) if scales_up(&sent, live) => {
                        // Claims a scale-down kept come back as they are: grow them first.
                        match grow_statefulset_claims(client, namespace, &sent).await {
                            Ok(()) => server_side_apply(&api, &name, &sent).await,
                            Err(e) => Err(e),
                        }
                    }
                    _ => server_side_apply(&api, &name, &sent).await,
                }
            }
        };
        match outcome {
            Ok(Outcome::Written) => report.applied.push(label),
            Ok(Outcome::Recreating) => report.applied.push(format!(
                "{label} (recreating for new volume claim templates)"
            )),
            Ok(Outcome::Unchanged) => report.unchanged += 1,
            Ok(Outcome::Withheld(why)) => report.withheld.push(why),
            Err(source) => report.failed.push(Error::Write {
                object: label,
                source,
            }),
        }
    }

    for kind in kinds.iter().filter(|k| prune && k.prunable) {
        for live in kind.store.state() {
            if !live.controlled_by(owner_uid)
                || live.namespace.as_deref() != Some(namespace)
                || live.deleting
            {
                continue;
            }
            let name = live.name.to_string();
            if wanted.contains(&(kind.resource.kind.clone(), name.clone())) {
                continue;
            }
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &*kind.resource);
            let label = format!("{}/{name}", kind.resource.kind);
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => report.pruned.push(label),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => report.failed.push(Error::Write {
                    object: label,
                    source,
                }),
            }
        }
    }
    Ok(report)
}

async fn create(api: &Api<DynamicObject>, desired: &DynamicObject) -> Result<Outcome, kube::Error> {
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.create(&params, &fill_generated(desired)).await {
        Ok(_) => Ok(Outcome::Written),
        // The cache lags a moment behind a create: already there is what we want.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Outcome::Unchanged),
        Err(e) => Err(e),
    }
}

/// Creates a create-only object, except generated credentials over existing data: those are
/// withheld and reported (new random passwords would lock the datastore's data out).
async fn create_unless_data(
    client: &Client,
    api: &Api<DynamicObject>,
    desired: &DynamicObject,
) -> Result<Outcome, kube::Error> {
    let Some(selector) = credential_data_selector(desired) else {
        return create(api, desired).await;
    };
    // Only reached when the Secret is not in the cache: at creation, or when it was lost.
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(client.clone(), &desired.namespace().unwrap_or_default());
    let found: Vec<String> = claims
        .list_metadata(&ListParams::default().labels(&selector))
        .await?
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    let Some(why) = lost_credentials(desired, &found) else {
        return create(api, desired).await;
    };
    // The cache may lag behind a Secret created a moment ago: ask the API server.
    if api.get_metadata_opt(&desired.name_any()).await?.is_some() {
        return Ok(Outcome::Unchanged);
    }
    Ok(Outcome::Withheld(why))
}

/// The label selector of the data volumes a generated credential Secret unlocks (its cloud's
/// claims of its component), or `None` when the object is not generated credentials that data
/// depends on.
///
/// The rule, per credential (each of the three datastores keeps a data volume):
/// - MySQL: the passwords are written into the data directory (`mysql.user`) on first start
///   only; over an existing data directory `MYSQL_*_PASSWORD` are ignored, so new ones lock
///   inSync and the operator out.
/// - MinIO: the root credentials sign, and without a KMS encrypt, the IAM and configuration
///   store MinIO keeps on its drives: new root credentials cannot read them back.
/// - Bynamo: its data directory is opaque to the operator, so whether anything in it is bound
///   to the access keys cannot be known. Refusing wrongly costs a restore or a PVC deletion;
///   regenerating wrongly can cost the data. Withheld as well.
fn credential_data_selector(object: &DynamicObject) -> Option<String> {
    let is_secret = object.types.as_ref().is_some_and(|t| t.kind == "Secret");
    if !is_secret || !object.annotations().contains_key(GENERATE_KEYS) {
        return None;
    }
    let labels = object.labels();
    let component = labels.get(COMPONENT)?;
    if !DATA_BOUND_CREDENTIALS.contains(&component.as_str()) {
        return None;
    }
    let instance = labels.get(INSTANCE)?;
    Some(format!("{INSTANCE}={instance},{COMPONENT}={component}"))
}

/// Components whose generated credentials are never generated over existing data (see
/// [`credential_data_selector`]).
const DATA_BOUND_CREDENTIALS: [&str; 3] = ["mysql", "bynamo", "minio"];

/// When generated credentials are missing but data volumes they unlock exist: what happened
/// and the way out, for the Degraded condition. `claims` are the cloud's claims of the
/// Secret's component.
pub fn lost_credentials(secret: &DynamicObject, claims: &[String]) -> Option<String> {
    if claims.is_empty() {
        return None;
    }
    let component = secret.labels().get(COMPONENT).cloned().unwrap_or_default();
    let keys = secret
        .annotations()
        .get(GENERATE_KEYS)
        .cloned()
        .unwrap_or_default();
    let namespace = secret.namespace().unwrap_or_default();
    Some(format!(
        "Secret {namespace}/{name} with {component}'s generated credentials is missing, but \
         {component}'s data volume(s) {claims} exist: new random credentials would lock inSync \
         out of that data, so none were generated. Restore the Secret from a backup (same \
         name, keys {keys}), or delete the PersistentVolumeClaim(s) to start {component} empty",
        name = secret.name_any(),
        claims = claims.join(", "),
    ))
}

fn requested_storage(claim_spec: Option<&Value>) -> Option<Quantity> {
    let text = claim_spec?
        .pointer("/resources/requests/storage")?
        .as_str()?;
    Quantity::parse(text).ok()
}

/// Raises a PVC's storage request, which is how Kubernetes expands a volume.
async fn request_storage(
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
async fn grow_claim(
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
fn claim_templates_differ(desired: &DynamicObject, live: &Child) -> bool {
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
fn scales_up(desired: &DynamicObject, live: &Child) -> bool {
    let want = desired
        .data
        .pointer("/spec/replicas")
        .and_then(Value::as_i64);
    let have = live.workload().map(|w| i64::from(w.counts.desired));
    is_statefulset(desired) && want.unwrap_or(1) > have.unwrap_or(1)
}

fn is_statefulset(object: &DynamicObject) -> bool {
    object
        .types
        .as_ref()
        .is_some_and(|t| t.kind == "StatefulSet")
}

/// The claims of a StatefulSet's volume claim template, by name: `<template>-<set>-<ordinal>`.
fn is_claim_of(claim: &str, template: &str, statefulset: &str) -> bool {
    claim
        .strip_prefix(&format!("{template}-{statefulset}-"))
        .is_some_and(|ordinal| !ordinal.is_empty() && ordinal.bytes().all(|b| b.is_ascii_digit()))
}

/// Of `claims` (name, requested storage), those of `template` of `statefulset` smaller than
/// `want`: every ordinal found, not only the current replicas, because the claims a scale-down
/// kept are reused as they are when the set scales up again.
fn claims_to_grow(
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

/// Grows every existing claim of the StatefulSet's templates (current replicas and the ones a
/// scale-down kept) to the template's size.
/// Server-side apply of `object` under the operator's field manager.
async fn server_side_apply(
    api: &Api<DynamicObject>,
    name: &str,
    object: &DynamicObject,
) -> Result<Outcome, kube::Error> {
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map(|_| Outcome::Written)
}

async fn grow_statefulset_claims(
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
async fn recreate_statefulset(
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

/// Fills the keys named by [`GENERATE_KEYS`] with fresh random values. This is the one place
/// randomness enters, and it runs only when the Secret does not exist yet, so credentials are
/// never regenerated.
fn fill_generated(object: &DynamicObject) -> DynamicObject {
    let mut object = object.clone();
    let Some(keys) = object.annotations().get(GENERATE_KEYS).cloned() else {
        return object;
    };
    let mut data: BTreeMap<String, Value> = object
        .data
        .get("stringData")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    for key in keys.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        data.entry(key.to_owned())
            .or_insert_with(|| Value::String(Alphanumeric.sample_string(&mut rand::rng(), 32)));
    }
    if let Some(body) = object.data.as_object_mut() {
        body.insert(
            "stringData".into(),
            serde_json::to_value(data).unwrap_or_default(),
        );
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_ignores_server_added_fields_and_empties() {
        let want = json!({"spec": {"replicas": 2, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"volumes": []}}}});
        let have = json!({"spec": {"replicas": 2, "progressDeadlineSeconds": 600, "template": {"metadata": {"labels": {"a": "b", "x": "y"}}, "spec": {}}}, "status": {}});
        assert!(is_subset(&want, &have));
    }

    #[test]
    fn subset_sees_drift() {
        let want = json!({"spec": {"replicas": 2, "ports": [{"port": 443}]}});
        assert!(!is_subset(
            &want,
            &json!({"spec": {"replicas": 5, "ports": [{"port": 443}]}})
        ));
        assert!(!is_subset(
            &want,
            &json!({"spec": {"replicas": 2, "ports": [{"port": 443}, {"port": 80}]}})
        ));
        assert!(!is_subset(&want, &json!({"spec": {"replicas": 2}})));
        assert!(!is_subset(
            &json!({"data": {"haproxy.cfg": "a"}}),
            &json!({"data": {"haproxy.cfg": "b"}})
        ));
    }

    #[test]
    fn quantities_compare_by_amount_not_spelling() {
        // What render sends against what the API server stores (canonical form).
        let want = json!({"spec": {"template": {"spec": {"containers": [{"name": "c",
            "resources": {"requests": {"cpu": "1000m", "memory": "1024Mi"}, "limits": {"memory": "2048Mi"}}}],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1024Mi"}}]}}}});
        let have = json!({"spec": {"template": {"spec": {"containers": [{"name": "c",
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}}],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]}}}});
        assert_eq!(first_difference(&want, &have), None);
        let bigger = json!({"spec": {"template": {"spec": {"containers": [{"name": "c",
            "resources": {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}}],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]}}}});
        assert_eq!(
            first_difference(&want, &bigger).as_deref(),
            Some(".spec.template.spec.containers[0].resources.requests.cpu")
        );
        // Elsewhere a string is a string: a label "1" is not the label "1000m".
        assert!(!is_subset(
            &json!({"metadata": {"labels": {"x": "1000m"}}}),
            &json!({"metadata": {"labels": {"x": "1"}}})
        ));
    }

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
            |size: &str| super::super::cache::project("StatefulSet", sts(size), FIELD_MANAGER);
        assert!(!claim_templates_differ(&sts("5120Mi"), &live("5Gi")));
        assert!(claim_templates_differ(&sts("6Gi"), &live("5Gi")));
    }

    fn generated_secret(component: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("fcloud-{component}-credentials"), "namespace": "ns",
                "labels": {INSTANCE: "fcloud", COMPONENT: component},
                "annotations": {GENERATE_KEYS: "password,rootPassword"}},
        }))
        .expect("secret")
    }

    #[test]
    fn every_datastore_credential_is_bound_to_its_data() {
        for component in ["mysql", "bynamo", "minio"] {
            assert_eq!(
                credential_data_selector(&generated_secret(component)).as_deref(),
                Some(format!("{INSTANCE}=fcloud,{COMPONENT}={component}").as_str()),
                "{component}"
            );
        }
        let mut plain = generated_secret("mysql");
        plain.annotations_mut().clear();
        assert_eq!(credential_data_selector(&plain), None, "not generated");
    }

    #[test]
    fn lost_credentials_over_data_say_what_happened_and_the_way_out() {
        let secret = generated_secret("mysql");
        assert_eq!(lost_credentials(&secret, &[]), None, "no data: generate");
        let message =
            lost_credentials(&secret, &["data-fcloud-mysql-0".to_owned()]).expect("data exists");
        for needle in [
            "ns/fcloud-mysql-credentials",
            "data-fcloud-mysql-0",
            "Restore the Secret from a backup",
            "password,rootPassword",
            "delete the PersistentVolumeClaim",
        ] {
            assert!(message.contains(needle), "{needle:?} in {message}");
        }
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

    #[test]
    fn generated_keys_are_filled_once_and_kept() {
        let secret: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "annotations": {GENERATE_KEYS: "password, rootPassword"}},
            "stringData": {"username": "insync"}
        }))
        .expect("secret");
        let filled = fill_generated(&secret);
        let data = &filled.data["stringData"];
        assert_eq!(data["username"], "insync");
        assert_eq!(data["password"].as_str().map(str::len), Some(32));
        assert_ne!(data["password"], data["rootPassword"]);
    }
}
