//! What the Job runner and the operator exchange, in one place both sides import.
//!
//! The runner ([`crate::runner`]: `insync-operator backup-run`, `restore-run`, `backup-delete`
//! inside the Jobs) writes; the operator ([`crate::render`], which builds the Jobs, and
//! [`crate::controller`], which reads how they ended) reads. Neither side imports the other:
//! both import this module. It holds
//! - a backup's layout under its prefix: the file names ([`MANIFEST`], [`MYSQL_DUMP`],
//!   [`items_part`], [`schema_part`]), [`Manifest`] and its [`FORMAT`];
//! - the file a restore's `fetch` step leaves for the MySQL step ([`MYSQL_ROWS_FILE`]);
//! - each runner's report, its container's termination message: [`Report`],
//!   [`RestoreReport`], [`DeleteReport`].
//!
//! The runner's flags are the third part of the contract; they are the runner's own clap
//! types, and render's tests parse what render gives the runner with them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::BackupPart;

/// File name of the manifest under the backup's prefix.
pub const MANIFEST: &str = "manifest.json";
/// Version of the manifest's layout.
pub const FORMAT: u32 = 1;
/// The MySQL dump's part (and its file name in a restore's work dir).
pub const MYSQL_DUMP: &str = "mysql.sql";
/// Kubernetes keeps at most this many bytes of a container's termination message.
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// The part holding a metadata table's items.
pub fn items_part(table: &str) -> String {
    format!("metadata/{table}.jsonl")
}

/// The table whose items `part` holds, when it is an [`items_part`].
pub fn items_table(part: &str) -> Option<&str> {
    part.strip_prefix("metadata/")?.strip_suffix(".jsonl")
}

/// The part holding a metadata table's keys, to create it again.
pub fn schema_part(table: &str) -> String {
    format!("metadata/{table}.schema.json")
}

/// `manifest.json`: what a backup holds. Written after every part is uploaded and read back, so
/// a prefix without it is no backup.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The inSync release the cloud ran when the dump was taken: its `status.currentVersion`
    /// (what every component runs), `spec.version` before it has one.
    pub insync_version: String,
    /// When the MySQL dump began (RFC 3339, UTC).
    pub started_at: String,
    /// When the last part was uploaded (RFC 3339, UTC).
    pub completed_at: String,
    /// `s3://<bucket>/<prefix>`.
    pub location: String,
    /// Every part: name under the prefix, size, sha256, rows (metadata tables).
    pub parts: Vec<BackupPart>,
    /// Rows of each MySQL table in `mysql.sql`, counted by the runner from the dump itself (its
    /// one snapshot). A verification or restore counts them again after loading. Absent in
    /// manifests written before it existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mysql_rows: BTreeMap<String, i64>,
    /// The `InSyncCloudBackup` that wrote this manifest. A run of another backup finding it
    /// refuses to write over it, a deletion by another backup leaves it, and a verification or
    /// restore by name refuses it. Absent in manifests written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<Writer>,
    /// When the metadata store's export began and ended. The export is a paginated Scan of
    /// each table, not a snapshot: an item written during this window may or may not be in
    /// the backup, and the MySQL dump (one snapshot, at `startedAt`) is older than all of it.
    /// Absent in manifests written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_export: Option<ExportWindow>,
}

/// Which `InSyncCloudBackup` wrote a manifest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Writer {
    /// The backup's namespace.
    pub namespace: String,
    /// The backup's name.
    pub name: String,
    /// The backup's `metadata.uid`: a backup deleted and created again under the same name is
    /// another backup.
    pub uid: String,
}

impl std::fmt::Display for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "backup {}/{} (uid {})",
            self.namespace, self.name, self.uid
        )
    }
}

/// When a step of a backup began and ended (RFC 3339, UTC).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExportWindow {
    /// When it began.
    pub started_at: String,
    /// When it ended.
    pub completed_at: String,
}

/// File the `fetch` step writes beside the parts: one `<table>\t<rows>` line per MySQL table
/// of the manifest, read by the MySQL step to count the tables again after loading.
pub const MYSQL_ROWS_FILE: &str = "mysql-rows.tsv";

/// The [`MYSQL_ROWS_FILE`] of `manifest`. A table name is put into a shell loop and a SQL
/// identifier, so one that is not `[A-Za-z0-9_$]+` is refused rather than quoted.
pub fn mysql_rows_file(manifest: &Manifest) -> Result<String, String> {
    let mut text = String::new();
    for (table, rows) in &manifest.mysql_rows {
        let plain = !table.is_empty()
            && table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
        if !plain {
            return Err(format!(
                "MySQL table name {table:?}: only letters, digits, '_' and '$' are checked"
            ));
        }
        text.push_str(&format!("{table}\t{rows}\n"));
    }
    Ok(text)
}

/// What `backup-run` tells the controller in its termination message: the manifest, where it
/// is and the backup's total size. Parts are left out when they would not fit.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Object key of the manifest.
    pub manifest_key: String,
    /// Bytes of every part plus the manifest.
    pub size_bytes: i64,
    /// The manifest (with `parts` emptied when `parts_omitted`).
    pub manifest: Manifest,
    /// True when the parts did not fit in the termination message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub parts_omitted: bool,
    /// sha256 (hex) of the exact bytes of `manifest.json` as uploaded. Empty from a runner
    /// older than it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub manifest_sha256: String,
}

impl Report {
    /// The report as one JSON line of at most [`TERMINATION_MESSAGE_LIMIT`] bytes.
    pub fn to_message(&self) -> String {
        let full = serde_json::to_string(self).unwrap_or_default();
        if full.len() <= TERMINATION_MESSAGE_LIMIT {
            return full;
        }
        let mut brief = self.clone();
        brief.manifest.parts.clear();
        brief.manifest.mysql_rows.clear();
        brief.parts_omitted = true;
        serde_json::to_string(&brief).unwrap_or_default()
    }
}

/// What a successful `restore-run` step reports (its termination message): a restore's and a
/// verification's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    /// Parts checked (`check`, `fetch`), or restored (`metadata`, the last step: every part of
    /// the backup, the MySQL dump loaded before it included).
    pub parts: usize,
    /// Bytes of those parts.
    pub size_bytes: i64,
    /// Metadata items restored (step `metadata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
    /// Metadata tables restored (step `metadata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_tables: Option<usize>,
    /// MySQL rows the manifest counts, which the MySQL step counted again after loading
    /// (step `metadata`; absent for a manifest without row counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql_rows: Option<i64>,
    /// MySQL tables those rows are in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql_tables: Option<usize>,
    /// The inSync release the backup was taken from.
    pub insync_version: String,
    /// When the backup began.
    pub backup_started_at: String,
}

impl RestoreReport {
    /// What was restored, for a person: "3 parts (2923 bytes): mysql.sql (4 rows in 2 tables),
    /// 3 metadata items in 1 tables".
    pub fn restored(&self) -> String {
        let mysql = match (self.mysql_rows, self.mysql_tables) {
            (Some(rows), Some(tables)) => format!("{MYSQL_DUMP} ({rows} rows in {tables} tables)"),
            _ => MYSQL_DUMP.to_owned(),
        };
        format!(
            "{} parts ({} bytes): {mysql}, {} metadata items in {} tables",
            self.parts,
            self.size_bytes,
            self.rows.unwrap_or_default(),
            self.metadata_tables.unwrap_or_default()
        )
    }
}

/// What `backup-delete` removed (its termination message).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeleteReport {
    /// Objects deleted.
    pub objects: usize,
    /// Their bytes.
    pub size_bytes: i64,
    /// Whether the prefix held a manifest (a Complete backup) when the deletion began.
    pub had_manifest: bool,
}

/// For tests on either side: a manifest of format [`FORMAT`] with `parts` metadata items
/// parts of one byte each.
#[cfg(test)]
pub(crate) fn sample_manifest(parts: usize) -> Manifest {
    Manifest {
        format: FORMAT,
        insync_version: "5.9.1-r4178".to_owned(),
        started_at: "2026-11-28T19:00:00Z".to_owned(),
        completed_at: "2026-11-28T19:00:05Z".to_owned(),
        location: "s3://insync/insync-backups/c/b/".to_owned(),
        parts: (0..parts)
            .map(|i| BackupPart {
                name: items_part(&format!("table-{i}")),
                size_bytes: 1,
                sha256: "00".to_owned(),
                rows: None,
            })
            .collect(),
        mysql_rows: BTreeMap::new(),
        writer: None,
        metadata_export: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(parts: usize) -> Report {
        Report {
            manifest_key: "insync-backups/c/b/manifest.json".to_owned(),
            size_bytes: 10,
            manifest: sample_manifest(parts),
            parts_omitted: false,
            manifest_sha256: "ab".repeat(32),
        }
    }

    #[test]
    fn the_row_file_lists_each_table_and_refuses_names_a_shell_would_read() {
        let mut manifest = sample_manifest(0);
        manifest.mysql_rows = BTreeMap::from([
            ("catalogue".to_owned(), 1_000_000),
            ("markers".to_owned(), 3),
        ]);
        assert_eq!(
            mysql_rows_file(&manifest).as_deref(),
            Ok("catalogue\t1000000\nmarkers\t3\n")
        );
        manifest.mysql_rows.insert("x`; DROP".to_owned(), 1);
        assert!(mysql_rows_file(&manifest).is_err());
    }

    #[test]
    fn a_report_fits_the_termination_message_and_says_when_parts_were_left_out() {
        let small = report(3);
        let message = small.to_message();
        let back: Report = serde_json::from_str(&message).expect("parses");
        assert_eq!(back, small);

        let big = report(200);
        let message = big.to_message();
        assert!(
            message.len() <= TERMINATION_MESSAGE_LIMIT,
            "{}",
            message.len()
        );
        let back: Report = serde_json::from_str(&message).expect("parses");
        assert!(back.parts_omitted);
        assert!(back.manifest.parts.is_empty());
        assert_eq!(back.size_bytes, big.size_bytes);
    }

    #[test]
    fn a_manifest_without_writer_or_export_window_still_parses_and_a_new_one_round_trips() {
        let old = r#"{"format":1,"insyncVersion":"5.9.1-r4178","startedAt":"2026-11-28T19:00:00Z",
            "completedAt":"2026-11-28T19:00:05Z","location":"s3://insync/p/","parts":[]}"#;
        let manifest: Manifest = serde_json::from_str(old).expect("an old manifest parses");
        assert_eq!(manifest.writer, None);
        assert_eq!(manifest.metadata_export, None);
        let text = serde_json::to_string(&manifest).expect("serializes");
        assert!(
            !text.contains("writer") && !text.contains("metadataExport"),
            "{text}"
        );

        let mut new = sample_manifest(1);
        new.writer = Some(Writer {
            namespace: "fcloud".to_owned(),
            name: "nightly".to_owned(),
            uid: "uid-1".to_owned(),
        });
        new.metadata_export = Some(ExportWindow {
            started_at: "2026-11-28T19:00:01Z".to_owned(),
            completed_at: "2026-11-28T19:00:04Z".to_owned(),
        });
        let text = serde_json::to_string(&new).expect("serializes");
        assert!(
            text.contains(r#""writer":{"namespace":"fcloud","name":"nightly","uid":"uid-1"}"#)
                && text.contains(r#""metadataExport":{"startedAt":"#),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<Manifest>(&text).expect("parses"),
            new
        );
        assert_eq!(
            new.writer.expect("writer").to_string(),
            "backup fcloud/nightly (uid uid-1)"
        );
    }

    #[test]
    fn a_report_without_the_manifests_sha256_still_parses() {
        let mut value = serde_json::to_value(report(1)).expect("value");
        assert!(value.get("manifestSha256").is_some());
        value
            .as_object_mut()
            .expect("object")
            .remove("manifestSha256");
        let back: Report = serde_json::from_value(value).expect("an old report parses");
        assert_eq!(back.manifest_sha256, "");
    }

    #[test]
    fn an_items_part_names_its_table() {
        assert_eq!(items_table(&items_part("t")), Some("t"));
        assert_eq!(items_table(&schema_part("t")), None);
        assert_eq!(items_table(MYSQL_DUMP), None);
    }
}
