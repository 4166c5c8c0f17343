//! The restore step of a cloud's reconcile (`spec.restore`): which of the cloud's workloads may
//! run yet, which restore Job to create, and `status.restore`, decided purely in [`decide`]
//! from what the reconcile's observation read ([`Seen`]). The Job is created by `act` and the
//! decision is recorded by `conclude`, with everything else of the cloud.
//!
//! Checking → (the check Job passed) Restoring → (the restore Job passed) Complete. Nothing of
//! the cloud runs while the backup is checked, only the datastores while it is loaded, and
//! everything once it is Complete. Complete and Failed are recorded in status and final: a
//! restore never runs again, whatever happens to the Jobs afterwards.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::cache::job_state::JobState;
use super::status::Cond;
use crate::api::{InSyncCloud, InSyncCloudBackup, RestorePhase, RestoreStatus, condition};
use crate::contract::RestoreReport;
use crate::render::restore::{Source, render_check_job, render_restore_job, source};
use crate::render::{Component, Desired};

/// Condition type of a cloud created with `spec.restore`.
pub(crate) const RESTORED: &str = "Restored";
/// How often a restore whose backup is not there yet looks again (a backup that appears is
/// no child of the cloud; one that completes wakes it).
const WAIT_FOR_BACKUP: Duration = Duration::from_secs(30);

/// Which of the cloud's workloads may exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// All of them (no restore, or it is Complete).
    Open,
    /// MySQL, the metadata store and the object store only: they are being loaded.
    DatastoresOnly,
    /// None: the backup is being checked, or was refused.
    Closed,
}

impl Gate {
    /// `wished` without the workloads this gate holds back (Services, Secrets and the rest stay).
    pub(crate) fn filter(self, wished: Vec<Desired>) -> Vec<Desired> {
        wished
            .into_iter()
            .filter(|desired| match (&desired.workload, self) {
                (None, _) | (_, Gate::Open) => true,
                (Some(_), Gate::Closed) => false,
                (Some((component, _)), Gate::DatastoresOnly) => matches!(
                    component,
                    Component::Mysql | Component::Bynamo | Component::Minio
                ),
            })
            .collect()
    }
}

/// What the reconcile's observation read for the restore step, from the caches.
#[derive(Clone, Debug, Default)]
pub(crate) struct Seen {
    /// The backup `spec.restore.backup` names, if any and if it exists.
    pub backup: Option<InSyncCloudBackup>,
    /// The check Job, read with its pod.
    pub check: Option<JobState>,
    /// The restore Job, read with its pod.
    pub restore: Option<JobState>,
    /// Whether the managed MySQL and metadata store have a ready replica (external ones count
    /// as ready).
    pub datastores_ready: bool,
}

/// What to do.
#[derive(Clone, Debug)]
pub(crate) struct Decision {
    /// Which workloads may exist.
    pub gate: Gate,
    /// A Job to create.
    pub create: Option<Job>,
    /// `status.restore` to record (None: no restore asked for).
    pub status: Option<RestoreStatus>,
    /// The `Restored` condition, and Ready's and Progressing's while the cloud waits for the
    /// restore.
    pub conditions: Vec<Cond>,
    /// Look again this soon (its Jobs and datastores are watched: only for what is not).
    pub requeue: Option<Duration>,
}

/// Decides the restore step (pure).
pub(crate) fn decide(
    cloud: &InSyncCloud,
    seen: &Seen,
    runner_image: Option<&str>,
    now: Timestamp,
) -> Decision {
    let mut decision = Decision {
        gate: Gate::Open,
        create: None,
        status: None,
        conditions: Vec::new(),
        requeue: None,
    };
    let recorded = cloud
        .status
        .as_ref()
        .and_then(|s| s.restore.clone())
        .unwrap_or_default();
    if cloud.spec.restore.is_none() {
        return removed_midway(decision, recorded);
    }
    let mut status = RestoreStatus {
        started_at: recorded.started_at.clone().or(Some(Time(now))),
        ..recorded.clone()
    };
    let phase = recorded.phase.unwrap_or(RestorePhase::Checking);
    match phase {
        RestorePhase::Complete => {}
        // Refused at the check: nothing runs. Failed while loading: the datastores stay for a
        // look, nothing else starts.
        RestorePhase::Failed => {
            decision.gate = if seen.restore.is_some() {
                Gate::DatastoresOnly
            } else {
                Gate::Closed
            }
        }
        RestorePhase::Checking => {
            decision.gate = Gate::Closed;
            match source(cloud, seen.backup.as_ref()) {
                // Refused before anything starts: no wait would make it readable.
                Err(e) if e.is_final() => fail(&mut status, format!("refused: {e}"), now),
                Err(e) => {
                    // The backup may yet appear or complete: wait, saying why.
                    status.message = Some(format!("waiting: {e}"));
                    decision.requeue = Some(WAIT_FOR_BACKUP);
                }
                Ok(None) => {}
                Ok(Some(source)) => {
                    status.source = Some(source.location.to_string());
                    match &seen.check {
                        None => match job(&source, runner_image, cloud, true) {
                            Ok(job) => {
                                decision.create = Some(job);
                                status.message = Some(checking(&source));
                            }
                            Err(reason) => fail(&mut status, reason, now),
                        },
                        Some(JobState::Running) => status.message = Some(checking(&source)),
                        Some(JobState::Failed { reason }) => {
                            fail(&mut status, format!("refused: {reason}"), now);
                        }
                        Some(JobState::Succeeded { message }) => {
                            match newer_than_the_cloud(cloud, message.as_deref()) {
                                Some(refusal) => fail(&mut status, refusal, now),
                                None => {
                                    status.phase = Some(RestorePhase::Restoring);
                                    status.message = Some(format!(
                                        "checked{}; waiting for MySQL and the metadata store",
                                        summary(message.as_deref())
                                    ));
                                    decision.gate = Gate::DatastoresOnly;
                                }
                            }
                        }
                    }
                }
            }
        }
        RestorePhase::Restoring => {
            decision.gate = Gate::DatastoresOnly;
            match (&seen.restore, source(cloud, seen.backup.as_ref())) {
                (None, Ok(Some(source))) if seen.datastores_ready => {
                    match job(&source, runner_image, cloud, false) {
                        Ok(job) => {
                            decision.create = Some(job);
                            status.message =
                                Some("loading MySQL, then the metadata store".to_owned());
                        }
                        Err(reason) => fail(&mut status, reason, now),
                    }
                }
                (None, Ok(_)) => {
                    status.message = Some("waiting for MySQL and the metadata store".to_owned());
                }
                (None, Err(e)) => fail(&mut status, e.to_string(), now),
                (Some(JobState::Running), _) => {
                    status.message = Some("loading MySQL, then the metadata store".to_owned());
                }
                (Some(JobState::Failed { reason }), _) => {
                    fail(&mut status, format!("restore failed: {reason}"), now);
                }
                (Some(JobState::Succeeded { message }), _) => {
                    status.phase = Some(RestorePhase::Complete);
                    status.completed_at = Some(Time(now));
                    status.message = Some(format!("restored{}", summary(message.as_deref())));
                    decision.gate = Gate::Open;
                }
            }
        }
    }
    status.phase = status.phase.or(Some(RestorePhase::Checking));
    decision.conditions = conditions(&status, decision.gate);
    decision.status = Some(status);
    decision
}

/// `spec.restore` is gone but the restore it asked for never completed: the CRD refuses that
/// removal, so only an object written around it (an older CRD, a restore of etcd) gets here.
/// The datastores may hold part of the backup: CloudMaster and the nodes must not start on
/// them, whatever the spec says now.
fn removed_midway(mut decision: Decision, recorded: RestoreStatus) -> Decision {
    let Some(phase) = recorded.phase.filter(|p| *p != RestorePhase::Complete) else {
        return decision;
    };
    decision.gate = match phase {
        RestorePhase::Restoring => Gate::DatastoresOnly,
        _ => Gate::Closed,
    };
    let status = RestoreStatus {
        phase: Some(RestorePhase::Failed),
        message: Some(format!(
            "spec.restore was removed while the restore was {phase:?}: the datastores may hold part of the backup, so CloudMaster and the nodes stay stopped; delete the cloud to give up the restore"
        )),
        ..recorded
    };
    decision.conditions = conditions(&status, decision.gate);
    decision.status = Some(status);
    decision
}

fn checking(source: &Source) -> String {
    format!(
        "checking the manifest and every part of {}",
        source.location
    )
}

fn fail(status: &mut RestoreStatus, reason: String, now: Timestamp) {
    status.phase = Some(RestorePhase::Failed);
    status.message = Some(reason);
    status.completed_at = Some(Time(now));
}

/// Why a checked backup must not be loaded into this cloud: it was taken from a newer inSync
/// release than the cloud runs (`spec.version`), whose older CloudMaster cannot be trusted
/// with a newer schema. An older backup is loaded, and CloudMaster upgrades it as after any
/// version change. Versions are compared by their numbers in order ("5.9.1-r4178" is
/// 5, 9, 1, 4178); one without numbers is compared with nothing.
fn newer_than_the_cloud(cloud: &InSyncCloud, message: Option<&str>) -> Option<String> {
    let report: RestoreReport = serde_json::from_str(message?).ok()?;
    let numbers = |version: &str| -> Vec<u64> {
        version
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect()
    };
    let (backup, running) = (
        numbers(&report.insync_version),
        numbers(&cloud.spec.version),
    );
    (!backup.is_empty() && !running.is_empty() && backup > running).then(|| {
        format!(
            "refused: the backup was taken from inSync {}, newer than this cloud's spec.version {}: an older CloudMaster cannot be trusted with a newer schema; set spec.version to {} or later (a new cloud) to restore it",
            report.insync_version, cloud.spec.version, report.insync_version
        )
    })
}

/// What the runner reported, for a person: every part restored (bytes, MySQL rows, metadata
/// items) and the backup's age.
fn summary(message: Option<&str>) -> String {
    let Some(report) = message.and_then(|m| serde_json::from_str::<RestoreReport>(m).ok()) else {
        return String::new();
    };
    format!(
        " {} of the backup taken at {} from {}",
        report.restored(),
        report.backup_started_at,
        report.insync_version
    )
}

fn job(
    source: &Source,
    runner_image: Option<&str>,
    cloud: &InSyncCloud,
    check: bool,
) -> Result<Job, String> {
    let image = runner_image.ok_or_else(|| {
        "the operator does not know its own image: set INSYNC_OPERATOR_IMAGE (the chart does)"
            .to_owned()
    })?;
    let job = if check {
        render_check_job(cloud, source, image)
    } else {
        render_restore_job(cloud, source, image)
    };
    job.map_err(|e| e.to_string())
}

fn conditions(status: &RestoreStatus, gate: Gate) -> Vec<Cond> {
    let message = status.message.clone().unwrap_or_default();
    let (restored, reason) = match status.phase {
        Some(RestorePhase::Complete) => (true, "Restored"),
        Some(RestorePhase::Failed) if status.source.is_some() && gate == Gate::Closed => {
            (false, "RestoreRefused")
        }
        Some(RestorePhase::Failed) => (false, "RestoreFailed"),
        Some(RestorePhase::Restoring) => (false, "Restoring"),
        _ => (false, "Checking"),
    };
    let mut conds = vec![Cond::new(RESTORED, restored, reason, message.clone())];
    if gate != Gate::Open {
        // What holds the cloud is the restore, not a rollout: nothing of it runs yet, which
        // is neither Ready nor "nothing is rolling out".
        let moving = matches!(
            status.phase,
            Some(RestorePhase::Checking | RestorePhase::Restoring)
        );
        conds.push(Cond::new(
            condition::PROGRESSING,
            moving,
            reason,
            format!("the restore holds the cloud back: {message}"),
        ));
        conds.push(Cond::new(
            condition::READY,
            false,
            reason,
            format!("CloudMaster and the nodes wait for the restore: {message}"),
        ));
    }
    conds
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::{InSyncCloudSpec, InSyncCloudStatus, RestoreS3, RestoreSpec};
    use crate::render::{RenderOptions, render};

    const IMAGE: Option<&str> = Some("ghcr.io/insync-operator/insync-operator:dev");

    fn now() -> Timestamp {
        "2026-11-28T22:00:00Z".parse().expect("time")
    }

    /// fcloud restored from an offsite S3 prefix, its restore recorded at `recorded`.
    pub(crate) fn cloud(recorded: Option<RestorePhase>) -> InSyncCloud {
        let mut spec = InSyncCloudSpec::with_version("5.9.1-r4178");
        spec.restore = Some(RestoreSpec {
            backup: None,
            s3: Some(RestoreS3 {
                bucket: "offsite".to_owned(),
                prefix: "clouds/fcloud/nightly/".to_owned(),
                endpoint: Some("http://minio.backups:9000".to_owned()),
                region: None,
                secret_ref: None,
            }),
        });
        let mut cloud = InSyncCloud::new("fcloud", spec);
        cloud.metadata.namespace = Some("fcloud".to_owned());
        cloud.metadata.uid = Some("uid".to_owned());
        cloud.status = recorded.map(|phase| InSyncCloudStatus {
            restore: Some(RestoreStatus {
                phase: Some(phase),
                source: Some("s3://offsite/clouds/fcloud/nightly/".to_owned()),
                ..RestoreStatus::default()
            }),
            ..InSyncCloudStatus::default()
        });
        cloud
    }

    fn seen(check: Option<JobState>, restore: Option<JobState>, ready: bool) -> Seen {
        Seen {
            backup: None,
            check,
            restore,
            datastores_ready: ready,
        }
    }

    fn created(decision: &Decision) -> Option<String> {
        decision.create.as_ref()?.metadata.name.clone()
    }

    fn phase(decision: &Decision) -> Option<RestorePhase> {
        decision.status.as_ref()?.phase
    }

    fn condition(decision: &Decision, type_: &str) -> Option<(bool, &'static str)> {
        decision
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status, c.reason))
    }

    #[test]
    fn without_spec_restore_nothing_is_held_or_recorded() {
        let mut plain = cloud(None);
        plain.spec.restore = None;
        let decision = decide(&plain, &seen(None, None, false), IMAGE, now());
        assert_eq!(decision.gate, Gate::Open);
        assert!(decision.status.is_none() && decision.create.is_none());
    }

    /// Issue 20, defect 8: removing `spec.restore` mid-restore opened the gate, and
    /// CloudMaster started on a partly loaded database.
    #[test]
    fn a_restore_removed_before_it_completed_keeps_the_cloud_held() {
        for (phase, gate) in [
            (RestorePhase::Checking, Gate::Closed),
            (RestorePhase::Restoring, Gate::DatastoresOnly),
            (RestorePhase::Failed, Gate::Closed),
        ] {
            let mut removed = cloud(Some(phase));
            removed.spec.restore = None;
            let decision = decide(&removed, &Seen::default(), IMAGE, now());
            assert_eq!(decision.gate, gate, "{phase:?}");
            assert!(decision.create.is_none());
            let status = decision.status.expect("status");
            assert_eq!(status.phase, Some(RestorePhase::Failed));
            assert!(
                status
                    .message
                    .as_deref()
                    .is_some_and(|m| m.contains("spec.restore was removed")),
                "{status:?}"
            );
            let ready = decision
                .conditions
                .iter()
                .find(|c| c.type_ == condition::READY);
            assert!(
                ready.is_some_and(|c| !c.status),
                "{:?}",
                decision.conditions
            );
        }
        // Once Complete, spec.restore may go: nothing is held.
        let mut done = cloud(Some(RestorePhase::Complete));
        done.spec.restore = None;
        let decision = decide(&done, &Seen::default(), IMAGE, now());
        assert_eq!(decision.gate, Gate::Open);
        assert!(decision.status.is_none());
    }

    /// Issue 20, defect 2: a backup in the restoring cloud's own MinIO is refused before
    /// anything starts, saying why, instead of by a check Job that cannot reach that MinIO.
    #[test]
    fn a_backup_no_restore_can_read_is_refused_before_anything_starts() {
        let mut restoring = cloud(None);
        restoring.spec.restore = Some(RestoreSpec {
            backup: Some("nightly".to_owned()),
            s3: None,
        });
        let mut backup = InSyncCloudBackup::new(
            "nightly",
            crate::api::InSyncCloudBackupSpec {
                cloud: restoring.cloud_name().to_owned(),
            },
        );
        backup.status = Some(crate::api::InSyncCloudBackupStatus {
            phase: Some(crate::api::BackupPhase::Complete),
            location: Some("s3://insync/insync-backups/fcloud/fcloud/nightly-uid/".to_owned()),
            store: Some(crate::api::BackupStore {
                kind: Some(crate::api::StoreKind::CloudMinio),
                s3: None,
            }),
            ..Default::default()
        });
        let seen = Seen {
            backup: Some(backup),
            ..Seen::default()
        };
        let decision = decide(&restoring, &seen, IMAGE, now());
        assert_eq!(decision.gate, Gate::Closed);
        assert!(decision.create.is_none(), "no check Job");
        let status = decision.status.expect("status");
        assert_eq!(status.phase, Some(RestorePhase::Failed));
        let message = status.message.unwrap_or_default();
        assert!(
            message.starts_with("refused:") && message.contains("own object store"),
            "{message}"
        );
    }

    fn check_passed(version: &str) -> Seen {
        let report = RestoreReport {
            parts: 3,
            size_bytes: 100,
            rows: None,
            metadata_tables: None,
            mysql_rows: None,
            mysql_tables: None,
            insync_version: version.to_owned(),
            backup_started_at: "2026-11-28T19:00:00Z".to_owned(),
        };
        Seen {
            check: Some(JobState::Succeeded {
                message: serde_json::to_string(&report).ok(),
            }),
            ..Seen::default()
        }
    }

    /// Issue 20, defect 7: a restore never compared the backup's release with the cloud's.
    #[test]
    fn a_backup_from_a_newer_release_than_the_cloud_is_refused_an_older_one_loads() {
        let restoring = cloud(None);
        assert_eq!(restoring.spec.version, "5.9.1-r4178");
        let newer = decide(&restoring, &check_passed("5.9.1-r4200"), IMAGE, now());
        let status = newer.status.expect("status");
        assert_eq!(status.phase, Some(RestorePhase::Failed));
        assert!(
            status
                .message
                .unwrap_or_default()
                .contains("newer than this cloud's spec.version"),
        );
        assert_eq!(newer.gate, Gate::Closed);
        for version in ["5.9.1-r4178", "5.8.0-r4000", "unknown"] {
            let older = decide(&restoring, &check_passed(version), IMAGE, now());
            assert_eq!(
                older.status.and_then(|s| s.phase),
                Some(RestorePhase::Restoring),
                "{version}"
            );
        }
    }

    #[test]
    fn a_new_restore_checks_the_backup_before_anything_runs() {
        let decision = decide(&cloud(None), &seen(None, None, false), IMAGE, now());
        assert_eq!(decision.gate, Gate::Closed);
        assert_eq!(created(&decision).as_deref(), Some("fcloud-restore-check"));
        assert_eq!(phase(&decision), Some(RestorePhase::Checking));
        assert_eq!(
            condition(&decision, condition::READY),
            Some((false, "Checking"))
        );
    }

    #[test]
    fn the_restore_jobs_are_in_the_job_watch_and_wake_their_cloud() {
        let decision = decide(&cloud(None), &seen(None, None, false), IMAGE, now());
        let job = decision.create.expect("a check Job");
        let labels = job.metadata.labels.clone().unwrap_or_default();
        // What the Job and pod watches select (cache::jobs::start).
        assert_eq!(
            labels
                .get(crate::render::keys::MANAGED_BY)
                .map(String::as_str),
            Some(crate::render::keys::MANAGER)
        );
        assert_eq!(
            super::super::cache::jobs::restoring_cloud(&job),
            Some(("fcloud".to_owned(), "fcloud".to_owned()))
        );
        let pod_labels = job
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.labels)
            .unwrap_or_default();
        assert_eq!(
            pod_labels.get(crate::render::keys::COMPONENT),
            labels.get(crate::render::keys::COMPONENT),
            "the pod carries the Job's component, so the pod watch selects it too"
        );
    }

    #[test]
    fn a_backup_that_fails_its_check_is_refused_and_nothing_starts() {
        let refused = seen(
            Some(JobState::Failed {
                reason: "restore: restore failed: mysql.sql: sha256 00, the manifest says ff"
                    .to_owned(),
            }),
            None,
            false,
        );
        let decision = decide(&cloud(Some(RestorePhase::Checking)), &refused, IMAGE, now());
        assert_eq!(decision.gate, Gate::Closed);
        assert!(decision.create.is_none());
        assert_eq!(phase(&decision), Some(RestorePhase::Failed));
        assert_eq!(
            condition(&decision, RESTORED),
            Some((false, "RestoreRefused"))
        );
        let message = decision.status.and_then(|s| s.message).unwrap_or_default();
        assert!(
            message.starts_with("refused: ") && message.contains("sha256"),
            "{message}"
        );

        // Recorded as Failed, it stays refused: no Job again, nothing runs.
        let decision = decide(&cloud(Some(RestorePhase::Failed)), &refused, IMAGE, now());
        assert_eq!(decision.gate, Gate::Closed);
        assert!(decision.create.is_none());
    }

    #[test]
    fn a_checked_backup_is_loaded_once_the_datastores_are_ready() {
        let checked = Some(JobState::Succeeded { message: None });
        let decision = decide(
            &cloud(Some(RestorePhase::Checking)),
            &seen(checked.clone(), None, false),
            IMAGE,
            now(),
        );
        assert_eq!(decision.gate, Gate::DatastoresOnly);
        assert_eq!(phase(&decision), Some(RestorePhase::Restoring));
        assert!(decision.create.is_none());

        let waiting = decide(
            &cloud(Some(RestorePhase::Restoring)),
            &seen(checked.clone(), None, false),
            IMAGE,
            now(),
        );
        assert_eq!(waiting.gate, Gate::DatastoresOnly);
        assert!(waiting.create.is_none());

        let loading = decide(
            &cloud(Some(RestorePhase::Restoring)),
            &seen(checked, None, true),
            IMAGE,
            now(),
        );
        assert_eq!(created(&loading).as_deref(), Some("fcloud-restore"));
    }

    #[test]
    fn a_finished_restore_opens_the_gate_and_never_runs_again() {
        let done = decide(
            &cloud(Some(RestorePhase::Restoring)),
            &seen(None, Some(JobState::Succeeded { message: None }), true),
            IMAGE,
            now(),
        );
        assert_eq!(done.gate, Gate::Open);
        assert_eq!(phase(&done), Some(RestorePhase::Complete));
        assert_eq!(condition(&done, RESTORED), Some((true, "Restored")));
        assert_eq!(condition(&done, condition::READY), None);

        // The Jobs are gone (deleted, or the cloud's data was lost later): still Complete,
        // nothing is restored over what now lives in the datastores.
        let later = decide(
            &cloud(Some(RestorePhase::Complete)),
            &seen(None, None, true),
            IMAGE,
            now(),
        );
        assert_eq!(later.gate, Gate::Open);
        assert!(later.create.is_none());
        assert_eq!(phase(&later), Some(RestorePhase::Complete));
    }

    #[test]
    fn a_failed_load_keeps_the_datastores_and_starts_nothing_else() {
        let decision = decide(
            &cloud(Some(RestorePhase::Restoring)),
            &seen(
                None,
                Some(JobState::Failed {
                    reason: "mysql: database insync has 3 tables".to_owned(),
                }),
                true,
            ),
            IMAGE,
            now(),
        );
        assert_eq!(decision.gate, Gate::DatastoresOnly);
        assert_eq!(phase(&decision), Some(RestorePhase::Failed));
        assert_eq!(
            condition(&decision, RESTORED),
            Some((false, "RestoreFailed"))
        );
    }

    #[test]
    fn the_gates_hold_back_workloads_only() {
        let mut plain = cloud(None);
        plain.spec.restore = None;
        let all = render(&plain, &RenderOptions::default()).expect("renders");
        let workloads = |objects: &[Desired]| {
            let mut names: Vec<String> = objects
                .iter()
                .filter_map(|d| d.workload.as_ref().map(|(c, _)| c.name().to_owned()))
                .collect();
            names.dedup();
            names
        };
        let others = |objects: &[Desired]| objects.iter().filter(|d| d.workload.is_none()).count();
        let datastores = Gate::DatastoresOnly.filter(all.clone());
        assert_eq!(workloads(&datastores), ["mysql", "bynamo", "minio"]);
        assert_eq!(others(&datastores), others(&all));
        let closed = Gate::Closed.filter(all.clone());
        assert!(workloads(&closed).is_empty());
        assert_eq!(others(&closed), others(&all));
        assert_eq!(Gate::Open.filter(all.clone()).len(), all.len());
    }
}
