//! The Jobs of a backup: the one that takes it, and the one that deletes an expired backup's
//! files; and where a cloud's backups go (`spec.backup.destination`, or its own object store).
//!
//! Taking one: a step in the MySQL image dumps the database in one transaction to a shared
//! emptyDir, then the operator's own image (`insync-operator backup-run`) exports the metadata
//! store, uploads every part and writes the manifest last. The pieces every backup Job shares
//! are in [`super::job`].

use k8s_openapi::api::batch::v1::Job;

use super::job::{
    Location, StoreAccess, mysql_client_step, runner_pod, runner_profile, s3_access, store_args,
    task_ctx, task_job,
};
use super::meta::Ctx;
use super::pod::Profile;
use super::wiring::Wiring;
use crate::api::{BackupS3, BackupStore, InSyncCloud, InSyncCloudBackup, StoreKind};

/// `app.kubernetes.io/component` of backup pods.
pub const BACKUP_COMPONENT: &str = "backup";
/// `app.kubernetes.io/component` of the pods that delete an expired backup's files.
pub const DELETE_COMPONENT: &str = "backup-delete";
/// Label on a backup's Job and pod: the `InSyncCloudBackup`'s name.
pub const BACKUP_LABEL: &str = "insync.dev/backup";
/// The emptyDir the dump is written to and read from.
pub const WORK_DIR: &str = "/backup";
/// The dump, written by the init container.
pub const DUMP_FILE: &str = "/backup/mysql.sql";
/// When the dump began (RFC 3339, UTC), written by the init container before it starts.
pub const STARTED_AT_FILE: &str = "/backup/started-at";

const PROFILE: Profile = runner_profile(&[WORK_DIR]);

/// Why a backup Job cannot be rendered: the user's spec, not a bug.
#[derive(Debug, thiserror::Error)]
pub enum BackupRenderError {
    /// The cloud's object store is a shared filesystem and `spec.backup.destination` is unset.
    #[error(
        "InSyncCloud {0} has no S3 destination for backups: its object store is a shared filesystem, so set spec.backup.destination.s3"
    )]
    NoDestination(String),
    /// The backup names another cloud.
    #[error("backup is for InSyncCloud {wanted}, not {given}")]
    WrongCloud {
        /// `spec.cloud` of the backup.
        wanted: String,
        /// The cloud given.
        given: String,
    },
    /// The backup has no location (it is not Complete).
    #[error("backup {0} has no location: it is not Complete")]
    NoLocation(String),
    /// The backup has no `metadata.uid` (it was never stored by the API server): its Jobs
    /// could not record or check which backup wrote the files.
    #[error("backup {0} has no uid")]
    NoUid(String),
    /// A value that would change the meaning of the Job's command line or SQL.
    #[error(transparent)]
    Unsafe(#[from] super::UnsafeValue),
    /// The Job could not be built (a bug).
    #[error("cannot build the backup Job: {0}")]
    Serialize(#[source] serde_json::Error),
}

/// `<backup>-backup`: the Job of a backup.
pub fn job_name(backup: &InSyncCloudBackup) -> String {
    format!("{}-backup", backup.backup_name())
}

/// Where `backup` of `cloud` goes: `spec.backup.destination.s3`
/// (`<prefix><namespace>/<cloud>/<backup>-<uid>/`), or the cloud's own bucket under
/// `insync-backups/<namespace>/<cloud>/<backup>-<uid>/`. The namespace keeps two tenants'
/// clouds of one name apart in a shared bucket, and the uid two backup objects of one name
/// (one deleted and made again, or re-applied without its status): no backup ever writes,
/// or deletes, under another's prefix.
pub fn location(
    cloud: &InSyncCloud,
    backup: &InSyncCloudBackup,
) -> Result<Location, BackupRenderError> {
    destination(&task_ctx(cloud), backup).map(|(location, _)| location)
}

/// The locations `backup`'s files may be at where `cloud`'s destination puts them: today's
/// [`location`], and `<root><cloud>/<backup>/`, where backups went before keys carried the
/// namespace and uid.
pub fn accepted_locations(
    cloud: &InSyncCloud,
    backup: &InSyncCloudBackup,
) -> Result<[Location; 2], BackupRenderError> {
    let ctx = task_ctx(cloud);
    let (today, _) = destination(&ctx, backup)?;
    let (bucket, root, _) = destination_root(&ctx)?;
    let before = Location {
        bucket,
        prefix: format!("{root}{}/{}/", cloud.cloud_name(), backup.backup_name()),
    };
    Ok([today, before])
}

/// How `cloud` writes its backups, for `status.store`: a restore that names one reads it the
/// same way.
pub fn store_record(cloud: &InSyncCloud) -> BackupStore {
    let destination = cloud
        .spec
        .backup
        .as_ref()
        .and_then(|b| b.destination.as_ref())
        .and_then(|d| d.s3.clone());
    if let Some(s3) = destination {
        return BackupStore {
            kind: Some(StoreKind::OffSite),
            s3: Some(s3),
        };
    }
    match &cloud.spec.object_store.s3 {
        Some(external) => BackupStore {
            kind: Some(StoreKind::CloudBucket),
            s3: Some(BackupS3 {
                bucket: external.bucket.clone(),
                prefix: None,
                endpoint: external.endpoint.clone(),
                region: Some(external.region.clone()),
                secret_ref: external.secret_ref.clone(),
            }),
        },
        // A shared filesystem has no backups without a destination.
        None => BackupStore {
            kind: cloud
                .spec
                .object_store
                .minio
                .is_some()
                .then_some(StoreKind::CloudMinio),
            s3: None,
        },
    }
}

/// The Job that takes `backup` of `cloud`, running `runner_image` (the operator's own image).
pub fn render_job(
    cloud: &InSyncCloud,
    backup: &InSyncCloudBackup,
    runner_image: &str,
) -> Result<Job, BackupRenderError> {
    let (ctx, location, target) = backup_files(cloud, backup)?;
    let uid = backup_uid(backup)?;
    let sources = Wiring::default().database(&ctx).metadata_store(&ctx);
    let dump = mysql_client_step(&ctx, "mysqldump", dump_script()).env(sources.mysql_client_env()?);

    let mut args = vec!["backup-run".to_owned()];
    args.extend(store_args(&location, &target));
    args.extend([
        format!(
            "--metadata-endpoint={}",
            sources.setting("metadata", "endpoint")
        ),
        format!(
            "--metadata-region={}",
            sources.setting("metadata", "region")
        ),
        format!("--version={}", running_version(cloud)),
        format!("--dump={DUMP_FILE}"),
        format!("--started-at-file={STARTED_AT_FILE}"),
        format!("--backup-namespace={}", backup.backup_namespace()),
        format!("--backup-name={}", backup.backup_name()),
        format!("--backup-uid={uid}"),
    ]);
    args.extend(
        sources
            .config
            .get("metadata", "table_prefix")
            .map(|p| format!("--table-prefix={p}")),
    );
    let runner_env = sources
        .env_starting_with("INSYNC_METADATA_")
        .into_iter()
        .chain(target.keys);

    let builder = runner_pod(&ctx, BACKUP_COMPONENT, &PROFILE, runner_image)
        .label(BACKUP_LABEL, backup.backup_name().to_owned())
        .args(args)
        .env(runner_env)
        .init_container(dump.build());
    task_job(&ctx, job_name(backup), builder, backup, &location)
        .map_err(BackupRenderError::Serialize)
}

/// The release the cloud runs, recorded in the manifest: `status.currentVersion`, set once
/// every component runs a version (mid-rollout it is still the one the cloud runs as a whole,
/// not `spec.version`, which only the components already rolled run); `spec.version` before
/// the cloud ever settled.
fn running_version(cloud: &InSyncCloud) -> &str {
    cloud
        .status
        .as_ref()
        .and_then(|s| s.current_version.as_deref())
        .unwrap_or(&cloud.spec.version)
}

/// The backup's `metadata.uid`, which its Jobs record in and check against the manifest.
pub(super) fn backup_uid(backup: &InSyncCloudBackup) -> Result<&str, BackupRenderError> {
    backup
        .metadata
        .uid
        .as_deref()
        .filter(|uid| !uid.is_empty())
        .ok_or_else(|| BackupRenderError::NoUid(backup.backup_name().to_owned()))
}

/// `<backup>-delete`: the Job that deletes an expired backup's files.
pub fn delete_job_name(backup: &InSyncCloudBackup) -> String {
    format!("{}-delete", backup.backup_name())
}

/// The Job that deletes the files of `backup` of `cloud` (`insync-operator backup-delete`):
/// at the location the cloud's destination gives it, which the caller has checked is the one
/// the backup recorded. Owned by the backup, like its other Jobs.
///
/// The runner deletes a manifest only when this backup wrote it (its uid), or, for a manifest
/// that names no writer, when the backup completed with a manifest before manifests recorded
/// their writer and their sha256 (`--owns-unmarked-manifest`).
pub fn render_delete_job(
    cloud: &InSyncCloud,
    backup: &InSyncCloudBackup,
    runner_image: &str,
) -> Result<Job, BackupRenderError> {
    let (ctx, _, target) = backup_files(cloud, backup)?;
    let uid = backup_uid(backup)?;
    // Where the backup recorded it wrote, if the destination puts its files there (today's
    // layout or the one before it).
    let location = backup
        .status
        .as_ref()
        .and_then(|s| s.location.as_deref())
        .and_then(Location::parse)
        .filter(|recorded| {
            accepted_locations(cloud, backup).is_ok_and(|accepted| accepted.contains(recorded))
        })
        .ok_or_else(|| BackupRenderError::NoLocation(backup.backup_name().to_owned()))?;
    let mut args = vec!["backup-delete".to_owned()];
    args.extend(store_args(&location, &target));
    args.push(format!("--cloud={}", cloud.cloud_name()));
    args.push(format!("--backup={}", backup.backup_name()));
    args.push(format!("--namespace={}", backup.backup_namespace()));
    args.push(format!("--backup-uid={uid}"));
    if owns_unmarked_manifest(backup) {
        args.push("--owns-unmarked-manifest".to_owned());
    }
    let builder = runner_pod(&ctx, DELETE_COMPONENT, &PROFILE, runner_image)
        .label(BACKUP_LABEL, backup.backup_name().to_owned())
        .args(args)
        .env(target.keys);
    task_job(&ctx, delete_job_name(backup), builder, backup, &location)
        .map_err(BackupRenderError::Serialize)
}

/// Whether `backup` wrote a manifest before manifests named their writer: it is Complete with
/// a manifest, and recorded no sha256 of it (a runner that records one also names the writer,
/// so an unmarked manifest where such a backup was is another's).
fn owns_unmarked_manifest(backup: &InSyncCloudBackup) -> bool {
    let status = backup.status.as_ref();
    backup.phase() == crate::api::BackupPhase::Complete
        && status.is_some_and(|s| s.manifest.is_some() && s.manifest_sha256.is_none())
}

/// What a Job writing or deleting `backup`'s files starts from: the cloud's context, where the
/// files go and how to reach them. A backup of another cloud is refused: its Jobs would read
/// one cloud and write under another's name.
fn backup_files<'a>(
    cloud: &'a InSyncCloud,
    backup: &InSyncCloudBackup,
) -> Result<(Ctx<'a>, Location, StoreAccess), BackupRenderError> {
    if backup.spec.cloud != cloud.cloud_name() {
        return Err(BackupRenderError::WrongCloud {
            wanted: backup.spec.cloud.clone(),
            given: cloud.cloud_name().to_owned(),
        });
    }
    let ctx = task_ctx(cloud);
    let (location, access) = destination(&ctx, backup)?;
    Ok((ctx, location, access))
}

/// The init container's script: note the start, then one consistent dump, the password in the
/// environment rather than on the command line (`ps` shows arguments). `--single-transaction`
/// reads every InnoDB table in one snapshot without locking writers; `--no-tablespaces` needs no
/// PROCESS privilege (the cloud's user has none).
fn dump_script() -> String {
    format!(
        "set -eu\n\
         export MYSQL_PWD=\"$INSYNC_DB_PASSWORD\"\n\
         {wait}\
         date -u +%Y-%m-%dT%H:%M:%SZ > {STARTED_AT_FILE}\n\
         exec mysqldump --single-transaction --quick \
         --no-tablespaces --host=\"$DB_HOST\" --port=\"$DB_PORT\" --user=\"$INSYNC_DB_USER\" \
         --result-file={DUMP_FILE} \"$DB_NAME\"\n",
        wait = super::job::wait_for_mysql()
    )
}

fn destination(
    ctx: &Ctx<'_>,
    backup: &InSyncCloudBackup,
) -> Result<(Location, StoreAccess), BackupRenderError> {
    let (bucket, root, access) = destination_root(ctx)?;
    let location = Location {
        bucket,
        prefix: format!(
            "{root}{}/{}/{}-{}/",
            backup.backup_namespace(),
            ctx.cloud.cloud_name(),
            backup.backup_name(),
            backup_uid(backup)?
        ),
    };
    Ok((location, access))
}

/// How this cloud's backups reach their store: `spec.backup.destination.s3`, or the cloud's
/// own object store.
pub(super) fn store_access(ctx: &Ctx<'_>) -> Result<StoreAccess, BackupRenderError> {
    destination_root(ctx).map(|(_, _, access)| access)
}

/// Bucket, the prefix every backup of the cloud goes under (before `<cloud>/<backup>/`), and
/// how to reach the store.
fn destination_root(ctx: &Ctx<'_>) -> Result<(String, String, StoreAccess), BackupRenderError> {
    let cloud = ctx.cloud;
    let explicit = cloud
        .spec
        .backup
        .as_ref()
        .and_then(|b| b.destination.as_ref())
        .and_then(|d| d.s3.as_ref());
    if let Some(s3) = explicit {
        return Ok((
            s3.bucket.clone(),
            s3.prefix.clone().unwrap_or_default(),
            s3_access(
                s3.endpoint.as_ref(),
                s3.region.as_ref(),
                s3.secret_ref.as_ref(),
            ),
        ));
    }
    if cloud.spec.object_store.shared_filesystem.is_some() {
        return Err(BackupRenderError::NoDestination(format!(
            "{}/{}",
            ctx.namespace(),
            cloud.cloud_name()
        )));
    }
    // The cloud's own object store, exactly as its pods reach it.
    let store = Wiring::default().object_store(ctx);
    let get = |key: &str| store.config.get("objectstore", key).map(str::to_owned);
    let access = StoreAccess {
        endpoint: get("endpoint"),
        region: get("region").unwrap_or_default(),
        path_style: get("path_style").as_deref() == Some("true"),
        keys: store.env,
    };
    Ok((
        get("bucket").unwrap_or_default(),
        "insync-backups/".to_owned(),
        access,
    ))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Container;

    use super::*;
    use crate::api::{
        BackupDestination, BackupS3, BackupSpec, InSyncCloudBackupSpec, InSyncCloudSpec, SecretRef,
    };
    use crate::render::keys;
    use crate::runner::RunnerArgs;

    const IMAGE: &str = "ghcr.io/insync-operator/insync-operator:dev";

    fn cloud() -> InSyncCloud {
        let mut cloud = InSyncCloud::new("fcloud", InSyncCloudSpec::with_version("5.9.1-r4178"));
        cloud.metadata.namespace = Some("fcloud".to_owned());
        cloud.metadata.uid = Some("cloud-uid".to_owned());
        cloud
    }

    fn backup() -> InSyncCloudBackup {
        let mut backup = InSyncCloudBackup::new(
            "nightly",
            InSyncCloudBackupSpec {
                cloud: "fcloud".to_owned(),
            },
        );
        backup.metadata.namespace = Some("fcloud".to_owned());
        backup.metadata.uid = Some("backup-uid".to_owned());
        backup
    }

    /// The rendered runner arguments, parsed by the runner's own flags.
    fn runner_args(job: &Job) -> RunnerArgs {
        let pod = job
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("pod");
        let args = pod.containers[0].args.as_ref().expect("args");
        crate::render::job::parse_runner_args("backup-run", args)
    }

    fn env_names(container: &Container) -> Vec<String> {
        container
            .env
            .iter()
            .flatten()
            .map(|e| e.name.clone())
            .collect()
    }

    #[test]
    fn the_job_dumps_mysql_then_runs_the_operator_image_against_the_clouds_own_store() {
        let job = render_job(&cloud(), &backup(), IMAGE).expect("renders");
        assert_eq!(job.metadata.name.as_deref(), Some("nightly-backup"));
        let owner = &job.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("InSyncCloudBackup", "backup-uid")
        );
        let spec = job.spec.as_ref().expect("spec");
        assert_eq!(spec.backoff_limit, Some(0));
        // Cleaned up a day after it finishes (a schedule's Jobs do not pile up).
        assert_eq!(spec.ttl_seconds_after_finished, Some(86_400));
        let pod = spec.template.spec.as_ref().expect("pod");
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.automount_service_account_token, Some(false));

        let dump = &pod.init_containers.as_ref().expect("init")[0];
        assert_eq!(
            dump.image.as_deref(),
            Some("registry.example.com/insync/mysql:8.4.5")
        );
        let script = &dump.command.as_ref().expect("command")[2];
        assert!(
            script.contains("mysqldump --single-transaction"),
            "{script}"
        );
        assert_eq!(
            env_names(dump),
            [
                "DB_HOST",
                "DB_PORT",
                "DB_NAME",
                "INSYNC_DB_USER",
                "INSYNC_DB_PASSWORD"
            ]
        );
        let runner = &pod.containers[0];
        assert_eq!(runner.image.as_deref(), Some(IMAGE));
        assert_eq!(
            env_names(runner),
            [
                "INSYNC_METADATA_ACCESS_KEY_ID",
                "INSYNC_METADATA_SECRET_ACCESS_KEY",
                "INSYNC_OBJECTSTORE_ACCESS_KEY_ID",
                "INSYNC_OBJECTSTORE_SECRET_ACCESS_KEY"
            ]
        );
        let args = runner_args(&job);
        assert_eq!(args.store.bucket, "insync");
        assert_eq!(
            args.store.prefix,
            "insync-backups/fcloud/fcloud/nightly-backup-uid/"
        );
        assert_eq!(
            args.store.endpoint.as_deref(),
            Some("http://fcloud-minio.fcloud.svc.cluster.local:9000")
        );
        assert!(args.store.path_style);
        assert_eq!(
            args.metadata_endpoint,
            "http://fcloud-bynamo.fcloud.svc.cluster.local:8000"
        );
        assert_eq!(args.dump.to_str(), Some(DUMP_FILE));
        assert_eq!(args.version, "5.9.1-r4178");
        assert_eq!(
            (
                args.backup_namespace.as_str(),
                args.backup_name.as_str(),
                args.backup_uid.as_str()
            ),
            ("fcloud", "nightly", "backup-uid")
        );
    }

    #[test]
    fn the_manifest_records_the_version_the_cloud_runs_not_the_one_it_rolls_to() {
        let mut cloud = cloud();
        // Mid-rollout: spec.version is the target; every component last ran 5.9.0.
        cloud.spec.version = "5.9.2-r4200".to_owned();
        cloud.status = Some(crate::api::InSyncCloudStatus {
            current_version: Some("5.9.0-r4100".to_owned()),
            target_version: Some("5.9.2-r4200".to_owned()),
            ..Default::default()
        });
        let job = render_job(&cloud, &backup(), IMAGE).expect("renders");
        assert_eq!(runner_args(&job).version, "5.9.0-r4100");
        // A cloud that never settled has no currentVersion yet.
        cloud.status = None;
        let job = render_job(&cloud, &backup(), IMAGE).expect("renders");
        assert_eq!(runner_args(&job).version, "5.9.2-r4200");
    }

    #[test]
    fn a_backup_without_a_uid_has_no_jobs() {
        let mut backup = backup();
        backup.metadata.uid = None;
        assert!(matches!(
            render_job(&cloud(), &backup, IMAGE),
            Err(BackupRenderError::NoUid(name)) if name == "nightly"
        ));
        assert!(matches!(
            render_delete_job(&cloud(), &backup, IMAGE),
            Err(BackupRenderError::NoUid(_))
        ));
    }

    /// The delete Job's runner arguments, parsed by the runner's own flags.
    fn delete_args(backup: &InSyncCloudBackup) -> crate::runner::delete::DeleteArgs {
        let job = render_delete_job(&cloud(), backup, IMAGE).expect("renders");
        let pod = job.spec.and_then(|s| s.template.spec).expect("pod");
        let args = pod.containers[0].args.as_ref().expect("args");
        crate::render::job::parse_runner_args("backup-delete", args)
    }

    #[test]
    fn the_delete_job_names_the_backup_and_whether_it_owns_an_unmarked_manifest() {
        use crate::api::{BackupPhase, InSyncCloudBackupStatus};
        let mut backup = backup();
        let at = location(&cloud(), &backup).expect("a location").to_string();
        // Where it wrote is read from its status, and must be where the destination puts it.
        assert!(matches!(
            render_delete_job(&cloud(), &backup, IMAGE),
            Err(BackupRenderError::NoLocation(_))
        ));
        backup.status = Some(InSyncCloudBackupStatus {
            location: Some("s3://insync/insync-backups/elsewhere/nightly/".to_owned()),
            ..Default::default()
        });
        assert!(matches!(
            render_delete_job(&cloud(), &backup, IMAGE),
            Err(BackupRenderError::NoLocation(_))
        ));
        backup.status = Some(InSyncCloudBackupStatus {
            location: Some(at.clone()),
            ..Default::default()
        });
        let args = delete_args(&backup);
        assert_eq!(
            args.store.prefix,
            "insync-backups/fcloud/fcloud/nightly-backup-uid/"
        );
        assert_eq!(
            (
                args.cloud.as_str(),
                args.backup.as_str(),
                args.namespace.as_deref(),
                args.backup_uid.as_str()
            ),
            ("fcloud", "nightly", Some("fcloud"), "backup-uid")
        );
        assert!(crate::runner::delete::is_backup_folder(
            &args.store.prefix,
            args.namespace.as_deref(),
            &args.cloud,
            &args.backup,
            &args.backup_uid
        ));
        assert!(!args.owns_unmarked_manifest, "no status: it wrote nothing");
        // Complete with a manifest and no sha256 of it: written before manifests named their
        // writer.
        backup.status = Some(InSyncCloudBackupStatus {
            phase: Some(BackupPhase::Complete),
            location: Some("s3://insync/insync-backups/fcloud/nightly/".to_owned()),
            manifest: Some("insync-backups/fcloud/nightly/manifest.json".to_owned()),
            ..Default::default()
        });
        let before = delete_args(&backup);
        assert!(before.owns_unmarked_manifest);
        assert_eq!(
            before.store.prefix, "insync-backups/fcloud/nightly/",
            "the old layout"
        );
        // A backup that recorded the sha256 wrote a manifest naming itself.
        backup.status.as_mut().expect("status").manifest_sha256 = Some("ab".repeat(32));
        assert!(!delete_args(&backup).owns_unmarked_manifest);
        // A failed backup wrote no manifest.
        backup.status = Some(InSyncCloudBackupStatus {
            phase: Some(BackupPhase::Failed),
            location: Some(at),
            manifest: None,
            ..Default::default()
        });
        assert!(!delete_args(&backup).owns_unmarked_manifest);
    }

    #[test]
    fn both_containers_are_restricted_and_share_only_the_work_dir() {
        let job = render_job(&cloud(), &backup(), IMAGE).expect("renders");
        let pod = job.spec.and_then(|s| s.template.spec).expect("pod");
        let security = pod.security_context.as_ref().expect("pod security");
        assert_eq!(security.run_as_non_root, Some(true));
        assert_eq!(
            security.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
            Some("RuntimeDefault")
        );
        crate::render::pod::assert_restricted(&pod);
        for container in pod.init_containers.iter().flatten().chain(&pod.containers) {
            let mounts: Vec<&str> = container
                .volume_mounts
                .iter()
                .flatten()
                .map(|m| m.mount_path.as_str())
                .collect();
            assert_eq!(mounts, ["/tmp", WORK_DIR], "{}", container.name);
            assert_eq!(
                container.termination_message_policy.as_deref(),
                Some("FallbackToLogsOnError")
            );
        }
    }

    #[test]
    fn backup_pods_reach_the_datastores_but_no_service_selects_them() {
        let job = render_job(&cloud(), &backup(), IMAGE).expect("renders");
        let labels = job
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.labels)
            .expect("labels");
        // The NetworkPolicies admit the cloud's instance labels.
        assert_eq!(
            labels.get(keys::INSTANCE).map(String::as_str),
            Some("fcloud")
        );
        assert_eq!(labels.get(keys::NAME).map(String::as_str), Some("insync"));
        // Component Services select by component; this one is no component's.
        assert_eq!(
            labels.get(keys::COMPONENT).map(String::as_str),
            Some(BACKUP_COMPONENT)
        );
        assert_eq!(
            labels.get(BACKUP_LABEL).map(String::as_str),
            Some("nightly")
        );
    }

    #[test]
    fn an_s3_destination_uses_its_bucket_prefix_endpoint_and_secret() {
        let mut cloud = cloud();
        cloud.spec.backup = Some(BackupSpec {
            destination: Some(BackupDestination {
                s3: Some(BackupS3 {
                    bucket: "offsite".to_owned(),
                    prefix: Some("clouds/".to_owned()),
                    endpoint: Some("http://minio.backups:9000".to_owned()),
                    region: None,
                    secret_ref: Some(SecretRef {
                        name: "offsite-keys".to_owned(),
                    }),
                }),
            }),
            ..BackupSpec::default()
        });
        let job = render_job(&cloud, &backup(), IMAGE).expect("renders");
        let args = runner_args(&job);
        assert_eq!(args.store.bucket, "offsite");
        assert_eq!(
            args.store.prefix,
            "clouds/fcloud/fcloud/nightly-backup-uid/"
        );
        assert_eq!(args.store.region, "us-east-1");
        assert!(args.store.path_style);
        let pod = job.spec.and_then(|s| s.template.spec).expect("pod");
        let secrets: Vec<(String, String)> = pod.containers[0]
            .env
            .iter()
            .flatten()
            .filter(|e| e.name.starts_with("INSYNC_OBJECTSTORE_"))
            .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
            .map(|s| (s.name.clone(), s.key.clone()))
            .collect();
        assert_eq!(
            secrets,
            [
                ("offsite-keys".to_owned(), "accessKeyId".to_owned()),
                ("offsite-keys".to_owned(), "secretAccessKey".to_owned())
            ]
        );
        assert_eq!(
            location(&cloud, &backup()).expect("location").to_string(),
            "s3://offsite/clouds/fcloud/fcloud/nightly-backup-uid/"
        );
    }

    #[test]
    fn a_backup_of_another_cloud_is_refused() {
        let mut backup = backup();
        backup.spec.cloud = "other".to_owned();
        assert!(matches!(
            render_job(&cloud(), &backup, IMAGE),
            Err(BackupRenderError::WrongCloud { .. })
        ));
    }
}
