//! The manifest a backup writes last, what a finished runner reports to the controller, and the
//! checks that decide whether what was uploaded is what was meant to be (pure).

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::BackupPart;

/// File name of the manifest under the backup's prefix.
pub const MANIFEST: &str = "manifest.json";
/// Version of the manifest's layout.
pub const FORMAT: u32 = 1;
/// Kubernetes keeps at most this many bytes of a container's termination message.
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// `manifest.json`: what a backup holds. Written after every part is uploaded and read back, so
/// a prefix without it is no backup.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The inSync release the cloud ran (`spec.version`).
    pub insync_version: String,
    /// When the MySQL dump began (RFC 3339, UTC).
    pub started_at: String,
    /// When the last part was uploaded (RFC 3339, UTC).
    pub completed_at: String,
    /// `s3://<bucket>/<prefix>`.
    pub location: String,
    /// Every part: name under the prefix, size, sha256, rows (metadata tables).
    pub parts: Vec<BackupPart>,
    /// Rows of each MySQL table in `mysql.sql`, counted from the dump (its one snapshot; see
    /// [`super::dump_rows`]). A verification or restore counts them again after loading.
    /// Absent in manifests written before it existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mysql_rows: BTreeMap<String, i64>,
}

/// What the runner tells the controller in its termination message: the manifest, where it is
/// and the backup's total size. Parts are left out when they would not fit.
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

/// Size and sha256 (hex) of everything `reader` yields.
pub fn digest(mut reader: impl Read) -> std::io::Result<(i64, String)> {
    let mut hash = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    let mut size: i64 = 0;
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hash.update(&buffer[..n]);
        size += n as i64;
    }
    Ok((size, hex(&hash.finalize())))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A part whose stored object does not match what was uploaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Mismatch {
    /// HEAD found no object.
    #[error("{name}: not found after upload")]
    Missing {
        /// Part name.
        name: String,
    },
    /// The stored object has another size.
    #[error("{name}: stored {stored} bytes, uploaded {uploaded}")]
    Size {
        /// Part name.
        name: String,
        /// Size HEAD reports.
        stored: i64,
        /// Size uploaded.
        uploaded: i64,
    },
}

/// Compares each part with what HEAD found (`None`: no object).
pub fn check_stored(parts: &[BackupPart], stored: &[Option<i64>]) -> Result<(), Vec<Mismatch>> {
    let problems: Vec<Mismatch> = parts
        .iter()
        .zip(stored)
        .filter_map(|(part, stored)| match *stored {
            None => Some(Mismatch::Missing {
                name: part.name.clone(),
            }),
            Some(size) if size != part.size_bytes => Some(Mismatch::Size {
                name: part.name.clone(),
                stored: size,
                uploaded: part.size_bytes,
            }),
            Some(_) => None,
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The part holding a metadata table's items.
pub fn items_part(table: &str) -> String {
    format!("metadata/{table}.jsonl")
}

/// The part holding a metadata table's keys, to create it again.
pub fn schema_part(table: &str) -> String {
    format!("metadata/{table}.schema.json")
}

/// A part that is not what the manifest says it is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PartProblem {
    /// No such object.
    #[error("{name}: missing")]
    Missing {
        /// Part name.
        name: String,
    },
    /// Another size.
    #[error("{name}: {found} bytes, the manifest says {expected}")]
    Size {
        /// Part name.
        name: String,
        /// Bytes read.
        found: i64,
        /// Bytes in the manifest.
        expected: i64,
    },
    /// Same size, other content.
    #[error("{name}: sha256 {found}, the manifest says {expected}")]
    Checksum {
        /// Part name.
        name: String,
        /// sha256 of what was read.
        found: String,
        /// sha256 in the manifest.
        expected: String,
    },
}

/// Compares each part with what was read back (`None`: no object; else size and sha256).
pub fn verify_parts(
    parts: &[BackupPart],
    found: &[Option<(i64, String)>],
) -> Result<(), Vec<PartProblem>> {
    let problems: Vec<PartProblem> = parts
        .iter()
        .zip(found)
        .filter_map(|(part, found)| {
            let name = part.name.clone();
            match found {
                None => Some(PartProblem::Missing { name }),
                Some((size, _)) if *size != part.size_bytes => Some(PartProblem::Size {
                    name,
                    found: *size,
                    expected: part.size_bytes,
                }),
                Some((_, sha)) if *sha != part.sha256 => Some(PartProblem::Checksum {
                    name,
                    found: sha.clone(),
                    expected: part.sha256.clone(),
                }),
                Some(_) => None,
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// One metadata table of a backup: its name, parts and rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableParts {
    /// Table name.
    pub name: String,
    /// Part holding the items.
    pub items: String,
    /// Part holding the keys.
    pub schema: String,
    /// Items the backup holds.
    pub rows: i64,
}

/// The metadata tables a manifest lists, in its order.
pub fn tables(manifest: &Manifest) -> Vec<TableParts> {
    manifest
        .parts
        .iter()
        .filter_map(|part| {
            let name = part
                .name
                .strip_prefix("metadata/")?
                .strip_suffix(".jsonl")?;
            Some(TableParts {
                name: name.to_owned(),
                items: part.name.clone(),
                schema: schema_part(name),
                rows: part.rows.unwrap_or_default(),
            })
        })
        .collect()
}

/// Whether a manifest describes a backup this operator can restore: its format, a MySQL dump,
/// a schema for every metadata table, and part names that stay inside the backup's folder
/// (they become file names in the restore's work dir).
pub fn restorable(manifest: &Manifest) -> Result<(), String> {
    if manifest.format != FORMAT {
        return Err(format!(
            "format {} (this operator restores format {FORMAT})",
            manifest.format
        ));
    }
    for part in &manifest.parts {
        let name = &part.name;
        let inside = !name.is_empty()
            && !name.starts_with('/')
            && name
                .split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
        if !inside {
            return Err(format!("part name {name:?} is not a file under the backup"));
        }
        if part.sha256.len() != 64 {
            return Err(format!("part {name} has no sha256"));
        }
    }
    let names: Vec<&str> = manifest.parts.iter().map(|p| p.name.as_str()).collect();
    if !names.contains(&"mysql.sql") {
        return Err("no mysql.sql part".to_owned());
    }
    for table in tables(manifest) {
        if !names.contains(&table.schema.as_str()) {
            return Err(format!("table {} has no {} part", table.name, table.schema));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(name: &str, size: i64) -> BackupPart {
        BackupPart {
            name: name.to_owned(),
            size_bytes: size,
            sha256: "00".to_owned(),
            rows: None,
        }
    }

    fn report(parts: usize) -> Report {
        Report {
            manifest_key: "insync-backups/c/b/manifest.json".to_owned(),
            size_bytes: 10,
            manifest: Manifest {
                format: FORMAT,
                insync_version: "5.9.1-r4178".to_owned(),
                started_at: "2026-11-28T19:00:00Z".to_owned(),
                completed_at: "2026-11-28T19:00:05Z".to_owned(),
                location: "s3://insync/insync-backups/c/b/".to_owned(),
                parts: (0..parts)
                    .map(|i| part(&format!("metadata/table-{i}.jsonl"), 1))
                    .collect(),
                mysql_rows: BTreeMap::new(),
            },
            parts_omitted: false,
        }
    }

    #[test]
    fn the_row_file_lists_each_table_and_refuses_names_a_shell_would_read() {
        let mut manifest = report(0).manifest;
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

    fn restorable_manifest() -> Manifest {
        let mut manifest = report(0).manifest;
        let part = |name: &str, rows| BackupPart {
            name: name.to_owned(),
            size_bytes: 3,
            sha256: "a".repeat(64),
            rows,
        };
        manifest.parts = vec![
            part("mysql.sql", None),
            part("metadata/t.schema.json", None),
            part("metadata/t.jsonl", Some(2)),
        ];
        manifest
    }

    #[test]
    fn a_manifest_is_restorable_with_a_dump_and_a_schema_for_every_table() {
        let manifest = restorable_manifest();
        assert_eq!(restorable(&manifest), Ok(()));
        assert_eq!(
            tables(&manifest),
            [TableParts {
                name: "t".to_owned(),
                items: "metadata/t.jsonl".to_owned(),
                schema: "metadata/t.schema.json".to_owned(),
                rows: 2
            }]
        );
        let mut no_schema = manifest.clone();
        no_schema.parts.remove(1);
        assert!(
            restorable(&no_schema)
                .unwrap_err()
                .contains("no metadata/t.schema.json")
        );
        let mut no_dump = manifest.clone();
        no_dump.parts.remove(0);
        assert_eq!(restorable(&no_dump), Err("no mysql.sql part".to_owned()));
        let mut newer = manifest.clone();
        newer.format = FORMAT + 1;
        assert!(restorable(&newer).is_err());
    }

    #[test]
    fn a_part_name_may_not_leave_the_backups_folder() {
        for name in ["../x", "/etc/passwd", "metadata/../../x", "a//b", ""] {
            let mut manifest = restorable_manifest();
            manifest.parts[1].name = name.to_owned();
            assert!(restorable(&manifest).is_err(), "{name:?} was accepted");
        }
    }

    #[test]
    fn every_part_must_read_back_with_its_size_and_checksum() {
        let manifest = restorable_manifest();
        let good = || Some((3, "a".repeat(64)));
        assert_eq!(
            verify_parts(&manifest.parts, &[good(), good(), good()]),
            Ok(())
        );
        assert_eq!(
            verify_parts(
                &manifest.parts,
                &[None, Some((4, "a".repeat(64))), Some((3, "b".repeat(64)))]
            ),
            Err(vec![
                PartProblem::Missing {
                    name: "mysql.sql".to_owned()
                },
                PartProblem::Size {
                    name: "metadata/t.schema.json".to_owned(),
                    found: 4,
                    expected: 3
                },
                PartProblem::Checksum {
                    name: "metadata/t.jsonl".to_owned(),
                    found: "b".repeat(64),
                    expected: "a".repeat(64)
                },
            ])
        );
    }

    #[test]
    fn digest_is_the_sha256_and_length_of_the_content() {
        let (size, sha) = digest(&b"abc"[..]).expect("reads");
        assert_eq!(size, 3);
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn stored_parts_must_exist_with_the_uploaded_size() {
        let parts = [
            part("mysql.sql", 10),
            part("a.jsonl", 5),
            part("b.jsonl", 7),
        ];
        assert_eq!(check_stored(&parts, &[Some(10), Some(5), Some(7)]), Ok(()));
        assert_eq!(
            check_stored(&parts, &[Some(10), None, Some(6)]),
            Err(vec![
                Mismatch::Missing {
                    name: "a.jsonl".to_owned()
                },
                Mismatch::Size {
                    name: "b.jsonl".to_owned(),
                    stored: 6,
                    uploaded: 7
                },
            ])
        );
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
}
