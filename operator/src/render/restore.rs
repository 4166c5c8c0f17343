//! The Jobs of a restore (`spec.restore`), in the order the controller runs them:
//!
//! 1. `<cloud>-restore-check` (the operator's image, `restore-run --step=check`): reads the
//!    manifest and every part and compares sizes and checksums. It runs before anything of the
//!    cloud does, so a wrong backup starts nothing.
//! 2. `<cloud>-restore`, once the datastores are ready: `fetch` (checks again, keeping the
//!    parts in an emptyDir), then the MySQL image's client loads `mysql.sql` into the empty
//!    database, then `restore-run --step=metadata` loads the metadata store.
//!
//! Both are pods of the same restricted shape as the backup Job's ([`super::job`]), owned by
//! the cloud. A verification ([`super::verify`]) runs the second one's steps too.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::EnvVar;

use super::backup::BackupRenderError;
use super::backup::store_record;
use super::container::ContainerBuilder;
use super::job::{
    Location, StoreAccess, mysql_client_step, runner_pod, runner_profile, runner_step, s3_access,
    store_args, task_ctx, task_job,
};
use super::meta::Ctx;
use super::pod::Profile;
use super::wiring::Wiring;
use crate::api::{BackupStore, InSyncCloud, InSyncCloudBackup, ObjectStoreSpec, StoreKind};

/// `app.kubernetes.io/component` of restore pods.
pub const RESTORE_COMPONENT: &str = "restore";
/// The emptyDir the parts are fetched into.
pub const WORK_DIR: &str = "/restore";

pub(super) const PROFILE: Profile = runner_profile(&[WORK_DIR]);

/// Where the backup to restore is, and how to reach it.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// Bucket and the backup's own prefix.
    pub location: Location,
    /// Endpoint, region, keys.
    pub access: StoreAccess,
    /// The sha256 of manifest.json its backup object recorded when it completed; `None` for an
    /// S3 location, or a backup taken before it was recorded.
    pub manifest_sha256: Option<String>,
    /// The uid of its backup object; `None` for an S3 location.
    pub backup_uid: Option<String>,
}

/// Why a restore cannot start: the user's spec, not a bug.
#[derive(Debug, thiserror::Error)]
pub enum RestoreRenderError {
    /// `spec.restore.backup` names a backup that does not exist or is not Complete.
    #[error("InSyncCloudBackup {name} {why}")]
    Backup {
        /// The backup's name.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// The backup is kept in the restoring cloud's own MinIO, which cannot run before the
    /// restore: final.
    #[error(
        "InSyncCloudBackup {name} is kept in the MinIO of InSyncCloud {cloud}, this cloud's own object store, which does not run before its restore (and whose data the restore replaces): a backup kept in its cloud's object store is lost with it. Restore from a backup written to an off-site destination (spec.backup.destination.s3), or give spec.restore.s3 the location of a copy"
    )]
    InOwnMinio {
        /// The backup.
        name: String,
        /// The cloud whose MinIO holds it.
        cloud: String,
    },
    /// The store the backup is read from cannot be worked out.
    #[error(transparent)]
    Store(#[from] BackupRenderError),
    /// The Job could not be built (a bug).
    #[error("cannot build the restore Job: {0}")]
    Serialize(#[source] serde_json::Error),
}

impl RestoreRenderError {
    /// Whether the restore can never read this backup (a wait would change nothing): a
    /// missing or unfinished backup may yet appear or complete.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::InOwnMinio { .. })
    }
}

/// `<cloud>-restore-check`.
pub fn check_job_name(cloud: &InSyncCloud) -> String {
    format!("{}-restore-check", cloud.cloud_name())
}

/// `<cloud>-restore`.
pub fn restore_job_name(cloud: &InSyncCloud) -> String {
    format!("{}-restore", cloud.cloud_name())
}

/// The backup `spec.restore` names: an S3 location as given, or a backup object of the
/// namespace (`backup`, read by the caller) at its recorded location, reached the way this
/// cloud writes its own backups.
pub fn source(
    cloud: &InSyncCloud,
    backup: Option<&InSyncCloudBackup>,
) -> Result<Option<Source>, RestoreRenderError> {
    let Some(restore) = &cloud.spec.restore else {
        return Ok(None);
    };
    if let Some(s3) = &restore.s3 {
        return Ok(Some(Source {
            location: Location {
                bucket: s3.bucket.clone(),
                prefix: s3.prefix.clone(),
            },
            access: s3_access(
                s3.endpoint.as_ref(),
                s3.region.as_ref(),
                s3.secret_ref.as_ref(),
            ),
            manifest_sha256: None,
            backup_uid: None,
        }));
    }
    let name = restore.backup.clone().unwrap_or_default();
    let missing = |why: &str| RestoreRenderError::Backup {
        name: name.clone(),
        why: why.to_owned(),
    };
    let backup = backup.ok_or_else(|| missing("does not exist in this namespace"))?;
    let status = backup.status.clone().unwrap_or_default();
    if backup.phase() != crate::api::BackupPhase::Complete {
        return Err(missing("is not Complete"));
    }
    let location = status
        .location
        .as_deref()
        .and_then(Location::parse)
        .ok_or_else(|| missing("has no location in its status"))?;
    Ok(Some(Source {
        location,
        access: recorded_access(cloud, backup)?,
        manifest_sha256: status.manifest_sha256,
        backup_uid: backup.metadata.uid.clone(),
    }))
}

/// How to reach a backup object's files: the way its status says they were written. A
/// backup in a cloud's MinIO is read through that cloud's Service with its generated keys,
/// which works only while that cloud, and not the one being restored, runs it: the restoring
/// cloud's own MinIO does not run before the restore, so a backup kept there is refused at
/// once, saying why. A backup from before the store was recorded is read the way the
/// restoring cloud writes its backups (as it always was).
fn recorded_access(
    cloud: &InSyncCloud,
    backup: &InSyncCloudBackup,
) -> Result<StoreAccess, RestoreRenderError> {
    let recorded = backup.status.as_ref().and_then(|s| s.store.clone());
    let in_minio_of = match recorded {
        Some(BackupStore { s3: Some(s3), .. }) => {
            return Ok(s3_access(
                s3.endpoint.as_ref(),
                s3.region.as_ref(),
                s3.secret_ref.as_ref(),
            ));
        }
        Some(BackupStore {
            kind: Some(StoreKind::CloudMinio),
            ..
        }) => backup.spec.cloud.clone(),
        // Before `status.store`: where this cloud's backups go; its own MinIO when it has no
        // destination, which is the backup's cloud's if that is this one.
        _ if store_record(cloud).kind == Some(StoreKind::CloudMinio) => backup.spec.cloud.clone(),
        _ => return Ok(super::backup::store_access(&task_ctx(cloud))?),
    };
    if in_minio_of == cloud.cloud_name() {
        return Err(RestoreRenderError::InOwnMinio {
            name: backup.backup_name().to_owned(),
            cloud: in_minio_of,
        });
    }
    // Another cloud's MinIO, reached as that cloud's own pods reach it: its Service and its
    // generated keys are named after it.
    let mut writer = cloud.clone();
    writer.metadata.name = Some(in_minio_of);
    writer.spec.backup = None;
    writer.spec.object_store = ObjectStoreSpec::default();
    Ok(super::backup::store_access(&task_ctx(&writer))?)
}

/// The Job that checks the backup and writes nothing.
pub fn render_check_job(
    cloud: &InSyncCloud,
    source: &Source,
    runner_image: &str,
) -> Result<Job, RestoreRenderError> {
    let ctx = task_ctx(cloud);
    let builder = runner_pod(&ctx, RESTORE_COMPONENT, &PROFILE, runner_image)
        .args(checked_args("check", source))
        .env(source.access.keys.iter().cloned());
    task_job(
        &ctx,
        check_job_name(cloud),
        builder,
        cloud,
        &source.location,
    )
    .map_err(RestoreRenderError::Serialize)
}

/// The Job that fetches the backup (checking it again), loads MySQL, then the metadata store.
pub fn render_restore_job(
    cloud: &InSyncCloud,
    source: &Source,
    runner_image: &str,
) -> Result<Job, RestoreRenderError> {
    let ctx = task_ctx(cloud);
    let sources = Wiring::default().database(&ctx).metadata_store(&ctx);
    let fetch = fetch_step(source, runner_image);
    let load_mysql = load_mysql_step(
        &ctx,
        sources
            .mysql_client_env()
            .map_err(BackupRenderError::from)?,
    );
    let args = metadata_args(
        source,
        &sources.setting("metadata", "endpoint"),
        &sources.setting("metadata", "region"),
    );
    let builder = runner_pod(&ctx, RESTORE_COMPONENT, &PROFILE, runner_image)
        .args(args)
        .env(sources.env_starting_with("INSYNC_METADATA_"))
        .init_container(fetch.build())
        .init_container(load_mysql.build());
    task_job(
        &ctx,
        restore_job_name(cloud),
        builder,
        cloud,
        &source.location,
    )
    .map_err(RestoreRenderError::Serialize)
}

/// The step that fetches the backup into the work dir, checking every part again: the same in
/// a restore and in a verification.
pub(super) fn fetch_step(source: &Source, runner_image: &str) -> ContainerBuilder {
    runner_step("fetch", runner_image)
        .args(checked_args("fetch", source))
        .env(source.access.keys.iter().cloned())
}

/// The step that loads the fetched `mysql.sql` into the database `db_env` names (`DB_HOST`,
/// `DB_PORT`, `DB_NAME`, `INSYNC_DB_USER`, `INSYNC_DB_PASSWORD`).
pub(super) fn load_mysql_step(ctx: &Ctx, db_env: Vec<EnvVar>) -> ContainerBuilder {
    mysql_client_step(ctx, "mysql", load_script()).env(db_env)
}

/// The main container's arguments: load the metadata store at `endpoint` in `region`.
pub(super) fn metadata_args(source: &Source, endpoint: &str, region: &str) -> Vec<String> {
    let mut args = runner_args("metadata", source);
    args.push(format!("--metadata-endpoint={endpoint}"));
    args.push(format!("--metadata-region={region}"));
    args
}

/// The arguments of a step that reads the manifest from the store (`check`, `fetch`): with
/// what its backup object recorded, when the source is one.
fn checked_args(step: &str, source: &Source) -> Vec<String> {
    let mut args = runner_args(step, source);
    args.extend(
        source
            .manifest_sha256
            .iter()
            .map(|sha| format!("--manifest-sha256={sha}")),
    );
    args.extend(
        source
            .backup_uid
            .iter()
            .map(|uid| format!("--backup-uid={uid}")),
    );
    args
}

fn runner_args(step: &str, source: &Source) -> Vec<String> {
    let mut args = vec!["restore-run".to_owned(), format!("--step={step}")];
    args.extend(store_args(&source.location, &source.access));
    args.push(format!("--work-dir={WORK_DIR}"));
    args
}

/// The MySQL step: refuse a database that has tables (a restore never writes over live data),
/// then load the dump; the password in the environment, not on the command line.
fn load_script() -> String {
    format!(
        "set -eu\n\
         export MYSQL_PWD=\"$INSYNC_DB_PASSWORD\"\n\
         {wait}\
         client() {{ mysql --host=\"$DB_HOST\" --port=\"$DB_PORT\" --user=\"$INSYNC_DB_USER\" \"$@\"; }}\n\
         tables=$(client -N -B -e \"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '$DB_NAME'\")\n\
         if [ \"$tables\" != 0 ]; then echo \"database $DB_NAME has $tables tables: a restore only fills an empty database\" >&2; exit 1; fi\n\
         client --database=\"$DB_NAME\" < {WORK_DIR}/{DUMP}\n\
         checked=0\n\
         if [ -f {WORK_DIR}/{ROWS} ]; then\n\
         tab=$(printf '\\t')\n\
         while IFS=\"$tab\" read -r table rows; do\n\
         found=$(client -N -B --database=\"$DB_NAME\" -e \"SELECT COUNT(*) FROM \\`$table\\`\")\n\
         if [ \"$found\" != \"$rows\" ]; then echo \"MySQL table $table: $found rows after the load, the manifest says $rows\" >&2; exit 1; fi\n\
         checked=$((checked + 1))\n\
         done < {WORK_DIR}/{ROWS}\n\
         fi\n\
         echo \"mysql.sql loaded into $DB_NAME, the rows of $checked tables counted as the manifest says\"\n",
        DUMP = crate::contract::MYSQL_DUMP,
        ROWS = crate::contract::MYSQL_ROWS_FILE,
        wait = super::job::wait_for_mysql()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        BackupPhase, InSyncCloudBackupSpec, InSyncCloudBackupStatus, InSyncCloudSpec, RestoreS3,
        RestoreSpec, SecretRef,
    };
    use crate::runner::restore::{RestoreArgs, Step};

    const IMAGE: &str = "ghcr.io/insync-operator/insync-operator:dev";

    fn cloud(restore: RestoreSpec) -> InSyncCloud {
        let mut spec = InSyncCloudSpec::with_version("5.9.1-r4178");
        spec.restore = Some(restore);
        let mut cloud = InSyncCloud::new("fcloud", spec);
        cloud.metadata.namespace = Some("fcloud".to_owned());
        cloud.metadata.uid = Some("cloud-uid".to_owned());
        cloud
    }

    fn from_s3() -> InSyncCloud {
        cloud(RestoreSpec {
            backup: None,
            s3: Some(RestoreS3 {
                bucket: "offsite".to_owned(),
                prefix: "clouds/fcloud/nightly/".to_owned(),
                endpoint: Some("http://minio.backups:9000".to_owned()),
                region: None,
                secret_ref: Some(SecretRef {
                    name: "offsite-keys".to_owned(),
                }),
            }),
        })
    }

    /// The rendered runner arguments, parsed by the runner's own flags.
    fn parse(args: &[String]) -> RestoreArgs {
        crate::render::job::parse_runner_args("restore-run", args)
    }

    #[test]
    fn an_s3_location_is_read_with_its_own_endpoint_and_secret() {
        let cloud = from_s3();
        let source = source(&cloud, None).expect("source").expect("restore");
        let job = render_check_job(&cloud, &source, IMAGE).expect("renders");
        assert_eq!(job.metadata.name.as_deref(), Some("fcloud-restore-check"));
        let owner = &job.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("InSyncCloud", "cloud-uid")
        );
        let pod = job.spec.and_then(|s| s.template.spec).expect("pod");
        assert!(pod.init_containers.is_none(), "the check runs alone");
        let args = parse(pod.containers[0].args.as_ref().expect("args"));
        assert_eq!(args.step, Step::Check);
        assert_eq!(args.store.bucket, "offsite");
        assert_eq!(args.store.prefix, "clouds/fcloud/nightly/");
        assert_eq!(
            args.store.endpoint.as_deref(),
            Some("http://minio.backups:9000")
        );
        assert!(args.store.path_style);
        // An S3 location has no backup object: nothing recorded to compare with.
        assert_eq!((args.manifest_sha256, args.backup_uid), (None, None));
        let secrets: Vec<&str> = pod.containers[0]
            .env
            .iter()
            .flatten()
            .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(secrets, ["offsite-keys", "offsite-keys"]);
    }

    /// Runs the MySQL step's script with a stand-in `mysql` on PATH that answers every
    /// `COUNT(*)` of a table with `found`: (exit code, stderr and stdout).
    fn run_load_script(rows_file: Option<&str>, found: &str) -> (i32, String) {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let work = dir.path().join("restore");
        std::fs::create_dir_all(&work).expect("work dir");
        std::fs::write(work.join("mysql.sql"), "INSERT INTO `t` VALUES (1);\n").expect("dump");
        if let Some(rows) = rows_file {
            std::fs::write(work.join(crate::contract::MYSQL_ROWS_FILE), rows).expect("rows");
        }
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        // Tables in the schema: none (an empty database); a load reads stdin; a count of a
        // table answers $FOUND.
        std::fs::write(
            bin.join("mysql"),
            "#!/bin/sh\ncase \"$*\" in\n*information_schema*) echo 0 ;;\n*COUNT*) echo \"$FOUND\" ;;\n*) cat > /dev/null ;;\nesac\n",
        )
        .expect("stand-in");
        std::fs::set_permissions(bin.join("mysql"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let script = load_script().replace(WORK_DIR, &work.display().to_string());
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("FOUND", found)
            .env("DB_NAME", "insync")
            .env("DB_HOST", "127.0.0.1")
            .env("DB_PORT", "3306")
            .env("INSYNC_DB_USER", "insync")
            .env("INSYNC_DB_PASSWORD", "x")
            .output()
            .expect("sh");
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ),
        )
    }

    #[test]
    fn the_mysql_step_counts_every_table_again_and_names_the_one_that_differs() {
        let (code, out) = run_load_script(Some("catalogue\t5\nmarkers\t5\n"), "5");
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("the rows of 2 tables counted as the manifest says"),
            "{out}"
        );
        let (code, out) = run_load_script(Some("catalogue\t1000000\n"), "999999");
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains(
                "MySQL table catalogue: 999999 rows after the load, the manifest says 1000000"
            ),
            "{out}"
        );
        // A manifest without row counts (written before them) loads without the check.
        let (code, out) = run_load_script(None, "7");
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("the rows of 0 tables"), "{out}");
    }

    #[test]
    fn the_restore_job_fetches_then_loads_mysql_then_the_metadata_store() {
        let cloud = from_s3();
        let source = source(&cloud, None).expect("source").expect("restore");
        let job = render_restore_job(&cloud, &source, IMAGE).expect("renders");
        let pod = job.spec.and_then(|s| s.template.spec).expect("pod");
        let order: Vec<&str> = pod
            .init_containers
            .iter()
            .flatten()
            .chain(&pod.containers)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(order, ["fetch", "mysql", RESTORE_COMPONENT]);
        let inits = pod.init_containers.as_ref().expect("inits");
        assert_eq!(
            parse(inits[0].args.as_ref().expect("args")).step,
            Step::Fetch
        );
        let script = &inits[1].command.as_ref().expect("command")[2];
        assert!(script.contains("a restore only fills an empty database"));
        let main = parse(pod.containers[0].args.as_ref().expect("args"));
        assert_eq!(main.step, Step::Metadata);
        assert_eq!(
            main.metadata_endpoint.as_deref(),
            Some("http://fcloud-bynamo.fcloud.svc.cluster.local:8000")
        );
        crate::render::pod::assert_restricted(&pod);
    }

    #[test]
    fn a_named_backup_must_be_complete_and_is_read_at_its_location() {
        let cloud = cloud(RestoreSpec {
            backup: Some("nightly".to_owned()),
            s3: None,
        });
        assert!(matches!(
            source(&cloud, None),
            Err(RestoreRenderError::Backup { .. })
        ));
        let mut backup = InSyncCloudBackup::new(
            "nightly",
            InSyncCloudBackupSpec {
                cloud: "fcloud".to_owned(),
            },
        );
        backup.status = Some(InSyncCloudBackupStatus {
            phase: Some(BackupPhase::Running),
            ..InSyncCloudBackupStatus::default()
        });
        assert!(source(&cloud, Some(&backup)).is_err());
        backup.metadata.uid = Some("backup-uid".to_owned());
        backup.status = Some(InSyncCloudBackupStatus {
            phase: Some(BackupPhase::Complete),
            location: Some("s3://insync/insync-backups/fcloud/nightly/".to_owned()),
            manifest_sha256: Some("ab".repeat(32)),
            // Written by fcloud's earlier self to the MinIO of another cloud of the namespace.
            store: Some(BackupStore {
                kind: Some(StoreKind::CloudMinio),
                s3: None,
            }),
            ..InSyncCloudBackupStatus::default()
        });
        backup.spec.cloud = "fcloud-old".to_owned();
        let source = source(&cloud, Some(&backup))
            .expect("source")
            .expect("restore");
        // Both steps that read the manifest from the store compare it with what the backup
        // recorded; the metadata step reads the one fetch checked.
        let check = render_check_job(&cloud, &source, IMAGE).expect("renders");
        let restore = render_restore_job(&cloud, &source, IMAGE).expect("renders");
        let pods = [check, restore].map(|job| job.spec.and_then(|s| s.template.spec).expect("pod"));
        let fetch = &pods[1].init_containers.as_ref().expect("inits")[0];
        for args in [&pods[0].containers[0].args, &fetch.args] {
            let args = parse(args.as_ref().expect("args"));
            assert_eq!(args.manifest_sha256, Some("ab".repeat(32)));
            assert_eq!(args.backup_uid.as_deref(), Some("backup-uid"));
        }
        let metadata = parse(pods[1].containers[0].args.as_ref().expect("args"));
        assert_eq!(
            (metadata.manifest_sha256, metadata.backup_uid),
            (None, None)
        );
        assert_eq!(
            source.location,
            Location {
                bucket: "insync".to_owned(),
                prefix: "insync-backups/fcloud/nightly/".to_owned()
            }
        );
        // Read through the MinIO that holds it: the backup's cloud's, not the restoring one's.
        assert_eq!(
            source.access.endpoint.as_deref(),
            Some("http://fcloud-old-minio.fcloud.svc.cluster.local:9000")
        );
    }

    fn complete_backup(store: Option<BackupStore>) -> InSyncCloudBackup {
        let mut backup = InSyncCloudBackup::new(
            "nightly",
            InSyncCloudBackupSpec {
                cloud: "fcloud".to_owned(),
            },
        );
        backup.metadata.uid = Some("backup-uid".to_owned());
        backup.status = Some(InSyncCloudBackupStatus {
            phase: Some(BackupPhase::Complete),
            location: Some(
                "s3://insync/insync-backups/fcloud/fcloud/nightly-backup-uid/".to_owned(),
            ),
            store,
            ..InSyncCloudBackupStatus::default()
        });
        backup
    }

    /// Issue 20, defect 2: a backup kept in the restoring cloud's own MinIO was "checked"
    /// through that MinIO, which does not run while the restore is checked: a refusal after
    /// the check Job's retries, saying only that the store could not be reached.
    #[test]
    fn a_backup_in_the_restoring_clouds_own_minio_is_refused_at_once_saying_why() {
        let cloud = cloud(RestoreSpec {
            backup: Some("nightly".to_owned()),
            s3: None,
        });
        let recorded = Some(BackupStore {
            kind: Some(StoreKind::CloudMinio),
            s3: None,
        });
        // Recorded as in its MinIO, or from before the store was recorded by a cloud with no
        // destination: the same refusal.
        for store in [recorded, None] {
            let error = source(&cloud, Some(&complete_backup(store))).expect_err("refused");
            assert!(error.is_final(), "{error:?}");
            let message = error.to_string();
            assert!(
                message.contains("this cloud's own object store")
                    && message.contains("spec.backup.destination.s3"),
                "{message}"
            );
        }
    }

    /// A backup written off-site is read with the access recorded when it was written, not
    /// with the restoring cloud's settings (which may name another store, or none).
    #[test]
    fn a_backup_written_off_site_is_read_the_way_it_was_written() {
        let cloud = cloud(RestoreSpec {
            backup: Some("nightly".to_owned()),
            s3: None,
        });
        let offsite = BackupStore {
            kind: Some(StoreKind::OffSite),
            s3: Some(crate::api::BackupS3 {
                bucket: "insync".to_owned(),
                prefix: Some("clouds/".to_owned()),
                endpoint: Some("http://backups.example:9000".to_owned()),
                region: Some("eu-west-1".to_owned()),
                secret_ref: Some(crate::api::SecretRef {
                    name: "offsite-keys".to_owned(),
                }),
            }),
        };
        let source = source(&cloud, Some(&complete_backup(Some(offsite))))
            .expect("source")
            .expect("restore");
        assert_eq!(
            source.access.endpoint.as_deref(),
            Some("http://backups.example:9000")
        );
        assert_eq!(source.access.region, "eu-west-1");
        let secrets: Vec<&str> = source
            .access
            .keys
            .iter()
            .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(secrets, ["offsite-keys", "offsite-keys"]);
    }
}
