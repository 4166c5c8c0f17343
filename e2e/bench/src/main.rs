//! insync-bench: how fast one operator process converges N clouds on a real control plane, how
//! many API writes that costs, what a steady cluster costs, and how much memory it takes.
//!
//! Run by hand (not a test, not in CI); see docs/benchmarks.md:
//!
//! ```sh
//! export CARGO_TARGET_DIR=$HOME/.cache/insync-operator/target
//! cargo build --release -p insync-operator -p insync-bench
//! $CARGO_TARGET_DIR/release/insync-bench --clouds 1,100,1000
//! ```
//!
//! Each N gets a fresh control plane of its own (`e2e/cluster` with `--state` and ports apart
//! from the shared e2e cluster), torn down (`down --purge`) afterwards.

mod op;
mod plane;
mod prom;
mod quantity;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use insync_operator::api::{DnsProvider, InSyncCloud};
use insync_operator::render::{RenderOptions, render};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};

use crate::op::{OpSnapshot, Operator};
use crate::plane::{Demand, PlaneArgs};

#[derive(Parser, Debug)]
#[command(
    name = "insync-bench",
    about = "Operator convergence benchmark on a private local control plane"
)]
struct Args {
    /// Cloud counts to run, each on a fresh control plane.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    clouds: Vec<usize>,
    /// Namespaces the clouds are spread over.
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
    /// Seconds of no changes after all clouds are Ready, to count steady-state writes.
    #[arg(long, default_value_t = 300)]
    steady_secs: u64,
    /// Give up waiting for Ready after this many seconds.
    #[arg(long, default_value_t = 3600)]
    ready_timeout_secs: u64,
    /// The operator's --concurrency.
    #[arg(long, default_value_t = 8)]
    concurrency: u16,
    /// Interval of the InSyncCloud list that checks readiness.
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// Clouds created at the same time.
    #[arg(long, default_value_t = 16)]
    create_parallelism: usize,
    /// The operator binary; default: `insync-operator` next to this binary (build both with
    /// `--release`).
    #[arg(long)]
    operator: Option<PathBuf>,
    /// RUST_LOG for the operator (debug on insync_operator logs why an object was rewritten).
    #[arg(long, default_value = "info,insync_operator=debug,kube=warn")]
    rust_log: String,
    /// Where the operator logs and results.json go.
    #[arg(long, default_value_os_t = std::env::temp_dir().join("insync-bench"))]
    out_dir: PathBuf,
    /// Leave the last control plane up (for a look with `e2e/cluster env`).
    #[arg(long)]
    keep_cluster: bool,
    #[command(flatten)]
    plane: PlaneArgs,
}

/// Write requests as the API server counts them: apiserver_request_total, by
/// "VERB group/resource[/subresource]", plus APF dispatches by FlowSchema.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct ApiSnapshot {
    writes: BTreeMap<String, f64>,
    flows: BTreeMap<String, f64>,
}

const WRITE_VERBS: [&str; 6] = [
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];
const OP_FLOW_CLOUDS: &str = "insync-bench-op-write-clouds";
const OP_FLOW_EVENTS: &str = "insync-bench-op-write-events";
const OP_FLOW_CHILDREN: &str = "insync-bench-op-write-children";
const OP_FLOW_READ: &str = "insync-bench-op-read";

impl ApiSnapshot {
    async fn take(plane: &PlaneArgs) -> Result<Self> {
        let text = plane.kubectl(&["get", "--raw", "/metrics"], None).await?;
        let mut snap = Self::default();
        for s in prom::parse(&text) {
            if s.name == "apiserver_request_total" {
                let verb = s.labels.get("verb").map(String::as_str).unwrap_or("");
                if !WRITE_VERBS.contains(&verb) {
                    continue;
                }
                let l = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
                let mut key = format!("{verb} ");
                if !l("group").is_empty() {
                    key += &format!("{}/", l("group"));
                }
                key += &l("resource");
                if !l("subresource").is_empty() {
                    key += &format!("/{}", l("subresource"));
                }
                *snap.writes.entry(key).or_default() += s.value;
            } else if s.name == "apiserver_flowcontrol_dispatched_requests_total" {
                let fs = s.labels.get("flow_schema").cloned().unwrap_or_default();
                *snap.flows.entry(fs).or_default() += s.value;
            }
        }
        Ok(snap)
    }

    fn minus(&self, before: &Self) -> Self {
        let diff = |a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>| {
            a.iter()
                .map(|(k, v)| (k.clone(), v - b.get(k).copied().unwrap_or(0.0)))
                .filter(|(_, v)| *v != 0.0)
                .collect()
        };
        Self {
            writes: diff(&self.writes, &before.writes),
            flows: diff(&self.flows, &before.flows),
        }
    }

    fn total_writes(&self) -> f64 {
        self.writes.values().sum()
    }

    fn flow(&self, name: &str) -> f64 {
        self.flows.get(name).copied().unwrap_or(0.0)
    }

    /// The operator's writes (its three write FlowSchemas).
    fn operator_writes(&self) -> f64 {
        self.flow(OP_FLOW_CLOUDS) + self.flow(OP_FLOW_EVENTS) + self.flow(OP_FLOW_CHILDREN)
    }
}

#[derive(Debug, Default, serde::Serialize)]
struct RunResult {
    clouds: usize,
    concurrency: u16,
    extra_nodes: usize,
    converge_secs: f64,
    create_secs: f64,
    per_cloud_ready_p50: i64,
    per_cloud_ready_max: i64,
    /// Seconds from the first create to each cloud's first write by the operator: median, last.
    first_apply_p50: f64,
    first_apply_last: f64,
    converge_api: ApiSnapshot,
    converge_op: OpSnapshot,
    steady_secs: f64,
    steady_api: ApiSnapshot,
    steady_op: OpSnapshot,
    steady_clouds_rewritten: usize,
    peak_rss_mib: f64,
    rss_end_mib: f64,
    load_start: String,
    load_ready: String,
    load_end: String,
    converge_log: op::LogSummary,
    steady_log: op::LogSummary,
    timed_out: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    args.plane.check()?;
    insync_operator::install_crypto_provider();
    let operator = match &args.operator {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no exe dir")?
            .join("insync-operator"),
    };
    anyhow::ensure!(
        operator.exists(),
        "{} is missing: cargo build --release -p insync-operator (or pass --operator)",
        operator.display()
    );
    std::fs::create_dir_all(&args.out_dir)?;
    eprintln!(
        "bench: operator {} ; control plane state {} (apiserver :{}) ; out {}",
        operator.display(),
        args.plane.state.display(),
        args.plane.apiserver_port,
        args.out_dir.display()
    );

    let mut results = Vec::new();
    for (i, &n) in args.clouds.iter().enumerate() {
        let last = i + 1 == args.clouds.len();
        let outcome = run_one(&args, &operator, n).await;
        let teardown = if args.keep_cluster && last {
            eprintln!(
                "bench: control plane left up: INSYNC_E2E_STATE={} e2e/cluster env",
                args.plane.state.display()
            );
            Ok(())
        } else {
            args.plane.teardown().await
        };
        let result = outcome.with_context(|| format!("N={n}"))?;
        teardown?;
        print_details(&result);
        results.push(result);
        let path = args.out_dir.join("results.json");
        std::fs::write(&path, serde_json::to_string_pretty(&results)?)?;
    }
    print_table(&results, &args);
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The fcloud example as the bench's cloud `i`: unique name, DNS off, node ports left to
/// Kubernetes (fixed ones would collide between clouds).
fn bench_cloud(template: &InSyncCloud, i: usize, namespaces: usize) -> InSyncCloud {
    let mut cloud = template.clone();
    cloud.metadata = ObjectMeta {
        name: Some(format!("fcloud-{i:04}")),
        namespace: Some(namespace(i % namespaces)),
        ..Default::default()
    };
    cloud.spec.frontend.service.master_node_port = None;
    cloud.spec.frontend.service.storage_node_port = None;
    if let Some(dns) = cloud.spec.dns.as_mut() {
        dns.provider = DnsProvider::None;
    }
    cloud
}

fn namespace(i: usize) -> String {
    format!("bench-{i}")
}

/// Pods, CPU and memory one cloud asks for, from the renderer (replicas × container requests).
fn demand_per_cloud(cloud: &InSyncCloud) -> Result<Demand> {
    let mut d = Demand::default();
    for item in render(cloud, &RenderOptions::default())? {
        let kind = item
            .object
            .types
            .as_ref()
            .map(|t| t.kind.as_str())
            .unwrap_or("");
        if kind != "Deployment" && kind != "StatefulSet" {
            continue;
        }
        let spec = &item.object.data["spec"];
        let replicas = spec["replicas"].as_f64().unwrap_or(1.0);
        d.pods += replicas;
        let containers = spec["template"]["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for c in containers {
            let req = &c["resources"]["requests"];
            if let Some(cpu) = req["cpu"].as_str() {
                d.cpu_milli += replicas * quantity::parse(cpu)? * 1000.0;
            }
            if let Some(mem) = req["memory"].as_str() {
                d.memory += replicas * quantity::parse(mem)?;
            }
        }
    }
    Ok(d)
}

fn ready_now(cloud: &InSyncCloud) -> bool {
    let Some(status) = cloud.status.as_ref() else {
        return false;
    };
    status.observed_generation == cloud.metadata.generation
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Seconds from creation to the Ready transition, from the objects themselves.
fn ready_after_secs(cloud: &InSyncCloud) -> Option<i64> {
    let created = cloud.metadata.creation_timestamp.as_ref()?;
    let ready = cloud
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(ready.last_transition_time.0.as_second() - created.0.as_second())
}

async fn list_clouds(api: &Api<InSyncCloud>) -> Result<Vec<InSyncCloud>> {
    // resourceVersion=0: served from the API server's watch cache, the cheap list.
    Ok(api.list(&ListParams::default().match_any()).await?.items)
}

async fn run_one(args: &Args, operator: &std::path::Path, n: usize) -> Result<RunResult> {
    let mut r = RunResult {
        clouds: n,
        concurrency: args.concurrency,
        ..Default::default()
    };
    eprintln!("\n=== N={n}: fresh control plane ===");
    args.plane.fresh().await?;
    let client = args.plane.client().await?;
    args.plane.install_crd().await?;
    let op_kubeconfig = args.plane.operator_kubeconfig().await?;

    let text = std::fs::read_to_string(insync_e2e::repo_root().join("examples/fcloud.yaml"))?;
    let template: InSyncCloud = serde_yaml::from_str(&text)?;
    let per = demand_per_cloud(&bench_cloud(&template, 0, 1))?;
    let demand = Demand {
        pods: per.pods * n as f64,
        cpu_milli: per.cpu_milli * n as f64,
        memory: per.memory * n as f64,
    };
    r.extra_nodes = plane::ensure_capacity(&client, demand).await?;
    eprintln!(
        "bench: a cloud asks for {} pods, {:.2} CPU, {:.1} GiB; added {} kwok node(s) of 256 CPU / 2Ti / 1000 pods",
        per.pods,
        per.cpu_milli / 1000.0,
        per.memory / 1024f64.powi(3),
        r.extra_nodes
    );
    let namespaces = args.namespaces.min(n).max(1);
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for i in 0..namespaces {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace(i)),
                labels: Some([("insync.dev/bench".to_owned(), "true".to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        ns_api.create(&PostParams::default(), &ns).await?;
    }

    let log = args.out_dir.join(format!("operator-{n}.log"));
    let ticks = op::ticks_per_sec();
    let operator = Operator::start(
        operator,
        &op_kubeconfig,
        args.concurrency,
        &args.rust_log,
        log.clone(),
    )
    .await?;
    let result = measure(
        args, &client, &operator, &template, n, namespaces, ticks, &mut r,
    )
    .await;
    if let Ok((hwm, rss)) = operator.memory_mib() {
        r.peak_rss_mib = hwm;
        r.rss_end_mib = rss;
    }
    operator.stop().await?;
    result?;
    Ok(r)
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    args: &Args,
    client: &Client,
    operator: &Operator,
    template: &InSyncCloud,
    n: usize,
    namespaces: usize,
    ticks: f64,
    r: &mut RunResult,
) -> Result<()> {
    let clouds_api: Api<InSyncCloud> = Api::all(client.clone());
    // Let the operator settle (initial lists, nothing to do yet) before the baseline.
    tokio::time::sleep(Duration::from_secs(2)).await;
    r.load_start = loadavg();
    let api_before = ApiSnapshot::take(&args.plane).await?;
    let op_before = operator.snapshot(ticks).await?;

    // Apply every cloud, `create_parallelism` at a time; the clock starts at the first one.
    let start = Instant::now();
    let start_day = op::now_day_secs();
    futures::stream::iter(0..n)
        .map(|i| {
            let cloud = bench_cloud(template, i, namespaces);
            let api: Api<InSyncCloud> = Api::namespaced(
                client.clone(),
                cloud.metadata.namespace.as_deref().unwrap_or(""),
            );
            async move { api.create(&PostParams::default(), &cloud).await }
        })
        .buffer_unordered(args.create_parallelism)
        .try_collect::<Vec<_>>()
        .await?;
    r.create_secs = start.elapsed().as_secs_f64();
    eprintln!("bench: created {n} clouds in {:.1}s", r.create_secs);

    // Poll a list of all clouds until every one is Ready for its generation.
    let deadline = start + Duration::from_secs(args.ready_timeout_secs);
    let mut last_report = Instant::now();
    let clouds = loop {
        let clouds = list_clouds(&clouds_api).await?;
        let ready = clouds.iter().filter(|c| ready_now(c)).count();
        if ready == n && clouds.len() == n {
            break clouds;
        }
        if last_report.elapsed() >= Duration::from_secs(15) {
            let (_, rss) = operator.memory_mib().unwrap_or_default();
            eprintln!(
                "bench: {:>6.0}s ready {ready}/{n}, operator RSS {rss:.0} MiB, load {}",
                start.elapsed().as_secs_f64(),
                loadavg()
            );
            last_report = Instant::now();
        }
        if Instant::now() >= deadline {
            r.timed_out = true;
            let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
            for c in clouds.iter().filter(|c| !ready_now(c)) {
                let why = c
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                    .map(|c| format!("{}: {}", c.reason, c.message))
                    .unwrap_or_else(|| "no status".into());
                *reasons.entry(why).or_default() += 1;
            }
            bail!(
                "only {ready}/{n} clouds Ready after {}s: {reasons:#?}",
                args.ready_timeout_secs
            );
        }
        tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
    };
    r.converge_secs = start.elapsed().as_secs_f64();
    r.load_ready = loadavg();
    let api_ready = ApiSnapshot::take(&args.plane).await?;
    let op_ready = operator.snapshot(ticks).await?;
    let log_ready = op::log_len(&operator.log);
    r.converge_api = api_ready.minus(&api_before);
    r.converge_op = op_ready.minus(&op_before);
    r.converge_log = op::summarize_log(&operator.log, 0, log_ready)?;
    let mut times: Vec<i64> = clouds.iter().filter_map(ready_after_secs).collect();
    times.sort_unstable();
    r.per_cloud_ready_p50 = times.get(times.len() / 2).copied().unwrap_or(0);
    r.per_cloud_ready_max = times.last().copied().unwrap_or(0);
    let mut firsts: Vec<f64> = r
        .converge_log
        .first_applied
        .values()
        .map(|t| (t - start_day).rem_euclid(86_400.0))
        .collect();
    firsts.sort_by(f64::total_cmp);
    r.first_apply_p50 = firsts.get(firsts.len() / 2).copied().unwrap_or(0.0);
    r.first_apply_last = firsts.last().copied().unwrap_or(0.0);
    eprintln!(
        "bench: all {n} Ready after {:.1}s; steady window {}s",
        r.converge_secs, args.steady_secs
    );

    // Steady state: nothing changes for steady_secs.
    let versions: BTreeMap<String, String> = clouds
        .iter()
        .map(|c| (c.name_any(), c.resource_version().unwrap_or_default()))
        .collect();
    let steady_start = Instant::now();
    while steady_start.elapsed() < Duration::from_secs(args.steady_secs) {
        let left = Duration::from_secs(args.steady_secs).saturating_sub(steady_start.elapsed());
        tokio::time::sleep(left.min(Duration::from_secs(60))).await;
        if !left.is_zero() {
            let (_, rss) = operator.memory_mib().unwrap_or_default();
            eprintln!(
                "bench: steady {:>4.0}s, operator RSS {rss:.0} MiB, load {}",
                steady_start.elapsed().as_secs_f64(),
                loadavg()
            );
        }
    }
    r.steady_secs = steady_start.elapsed().as_secs_f64();
    let api_end = ApiSnapshot::take(&args.plane).await?;
    let op_end = operator.snapshot(ticks).await?;
    r.load_end = loadavg();
    r.steady_api = api_end.minus(&api_ready);
    r.steady_op = op_end.minus(&op_ready);
    r.steady_log = op::summarize_log(&operator.log, log_ready, op::log_len(&operator.log))?;
    r.steady_clouds_rewritten = list_clouds(&clouds_api)
        .await?
        .iter()
        .filter(|c| versions.get(&c.name_any()) != Some(&c.resource_version().unwrap_or_default()))
        .count();
    Ok(())
}

fn top(map: &BTreeMap<String, f64>, k: usize) -> String {
    let mut v: Vec<_> = map.iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(a.1));
    v.iter()
        .take(k)
        .map(|(key, val)| format!("{key} {val:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn top_u(map: &BTreeMap<String, u64>, k: usize) -> String {
    top(
        &map.iter().map(|(k, v)| (k.clone(), *v as f64)).collect(),
        k,
    )
}

fn print_details(r: &RunResult) {
    let n = r.clouds as f64;
    let c = &r.converge_api;
    let s = &r.steady_api;
    println!("\n--- N={} ---", r.clouds);
    println!(
        "converge: {:.1}s (creates took {:.1}s; per cloud creation->Ready p50 {}s, max {}s); extra kwok nodes {}",
        r.converge_secs, r.create_secs, r.per_cloud_ready_p50, r.per_cloud_ready_max, r.extra_nodes
    );
    println!(
        "  operator's first write to a cloud: p50 {:.1}s, last {:.1}s after the first create; reconcile workers busy {:.0}% ({:.0}s in reconciles / ({} workers x {:.0}s))",
        r.first_apply_p50,
        r.first_apply_last,
        100.0 * r.converge_op.reconcile_secs
            / (f64::from(r.concurrency) * r.converge_secs.max(0.001)),
        r.converge_op.reconcile_secs,
        r.concurrency,
        r.converge_secs
    );
    println!(
        "  operator writes {:.0} ({:.1}/cloud): InSyncCloud status/finalizer {:.0}, events {:.0}, children {:.0}; operator reads/watches {:.0}",
        c.operator_writes(),
        c.operator_writes() / n,
        c.flow(OP_FLOW_CLOUDS),
        c.flow(OP_FLOW_EVENTS),
        c.flow(OP_FLOW_CHILDREN),
        c.flow(OP_FLOW_READ)
    );
    println!(
        "  operator metrics: applied {:.0}, skipped {:.0}, pruned {:.0}, reconciles {:.0}, errors {:.0}, CPU {:.1}s",
        r.converge_op.applied,
        r.converge_op.skipped,
        r.converge_op.pruned,
        r.converge_op.reconciles,
        r.converge_op.errors,
        r.converge_op.cpu_secs
    );
    println!(
        "  all clients' writes {:.0} ({:.1}/cloud); top: {}",
        c.total_writes(),
        c.total_writes() / n,
        top(&c.writes, 12)
    );
    println!(
        "  operator log: warnings {}, errors {}; rewrites (live differs): {}",
        r.converge_log.warnings,
        r.converge_log.errors,
        if r.converge_log.differs.is_empty() {
            "none".into()
        } else {
            top_u(&r.converge_log.differs, 8)
        }
    );
    println!(
        "steady {:.0}s: operator writes {:.0} (clouds {:.0}, events {:.0}, children {:.0}), objects applied {:.0}, reconciles {:.0}, CPU {:.1}s, clouds rewritten {}",
        r.steady_secs,
        s.operator_writes(),
        s.flow(OP_FLOW_CLOUDS),
        s.flow(OP_FLOW_EVENTS),
        s.flow(OP_FLOW_CHILDREN),
        r.steady_op.applied,
        r.steady_op.reconciles,
        r.steady_op.cpu_secs,
        r.steady_clouds_rewritten
    );
    println!(
        "  all clients' writes {:.0} ({:.1}/min); top: {}",
        s.total_writes(),
        s.total_writes() * 60.0 / r.steady_secs.max(1.0),
        top(&s.writes, 8)
    );
    if !r.steady_log.applied.is_empty() || !r.steady_log.differs.is_empty() {
        println!(
            "  steady writes by object: {}; why: {}",
            top_u(&r.steady_log.applied, 10),
            top_u(&r.steady_log.differs, 10)
        );
    }
    println!(
        "memory: operator VmHWM {:.0} MiB, VmRSS at end {:.0} MiB; load {} -> {} -> {}",
        r.peak_rss_mib, r.rss_end_mib, r.load_start, r.load_ready, r.load_end
    );
}

fn print_table(results: &[RunResult], args: &Args) {
    println!(
        "\n| clouds | converge (s) | per cloud Ready p50 / max (s) | last first write (s) | operator writes / cloud | objects applied / cloud | all clients' writes / cloud | steady window (s) | steady operator writes | steady objects applied | peak RSS (MiB) | load 1m start / Ready / end |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in results {
        let n = r.clouds as f64;
        println!(
            "| {} | {:.1} | {} / {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {} / {} / {} |",
            r.clouds,
            r.converge_secs,
            r.per_cloud_ready_p50,
            r.per_cloud_ready_max,
            r.first_apply_last,
            r.converge_api.operator_writes() / n,
            r.converge_op.applied / n,
            r.converge_api.total_writes() / n,
            r.steady_secs,
            r.steady_api.operator_writes(),
            r.steady_op.applied,
            r.peak_rss_mib,
            first(&r.load_start),
            first(&r.load_ready),
            first(&r.load_end)
        );
    }
    println!(
        "\nconcurrency {}, {} namespaces, one operator process; results: {}",
        args.concurrency,
        args.namespaces,
        args.out_dir.join("results.json").display()
    );
}

fn first(load: &str) -> &str {
    load.split_whitespace().next().unwrap_or("")
}
