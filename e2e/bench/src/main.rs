//! insync-bench: how fast one operator process converges N clouds on a real control plane
//! against the API server's own floor for the same objects, how many API writes that costs, what
//! a steady cluster costs, what a restart costs, and how much memory each phase takes.
//!
//! Run by hand (not a test, not in CI); see docs/benchmarks.md:
//!
//! ```sh
//! export CARGO_TARGET_DIR=$HOME/.cache/insync-operator/target
//! cargo build --release -p insync-operator -p insync-bench
//! $CARGO_TARGET_DIR/release/insync-bench --clouds 1,100,1000
//! ```
//!
//! Each N gets two fresh control planes of its own, one after the other (`e2e/cluster` with
//! `--state` and ports apart from the shared e2e cluster), torn down (`down --purge`) after use:
//! one for the floor (the bench writes the children itself, see `floor.rs`), one for the
//! operator.
//!
//! `--rings 10,30,60` runs the ring scenario instead (`rings.rs`): the clouds in rings, one
//! version change for all, time per rollout step and clouds per minute by ring.

mod api;
mod converge;
mod floor;
mod op;
mod plane;
mod quantity;
mod report;
mod rings;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use insync_operator::api::{DnsProvider, InSyncCloud};
use insync_operator::render::{RenderOptions, render};
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::api::ApiSnapshot;
use crate::plane::{Demand, PlaneArgs};

#[derive(Parser, Debug)]
#[command(
    name = "insync-bench",
    about = "Operator convergence benchmark on a private local control plane"
)]
pub struct Args {
    /// Cloud counts to run, each on fresh control planes.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    clouds: Vec<usize>,
    /// Runs of each N (the table shows medians).
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Namespaces the clouds are spread over.
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
    /// Seconds of no changes after all clouds are Ready, to count steady-state writes.
    #[arg(long, default_value_t = 300)]
    steady_secs: u64,
    /// Seconds after the restart of the operator over the converged clouds in which its writes
    /// are counted (at least until it has compared every object once).
    #[arg(long, default_value_t = 60)]
    restart_secs: u64,
    /// Give up waiting for Ready (or the floor's workloads, or a re-list) after this many
    /// seconds.
    #[arg(long, default_value_t = 3600)]
    ready_timeout_secs: u64,
    /// The operator's --concurrency, and the floor's clouds written at a time.
    #[arg(long, default_value_t = 8)]
    concurrency: u16,
    /// Interval of the lists that check readiness (clouds; the floor's workloads).
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// Clouds created at the same time.
    #[arg(long, default_value_t = 16)]
    create_parallelism: usize,
    /// Skip the floor (the operator runs only).
    #[arg(long)]
    skip_floor: bool,
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
    /// The ring scenario instead of convergence: clouds per ring (`10,30,60`: 100 clouds, ring 0
    /// the canaries). All converge, then every cloud's spec.version changes at once.
    #[arg(long, value_delimiter = ',')]
    rings: Vec<usize>,
    /// Ring scenario: the operator's --max-concurrent-upgrades, one run each (0: no limit, the
    /// chart's default).
    #[arg(long, value_delimiter = ',', default_value = "0,10")]
    max_concurrent_upgrades: Vec<usize>,
    /// Ring scenario: the version every cloud moves to (from examples/fcloud.yaml's).
    #[arg(long, default_value = "5.9.2-r4190")]
    to_version: String,
    #[command(flatten)]
    plane: PlaneArgs,
}

/// Namespaces of the bench's clouds start with this.
pub const NAMESPACE_PREFIX: &str = "bench-";

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
    let machine = report::Machine::now();
    eprintln!(
        "bench: operator {} ; control plane state {} (apiserver :{}) ; out {} ; {}",
        operator.display(),
        args.plane.state.display(),
        args.plane.apiserver_port,
        args.out_dir.display(),
        machine
    );

    if !args.rings.is_empty() {
        return run_rings(&args, &operator).await;
    }
    let mut results = Vec::new();
    for (i, &n) in args.clouds.iter().enumerate() {
        for run in 1..=args.runs {
            let last = i + 1 == args.clouds.len() && run == args.runs;
            let floor = if args.skip_floor {
                None
            } else {
                eprintln!("\n=== N={n} run {run}: floor, fresh control plane ===");
                let outcome = run_floor(&args, n).await;
                let teardown = args.plane.teardown().await;
                let floor = outcome.with_context(|| format!("floor N={n}"))?;
                teardown?;
                Some(floor)
            };
            eprintln!("\n=== N={n} run {run}: operator, fresh control plane ===");
            let outcome = converge::run(&args, &operator, n).await;
            let teardown = if args.keep_cluster && last {
                eprintln!(
                    "bench: control plane left up: INSYNC_E2E_STATE={} e2e/cluster env",
                    args.plane.state.display()
                );
                Ok(())
            } else {
                args.plane.teardown().await
            };
            let mut result = outcome.with_context(|| format!("N={n}"))?;
            teardown?;
            result.run = run;
            result.floor = floor;
            report::print_details(&result);
            results.push(result);
            let path = args.out_dir.join("results.json");
            std::fs::write(&path, serde_json::to_string_pretty(&results)?)?;
        }
    }
    report::print_table(&results, &args, &machine);
    Ok(())
}

/// The ring scenario, once per `--max-concurrent-upgrades` value and run, each on a fresh plane.
async fn run_rings(args: &Args, operator: &std::path::Path) -> Result<()> {
    let mut results = Vec::new();
    let limits = &args.max_concurrent_upgrades;
    for (i, &max) in limits.iter().enumerate() {
        for run in 1..=args.runs {
            let last = i + 1 == limits.len() && run == args.runs;
            eprintln!(
                "\n=== rings {:?}, --max-concurrent-upgrades {max}, run {run}: fresh control plane ===",
                args.rings
            );
            let outcome = rings::run(args, operator, &args.rings, max).await;
            let teardown = if args.keep_cluster && last {
                Ok(())
            } else {
                args.plane.teardown().await
            };
            let mut result = outcome.with_context(|| format!("rings, max {max}"))?;
            teardown?;
            result.run = run;
            rings::print_table(std::slice::from_ref(&result));
            results.push(result);
            let path = args.out_dir.join("rings.json");
            std::fs::write(&path, serde_json::to_string_pretty(&results)?)?;
        }
    }
    rings::print_table(&results);
    Ok(())
}

/// The 1-, 5- and 15-minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A fresh control plane ready for N clouds: CRDs, node capacity, namespaces.
pub struct Prepared {
    pub client: Client,
    pub clouds: Vec<InSyncCloud>,
    pub extra_nodes: usize,
}

pub async fn prepare(args: &Args, n: usize) -> Result<Prepared> {
    args.plane.fresh().await?;
    let client = args.plane.client().await?;
    args.plane.install_crds().await?;
    let text = std::fs::read_to_string(insync_e2e::repo_root().join("examples/fcloud.yaml"))?;
    let template: InSyncCloud = serde_yaml::from_str(&text)?;
    let namespaces = args.namespaces.min(n).max(1);
    let clouds: Vec<InSyncCloud> = (0..n)
        .map(|i| bench_cloud(&template, i, namespaces))
        .collect();
    let per = demand_per_cloud(&bench_cloud(&template, 0, 1))?;
    let demand = Demand {
        pods: per.pods * n as f64,
        cpu_milli: per.cpu_milli * n as f64,
        memory: per.memory * n as f64,
    };
    let extra_nodes = plane::ensure_capacity(&client, demand).await?;
    eprintln!(
        "bench: a cloud asks for {} pods, {:.2} CPU, {:.1} GiB; added {} kwok node(s) of 256 CPU / 2Ti / 1000 pods",
        per.pods,
        per.cpu_milli / 1000.0,
        per.memory / 1024f64.powi(3),
        extra_nodes
    );
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
    Ok(Prepared {
        client,
        clouds,
        extra_nodes,
    })
}

async fn run_floor(args: &Args, n: usize) -> Result<floor::Floor> {
    let prepared = prepare(args, n).await?;
    let floor = floor::run(
        &prepared.client,
        floor::FloorPlan {
            clouds: prepared.clouds,
            create_parallelism: args.create_parallelism,
            concurrency: usize::from(args.concurrency),
            poll: std::time::Duration::from_millis(args.poll_ms),
            timeout: std::time::Duration::from_secs(args.ready_timeout_secs),
            plane: &args.plane,
        },
    )
    .await?;
    eprintln!(
        "floor: all {} workloads settled after {:.1}s",
        floor.workloads, floor.secs
    );
    Ok(floor)
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
    format!("{NAMESPACE_PREFIX}{i}")
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
