//! `insync-operator backup-delete`: deletes an expired backup's files (rendered by
//! [`crate::render::backup::render_delete_job`]), and only them.
//!
//! The prefix must be the backup's own folder, `…<cloud>/<backup>/`: the runner refuses any
//! other, so a wrong argument can never empty a bucket. `manifest.json` goes first, so a prefix
//! left half-deleted by a failure is never taken for a backup; then every other object under
//! the prefix; then the prefix is listed again and must be empty.

use tracing::info;

use super::{RunError, StoreArgs, TERMINATION_LOG, s3_client, s3_error};
use crate::contract::{DeleteReport, MANIFEST};

/// Flags of `insync-operator backup-delete`.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct DeleteArgs {
    /// The backup's files.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The cloud the backup is of: the prefix must end with `<cloud>/<backup>/`.
    #[arg(long)]
    pub cloud: String,
    /// The backup's name.
    #[arg(long)]
    pub backup: String,
}

/// Why the files could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// The prefix is not the backup's own folder.
    #[error(
        "refused: prefix {prefix:?} is not the folder of backup {backup} of {cloud} (it must end with '{cloud}/{backup}/')"
    )]
    NotItsFolder {
        /// The prefix given.
        prefix: String,
        /// The cloud.
        cloud: String,
        /// The backup.
        backup: String,
    },
    /// A request failed.
    #[error(transparent)]
    Store(#[from] RunError),
    /// Objects were still there after the deletion.
    #[error("{left} objects still under s3://{bucket}/{prefix} after the deletion")]
    Left {
        /// Bucket.
        bucket: String,
        /// Prefix.
        prefix: String,
        /// How many.
        left: usize,
    },
}

/// Whether `prefix` is the folder of `backup` of `cloud`: `<anything>/<cloud>/<backup>/` or
/// `<cloud>/<backup>/` (pure).
pub(crate) fn is_backup_folder(prefix: &str, cloud: &str, backup: &str) -> bool {
    let own = format!("{cloud}/{backup}/");
    !cloud.is_empty()
        && !backup.is_empty()
        && !cloud.contains('/')
        && !backup.contains('/')
        && (prefix == own || prefix.ends_with(&format!("/{own}")))
}

/// Deletes the files; the report is also the container's termination message.
pub async fn run(args: DeleteArgs) -> Result<DeleteReport, DeleteError> {
    let store = &args.store;
    if !is_backup_folder(&store.prefix, &args.cloud, &args.backup) {
        return Err(DeleteError::NotItsFolder {
            prefix: store.prefix.clone(),
            cloud: args.cloud.clone(),
            backup: args.backup.clone(),
        });
    }
    let s3 = s3_client(store).await;
    let mut objects = list(&s3, store).await?;
    let manifest_key = format!("{}{MANIFEST}", store.prefix);
    // The manifest first: from then on nothing under the prefix passes for a backup.
    objects.sort_by_key(|(key, _)| *key != manifest_key);
    let had_manifest = objects.first().is_some_and(|(key, _)| *key == manifest_key);
    let mut size_bytes = 0;
    for (key, size) in &objects {
        s3.delete_object()
            .bucket(&store.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("DELETE", &store.bucket, key, e))?;
        info!(key = %key, size, "deleted");
        size_bytes += size;
    }
    let left = list(&s3, store).await?.len();
    if left > 0 {
        return Err(DeleteError::Left {
            bucket: store.bucket.clone(),
            prefix: store.prefix.clone(),
            left,
        });
    }
    let report = DeleteReport {
        objects: objects.len(),
        size_bytes,
        had_manifest,
    };
    let message = serde_json::to_string(&report).unwrap_or_default();
    // Best effort: outside a pod there is no termination log, and the report is printed too.
    let _ = std::fs::write(TERMINATION_LOG, &message);
    Ok(report)
}

/// Every object under the prefix, with its size.
async fn list(s3: &aws_sdk_s3::Client, store: &StoreArgs) -> Result<Vec<(String, i64)>, RunError> {
    let mut found = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(&store.bucket)
        .prefix(&store.prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| s3_error("LIST", &store.bucket, &store.prefix, e))?;
        found.extend(page.contents().iter().filter_map(|object| {
            Some((object.key()?.to_owned(), object.size().unwrap_or_default()))
        }));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_backups_own_folder_may_be_deleted() {
        for (prefix, ok) in [
            ("insync-backups/fcloud/nightly/", true),
            ("fcloud/nightly/", true),
            ("clouds/eu/fcloud/nightly/", true),
            ("insync-backups/fcloud/", false),
            ("insync-backups/", false),
            ("", false),
            ("insync-backups/fcloud/nightly", false),
            ("insync-backups/xfcloud/nightly/", false),
            ("insync-backups/fcloud/nightly/extra/", false),
        ] {
            assert_eq!(
                is_backup_folder(prefix, "fcloud", "nightly"),
                ok,
                "{prefix}"
            );
        }
        assert!(!is_backup_folder("a//", "", ""));
    }
}
