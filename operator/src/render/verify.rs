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
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, Probe, SecurityContext, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;

use super::backup::{BackupRenderError, Location, runner_pod, store_access, task_job};
use super::meta::Ctx;
use super::pod::{env, image};
use super::restore::{PROFILE, fetch_container, load_mysql_container, metadata_args};
use super::{Component, RenderOptions};
use crate::api::{InSyncCloud, InSyncCloudBackup};

/// `app.kubernetes.io/component` of verification pods.
pub const VERIFY_COMPONENT: &str = "verify";
/// The throwaway stores' keys and password: they live minutes, inside one pod, and hold a copy
/// of what the backup already holds.
const SCRATCH_SECRET: &str = "verify-only";
const SCRATCH_MYSQL_PORT: i32 = 3306;
const SCRATCH_BYNAMO_PORT: i32 = 8000;

/// `<backup>-verify`.
pub fn verify_job_name(backup: &InSyncCloudBackup) -> String {
    format!("{}-verify", backup.backup_name())
}

/// The Job that restores a Complete `backup` of `cloud` into throwaway datastores and checks
/// it, reading it where its status says, the way the cloud writes its backups.
pub fn render_verify_job(
    cloud: &InSyncCloud,
    backup: &InSyncCloudBackup,
    runner_image: &str,
) -> Result<Job, BackupRenderError> {
    let options = RenderOptions::default();
    let ctx = Ctx::new(cloud, &options);
    let location = backup
        .status
        .as_ref()
        .and_then(|s| s.location.as_deref())
        .and_then(Location::parse)
        .ok_or_else(|| BackupRenderError::NoLocation(backup.backup_name().to_owned()))?;
    let source = super::restore::Source {
        location,
        access: store_access(&ctx)?,
    };
    let always = Some("Always".to_owned());

    let mysql = Container {
        name: "scratch-mysql".to_owned(),
        image: Some(image(&ctx, Component::Mysql, Component::Mysql.name()).reference),
        env: Some(vec![
            env("MYSQL_DATABASE", super::mysql::DATABASE),
            env("MYSQL_USER", super::mysql::USER),
            env("MYSQL_PASSWORD", SCRATCH_SECRET),
            env("MYSQL_ROOT_PASSWORD", SCRATCH_SECRET),
        ]),
        ports: Some(vec![port(SCRATCH_MYSQL_PORT)]),
        startup_probe: Some(tcp_probe(SCRATCH_MYSQL_PORT)),
        restart_policy: always.clone(),
        volume_mounts: Some(vec![
            mount("scratch-mysql-data", "/var/lib/mysql"),
            mount("scratch-mysql-run", "/var/run/mysqld"),
        ]),
        ..Container::default()
    };
    let bynamo = Container {
        name: "scratch-bynamo".to_owned(),
        image: Some(image(&ctx, Component::Bynamo, Component::Bynamo.name()).reference),
        env: Some(vec![
            env("BYNAMO_NODE_NAME", "scratch"),
            env("BYNAMO_PORT", SCRATCH_BYNAMO_PORT.to_string()),
            env("BYNAMO_DATA_DIR", "/data"),
            env("BYNAMO_PEERS", ""),
            env("BYNAMO_ACCESS_KEY_ID", SCRATCH_SECRET),
            env("BYNAMO_SECRET_ACCESS_KEY", SCRATCH_SECRET),
        ]),
        ports: Some(vec![port(SCRATCH_BYNAMO_PORT)]),
        startup_probe: Some(tcp_probe(SCRATCH_BYNAMO_PORT)),
        restart_policy: always,
        volume_mounts: Some(vec![mount("scratch-bynamo-data", "/data")]),
        ..Container::default()
    };
    let fetch = fetch_container(&source, runner_image);
    let load_mysql = load_mysql_container(
        &ctx,
        vec![
            env("DB_HOST", "127.0.0.1"),
            env("DB_PORT", SCRATCH_MYSQL_PORT.to_string()),
            env("DB_NAME", super::mysql::DATABASE),
            env("INSYNC_DB_USER", super::mysql::USER),
            env("INSYNC_DB_PASSWORD", SCRATCH_SECRET),
        ],
    );
    let args = metadata_args(
        &source,
        &format!("http://127.0.0.1:{SCRATCH_BYNAMO_PORT}"),
        "us-east-1",
    );
    let metadata_keys: Vec<EnvVar> = vec![
        env("INSYNC_METADATA_ACCESS_KEY_ID", SCRATCH_SECRET),
        env("INSYNC_METADATA_SECRET_ACCESS_KEY", SCRATCH_SECRET),
    ];
    let builder = runner_pod(&ctx, VERIFY_COMPONENT, &PROFILE, runner_image)
        .label(super::backup::BACKUP_LABEL, backup.backup_name().to_owned())
        .args(args)
        .env(metadata_keys)
        .init_container(mysql)
        .init_container(bynamo)
        .init_container(fetch)
        .init_container(load_mysql);
    let mut job = task_job(
        &ctx,
        verify_job_name(backup),
        builder,
        backup.controller_owner_ref(&()),
        &source.location,
    )
    .map_err(BackupRenderError::Serialize)?;
    if let Some(pod) = job.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        let volumes = pod.volumes.get_or_insert_with(Vec::new);
        for name in [
            "scratch-mysql-data",
            "scratch-mysql-run",
            "scratch-bynamo-data",
        ] {
            volumes.push(Volume {
                name: name.to_owned(),
                empty_dir: Some(Default::default()),
                ..Volume::default()
            });
        }
        // Each image's own user (docs/images.md): MySQL's data directory must be its own.
        for init in pod.init_containers.iter_mut().flatten() {
            let uid = match init.name.as_str() {
                "scratch-mysql" => Some(999),
                "scratch-bynamo" => Some(10001),
                _ => None,
            };
            if let (Some(uid), Some(security)) = (uid, init.security_context.as_mut()) {
                *security = SecurityContext {
                    run_as_user: Some(uid),
                    run_as_group: Some(uid),
                    ..security.clone()
                };
            }
        }
    }
    Ok(job)
}

fn port(number: i32) -> ContainerPort {
    ContainerPort {
        container_port: number,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        ..VolumeMount::default()
    }
}

/// Started once the port accepts connections; up to 5 minutes (MySQL initialises first).
fn tcp_probe(port: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port),
            host: None,
        }),
        period_seconds: Some(2),
        failure_threshold: Some(150),
        ..Probe::default()
    }
}

#[cfg(test)]
mod tests {
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
            ..Default::default()
        });
        let job = render_verify_job(&cloud, &backup, "operator:dev").expect("renders");
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
        let main = &pod.containers[0];
        assert!(
            main.args
                .iter()
                .flatten()
                .any(|a| a == "--metadata-endpoint=http://127.0.0.1:8000")
        );
        crate::render::pod::assert_restricted(&pod);
    }
}
