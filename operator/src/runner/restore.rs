//! `insync-operator restore-run`: the steps of a restore, each run in a Job the operator owns
//! (rendered by [`crate::render::restore`]).
//!
//! - `check`: reads `manifest.json` and every part, and compares each part's size and sha256
//!   with the manifest. Nothing is written anywhere; the operator starts nothing of the cloud
//!   before this passed. Given what the backup recorded when it completed
//!   (`--manifest-sha256`, `--backup-uid`), a manifest that is not that one is refused first.
//! - `fetch`: the same check, keeping the parts in the Job's emptyDir (a part is only loaded
//!   from what was checked, so a part changed between the two Jobs is caught too).
//! - `metadata`: creates each metadata-store table from its schema and writes its items back,
//!   then counts them against the manifest's rows.
//!
//! MySQL is loaded between `fetch` and `metadata` by the MySQL image's own client.

use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::AggregatedBytes;
use tracing::info;

use super::import::{self, TableSchema};
use super::manifest::{self, PartProblem};
use super::{METADATA_KEYS, RunError, TERMINATION_LOG, keys, s3_error, transfer};
use crate::contract::{self, MANIFEST, Manifest, RestoreReport};

/// Which step of a restore to run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Check the manifest and every part; write nothing.
    Check,
    /// Check, keeping the parts in `--work-dir`.
    Fetch,
    /// Load the metadata store from the parts in `--work-dir`.
    Metadata,
}

/// Flags of `insync-operator restore-run` (rendered by `render::restore`).
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct RestoreArgs {
    /// The step to run.
    #[arg(long, value_enum)]
    pub step: Step,
    /// The backup.
    #[command(flatten)]
    pub store: super::StoreArgs,
    /// DynamoDB-compatible endpoint of the metadata store (step `metadata`).
    #[arg(long)]
    pub metadata_endpoint: Option<String>,
    /// Region of the metadata store (step `metadata`).
    #[arg(long)]
    pub metadata_region: Option<String>,
    /// Where `fetch` keeps the parts and `metadata` reads them.
    #[arg(long, default_value = "/restore")]
    pub work_dir: PathBuf,
    /// The sha256 (hex) of manifest.json the backup recorded when it completed (steps `check`
    /// and `fetch`): a manifest with other bytes is refused.
    #[arg(long)]
    pub manifest_sha256: Option<String>,
    /// The uid of the backup object being restored or verified (steps `check` and `fetch`): a
    /// manifest that names another writer is refused.
    #[arg(long)]
    pub backup_uid: Option<String>,
}

/// Why a restore step failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] RunError),
    /// There is no manifest: the location holds no (complete) backup.
    #[error("no {MANIFEST} at s3://{bucket}/{key}: not a complete backup")]
    NoManifest {
        /// Bucket.
        bucket: String,
        /// Manifest key.
        key: String,
    },
    /// The manifest is not one this operator can restore.
    #[error("manifest: {0}")]
    Manifest(String),
    /// The manifest is not the one the backup recorded, or another backup wrote it.
    #[error("{0}")]
    NotRecorded(String),
    /// A range of a part read in ranges could not be read.
    #[error("{range}: {}", super::error_chain(.source))]
    Range {
        /// Which range: `range 3 of 17 (bytes …)`.
        range: String,
        /// Why.
        #[source]
        source: RunError,
    },
    /// Parts differ from the manifest.
    #[error("the backup does not match its manifest: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Parts(Vec<PartProblem>),
    /// The metadata store could not be loaded.
    #[error("metadata store: {0}")]
    Import(#[from] import::ImportError),
    /// A table holds another number of items than the manifest says.
    #[error("table {table}: {found} items after the restore, the manifest says {expected}")]
    Rows {
        /// Table.
        table: String,
        /// Items counted.
        found: i64,
        /// Rows in the manifest.
        expected: i64,
    },
}

/// Runs one step.
pub async fn run(args: RestoreArgs) -> Result<RestoreReport, RestoreError> {
    let report = match args.step {
        Step::Check => check(&args, None).await?,
        Step::Fetch => check(&args, Some(&args.work_dir)).await?,
        Step::Metadata => load_metadata(&args).await?,
    };
    // Best effort: outside a pod there is no termination log.
    let _ = std::fs::write(
        TERMINATION_LOG,
        serde_json::to_string(&report).unwrap_or_default(),
    );
    Ok(report)
}

async fn check(args: &RestoreArgs, keep: Option<&Path>) -> Result<RestoreReport, RestoreError> {
    let s3 = super::s3_client(&args.store).await;
    let manifest_key = format!("{}{MANIFEST}", args.store.prefix);
    let body = match s3
        .get_object()
        .bucket(&args.store.bucket)
        .key(&manifest_key)
        .send()
        .await
    {
        Ok(found) => found
            .body
            .collect()
            .await
            .map_err(|e| s3_error("read", &args.store.bucket, &manifest_key, e))?
            .into_bytes(),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
            return Err(RestoreError::NoManifest {
                bucket: args.store.bucket.clone(),
                key: manifest_key,
            });
        }
        Err(e) => return Err(s3_error("GET", &args.store.bucket, &manifest_key, e).into()),
    };
    let sha256 = manifest::digest(&body[..])
        .map_err(|e| file(Path::new(MANIFEST), e))?
        .1;
    let manifest: Manifest = serde_json::from_slice(&body)
        .map_err(|e| RestoreError::Manifest(format!("unreadable: {e}")))?;
    recorded(
        &sha256,
        &manifest,
        args.manifest_sha256.as_deref(),
        args.backup_uid.as_deref(),
    )
    .map_err(RestoreError::NotRecorded)?;
    manifest::restorable(&manifest).map_err(RestoreError::Manifest)?;
    if let Some(dir) = keep {
        std::fs::create_dir_all(dir.join("metadata")).map_err(|e| file(dir, e))?;
        std::fs::write(dir.join(MANIFEST), &body).map_err(|e| file(dir, e))?;
        let rows = contract::mysql_rows_file(&manifest).map_err(RestoreError::Manifest)?;
        std::fs::write(dir.join(contract::MYSQL_ROWS_FILE), rows).map_err(|e| file(dir, e))?;
    }

    let mut found = Vec::new();
    for part in &manifest.parts {
        let key = format!("{}{}", args.store.prefix, part.name);
        let target = keep.map(|dir| dir.join(&part.name));
        let digest = fetch_part(
            &s3,
            &args.store.bucket,
            &key,
            u64::try_from(part.size_bytes).unwrap_or_default(),
            target.as_deref(),
        )
        .await?;
        info!(part = %part.name, ?digest, "checked");
        found.push(digest);
    }
    manifest::verify_parts(&manifest.parts, &found).map_err(RestoreError::Parts)?;
    Ok(RestoreReport {
        parts: manifest.parts.len(),
        size_bytes: manifest.parts.iter().map(|p| p.size_bytes).sum(),
        rows: None,
        metadata_tables: None,
        mysql_rows: None,
        mysql_tables: None,
        insync_version: manifest.insync_version,
        backup_started_at: manifest.started_at,
    })
}

/// Whether a manifest (its bytes' sha256, and what it says) is the one the backup recorded
/// (pure): the same sha256 when one was recorded (`recorded_sha256`), and no other writer than
/// the backup (`uid`). A manifest naming no writer (written before manifests did) passes the
/// second check: only the sha256 can tell it apart.
fn recorded(
    sha256: &str,
    manifest: &Manifest,
    recorded_sha256: Option<&str>,
    uid: Option<&str>,
) -> Result<(), String> {
    if let Some(recorded) = recorded_sha256
        && !recorded.eq_ignore_ascii_case(sha256)
    {
        return Err(format!(
            "{MANIFEST} is not the one this backup recorded when it completed: sha256 {sha256}, recorded {recorded}"
        ));
    }
    if let (Some(uid), Some(writer)) = (uid, manifest.writer.as_ref())
        && writer.uid != uid
    {
        return Err(format!(
            "{MANIFEST} was written by {writer}, not by this backup (uid {uid})"
        ));
    }
    Ok(())
}

/// Reads the part at `key` through sha256 (and into `target`, when given): its (size, sha256),
/// `None` when there is no such object. A part the manifest says is small (`expected_size` up
/// to [`transfer::DOWNLOAD_THRESHOLD`]) is read with one GET; a larger one is HEADed for its
/// stored size and ETag, then read in ranges ([`read_ranges`]).
async fn fetch_part(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    expected_size: u64,
    target: Option<&Path>,
) -> Result<Option<(i64, String)>, RestoreError> {
    if transfer::download_ranges(expected_size).is_some() {
        let stored = match s3.head_object().bucket(bucket).key(key).send().await {
            Ok(stored) => stored,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => return Ok(None),
            Err(e) => return Err(s3_error("HEAD", bucket, key, e).into()),
        };
        let size = u64::try_from(stored.content_length().unwrap_or_default()).unwrap_or_default();
        if let Some(ranges) = transfer::download_ranges(size) {
            let etag = stored.e_tag().map(str::to_owned);
            return read_ranges(s3, bucket, key, etag.as_deref(), ranges, target)
                .await
                .map(Some);
        }
        // Stored smaller than the manifest says: one GET, and the check tells.
    }
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(object) => Ok(Some(read_part(object.body, target, bucket, key).await?)),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
        Err(e) => Err(s3_error("GET", bucket, key, e).into()),
    }
}

/// Reads the object at `key` in `ranges`, [`transfer::PARALLEL`] GETs at a time, through
/// sha256 in order (and into `target`, when given): (size, sha256). Each GET asks for the
/// object HEAD found (`If-Match` its ETag: one replaced meanwhile fails the read) and must bring
/// exactly its range's bytes. At most [`transfer::PARALLEL`] ranges are held in memory.
async fn read_ranges(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    etag: Option<&str>,
    ranges: transfer::Pieces,
    target: Option<&Path>,
) -> Result<(i64, String), RestoreError> {
    use futures::{StreamExt as _, TryStreamExt as _};
    use sha2::Digest as _;
    use std::io::Write as _;
    let mut out = match target {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| file(path, e))?,
        )),
        None => None,
    };
    let mut hash = sha2::Sha256::new();
    let mut size = 0i64;
    let mut read = futures::stream::iter(ranges.iter())
        .map(|range| read_range(s3, bucket, key, etag, range, ranges.count()))
        .buffered(transfer::PARALLEL);
    while let Some((range, bytes)) = read.try_next().await? {
        let bytes = bytes.into_bytes();
        if bytes.len() as u64 != range.len {
            return Err(range_error(
                range,
                ranges.count(),
                s3_error(
                    "GET",
                    bucket,
                    key,
                    std::io::Error::other(format!(
                        "{} bytes came back, not {}",
                        bytes.len(),
                        range.len
                    )),
                ),
            ));
        }
        hash.update(&bytes);
        size += bytes.len() as i64;
        if let (Some(out), Some(path)) = (out.as_mut(), target) {
            out.write_all(&bytes).map_err(|e| file(path, e))?;
        }
    }
    if let (Some(mut out), Some(path)) = (out, target) {
        out.flush().map_err(|e| file(path, e))?;
    }
    Ok((size, manifest::hex(&hash.finalize())))
}

/// One range of the object at `key`: the range and what came back.
async fn read_range(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    etag: Option<&str>,
    range: transfer::Piece,
    count: u64,
) -> Result<(transfer::Piece, AggregatedBytes), RestoreError> {
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(format!("bytes={}-{}", range.offset, range.last()))
        .set_if_match(etag.map(str::to_owned))
        .send()
        .await
        .map_err(|e| range_error(range, count, s3_error("GET", bucket, key, e)))?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| range_error(range, count, s3_error("read", bucket, key, e)))?;
    Ok((range, bytes))
}

/// A range's failure, naming it.
fn range_error(range: transfer::Piece, count: u64, source: RunError) -> RestoreError {
    RestoreError::Range {
        range: format!(
            "range {} of {count} (bytes {}-{})",
            range.number,
            range.offset,
            range.last()
        ),
        source,
    }
}

/// Streams a part through sha256 (and into `target`, when given): (size, sha256).
async fn read_part(
    mut body: aws_sdk_s3::primitives::ByteStream,
    target: Option<&Path>,
    bucket: &str,
    key: &str,
) -> Result<(i64, String), RestoreError> {
    use sha2::Digest as _;
    use std::io::Write as _;
    let mut out = match target {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| file(path, e))?,
        )),
        None => None,
    };
    let mut hash = sha2::Sha256::new();
    let mut size = 0i64;
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| s3_error("read", bucket, key, e))?
    {
        hash.update(&chunk);
        size += chunk.len() as i64;
        if let (Some(out), Some(path)) = (out.as_mut(), target) {
            out.write_all(&chunk).map_err(|e| file(path, e))?;
        }
    }
    if let (Some(mut out), Some(path)) = (out, target) {
        out.flush().map_err(|e| file(path, e))?;
    }
    Ok((size, manifest::hex(&hash.finalize())))
}

async fn load_metadata(args: &RestoreArgs) -> Result<RestoreReport, RestoreError> {
    let path = args.work_dir.join(MANIFEST);
    let body = std::fs::read(&path).map_err(|e| file(&path, e))?;
    let manifest: Manifest = serde_json::from_slice(&body)
        .map_err(|e| RestoreError::Manifest(format!("unreadable: {e}")))?;
    let endpoint = args.metadata_endpoint.clone().unwrap_or_default();
    let region = args.metadata_region.clone().unwrap_or_default();
    let dynamo = super::metadata::client(&endpoint, &region, keys(METADATA_KEYS)).await;
    let mut rows = 0;
    let tables = manifest::tables(&manifest);
    for table in &tables {
        let schema_path = args.work_dir.join(&table.schema);
        let schema: TableSchema = serde_json::from_slice(
            &std::fs::read(&schema_path).map_err(|e| file(&schema_path, e))?,
        )
        .map_err(|e| RestoreError::Manifest(format!("{}: {e}", table.schema)))?;
        let found = import::import_table(
            &dynamo,
            &table.name,
            &schema,
            &args.work_dir.join(&table.items),
        )
        .await?;
        if found != table.rows {
            return Err(RestoreError::Rows {
                table: table.name.clone(),
                found,
                expected: table.rows,
            });
        }
        info!(table = %table.name, rows = found, "restored");
        rows += found;
    }
    // The steps before this one loaded the dump and counted its tables: the report covers
    // every part of the backup, not only the metadata store's.
    let mysql_counted = !manifest.mysql_rows.is_empty();
    Ok(RestoreReport {
        parts: manifest.parts.len(),
        size_bytes: manifest.parts.iter().map(|p| p.size_bytes).sum(),
        rows: Some(rows),
        metadata_tables: Some(tables.len()),
        mysql_rows: mysql_counted.then(|| manifest.mysql_rows.values().sum()),
        mysql_tables: mysql_counted.then_some(manifest.mysql_rows.len()),
        insync_version: manifest.insync_version,
        backup_started_at: manifest.started_at,
    })
}

fn file(path: &Path, source: std::io::Error) -> RestoreError {
    RestoreError::Store(super::file_error(path, source))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Writer, sample_manifest};
    use crate::runner::loopback;

    /// A stored object (`content`, ETag `"obj"`) that answers HEAD, plain and ranged GETs;
    /// `short` cuts every ranged answer by one byte.
    fn object_store(content: Vec<u8>, short: bool) -> (String, loopback::Recorded) {
        loopback::serve(move |request: &loopback::Request| {
            let size = content.len();
            if request.method == "HEAD" {
                return loopback::Answer::new(200, "")
                    .with("Content-Length", size.to_string())
                    .with("ETag", "\"obj\"");
            }
            if request
                .header("if-match")
                .is_some_and(|tag| tag != "\"obj\"")
            {
                return loopback::Answer::new(412, "");
            }
            let Some((first, last)) = request
                .header("range")
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.split_once('-'))
                .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
            else {
                return loopback::Answer::new(200, content.clone()).with("ETag", "\"obj\"");
            };
            let end = if short { last } else { last + 1 };
            loopback::Answer::new(206, content[first..end.min(size)].to_vec())
                .with("Content-Range", format!("bytes {first}-{last}/{size}"))
                .with("ETag", "\"obj\"")
        })
    }

    fn ranges_of(requests: &[loopback::Request]) -> Vec<String> {
        let mut ranges: Vec<String> = requests
            .iter()
            .filter(|r| r.method == "GET")
            .map(|r| r.header("range").unwrap_or("none").to_owned())
            .collect();
        ranges.sort();
        ranges
    }

    /// A large object is read in ranges, in parallel, each asking for the object HEAD found,
    /// and lands whole and in order in its file with the sha256 of the whole.
    #[tokio::test]
    async fn a_large_part_is_read_in_ranges_into_its_file_with_its_sha256() {
        let content: Vec<u8> = (0..25u8).map(|b| b'a' + b).collect();
        let (endpoint, recorded) = object_store(content.clone(), false);
        let s3 = loopback::client(&endpoint).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("mysql.sql");
        let ranges = transfer::Pieces {
            size: 25,
            piece: 10,
        };
        let read = read_ranges(
            &s3,
            "insync",
            "b/mysql.sql",
            Some("\"obj\""),
            ranges,
            Some(&target),
        )
        .await
        .expect("read");
        assert_eq!(read, manifest::digest(&content[..]).expect("sha"));
        assert_eq!(std::fs::read(&target).expect("file"), content);
        let requests = recorded.lock().expect("log").clone();
        assert_eq!(
            ranges_of(&requests),
            ["bytes=0-9", "bytes=10-19", "bytes=20-24"]
        );
        for request in &requests {
            assert_eq!(request.header("if-match"), Some("\"obj\""), "{request:?}");
        }
        // Without a file (the check step): the same digest, nothing written.
        let read = read_ranges(&s3, "insync", "b/mysql.sql", Some("\"obj\""), ranges, None)
            .await
            .expect("read");
        assert_eq!(read, manifest::digest(&content[..]).expect("sha"));
    }

    /// A range that comes back short fails the read, naming the range; an object replaced
    /// since its HEAD (another ETag) too.
    #[tokio::test]
    async fn a_range_that_comes_back_short_or_changed_is_named() {
        let content: Vec<u8> = (0..25u8).collect();
        let ranges = transfer::Pieces {
            size: 25,
            piece: 10,
        };
        let (endpoint, _) = object_store(content.clone(), true);
        let s3 = loopback::client(&endpoint).await;
        let error = read_ranges(&s3, "insync", "b/mysql.sql", Some("\"obj\""), ranges, None)
            .await
            .expect_err("short");
        assert_eq!(
            super::super::error_chain(&error),
            "range 1 of 3 (bytes 0-9): GET s3://insync/b/mysql.sql: 9 bytes came back, not 10"
        );
        let (endpoint, _) = object_store(content, false);
        let s3 = loopback::client(&endpoint).await;
        let error = read_ranges(
            &s3,
            "insync",
            "b/mysql.sql",
            Some("\"other\""),
            ranges,
            None,
        )
        .await
        .expect_err("replaced");
        let reason = super::super::error_chain(&error);
        assert!(
            reason.starts_with("range 1 of 3 (bytes 0-9): GET s3://insync/b/mysql.sql: "),
            "{reason}"
        );
    }

    /// A part the manifest says is small is read with one plain GET, no HEAD, no range.
    #[tokio::test]
    async fn a_small_part_is_read_with_one_get() {
        let content = b"abc".to_vec();
        let (endpoint, recorded) = object_store(content.clone(), false);
        let s3 = loopback::client(&endpoint).await;
        let read = fetch_part(&s3, "insync", "b/mysql.sql", 3, None)
            .await
            .expect("read");
        assert_eq!(read, Some(manifest::digest(&content[..]).expect("sha")));
        let requests = recorded.lock().expect("log").clone();
        assert_eq!(requests.len(), 1, "{requests:#?}");
        assert_eq!(ranges_of(&requests), ["none"]);
    }

    #[test]
    fn only_the_manifest_the_backup_recorded_passes() {
        let mut manifest = sample_manifest(0);
        manifest.writer = Some(Writer {
            namespace: "fcloud".to_owned(),
            name: "nightly".to_owned(),
            uid: "u1".to_owned(),
        });
        let sha = "a".repeat(64);
        let other = "b".repeat(64);
        // Nothing recorded (an S3 location): nothing to compare.
        assert_eq!(recorded(&sha, &manifest, None, None), Ok(()));
        assert_eq!(recorded(&sha, &manifest, Some(&sha), Some("u1")), Ok(()));
        assert_eq!(
            recorded(&sha, &manifest, Some(&sha.to_uppercase()), None),
            Ok(())
        );
        assert_eq!(
            recorded(&sha, &manifest, Some(&other), Some("u1")),
            Err(format!(
                "manifest.json is not the one this backup recorded when it completed: sha256 {sha}, recorded {other}"
            ))
        );
        assert_eq!(
            recorded(&sha, &manifest, None, Some("u2")),
            Err(
                "manifest.json was written by backup fcloud/nightly (uid u1), not by this backup (uid u2)"
                    .to_owned()
            )
        );
        // A manifest from before writers were recorded: only its sha256 can tell.
        manifest.writer = None;
        assert_eq!(recorded(&sha, &manifest, None, Some("u2")), Ok(()));
        assert!(recorded(&sha, &manifest, Some(&other), Some("u2")).is_err());
    }
}
