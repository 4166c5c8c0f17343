//! The collector of problems, and the rules for the kinds of field that recur across the spec:
//! ranges, names, image overrides, storage, resources, placement, URLs and regions.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use super::FieldError;
use super::syntax::{
    is_aws_region, is_bucket_name, is_dns_label, is_dns_label_lenient, is_endpoint_url,
    is_image_repository, is_image_tag, is_key_prefix, is_label_key, is_label_value,
};
use crate::api::{ImageOverride, Placement, Quantity, QuantityError, StorageSpec};

/// Collects problems as the walk goes through the spec.
#[derive(Default)]
pub(crate) struct Problems(Vec<FieldError>);

impl Problems {
    /// The problems found, in the order they were found.
    pub(crate) fn into_errors(self) -> Vec<FieldError> {
        self.0
    }

    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(crate) fn range(&mut self, path: &str, value: i64, min: i64, max: i64) {
        if value < min || value > max {
            self.add(
                path,
                format!("must be between {min} and {max}, got {value}"),
            );
        }
    }

    pub(crate) fn dns_label(&mut self, path: &str, value: &str, max_len: usize) {
        if !is_dns_label(value) || value.len() > max_len {
            self.add(
                path,
                format!(
                    "{value:?} must be a DNS label of at most {max_len} characters: lower-case letters, digits and '-', starting with a letter and ending with a letter or digit"
                ),
            );
        }
    }

    pub(crate) fn object_name(&mut self, path: &str, value: &str) {
        if value.len() > 253 || !value.split('.').all(is_dns_label_lenient) {
            self.add(
                path,
                format!(
                    "{value:?} must be a DNS subdomain (lower-case letters, digits, '-' and '.')"
                ),
            );
        }
    }

    pub(crate) fn image_tag(&mut self, path: &str, value: &str) {
        if !is_image_tag(value) {
            self.add(
                path,
                format!("{value:?} is not a valid image tag: 1-128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'"),
            );
        }
    }

    /// What every workload section has: its resources, image override and placement.
    pub(crate) fn workload(
        &mut self,
        path: &str,
        resources: Option<&ResourceRequirements>,
        image: Option<&ImageOverride>,
        placement: Option<&Placement>,
    ) {
        self.resources(path, resources);
        self.image(path, image);
        self.placement(path, placement);
    }

    fn image(&mut self, path: &str, image: Option<&ImageOverride>) {
        if let Some(tag) = image.and_then(|image| image.tag.as_deref()) {
            self.image_tag(&format!("{path}.image.tag"), tag);
        }
        if let Some(repository) = image.and_then(|image| image.repository.as_deref()) {
            self.image_repository(&format!("{path}.image.repository"), repository);
        }
    }

    pub(crate) fn storage(&mut self, path: &str, storage: &StorageSpec) {
        match Quantity::parse(&storage.size) {
            Ok(size) if size.is_positive() => {}
            Ok(_) => self.add(format!("{path}.size"), "must be greater than zero"),
            Err(error) => self.add(format!("{path}.size"), error.to_string()),
        }
        if let Some(class) = &storage.storage_class_name {
            self.object_name(&format!("{path}.storageClassName"), class);
        }
    }

    /// Requests and limits of cpu and memory parse, and no request is larger than its limit.
    fn resources(&mut self, path: &str, resources: Option<&ResourceRequirements>) {
        let Some(resources) = resources else { return };
        for name in ["cpu", "memory"] {
            let request = resource(path, "requests", resources.requests.as_ref(), name);
            let limit = resource(path, "limits", resources.limits.as_ref(), name);
            for (field, parsed) in request.iter().chain(limit.iter()) {
                if let Err(error) = parsed {
                    self.add(field.clone(), error.to_string());
                }
            }
            if let (Some((field, Ok(request))), Some((_, Ok(limit)))) = (&request, &limit)
                && request > limit
            {
                self.add(
                    field.clone(),
                    format!("request is larger than the {name} limit"),
                );
            }
        }
    }

    /// The same rules as the CRD's CEL on `Placement`, plus label syntax for the node selector.
    pub(crate) fn placement(&mut self, path: &str, placement: Option<&Placement>) {
        let Some(placement) = placement else { return };
        let path = format!("{path}.placement");
        for (key, value) in placement.node_selector.iter().flatten() {
            self.node_selector(&path, key, value);
        }
        for (index, toleration) in placement.tolerations.iter().flatten().enumerate() {
            self.toleration(&format!("{path}.tolerations[{index}]"), toleration);
        }
        if let Some(class) = &placement.priority_class_name {
            self.object_name(&format!("{path}.priorityClassName"), class);
        }
    }

    /// One entry of a node selector: a label key and value.
    fn node_selector(&mut self, path: &str, key: &str, value: &str) {
        if !is_label_key(key) {
            self.add(
                format!("{path}.nodeSelector"),
                format!("{key:?} is not a valid label key"),
            );
        }
        if !is_label_value(value) {
            self.add(
                format!("{path}.nodeSelector.{key}"),
                format!("{value:?} is not a valid label value (at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit)"),
            );
        }
    }

    fn toleration(&mut self, path: &str, toleration: &Toleration) {
        let operator = toleration.operator.as_deref().unwrap_or("Equal");
        if !matches!(operator, "Exists" | "Equal") {
            self.add(
                format!("{path}.operator"),
                format!("{operator:?} must be Exists or Equal"),
            );
        }
        if operator == "Exists"
            && toleration
                .value
                .as_deref()
                .is_some_and(|value| !value.is_empty())
        {
            self.add(
                format!("{path}.value"),
                "must be empty when the operator is Exists",
            );
        }
        if let Some(effect) = toleration.effect.as_deref()
            && !matches!(effect, "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute")
        {
            self.add(
                format!("{path}.effect"),
                format!("{effect:?} must be NoSchedule, PreferNoSchedule or NoExecute (or empty for all)"),
            );
        }
    }

    /// A registry or repository: a host, an optional port and a path, nothing after.
    pub(crate) fn image_repository(&mut self, path: &str, value: &str) {
        if !is_image_repository(value) {
            self.add(
                path,
                format!("{value:?} must be an image repository such as registry.example.com/insync (a host, an optional port, lower-case path components; no trailing '/', tag, digest or spaces)"),
            );
        }
    }

    pub(crate) fn url(&mut self, path: &str, value: Option<&str>) {
        if let Some(url) = value
            && !is_endpoint_url(url)
        {
            self.add(
                path,
                format!("{url:?} must be an http(s) URL such as https://s3.example.com:9000 (a host name or address, an optional port and path; no spaces, line breaks or user name)"),
            );
        }
    }

    pub(crate) fn bucket(&mut self, path: &str, value: &str) {
        if !is_bucket_name(value) {
            self.add(
                path,
                format!(
                    "{value:?} must be a valid S3 bucket name (3-63 lower-case letters, digits, '.', '-')"
                ),
            );
        }
    }

    /// An S3 key prefix: no control characters, not starting with '/'.
    pub(crate) fn key_prefix(&mut self, path: &str, value: &str) {
        if !is_key_prefix(value) {
            self.add(
                path,
                format!("{value:?} must not start with '/' or contain a line break or other control character"),
            );
        }
    }

    pub(crate) fn region(&mut self, path: &str, value: &str) {
        if !is_aws_region(value) {
            self.add(
                path,
                format!("{value:?} must be an AWS region such as us-east-1"),
            );
        }
    }
}

/// The field path and parsed value of resource `name` (cpu, memory) among `kind` (requests or
/// limits) at `path`, when it is set.
fn resource(
    path: &str,
    kind: &str,
    quantities: Option<&BTreeMap<String, K8sQuantity>>,
    name: &str,
) -> Option<(String, Result<Quantity, QuantityError>)> {
    quantities
        .and_then(|quantities| quantities.get(name))
        .map(|quantity| {
            (
                format!("{path}.resources.{kind}.{name}"),
                Quantity::parse(&quantity.0),
            )
        })
}
