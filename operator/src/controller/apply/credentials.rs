//! Generated credentials: keys filled once and kept, and never created over a datastore's
//! existing data (a lost Secret is reported, not regenerated: the data would be locked out).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DynamicObject, ListParams};
use kube::{Client, ResourceExt};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::Value;

use crate::render::keys::{COMPONENT, GENERATE_KEYS, INSTANCE};

use super::{Outcome, create};

/// Creates a create-only object, except generated credentials over existing data: those are
/// withheld and reported (new random passwords would lock the datastore's data out).
pub(super) async fn create_unless_data(
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
pub(super) fn credential_data_selector(object: &DynamicObject) -> Option<String> {
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
pub(super) const DATA_BOUND_CREDENTIALS: [&str; 3] = ["mysql", "bynamo", "minio"];

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

/// Fills the keys named by [`GENERATE_KEYS`] with fresh random values. This is the one place
/// randomness enters, and it runs only when the Secret does not exist yet, so credentials are
/// never regenerated.
pub(super) fn fill_generated(object: &DynamicObject) -> DynamicObject {
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
