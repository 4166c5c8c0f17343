//! A preview of a change to a cloud, before it is applied: the ordered steps the rollout will
//! take, which workloads restart and why, how many at a time, the gates between steps, what is
//! changed in place, and what cannot be undone. Pure: two specs in, a plan out; the binary's
//! `plan` command reads the live cloud or a file for the old spec.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::Serialize;
use serde_json::Value;

use crate::api::{InSyncCloud, OnFailure, UpgradePhase, validate};
use crate::controller::rollout::{phase_of, workload_order};
use crate::render::revision::{self, Change};
use crate::render::{self, ApplyPolicy, Component, Desired, RenderError, RenderOptions, keys};

/// Why a workload restarts (its pod template changes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Reason {
    /// A container's image changes.
    Image {
        /// The container.
        container: String,
        /// Old image reference.
        from: String,
        /// New image reference.
        to: String,
    },
    /// A ConfigMap the pods mount changes.
    Config,
    /// Environment variables change.
    Env,
    /// A container's requests or limits change.
    Resources {
        /// The container.
        container: String,
    },
    /// Anything else in the pod template (probes, placement, volumes, ...).
    Template,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Image {
                container,
                from,
                to,
            } => {
                let tag = |r: &str| r.rsplit_once(':').map(|(_, t)| t.to_owned());
                match (tag(from), tag(to)) {
                    (Some(a), Some(b)) => write!(f, "image of {container} {a} → {b}"),
                    _ => write!(f, "image of {container} {from} → {to}"),
                }
            }
            Self::Config => write!(f, "configuration"),
            Self::Env => write!(f, "env"),
            Self::Resources { container } => write!(f, "resources of {container}"),
            Self::Template => write!(f, "pod template"),
        }
    }
}

/// What happens to one workload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadChange {
    /// `Kind/name`.
    pub object: String,
    /// Its pods restart, for these reasons.
    pub restart: Vec<Reason>,
    /// Replica count change, when there is one (no restart by itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<(i64, i64)>,
}

/// One gated step: its workloads restart together, then the step waits for them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// The rollout phase.
    pub phase: UpgradePhase,
    /// Workloads restarted in this step.
    pub workloads: Vec<WorkloadChange>,
}

/// The whole preview.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// `namespace/name`.
    pub cloud: String,
    /// Old and new `spec.version`.
    pub from_version: Option<String>,
    /// New `spec.version`.
    pub to_version: String,
    /// Storage nodes restarted at a time.
    pub max_unavailable: i32,
    /// How long each step may take to become healthy.
    pub health_timeout: String,
    /// What a step that misses its gate does.
    pub on_failure: String,
    /// Gated steps, in order.
    pub steps: Vec<Step>,
    /// Workloads created (at the version the rollout has reached when they are).
    pub created: Vec<String>,
    /// Objects deleted; volumes are never deleted.
    pub removed: Vec<String>,
    /// Objects changed in place with no restart (Services, ConfigMaps, PDBs, replica counts).
    pub in_place: Vec<String>,
    /// What cannot be undone by reverting the spec.
    pub irreversible: Vec<String>,
    /// With `onFailure: Rollback`, what an automatic rollback would do with the datastores
    /// whose image changes (kept on the new image unless `rollbackDatastores`).
    pub rollback: Vec<String>,
}

/// A preview cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The new (or old) spec does not render.
    #[error("cannot render {which} spec: {source}")]
    Render {
        /// "old" or "new".
        which: &'static str,
        /// Why.
        #[source]
        source: RenderError,
    },
    /// The two manifests describe different clouds.
    #[error("the old spec is cloud {old}, the new one {new}: compare the same cloud")]
    DifferentClouds {
        /// Old `namespace/name`.
        old: String,
        /// New `namespace/name`.
        new: String,
    },
}

fn label(d: &Desired) -> String {
    let kind = d
        .object
        .types
        .as_ref()
        .map(|t| t.kind.clone())
        .unwrap_or_default();
    format!(
        "{kind}/{}",
        d.object.metadata.name.clone().unwrap_or_default()
    )
}

fn body(d: &Desired) -> Value {
    serde_json::to_value(&d.object).unwrap_or_default()
}

/// The object without the version label and annotation that every object carries: a version
/// bump changes them everywhere, which is not worth listing.
fn without_version(mut v: Value) -> Value {
    let strip = |v: &mut Value, pointer: &str, key: &str| {
        if let Some(map) = v.pointer_mut(pointer).and_then(Value::as_object_mut) {
            map.remove(key);
        }
    };
    for prefix in ["/metadata", "/spec/template/metadata"] {
        strip(&mut v, &format!("{prefix}/labels"), keys::VERSION);
        strip(
            &mut v,
            &format!("{prefix}/annotations"),
            keys::WORKLOAD_VERSION,
        );
    }
    v
}

/// Containers of a pod template by name.
fn containers(template: &Value) -> BTreeMap<String, Value> {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|k| {
            template
                .pointer(&format!("/spec/{k}"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| Some((c.get("name")?.as_str()?.to_owned(), c)))
        .collect()
}

/// Why a pod template changes, empty when it does not.
fn restart_reasons(old: &Value, new: &Value) -> Vec<Reason> {
    let mut reasons = Vec::new();
    let (old_c, new_c) = (containers(old), containers(new));
    for (name, new_container) in &new_c {
        let old_container = old_c.get(name);
        let image = |c: Option<&Value>| {
            c.and_then(|c| c.get("image"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (from, to) = (image(old_container), image(Some(new_container)));
        if from != to {
            reasons.push(Reason::Image {
                container: name.clone(),
                from,
                to,
            });
        }
        if old_container.and_then(|c| c.get("resources")) != new_container.get("resources") {
            reasons.push(Reason::Resources {
                container: name.clone(),
            });
        }
    }
    // The rest as the rollout sees it (the same revision parts it compares): configuration,
    // env, and whatever else is left in the template.
    let changes = revision::changes(&revision::of_value(old), &revision::of_value(new));
    for change in changes {
        match change {
            Change::Config => reasons.push(Reason::Config),
            Change::Env => reasons.push(Reason::Env),
            Change::Template => reasons.push(Reason::Template),
            Change::Image | Change::Resources => {}
        }
    }
    reasons
}

fn replicas(v: &Value) -> i64 {
    v.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// Claim templates' requested sizes of a StatefulSet, by template name.
fn claim_sizes(v: &Value) -> BTreeMap<String, String> {
    v.pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let name = t.pointer("/metadata/name")?.as_str()?.to_owned();
            let size = t
                .pointer("/spec/resources/requests/storage")?
                .as_str()?
                .to_owned();
            Some((name, size))
        })
        .collect()
}

/// Previews changing `old` into `new` (the same cloud).
pub fn preview(old: &InSyncCloud, new: &InSyncCloud) -> Result<Preview, PreviewError> {
    let id = |c: &InSyncCloud| format!("{}/{}", c.cloud_namespace(), c.cloud_name());
    if id(old) != id(new) {
        return Err(PreviewError::DifferentClouds {
            old: id(old),
            new: id(new),
        });
    }
    let rendered = |c: &InSyncCloud, which| {
        render::render(c, &RenderOptions::default())
            .map_err(|source| PreviewError::Render { which, source })
    };
    // A manifest has no uid; the live cloud has one, and every child's owner reference carries
    // it. Rendered with different uids, every owned object would look changed.
    let mut new = new.clone();
    new.metadata.uid.clone_from(&old.metadata.uid);
    let (before, after) = (rendered(old, "old")?, rendered(&new, "new")?);
    let before_by_label: BTreeMap<String, &Desired> =
        before.iter().map(|d| (label(d), d)).collect();
    let after_labels: std::collections::BTreeSet<String> = after.iter().map(label).collect();

    let mut restarts: Vec<(Component, String, WorkloadChange)> = Vec::new();
    let mut created = Vec::new();
    let mut in_place = Vec::new();
    let mut irreversible = Vec::new();
    // Datastores whose image changes: an automatic rollback keeps them unless told otherwise.
    let mut datastore_images: Vec<String> = Vec::new();
    for d in &after {
        let name = label(d);
        let Some(previous) = before_by_label.get(&name) else {
            created.push(name);
            continue;
        };
        let (old_body, new_body) = (body(previous), body(d));
        if without_version(old_body.clone()) == without_version(new_body.clone()) {
            continue;
        }
        let Some((component, workload_id)) = &d.workload else {
            // Create-only objects (volume claims, generated credentials) are never rewritten.
            if d.policy == ApplyPolicy::Apply {
                in_place.push(name);
            }
            continue;
        };
        let empty = Value::Null;
        let template = |v: &Value| {
            v.pointer("/spec/template")
                .cloned()
                .unwrap_or(empty.clone())
        };
        let reasons = restart_reasons(&template(&old_body), &template(&new_body));
        let counts = (replicas(&old_body), replicas(&new_body));
        let scaled = (counts.0 != counts.1).then_some(counts);
        if let Some((a, b)) = scaled {
            in_place.push(format!("{name}: replicas {a} → {b}"));
        }
        let (old_claims, new_claims) = (claim_sizes(&old_body), claim_sizes(&new_body));
        for (claim, size) in &new_claims {
            match old_claims.get(claim) {
                Some(was) if !crate::api::Quantity::same(was, size) => irreversible.push(format!(
                    "{name}: volume claim {claim} grows {was} → {size} (volumes never shrink; the StatefulSet is re-created with its pods left running)"
                )),
                _ => {}
            }
        }
        if matches!(
            component,
            Component::Mysql | Component::Minio | Component::Bynamo
        ) && reasons.iter().any(|r| matches!(r, Reason::Image { .. }))
        {
            irreversible.push(format!(
                "{name}: the {} image changes; its data files may be upgraded in place, so going back is a restore, not a rollback",
                component.name()
            ));
            datastore_images.push(name.clone());
        }
        if !reasons.is_empty() {
            restarts.push((
                *component,
                workload_id.clone(),
                WorkloadChange {
                    object: name,
                    restart: reasons,
                    replicas: scaled,
                },
            ));
        }
    }
    let removed: Vec<String> = before
        .iter()
        .map(label)
        .filter(|l| !after_labels.contains(l))
        .map(|l| {
            // Each config is a ConfigMap named after its content: the old one stays while a
            // workload the rollout has not reached still mounts it.
            if l.starts_with("ConfigMap/") {
                format!("{l} (once no workload mounts it)")
            } else {
                l
            }
        })
        .collect();
    if removed
        .iter()
        .any(|r| r.starts_with("PersistentVolumeClaim/"))
    {
        irreversible
            .push("volume claims the new spec no longer needs are kept, not deleted".into());
    }

    let policy = &new.spec.upgrade;
    let on_failure = match policy.on_failure {
        OnFailure::Halt => "halt: the rollout stops at the step, Ready=False and UpgradeBlocked=True, until the spec changes or the cloud is healthy again".to_owned(),
        OnFailure::Rollback => format!(
            "roll back: the workloads already moved return to {}, in reverse order (HAProxy, storage nodes, CloudMaster, datastores) through the same gates; Degraded=True with reason RollingBack, then RolledBack, and {} is not tried again until the spec changes. A step whose pods restart for configuration, env or resources alone halts instead: a rollback returns images",
            old.spec.version, new.spec.version
        ),
    };
    let rollback = match (policy.on_failure, policy.rollback_datastores) {
        (OnFailure::Halt, _) => Vec::new(),
        (OnFailure::Rollback, false) => datastore_images
            .iter()
            .map(|name| format!("{name}: kept on its new image (its on-disk format may have changed; spec.upgrade.rollbackDatastores: true moves it back)"))
            .collect(),
        (OnFailure::Rollback, true) => datastore_images
            .iter()
            .map(|name| format!("{name}: moved back last (rollbackDatastores: true), although the old image may not read files the new one wrote"))
            .collect(),
    };
    let max_unavailable = policy.max_unavailable.max(1);
    restarts.sort_by_key(|(component, id, _)| {
        let order = Component::ALL.iter().position(|c| c == component);
        (phase_of(*component), order, workload_order(id))
    });
    let mut steps: Vec<Step> = Vec::new();
    for (component, _, change) in restarts {
        let phase = phase_of(component);
        let batch = if phase == UpgradePhase::Nodes {
            usize::try_from(max_unavailable).unwrap_or(1)
        } else {
            usize::MAX
        };
        match steps.last_mut() {
            Some(step) if step.phase == phase && step.workloads.len() < batch => {
                step.workloads.push(change)
            }
            _ => steps.push(Step {
                phase,
                workloads: vec![change],
            }),
        }
    }
    Ok(Preview {
        cloud: id(&new),
        from_version: Some(old.spec.version.clone()),
        to_version: new.spec.version.clone(),
        max_unavailable,
        health_timeout: new.spec.upgrade.health_timeout.clone(),
        on_failure,
        steps,
        created,
        removed,
        in_place,
        irreversible,
        rollback,
    })
}

/// A preview for a cloud that does not exist yet: everything is created.
pub fn creation(new: &InSyncCloud) -> Result<Preview, PreviewError> {
    let after =
        render::render(new, &RenderOptions::default()).map_err(|source| PreviewError::Render {
            which: "new",
            source,
        })?;
    Ok(Preview {
        cloud: format!("{}/{}", new.cloud_namespace(), new.cloud_name()),
        from_version: None,
        to_version: new.spec.version.clone(),
        max_unavailable: new.spec.upgrade.max_unavailable.max(1),
        health_timeout: new.spec.upgrade.health_timeout.clone(),
        on_failure: String::new(),
        steps: Vec::new(),
        created: after.iter().map(label).collect(),
        removed: Vec::new(),
        in_place: Vec::new(),
        irreversible: Vec::new(),
        rollback: Vec::new(),
    })
}

fn phase_title(phase: UpgradePhase) -> &'static str {
    match phase {
        UpgradePhase::Datastores => "datastores",
        UpgradePhase::CloudMaster => "CloudMaster",
        UpgradePhase::Nodes => "storage nodes",
        UpgradePhase::Frontend => "HAProxy front end",
        UpgradePhase::Waiting
        | UpgradePhase::Complete
        | UpgradePhase::Blocked
        | UpgradePhase::RollingBack
        | UpgradePhase::RolledBack => "",
    }
}

impl fmt::Display for Preview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        match &self.from_version {
            Some(from) if *from != self.to_version => {
                let _ = writeln!(out, "Cloud {}: {from} → {}", self.cloud, self.to_version);
            }
            Some(_) => {
                let _ = writeln!(out, "Cloud {} at {}", self.cloud, self.to_version);
            }
            None => {
                let _ = writeln!(
                    out,
                    "Cloud {} does not exist: {} object(s) are created at {}",
                    self.cloud,
                    self.created.len(),
                    self.to_version
                );
            }
        }
        if self.from_version.is_some() {
            if self.steps.is_empty() {
                let _ = writeln!(out, "\nNo pod restarts.");
            } else {
                let _ = writeln!(
                    out,
                    "\nRestarts, in order (each step waits until its workloads have every replica updated and Ready, for at most {}):",
                    self.health_timeout
                );
            }
            for (i, step) in self.steps.iter().enumerate() {
                let together = if step.phase == UpgradePhase::Nodes {
                    format!(
                        " ({} at a time, maxUnavailable {})",
                        step.workloads.len(),
                        self.max_unavailable
                    )
                } else {
                    String::new()
                };
                let _ = writeln!(out, "  {}. {}{together}", i + 1, phase_title(step.phase));
                for w in &step.workloads {
                    let why: Vec<String> = w.restart.iter().map(ToString::to_string).collect();
                    let _ = writeln!(out, "       {}: {}", w.object, why.join(", "));
                }
            }
            if !self.steps.is_empty() {
                let _ = writeln!(out, "  On a missed gate: {}.", self.on_failure);
            }
        }
        let list = |out: &mut String, title: &str, items: &[String]| {
            if self.from_version.is_some() && !items.is_empty() {
                let _ = writeln!(out, "\n{title}:");
                for item in items {
                    let _ = writeln!(out, "  - {item}");
                }
            }
        };
        list(
            &mut out,
            "Created (at the version the rollout has reached)",
            &self.created,
        );
        list(&mut out, "Changed in place, no restart", &self.in_place);
        list(&mut out, "Deleted (volumes are kept)", &self.removed);
        list(&mut out, "Cannot be undone", &self.irreversible);
        list(&mut out, "If the rollout rolls back", &self.rollback);
        f.write_str(&out)
    }
}

/// Whether the new spec is valid; the preview of an invalid spec is its problems.
pub fn check(new: &InSyncCloud) -> Result<(), validate::InvalidCloud> {
    validate::validate(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fcloud() -> InSyncCloud {
        serde_yaml::from_str(include_str!("../../examples/fcloud.yaml")).expect("example")
    }

    fn objects(step: &Step) -> Vec<&str> {
        step.workloads.iter().map(|w| w.object.as_str()).collect()
    }

    #[test]
    fn a_version_bump_restarts_in_rollout_order_nodes_one_at_a_time() {
        let old = fcloud();
        let mut new = fcloud();
        new.spec.version = "5.9.2-r4190".into();
        let p = preview(&old, &new).expect("previews");
        let phases: Vec<UpgradePhase> = p.steps.iter().map(|s| s.phase).collect();
        assert_eq!(
            phases,
            [
                UpgradePhase::Datastores,
                UpgradePhase::CloudMaster,
                UpgradePhase::Nodes,
                UpgradePhase::Nodes,
                UpgradePhase::Frontend
            ],
            "{p}"
        );
        assert_eq!(objects(&p.steps[0]), ["StatefulSet/fcloud-bynamo"], "{p}");
        assert_eq!(objects(&p.steps[2]), ["Deployment/fcloud-node-0"], "{p}");
        assert_eq!(objects(&p.steps[3]), ["Deployment/fcloud-node-1"], "{p}");
        assert!(
            p.steps[1].workloads[0]
                .restart
                .iter()
                .any(|r| matches!(r, Reason::Image { to, .. } if to.ends_with(":5.9.2-r4190"))),
            "{p}"
        );
        assert!(
            p.irreversible.iter().any(|i| i.contains("bynamo")),
            "a datastore image change cannot be rolled back: {p}"
        );
        assert!(
            p.to_string()
                .contains("fcloud-node-1: image of node 5.9.1-r4178 → 5.9.2-r4190"),
            "{p}"
        );
    }

    #[test]
    fn the_plan_says_what_a_rollback_would_keep_on_the_new_image() {
        let old = fcloud();
        let mut new = fcloud();
        new.spec.version = "5.9.2-r4190".into();
        let halt = preview(&old, &new).expect("previews");
        assert!(halt.on_failure.starts_with("halt"), "{halt}");
        assert!(halt.rollback.is_empty(), "{halt}");
        new.spec.upgrade.on_failure = OnFailure::Rollback;
        let p = preview(&old, &new).expect("previews");
        assert!(p.on_failure.starts_with("roll back"), "{p}");
        assert_eq!(
            p.rollback,
            [
                "StatefulSet/fcloud-bynamo: kept on its new image (its on-disk format may have changed; spec.upgrade.rollbackDatastores: true moves it back)"
            ],
            "{p}"
        );
        assert!(p.to_string().contains("If the rollout rolls back:"), "{p}");
        new.spec.upgrade.rollback_datastores = true;
        let p = preview(&old, &new).expect("previews");
        assert!(p.rollback[0].contains("moved back last"), "{p}");
    }

    #[test]
    fn max_unavailable_batches_the_nodes() {
        let old = fcloud();
        let mut new = fcloud();
        new.spec.version = "5.9.2-r4190".into();
        new.spec.upgrade.max_unavailable = 2;
        let p = preview(&old, &new).expect("previews");
        let nodes: Vec<&Step> = p
            .steps
            .iter()
            .filter(|s| s.phase == UpgradePhase::Nodes)
            .collect();
        assert_eq!(nodes.len(), 1, "{p}");
        assert_eq!(nodes[0].workloads.len(), 2, "{p}");
    }

    #[test]
    fn resources_restart_only_their_component_and_say_why() {
        let old = fcloud();
        let mut new = fcloud();
        new.spec.master.resources = Some(
            serde_json::from_value(serde_json::json!({
                "requests": {"cpu": "300m", "memory": "1Gi"}
            }))
            .expect("resources"),
        );
        let p = preview(&old, &new).expect("previews");
        assert_eq!(p.steps.len(), 1, "{p}");
        assert_eq!(
            objects(&p.steps[0]),
            ["Deployment/fcloud-cloudmaster"],
            "{p}"
        );
        assert!(
            matches!(
                p.steps[0].workloads[0].restart[..],
                [Reason::Resources { .. }]
            ),
            "{p}"
        );
        assert!(p.irreversible.is_empty(), "{p}");
    }

    #[test]
    fn turning_dns_on_restarts_what_reads_the_hostname_in_order_and_says_configuration() {
        let mut old = fcloud();
        old.spec.dns = None;
        let new = fcloud();
        let p = preview(&old, &new).expect("previews");
        let phases: Vec<UpgradePhase> = p.steps.iter().map(|s| s.phase).collect();
        assert_eq!(
            phases,
            [
                UpgradePhase::CloudMaster,
                UpgradePhase::Nodes,
                UpgradePhase::Nodes
            ],
            "{p}"
        );
        for step in &p.steps {
            assert_eq!(step.workloads[0].restart, [Reason::Config], "{p}");
        }
        assert!(
            p.removed
                .iter()
                .all(|r| r.starts_with("ConfigMap/") && r.ends_with("(once no workload mounts it)")),
            "{p}"
        );
    }

    #[test]
    fn adding_a_storage_node_creates_it_and_restarts_nothing() {
        let old = fcloud();
        let mut new = fcloud();
        new.spec.nodes.replicas = 3;
        let p = preview(&old, &new).expect("previews");
        assert!(
            p.created.iter().any(|c| c == "Deployment/fcloud-node-2"),
            "{p}"
        );
        assert!(
            p.steps.is_empty(),
            "scaling the nodes must not restart HAProxy or anything else: {p}"
        );
    }

    #[test]
    fn growing_a_volume_is_called_out_as_irreversible() {
        let old = fcloud();
        let mut new = fcloud();
        if let Some(m) = new.spec.database.managed.as_mut() {
            m.storage.size = "8Gi".into();
        }
        let p = preview(&old, &new).expect("previews");
        assert!(
            p.irreversible.iter().any(|i| i.contains("grows 5Gi → 8Gi")),
            "{p}"
        );
    }

    #[test]
    fn different_clouds_are_refused() {
        let old = fcloud();
        let mut new = fcloud();
        new.metadata.name = Some("other".into());
        assert!(matches!(
            preview(&old, &new),
            Err(PreviewError::DifferentClouds { .. })
        ));
    }

    #[test]
    fn the_live_clouds_uid_is_not_a_change() {
        let mut live = fcloud();
        live.metadata.uid = Some("3f1c-live".into());
        let manifest = fcloud();
        let p = preview(&live, &manifest).expect("previews");
        assert!(p.in_place.is_empty(), "{p}");
        assert!(p.steps.is_empty(), "{p}");
    }
}
