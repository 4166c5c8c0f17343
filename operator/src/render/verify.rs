//! The Job that proves a backup restores (`spec.backup.verify`): the restore Job's steps run
//! against throwaway datastores inside the Job's own pod, then the pod (and with it every
//! throwaway piece) is gone.
//!
//! Native sidecars (init containers with `restartPolicy: Always`) hold the throwaway MySQL and
//! metadata store, each on an emptyDir, each started (its startup probe passed) before the next
//! step runs. Then, as in a restore: `fetch` compares every part's size and sha256 with the
//! manifest, the MySQL image's client loads the dump, and `restore-run --step=metadata` creates
//! and fills each table and counts its items against the manifest. When that last container
//! exits the kubelet stops the sidecars, and the Job is done.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::EnvVar;

use super::backup::{BACKUP_LABEL, BackupRenderError, backup_uid, store_access};
use super::container::ContainerBuilder;
use super::job::{Location, runner_pod, task_ctx, task_job};
use super::pod::{env, image};
use super::restore::{PROFILE, Source, fetch_step, load_mysql_step, metadata_args};
use super::{Component, bynamo, mysql};
use crate::api::{InSyncCloud, InSyncCloudBackup};

/// `app.kubernetes.io/component` of verification pods.
pub const VERIFY_COMPONENT: &str = "verify";
const SCRATCH_MYSQL_PORT: i32 = 3306;
const SCRATCH_BYNAMO_PORT: i32 = 8000;

/// `<backup>-verify`.
pub fn verify_job_name(backup: &InSyncCloudBackup) -> String {
    format!("{}-verify", backup.backup_name())
}

/// The Job that restores a Complete `backup` of `cloud` into throwaway datastores and checks
/// it, reading it where its status says, the way it was written.
///
/// `scratch_secret` is the throwaway stores' password and keys, made afresh for each Job by
/// the controller (render stays pure): the stores hold a full copy of the tenant's catalogue
/// for minutes. They are reachable only from inside the pod: MySQL listens on 127.0.0.1 only,
/// and the cloud's default-deny NetworkPolicy admits no connection to a Job's pod.
pub fn render_verify_job(
    cloud: &InSyncCloud,
    backup: &InSyncCloudBackup,
    runner_image: &str,
    scratch_secret: &str,
) -> Result<Job, BackupRenderError> {
    let ctx = task_ctx(cloud);
    let location = backup
        .status
        .as_ref()
        .and_then(|s| s.location.as_deref())
        .and_then(Location::parse)
        .ok_or_else(|| BackupRenderError::NoLocation(backup.backup_name().to_owned()))?;
    let status = backup.status.as_ref();
    let source = Source {
        location,
        access: store_access(&ctx)?,
        // What the backup recorded when it completed: a replaced prefix does not pass.
        manifest_sha256: status.and_then(|s| s.manifest_sha256.clone()),
        backup_uid: Some(backup_uid(backup)?.to_owned()),
    };

    let mysql_image = image(&ctx, Component::Mysql, Component::Mysql.name()).reference;
    let scratch_mysql = ContainerBuilder::sidecar("scratch-mysql", mysql_image)
        // The official image's entrypoint passes flags on to the server.
        .args(["--bind-address=127.0.0.1".to_owned()])
        .env([
            env("MYSQL_DATABASE", mysql::DATABASE),
            env("MYSQL_USER", mysql::USER),
            env("MYSQL_PASSWORD", scratch_secret),
            env("MYSQL_ROOT_PASSWORD", scratch_secret),
        ])
        // mysqladmin's ping answers "alive" once the server accepts connections, whatever
        // the credentials.
        .listens_locally(
            SCRATCH_MYSQL_PORT,
            &[
                "mysqladmin",
                "--host=127.0.0.1",
                "--port=3306",
                "--connect-timeout=2",
                "ping",
            ],
        )
        .scratch("scratch-mysql-data", "/var/lib/mysql")
        .scratch("scratch-mysql-run", "/var/run/mysqld")
        // Each image's own user (docs/images.md): MySQL's data directory must be its own.
        .run_as(mysql::PROFILE.uid);
    let bynamo_image = image(&ctx, Component::Bynamo, Component::Bynamo.name()).reference;
    let scratch_bynamo = ContainerBuilder::sidecar("scratch-bynamo", bynamo_image)
        .env([
            env("BYNAMO_NODE_NAME", "scratch"),
            env("BYNAMO_PORT", SCRATCH_BYNAMO_PORT.to_string()),
            env("BYNAMO_DATA_DIR", "/data"),
            env("BYNAMO_PEERS", ""),
            env("BYNAMO_ACCESS_KEY_ID", scratch_secret),
            env("BYNAMO_SECRET_ACCESS_KEY", scratch_secret),
        ])
        .listens_on(SCRATCH_BYNAMO_PORT)
        .scratch("scratch-bynamo-data", "/data")
        .run_as(bynamo::PROFILE.uid);
    let fetch = fetch_step(&source, runner_image);
    let load_mysql = load_mysql_step(
        &ctx,
        vec![
            env("DB_HOST", "127.0.0.1"),
            env("DB_PORT", SCRATCH_MYSQL_PORT.to_string()),
            env("DB_NAME", mysql::DATABASE),
            env("INSYNC_DB_USER", mysql::USER),
            env("INSYNC_DB_PASSWORD", scratch_secret),
        ],
    );
    let args = metadata_args(
        &source,
        &format!("http://127.0.0.1:{SCRATCH_BYNAMO_PORT}"),
        "us-east-1",
    );
    let metadata_keys: Vec<EnvVar> = vec![
        env("INSYNC_METADATA_ACCESS_KEY_ID", scratch_secret),
        env("INSYNC_METADATA_SECRET_ACCESS_KEY", scratch_secret),
    ];
    let builder = runner_pod(&ctx, VERIFY_COMPONENT, &PROFILE, runner_image)
        .label(BACKUP_LABEL, backup.backup_name().to_owned())
        .args(args)
        .env(metadata_keys)
        .init_container(scratch_mysql.build())
        .init_container(scratch_bynamo.build())
        .init_container(fetch.build())
        .init_container(load_mysql.build());
    task_job(
        &ctx,
        verify_job_name(backup),
        builder,
        backup,
        &source.location,
    )
    .map_err(BackupRenderError::Serialize)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Container;

    use super::*;
    use crate::api::{InSyncCloudBackupSpec, InSyncCloudSpec};

    #[test]
    fn the_throwaway_stores_are_sidecars_started_before_the_restore_steps() {
        let mut cloud = InSyncCloud::new("fcloud", InSyncCloudSpec::with_version("5.9.1-r4178"));
        cloud.metadata.namespace = Some("fcloud".to_owned());
        let mut backup = InSyncCloudBackup::new(
            "nightly",
            InSyncCloudBackupSpec {
                cloud: "fcloud".to_owned(),
            },
        );
        backup.metadata.namespace = Some("fcloud".to_owned());
        backup.metadata.uid = Some("backup-uid".to_owned());
        backup.status = Some(crate::api::InSyncCloudBackupStatus {
            phase: Some(crate::api::BackupPhase::Complete),
            location: Some("s3://insync/insync-backups/fcloud/nightly/".to_owned()),
            manifest_sha256: Some("ab".repeat(32)),
            ..Default::default()
        });
        let job = render_verify_job(&cloud, &backup, "operator:dev", "s3cr3t").expect("renders");
        assert_eq!(job.metadata.name.as_deref(), Some("nightly-verify"));
        let pod = job.spec.and_then(|s| s.template.spec).expect("pod");
        let inits = pod.init_containers.as_ref().expect("inits");
        let order: Vec<(&str, Option<&str>)> = inits
            .iter()
            .map(|c| (c.name.as_str(), c.restart_policy.as_deref()))
            .collect();
        assert_eq!(
            order,
            [
                ("scratch-mysql", Some("Always")),
                ("scratch-bynamo", Some("Always")),
                ("fetch", None),
                ("mysql", None)
            ]
        );
        assert!(inits[0].startup_probe.is_some() && inits[1].startup_probe.is_some());
        let uid = |c: &Container| c.security_context.as_ref().and_then(|s| s.run_as_user);
        assert_eq!(uid(&inits[0]), Some(999));
        assert_eq!(uid(&inits[1]), Some(10001));
        let fetch: crate::runner::restore::RestoreArgs = crate::render::job::parse_runner_args(
            "restore-run",
            inits[2].args.as_ref().expect("args"),
        );
        assert_eq!(fetch.manifest_sha256, Some("ab".repeat(32)));
        assert_eq!(fetch.backup_uid.as_deref(), Some("backup-uid"));
        let main = &pod.containers[0];
        assert!(
            main.args
                .iter()
                .flatten()
                .any(|a| a == "--metadata-endpoint=http://127.0.0.1:8000")
        );
        crate::render::pod::assert_restricted(&pod);

        // Issue 18, item 1: the throwaway MySQL listens on 127.0.0.1 only (started by a check
        // made inside the container), and its password is the Job's own, not a fixed one.
        assert_eq!(
            inits[0].args.as_deref(),
            Some(&["--bind-address=127.0.0.1".to_owned()][..])
        );
        let probe = inits[0].startup_probe.as_ref().expect("probe");
        assert!(
            probe.tcp_socket.is_none() && probe.exec.is_some(),
            "{probe:?}"
        );
        let secrets: Vec<&str> = inits
            .iter()
            .chain(&pod.containers)
            .flat_map(|c| c.env.iter().flatten())
            .filter(|e| e.name.contains("PASSWORD") || e.name.contains("SECRET"))
            .filter_map(|e| e.value.as_deref())
            .collect();
        assert!(
            !secrets.is_empty() && secrets.iter().all(|v| *v == "s3cr3t"),
            "{secrets:?}"
        );
    }
}
