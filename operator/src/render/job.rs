//! The toolkit of the Jobs the operator runs for a cloud's backups: taking one
//! ([`super::backup`]), deleting an expired one's files, checking and loading one into a new
//! cloud ([`super::restore`]), and restoring one into throwaway datastores ([`super::verify`]).
//!
//! Each is one pod of the operator's own binary (the runner, [`runner_pod`]) with steps before
//! it ([`runner_step`], [`mysql_client_step`]), run once to completion ([`task_job`]) against the
//! backup's files at a [`Location`], reached as [`StoreAccess`] says ([`store_args`]).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::EnvVar;
use kube::Resource;

use super::container::ContainerBuilder;
use super::meta::Ctx;
use super::pod::{Image, PodBuilder, Profile, image};
use super::wiring::{self, OBJECTSTORE_ACCESS_KEY_ID, OBJECTSTORE_SECRET_ACCESS_KEY};
use super::{Component, RenderOptions};
use crate::api::InSyncCloud;

/// The runner in the operator's image.
const RUNNER: &str = "/insync-operator";
/// How long a Job may run before Kubernetes stops it (and it is Failed).
const DEADLINE_SECONDS: i64 = 6 * 3600;
/// A Job runs the images the cloud is going to, never the ones a rollout pinned.
static UNPINNED: RenderOptions = RenderOptions {
    pinned_tags: BTreeMap::new(),
};

/// The S3 location of a backup's files.
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
    pub keys: Vec<EnvVar>,
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

/// What a runner's pod needs, with `work_dir` its one writable directory besides `/tmp` (an
/// emptyDir its steps share).
pub(super) const fn runner_profile(work_dir: &'static [&'static str]) -> Profile {
    Profile {
        // The operator image's `nonroot` user; the MySQL image's clients run as any user.
        uid: 65532,
        read_only_root: true,
        writable_dirs: work_dir,
        cpu_request: "100m",
        memory_request: "128Mi",
        memory_limit: "1Gi",
        startup_seconds: 10,
    }
}

/// The context a Job of `cloud` is rendered in: the cloud, no rollout pins.
pub(super) fn task_ctx(cloud: &InSyncCloud) -> Ctx<'_> {
    Ctx::new(cloud, &UNPINNED)
}

/// The pod of a backup, restore, verification or deletion Job: the operator's own binary from
/// `runner_image`, tagged with the cloud's version (the runner is as new as the cloud it reads).
pub(super) fn runner_pod<'a>(
    ctx: &'a Ctx<'a>,
    component: &str,
    profile: &'static Profile,
    runner_image: &str,
) -> PodBuilder<'a> {
    let version = ctx.cloud.spec.version.clone();
    PodBuilder::task(
        ctx,
        component,
        profile,
        Image {
            reference: runner_image.to_owned(),
            tag: version.clone(),
        },
    )
    // A tag may have 128 characters, a label value 63.
    .label(super::keys::VERSION, super::meta::label_value(&version))
    .command([RUNNER.to_owned()])
}

/// A step of the runner from `runner_image` before the main one (a restore's `fetch`).
pub(super) fn runner_step(name: &str, runner_image: &str) -> ContainerBuilder {
    ContainerBuilder::step(name, runner_image.to_owned()).command([RUNNER.to_owned()])
}

/// Shell lines (for a MySQL client step, after `MYSQL_PWD` is exported) that wait until MySQL
/// at `$DB_HOST:$DB_PORT` answers, up to [`STORE_WAIT_TRIES`] one-second tries, saying what
/// they wait for. A pod's first connections can fail while a NetworkPolicy enforcer learns its
/// address (Kubernetes asks applications to tolerate that), and a datastore may be restarting;
/// `mysqldump` and `mysql` try once. After the last try the step goes on and fails with the
/// client's own error.
pub(super) fn wait_for_mysql() -> String {
    format!(
        "tries=0\n\
         until mysql --connect-timeout=2 --host=\"$DB_HOST\" --port=\"$DB_PORT\" --user=\"$INSYNC_DB_USER\" -e 'SELECT 1' >/dev/null 2>&1; do\n\
         tries=$((tries + 1))\n\
         if [ \"$tries\" -ge {STORE_WAIT_TRIES} ]; then echo \"MySQL at $DB_HOST:$DB_PORT did not answer in $tries tries\" >&2; break; fi\n\
         echo \"waiting for MySQL at $DB_HOST:$DB_PORT (try $tries)\" >&2\n\
         sleep 1\n\
         done\n"
    )
}

/// How many one-second tries a Job's step gives a store before it reports the failure.
pub const STORE_WAIT_TRIES: u32 = 30;

/// A step that runs `script` in the cloud's MySQL image, with its clients (`mysqldump`,
/// `mysql`): the ones that match the server, already on the nodes, so the operator's image
/// stays one static binary without them.
pub(super) fn mysql_client_step(ctx: &Ctx<'_>, name: &str, script: String) -> ContainerBuilder {
    let image = image(ctx, Component::Mysql, Component::Mysql.name());
    ContainerBuilder::step(name, image.reference).script(script)
}

/// How long a finished Job of a backup (its backup, verification or deletion) and its pod stay:
/// a day to read its logs, then Kubernetes deletes them, so a schedule's Jobs do not pile up.
/// The controller records a Job's outcome within seconds of its end, and never looks at a final
/// backup's Job again; only an operator down for a whole day could miss one (the backup then
/// fails as "deleted before it finished", and the next slot takes another). A restore's Jobs are the cloud's and stay: there is
/// one pair per cloud, and a failed load's Job is what keeps its datastores up for a look.
pub const BACKUP_JOB_TTL_SECONDS: i32 = 24 * 60 * 60;

/// A Job that runs `builder`'s pod once to completion (a backup's or a restore's), owned by
/// `owner`: never retried (a failure is reported, and a backup is retried by the schedule),
/// stopped after six hours, every container's last words kept as its termination message.
/// A backup's Jobs are deleted [`BACKUP_JOB_TTL_SECONDS`] after they finish.
pub(super) fn task_job<K: Resource<DynamicType = ()>>(
    ctx: &Ctx<'_>,
    name: String,
    builder: PodBuilder<'_>,
    owner: &K,
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
    metadata.owner_references = owner.controller_owner_ref(&()).map(|owner| vec![owner]);
    metadata.annotations = Some(BTreeMap::from([(
        "insync.dev/location".to_owned(),
        location.to_string(),
    )]));
    let job = Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(DEADLINE_SECONDS),
            ttl_seconds_after_finished: (K::kind(&()) == "InSyncCloudBackup")
                .then_some(BACKUP_JOB_TTL_SECONDS),
            template,
            ..JobSpec::default()
        }),
        status: None,
    };
    // Round-trip once so a field k8s-openapi cannot serialize shows here, not at apply time.
    serde_json::to_value(&job).and_then(serde_json::from_value)
}

/// For the contract tests: `args` (a runner's subcommand and its flags, as render gives them)
/// parsed by the runner's own flags `A`, the subcommand being `subcommand`.
#[cfg(test)]
pub(super) fn parse_runner_args<A: clap::Args>(subcommand: &'static str, args: &[String]) -> A {
    let cli = clap::Command::new("insync-operator")
        .subcommand(A::augment_args(clap::Command::new(subcommand)));
    let matches = cli
        .try_get_matches_from(
            std::iter::once("insync-operator").chain(args.iter().map(String::as_str)),
        )
        .expect("the runner accepts what render gives it");
    let (name, flags) = matches.subcommand().expect("a subcommand");
    assert_eq!(name, subcommand);
    A::from_arg_matches(flags).expect("the runner accepts what render gives it")
}

#[cfg(test)]
mod wait_tests {
    /// The wait is shell the MySQL image's `sh` reads (`sh -n`: parsed, not run), and it gives
    /// up after its tries.
    #[test]
    fn the_mysql_wait_parses_and_is_bounded() {
        let script = format!("set -eu\n{}echo after\n", super::wait_for_mysql());
        let parsed = std::process::Command::new("sh")
            .args(["-n", "-c", &script])
            .status()
            .expect("sh runs");
        assert!(parsed.success(), "{script}");
        assert!(
            script.contains(&format!("-ge {}", super::STORE_WAIT_TRIES)),
            "{script}"
        );
        assert!(
            script.contains("waiting for MySQL at $DB_HOST:$DB_PORT"),
            "{script}"
        );
    }
}
