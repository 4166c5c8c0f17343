//! The runner's checks on a backup (pure): whether what was uploaded is what was meant to be,
//! whether what was read back is what the manifest says, and whether a manifest describes a
//! backup this operator can restore. The manifest itself and the file names are in
//! [`crate::contract`].

use std::io::Read;

use sha2::{Digest, Sha256};

use crate::api::BackupPart;
use crate::contract::{FORMAT, MYSQL_DUMP, Manifest, items_table, schema_part};

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

/// Size and sha256 (hex) of everything `reader` yields, with the sha256 of every `chunk` bytes
/// of it (the last chunk shorter), in one read: the checksums of a multipart upload's chunks.
pub fn digest_chunks(
    mut reader: impl Read,
    chunk: u64,
) -> std::io::Result<(i64, String, Vec<String>)> {
    let mut whole = Sha256::new();
    let mut piece = Sha256::new();
    let mut in_piece: u64 = 0;
    let mut pieces = Vec::new();
    let mut buffer = vec![0; 64 * 1024];
    let mut size: i64 = 0;
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        let mut rest = &buffer[..n];
        while !rest.is_empty() {
            let take = rest
                .len()
                .min(usize::try_from(chunk - in_piece).unwrap_or(usize::MAX));
            piece.update(&rest[..take]);
            in_piece += take as u64;
            rest = &rest[take..];
            if in_piece == chunk {
                pieces.push(hex(&std::mem::take(&mut piece).finalize()));
                in_piece = 0;
            }
        }
        whole.update(&buffer[..n]);
        size += n as i64;
    }
    if in_piece > 0 {
        pieces.push(hex(&piece.finalize()));
    }
    Ok((size, hex(&whole.finalize()), pieces))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of `x-amz-checksum-sha256` for a sha256 given in hex (as [`digest`] gives it):
/// base64 of the 32 raw bytes. `None` when `sha256_hex` is not 64 hex digits.
pub fn checksum_sha256(sha256_hex: &str) -> Option<String> {
    if sha256_hex.len() != 64 || !sha256_hex.is_ascii() {
        return None;
    }
    let raw = (0..sha256_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&sha256_hex[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(aws_smithy_types::base64::encode(raw))
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
    compare(parts, stored, |part, stored| match *stored {
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
    compare(parts, found, |part, found| {
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
}

/// Each part beside what was found of it (in the same order), through `problem`: every
/// problem found, or `Ok` when there is none.
fn compare<F, P>(
    parts: &[BackupPart],
    found: &[F],
    problem: impl Fn(&BackupPart, &F) -> Option<P>,
) -> Result<(), Vec<P>> {
    let problems: Vec<P> = parts
        .iter()
        .zip(found)
        .filter_map(|(part, found)| problem(part, found))
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
            let name = items_table(&part.name)?;
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
    if !names.contains(&MYSQL_DUMP) {
        return Err(format!("no {MYSQL_DUMP} part"));
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

    fn restorable_manifest() -> Manifest {
        let mut manifest = crate::contract::sample_manifest(0);
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
    fn the_upload_checksum_is_base64_of_the_raw_sha256() {
        let (_, sha) = digest(&b"abc"[..]).expect("reads");
        // `printf abc | openssl dgst -sha256 -binary | base64`
        assert_eq!(
            checksum_sha256(&sha).as_deref(),
            Some("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=")
        );
        for bad in ["", "00", &"g".repeat(64), &"é".repeat(32)] {
            assert_eq!(checksum_sha256(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn chunk_digests_are_each_chunks_sha256_and_the_whole_stays_the_files() {
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (size, whole, chunks) = digest_chunks(&content[..], 70_000).expect("reads");
        assert_eq!((size, whole), digest(&content[..]).expect("reads"));
        let expected: Vec<String> = content
            .chunks(70_000)
            .map(|c| digest(c).expect("reads").1)
            .collect();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks, expected);
        // A size that is a whole number of chunks has no empty last chunk.
        let (_, _, chunks) = digest_chunks(&content[..140_000], 70_000).expect("reads");
        assert_eq!(chunks.len(), 2);
        let (_, _, chunks) = digest_chunks(&[][..], 70_000).expect("reads");
        assert!(chunks.is_empty());
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
}
