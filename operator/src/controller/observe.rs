//! Reading workload state out of cached Deployments and StatefulSets.

use std::collections::BTreeMap;

use kube::api::DynamicObject;
use serde_json::Value;

use super::rollout::{LiveWorkload, TargetWorkload};
use crate::api::ComponentStatus;
use crate::render::{Component, Desired};

fn int(v: &Value, path: &[&str]) -> i64 {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// The full image tag of a workload's pod template: the annotation render puts on the
/// workload, else (a workload written before the annotation existed) the tag of its first
/// container's image. Never the version label, which may be shortened.
fn template_tag(body: &Value) -> Option<String> {
    let annotated = body
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(crate::render::keys::WORKLOAD_VERSION))
        .and_then(Value::as_str);
    let image = || {
        body.pointer("/spec/template/spec/containers/0/image")
            .and_then(Value::as_str)
            .and_then(image_tag)
    };
    annotated.or_else(image).map(str::to_owned)
}

/// The tag of an image reference `repository:tag` (a colon before the last `/` belongs to a
/// registry's port, not to a tag).
fn image_tag(reference: &str) -> Option<&str> {
    let (_, tag) = reference.rsplit_once(':')?;
    (!tag.contains('/')).then_some(tag)
}

/// Replica counts and settledness of one live workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadCounts {
    /// `spec.replicas`.
    pub desired: i32,
    /// `status.readyReplicas`.
    pub ready: i32,
    /// `status.updatedReplicas`.
    pub updated: i32,
    /// The rollout of the current template is complete and every replica is ready.
    pub settled: bool,
    /// The template's tag.
    pub tag: Option<String>,
}

/// Reads a cached Deployment or StatefulSet.
pub fn counts(object: &DynamicObject) -> WorkloadCounts {
    let body = serde_json::to_value(object).unwrap_or_default();
    let desired = body
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let generation = int(&body, &["metadata", "generation"]);
    let observed = int(&body, &["status", "observedGeneration"]);
    let ready = int(&body, &["status", "readyReplicas"]);
    let updated = int(&body, &["status", "updatedReplicas"]);
    let total = int(&body, &["status", "replicas"]);
    let kind = object
        .types
        .as_ref()
        .map(|t| t.kind.as_str())
        .unwrap_or_default();
    let revision_done = if kind == "StatefulSet" {
        let current = body.pointer("/status/currentRevision");
        current.is_some() && current == body.pointer("/status/updateRevision")
    } else {
        int(&body, &["status", "availableReplicas"]) == desired
    };
    let settled = observed >= generation
        && updated == desired
        && ready == desired
        && total == desired
        && revision_done;
    WorkloadCounts {
        desired: i32::try_from(desired).unwrap_or(i32::MAX),
        ready: i32::try_from(ready).unwrap_or(0),
        updated: i32::try_from(updated).unwrap_or(0),
        settled,
        tag: template_tag(&body),
    }
}

/// Target tag per workload id from an unpinned render.
pub fn targets(rendered: &[Desired]) -> BTreeMap<String, TargetWorkload> {
    rendered
        .iter()
        .filter_map(|d| {
            let (component, id) = d.workload.clone()?;
            let tag = template_tag(&serde_json::to_value(&d.object).ok()?)?;
            Some((id, TargetWorkload { component, tag }))
        })
        .collect()
}

/// Live state of every workload render wants, from the caches.
pub struct Observed {
    /// Per workload id.
    pub live: BTreeMap<String, LiveWorkload>,
    /// Per workload id.
    pub counts: BTreeMap<String, WorkloadCounts>,
}

impl Observed {
    /// Collects the live counterparts of `targets` via `lookup(kind, id)`.
    pub fn collect(
        rendered: &[Desired],
        lookup: impl Fn(&DynamicObject) -> Option<std::sync::Arc<DynamicObject>>,
    ) -> Self {
        let mut live = BTreeMap::new();
        let mut all = BTreeMap::new();
        for d in rendered {
            let Some((_, id)) = &d.workload else { continue };
            let Some(object) = lookup(&d.object) else {
                continue;
            };
            let c = counts(&object);
            if let Some(tag) = &c.tag {
                live.insert(
                    id.clone(),
                    LiveWorkload {
                        tag: tag.clone(),
                        settled: c.settled,
                    },
                );
            }
            all.insert(id.clone(), c);
        }
        Self { live, counts: all }
    }

    /// Whether every target exists, runs its target tag and is settled.
    pub fn all_settled(&self, targets: &BTreeMap<String, TargetWorkload>) -> bool {
        targets.iter().all(|(id, t)| {
            self.counts
                .get(id)
                .is_some_and(|c| c.settled && c.tag.as_deref() == Some(t.tag.as_str()))
        })
    }

    /// Per-component status rows, in upgrade order. Nodes are summed over their Deployments.
    pub fn components(&self, targets: &BTreeMap<String, TargetWorkload>) -> Vec<ComponentStatus> {
        Component::ALL
            .iter()
            .filter_map(|component| {
                let ids: Vec<&String> = targets
                    .iter()
                    .filter(|(_, t)| t.component == *component)
                    .map(|(id, _)| id)
                    .collect();
                if ids.is_empty() {
                    return None;
                }
                let mut row = ComponentStatus {
                    name: component.name().to_owned(),
                    ready: true,
                    ..Default::default()
                };
                let mut tags = std::collections::BTreeSet::new();
                for id in ids {
                    match self.counts.get(id) {
                        Some(c) => {
                            row.desired_replicas += c.desired;
                            row.ready_replicas += c.ready;
                            row.updated_replicas += c.updated;
                            row.ready &= c.settled
                                && c.tag.as_deref() == targets.get(id).map(|t| t.tag.as_str());
                            tags.insert(c.tag.clone().unwrap_or_default());
                        }
                        None => {
                            row.ready = false;
                            tags.insert(String::new());
                        }
                    }
                }
                // One version only when every workload of the component runs the same one.
                row.version = (tags.len() == 1)
                    .then(|| tags.into_iter().next().unwrap_or_default())
                    .filter(|t| !t.is_empty());
                Some(row)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::image_tag;

    #[test]
    fn image_tags_are_read_whole() {
        assert_eq!(
            image_tag("r.example/insync/node:_long.tag-1"),
            Some("_long.tag-1")
        );
        assert_eq!(image_tag("r.example:5000/insync/node:5.9.1"), Some("5.9.1"));
        assert_eq!(image_tag("r.example:5000/insync/node"), None);
    }
}
