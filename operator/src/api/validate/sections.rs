//! One check a section of the spec, in the order [`validate`](super::validate) walks them.

use std::time::Duration;

use super::problems::Problems;
use super::syntax::{
    is_dns_name, is_host, is_hosted_zone_id, is_mysql_identifier, is_table_prefix, parse_duration,
};
use crate::api::{
    BackupSpec, DatabaseSpec, DnsSpec, ExternalDatabase, ExternalDynamo, ExternalS3,
    FrontendService, FrontendSpec, ImagesSpec, ManagedBynamo, ManagedDatabase, ManagedMinio,
    MasterSpec, MetadataStoreSpec, NodesSpec, ObjectStoreSpec, RestoreSpec, ServiceType,
    UpgradePolicy,
};

/// The longest a maintenance window may be.
const WEEK: Duration = Duration::from_secs(7 * 86_400);

/// `metadata.name`: a DNS label short enough to prefix the names of the cloud's objects.
pub(crate) fn name(problems: &mut Problems, name: Option<&str>) {
    match name {
        None | Some("") => problems.add("metadata.name", "is required"),
        Some(name) => problems.dns_label("metadata.name", name, 40),
    }
}

/// `spec.images`: the pull secrets' names and the registry prefix.
pub(crate) fn images(problems: &mut Problems, images: &ImagesSpec) {
    for (index, secret) in images.pull_secrets.iter().enumerate() {
        problems.object_name(&format!("spec.images.pullSecrets[{index}]"), secret);
    }
    problems.image_repository("spec.images.registry", &images.registry);
}

/// `spec.master`.
pub(crate) fn master(problems: &mut Problems, master: &MasterSpec) {
    problems.range("spec.master.replicas", master.replicas.into(), 1, 9);
    problems.workload(
        "spec.master",
        master.resources.as_ref(),
        master.image.as_ref(),
        master.placement.as_ref(),
    );
}

/// `spec.nodes`.
pub(crate) fn nodes(problems: &mut Problems, nodes: &NodesSpec) {
    problems.range("spec.nodes.replicas", nodes.replicas.into(), 0, 100);
    problems.storage("spec.nodes.storage", &nodes.storage);
    problems.workload(
        "spec.nodes",
        nodes.resources.as_ref(),
        nodes.image.as_ref(),
        nodes.placement.as_ref(),
    );
}

/// `spec.database`: exactly one of a managed MySQL or an external database.
pub(crate) fn database(problems: &mut Problems, database: &DatabaseSpec) {
    match (&database.managed, &database.external) {
        (Some(managed), None) => managed_database(problems, managed),
        (None, Some(external)) => external_database(problems, external),
        _ => problems.add(
            "spec.database",
            "needs exactly one of 'managed' or 'external'",
        ),
    }
}

fn managed_database(problems: &mut Problems, managed: &ManagedDatabase) {
    problems.storage("spec.database.managed.storage", &managed.storage);
    problems.workload(
        "spec.database.managed",
        managed.resources.as_ref(),
        managed.image.as_ref(),
        managed.placement.as_ref(),
    );
}

fn external_database(problems: &mut Problems, external: &ExternalDatabase) {
    if external.host.is_empty() {
        problems.add("spec.database.external.host", "is required");
    } else if !is_host(&external.host) {
        problems.add(
            "spec.database.external.host",
            format!(
                "{:?} must be a host name, an IPv4 or an IPv6 address (letters, digits, '-' and '.', or hex digits and ':'; no port, path, spaces or line breaks)",
                external.host
            ),
        );
    }
    problems.range(
        "spec.database.external.port",
        external.port.into(),
        1,
        65535,
    );
    if external.database.is_empty() {
        problems.add("spec.database.external.database", "must not be empty");
    } else if !is_mysql_identifier(&external.database) {
        problems.add(
            "spec.database.external.database",
            format!(
                "{:?} must be 1-64 letters, digits and '_': it is passed to the MySQL tools and into SQL unquoted",
                external.database
            ),
        );
    }
    problems.object_name(
        "spec.database.external.secretRef.name",
        &external.secret_ref.name,
    );
}

/// `spec.metadataStore`: exactly one of a managed Bynamo or an external DynamoDB.
pub(crate) fn metadata_store(problems: &mut Problems, store: &MetadataStoreSpec) {
    match (&store.managed, &store.external) {
        (Some(managed), None) => managed_bynamo(problems, managed),
        (None, Some(external)) => external_dynamo(problems, external),
        _ => problems.add(
            "spec.metadataStore",
            "needs exactly one of 'managed' or 'external'",
        ),
    }
}

fn managed_bynamo(problems: &mut Problems, managed: &ManagedBynamo) {
    problems.range(
        "spec.metadataStore.managed.replicas",
        managed.replicas.into(),
        1,
        5,
    );
    problems.storage("spec.metadataStore.managed.storage", &managed.storage);
    problems.workload(
        "spec.metadataStore.managed",
        managed.resources.as_ref(),
        managed.image.as_ref(),
        managed.placement.as_ref(),
    );
}

fn external_dynamo(problems: &mut Problems, external: &ExternalDynamo) {
    problems.region("spec.metadataStore.external.region", &external.region);
    problems.url(
        "spec.metadataStore.external.endpoint",
        external.endpoint.as_deref(),
    );
    if let Some(prefix) = &external.table_prefix
        && !is_table_prefix(prefix)
    {
        problems.add(
            "spec.metadataStore.external.tablePrefix",
            format!("{prefix:?} must be at most 64 letters, digits, '_', '.' and '-', not starting with '-'"),
        );
    }
    if let Some(secret) = &external.secret_ref {
        problems.object_name("spec.metadataStore.external.secretRef.name", &secret.name);
    }
}

/// `spec.objectStore`: exactly one of MinIO, S3 or a shared filesystem.
pub(crate) fn object_store(problems: &mut Problems, store: &ObjectStoreSpec) {
    match (&store.minio, &store.s3, &store.shared_filesystem) {
        (Some(minio), None, None) => managed_minio(problems, minio),
        (None, Some(s3), None) => external_s3(problems, s3),
        (None, None, Some(filesystem)) => problems.object_name(
            "spec.objectStore.sharedFilesystem.claimName",
            &filesystem.claim_name,
        ),
        _ => problems.add(
            "spec.objectStore",
            "needs exactly one of 'minio', 's3' or 'sharedFilesystem'",
        ),
    }
}

fn managed_minio(problems: &mut Problems, minio: &ManagedMinio) {
    if !(minio.replicas == 1 || (4..=32).contains(&minio.replicas)) {
        problems.add(
            "spec.objectStore.minio.replicas",
            format!("must be 1, or between 4 and 32 (MinIO erasure sets need at least 4 drives), got {}", minio.replicas),
        );
    }
    problems.storage("spec.objectStore.minio.storage", &minio.storage);
    problems.workload(
        "spec.objectStore.minio",
        minio.resources.as_ref(),
        minio.image.as_ref(),
        minio.placement.as_ref(),
    );
}

fn external_s3(problems: &mut Problems, s3: &ExternalS3) {
    problems.bucket("spec.objectStore.s3.bucket", &s3.bucket);
    problems.region("spec.objectStore.s3.region", &s3.region);
    problems.url("spec.objectStore.s3.endpoint", s3.endpoint.as_deref());
    if let Some(secret) = &s3.secret_ref {
        problems.object_name("spec.objectStore.s3.secretRef.name", &secret.name);
    }
}

/// `spec.frontend`: the HAProxy workload and its Service.
pub(crate) fn frontend(problems: &mut Problems, frontend: &FrontendSpec) {
    problems.range("spec.frontend.replicas", frontend.replicas.into(), 1, 10);
    problems.workload(
        "spec.frontend",
        frontend.resources.as_ref(),
        frontend.image.as_ref(),
        frontend.placement.as_ref(),
    );
    frontend_service(problems, &frontend.service);
}

/// `spec.frontend.service`: two distinct ports, and node ports only where the Service type has
/// them.
fn frontend_service(problems: &mut Problems, service: &FrontendService) {
    service_ports(problems, service);
    node_ports(problems, service);
}

/// The Service's master and storage ports: valid and distinct.
fn service_ports(problems: &mut Problems, service: &FrontendService) {
    let ports = [
        ("masterPort", service.master_port),
        ("storagePort", service.storage_port),
    ];
    for (field, port) in ports {
        problems.range(
            &format!("spec.frontend.service.{field}"),
            port.into(),
            1,
            65535,
        );
    }
    if service.master_port == service.storage_port {
        problems.add(
            "spec.frontend.service.storagePort",
            format!("must differ from masterPort ({})", service.master_port),
        );
    }
}

/// The Service's node ports, where set: in the node-port range, on a Service type that has
/// them, and distinct.
fn node_ports(problems: &mut Problems, service: &FrontendService) {
    let node_ports = [
        ("masterNodePort", service.master_node_port),
        ("storageNodePort", service.storage_node_port),
    ];
    for (field, port) in node_ports {
        let Some(port) = port else { continue };
        let path = format!("spec.frontend.service.{field}");
        problems.range(&path, port.into(), 30000, 32767);
        if service.type_ == ServiceType::ClusterIP {
            problems.add(
                path,
                "can only be set when service.type is NodePort or LoadBalancer",
            );
        }
    }
    if service.master_node_port.is_some() && service.master_node_port == service.storage_node_port {
        problems.add(
            "spec.frontend.service.storageNodePort",
            "must differ from masterNodePort",
        );
    }
}

/// `spec.dns`: the domain, the TTL and the hosted zone id.
pub(crate) fn dns(problems: &mut Problems, dns: &DnsSpec) {
    if !is_dns_name(&dns.domain) || dns.domain.len() > 200 {
        problems.add(
            "spec.dns.domain",
            format!(
                "{:?} must be a lower-case DNS name such as drtst.org",
                dns.domain
            ),
        );
    }
    problems.range("spec.dns.ttl", dns.ttl, 1, 86400);
    if let Some(zone) = &dns.hosted_zone_id
        && !is_hosted_zone_id(zone)
    {
        problems.add(
            "spec.dns.hostedZoneId",
            format!("{zone:?} must look like Z0123456789ABCDEFGHIJ"),
        );
    }
}

/// `spec.upgrade`: at least one workload at a time, a health timeout and maintenance windows
/// that are positive durations (a window at most a week).
pub(crate) fn upgrade(problems: &mut Problems, upgrade: &UpgradePolicy) {
    if upgrade.max_unavailable < 1 {
        problems.add(
            "spec.upgrade.maxUnavailable",
            format!("must be at least 1, got {}", upgrade.max_unavailable),
        );
    }
    match parse_duration(&upgrade.health_timeout) {
        Some(timeout) if !timeout.is_zero() => {}
        _ => problems.add(
            "spec.upgrade.healthTimeout",
            format!(
                "{:?} must be a positive duration such as 10m, 90s or 1h30m",
                upgrade.health_timeout
            ),
        ),
    }
    for (index, window) in upgrade.windows.iter().enumerate() {
        match parse_duration(&window.duration) {
            Some(length) if !length.is_zero() && length <= WEEK => {}
            _ => problems.add(
                format!("spec.upgrade.windows[{index}].duration"),
                format!(
                    "{:?} must be a positive duration of at most a week (168h), such as 4h or 1h30m",
                    window.duration
                ),
            ),
        }
    }
}

/// `spec.backup.destination.s3`: the bucket, prefix, endpoint, region and keys' Secret.
pub(crate) fn backup(problems: &mut Problems, backup: &BackupSpec) {
    let Some(s3) = backup.destination.as_ref().and_then(|d| d.s3.as_ref()) else {
        return;
    };
    let path = "spec.backup.destination.s3";
    problems.bucket(&format!("{path}.bucket"), &s3.bucket);
    if let Some(prefix) = &s3.prefix {
        problems.key_prefix(&format!("{path}.prefix"), prefix);
    }
    problems.url(&format!("{path}.endpoint"), s3.endpoint.as_deref());
    if let Some(region) = &s3.region {
        problems.region(&format!("{path}.region"), region);
    }
    if let Some(secret) = &s3.secret_ref {
        problems.object_name(&format!("{path}.secretRef.name"), &secret.name);
    }
}

/// `spec.restore`: the backup's name (it goes into a label and a store path), or where the
/// backup is.
pub(crate) fn restore(problems: &mut Problems, restore: &RestoreSpec) {
    if let Some(backup) = &restore.backup {
        problems.object_name("spec.restore.backup", backup);
        if backup.is_empty() || backup.len() > 63 {
            problems.add(
                "spec.restore.backup",
                "must be the name of an InSyncCloudBackup (1-63 characters)",
            );
        }
    }
    let Some(s3) = &restore.s3 else { return };
    let path = "spec.restore.s3";
    problems.bucket(&format!("{path}.bucket"), &s3.bucket);
    problems.key_prefix(&format!("{path}.prefix"), &s3.prefix);
    if !s3.prefix.ends_with('/') {
        problems.add(
            format!("{path}.prefix"),
            "must end with '/': it is the folder holding the backup's manifest.json",
        );
    }
    problems.url(&format!("{path}.endpoint"), s3.endpoint.as_deref());
    if let Some(region) = &s3.region {
        problems.region(&format!("{path}.region"), region);
    }
    if let Some(secret) = &s3.secret_ref {
        problems.object_name(&format!("{path}.secretRef.name"), &secret.name);
    }
}
