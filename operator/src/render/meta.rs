//! Names, labels, owner references and DNS names: what every object of a cloud shares.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use super::{Component, RenderOptions, keys};
use crate::api::InSyncCloud;

/// The cluster DNS domain Service names are qualified with. HAProxy's resolvers do not apply
/// the resolv.conf search list, so its servers need fully qualified names.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// Label keys a workload selects its pods by (the version is deliberately not one of them:
/// selectors are immutable and must survive upgrades).
const SELECTOR_KEYS: [&str; 4] = [
    keys::NAME,
    keys::INSTANCE,
    keys::COMPONENT,
    keys::NODE_INDEX,
];

/// The cloud being rendered and the controller's inputs.
pub(super) struct Ctx<'a> {
    pub cloud: &'a InSyncCloud,
    pub options: &'a RenderOptions,
}

impl<'a> Ctx<'a> {
    pub fn new(cloud: &'a InSyncCloud, options: &'a RenderOptions) -> Self {
        Self { cloud, options }
    }

    pub fn namespace(&self) -> &str {
        self.cloud.cloud_namespace()
    }

    /// `<cloud>-<suffix>`: every object name starts with the cloud's name.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.cloud.cloud_name())
    }

    /// `<cloud>-<component>`: the name of a component's workload, Service and ConfigMap.
    pub fn component_name(&self, component: Component) -> String {
        self.name(component.name())
    }

    /// `<cloud>-node-<index>`: one storage node's Deployment (and pod host name).
    pub fn node_name(&self, index: i32) -> String {
        self.name(&format!("node-{index}"))
    }

    /// Fully qualified DNS name of a Service in the cloud's namespace.
    pub fn service_host(&self, service: &str) -> String {
        format!("{service}.{}.svc.{CLUSTER_DOMAIN}", self.namespace())
    }

    /// `http://<host>:<port>` of a component's client Service (Bynamo, MinIO).
    pub fn http_endpoint(&self, component: Component, port: i32) -> String {
        format!(
            "http://{}:{port}",
            self.service_host(&self.component_name(component))
        )
    }

    /// The labels every pod of the cloud carries, whatever its component.
    pub fn instance_selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (keys::NAME.to_owned(), "insync".to_owned()),
            (
                keys::INSTANCE.to_owned(),
                self.cloud.cloud_name().to_owned(),
            ),
        ])
    }

    /// The labels that select a component's pods (all storage nodes, for `Component::Node`).
    pub fn selector(&self, component: Component) -> BTreeMap<String, String> {
        let mut labels = self.instance_selector();
        labels.insert(keys::COMPONENT.to_owned(), component.name().to_owned());
        labels
    }

    /// The common labels of an object of `component` at image tag `version`.
    pub fn labels(&self, component: Component, version: &str) -> BTreeMap<String, String> {
        let mut labels = self.selector(component);
        labels.extend([
            (keys::VERSION.to_owned(), label_value(version)),
            (keys::MANAGED_BY.to_owned(), keys::MANAGER.to_owned()),
            (keys::PART_OF.to_owned(), "insync".to_owned()),
        ]);
        labels
    }

    /// The controller owner reference to the cloud; `None` for a cloud without a uid (a plain
    /// file given to `render -f`).
    pub fn owner_references(&self) -> Option<Vec<OwnerReference>> {
        let owner = self.cloud.controller_owner_ref(&())?;
        Some(vec![OwnerReference {
            block_owner_deletion: Some(true),
            ..owner
        }])
    }

    /// Metadata of an object the cloud owns: name, namespace, common labels, owner reference.
    pub fn meta(&self, name: String, component: Component, version: &str) -> ObjectMeta {
        self.meta_with(name, self.labels(component, version))
    }

    /// Metadata of an object the cloud owns, with the given labels.
    pub fn meta_with(&self, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            owner_references: self.owner_references(),
            ..self.unowned_meta(name, labels)
        }
    }

    /// Metadata without an owner reference, for objects that must outlive the cloud (data).
    pub fn unowned_meta(&self, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace().to_owned()),
            labels: Some(labels),
            ..ObjectMeta::default()
        }
    }
}

/// The selector subset of a pod template's labels.
pub(super) fn selector_of(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(key, _)| SELECTOR_KEYS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// An image tag as a label value: at most 63 characters, starting and ending alphanumeric.
pub(super) fn label_value(tag: &str) -> String {
    let truncated: String = tag.chars().take(63).collect();
    truncated
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::label_value;

    #[test]
    fn label_values_are_valid_for_any_tag() {
        assert_eq!(label_value("5.9.1-r4178"), "5.9.1-r4178");
        assert_eq!(label_value("_hotfix."), "hotfix");
        assert_eq!(label_value(&"a".repeat(128)).len(), 63);
    }
}
