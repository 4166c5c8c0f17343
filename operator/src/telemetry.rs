//! Tracing, Prometheus metrics and the health endpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Label: the kind of an error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Stable error label.
    pub kind: String,
}

/// Label: a cloud.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloudLabels {
    /// Namespace of the cloud.
    pub namespace: String,
    /// Name of the cloud.
    pub name: String,
}

/// Label: a kind of Route53 call or outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route53Labels {
    /// change, list_records, list_zones, retry, throttled, rejected_batch.
    pub call: &'static str,
}

/// Label: a CustomResourceDefinition's name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CrdLabels {
    /// e.g. `insyncclouds.insync.dev`.
    pub crd: String,
}

/// The Route53 calls the DNS syncer has made, as the metrics report them (see
/// [`Metrics::set_route53`]): a snapshot the syncer takes of its counters. It lives here, with
/// what reads it, so that telemetry depends on nothing of the DNS code that fills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallCounts {
    /// `ChangeResourceRecordSets` attempts (retries included).
    pub change_calls: u64,
    /// `ListResourceRecordSets` attempts (one per page, retries included).
    pub list_records_calls: u64,
    /// `ListHostedZones` attempts (one per page, retries included).
    pub list_zones_calls: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// Attempts answered with a throttling error (`Throttling`, `PriorRequestNotComplete`, 429, ...).
    pub throttled: u64,
    /// Change batches rejected for their content (`InvalidChangeBatch`/`InvalidInput`).
    pub rejected_batches: u64,
}

/// The operator's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Reconciles run.
    pub reconciles: Counter,
    /// Reconcile duration in seconds.
    pub reconcile_duration: Histogram,
    /// Reconcile failures by error kind.
    pub errors: Family<ErrorLabels, Counter>,
    /// Child objects written.
    pub objects_applied: Counter,
    /// Child objects found already as desired (no write).
    pub objects_skipped: Counter,
    /// Child objects pruned.
    pub objects_pruned: Counter,
    /// Upgrade phase per cloud: 0 none/complete, 1 datastores, 2 cloudmaster, 3 nodes,
    /// 4 frontend, 5 blocked.
    pub upgrade_phase: Family<CloudLabels, Gauge>,
    /// 1 while this replica holds the leader lease (or runs without election), else 0.
    pub leader: Gauge,
    /// Route53 calls since start, by kind (a snapshot of the DNS syncer's counters).
    pub route53_calls: Family<Route53Labels, Gauge>,
    /// Fields this operator writes that the installed CRD lacks, checked at start (0: current).
    pub crd_missing_fields: Family<CrdLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("insync_operator");
        let reconciles = Counter::default();
        let reconcile_duration = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        let errors = Family::<ErrorLabels, Counter>::default();
        let objects_applied = Counter::default();
        let objects_skipped = Counter::default();
        let objects_pruned = Counter::default();
        let upgrade_phase = Family::<CloudLabels, Gauge>::default();
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica is the leader",
            leader.clone(),
        );
        let route53_calls = Family::<Route53Labels, Gauge>::default();
        registry.register(
            "route53_calls",
            "Route53 calls since start, by kind",
            route53_calls.clone(),
        );
        let crd_missing_fields = Family::<CrdLabels, Gauge>::default();
        registry.register(
            "crd_missing_fields",
            "Fields this operator writes that the installed CRD lacks, checked at start",
            crd_missing_fields.clone(),
        );
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            reconcile_duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconcile failures by error kind",
            errors.clone(),
        );
        registry.register(
            "objects_applied",
            "Child objects written",
            objects_applied.clone(),
        );
        registry.register(
            "objects_skipped",
            "Child objects already as desired",
            objects_skipped.clone(),
        );
        registry.register(
            "objects_pruned",
            "Child objects deleted as no longer needed",
            objects_pruned.clone(),
        );
        registry.register("upgrade_phase", "Upgrade phase per cloud (0 none, 1 datastores, 2 cloudmaster, 3 nodes, 4 frontend, 5 blocked, 6 waiting for a window, ring or slot, 7 rolling back, 8 rolled back)", upgrade_phase.clone());
        Self {
            registry: Arc::new(registry),
            reconciles,
            reconcile_duration,
            errors,
            objects_applied,
            objects_skipped,
            objects_pruned,
            upgrade_phase,
            leader,
            route53_calls,
            crd_missing_fields,
        }
    }
}

impl Metrics {
    /// Records the DNS syncer's call counters.
    pub fn set_route53(&self, counts: &CallCounts) {
        let pairs = [
            ("change", counts.change_calls),
            ("list_records", counts.list_records_calls),
            ("list_zones", counts.list_zones_calls),
            ("retry", counts.retries),
            ("throttled", counts.throttled),
            ("rejected_batch", counts.rejected_batches),
        ];
        for (call, n) in pairs {
            self.route53_calls
                .get_or_create(&Route53Labels { call })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Readiness: a standby replica waiting for the lease is ready (it serves its purpose, and a
/// Deployment of several replicas must be able to roll); the leader is ready once its caches
/// are synced. Leadership itself is the `insync_operator_leader` gauge.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the operator ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Log format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global tracing subscriber (`RUST_LOG` filters, default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Serves `/metrics`, `/healthz` and `/readyz` until the listener fails.
///
/// Three fixed GET routes need no web framework: this reads the request line, answers, and
/// closes the connection.
pub async fn serve(listener: TcpListener, metrics: Metrics, readiness: Readiness) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        let readiness = readiness.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                socket.read(&mut buf),
            )
            .await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, content_type, body) = match path {
                "/metrics" => (
                    "200 OK",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    metrics.encode(),
                ),
                "/healthz" => ("200 OK", "text/plain", "ok\n".to_owned()),
                "/readyz" if readiness.get() => ("200 OK", "text/plain", "ready\n".to_owned()),
                "/readyz" => (
                    "503 Service Unavailable",
                    "text/plain",
                    "not ready\n".to_owned(),
                ),
                _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}
