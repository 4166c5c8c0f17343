//! Server-side apply without needless writes: whether a live object (its projection in the
//! cache) already holds what render wants, by the digest of the owned fields and the applied
//! hash; and the apply call itself.

use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::Quantity;
use crate::controller::cache::Child;
use crate::controller::cache::digest::{self, Shape};
use crate::controller::error::Error;

use super::Outcome;
use crate::controller::cache::kinds::FIELD_MANAGER;

/// Hash of the desired object, so a change in render is noticed even where it removes fields.
pub const APPLIED_HASH: &str = "insync.dev/applied-hash";

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

pub(super) fn difference(desired: &Value, live: &Value, shape: Shape) -> Option<String> {
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

/// Grows every existing claim of the StatefulSet's templates (current replicas and the ones a
/// scale-down kept) to the template's size.
/// Server-side apply of `object` under the operator's field manager.
pub(super) async fn server_side_apply(
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
}
