//! The Job that takes one backup: an init container in the MySQL image dumps the database in
//! one transaction to a shared emptyDir, then the operator's own image (`insync-operator
//! backup-run`) exports the metadata store, uploads every part and writes the manifest last.
//!
//! mysqldump runs from the MySQL image because it is the client that matches the server and is
//! already on the nodes; the operator image stays one static binary without a MySQL client.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::Container;
use kube::Resource;

use super::meta::Ctx;
use super::pod::{PodBuilder, Profile, image};
use super::wiring::{self, OBJECTSTORE_ACCESS_KEY_ID, OBJECTSTORE_SECRET_ACCESS_KEY, Wiring};
use super::{Component, RenderOptions};
use crate::api::{InSyncCloud, InSyncCloudBackup};

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
/// How long a backup may run before Kubernetes stops it (and it is Failed).
const DEADLINE_SECONDS: i64 = 6 * 3600;

const PROFILE: Profile = Profile {
    // The operator image's `nonroot` user; mysqldump runs as any user.
    uid: 65532,
    read_only_root: true,
    writable_dirs: &[WORK_DIR],
    cpu_request: "100m",
    memory_request: "128Mi",
    memory_limit: "1Gi",
    startup_seconds: 10,
};

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
    /// The Job could not be built (a bug).
    #[error("cannot build the backup Job: {0}")]
    Serialize(#[source] serde_json::Error),
}

/// The S3 location a backup is written to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Bucket.
    pub bucket: String,
    /// Key prefix of every part, ending with '/'.
    pub prefix: String,
}

impl Location {
    /// Reads `s3://<bucket>/<prefix>` (as a backup's `status.location` says it).
    pub fn parse(text: &str) -> Option<Self> {
        let (bucket, prefix) = text.strip_prefix("s3://")?.split_once('/')?;
        (!bucket.is_empty() && prefix.ends_with('/')).then(|| Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// `<backup>-backup`: the Job of a backup.
pub fn job_name(backup: &InSyncCloudBackup) -> String {
    format!("{}-backup", backup.backup_name())
}

/// Where `backup` of `cloud` goes: `spec.backup.destination.s3` (`<prefix><cloud>/<backup>/`),
/// or the cloud's own bucket under `insync-backups/<cloud>/<backup>/`.
pub fn location(
    cloud: &InSyncCloud,
    backup: &InSyncCloudBackup,
) -> Result<Location, BackupRenderError> {
    let options = RenderOptions::default();
    let ctx = Ctx::new(cloud, &options);
    destination(&ctx, backup).map(|(location, _)| location)
}

/// The Job that takes `backup` of `cloud`, running `runner_image` (the operator's own image).
pub fn render_job(
    cloud: &InSyncCloud,
    backup: &InSyncCloudBackup,
    runner_image: &str,
) -> Result<Job, BackupRenderError> {
    same_cloud(cloud, backup)?;
    let options = RenderOptions::default();
    let ctx = Ctx::new(cloud, &options);
    let (location, target) = destination(&ctx, backup)?;
    let sources = Wiring::default().database(&ctx).metadata_store(&ctx);

    let dump = Container {
        name: "mysqldump".to_owned(),
        image: Some(image(&ctx, Component::Mysql, Component::Mysql.name()).reference),
        command: Some(vec!["sh".to_owned(), "-c".to_owned(), dump_script()]),
        env: Some(sources.mysql_client_env()),
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        ..Container::default()
    };

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
        format!("--version={}", cloud.spec.version),
        format!("--dump={DUMP_FILE}"),
        format!("--started-at-file={STARTED_AT_FILE}"),
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
        .init_container(dump);
    task_job(
        &ctx,
        job_name(backup),
        builder,
        backup.controller_owner_ref(&()),
        &location,
    )
    .map_err(BackupRenderError::Serialize)
}

/// `<backup>-delete`: the Job that deletes an expired backup's files.
pub fn delete_job_name(backup: &InSyncCloudBackup) -> String {
    format!("{}-delete", backup.backup_name())
}

/// The Job that deletes the files of `backup` of `cloud` (`insync-operator backup-delete`):
/// at the location the cloud's destination gives it, which the caller has checked is the one
/// the backup recorded. Owned by the backup, like its other Jobs.
pub fn render_delete_job(
    cloud: &InSyncCloud,
    backup: &InSyncCloudBackup,
    runner_image: &str,
) -> Result<Job, BackupRenderError> {
    same_cloud(cloud, backup)?;
    let options = RenderOptions::default();
    let ctx = Ctx::new(cloud, &options);
    let (location, target) = destination(&ctx, backup)?;
    let mut args = vec!["backup-delete".to_owned()];
    args.extend(store_args(&location, &target));
    args.push(format!("--cloud={}", cloud.cloud_name()));
    args.push(format!("--backup={}", backup.backup_name()));
    let builder = runner_pod(&ctx, DELETE_COMPONENT, &PROFILE, runner_image)
        .label(BACKUP_LABEL, backup.backup_name().to_owned())
        .args(args)
        .env(target.keys);
    task_job(
        &ctx,
        delete_job_name(backup),
        builder,
        backup.controller_owner_ref(&()),
        &location,
    )
    .map_err(BackupRenderError::Serialize)
}

/// Refuses a backup of another cloud: its Jobs would read one cloud and write under another's
/// name.
fn same_cloud(cloud: &InSyncCloud, backup: &InSyncCloudBackup) -> Result<(), BackupRenderError> {
    if backup.spec.cloud == cloud.cloud_name() {
        return Ok(());
    }
    Err(BackupRenderError::WrongCloud {
        wanted: backup.spec.cloud.clone(),
        given: cloud.cloud_name().to_owned(),
    })
}

/// The pod of a backup, restore, verification or deletion Job: the operator's own binary from
/// `runner_image`, tagged with the cloud's version (the runner is as new as the cloud it reads).
pub(super) fn runner_pod<'a>(
    ctx: &'a Ctx<'a>,
    component: &str,
    profile: &'static Profile,
    runner_image: &str,
) -> PodBuilder<'a> {
    PodBuilder::task(
        ctx,
        component,
        profile,
        super::pod::Image {
            reference: runner_image.to_owned(),
            tag: ctx.cloud.spec.version.clone(),
        },
    )
    .command(["/insync-operator".to_owned()])
}

/// The flags that name a backup's files and their store, as `StoreArgs` reads them: the same
/// for every runner (`backup-run`, `restore-run`, `backup-delete`).
pub(super) fn store_args(location: &Location, access: &StoreAccess) -> Vec<String> {
    let mut args = vec![
        format!("--bucket={}", location.bucket),
        format!("--prefix={}", location.prefix),
        format!("--region={}", access.region),
    ];
    args.extend(access.endpoint.iter().map(|e| format!("--endpoint={e}")));
    args.extend(access.path_style.then(|| "--path-style".to_owned()));
    args
}

/// A Job that runs `builder`'s pod once to completion (a backup's or a restore's), owned by
/// `owner`: never retried (a failure is reported, and a backup is retried by the schedule),
/// stopped after six hours, every container's last words kept as its termination message.
pub(super) fn task_job(
    ctx: &Ctx<'_>,
    name: String,
    builder: PodBuilder<'_>,
    owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
    location: &Location,
) -> Result<Job, serde_json::Error> {
    let mut template = builder.build().spec;
    if let Some(pod) = template.spec.as_mut() {
        pod.restart_policy = Some("Never".to_owned());
        for container in pod.containers.iter_mut() {
            // The runner's last words (its error, or its report) are the pod's status.
            container.termination_message_policy = Some("FallbackToLogsOnError".to_owned());
        }
    }
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut metadata = ctx.unowned_meta(name, labels);
    metadata.owner_references = owner.map(|owner| vec![owner]);
    metadata.annotations = Some(BTreeMap::from([(
        "insync.dev/location".to_owned(),
        location.to_string(),
    )]));
    let job = Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(DEADLINE_SECONDS),
            template,
            ..JobSpec::default()
        }),
        status: None,
    };
    // Round-trip once so a field k8s-openapi cannot serialize shows here, not at apply time.
    serde_json::to_value(&job).and_then(serde_json::from_value)
}

/// The init container's script: note the start, then one consistent dump, the password in the
/// environment rather than on the command line (`ps` shows arguments). `--single-transaction`
/// reads every InnoDB table in one snapshot without locking writers; `--no-tablespaces` needs no
/// PROCESS privilege (the cloud's user has none).
fn dump_script() -> String {
    format!(
        "set -eu\n\
         date -u +%Y-%m-%dT%H:%M:%SZ > {STARTED_AT_FILE}\n\
         export MYSQL_PWD=\"$INSYNC_DB_PASSWORD\"\n\
         exec mysqldump --single-transaction --quick \
         --no-tablespaces --host=\"$DB_HOST\" --port=\"$DB_PORT\" --user=\"$INSYNC_DB_USER\" \
         --result-file={DUMP_FILE} \"$DB_NAME\"\n"
    )
}

/// How a runner reaches an S3 store.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreAccess {
    /// Endpoint URL; AWS when unset.
    pub endpoint: Option<String>,
    /// Region.
    pub region: String,
    /// Path-style requests (S3-compatible stores such as MinIO).
    pub path_style: bool,
    /// The keys' environment variables (from a Secret), none for the pod's identity.
    pub keys: Vec<k8s_openapi::api::core::v1::EnvVar>,
}

fn destination(
    ctx: &Ctx<'_>,
    backup: &InSyncCloudBackup,
) -> Result<(Location, StoreAccess), BackupRenderError> {
    let (bucket, root, access) = destination_root(ctx)?;
    let location = Location {
        bucket,
        prefix: format!("{root}{}/{}/", ctx.cloud.cloud_name(), backup.backup_name()),
    };
    Ok((location, access))
}

/// How this cloud's backups reach their store: `spec.backup.destination.s3`, or the cloud's
/// own object store.
pub(super) fn store_access(ctx: &Ctx<'_>) -> Result<StoreAccess, BackupRenderError> {
    destination_root(ctx).map(|(_, _, access)| access)
}

/// An S3 store named in a spec: AWS unless an endpoint is given, keys from `secret`.
pub(super) fn s3_access(
    endpoint: Option<&String>,
    region: Option<&String>,
    secret: Option<&crate::api::SecretRef>,
) -> StoreAccess {
    StoreAccess {
        endpoint: endpoint.cloned(),
        region: region.cloned().unwrap_or_else(|| "us-east-1".to_owned()),
        // S3-compatible stores behind an endpoint (MinIO) need path-style requests.
        path_style: endpoint.is_some(),
        keys: wiring::aws_keys(
            secret.map(|s| s.name.as_str()),
            OBJECTSTORE_ACCESS_KEY_ID,
            OBJECTSTORE_SECRET_ACCESS_KEY,
        ),
    }
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
    use clap::Parser;

    use super::*;
    use crate::api::{
        BackupDestination, BackupS3, BackupSpec, InSyncCloudBackupSpec, InSyncCloudSpec, SecretRef,
    };
    use crate::backup::RunnerArgs;
    use crate::render::keys;

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

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Sub,
    }
    #[derive(clap::Subcommand)]
    enum Sub {
        BackupRun(RunnerArgs),
    }

    /// The rendered runner arguments, parsed by the runner's own flags.
    fn runner_args(job: &Job) -> RunnerArgs {
        let pod = job
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("pod");
        let args = pod.containers[0].args.clone().expect("args");
        let Sub::BackupRun(args) =
            Cli::try_parse_from(std::iter::once("insync-operator".to_owned()).chain(args))
                .expect("the runner accepts what render gives it")
                .command;
        args
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
        assert_eq!(args.store.prefix, "insync-backups/fcloud/nightly/");
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
        assert_eq!(args.store.prefix, "clouds/fcloud/nightly/");
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
            "s3://offsite/clouds/fcloud/nightly/"
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
