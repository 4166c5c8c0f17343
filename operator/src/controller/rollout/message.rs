//! The words of a rollout's status message: why workloads restart, and what a person changes to
//! move a stopped rollout on.

use std::collections::BTreeMap;

use super::RolloutInput;
use crate::api::RollingWorkload;
use crate::render::Component;
use crate::render::revision::Change;

/// The reasons the workloads of a step restart, each once, in [`Change`] order of first
/// appearance: "configuration" or "image, resources".
pub(crate) fn reasons_of(rolling: &BTreeMap<String, RollingWorkload>) -> Option<String> {
    let mut seen: Vec<&str> = Vec::new();
    for reason in rolling
        .values()
        .filter_map(|workload| workload.reason.as_deref())
    {
        for part in reason.split(", ") {
            if !seen.contains(&part) {
                seen.push(part);
            }
        }
    }
    (!seen.is_empty()).then(|| seen.join(", "))
}

/// The message of a step that rolls the workloads `component` (joined with ",") for `why`.
pub(crate) fn rolling(input: &RolloutInput<'_>, component: &str, why: Option<&str>) -> String {
    format!(
        "rolling {component} to {}{}",
        input.target_version,
        why.map(|why| format!(" ({why})")).unwrap_or_default()
    )
}

/// The message of a rollout stopped because the workloads `overdue` (now alone in `rolling`)
/// did not become ready on `tag`: what failed and what a person changes to lift the block, the
/// image or (when the pods restarted for something else) whatever changed their template.
pub(crate) fn blocked(
    input: &RolloutInput<'_>,
    overdue: &[&str],
    tag: String,
    rolling: &BTreeMap<String, RollingWorkload>,
) -> String {
    let failed = overdue.join(",");
    let fields = image_fields(input, overdue.iter().copied());
    let (on, until) = match reasons_of(rolling) {
        Some(why) if why != Change::Image.to_string() => (
            format!("{tag} ({why})"),
            format!("spec.version, {fields} or the {why} of {failed}"),
        ),
        _ => (tag, format!("spec.version or {fields}")),
    };
    format!(
        "{failed} did not become ready on {on} within {}s; the rollout is stopped and no further component rolls until {until} changes",
        input.health_timeout.as_secs(),
    )
}

/// The spec fields that retarget the workloads `ids`, joined with "or".
pub(crate) fn image_fields<'b>(
    input: &RolloutInput<'_>,
    ids: impl Iterator<Item = &'b str>,
) -> String {
    let mut fields: Vec<&str> = ids
        .filter_map(|id| input.targets.get(id))
        .map(|target| image_field(target.component))
        .collect();
    fields.sort_unstable();
    fields.dedup();
    fields.join(" or ")
}

/// The spec field of a component's image override, for people reading why a rollout stopped.
fn image_field(component: Component) -> &'static str {
    match component {
        Component::Mysql => "spec.database.managed.image",
        Component::Bynamo => "spec.metadataStore.managed.image",
        Component::Minio => "spec.objectStore.minio.image",
        Component::CloudMaster => "spec.master.image",
        Component::Node => "spec.nodes.image",
        Component::Haproxy => "spec.frontend.image",
    }
}
