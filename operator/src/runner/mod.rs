//! `insync-operator backup-run`: the second half of a backup Job (see
//! [`crate::render::backup`]). The init container has dumped MySQL to a file; this exports every
//! metadata-store table to JSON lines, uploads the parts, reads them back, and writes
//! `manifest.json` last. Any failure exits non-zero before the manifest is written, so a prefix
//! without a manifest is never a backup.
//!
//! Every upload carries the sha256 the runner computed as `x-amz-checksum-sha256`, so the store
//! itself refuses a body that arrives other than it was read. The manifest names the backup
//! that wrote it ([`Writer`]): a run that finds its own backup's manifest already there (its
//! pod ran again after writing it) reports that backup instead of failing.

pub mod delete;
pub mod dump_rows;
pub(crate) mod import;
#[cfg(test)]
mod loopback;
pub mod manifest;
mod metadata;
pub mod restore;
pub mod transfer;

use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use k8s_openapi::jiff::Timestamp;
use tracing::info;

use crate::api::BackupPart;
use crate::contract::{self, ExportWindow, FORMAT, MANIFEST, MYSQL_DUMP, Manifest, Report, Writer};
use manifest::Mismatch;

/// Environment variables the runner reads its keys from; without them, the AWS default chain
/// (the pod's identity) is used. The same names as every inSync pod (docs/images.md).
const METADATA_KEYS: (&str, &str) = (
    "INSYNC_METADATA_ACCESS_KEY_ID",
    "INSYNC_METADATA_SECRET_ACCESS_KEY",
);
const OBJECTSTORE_KEYS: (&str, &str) = (
    "INSYNC_OBJECTSTORE_ACCESS_KEY_ID",
    "INSYNC_OBJECTSTORE_SECRET_ACCESS_KEY",
);
/// How long each attempt to connect to the object store may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Where a runner step leaves its report or its reason for the kubelet's termination message.
pub const TERMINATION_LOG: &str = "/dev/termination-log";

/// Where a backup is and how to reach its store: the flags `backup-run`, `restore-run` and
/// `backup-delete` share (rendered from one `render::job::StoreAccess`).
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct StoreArgs {
    /// Bucket of the backup.
    #[arg(long)]
    pub bucket: String,
    /// The backup's own prefix (where its manifest.json is), ending with '/'.
    #[arg(long)]
    pub prefix: String,
    /// Region of the store.
    #[arg(long)]
    pub region: String,
    /// Endpoint URL (S3-compatible stores).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Path-style requests (MinIO).
    #[arg(long)]
    pub path_style: bool,
}

/// Flags of `insync-operator backup-run` (rendered by `render::backup`).
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct RunnerArgs {
    /// The destination.
    #[command(flatten)]
    pub store: StoreArgs,
    /// DynamoDB-compatible endpoint of the metadata store.
    #[arg(long)]
    pub metadata_endpoint: String,
    /// Region of the metadata store.
    #[arg(long)]
    pub metadata_region: String,
    /// Only tables whose names start with this are the cloud's.
    #[arg(long)]
    pub table_prefix: Option<String>,
    /// inSync release the cloud runs, recorded in the manifest.
    #[arg(long)]
    pub version: String,
    /// Namespace of the `InSyncCloudBackup` this run takes, recorded in the manifest.
    #[arg(long)]
    pub backup_namespace: String,
    /// Name of the `InSyncCloudBackup`.
    #[arg(long)]
    pub backup_name: String,
    /// `metadata.uid` of the `InSyncCloudBackup`: a manifest already at the prefix with this
    /// writer is this backup's own (its pod ran again), any other is refused.
    #[arg(long)]
    pub backup_uid: String,
    /// The MySQL dump written by the init container.
    #[arg(long)]
    pub dump: PathBuf,
    /// File holding when the dump began (RFC 3339).
    #[arg(long)]
    pub started_at_file: PathBuf,
    /// Directory for the metadata export (the Job's emptyDir).
    #[arg(long, default_value = "/backup/metadata")]
    pub work_dir: PathBuf,
}

/// Why a backup failed. Each variant names the step, so the backup's status says where.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A local file (the dump, the export) could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The metadata store could not be exported.
    #[error("metadata export: {0}")]
    Metadata(#[from] metadata::ExportError),
    /// An S3 request failed.
    #[error("{action} s3://{bucket}/{key}: {source}")]
    S3 {
        /// What was being done (upload, HEAD, ...).
        action: &'static str,
        /// Bucket.
        bucket: String,
        /// Object key.
        key: String,
        /// The SDK's error, with the service's message.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The object store did not answer at all (connection refused or timed out, no route):
    /// told apart from a refusal by the store, which names its reason (`InvalidAccessKeyId`).
    #[error("the object store could not be reached ({action} s3://{bucket}/{key}): {source}")]
    Unreachable {
        /// What was being done.
        action: &'static str,
        /// Bucket.
        bucket: String,
        /// Object key.
        key: String,
        /// The SDK's error, down to the connection's.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A manifest of another backup is already there: this prefix holds a backup, which is
    /// never overwritten.
    #[error("s3://{bucket}/{key} already exists{}: a backup is never overwritten", written_by(.writer.as_ref()))]
    Exists {
        /// Bucket.
        bucket: String,
        /// Manifest key.
        key: String,
        /// Who wrote it, when the manifest says.
        writer: Option<Writer>,
    },
    /// A part uploaded in chunks failed: at which step (creating the upload, which chunk,
    /// completing it), why, and whether the upload was aborted.
    /// (The whole chain of the request's failure comes before what became of the upload.)
    #[error("{part}: {step}: {}{abort}", error_chain(.source.as_ref()))]
    Multipart {
        /// The backup's part.
        part: String,
        /// `CreateMultipartUpload`, `chunk 3 of 17 (bytes …)`, `CompleteMultipartUpload …`.
        step: String,
        /// The request's failure.
        #[source]
        source: Box<RunError>,
        /// What became of the upload: aborted, or why not (empty when none was created).
        abort: String,
    },
    /// A part larger than S3's largest object.
    #[error("{part}: {source}")]
    TooLarge {
        /// The backup's part.
        part: String,
        /// Its size.
        #[source]
        source: transfer::TooLarge,
    },
    /// What was stored is not what was uploaded.
    #[error("read-back failed: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    ReadBack(Vec<Mismatch>),
}

/// " (written by backup ns/name (uid u))", or what is known instead, for an error message.
fn written_by(writer: Option<&Writer>) -> String {
    match writer {
        Some(writer) => format!(" (written by {writer})"),
        None => " (its manifest does not name the backup that wrote it)".to_owned(),
    }
}

/// The full error chain on one line, for the termination message.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Takes the backup; the report is also written as the container's termination message.
pub async fn run(args: RunnerArgs) -> Result<Report, RunError> {
    let started_at = std::fs::read_to_string(&args.started_at_file)
        .map(|text| text.trim().to_owned())
        .map_err(|source| file_error(&args.started_at_file, source))?;
    let location = format!("s3://{}/{}", args.store.bucket, args.store.prefix);
    let manifest_key = format!("{}{MANIFEST}", args.store.prefix);
    let writer = Writer {
        namespace: args.backup_namespace.clone(),
        name: args.backup_name.clone(),
        uid: args.backup_uid.clone(),
    };
    let s3 = s3_client(&args.store).await;
    if let Some(body) = existing_manifest(&s3, &args.store.bucket, &manifest_key).await? {
        let report = rerun_report(&args.store.bucket, &manifest_key, &body, &writer.uid)?;
        // This backup's own manifest: its parts were read back before it was written; check
        // they are still all there before reporting it again.
        let mut stored = Vec::new();
        for part in &report.manifest.parts {
            let key = format!("{}{}", args.store.prefix, part.name);
            stored.push(head(&s3, &args.store.bucket, &key).await?);
        }
        manifest::check_stored(&report.manifest.parts, &stored).map_err(RunError::ReadBack)?;
        info!(key = %manifest_key, "this backup's manifest is already there: reporting it");
        let _ = std::fs::write(TERMINATION_LOG, report.to_message());
        return Ok(report);
    }

    let mut files: Vec<(String, PathBuf, Option<i64>)> =
        vec![(MYSQL_DUMP.to_owned(), args.dump.clone(), None)];
    let dynamo = metadata::client(
        &args.metadata_endpoint,
        &args.metadata_region,
        keys(METADATA_KEYS),
    )
    .await;
    std::fs::create_dir_all(&args.work_dir).map_err(|source| file_error(&args.work_dir, source))?;
    let export_started = Timestamp::now().to_string();
    let exported =
        metadata::export_all(&dynamo, args.table_prefix.as_deref(), &args.work_dir).await?;
    let metadata_export = ExportWindow {
        started_at: export_started,
        completed_at: Timestamp::now().to_string(),
    };
    for table in exported {
        info!(table = %table.name, rows = table.rows, "exported");
        files.push((contract::schema_part(&table.name), table.schema_path, None));
        files.push((
            contract::items_part(&table.name),
            table.path,
            Some(table.rows),
        ));
    }

    let mut parts = Vec::new();
    for (name, path, rows) in files {
        let key = format!("{}{name}", args.store.prefix);
        let (size_bytes, sha256) = upload_file(&s3, &args.store.bucket, &key, &name, &path).await?;
        info!(part = %name, size_bytes, "uploaded");
        parts.push(BackupPart {
            name,
            size_bytes,
            sha256,
            rows,
        });
    }

    let mut stored = Vec::new();
    for part in &parts {
        stored.push(
            head(
                &s3,
                &args.store.bucket,
                &format!("{}{}", args.store.prefix, part.name),
            )
            .await?,
        );
    }
    manifest::check_stored(&parts, &stored).map_err(RunError::ReadBack)?;

    let dump = std::fs::File::open(&args.dump).map_err(|source| file_error(&args.dump, source))?;
    let mysql_rows = dump_rows::count_rows(std::io::BufReader::new(dump))
        .map_err(|source| file_error(&args.dump, source))?;
    info!(
        tables = mysql_rows.len(),
        rows = mysql_rows.values().sum::<i64>(),
        "MySQL rows counted in the dump"
    );
    let manifest = Manifest {
        format: FORMAT,
        insync_version: args.version.clone(),
        started_at,
        completed_at: Timestamp::now().to_string(),
        location,
        parts,
        mysql_rows,
        writer: Some(writer),
        metadata_export: Some(metadata_export),
    };
    let body = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let manifest_size = body.len() as i64;
    let (_, manifest_sha256) = manifest::digest(body.as_slice())
        .map_err(|source| file_error(Path::new(MANIFEST), source))?;
    upload(
        &s3,
        &args.store.bucket,
        &manifest_key,
        ByteStream::from(body),
        &manifest_sha256,
        Some("application/json"),
    )
    .await?;
    let manifest_part = BackupPart {
        name: MANIFEST.to_owned(),
        size_bytes: manifest_size,
        sha256: String::new(),
        rows: None,
    };
    manifest::check_stored(
        std::slice::from_ref(&manifest_part),
        &[head(&s3, &args.store.bucket, &manifest_key).await?],
    )
    .map_err(RunError::ReadBack)?;

    let size_bytes = manifest.parts.iter().map(|p| p.size_bytes).sum::<i64>() + manifest_size;
    let report = Report {
        manifest_key,
        size_bytes,
        manifest,
        parts_omitted: false,
        manifest_sha256,
    };
    // Best effort: outside a pod there is no termination log, and the report is printed too.
    let _ = std::fs::write(TERMINATION_LOG, report.to_message());
    Ok(report)
}

fn file_error(path: &Path, source: std::io::Error) -> RunError {
    RunError::File {
        path: path.display().to_string(),
        source,
    }
}

fn s3_error(
    action: &'static str,
    bucket: &str,
    key: &str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> RunError {
    RunError::S3 {
        action,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        source: Box::new(source),
    }
}

/// An S3 request's failure: [`RunError::Unreachable`] when no answer came back (the request was
/// never dispatched, or timed out), [`RunError::S3`] with the store's own reason otherwise.
fn sdk_error<E, R>(
    action: &'static str,
    bucket: &str,
    key: &str,
    error: aws_sdk_s3::error::SdkError<E, R>,
) -> RunError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    use aws_sdk_s3::error::SdkError;
    match error {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => RunError::Unreachable {
            action,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            source: Box::new(error),
        },
        error => s3_error(action, bucket, key, error),
    }
}

/// Static keys from the environment, when both variables are set.
fn keys((id, secret): (&str, &str)) -> Option<aws_sdk_s3::config::Credentials> {
    let id = std::env::var(id).ok()?;
    let secret = std::env::var(secret).ok()?;
    Some(aws_sdk_s3::config::Credentials::new(
        id,
        secret,
        None,
        None,
        "insync-backup",
    ))
}

/// The SDK configuration for one endpoint: static keys when given, else the default chain.
pub async fn sdk_config(
    region: &str,
    endpoint: Option<&str>,
    credentials: Option<aws_sdk_s3::config::Credentials>,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()));
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(credentials) = credentials {
        loader = loader.credentials_provider(credentials);
    }
    loader.load().await
}

/// An S3 client for the store `args` names, with the keys from the environment, once the
/// store accepts connections (see [`wait_for_endpoint`]).
pub(crate) async fn s3_client(args: &StoreArgs) -> aws_sdk_s3::Client {
    if let Some(endpoint) = &args.endpoint {
        wait_for_endpoint("the object store", endpoint).await;
    }
    s3_client_with(args, keys(OBJECTSTORE_KEYS)).await
}

/// How many one-second tries a runner gives a store to accept a connection: an enforcer learns
/// a new pod in milliseconds, and a store that is down for longer should fail the Job soon (a
/// schedule tries again), not hold it for minutes.
const ENDPOINT_WAIT_TRIES: u32 = 10;

/// Waits, saying so, until `endpoint` (an http(s) URL) accepts a TCP connection, for at most
/// [`ENDPOINT_WAIT_TRIES`] tries a second apart. A new pod's first connections can fail while a
/// NetworkPolicy enforcer learns its address, and a store may be starting; after the last try
/// the runner goes on, and its first request fails with the store's own error.
pub(crate) async fn wait_for_endpoint(what: &str, endpoint: &str) {
    let Some(address) = host_port(endpoint) else {
        return;
    };
    for attempt in 1..=ENDPOINT_WAIT_TRIES {
        let connect = tokio::net::TcpStream::connect(address.as_str());
        match tokio::time::timeout(std::time::Duration::from_secs(2), connect).await {
            Ok(Ok(_)) => {
                if attempt > 1 {
                    info!(what, %address, attempt, "reachable");
                }
                return;
            }
            Ok(Err(e)) => {
                info!(what, %address, attempt, error = %e, "waiting for it to accept connections")
            }
            Err(_) => {
                info!(what, %address, attempt, "waiting for it to accept connections (timed out)")
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    tracing::warn!(what, %address, tries = ENDPOINT_WAIT_TRIES, "still not reachable: trying anyway");
}

/// `host:port` of an http(s) URL, the scheme's port when it names none.
fn host_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() {
        return None;
    }
    let default = if scheme == "http" { 80 } else { 443 };
    let has_port = match authority.rsplit_once(']') {
        Some((_, after)) => after.starts_with(':'),
        None => authority.contains(':'),
    };
    Some(if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{default}")
    })
}

/// The S3 client of the store `args` names, with these keys (the pod's identity without).
async fn s3_client_with(
    args: &StoreArgs,
    credentials: Option<aws_sdk_s3::config::Credentials>,
) -> aws_sdk_s3::Client {
    let config = sdk_config(&args.region, args.endpoint.as_deref(), credentials).await;
    let config = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(args.path_style)
        // The SDK would add a CRC32 to every upload by sending the body aws-chunked, in chunks
        // as large as the file: MinIO refuses chunks above 16 MiB ("chunk too big", seen with
        // a 100 MB dump). The runner hashes every part itself (sha256, read back by size), so
        // it sends plain bodies of known length.
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        // A store that does not answer fails the backup in seconds, not after the Job's
        // deadline: each of the SDK's (at most 3) attempts gets this long to connect. No
        // read timeout: a large part's upload legitimately takes minutes.
        .timeout_config(
            aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .build(),
        )
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// The manifest at `key`, `None` when there is none. A GET, not a HEAD: this is the runner's
/// first request, and only a GET answer has a body naming what is wrong
/// (`InvalidAccessKeyId`, `NoSuchBucket`); a refused HEAD comes back as a bare 403 the SDK
/// reports as "unhandled error". The body is read too: it says which backup wrote it.
async fn existing_manifest(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, RunError> {
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(found) => {
            let body = found
                .body
                .collect()
                .await
                .map_err(|e| s3_error("read", bucket, key, e))?;
            Ok(Some(body.into_bytes().to_vec()))
        }
        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
        Err(e) => Err(sdk_error("GET", bucket, key, e)),
    }
}

/// What a run reports when a manifest is already at its prefix (pure): the backup that
/// manifest describes when this backup (`uid`) wrote it, its pod having run again after
/// writing it; [`RunError::Exists`] for any other manifest, one that names no writer or
/// cannot be read included.
fn rerun_report(bucket: &str, key: &str, body: &[u8], uid: &str) -> Result<Report, RunError> {
    let manifest = serde_json::from_slice::<Manifest>(body).ok();
    let writer = manifest.as_ref().and_then(|m| m.writer.clone());
    let (Some(manifest), Some(true)) = (manifest, writer.as_ref().map(|w| w.uid == uid)) else {
        return Err(RunError::Exists {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            writer,
        });
    };
    let manifest_size = body.len() as i64;
    let (_, manifest_sha256) = manifest::digest(body).unwrap_or_default();
    Ok(Report {
        manifest_key: key.to_owned(),
        size_bytes: manifest.parts.iter().map(|p| p.size_bytes).sum::<i64>() + manifest_size,
        manifest,
        parts_omitted: false,
        manifest_sha256,
    })
}

/// Uploads `body` to `key` with its sha256 (`sha256_hex`, computed by the runner) as
/// `x-amz-checksum-sha256`: the store computes it again and refuses the upload when they
/// differ. A checksum given like this is sent as a plain header, and the SDK then sends the
/// body as it is, never aws-chunked (see `s3_client_with`).
async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: ByteStream,
    sha256_hex: &str,
    content_type: Option<&str>,
) -> Result<(), RunError> {
    let checksum = manifest::checksum_sha256(sha256_hex).ok_or_else(|| {
        s3_error(
            "upload",
            bucket,
            key,
            std::io::Error::other(format!("{sha256_hex:?} is no sha256")),
        )
    })?;
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .set_content_type(content_type.map(str::to_owned))
        .checksum_sha256(checksum)
        .body(body)
        .send()
        .await
        .map_err(|e| sdk_error("upload", bucket, key, e))?;
    Ok(())
}

/// Uploads the file at `path` (the backup's part `name`) to `key`: in one request up to
/// [`transfer::MULTIPART_THRESHOLD`], else in chunks ([`transfer::upload_multipart`]). Every
/// request carries the sha256 of what it sends. Returns the file's size and sha256 (of the
/// whole file, whichever way it went), read before the upload.
async fn upload_file(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    name: &str,
    path: &Path,
) -> Result<(i64, String), RunError> {
    let size = std::fs::metadata(path)
        .map_err(|source| file_error(path, source))?
        .len();
    let chunks = transfer::upload_chunks(size).map_err(|source| RunError::TooLarge {
        part: name.to_owned(),
        source,
    })?;
    send_file(s3, bucket, key, name, path, chunks).await
}

/// [`upload_file`] once the way is chosen: in one request (`chunks` `None`) or in `chunks`.
async fn send_file(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    name: &str,
    path: &Path,
    chunks: Option<transfer::Pieces>,
) -> Result<(i64, String), RunError> {
    let file = std::fs::File::open(path).map_err(|source| file_error(path, source))?;
    let Some(chunks) = chunks else {
        let (size_bytes, sha256) =
            manifest::digest(file).map_err(|source| file_error(path, source))?;
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| s3_error("read for upload", bucket, key, e))?;
        upload(s3, bucket, key, body, &sha256, None).await?;
        return Ok((size_bytes, sha256));
    };
    let (size_bytes, sha256, chunk_sha256) =
        manifest::digest_chunks(file, chunks.piece).map_err(|source| file_error(path, source))?;
    info!(part = %name, size_bytes, chunks = chunks.count(), chunk_bytes = chunks.piece, "uploading in chunks");
    transfer::upload_multipart(s3, bucket, key, name, path, chunks, &chunk_sha256).await?;
    Ok((size_bytes, sha256))
}

/// The stored size of `key`, `None` when there is no such object.
async fn head(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Option<i64>, RunError> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(found) => Ok(Some(found.content_length().unwrap_or_default())),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
        Err(e) => Err(sdk_error("HEAD", bucket, key, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::loopback;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    fn written_by(uid: Option<&str>) -> Vec<u8> {
        let mut manifest = contract::sample_manifest(2);
        manifest.writer = uid.map(|uid| Writer {
            namespace: "fcloud".to_owned(),
            name: "nightly".to_owned(),
            uid: uid.to_owned(),
        });
        serde_json::to_vec_pretty(&manifest).expect("manifest")
    }

    #[test]
    fn a_manifest_already_there_is_reported_only_when_this_backup_wrote_it() {
        let key = "insync-backups/fcloud/nightly/manifest.json";
        let ours = written_by(Some("uid-1"));
        let report = rerun_report("insync", key, &ours, "uid-1").expect("our own manifest");
        assert_eq!(report.manifest_key, key);
        assert_eq!(report.size_bytes, 2 + ours.len() as i64);
        assert_eq!(
            report.manifest_sha256,
            manifest::digest(&ours[..]).expect("sha").1
        );
        assert_eq!(report.manifest.writer.expect("writer").uid, "uid-1");

        for (body, writer) in [
            (
                written_by(Some("uid-2")),
                "written by backup fcloud/nightly (uid uid-2)",
            ),
            (
                written_by(None),
                "its manifest does not name the backup that wrote it",
            ),
            (
                b"not json".to_vec(),
                "its manifest does not name the backup that wrote it",
            ),
        ] {
            let error = rerun_report("insync", key, &body, "uid-1").expect_err("not ours");
            assert!(matches!(error, RunError::Exists { .. }), "{error:?}");
            assert_eq!(
                error.to_string(),
                format!(
                    "s3://insync/{key} already exists ({writer}): a backup is never overwritten"
                )
            );
        }
    }

    /// What one HTTP request to a loopback "store" carried: its head and body.
    /// The store answers 200 to it.
    fn capture_one_request(listener: std::net::TcpListener) -> (String, Vec<u8>) {
        use std::io::{BufRead as _, Read as _, Write as _};
        let (stream, _) = listener.accept().expect("a request");
        let mut reader = std::io::BufReader::new(stream.try_clone().expect("clone"));
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("head");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            // Header names lower-cased, values as sent.
            let line = match line.split_once(':') {
                Some((name, value)) => format!("{}:{value}", name.to_ascii_lowercase()),
                None => line.to_ascii_lowercase(),
            };
            head.push_str(&line);
        }
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or_default();
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("body");
        let mut stream = stream;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nETag: \"e\"\r\n\r\n")
            .expect("answer");
        (head, body)
    }

    /// A part is uploaded from its file (a streaming body, the case the SDK would send
    /// aws-chunked with a trailer) with the runner's sha256 as a plain `x-amz-checksum-sha256`
    /// header, its length known, and the body as it is.
    #[tokio::test]
    async fn a_part_is_uploaded_plain_with_its_sha256_as_a_header() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || capture_one_request(listener));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("part");
        std::fs::write(&path, b"abc").expect("part");
        let args = StoreArgs {
            bucket: "insync".to_owned(),
            prefix: "b/".to_owned(),
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            region: "us-east-1".to_owned(),
            path_style: true,
        };
        let keys = aws_sdk_s3::config::Credentials::new("id", "secret", None, None, "test");
        let s3 = s3_client_with(&args, Some(keys)).await;
        let (_, sha) = manifest::digest(&b"abc"[..]).expect("sha");
        let body = ByteStream::from_path(&path).await.expect("body");
        upload(&s3, "insync", "b/mysql.sql", body, &sha, None)
            .await
            .expect("uploaded");
        let (head, body) = server.join().expect("server");
        assert!(head.starts_with("put /insync/b/mysql.sql?"), "{head}");
        assert!(
            head.contains(
                "x-amz-checksum-sha256: ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=\r\n"
            ),
            "{head}"
        );
        assert!(head.contains("content-length: 3\r\n"), "{head}");
        for chunked in [
            "aws-chunked",
            "x-amz-trailer",
            "x-amz-decoded-content-length",
        ] {
            assert!(!head.contains(chunked), "{chunked}: {head}");
        }
        assert_eq!(body, b"abc");
    }

    /// A part sent in chunks reports the sha256 of the whole file (what the manifest records),
    /// and every chunk goes with its own.
    #[tokio::test]
    async fn a_part_sent_in_chunks_reports_the_whole_files_sha256() {
        let (endpoint, recorded) =
            loopback::serve(
                |request: &loopback::Request| match request.method.as_str() {
                    "POST" if request.target.contains("?uploads") => loopback::Answer::new(
                        200,
                        "<InitiateMultipartUploadResult><UploadId>u</UploadId>\
                     </InitiateMultipartUploadResult>",
                    ),
                    "PUT" => loopback::Answer::new(200, "").with("ETag", "\"e\""),
                    _ => loopback::Answer::new(200, "<CompleteMultipartUploadResult/>"),
                },
            );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("part");
        let content = vec![7u8; 1000];
        std::fs::write(&path, &content).expect("part");
        let s3 = loopback::client(&endpoint).await;
        let chunks = transfer::Pieces {
            size: 1000,
            piece: 300,
        };
        let sent = send_file(
            &s3,
            "insync",
            "b/mysql.sql",
            "mysql.sql",
            &path,
            Some(chunks),
        )
        .await
        .expect("sent");
        assert_eq!(sent, manifest::digest(&content[..]).expect("sha"));
        let requests = recorded.lock().expect("log").clone();
        let mut checksums: Vec<(usize, Option<String>)> = requests
            .iter()
            .filter(|r| r.method == "PUT")
            .map(|r| {
                (
                    r.body.len(),
                    r.header("x-amz-checksum-sha256").map(str::to_owned),
                )
            })
            .collect();
        checksums.sort();
        let of =
            |n: usize| manifest::checksum_sha256(&manifest::digest(&content[..n]).expect("sha").1);
        assert_eq!(
            checksums,
            [
                (100, of(100)),
                (300, of(300)),
                (300, of(300)),
                (300, of(300))
            ]
        );
    }

    #[test]
    fn an_endpoints_address_has_its_port() {
        assert_eq!(
            host_port("http://fcloud-minio.fcloud.svc.cluster.local:9000").as_deref(),
            Some("fcloud-minio.fcloud.svc.cluster.local:9000")
        );
        assert_eq!(
            host_port("https://s3.amazonaws.com/").as_deref(),
            Some("s3.amazonaws.com:443")
        );
        assert_eq!(
            host_port("http://[fd00::1]:9000").as_deref(),
            Some("[fd00::1]:9000")
        );
        assert_eq!(host_port("not a url"), None);
    }

    /// A store that starts listening a moment after the runner starts is waited for.
    #[tokio::test]
    async fn a_store_that_comes_up_late_is_waited_for() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let listener = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("bind");
            let _ = listener.accept().await;
        });
        let started = std::time::Instant::now();
        wait_for_endpoint("a test store", &format!("http://127.0.0.1:{port}")).await;
        let waited = started.elapsed();
        assert!(
            waited >= std::time::Duration::from_millis(1000)
                && waited < std::time::Duration::from_secs(10),
            "{waited:?}"
        );
        listener.abort();
    }

    #[test]
    fn the_error_chain_keeps_every_cause_once() {
        let error = Outer(std::io::Error::other("InvalidAccessKeyId"));
        assert_eq!(error_chain(&error), "outer: InvalidAccessKeyId");
    }

    /// A store nobody listens for (a loopback port just closed): the first request fails in
    /// seconds, and the reason says the store could not be reached and why.
    #[tokio::test]
    async fn a_store_that_does_not_answer_fails_fast_and_says_so() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let args = StoreArgs {
            bucket: "insync".to_owned(),
            prefix: "b/".to_owned(),
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            region: "us-east-1".to_owned(),
            path_style: true,
        };
        let keys = aws_sdk_s3::config::Credentials::new("id", "secret", None, None, "test");
        let s3 = s3_client_with(&args, Some(keys)).await;
        let started = std::time::Instant::now();
        let error = existing_manifest(&s3, "insync", "b/manifest.json")
            .await
            .expect_err("nothing listens there");
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        assert!(matches!(error, RunError::Unreachable { .. }), "{error:?}");
        let reason = error_chain(&error);
        assert!(
            reason.starts_with(
                "the object store could not be reached (GET s3://insync/b/manifest.json)"
            ) && reason.contains("refused"),
            "{reason}"
        );
    }
}
