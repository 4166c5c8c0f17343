//! `insync-operator backup-delete`: deletes an expired backup's files (rendered by
//! [`crate::render::backup::render_delete_job`]), and only them.
//!
//! The prefix must be the backup's own folder, `…<namespace>/<cloud>/<backup>-<uid>/` or the
//! older `…<cloud>/<backup>/`: the runner refuses any other, so a wrong argument can never
//! empty a bucket. Only the backup's own layout under it is deleted: its direct children
//! (`manifest.json`, `mysql.sql`) and `metadata/<file>`, never deeper keys (an older prefix
//! may hold another backup's folder below it).
//!
//! A manifest another backup wrote is never deleted, nor anything beside it ([`may_delete`]).
//! `manifest.json` goes first, so a prefix left half-deleted by a failure is never taken for a
//! backup; then every other file of the layout; then the prefix is listed again and must hold
//! none of them.

use tracing::info;

use super::{RunError, StoreArgs, TERMINATION_LOG, s3_client, s3_error};
use crate::contract::{DeleteReport, MANIFEST, Manifest, Writer};

/// Flags of `insync-operator backup-delete`.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct DeleteArgs {
    /// The backup's files.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The cloud the backup is of: the prefix must end with `<cloud>/<backup>/`, or
    /// `<namespace>/<cloud>/<backup>-<uid>/` when `--namespace` is given.
    #[arg(long)]
    pub cloud: String,
    /// The backup's name.
    #[arg(long)]
    pub backup: String,
    /// The backup's namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// The backup's `metadata.uid`: a manifest written by another backup is not deleted.
    #[arg(long)]
    pub backup_uid: String,
    /// The backup wrote a manifest before manifests named their writer: a manifest that names
    /// none is taken for its own. Without this flag such a manifest is refused.
    #[arg(long)]
    pub owns_unmarked_manifest: bool,
}

/// Why the files could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// The prefix is not the backup's own folder.
    #[error(
        "refused: prefix {prefix:?} is not the folder of backup {backup} of {cloud} (it must end with '<namespace>/{cloud}/{backup}-<uid>/' or '{cloud}/{backup}/')"
    )]
    NotItsFolder {
        /// The prefix given.
        prefix: String,
        /// The cloud.
        cloud: String,
        /// The backup.
        backup: String,
    },
    /// The prefix holds a manifest this backup did not write (or cannot be shown to have).
    #[error(
        "refused: s3://{bucket}/{key} {whose}, not by this backup (uid {uid}): nothing was deleted"
    )]
    NotItsManifest {
        /// Bucket.
        bucket: String,
        /// Manifest key.
        key: String,
        /// "was written by backup ns/name (uid u)", or why the writer is unknown.
        whose: String,
        /// This backup's uid.
        uid: String,
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

/// Whether `prefix` is the folder of `backup` (uid `uid`, in `namespace` when known) of
/// `cloud` (pure): `[<anything>/]<namespace>/<cloud>/<backup>-<uid>/`, or the older
/// `[<anything>/]<cloud>/<backup>/`.
pub(crate) fn is_backup_folder(
    prefix: &str,
    namespace: Option<&str>,
    cloud: &str,
    backup: &str,
    uid: &str,
) -> bool {
    let ends_with = |own: &str| prefix == own || prefix.ends_with(&format!("/{own}"));
    let segment = |s: &str| !s.is_empty() && !s.contains('/');
    if !segment(cloud) || !segment(backup) {
        return false;
    }
    let legacy = ends_with(&format!("{cloud}/{backup}/"));
    let current = namespace.is_some_and(|namespace| {
        segment(namespace)
            && segment(uid)
            && ends_with(&format!("{namespace}/{cloud}/{backup}-{uid}/"))
    });
    legacy || current
}

/// Whether `key` is a file of a backup's own layout under `prefix` (pure): a direct child
/// (`manifest.json`, `mysql.sql`) or `metadata/<file>`. Deeper keys are not the backup's.
pub(crate) fn own_layout(prefix: &str, key: &str) -> bool {
    let Some(name) = key.strip_prefix(prefix) else {
        return false;
    };
    let file = name.strip_prefix("metadata/").unwrap_or(name);
    !file.is_empty() && !file.contains('/')
}

/// The manifest found at the prefix, as far as the deletion cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// No manifest: an incomplete backup's parts, or nothing.
    Nothing,
    /// A manifest naming its writer.
    Written(Writer),
    /// A manifest naming no writer (written before manifests did), or one that cannot be read.
    Unmarked,
}

impl Found {
    /// What `body` (a manifest's bytes) says of its writer.
    pub(crate) fn of(body: &[u8]) -> Self {
        match serde_json::from_slice::<Manifest>(body)
            .ok()
            .and_then(|m| m.writer)
        {
            Some(writer) => Self::Written(writer),
            None => Self::Unmarked,
        }
    }
}

/// Whether the files at a prefix may be deleted by backup `uid` (pure). A manifest it wrote,
/// or no manifest, yes; a manifest another backup wrote, never; one that names no writer only
/// when the backup wrote a manifest before writers were recorded (`owns_unmarked`). Err holds
/// what to say of the manifest's writer.
pub(crate) fn may_delete(found: &Found, uid: &str, owns_unmarked: bool) -> Result<(), String> {
    match found {
        Found::Nothing => Ok(()),
        Found::Written(writer) if writer.uid == uid => Ok(()),
        Found::Written(writer) => Err(format!("was written by {writer}")),
        Found::Unmarked if owns_unmarked => Ok(()),
        Found::Unmarked => Err(
            "names no backup that wrote it, and this backup did not complete before manifests named their writer"
                .to_owned(),
        ),
    }
}

/// Deletes the files; the report is also the container's termination message.
pub async fn run(args: DeleteArgs) -> Result<DeleteReport, DeleteError> {
    let store = &args.store;
    if !is_backup_folder(
        &store.prefix,
        args.namespace.as_deref(),
        &args.cloud,
        &args.backup,
        &args.backup_uid,
    ) {
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
    let found = if had_manifest {
        Found::of(&read(&s3, &store.bucket, &manifest_key).await?)
    } else {
        Found::Nothing
    };
    if let Err(whose) = may_delete(&found, &args.backup_uid, args.owns_unmarked_manifest) {
        return Err(DeleteError::NotItsManifest {
            bucket: store.bucket.clone(),
            key: manifest_key,
            whose,
            uid: args.backup_uid.clone(),
        });
    }
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

/// The bytes of `key`.
async fn read(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, RunError> {
    let found = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| s3_error("GET", bucket, key, e))?;
    let body = found
        .body
        .collect()
        .await
        .map_err(|e| s3_error("read", bucket, key, e))?;
    Ok(body.into_bytes().to_vec())
}

/// Every object of the backup's own layout under the prefix ([`own_layout`]), with its size.
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
            let key = object.key()?;
            if !own_layout(&store.prefix, key) {
                info!(key, "left alone: not a file of this backup's layout");
                return None;
            }
            Some((key.to_owned(), object.size().unwrap_or_default()))
        }));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_backups_own_folder_may_be_deleted() {
        let folder = |prefix| is_backup_folder(prefix, Some("team-a"), "fcloud", "nightly", "u1");
        for (prefix, ok) in [
            ("insync-backups/team-a/fcloud/nightly-u1/", true),
            ("team-a/fcloud/nightly-u1/", true),
            ("insync-backups/team-a/fcloud/nightly-u2/", false),
            ("insync-backups/team-b/fcloud/nightly-u1/", false),
            ("insync-backups/xteam-a/fcloud/nightly-u1/", false),
            ("insync-backups/team-a/fcloud/nightly-u1", false),
            ("insync-backups/team-a/fcloud/nightly-u1/extra/", false),
            ("insync-backups/team-a/fcloud/", false),
            // The older shape, with or without the namespace given.
            ("insync-backups/fcloud/nightly/", true),
        ] {
            assert_eq!(folder(prefix), ok, "{prefix}");
        }
        // Without the namespace only the older shape is known.
        assert!(!is_backup_folder(
            "insync-backups/team-a/fcloud/nightly-u1/",
            None,
            "fcloud",
            "nightly",
            "u1"
        ));
        // Empty or nested segments never make a folder.
        assert!(!is_backup_folder(
            "a/fcloud/nightly-/",
            Some("a"),
            "fcloud",
            "nightly",
            ""
        ));
        assert!(!is_backup_folder(
            "/fcloud/nightly-u1/",
            Some(""),
            "fcloud",
            "nightly",
            "u1"
        ));
        assert!(!is_backup_folder(
            "a/b/fcloud/nightly-u1/",
            Some("a/b"),
            "fcloud",
            "nightly",
            "u1"
        ));
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
                is_backup_folder(prefix, None, "fcloud", "nightly", "u1"),
                ok,
                "{prefix}"
            );
        }
        assert!(!is_backup_folder("a//", None, "", "", ""));
    }

    #[test]
    fn only_the_backups_own_layout_is_deleted_never_deeper_keys() {
        let prefix = "insync-backups/fcloud/nightly/";
        for (key, ok) in [
            ("insync-backups/fcloud/nightly/manifest.json", true),
            ("insync-backups/fcloud/nightly/mysql.sql", true),
            ("insync-backups/fcloud/nightly/metadata/t.jsonl", true),
            ("insync-backups/fcloud/nightly/metadata/t.schema.json", true),
            // Another backup's folder nested under an older prefix.
            (
                "insync-backups/fcloud/nightly/team-a/fcloud/x-u1/manifest.json",
                false,
            ),
            (
                "insync-backups/fcloud/nightly/metadata/deeper/t.jsonl",
                false,
            ),
            ("insync-backups/fcloud/nightly/metadata/", false),
            ("insync-backups/fcloud/nightly/", false),
            ("insync-backups/fcloud/nightly-2/manifest.json", false),
            ("insync-backups/fcloud/other/mysql.sql", false),
        ] {
            assert_eq!(own_layout(prefix, key), ok, "{key}");
        }
    }

    #[test]
    fn a_manifest_is_deleted_only_by_the_backup_that_wrote_it() {
        let writer = |uid: &str| {
            Found::Written(Writer {
                namespace: "team-a".to_owned(),
                name: "nightly".to_owned(),
                uid: uid.to_owned(),
            })
        };
        for (found, owns_unmarked, ok) in [
            (writer("u1"), false, true),
            (writer("u1"), true, true),
            (writer("u2"), false, false),
            (writer("u2"), true, false),
            (Found::Unmarked, true, true),
            (Found::Unmarked, false, false),
            (Found::Nothing, false, true),
            (Found::Nothing, true, true),
        ] {
            assert_eq!(
                may_delete(&found, "u1", owns_unmarked).is_ok(),
                ok,
                "{found:?}, owns unmarked: {owns_unmarked}"
            );
        }
        let error = DeleteError::NotItsManifest {
            bucket: "insync".to_owned(),
            key: "p/manifest.json".to_owned(),
            whose: may_delete(&writer("u2"), "u1", true).expect_err("refused"),
            uid: "u1".to_owned(),
        };
        assert_eq!(
            error.to_string(),
            "refused: s3://insync/p/manifest.json was written by backup team-a/nightly (uid u2), not by this backup (uid u1): nothing was deleted"
        );
    }

    #[test]
    fn a_manifest_says_who_wrote_it_or_counts_as_unmarked() {
        let mut manifest = crate::contract::sample_manifest(0);
        assert_eq!(
            Found::of(&serde_json::to_vec(&manifest).expect("json")),
            Found::Unmarked
        );
        assert_eq!(Found::of(b"{not json"), Found::Unmarked);
        let writer = Writer {
            namespace: "team-a".to_owned(),
            name: "nightly".to_owned(),
            uid: "u1".to_owned(),
        };
        manifest.writer = Some(writer.clone());
        assert_eq!(
            Found::of(&serde_json::to_vec(&manifest).expect("json")),
            Found::Written(writer)
        );
    }
}
