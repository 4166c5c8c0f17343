//! A typed reading of a backup Job and its pod: running, succeeded with the runner's report, or
//! failed with the reason a person can act on (pure).

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// Where a backup Job stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum JobState {
    /// Not finished yet.
    Running,
    /// Finished; the runner's termination message (its report), if the pod is still there.
    Succeeded { message: Option<String> },
    /// Failed, and why.
    Failed { reason: String },
}

/// Reads `job` and its `pods` (the Job's own, any order); `main` is the container whose
/// termination message is the runner's report.
pub(crate) fn job_state(job: &Job, pods: &[Pod], main: &str) -> JobState {
    let status = job.status.clone().unwrap_or_default();
    let condition = |kind: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    let statuses = || {
        pods.iter().filter_map(|p| p.status.as_ref()).flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
    };
    // The Job controller marks a Job finished from its pod's phase, so a finished Job whose pod
    // still reads as unfinished is the pod's cache lagging behind the Job's (two watches): the
    // pod's last words (the runner's report, or its error) are on their way, and its own event
    // wakes the backup again. Read now, the report would be missing and a good backup failed.
    let finished = condition("Complete").is_some() || condition("Failed").is_some();
    if finished && pods.iter().any(|pod| !pod_ended(pod)) {
        return JobState::Running;
    }
    if condition("Complete").is_some() {
        let message = statuses()
            .filter(|s| s.name == main)
            .find_map(|s| terminated_message(s, true));
        return JobState::Succeeded { message };
    }
    if let Some(failed) = condition("Failed") {
        // The failed container's own words (its termination message or log tail) say more than
        // the Job's "BackoffLimitExceeded".
        let container = statuses().find_map(|s| {
            let message = terminated_message(s, false)?;
            Some(format!("{}: {}", s.name, last_line(&message)))
        });
        let job_reason = match (&failed.reason, &failed.message) {
            (Some(reason), Some(message)) => format!("{reason}: {message}"),
            (Some(reason), None) => reason.clone(),
            (None, Some(message)) => message.clone(),
            (None, None) => "the backup Job failed".to_owned(),
        };
        return JobState::Failed {
            reason: container.unwrap_or(job_reason),
        };
    }
    JobState::Running
}

/// Whether the pod has run its course (Succeeded or Failed).
fn pod_ended(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

/// The termination message of a container that ended with (`succeeded`) or without success.
fn terminated_message(status: &ContainerStatus, succeeded: bool) -> Option<String> {
    let terminated = status.state.as_ref()?.terminated.as_ref()?;
    if (terminated.exit_code == 0) != succeeded {
        return None;
    }
    let message = terminated.message.clone().unwrap_or_default();
    let message = message.trim();
    if message.is_empty() {
        // No message and no log: the exit code and reason (e.g. OOMKilled) are all there is.
        (!succeeded).then(|| {
            format!(
                "exit code {}{}",
                terminated.exit_code,
                terminated
                    .reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )
        })
    } else {
        Some(message.to_owned())
    }
}

/// The last non-empty line: a failing runner or mysqldump ends its log with the reason.
fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(condition: Option<(&str, &str)>) -> Job {
        let conditions = condition
            .map(|(kind, reason)| {
                json!([{"type": kind, "status": "True", "reason": reason, "message": "Job has reached the specified backoff limit"}])
            })
            .unwrap_or(json!([]));
        serde_json::from_value(json!({
            "metadata": {"name": "b-backup"},
            "status": {"conditions": conditions}
        }))
        .expect("job")
    }

    fn pod(init: (i32, &str), main: Option<(i32, &str)>) -> Pod {
        let phase = if init.0 == 0 && main.is_some_and(|(code, _)| code == 0) {
            "Succeeded"
        } else {
            "Failed"
        };
        let terminated = |(code, message): (i32, &str)| json!({"terminated": {"exitCode": code, "message": message, "reason": if code == 0 {"Completed"} else {"Error"}}});
        let main = main
            .map(terminated)
            .unwrap_or(json!({"waiting": {"reason": "PodInitializing"}}));
        serde_json::from_value(json!({
            "metadata": {"name": "b-backup-xyz"},
            "status": {
                "phase": phase,
                "initContainerStatuses": [{"name": "mysqldump", "image": "m", "imageID": "", "ready": false, "restartCount": 0, "state": terminated(init)}],
                "containerStatuses": [{"name": "backup", "image": "o", "imageID": "", "ready": false, "restartCount": 0, "state": main}]
            }
        }))
        .expect("pod")
    }

    #[test]
    fn a_job_without_a_final_condition_is_running() {
        assert_eq!(job_state(&job(None), &[], "backup"), JobState::Running);
    }

    #[test]
    fn a_complete_job_hands_over_the_runners_report() {
        let state = job_state(
            &job(Some(("Complete", "Completed"))),
            &[pod((0, ""), Some((0, "{\"report\":1}\n")))],
            "backup",
        );
        assert_eq!(
            state,
            JobState::Succeeded {
                message: Some("{\"report\":1}".to_owned())
            }
        );
    }

    #[test]
    fn a_failed_runner_gives_its_last_log_line_as_the_reason() {
        let state = job_state(
            &job(Some(("Failed", "BackoffLimitExceeded"))),
            &[pod(
                (0, ""),
                Some((
                    1,
                    "INFO exported table=insync_markers\nbackup failed: upload s3://insync/x: InvalidAccessKeyId\n",
                )),
            )],
            "backup",
        );
        assert_eq!(
            state,
            JobState::Failed {
                reason: "backup: backup failed: upload s3://insync/x: InvalidAccessKeyId"
                    .to_owned()
            }
        );
    }

    #[test]
    fn a_failed_dump_names_the_init_container() {
        let state = job_state(
            &job(Some(("Failed", "BackoffLimitExceeded"))),
            &[pod(
                (
                    2,
                    "mysqldump: Got error: 1045: \"Access denied for user 'insync'\" when trying to connect",
                ),
                None,
            )],
            "backup",
        );
        let JobState::Failed { reason } = state else {
            panic!("{state:?}");
        };
        assert!(
            reason.starts_with("mysqldump: mysqldump: Got error: 1045"),
            "{reason}"
        );
    }

    #[test]
    fn a_finished_job_whose_pod_still_reads_as_running_waits_for_the_pod() {
        let mut running = pod((0, ""), Some((0, "{\"report\":1}")));
        if let Some(status) = running.status.as_mut() {
            status.phase = Some("Running".to_owned());
        }
        for condition in [
            ("Complete", "Completed"),
            ("Failed", "BackoffLimitExceeded"),
        ] {
            assert_eq!(
                job_state(
                    &job(Some(condition)),
                    std::slice::from_ref(&running),
                    "backup"
                ),
                JobState::Running,
                "{condition:?}"
            );
        }
    }

    #[test]
    fn without_its_pod_a_failed_job_gives_the_jobs_reason() {
        let state = job_state(&job(Some(("Failed", "DeadlineExceeded"))), &[], "backup");
        assert_eq!(
            state,
            JobState::Failed {
                reason: "DeadlineExceeded: Job has reached the specified backoff limit".to_owned()
            }
        );
    }
}
