//! The committed CRDs under `crds/` must be exactly what the Rust types generate.
//! Regenerate with `make crds`.

use std::path::Path;

#[test]
fn committed_crd_matches_the_rust_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/insyncclouds.insync.dev.yaml");
    let committed =
        std::fs::read_to_string(&path).expect("crds/insyncclouds.insync.dev.yaml is missing");
    let generated = insync_operator::cli::crd_yaml().expect("CRD serializes");
    assert!(
        committed == generated,
        "crds/insyncclouds.insync.dev.yaml is stale: run `cargo run -p insync-operator -- crd > crds/insyncclouds.insync.dev.yaml` and commit it"
    );
}

#[test]
fn committed_backup_crd_matches_the_rust_types() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/insynccloudbackups.insync.dev.yaml");
    let committed =
        std::fs::read_to_string(&path).expect("crds/insynccloudbackups.insync.dev.yaml is missing");
    let generated = insync_operator::cli::backup_crd_yaml().expect("CRD serializes");
    assert!(
        committed == generated,
        "crds/insynccloudbackups.insync.dev.yaml is stale: run `make crds` and commit it"
    );
}

#[test]
fn backup_crd_carries_names_columns_and_cel_rules() {
    let crd = insync_operator::cli::backup_crd_yaml().expect("CRD serializes");
    for needle in [
        "shortNames:\n    - iscb",
        "categories:\n    - insync",
        "name: Cloud",
        "name: Phase",
        "name: Size",
        "cloud cannot change: create another InSyncCloudBackup",
        "subresources:\n      status: {}",
    ] {
        assert!(crd.contains(needle), "backup CRD lacks {needle:?}");
    }
    let cloud = insync_operator::cli::crd_yaml().expect("CRD serializes");
    for needle in [
        "schedule must be a 5-field cron expression in UTC",
        "backup.destination is required when the object store is a shared filesystem",
    ] {
        assert!(cloud.contains(needle), "cloud CRD lacks {needle:?}");
    }
}

#[test]
fn crd_carries_names_columns_and_cel_rules() {
    let crd = insync_operator::cli::crd_yaml().expect("CRD serializes");
    for needle in [
        "shortNames:\n    - isc",
        "categories:\n    - insync",
        "name: Version",
        "name: Ready",
        "name: Endpoint",
        "name: Age",
        "storage size may not shrink",
        "objectStore needs exactly one of 'minio', 's3' or 'sharedFilesystem'",
        "MinIO erasure sets need at least 4 drives",
        "x-kubernetes-list-type: map",
        "subresources:\n      status: {}",
    ] {
        assert!(crd.contains(needle), "CRD lacks {needle:?}");
    }
}
