//! The controller: watch clouds and their children, apply what render asks for, report status.
//!
//! A reconcile ([`reconcile`]) observes ([`observe`]), decides ([`decide`], with the
//! [`rollout`] state machine and [`status`] conditions; pure), acts ([`apply`], [`dns`]) and
//! records; [`leader`] election guards the writes.

// Only what the binary (`run`, `RunArgs`) and the rollout tests (`observe`, `rollout`) use is
// public; the rest is the controller's own business.
mod act;
pub mod apply;
mod cleanup;
mod context;
mod decide;
mod dns;
mod error;
mod finalizer;
mod leader;
pub mod observe;
mod reconcile;
pub mod rollout;
mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Config, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tracing::{info, warn};

use crate::api::InSyncCloud;
use crate::telemetry::{self, LogFormat, Metrics, Readiness};
use apply::ChildKind;
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
    /// Owner id written into DNS ownership records; DNS publishing is off without it.
    #[arg(long, env = "DNS_OWNER_ID")]
    pub dns_owner_id: Option<String>,
    /// Route53-compatible endpoint URL (tests, private endpoints).
    #[arg(long, env = "AWS_ENDPOINT_URL_ROUTE_53")]
    pub dns_endpoint: Option<String>,
    /// Log DNS plans without writing them.
    #[arg(long)]
    pub dns_dry_run: bool,
    /// Prefix of ownership TXT record names.
    #[arg(long, default_value = "insync-")]
    pub dns_txt_prefix: String,
    /// A domain clouds may publish under (suffix match on whole labels), for every namespace
    /// (`drtst.org`) or one (`team-a=team-a.example.com`). Repeat it for more. A cloud outside
    /// the list gets DNSReady=False/DomainNotAllowed and nothing is written. Without any, every
    /// domain is allowed (logged as a warning at start).
    #[arg(long = "dns-allowed-domain", value_name = "[NAMESPACE=]DOMAIN")]
    pub dns_allowed_domains: Vec<String>,
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

    let dns = dns::DnsWiring::from_args(&args).await?;
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let outcome = tokio::select! {
        () = controller(client, args, metrics, readiness.clone(), dns) => Ok(()),
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
) {
    let children_config = watcher::Config::default()
        .labels(&apply::managed_by_selector())
        .any_semantic();
    let mut kinds = Vec::new();
    let mut streams = Vec::new();
    for (resource, prunable) in apply::child_resources() {
        let api: Api<DynamicObject> = match &args.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let writer = reflector::store::Writer::new(resource.clone());
        let reader = writer.as_reader();
        // managedFields are never read: dropping them keeps the caches small. Touched (not just
        // applied) objects, so deleting a child also wakes its cloud.
        let types = apply::type_meta(&resource);
        let stream = watcher(api, children_config.clone())
            .default_backoff()
            .modify(move |o| {
                o.managed_fields_mut().clear();
                // Items of a list (the initial list after every start and re-list) carry no
                // apiVersion/kind, watch events do: without them every cached object looked
                // different from what render wants, and a restarted operator re-applied every
                // child at every reconcile, forever (a no-op apply sends no event to mend it).
                o.types = Some(types.clone());
            })
            .reflect(writer)
            .touched_objects();
        kinds.push(ChildKind {
            resource: resource.clone(),
            prunable,
            store: reader,
        });
        streams.push((resource, stream));
    }

    let clouds: Api<DeserializeGuard<InSyncCloud>> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let reporter = Reporter {
        controller: "insync-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        kinds: kinds.clone(),
        metrics,
        recorder: Recorder::new(client.clone(), reporter),
        backoff: Backoff::default(),
        dns,
        pruned_at: Default::default(),
    });

    let config = Config::default()
        .concurrency(args.concurrency)
        .debounce(Duration::from_millis(500));
    let mut controller =
        Controller::new(clouds, watcher::Config::default().any_semantic()).with_config(config);
    for (resource, stream) in streams {
        controller = controller.owns_stream_with(stream, resource);
    }
    if let Some(wiring) = &ctx.dns {
        controller = controller.reconcile_on(wiring.changes());
    }

    // Writes are only safe once every cache has listed what exists.
    let ready_kinds = kinds.clone();
    let readiness_flag = readiness.clone();
    tokio::spawn(async move {
        for kind in &ready_kinds {
            let _ = kind.store.wait_until_ready().await;
        }
        readiness_flag.set(true);
    });

    let ctx_for_reset = ctx.clone();
    controller
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
        })
        .await;
    drop(ctx_for_reset);
}
