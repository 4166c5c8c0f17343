//! Validation that returns every problem at once, each with its field path.
//!
//! The API server enforces the CRD's OpenAPI and CEL rules, but `insync-operator render -f`
//! reads files that never went through an API server, and some checks (cross-field, resource
//! requests against limits) are clearer here than in CEL. So this repeats the CRD's rules that
//! matter for rendering and adds those the schema cannot express.

use std::fmt;

use k8s_openapi::api::core::v1::ResourceRequirements;

use super::{ImageOverride, InSyncCloud, Placement, Quantity, ServiceType, StorageSpec};

/// One problem with a cloud, at a field path such as `spec.nodes.replicas`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the offending field.
    pub path: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one cloud.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidCloud {
    /// `namespace/name` of the cloud.
    pub cloud: String,
    /// The problems, in field order.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for InvalidCloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "InSyncCloud {} is invalid ({} problem",
            self.cloud,
            self.errors.len()
        )?;
        if self.errors.len() != 1 {
            write!(f, "s")?;
        }
        write!(f, "):")?;
        for error in &self.errors {
            write!(f, "\n  - {error}")?;
        }
        Ok(())
    }
}

/// Collects problems as it walks the spec.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn range(&mut self, path: &str, value: i64, min: i64, max: i64) {
        if value < min || value > max {
            self.add(
                path,
                format!("must be between {min} and {max}, got {value}"),
            );
        }
    }

    fn dns_label(&mut self, path: &str, value: &str, max_len: usize) {
        if !is_dns_label(value) || value.len() > max_len {
            self.add(
                path,
                format!(
                    "{value:?} must be a DNS label of at most {max_len} characters: lower-case letters, digits and '-', starting with a letter and ending with a letter or digit"
                ),
            );
        }
    }

    fn object_name(&mut self, path: &str, value: &str) {
        if value.len() > 253 || !value.split('.').all(is_dns_label_lenient) {
            self.add(
                path,
                format!(
                    "{value:?} must be a DNS subdomain (lower-case letters, digits, '-' and '.')"
                ),
            );
        }
    }

    fn image_tag(&mut self, path: &str, value: &str) {
        if !is_image_tag(value) {
            self.add(
                path,
                format!("{value:?} is not a valid image tag: 1-128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'"),
            );
        }
    }

    fn image(&mut self, path: &str, image: Option<&ImageOverride>) {
        if let Some(tag) = image.and_then(|i| i.tag.as_deref()) {
            self.image_tag(&format!("{path}.image.tag"), tag);
        }
        if let Some(repo) = image.and_then(|i| i.repository.as_deref())
            && (repo.is_empty() || repo.contains([':', '@', ' ']))
        {
            self.add(
                format!("{path}.image.repository"),
                format!("{repo:?} must be a repository without tag or digest"),
            );
        }
    }

    fn storage(&mut self, path: &str, storage: &StorageSpec) {
        match Quantity::parse(&storage.size) {
            Ok(q) if q.is_positive() => {}
            Ok(_) => self.add(format!("{path}.size"), "must be greater than zero"),
            Err(e) => self.add(format!("{path}.size"), e.to_string()),
        }
        if let Some(class) = &storage.storage_class_name {
            self.object_name(&format!("{path}.storageClassName"), class);
        }
    }

    fn resources(&mut self, path: &str, resources: Option<&ResourceRequirements>) {
        let Some(resources) = resources else { return };
        let parse = |kind: &str,
                     map: &Option<
            std::collections::BTreeMap<
                String,
                k8s_openapi::apimachinery::pkg::api::resource::Quantity,
            >,
        >,
                     name: &str| {
            map.as_ref().and_then(|m| m.get(name)).map(|q| {
                (
                    format!("{path}.resources.{kind}.{name}"),
                    Quantity::parse(&q.0),
                )
            })
        };
        for name in ["cpu", "memory"] {
            let request = parse("requests", &resources.requests, name);
            let limit = parse("limits", &resources.limits, name);
            for (field, parsed) in request.iter().chain(limit.iter()) {
                if let Err(e) = parsed {
                    self.add(field.clone(), e.to_string());
                }
            }
            if let (Some((field, Ok(req))), Some((_, Ok(lim)))) = (&request, &limit)
                && req > lim
            {
                self.add(
                    field.clone(),
                    format!("request is larger than the {name} limit"),
                );
            }
        }
    }

    /// The same rules as the CRD's CEL on `Placement`, plus label syntax for the node selector.
    fn placement(&mut self, path: &str, placement: Option<&Placement>) {
        let Some(placement) = placement else { return };
        for (key, value) in placement.node_selector.iter().flatten() {
            if !is_label_key(key) {
                self.add(
                    format!("{path}.placement.nodeSelector"),
                    format!("{key:?} is not a valid label key"),
                );
            }
            if !is_label_value(value) {
                self.add(
                    format!("{path}.placement.nodeSelector.{key}"),
                    format!("{value:?} is not a valid label value (at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit)"),
                );
            }
        }
        for (i, toleration) in placement.tolerations.iter().flatten().enumerate() {
            let at = format!("{path}.placement.tolerations[{i}]");
            let operator = toleration.operator.as_deref().unwrap_or("Equal");
            if !matches!(operator, "Exists" | "Equal") {
                self.add(
                    format!("{at}.operator"),
                    format!("{operator:?} must be Exists or Equal"),
                );
            }
            if operator == "Exists" && toleration.value.as_deref().is_some_and(|v| !v.is_empty()) {
                self.add(
                    format!("{at}.value"),
                    "must be empty when the operator is Exists",
                );
            }
            if let Some(effect) = toleration.effect.as_deref()
                && !matches!(effect, "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute")
            {
                self.add(
                    format!("{at}.effect"),
                    format!("{effect:?} must be NoSchedule, PreferNoSchedule or NoExecute (or empty for all)"),
                );
            }
        }
        if let Some(class) = &placement.priority_class_name {
            self.object_name(&format!("{path}.placement.priorityClassName"), class);
        }
    }

    fn url(&mut self, path: &str, value: Option<&str>) {
        if let Some(url) = value
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            self.add(path, format!("{url:?} must be an http(s) URL"));
        }
    }

    fn region(&mut self, path: &str, value: &str) {
        let parts: Vec<&str> = value.split('-').collect();
        let ok = parts.len() >= 3
            && parts[0].len() == 2
            && parts.iter().all(|p| !p.is_empty())
            && parts[..parts.len() - 1]
                .iter()
                .all(|p| p.chars().all(|c| c.is_ascii_lowercase()))
            && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit());
        if !ok {
            self.add(
                path,
                format!("{value:?} must be an AWS region such as us-east-1"),
            );
        }
    }
}

/// Checks a cloud and returns every problem found, or `Ok(())`.
pub fn validate(cloud: &InSyncCloud) -> Result<(), InvalidCloud> {
    let mut p = Problems::default();
    let spec = &cloud.spec;

    match cloud.metadata.name.as_deref() {
        None | Some("") => p.add("metadata.name", "is required"),
        Some(name) => p.dns_label("metadata.name", name, 40),
    }
    p.image_tag("spec.version", &spec.version);
    for (i, secret) in spec.images.pull_secrets.iter().enumerate() {
        p.object_name(&format!("spec.images.pullSecrets[{i}]"), secret);
    }
    if spec.images.registry.is_empty() || spec.images.registry.ends_with('/') {
        p.add("spec.images.registry", "must be a registry and path prefix without a trailing '/', e.g. registry.example.com/insync");
    }

    p.placement("spec", Some(&spec.placement));

    p.range("spec.master.replicas", spec.master.replicas.into(), 1, 9);
    p.resources("spec.master", spec.master.resources.as_ref());
    p.image("spec.master", spec.master.image.as_ref());
    p.placement("spec.master", spec.master.placement.as_ref());

    p.range("spec.nodes.replicas", spec.nodes.replicas.into(), 0, 100);
    p.storage("spec.nodes.storage", &spec.nodes.storage);
    p.resources("spec.nodes", spec.nodes.resources.as_ref());
    p.image("spec.nodes", spec.nodes.image.as_ref());
    p.placement("spec.nodes", spec.nodes.placement.as_ref());

    let db = &spec.database;
    match (&db.managed, &db.external) {
        (Some(managed), None) => {
            p.storage("spec.database.managed.storage", &managed.storage);
            p.resources("spec.database.managed", managed.resources.as_ref());
            p.image("spec.database.managed", managed.image.as_ref());
            p.placement("spec.database.managed", managed.placement.as_ref());
        }
        (None, Some(external)) => {
            if external.host.is_empty() {
                p.add("spec.database.external.host", "is required");
            }
            p.range(
                "spec.database.external.port",
                external.port.into(),
                1,
                65535,
            );
            if external.database.is_empty() {
                p.add("spec.database.external.database", "must not be empty");
            }
            p.object_name(
                "spec.database.external.secretRef.name",
                &external.secret_ref.name,
            );
        }
        _ => p.add(
            "spec.database",
            "needs exactly one of 'managed' or 'external'",
        ),
    }

    let meta = &spec.metadata_store;
    match (&meta.managed, &meta.external) {
        (Some(managed), None) => {
            p.range(
                "spec.metadataStore.managed.replicas",
                managed.replicas.into(),
                1,
                5,
            );
            p.storage("spec.metadataStore.managed.storage", &managed.storage);
            p.resources("spec.metadataStore.managed", managed.resources.as_ref());
            p.image("spec.metadataStore.managed", managed.image.as_ref());
            p.placement("spec.metadataStore.managed", managed.placement.as_ref());
        }
        (None, Some(external)) => {
            p.region("spec.metadataStore.external.region", &external.region);
            p.url(
                "spec.metadataStore.external.endpoint",
                external.endpoint.as_deref(),
            );
            if let Some(secret) = &external.secret_ref {
                p.object_name("spec.metadataStore.external.secretRef.name", &secret.name);
            }
        }
        _ => p.add(
            "spec.metadataStore",
            "needs exactly one of 'managed' or 'external'",
        ),
    }

    let objects = &spec.object_store;
    match (&objects.minio, &objects.s3, &objects.shared_filesystem) {
        (Some(minio), None, None) => {
            if !(minio.replicas == 1 || (4..=32).contains(&minio.replicas)) {
                p.add(
                    "spec.objectStore.minio.replicas",
                    format!("must be 1, or between 4 and 32 (MinIO erasure sets need at least 4 drives), got {}", minio.replicas),
                );
            }
            p.storage("spec.objectStore.minio.storage", &minio.storage);
            p.resources("spec.objectStore.minio", minio.resources.as_ref());
            p.image("spec.objectStore.minio", minio.image.as_ref());
            p.placement("spec.objectStore.minio", minio.placement.as_ref());
        }
        (None, Some(s3), None) => {
            let bucket_ok = (3..=63).contains(&s3.bucket.len())
                && s3
                    .bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
                && s3.bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
                && s3.bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !bucket_ok {
                p.add("spec.objectStore.s3.bucket", format!("{:?} must be a valid S3 bucket name (3-63 lower-case letters, digits, '.', '-')", s3.bucket));
            }
            p.region("spec.objectStore.s3.region", &s3.region);
            p.url("spec.objectStore.s3.endpoint", s3.endpoint.as_deref());
            if let Some(secret) = &s3.secret_ref {
                p.object_name("spec.objectStore.s3.secretRef.name", &secret.name);
            }
        }
        (None, None, Some(fs)) => p.object_name(
            "spec.objectStore.sharedFilesystem.claimName",
            &fs.claim_name,
        ),
        _ => p.add(
            "spec.objectStore",
            "needs exactly one of 'minio', 's3' or 'sharedFilesystem'",
        ),
    }

    let front = &spec.frontend;
    p.range("spec.frontend.replicas", front.replicas.into(), 1, 10);
    p.resources("spec.frontend", front.resources.as_ref());
    p.image("spec.frontend", front.image.as_ref());
    p.placement("spec.frontend", front.placement.as_ref());
    let svc = &front.service;
    p.range(
        "spec.frontend.service.masterPort",
        svc.master_port.into(),
        1,
        65535,
    );
    p.range(
        "spec.frontend.service.storagePort",
        svc.storage_port.into(),
        1,
        65535,
    );
    if svc.master_port == svc.storage_port {
        p.add(
            "spec.frontend.service.storagePort",
            format!("must differ from masterPort ({})", svc.master_port),
        );
    }
    let node_ports = [
        ("masterNodePort", svc.master_node_port),
        ("storageNodePort", svc.storage_node_port),
    ];
    for (field, port) in node_ports {
        if let Some(port) = port {
            p.range(
                &format!("spec.frontend.service.{field}"),
                port.into(),
                30000,
                32767,
            );
            if svc.type_ == ServiceType::ClusterIP {
                p.add(
                    format!("spec.frontend.service.{field}"),
                    "can only be set when service.type is NodePort or LoadBalancer",
                );
            }
        }
    }
    if svc.master_node_port.is_some() && svc.master_node_port == svc.storage_node_port {
        p.add(
            "spec.frontend.service.storageNodePort",
            "must differ from masterNodePort",
        );
    }

    if let Some(dns) = &spec.dns {
        if !is_dns_name(&dns.domain) || dns.domain.len() > 200 {
            p.add(
                "spec.dns.domain",
                format!(
                    "{:?} must be a lower-case DNS name such as drtst.org",
                    dns.domain
                ),
            );
        }
        p.range("spec.dns.ttl", dns.ttl, 1, 86400);
        if let Some(zone) = &dns.hosted_zone_id {
            let id = zone.strip_prefix("/hostedzone/").unwrap_or(zone);
            if id.is_empty()
                || id.len() > 32
                || !id
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            {
                p.add(
                    "spec.dns.hostedZoneId",
                    format!("{zone:?} must look like Z0123456789ABCDEFGHIJ"),
                );
            }
        }
    }

    if spec.upgrade.max_unavailable < 1 {
        p.add(
            "spec.upgrade.maxUnavailable",
            format!("must be at least 1, got {}", spec.upgrade.max_unavailable),
        );
    }
    match parse_duration(&spec.upgrade.health_timeout) {
        Some(d) if !d.is_zero() => {}
        _ => p.add(
            "spec.upgrade.healthTimeout",
            format!(
                "{:?} must be a positive duration such as 10m, 90s or 1h30m",
                spec.upgrade.health_timeout
            ),
        ),
    }
    for (i, window) in spec.upgrade.windows.iter().enumerate() {
        let week = std::time::Duration::from_secs(7 * 86_400);
        match parse_duration(&window.duration) {
            Some(d) if !d.is_zero() && d <= week => {}
            _ => p.add(
                format!("spec.upgrade.windows[{i}].duration"),
                format!(
                    "{:?} must be a positive duration of at most a week (168h), such as 4h or 1h30m",
                    window.duration
                ),
            ),
        }
    }

    if p.0.is_empty() {
        Ok(())
    } else {
        Err(InvalidCloud {
            cloud: format!("{}/{}", cloud.cloud_namespace(), cloud.cloud_name()),
            errors: p.0,
        })
    }
}

/// Parses durations written as `1h30m`, `10m`, `90s`.
pub(crate) fn parse_duration(text: &str) -> Option<std::time::Duration> {
    if text.is_empty() {
        return None;
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for c in text.chars() {
        match c {
            '0'..='9' => digits.push(c),
            'h' | 'm' | 's' => {
                let n: u64 = digits.parse().ok()?;
                digits.clear();
                let unit = match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                total = total.checked_add(n.checked_mul(unit)?)?;
            }
            _ => return None,
        }
    }
    digits
        .is_empty()
        .then(|| std::time::Duration::from_secs(total))
}

/// A label key: an optional DNS-subdomain prefix and '/', then a name of at most 63 characters.
fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix
        .is_none_or(|p| !p.is_empty() && p.len() <= 253 && p.split('.').all(is_dns_label_lenient));
    prefix_ok && !name.is_empty() && is_label_value(name)
}

/// A label value: empty, or at most 63 alphanumerics, '-', '_' and '.', alphanumeric at both ends.
fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn is_dns_label(value: &str) -> bool {
    value.starts_with(|c: char| c.is_ascii_lowercase()) && is_dns_label_lenient(value)
}

/// RFC 1123 label: may start with a digit.
fn is_dns_label_lenient(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

fn is_dns_name(value: &str) -> bool {
    let labels: Vec<&str> = value.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| is_dns_label_lenient(l))
        && labels
            .last()
            .is_some_and(|tld| tld.starts_with(|c: char| c.is_ascii_lowercase()))
}

fn is_image_tag(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && !value.starts_with(['.', '-'])
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}
