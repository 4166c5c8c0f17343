//! What the operator counts off a live Deployment or StatefulSet, once, in the watch (see
//! [`super::project`]): replicas, settledness, and the tag, revision and ConfigMaps of its pod
//! template. The same reading of a rendered workload gives a rollout its targets.

use serde_json::Value;

fn int(v: &Value, path: &[&str]) -> i64 {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// The full image tag of a workload's pod template: the annotation render puts on the
/// workload, else (a workload written before the annotation existed) the tag of its first
/// container's image. Never the version label, which may be shortened.
pub(crate) fn template_tag(body: &Value) -> Option<String> {
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

/// The revision annotation render puts on a workload ([`crate::render::revision`]); `None`
/// on a workload written before revisions were recorded.
pub(crate) fn template_revision(body: &Value) -> Option<String> {
    body.pointer("/metadata/annotations")
        .and_then(|a| a.get(crate::render::keys::REVISION))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The ConfigMaps a workload's pod template mounts: kept while it runs them.
fn template_config_maps(body: &Value) -> Vec<String> {
    body.pointer("/spec/template/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.pointer("/configMap/name")?.as_str().map(str::to_owned))
        .collect()
}

/// The tag of an image reference `repository:tag` (a colon before the last `/` belongs to a
/// registry's port, not to a tag).
fn image_tag(reference: &str) -> Option<&str> {
    let (_, tag) = reference.rsplit_once(':')?;
    (!tag.contains('/')).then_some(tag)
}

/// Replica counts and settledness of one live workload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
    /// The template's revision ([`crate::render::revision`]), when recorded.
    pub revision: Option<String>,
    /// The ConfigMaps the template mounts.
    pub config_maps: Vec<String>,
}

/// Counts a live Deployment or StatefulSet (`kind`), `body` being the object as JSON.
pub fn counts(kind: &str, body: &Value) -> WorkloadCounts {
    let desired = body
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let generation = int(body, &["metadata", "generation"]);
    let observed = int(body, &["status", "observedGeneration"]);
    let ready = int(body, &["status", "readyReplicas"]);
    let updated = int(body, &["status", "updatedReplicas"]);
    let total = int(body, &["status", "replicas"]);
    let revision_done = if kind == "StatefulSet" {
        let current = body.pointer("/status/currentRevision");
        current.is_some() && current == body.pointer("/status/updateRevision")
    } else {
        int(body, &["status", "availableReplicas"]) == desired
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
        tag: template_tag(body),
        revision: template_revision(body),
        config_maps: template_config_maps(body),
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
