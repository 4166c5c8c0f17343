//! The revision of a workload: a fingerprint of everything in its pod template, in parts (image,
//! configuration, env, resources, the rest), so that the rollout can tell *that* a workload's
//! pods would restart and the plan and status can say *why*.
//!
//! Only the pod template restarts pods: replicas, the workload's own labels and annotations,
//! Services and PodDisruptionBudgets do not, and are not part of it. The configuration part is
//! the content hash of the ConfigMap the pods mount (`insync.dev/config-hash`), so an edit of
//! the config file is a new revision even though the ConfigMap's name is the only thing in the
//! template that points at it.
//!
//! The revision is written as a workload annotation ([`super::keys::REVISION`]), like the
//! version: `image=…,config=…,env=…,resources=…,template=…`, eight hex digits each.

use std::fmt;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::keys;

/// A part of a pod template whose change restarts the pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Change {
    /// A container image.
    Image,
    /// The content of the ConfigMap the pods mount.
    Config,
    /// Environment variables.
    Env,
    /// Requests and limits.
    Resources,
    /// Anything else (probes, placement, volumes, security context, ...).
    Template,
}

impl Change {
    const ALL: [Change; 5] = [
        Self::Image,
        Self::Config,
        Self::Env,
        Self::Resources,
        Self::Template,
    ];

    /// The key of this part in the revision annotation.
    fn key(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Config => "config",
            Self::Env => "env",
            Self::Resources => "resources",
            Self::Template => "template",
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Image => "image",
            Self::Config => "configuration",
            Self::Env => "env",
            Self::Resources => "resources",
            Self::Template => "pod template",
        })
    }
}

/// The revision of `template`.
pub(crate) fn of(template: &PodTemplateSpec) -> String {
    let template = serde_json::to_value(template).unwrap_or_default();
    of_value(&template)
}

/// The revision of a pod template given as JSON.
pub fn of_value(template: &Value) -> String {
    Change::ALL
        .iter()
        .map(|part| format!("{}={}", part.key(), short_hash(&part_of(template, *part))))
        .collect::<Vec<_>>()
        .join(",")
}

/// The parts in which revision `to` differs from `from`, in [`Change`] order. A revision that
/// cannot be read (written by something else) differs in its template.
pub fn changes(from: &str, to: &str) -> Vec<Change> {
    let part = |revision: &str, change: Change| {
        revision
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == change.key())
            .map(|(_, v)| v.to_owned())
    };
    let mut out: Vec<Change> = Change::ALL
        .iter()
        .copied()
        .filter(|c| part(from, *c) != part(to, *c))
        .collect();
    if from != to && out.is_empty() {
        out.push(Change::Template);
    }
    out
}

/// The values of the containers (init ones too) under `field`.
fn container_field(template: &Value, fields: &[&str]) -> Value {
    let mut out = Vec::new();
    for list in ["initContainers", "containers"] {
        let containers = template
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for container in containers {
            let name = container.get("name").cloned().unwrap_or_default();
            let values: Vec<Value> = fields
                .iter()
                .map(|f| container.get(*f).cloned().unwrap_or_default())
                .collect();
            out.push(Value::Array(vec![name, Value::Array(values)]));
        }
    }
    Value::Array(out)
}

fn part_of(template: &Value, part: Change) -> Value {
    match part {
        Change::Image => container_field(template, &["image"]),
        Change::Env => container_field(template, &["env", "envFrom"]),
        Change::Resources => container_field(template, &["resources"]),
        Change::Config => template
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(keys::CONFIG_HASH))
            .cloned()
            .unwrap_or_default(),
        Change::Template => rest(template),
    }
}

/// The template without what the other parts cover: images, env and resources of every
/// container, the config hash and the name of the ConfigMap it points at (named after its
/// content), and the version label (it follows the image tag).
fn rest(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(a) = t
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(keys::CONFIG_HASH);
    }
    if let Some(l) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        l.remove(keys::VERSION);
    }
    for list in ["initContainers", "containers"] {
        if let Some(containers) = t
            .pointer_mut(&format!("/spec/{list}"))
            .and_then(Value::as_array_mut)
        {
            for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                for field in ["image", "env", "envFrom", "resources"] {
                    c.remove(field);
                }
            }
        }
    }
    if let Some(volumes) = t.pointer_mut("/spec/volumes").and_then(Value::as_array_mut) {
        for config in volumes
            .iter_mut()
            .filter_map(|v| v.get_mut("configMap"))
            .filter_map(Value::as_object_mut)
        {
            config.remove("name");
        }
    }
    t
}

/// Eight hex digits of the sha256 of `value` with its object keys in order, whatever order the
/// map keeps them in.
fn short_hash(value: &Value) -> String {
    let mut hasher = Sha256::new();
    feed(&mut hasher, value);
    hasher.finalize()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn feed(hasher: &mut Sha256, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            hasher.update(b"{");
            for key in keys {
                hasher.update(key.as_bytes());
                hasher.update([0]);
                feed(hasher, &map[key]);
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            for item in items {
                feed(hasher, item);
                hasher.update([1]);
            }
            hasher.update(b"]");
        }
        other => {
            hasher.update(other.to_string().as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template() -> Value {
        json!({
            "metadata": {
                "labels": {"app.kubernetes.io/version": "5.9.1", "app.kubernetes.io/component": "node"},
                "annotations": {"insync.dev/config-hash": "aaaa"}
            },
            "spec": {
                "containers": [{
                    "name": "node",
                    "image": "r/node:5.9.1",
                    "env": [{"name": "A", "value": "1"}],
                    "resources": {"requests": {"cpu": "500m"}},
                    "readinessProbe": {"tcpSocket": {"port": "storage"}}
                }],
                "volumes": [{"name": "config", "configMap": {"name": "fcloud-node-aaaa"}}]
            }
        })
    }

    fn changed(edit: impl Fn(&mut Value)) -> Vec<Change> {
        let before = template();
        let mut after = template();
        edit(&mut after);
        changes(&of_value(&before), &of_value(&after))
    }

    #[test]
    fn the_same_template_is_the_same_revision_whatever_its_key_order() {
        let a = template();
        let b: Value = serde_json::from_str(&a.to_string()).expect("json");
        assert_eq!(of_value(&a), of_value(&b));
        assert!(changes(&of_value(&a), &of_value(&b)).is_empty());
        assert_eq!(of_value(&a).split(',').count(), 5, "{}", of_value(&a));
    }

    #[test]
    fn each_part_names_its_own_change() {
        let image = changed(|t| {
            t["spec"]["containers"][0]["image"] = json!("r/node:5.9.2");
            t["metadata"]["labels"]["app.kubernetes.io/version"] = json!("5.9.2");
        });
        assert_eq!(image, [Change::Image]);
        let config = changed(|t| {
            t["metadata"]["annotations"]["insync.dev/config-hash"] = json!("bbbb");
            t["spec"]["volumes"][0]["configMap"]["name"] = json!("fcloud-node-bbbb");
        });
        assert_eq!(
            config,
            [Change::Config],
            "the ConfigMap's name follows its content"
        );
        let env = changed(|t| t["spec"]["containers"][0]["env"][0]["value"] = json!("2"));
        assert_eq!(env, [Change::Env]);
        let resources = changed(|t| {
            t["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("1");
        });
        assert_eq!(resources, [Change::Resources]);
        let probe = changed(|t| {
            t["spec"]["containers"][0]["readinessProbe"] = json!({"tcpSocket": {"port": 1}});
        });
        assert_eq!(probe, [Change::Template]);
        let both = changed(|t| {
            t["spec"]["containers"][0]["env"][0]["value"] = json!("2");
            t["spec"]["containers"][0]["resources"] = json!({});
        });
        assert_eq!(both, [Change::Env, Change::Resources]);
    }

    #[test]
    fn an_unreadable_revision_differs_in_its_template() {
        assert_eq!(changes("garbage", &of_value(&template())).len(), 5);
        assert_eq!(changes("x", "y"), [Change::Template]);
        assert!(changes("x", "x").is_empty());
    }
}
