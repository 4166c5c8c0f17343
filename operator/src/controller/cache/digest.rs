//! Drift without the object: a digest of the values of the fields the operator's field manager
//! owns.
//!
//! The API server records, per object, which fields each field manager set (`managedFields`,
//! a `fieldsV1` tree). The fields the operator owns hold exactly what it applied, as long as
//! nobody changed them: a `kubectl scale`, `kubectl edit` or an apply by another manager moves
//! the changed field's ownership away. So hashing the live values at the operator's owned paths
//! gives, in steady state, the same digest as hashing the object the operator sends; any edit
//! of an owned field changes it. The watch computes the live side once per event and keeps only
//! the digest; reconcile computes the desired side.
//!
//! Both sides go through the same [`normalize`]: what the API server rewrites (quantities into
//! canonical form, zero values it omits, apiVersion/kind it adds inside atomic values such as
//! `fieldRef`) must not look like drift.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::api::Quantity;

/// A 128-bit digest of normalized values.
pub type Digest = u128;

/// The operator's owned-fields tree: the union of its `fieldsV1` sets on the main resource
/// (not the status subresource), of both operations: `Apply` for server-side applies, `Update`
/// for objects it created with a POST. `None` when it owns nothing.
pub fn owned_fields(entries: &[ManagedFieldsEntry], manager: &str) -> Option<Value> {
    entries
        .iter()
        .filter(|e| {
            e.manager.as_deref() == Some(manager)
                && e.subresource.as_deref().unwrap_or_default().is_empty()
                && e.fields_type.as_deref() == Some("FieldsV1")
        })
        .filter_map(|e| e.fields_v1.as_ref().map(|f| &f.0))
        .fold(None, |union, fields| {
            let mut union = union.unwrap_or_else(|| Value::Object(Map::new()));
            merge_fields(&mut union, fields);
            Some(union)
        })
}

/// Adds the paths of `more` to `into`.
fn merge_fields(into: &mut Value, more: &Value) {
    let (Value::Object(into), Value::Object(more)) = (into, more) else {
        return;
    };
    for (key, child) in more {
        merge_fields(
            into.entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new())),
            child,
        );
    }
}

/// The live values at the paths of a `fieldsV1` tree, shaped like the object: `f:<name>` is an
/// object field, `k:{...}` the list item whose fields equal the key, `v:<json>` a set item,
/// `i:<n>` the item at an index, `.` the node itself. A node without children is owned whole
/// (a scalar, or an atomic list or struct): its whole live value is taken. A path the live
/// object lacks contributes nothing.
pub fn extract(fields: &Value, live: &Value) -> Value {
    let children: Vec<(&String, &Value)> = match fields {
        Value::Object(map) => map.iter().filter(|(k, _)| k.as_str() != ".").collect(),
        _ => Vec::new(),
    };
    if children.is_empty() {
        return live.clone();
    }
    match live {
        Value::Object(object) => Value::Object(
            children
                .iter()
                .filter_map(|(key, child)| {
                    let name = key.strip_prefix("f:")?;
                    Some((name.to_owned(), extract(child, object.get(name)?)))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            children
                .iter()
                .filter_map(|(key, child)| {
                    let item = list_item(key, items)?;
                    Some(extract(child, item))
                })
                .collect(),
        ),
        _ => live.clone(),
    }
}

/// The item of a list a `k:`, `v:` or `i:` path element names.
fn list_item<'a>(key: &str, items: &'a [Value]) -> Option<&'a Value> {
    if let Some(json) = key.strip_prefix("k:") {
        let Value::Object(wanted) = serde_json::from_str::<Value>(json).ok()? else {
            return None;
        };
        items.iter().find(|item| {
            wanted
                .iter()
                .all(|(k, v)| item.get(k).is_some_and(|have| same_scalar(v, have)))
        })
    } else if let Some(json) = key.strip_prefix("v:") {
        let wanted: Value = serde_json::from_str(json).ok()?;
        items.iter().find(|item| same_scalar(&wanted, item))
    } else if let Some(index) = key.strip_prefix("i:") {
        items.get(index.parse::<usize>().ok()?)
    } else {
        None
    }
}

/// Equality of key values, numbers by value (`8080` and `8080.0`).
fn same_scalar(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Digest of the live values of the fields `manager` owns in `live` (the object as JSON).
pub fn of_owned(entries: &[ManagedFieldsEntry], manager: &str, live: &Value) -> Option<Digest> {
    let fields = owned_fields(entries, manager)?;
    Some(of_object(&extract(&fields, live)))
}

/// Digest of an object as sent (or of the owned part of a live one), after [`normalize`].
pub fn of_object(object: &Value) -> Digest {
    hash(&normalize(object).unwrap_or(Value::Null))
}

/// The fields of a volume claim template that render sets (its name and selector labels; the
/// access modes, storage class and resources of `render::workload::claim_spec`). A digest of
/// claim templates covers these only, on both sides, so what the API server adds to a live
/// template (status, apiVersion/kind, `volumeMode: Filesystem`) is no difference, as it was not
/// for the field-by-field subset comparison this replaces. A field render starts setting must
/// be added here: `a_rendered_claim_template_is_covered_by_its_digest` fails until it is.
const CLAIM_TEMPLATE_FIELDS: &[(&str, &[&str])] = &[
    ("metadata", &["name", "labels"]),
    ("spec", &["accessModes", "storageClassName", "resources"]),
];

/// Digest of a StatefulSet's `spec.volumeClaimTemplates` (see [`CLAIM_TEMPLATE_FIELDS`]); the
/// cache keeps this instead of the templates.
pub fn of_claim_templates(templates: &Value) -> Digest {
    let keep = |template: &Value| -> Value {
        let mut kept = Map::new();
        for (section, fields) in CLAIM_TEMPLATE_FIELDS {
            let Some(Value::Object(live)) = template.get(*section) else {
                continue;
            };
            let part: Map<String, Value> = fields
                .iter()
                .filter_map(|f| Some(((*f).to_owned(), live.get(*f)?.clone())))
                .collect();
            kept.insert((*section).to_owned(), Value::Object(part));
        }
        Value::Object(kept)
    };
    let kept = match templates {
        Value::Array(items) => Value::Array(items.iter().map(keep).collect()),
        other => other.clone(),
    };
    hash(&normalize(&kept).unwrap_or(Value::Null))
}

/// What a JSON value holds, as far as normalizing or comparing goes (the digest here and
/// `apply`'s field-by-field comparison share it, so both read the same fields as quantities).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(in crate::controller) enum Shape {
    Plain,
    /// An object whose values are quantities (`requests`, `limits`).
    Quantities,
    /// A quantity.
    Quantity,
}

impl Shape {
    pub(in crate::controller) fn of_field(self, key: &str) -> Self {
        match (self, key) {
            (Self::Quantities, _) | (_, "sizeLimit" | "storage") => Self::Quantity,
            (_, "requests" | "limits") => Self::Quantities,
            _ => Self::Plain,
        }
    }
}

/// Fields that are no content of the object: identity (`metadata.name`/`namespace`, fixed by
/// the request path) and, at any depth, apiVersion/kind (the API server fills them into list
/// items and atomic values like `fieldRef`) and status (claim templates carry one).
const IDENTITY: &[&str] = &["name", "namespace"];
const SERVER_FILLED: &[&str] = &["apiVersion", "kind", "status"];
/// Defaults the API server fills inside a value the operator owns whole (an atomic list such
/// as `volumeClaimTemplates`): a digest of what was sent cannot know them, and the value they
/// hold is what a missing field means. Found against the real API server (e2e `cache_digest`).
const SERVER_DEFAULTS: &[(&str, &str)] = &[("volumeMode", "Filesystem")];

/// The canonical form both sides are hashed in: zero values the API server omits dropped (see
/// [`is_zero`]), quantities as their amount, numbers by value. `None` when nothing is left.
pub fn normalize(object: &Value) -> Option<Value> {
    let mut top = normalize_value(object, Shape::Plain, false)?;
    if let Some(meta) = top.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in IDENTITY {
            meta.remove(*field);
        }
        if meta.is_empty() {
            top.as_object_mut().map(|o| o.remove("metadata"));
        }
    }
    Some(top)
}

fn normalize_value(value: &Value, shape: Shape, in_list: bool) -> Option<Value> {
    let normalized = match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, v)| {
                    !SERVER_FILLED.contains(&k.as_str())
                        && !SERVER_DEFAULTS
                            .iter()
                            .any(|(key, default)| k == key && v.as_str() == Some(default))
                })
                .filter_map(|(k, v)| {
                    Some((k.clone(), normalize_value(v, shape.of_field(k), false)?))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter_map(|v| normalize_value(v, shape, true))
                .collect(),
        ),
        Value::String(text) if shape == Shape::Quantity => match Quantity::parse(text) {
            // The amount, however it is spelt: `5120Mi` is stored as `5Gi`, `1000m` as `1`.
            Ok(amount) => Value::String(format!("{amount:?}")),
            Err(_) => value.clone(),
        },
        Value::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| value.clone(), Value::Number),
        other => other.clone(),
    };
    // A list keeps its items as they are (an empty string is an argument); a field with a zero
    // value is what the API server leaves out.
    (in_list || !is_zero(&normalized)).then_some(normalized)
}

/// Values the API server omits when serializing (Go's `omitempty` on non-pointer fields):
/// `false`, `0`, `""`, `{}` and `[]` mean the same as a missing field.
pub fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Object(m) => m.values().all(is_zero),
        Value::Array(a) => a.is_empty(),
    }
}

/// A canonical hash: object keys in order, list items as a sorted multiset of their own
/// hashes. Order within lists is left out on purpose: the API server may merge an applied list
/// into a different order, and a reorder by anyone else moves the list's ownership anyway.
fn hash(value: &Value) -> Digest {
    let mut hasher = Sha256::new();
    feed(&mut hasher, value);
    let bytes = hasher.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&bytes[..16]);
    u128::from_be_bytes(first)
}

fn feed(hasher: &mut Sha256, value: &Value) {
    match value {
        Value::Null => hasher.update(b"n"),
        Value::Bool(b) => hasher.update(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            hasher.update(b"#");
            hasher.update(n.as_f64().unwrap_or(f64::NAN).to_bits().to_be_bytes());
        }
        Value::String(s) => {
            hasher.update(b"s");
            hasher.update((s.len() as u64).to_be_bytes());
            hasher.update(s.as_bytes());
        }
        Value::Array(items) => {
            let mut hashes: Vec<Digest> = items.iter().map(hash).collect();
            hashes.sort_unstable();
            hasher.update(b"[");
            hasher.update((hashes.len() as u64).to_be_bytes());
            for h in hashes {
                hasher.update(h.to_be_bytes());
            }
        }
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            hasher.update(b"{");
            hasher.update((sorted.len() as u64).to_be_bytes());
            for (k, v) in sorted {
                feed(hasher, &Value::String(k.clone()));
                feed(hasher, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;
    use serde_json::json;

    #[test]
    fn a_rendered_claim_template_is_covered_by_its_digest() {
        let mut cloud: crate::api::InSyncCloud =
            serde_yaml::from_str(include_str!("../../../../examples/fcloud.yaml"))
                .expect("example");
        if let Some(mysql) = cloud.spec.database.managed.as_mut() {
            mysql.storage.storage_class_name = Some("fast".into());
        }
        let rendered = crate::render::render(&cloud, &crate::render::RenderOptions::default())
            .expect("renders");
        let templates: Vec<&Value> = rendered
            .iter()
            .filter_map(|d| d.object.data.pointer("/spec/volumeClaimTemplates"))
            .collect();
        assert_eq!(templates.len(), 3, "MySQL, Bynamo and MinIO");
        for t in templates {
            // Nothing render sets is left out of the digest.
            assert_eq!(
                of_claim_templates(t),
                hash(&normalize(t).expect("content")),
                "{t}"
            );
        }
    }

    fn entry(
        manager: &str,
        operation: &str,
        subresource: Option<&str>,
        fields: Value,
    ) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            subresource: subresource.map(Into::into),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    #[test]
    fn the_walk_follows_every_kind_of_path_element() {
        let live = json!({
            "metadata": {"name": "x", "labels": {"mine": "a", "theirs": "b"}},
            "spec": {
                "replicas": 3,
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30001}, {"port": 443, "protocol": "TCP", "name": "https"}],
                "finalizers": ["a", "b"],
                "args": ["--x", "--y"],
                "atomic": {"fieldPath": "metadata.name", "apiVersion": "v1"},
                "indexed": ["zero", "one"]
            }
        });
        let fields = json!({
            "f:metadata": {"f:labels": {"f:mine": {}, "f:gone": {}}},
            "f:spec": {
                "f:ports": {"k:{\"port\":443,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:name": {}}},
                "f:finalizers": {"v:\"b\"": {}},
                "f:args": {},
                "f:atomic": {},
                "f:indexed": {"i:1": {}}
            }
        });
        assert_eq!(
            extract(&fields, &live),
            json!({
                "metadata": {"labels": {"mine": "a"}},
                "spec": {
                    "ports": [{"port": 443, "name": "https"}],
                    "finalizers": ["b"],
                    "args": ["--x", "--y"],
                    "atomic": {"fieldPath": "metadata.name", "apiVersion": "v1"},
                    "indexed": ["one"]
                }
            })
        );
    }

    #[test]
    fn only_the_managers_main_resource_entries_count() {
        let entries = [
            entry(
                "insync-operator",
                "Apply",
                None,
                json!({"f:spec": {"f:a": {}}}),
            ),
            entry(
                "insync-operator",
                "Update",
                None,
                json!({"f:spec": {"f:b": {}}}),
            ),
            entry(
                "insync-operator",
                "Apply",
                Some("status"),
                json!({"f:status": {}}),
            ),
            entry(
                "kubectl-edit",
                "Update",
                None,
                json!({"f:spec": {"f:c": {}}}),
            ),
        ];
        assert_eq!(
            owned_fields(&entries, "insync-operator"),
            Some(json!({"f:spec": {"f:a": {}, "f:b": {}}}))
        );
        assert_eq!(owned_fields(&entries, "nobody"), None);
    }

    #[test]
    fn normalizing_keeps_content_and_drops_what_the_server_rewrites() {
        for (sent, stored, why) in [
            (
                json!({"r": {"requests": {"memory": "5120Mi", "cpu": "1000m"}}}),
                json!({"r": {"requests": {"memory": "5Gi", "cpu": "1"}}}),
                "quantities by amount",
            ),
            (
                json!({"v": {"emptyDir": {"sizeLimit": "1024Mi"}}}),
                json!({"v": {"emptyDir": {"sizeLimit": "1Gi"}}}),
                "sizeLimit",
            ),
            (
                json!({"s": {"storage": "2048Mi"}}),
                json!({"s": {"storage": "2Gi"}}),
                "storage",
            ),
            (
                json!({"a": 1, "b": false, "c": "", "d": [], "e": {"f": 0}}),
                json!({"a": 1.0}),
                "zeros omitted, numbers by value",
            ),
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "n", "namespace": "ns", "labels": {"l": "1"}}}),
                json!({"metadata": {"labels": {"l": "1"}}}),
                "identity",
            ),
            (
                json!({"env": [{"valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}),
                json!({"env": [{"valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}]}),
                "apiVersion filled in an atomic value",
            ),
            (
                json!({"l": [{"port": 1}, {"port": 2}]}),
                json!({"l": [{"port": 2}, {"port": 1}]}),
                "list order",
            ),
            (
                json!({"t": [{"spec": {"accessModes": ["ReadWriteOnce"]}}]}),
                json!({"t": [{"spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem"}}]}),
                "a default inside an atomic list",
            ),
        ] {
            assert_eq!(of_object(&sent), of_object(&stored), "{why}");
        }
        for (a, b, why) in [
            (
                json!({"r": {"requests": {"memory": "5Gi"}}}),
                json!({"r": {"requests": {"memory": "6Gi"}}}),
                "a different amount",
            ),
            (
                json!({"labels": {"x": "1000m"}}),
                json!({"labels": {"x": "1"}}),
                "a label is not a quantity",
            ),
            (json!({"replicas": 2}), json!({"replicas": 3}), "a number"),
            (
                json!({"data": {"k": "v"}}),
                json!({"data": {"k": "w"}}),
                "a string",
            ),
            (
                json!({"data": {"k": "v"}}),
                json!({"data": {"k": "v", "j": "w"}}),
                "a field more",
            ),
            (
                json!({"args": ["a", ""]}),
                json!({"args": ["a"]}),
                "an empty list item",
            ),
            (
                json!({"x": {"a": "1"}}),
                json!({"x": [{"a": "1"}]}),
                "an object is not a list",
            ),
        ] {
            assert_ne!(of_object(&a), of_object(&b), "{why}");
        }
    }

    #[test]
    fn a_live_object_hashes_like_what_was_sent_until_someone_else_owns_a_field() {
        let sent = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "ns", "annotations": {"insync.dev/applied-hash": "h"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "i:1",
                "resources": {"requests": {"memory": "1024Mi"}}}]}}}});
        let live = json!({"metadata": {"name": "d", "namespace": "ns", "uid": "u", "annotations": {"insync.dev/applied-hash": "h", "deployment.kubernetes.io/revision": "1"}},
            "spec": {"replicas": 2, "progressDeadlineSeconds": 600, "template": {"spec": {"containers": [{"name": "c", "image": "i:1",
                "imagePullPolicy": "IfNotPresent", "resources": {"requests": {"memory": "1Gi"}}}]}}},
            "status": {"replicas": 2}});
        let ours = json!({"f:metadata": {"f:annotations": {"f:insync.dev/applied-hash": {}}},
            "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {
                ".": {}, "f:name": {}, "f:image": {}, "f:resources": {"f:requests": {"f:memory": {}}}}}}}}});
        let applied = [entry("insync-operator", "Apply", None, ours.clone())];
        assert_eq!(
            of_owned(&applied, "insync-operator", &live),
            Some(of_object(&sent))
        );

        // `kubectl scale` takes spec.replicas over: the operator no longer owns it.
        let mut scaled_fields = ours;
        scaled_fields["f:spec"]
            .as_object_mut()
            .map(|s| s.remove("f:replicas"));
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(5);
        let after = [
            entry("insync-operator", "Apply", None, scaled_fields),
            entry(
                "kubectl",
                "Update",
                None,
                json!({"f:spec": {"f:replicas": {}}}),
            ),
        ];
        assert_ne!(
            of_owned(&after, "insync-operator", &scaled),
            Some(of_object(&sent))
        );
    }
}
