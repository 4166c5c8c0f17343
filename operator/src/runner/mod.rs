//! `insync-operator backup-run`: the second half of a backup Job (see
//! [`crate::render::backup`]). The init container has dumped MySQL to a file; this exports every
//! metadata-store table to JSON lines, uploads the parts, reads them back, and writes
//! `manifest.json` last. Any failure exits non-zero before the manifest is written, so a prefix
//! without a manifest is never a backup.

pub mod delete;
pub mod dump_rows;
pub(crate) mod import;
pub mod manifest;
mod metadata;
pub mod restore;

use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use k8s_openapi::jiff::Timestamp;
use tracing::info;

use crate::api::BackupPart;
use crate::contract::{self, FORMAT, MANIFEST, MYSQL_DUMP, Manifest, Report};
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
    /// inSync release of the cloud, recorded in the manifest.
    #[arg(long)]
    pub version: String,
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
    /// A manifest is already there: this prefix holds a backup, which is never overwritten.
    #[error("s3://{bucket}/{key} already exists: a backup is never overwritten")]
    Exists {
        /// Bucket.
        bucket: String,
        /// Manifest key.
        key: String,
    },
    /// What was stored is not what was uploaded.
    #[error("read-back failed: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    ReadBack(Vec<Mismatch>),
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
    let s3 = s3_client(&args.store).await;
    if manifest_exists(&s3, &args.store.bucket, &manifest_key).await? {
        return Err(RunError::Exists {
            bucket: args.store.bucket.clone(),
            key: manifest_key,
        });
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
    for table in metadata::export_all(&dynamo, args.table_prefix.as_deref(), &args.work_dir).await?
    {
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
        let file = std::fs::File::open(&path).map_err(|source| file_error(&path, source))?;
        let (size_bytes, sha256) =
            manifest::digest(file).map_err(|source| file_error(&path, source))?;
        let key = format!("{}{name}", args.store.prefix);
        let body = ByteStream::from_path(&path)
            .await
            .map_err(|e| s3_error("read for upload", &args.store.bucket, &key, e))?;
        s3.put_object()
            .bucket(&args.store.bucket)
            .key(&key)
            .body(body)
            .send()
            .await
            .map_err(|e| sdk_error("upload", &args.store.bucket, &key, e))?;
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
    };
    let body = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let manifest_size = body.len() as i64;
    s3.put_object()
        .bucket(&args.store.bucket)
        .key(&manifest_key)
        .content_type("application/json")
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| sdk_error("upload", &args.store.bucket, &manifest_key, e))?;
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

/// An S3 client for the store `args` names, with the keys from the environment.
pub(crate) async fn s3_client(args: &StoreArgs) -> aws_sdk_s3::Client {
    s3_client_with(args, keys(OBJECTSTORE_KEYS)).await
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

/// Whether `key` exists. A GET, not a HEAD: this is the runner's first request, and only a GET
/// answer has a body naming what is wrong (`InvalidAccessKeyId`, `NoSuchBucket`); a refused
/// HEAD comes back as a bare 403 the SDK reports as "unhandled error".
async fn manifest_exists(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<bool, RunError> {
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(false),
        Err(e) => Err(sdk_error("GET", bucket, key, e)),
    }
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

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

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
        let error = manifest_exists(&s3, "insync", "b/manifest.json")
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
