//! Backups: `spec.backup` of a cloud (schedule, retention, destination) and the
//! `InSyncCloudBackup` kind, one object per backup taken.
//!
//! A backup is a consistent logical dump of the cloud's MySQL (one transaction), a JSON-lines
//! export of every metadata-store table, and a `manifest.json` written last, all under one
//! prefix of an S3 bucket. Creating an `InSyncCloudBackup` by hand takes an on-demand backup.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SecretRef;

/// `spec.backup` of an `InSyncCloud`: when backups are taken, how many are kept, where they go.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.verifySchedule) || (has(self.verify) && self.verify)").message("verifySchedule needs verify: true"))]
pub struct BackupSpec {
    /// When to take a backup, as a 5-field cron expression in UTC (minute hour day-of-month
    /// month day-of-week), e.g. "0 3 * * *" for 03:00 every day. No scheduled backups when
    /// unset; `InSyncCloudBackup` objects created by hand are still taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    #[x_kube(validation = Rule::new("self.matches('^\\\\S+( \\\\S+){4}$')").message("schedule must be a 5-field cron expression in UTC, e.g. '0 3 * * *'"))]
    pub schedule: Option<String>,

    /// How many backups to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<BackupRetention>,

    /// Where backups are written. Default: the cloud's own object store (its bucket, under
    /// `insync-backups/<cloud>/<backup>/`); required when the object store is a shared
    /// filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<BackupDestination>,

    /// Prove each backup restores: after it completes, the operator restores it into throwaway
    /// datastores (a Job whose pod holds its own MySQL and metadata store), compares every
    /// part's checksum and every table's row count with the manifest, and records the result
    /// on the backup (`status.verification`), on the cloud (`status.backup.lastVerified`) and
    /// as the cloud's `BackupHealthy` condition. Retention never deletes the newest verified
    /// backup.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verify: bool,

    /// Verify again on this schedule (5-field cron, UTC, like `schedule`): at each slot the
    /// newest Complete backup is restored into throwaway datastores again, so a backup that
    /// rotted in its store is noticed. Needs `verify: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    #[x_kube(validation = Rule::new("self.matches('^\\\\S+( \\\\S+){4}$')").message("verifySchedule must be a 5-field cron expression in UTC, e.g. '0 5 * * 0'"))]
    pub verify_schedule: Option<String>,
}

/// Which scheduled backups are kept. A backup is kept when any rule keeps it; the rules count
/// Complete backups only, by when they were taken (UTC). An expired backup's files are deleted
/// from its store, then the `InSyncCloudBackup` object. Backups created by hand are never
/// expired, and the newest backup whose verification passed is always kept.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.keepLast) ? self.keepLast : 0) + (has(self.keepDaily) ? self.keepDaily : 0) + (has(self.keepWeekly) ? self.keepWeekly : 0) + (has(self.keepMonthly) ? self.keepMonthly : 0) > 0").message("retention must keep something: set keepLast, keepDaily, keepWeekly or keepMonthly above 0"))]
pub struct BackupRetention {
    /// Keep the newest N Complete backups (0-1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 1000").message("retention.keepLast must be between 0 and 1000"))]
    pub keep_last: Option<i32>,
    /// Keep the newest Complete backup of each of the last N UTC days that have one (0-1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 1000").message("retention.keepDaily must be between 0 and 1000"))]
    pub keep_daily: Option<i32>,
    /// Keep the newest Complete backup of each of the last N ISO weeks (UTC) that have one
    /// (0-1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 1000").message("retention.keepWeekly must be between 0 and 1000"))]
    pub keep_weekly: Option<i32>,
    /// Keep the newest Complete backup of each of the last N months (UTC) that have one
    /// (0-1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 1000").message("retention.keepMonthly must be between 0 and 1000"))]
    pub keep_monthly: Option<i32>,
}

/// Where backups are written.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.s3)").message("destination needs 's3'"))]
pub struct BackupDestination {
    /// An S3 (or S3-compatible) bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<BackupS3>,
}

/// An S3 bucket and prefix for backups.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupS3 {
    /// Bucket name; it must exist.
    #[schemars(length(max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$')").message("bucket must be a valid S3 bucket name (3-63 lower-case letters, digits, '.', '-')"))]
    pub bucket: String,
    /// Key prefix; each backup goes under `<prefix><cloud>/<backup>/`. Empty by default; end it
    /// with '/' to make it a folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    #[x_kube(validation = Rule::new("!self.startsWith('/')").message("prefix must not start with '/'"))]
    #[x_kube(validation = Rule::new("!self.matches('[[:cntrl:]]')").message("prefix must not contain a line break or other control character"))]
    pub prefix: Option<String>,
    /// Endpoint URL of an S3-compatible store (e.g. MinIO, path-style); AWS when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://([-A-Za-z0-9.]+|\\\\[[0-9A-Fa-f:.]+\\\\])(:[0-9]{1,5})?(/[!-~]*)?$')").message("endpoint must be an http(s) URL such as https://s3.example.com:9000: a host name or address, an optional port and path, no spaces, line breaks or user name"))]
    pub endpoint: Option<String>,
    /// AWS region, e.g. "us-east-1" (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z]{2}(-[a-z]+)+-[0-9]+$')").message("region must look like us-east-1"))]
    pub region: Option<String>,
    /// Secret with keys `accessKeyId` and `secretAccessKey`; omit to use the pod's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
}

/// One backup of a cloud. Creating one takes a backup now; the operator also creates them on
/// the cloud's `spec.backup.schedule` (named `<cloud>-<YYYYMMDDHHMM>`).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "insync.dev",
    version = "v1alpha1",
    kind = "InSyncCloudBackup",
    plural = "insynccloudbackups",
    shortname = "iscb",
    category = "insync",
    namespaced,
    status = "InSyncCloudBackupStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Cloud","type":"string","description":"The InSyncCloud backed up","jsonPath":".spec.cloud"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","description":"Pending, Running, Complete or Failed","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Size","type":"integer","description":"Bytes written, manifest included","jsonPath":".status.sizeBytes"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("size(self.metadata.name) <= 56").message("metadata.name must be at most 56 characters: the backup Job is named '<name>-backup'")
)]
#[serde(rename_all = "camelCase")]
pub struct InSyncCloudBackupSpec {
    /// Name of the InSyncCloud in the same namespace to back up. It cannot change.
    #[x_kube(validation = Rule::new("self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self) <= 40").message("cloud must be the name of an InSyncCloud (a DNS label of at most 40 characters)"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("cloud cannot change: create another InSyncCloudBackup"))]
    pub cloud: String,
}

/// What happened to a backup.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct InSyncCloudBackupStatus {
    /// Pending (not started), Running, Complete (every part and the manifest written and read
    /// back) or Failed (see reason; no manifest was written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupPhase>,
    /// When the MySQL dump began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the manifest was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// Where the backup is: `s3://<bucket>/<prefix>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The store the backup was written to and how it was reached, recorded when it started:
    /// a restore that names this backup reads it this way, whatever the restoring cloud's own
    /// settings are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<BackupStore>,
    /// Total bytes of the parts and the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// The parts, as the manifest lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<BackupPart>,
    /// Object key of the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// The sha256 (hex) of manifest.json when the backup completed. A verification, and a
    /// restore that names this backup, refuse a manifest.json that differs: the backup's
    /// prefix no longer holds what was written. Absent for backups taken before it was
    /// recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_sha256: Option<String>,
    /// Why the backup is Pending or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the backup was restored into throwaway datastores and matched its manifest
    /// (`spec.backup.verify` of its cloud).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// The deletion of this backup's files, once it expired (retention, or the
    /// `insync.dev/expired` annotation). The object is deleted only after its files are gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion: Option<FileDeletion>,
}

/// The store a backup was written to (`status.store`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupStore {
    /// OffSite (`spec.backup.destination.s3`), CloudBucket (the cloud's own external
    /// object-store bucket: the backup shares that bucket's fate) or CloudMinio (the cloud's
    /// own MinIO: the backup is lost with the cloud's volumes, and no restore can read it
    /// before that MinIO runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<StoreKind>,
    /// The bucket and how it was reached (endpoint, region, the keys' Secret); unset for a
    /// cloud's MinIO, reached through that cloud's Service and generated Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<BackupS3>,
}

/// Where a backup is kept, relative to the cloud it protects.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// A destination of its own (`spec.backup.destination.s3`).
    OffSite,
    /// The cloud's external object-store bucket.
    CloudBucket,
    /// The cloud's managed MinIO.
    CloudMinio,
}

/// Where the deletion of an expired backup's files stands.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FileDeletion {
    /// Running (a Job deletes the files), Failed (retried), or Refused (the files are not
    /// where the backup says; deleted by hand only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<DeletionPhase>,
    /// When the last attempt began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<Time>,
    /// Attempts so far.
    #[serde(default)]
    pub attempts: i32,
    /// What failed, or why the deletion is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Phase of the deletion of a backup's files.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeletionPhase {
    /// The deletion Job runs.
    Running,
    /// The last attempt failed (see message); it is tried again.
    Failed,
    /// The operator will not delete these files: the backup's recorded location is not where
    /// its cloud's destination puts it now (or it has none). The object stays.
    Refused,
}

/// The result of restoring a backup into throwaway datastores.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Running, Passed or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<VerifyPhase>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// What was restored and counted, or what did not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Phase of a verification.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyPhase {
    /// The verification Job runs.
    Running,
    /// Restored into throwaway datastores; every checksum and row count matched.
    Passed,
    /// Something did not restore or did not match (see message).
    Failed,
}

/// `status.backup` of a cloud.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CloudBackupStatus {
    /// The newest backup of the cloud (scheduled or made by hand), whatever its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<BackupSummary>,
    /// The newest Complete backup of the cloud: what a restore would start from today.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful: Option<BackupSummary>,
    /// When `spec.backup.schedule` takes its next backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_scheduled_time: Option<Time>,
    /// The newest verification of one of the cloud's backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified: Option<LastVerified>,
}

/// One backup of a cloud, as its status names it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupSummary {
    /// The InSyncCloudBackup.
    pub backup: String,
    /// Its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupPhase>,
    /// When it finished, Complete or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
}

/// The newest verification of a cloud's backups.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LastVerified {
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// The InSyncCloudBackup verified.
    pub backup: String,
    /// Passed or Failed.
    pub result: VerifyPhase,
    /// What was checked, or what did not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Phase of a backup.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackupPhase {
    /// Waiting to start (e.g. for its cloud).
    Pending,
    /// The backup Job runs.
    Running,
    /// Every part and the manifest are written and checked.
    Complete,
    /// The backup failed; nothing under its prefix counts as a backup.
    Failed,
}

impl BackupPhase {
    /// Complete and Failed never change again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Complete | Self::Failed)
    }
}

/// One file of a backup.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BackupPart {
    /// File name under the backup's prefix, e.g. `mysql.sql` or `metadata/<table>.jsonl`.
    pub name: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// sha256 of the content, hex.
    pub sha256: String,
    /// Rows (items) exported, for metadata tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
}

impl InSyncCloudBackup {
    /// The backup's namespace, `default` if unset.
    pub fn backup_namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// The backup's name, empty if unset.
    pub fn backup_name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// Its phase, Pending when none is recorded yet.
    pub fn phase(&self) -> BackupPhase {
        self.status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or(BackupPhase::Pending)
    }
}

/// `spec.restore` of a new `InSyncCloud`: start its datastores from a backup. The operator
/// checks the backup's manifest and every part's checksum first (a wrong one refuses the
/// restore and starts nothing), restores MySQL and the metadata store before CloudMaster and
/// the nodes are created, and records the restore in `status.restore`: it happens once, never
/// again over live data. Exactly one of `backup` or `s3`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.backup) != has(self.s3)").message("restore needs exactly one of 'backup' or 's3'"))]
pub struct RestoreSpec {
    /// Name of a Complete `InSyncCloudBackup` in this namespace. It is read through this
    /// cloud's `spec.backup.destination` (endpoint, region, keys), or this cloud's own object
    /// store when that is unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("backup must be the name of an InSyncCloudBackup: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"))]
    pub backup: Option<String>,
    /// Where a backup is, from its location alone (another namespace or cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<RestoreS3>,
}

/// A backup's location in an S3 (or S3-compatible) bucket.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreS3 {
    /// Bucket name.
    #[schemars(length(max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$')").message("bucket must be a valid S3 bucket name (3-63 lower-case letters, digits, '.', '-')"))]
    pub bucket: String,
    /// The backup's own prefix, the folder holding its `manifest.json`, e.g.
    /// "clouds/fcloud/nightly/" (an InSyncCloudBackup's `status.location` without the bucket).
    #[schemars(length(max = 1024))]
    #[x_kube(validation = Rule::new("self.endsWith('/') && !self.startsWith('/')").message("prefix must end with '/' and not start with '/'"))]
    #[x_kube(validation = Rule::new("!self.matches('[[:cntrl:]]')").message("prefix must not contain a line break or other control character"))]
    pub prefix: String,
    /// Endpoint URL of an S3-compatible store (e.g. MinIO, path-style); AWS when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://([-A-Za-z0-9.]+|\\\\[[0-9A-Fa-f:.]+\\\\])(:[0-9]{1,5})?(/[!-~]*)?$')").message("endpoint must be an http(s) URL such as https://s3.example.com:9000: a host name or address, an optional port and path, no spaces, line breaks or user name"))]
    pub endpoint: Option<String>,
    /// AWS region, e.g. "us-east-1" (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z]{2}(-[a-z]+)+-[0-9]+$')").message("region must look like us-east-1"))]
    pub region: Option<String>,
    /// Secret with keys `accessKeyId` and `secretAccessKey`; omit to use the pod's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
}

/// `status.restore` of a cloud created with `spec.restore`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    /// Checking (the manifest and every part's checksum; nothing runs yet), Restoring (the
    /// datastores run and the restore Job loads them), Complete (the rest of the cloud starts)
    /// or Failed (see message; CloudMaster and the nodes are never started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RestorePhase>,
    /// The backup restored: `s3://<bucket>/<prefix>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// When the check began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the restore finished or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// What is happening now, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Phase of a restore.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestorePhase {
    /// The backup's manifest and checksums are being checked; nothing of the cloud runs.
    Checking,
    /// The datastores run and are being loaded; CloudMaster and the nodes wait.
    Restoring,
    /// Restored; the cloud starts as usual. Never restored again.
    Complete,
    /// Refused or failed; nothing beyond the datastores was started.
    Failed,
}
