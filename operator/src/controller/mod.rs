//! The controller: watch clouds and their children, apply what render asks for, report status.
//!
//! A reconcile ([`reconcile`]) observes ([`observe`]), decides ([`decide`], with the
//! [`rollout`] state machine and [`status`] conditions; pure), acts ([`apply`], [`dns`]) and
//! records; [`leader`] election guards the writes.

// Only what the binary (`run`, `RunArgs`), the rollout tests (`observe`, `rollout`) and the
// e2e proof of the cache digest (`apply`'s write path, `cache`) use is public; the rest is the
// controller's own business.
mod act;
pub mod apply;
mod backups;
pub mod cache;
mod cleanup;
mod context;
mod crd_check;
mod decide;
mod dns;
mod error;
mod finalizer;
mod fleet;
mod gate;
mod leader;
pub mod observe;
mod reconcile;
mod restore;
pub mod rollout;
mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::Api;
use kube::core::{ApiResource, DeserializeGuard};
use kube::runtime::controller::{Config, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use tracing::{info, warn};

use crate::api::{BackupPhase, InSyncCloud, VerifyPhase};
use crate::telemetry::{self, LogFormat, Metrics, Readiness};
use cache::Child;
use cache::kinds::{self, ChildKind};
pub use cache::watch::InitialList;
use cache::watch::{list_config, projected_watch, streaming_allowed};
use context::{Backoff, Context};

/// Flags of `insync-operator run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Watch only this namespace; all namespaces when unset.
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Clouds reconciled at the same time.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u16,
    /// Address serving /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: String,
    /// Hold a Lease before writing, so several replicas can run.
    #[arg(long, env = "LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the leader Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, default_value = "insync-operator")]
    pub lease_name: String,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Route53 publishing.
    #[command(flatten)]
    pub dns: dns::DnsArgs,
    /// Clouds that may be upgrading at the same time; the others wait their turn
    /// (UpgradeWaiting). 0: no limit.
    #[arg(long, env = "MAX_CONCURRENT_UPGRADES", default_value_t = 0)]
    pub max_concurrent_upgrades: usize,
    /// How the caches' initial lists and re-lists arrive: streamed one object at a time, or in
    /// pages; `auto` streams when the API server allows it.
    #[arg(long, env = "INITIAL_LIST", value_enum, default_value_t = InitialList::Auto)]
    pub initial_list: InitialList,
    /// Objects per page of a paged list: a page is held whole while it is parsed, so this
    /// bounds the memory of a cold start and of a re-list, at the cost of more list requests
    /// (kube's default is 500).
    #[arg(long, env = "LIST_PAGE_SIZE", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub list_page_size: u32,
    /// The operator's own image: backup Jobs run it (`insync-operator backup-run`).
    #[arg(long, env = "INSYNC_OPERATOR_IMAGE")]
    pub runner_image: Option<String>,
    /// The shortest time between two scheduled backups of one cloud, e.g. "15m" or "1h": a
    /// schedule's slots that come sooner are skipped (a tenant's `* * * * *` would otherwise
    /// make 1,440 backups, Jobs and pods a day).
    #[arg(long, env = "MIN_BACKUP_INTERVAL", default_value = "15m", value_parser = parse_interval)]
    pub min_backup_interval: k8s_openapi::jiff::SignedDuration,
}

/// A duration of at least zero, as "15m", "1h 30m" or "90s".
fn parse_interval(text: &str) -> Result<k8s_openapi::jiff::SignedDuration, String> {
    let duration: k8s_openapi::jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration such as 15m or 1h: {e}"))?;
    if duration.is_negative() {
        return Err(format!("{text:?} is negative"));
    }
    Ok(duration)
}

/// A failure that stops the operator (configuration, lost leadership); `anyhow` stays at the
/// binary's edge.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No usable kubeconfig or in-cluster config.
    #[error("cannot reach Kubernetes: {0}")]
    Client(#[source] kube::Error),
    /// The metrics address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Leadership was lost; the process stops so it can never write as a non-leader.
    #[error("lost the leader lease")]
    LostLease,
    /// DNS wiring failed.
    #[error("cannot set up DNS: {0}")]
    Dns(#[from] dns::SetupError),
}

/// The InSyncCloudBackup CRD's name.
fn backup_crd_name() -> String {
    crate::api::backup_crd().metadata.name.unwrap_or_default()
}

/// Runs the controller until SIGTERM/SIGINT.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    telemetry::init_tracing(args.log_format);
    let client = Client::try_default().await.map_err(RunError::Client)?;
    let metrics = Metrics::default();
    let readiness = Readiness::default();
    let listener = tokio::net::TcpListener::bind(&args.metrics_addr)
        .await
        .map_err(|source| RunError::Listen {
            addr: args.metrics_addr.clone(),
            source,
        })?;
    tokio::spawn(telemetry::serve(
        listener,
        metrics.clone(),
        readiness.clone(),
    ));

    let identity = std::env::var("POD_NAME")
        .unwrap_or_else(|_| format!("{}-{}", hostname(), std::process::id()));
    let election = args.leader_elect.then(|| {
        leader::LeaderElection::new(
            client.clone(),
            &args.lease_namespace,
            &args.lease_name,
            &identity,
        )
    });
    if let Some(election) = &election {
        info!("waiting for the leader lease");
        readiness.set(true);
        election.acquire().await;
        readiness.set(false);
    }
    metrics.leader.set(1);
    let crds = crd_check::check(&client).await;
    for (crd, missing) in crds.missing {
        metrics
            .crd_missing_fields
            .get_or_create(&telemetry::CrdLabels { crd })
            .set(missing);
    }
    // Without the InSyncCloudBackup CRD its watch never lists, and every reconcile and
    // readiness would wait for it: clouds run, backups are off.
    let backups = !crds.absent.iter().any(|name| *name == backup_crd_name());
    if !backups {
        warn!(
            "the InSyncCloudBackup CRD is not installed: backups are off until it is and the \
             operator restarts (kubectl apply --server-side -f crds/)"
        );
    }

    let dns = dns::DnsWiring::from_args(&args.dns).await?;
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let outcome = tokio::select! {
        // The backup controller runs beside the clouds', under the same lease.
        () = controller(client, args, metrics, readiness.clone(), dns, backups) => Ok(()),
        () = async { match &election { Some(e) => e.hold().await, None => std::future::pending().await } } => Err(RunError::LostLease),
        () = shutdown_signal() => Ok(()),
        () = shutdown => Ok(()),
    };
    readiness.set(false);
    if let Some(election) = &election {
        election.release().await;
    }
    info!("stopped");
    outcome
}

async fn shutdown_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(e) => {
            warn!(error = %e, "cannot watch SIGTERM");
            std::future::pending::<()>().await;
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "insync-operator".into())
}

async fn controller(
    client: Client,
    args: RunArgs,
    metrics: Metrics,
    readiness: Readiness,
    dns: Option<dns::DnsWiring>,
    backups: bool,
) {
    let streaming = match args.initial_list {
        InitialList::Paged => false,
        InitialList::Streaming => true,
        InitialList::Auto => {
            streaming_allowed(&client, args.namespace.as_deref(), Duration::from_secs(10)).await
        }
    };
    info!(
        mode = ?args.initial_list,
        page_size = args.list_page_size,
        "initial lists {}",
        if streaming { "streamed" } else { "paged" }
    );
    let lists = list_config(streaming, args.list_page_size);
    let mut kinds = Vec::new();
    let mut streams = Vec::new();
    let list_gate = Arc::new(tokio::sync::Semaphore::new(1));
    for (resource, prunable) in kinds::child_resources() {
        let resource = Arc::new(resource);
        let writer = reflector::store::Writer::new(resource.clone());
        let reader = writer.as_reader();
        // Touched (not just applied) objects, so deleting a child also wakes its cloud.
        let stream = reflector::reflector(
            writer,
            projected_watch(
                &client,
                args.namespace.as_deref(),
                &resource,
                &list_gate,
                lists.clone(),
            )
            .default_backoff(),
        )
        .touched_objects();
        kinds.push(ChildKind {
            resource: resource.clone(),
            prunable,
            store: reader,
        });
        streams.push((resource, stream));
    }
    // Node addresses are what a NodePort front end publishes: only needed with DNS.
    let nodes: Option<reflector::Store<Child>> = dns.as_ref().map(|_| {
        let resource = Arc::new(ApiResource::erase::<Node>(&()));
        let writer = reflector::store::Writer::new(resource.clone());
        let reader = writer.as_reader();
        let stream = reflector::reflector(
            writer,
            projected_watch(&client, None, &resource, &list_gate, lists.clone()).default_backoff(),
        );
        tokio::spawn(stream.for_each(|_| async {}));
        reader
    });

    let clouds: Api<DeserializeGuard<InSyncCloud>> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let reporter = Reporter {
        controller: "insync-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let config = Config::default()
        .concurrency(args.concurrency)
        .debounce(Duration::from_millis(500));
    // The clouds' own cache: spec and status whole, but no managedFields and none of a tenant's
    // annotations (cache::trim_tenant_metadata).
    let (cloud_store, cloud_writer) = reflector::store();
    let cloud_events = watcher(clouds, lists.clone())
        .modify(|cloud| cache::trim_tenant_metadata(kube::Resource::meta_mut(cloud)))
        .reflect(cloud_writer)
        .applied_objects();
    let mut controller =
        Controller::for_stream(cloud_events, cloud_store.clone()).with_config(config);
    // The operator's Jobs and their pods: restores for this controller, backups,
    // verifications and deletions for the backup controller.
    let (jobs, mut job_events) =
        cache::jobs::start(&client, args.namespace.as_deref(), 1 + usize::from(backups));
    let restore_events = job_events.remove(0);
    // The backups', for both controllers.
    let (backup_watches, backup_changes) = match job_events.pop() {
        Some(events) => {
            let (watches, changes) =
                backups::Watches::start(&client, args.namespace.as_deref(), jobs.clone(), events);
            (Some(watches), Some(changes))
        }
        None => (None, None),
    };
    // Writes are only safe once every cache has listed what exists: reconciles (the backup
    // controller's too) wait for it, and so does readiness. One waiter per cache (see Synced).
    let synced = cache::Synced::spawn(
        kinds
            .iter()
            .map(|kind| cache::listed(kind.store.clone()))
            .chain(nodes.clone().map(cache::listed))
            .chain([cache::listed(cloud_store.clone())])
            .chain(jobs.listed())
            .chain(backup_watches.iter().flat_map(backups::Watches::listed))
            .collect(),
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        kinds: kinds.clone(),
        metrics,
        recorder: Recorder::new(client.clone(), reporter),
        backoff: Backoff::default(),
        dns,
        pruned_at: Default::default(),
        nodes,
        synced: synced.clone(),
        fleet: fleet::Fleet::new(cloud_store, args.max_concurrent_upgrades),
        runner_image: args.runner_image.clone(),
        jobs,
        // Without the CRD: a store nothing writes, read as no backups.
        backups: backup_watches.as_ref().map_or_else(
            || reflector::store::Writer::default().as_reader(),
            |w| w.backups.clone(),
        ),
    });
    // A changed child wakes its cloud. Projections are no kube `Resource` (no `ObjectMeta`), so
    // this maps them to their owner instead of kube's `owns_stream`.
    for (resource, stream) in streams {
        let owners = stream.filter_map(move |child| {
            let resource = resource.clone();
            async move {
                match child {
                    Ok(child) => child.cloud(),
                    Err(e) => {
                        warn!(error = %e, kind = %resource.kind, "watch error");
                        None
                    }
                }
            }
        });
        controller = controller.reconcile_on(owners);
    }
    if let Some(wiring) = &ctx.dns {
        controller = controller.reconcile_on(wiring.changes());
    }
    // A restore Job or its pod that changed wakes the cloud it restores.
    let restoring =
        |(namespace, cloud): (String, String)| ObjectRef::new(&cloud).within(&namespace);
    let restore_jobs = restore_events.jobs.filter_map(move |job| async move {
        job.ok()
            .as_ref()
            .and_then(cache::jobs::restoring_cloud)
            .map(restoring)
    });
    let restore_pods = restore_events.pods.filter_map(move |pod| async move {
        pod.ok()
            .as_ref()
            .and_then(cache::jobs::restoring_cloud)
            .map(restoring)
    });
    controller = controller
        .reconcile_on(restore_jobs)
        .reconcile_on(restore_pods);
    // A backup that finished, or whose verification finished, changes its cloud's status
    // (`status.backup`, BackupHealthy), and backups are no children of the cloud: wake the
    // cloud. A backup still running changes nothing there.
    let finished =
        futures::stream::iter(backup_changes)
            .flatten()
            .filter_map(|backup| async move {
                let status = backup.status.as_ref()?;
                let verified = status
                    .verification
                    .as_ref()
                    .and_then(|v| v.phase)
                    .is_some_and(|phase| phase != VerifyPhase::Running);
                let done = matches!(
                    status.phase,
                    Some(BackupPhase::Complete | BackupPhase::Failed)
                );
                (verified || done)
                    .then(|| ObjectRef::new(&backup.spec.cloud).within(backup.backup_namespace()))
            });
    controller = controller.reconcile_on(finished);

    let readiness_flag = readiness.clone();
    let all_listed = synced.clone();
    tokio::spawn(async move {
        all_listed.wait().await;
        readiness_flag.set(true);
    });

    // The backup controller runs beside the clouds', under the same lease; its schedule reads
    // the clouds from this cache rather than listing them every round.
    let cloud_cache = ctx.fleet.cache();
    let backups = async move {
        if let Some(watches) = backup_watches {
            let limits = backups::Limits {
                min_interval: args.min_backup_interval,
            };
            backups::run(
                client,
                args.runner_image,
                limits,
                cloud_cache,
                watches,
                synced,
            )
            .await;
        }
    };

    let ctx_for_reset = ctx.clone();
    let clouds = controller
        .run(
            |cloud, ctx| async move {
                let result = reconcile::reconcile(cloud.clone(), ctx.clone()).await;
                if result.is_ok() {
                    ctx.backoff.reset(&ObjectRef::from_obj(&*cloud).erase());
                }
                result
            },
            reconcile::error_policy,
            ctx,
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "reconcile error");
            }
        });
    tokio::join!(clouds, backups);
    drop(ctx_for_reset);
}

#[cfg(test)]
mod interval_tests {
    use super::parse_interval;

    #[test]
    fn the_minimum_backup_interval_reads_like_the_charts_value() {
        let minutes = |text: &str| parse_interval(text).map(|d| d.as_secs() / 60);
        assert_eq!(minutes("15m"), Ok(15));
        assert_eq!(minutes("1h 30m"), Ok(90));
        assert_eq!(minutes("0s"), Ok(0));
        assert!(parse_interval("-5m").is_err());
        assert!(parse_interval("soon").is_err());
    }
}
