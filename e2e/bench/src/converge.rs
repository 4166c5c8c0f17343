//! The operator run on a fresh plane: the operator starts, the bench creates N clouds and waits
//! until all are Ready (convergence), then watches a steady window, then restarts the operator
//! over the converged clouds (a cold start: every cache lists N clouds and their children) and
//! counts what the restarted process writes.
//!
//! Memory by phase, from `/proc/<pid>/status` (KiB): the peak during convergence (VmHWM when
//! all clouds are Ready), the resident set at the end of the steady window and its peak in the
//! window (VmHWM reset when it starts), the restarted process's peak until `/readyz` (the
//! re-list: every cache listed) and its peak over the restart window (re-list plus one
//! comparison of every object).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures::{StreamExt, TryStreamExt};
use insync_e2e::operator_process::{OperatorCommand, OperatorProcess};
use insync_operator::api::InSyncCloud;
use insync_operator::render::{RenderOptions, render};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};

use crate::api::ApiSnapshot;
use crate::op::{self, LogSummary, OpSnapshot};
use crate::{Args, loadavg};

/// Resident memory by phase, KiB (see the module doc).
#[derive(Debug, Default, serde::Serialize)]
pub struct Rss {
    /// The first process when `/readyz` answered (empty cluster).
    pub start_peak_kib: u64,
    pub converge_peak_kib: u64,
    pub steady_kib: u64,
    pub steady_peak_kib: u64,
    /// The restarted process at `/readyz`: every cache listed N clouds' objects (None when
    /// `/readyz` never answered 200 within the restart window).
    pub relist_peak_kib: Option<u64>,
    /// The restarted process at the end of the restart window.
    pub restart_peak_kib: u64,
    pub restart_kib: u64,
}

/// The restarted operator over the converged clouds.
#[derive(Debug, Default, serde::Serialize)]
pub struct Restart {
    /// Spawn to `/readyz` (None: not within the window).
    pub relist_secs: Option<f64>,
    /// Spawn to every desired object compared once (applied + skipped ≥ N × objects per
    /// cloud); None when that did not happen within the ready timeout.
    pub recheck_secs: Option<f64>,
    /// Spawn to the end of the window.
    pub window_secs: f64,
    pub api: ApiSnapshot,
    pub op: OpSnapshot,
    pub log: LogSummary,
    pub clouds_rewritten: usize,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct RunResult {
    pub clouds: usize,
    pub run: usize,
    pub concurrency: u16,
    pub extra_nodes: usize,
    pub floor: Option<crate::floor::Floor>,
    pub converge_secs: f64,
    pub create_secs: f64,
    pub per_cloud_ready_p50: i64,
    pub per_cloud_ready_max: i64,
    /// Seconds from the first create to each cloud's first write by the operator: median, last.
    pub first_apply_p50: f64,
    pub first_apply_last: f64,
    pub converge_api: ApiSnapshot,
    pub converge_op: OpSnapshot,
    pub steady_secs: f64,
    pub steady_api: ApiSnapshot,
    pub steady_op: OpSnapshot,
    pub steady_clouds_rewritten: usize,
    pub rss: Rss,
    pub restart: Restart,
    pub load_start: String,
    pub load_ready: String,
    pub load_end: String,
    pub converge_log: LogSummary,
    pub steady_log: LogSummary,
}

impl RunResult {
    /// Operator convergence over the floor, when the floor ran.
    pub fn ratio(&self) -> Option<f64> {
        let floor = self.floor.as_ref()?;
        (floor.secs > 0.0).then(|| self.converge_secs / floor.secs)
    }
}

/// One operator run for `n` clouds on a fresh plane (left up; the caller tears it down).
pub async fn run(args: &Args, operator: &Path, n: usize) -> Result<RunResult> {
    let prepared = crate::prepare(args, n).await?;
    let mut r = RunResult {
        clouds: n,
        concurrency: args.concurrency,
        extra_nodes: prepared.extra_nodes,
        ..Default::default()
    };
    let objects_per_cloud = match prepared.clouds.first() {
        Some(cloud) => render(cloud, &RenderOptions::default())?.len(),
        None => 0,
    };
    let op_kubeconfig = args.plane.operator_kubeconfig().await?;
    let op = OperatorCommand::new(operator, args.out_dir.join(format!("operator-{n}.log")))
        .kubeconfig(op_kubeconfig)
        .args(["--concurrency".to_owned(), args.concurrency.to_string()])
        .rust_log(&args.rust_log)
        .ready_timeout(Duration::from_secs(args.ready_timeout_secs))
        .stop_timeout(Duration::from_secs(60))
        .start()
        .await?;
    r.rss.start_peak_kib = op.ready_memory().map_or(0, |m| m.peak_kib);
    let op = converge_and_settle(args, &prepared.client, op, prepared.clouds, &mut r).await?;
    // Kept in case the restart fails or the bench is stopped: the run so far.
    std::fs::write(
        args.out_dir.join(format!("partial-{n}.json")),
        serde_json::to_string_pretty(&r)?,
    )?;
    let op = restart(args, &prepared.client, op, n * objects_per_cloud, &mut r).await?;
    op.terminate().await?;
    Ok(r)
}

/// Creates the clouds, waits until all are Ready, then the steady window.
async fn converge_and_settle(
    args: &Args,
    client: &Client,
    operator: OperatorProcess,
    clouds: Vec<InSyncCloud>,
    r: &mut RunResult,
) -> Result<OperatorProcess> {
    let n = clouds.len();
    let clouds_api: Api<InSyncCloud> = Api::all(client.clone());
    // Let the operator settle (initial lists, nothing to do yet) before the baseline.
    tokio::time::sleep(Duration::from_secs(2)).await;
    r.load_start = loadavg();
    let api_before = ApiSnapshot::take(&args.plane).await?;
    let op_before = OpSnapshot::take(&operator).await?;

    // Create every cloud, `create_parallelism` at a time; the clock starts at the first one.
    let start = Instant::now();
    let start_day = op::now_day_secs();
    create_all(client, clouds, args.create_parallelism).await?;
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
            let rss = operator.memory().map(|m| m.rss_kib).unwrap_or_default();
            eprintln!(
                "bench: {:>6.0}s ready {ready}/{n}, operator RSS {} MiB, load {}",
                start.elapsed().as_secs_f64(),
                rss / 1024,
                loadavg()
            );
            last_report = Instant::now();
        }
        if Instant::now() >= deadline {
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
    r.rss.converge_peak_kib = operator.memory()?.peak_kib;
    operator.reset_peak()?;
    r.load_ready = loadavg();
    let api_ready = ApiSnapshot::take(&args.plane).await?;
    let op_ready = OpSnapshot::take(&operator).await?;
    let log_ready = op::log_len(operator.log());
    r.converge_api = api_ready.minus(&api_before);
    r.converge_op = op_ready.minus(&op_before);
    r.converge_log = op::summarize_log(operator.log(), 0, log_ready)?;
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
        "bench: all {n} Ready after {:.1}s (operator peak RSS {} MiB); steady window {}s",
        r.converge_secs,
        r.rss.converge_peak_kib / 1024,
        args.steady_secs
    );

    // Steady state: nothing changes for steady_secs.
    let versions = versions(&clouds);
    let steady_start = Instant::now();
    while steady_start.elapsed() < Duration::from_secs(args.steady_secs) {
        let left = Duration::from_secs(args.steady_secs).saturating_sub(steady_start.elapsed());
        tokio::time::sleep(left.min(Duration::from_secs(60))).await;
        let rss = operator.memory().map(|m| m.rss_kib).unwrap_or_default();
        eprintln!(
            "bench: steady {:>4.0}s, operator RSS {} MiB, load {}",
            steady_start.elapsed().as_secs_f64(),
            rss / 1024,
            loadavg()
        );
    }
    r.steady_secs = steady_start.elapsed().as_secs_f64();
    let memory = operator.memory()?;
    r.rss.steady_kib = memory.rss_kib;
    r.rss.steady_peak_kib = memory.peak_kib;
    let api_end = ApiSnapshot::take(&args.plane).await?;
    let op_end = OpSnapshot::take(&operator).await?;
    r.load_end = loadavg();
    r.steady_api = api_end.minus(&api_ready);
    r.steady_op = op_end.minus(&op_ready);
    r.steady_log = op::summarize_log(operator.log(), log_ready, op::log_len(operator.log()))?;
    r.steady_clouds_rewritten = rewritten(&list_clouds(&clouds_api).await?, &versions);
    Ok(operator)
}

/// Restarts the operator over the converged clouds and counts its writes until it has compared
/// every object once and `restart_secs` have passed.
async fn restart(
    args: &Args,
    client: &Client,
    operator: OperatorProcess,
    objects: usize,
    r: &mut RunResult,
) -> Result<OperatorProcess> {
    let clouds_api: Api<InSyncCloud> = Api::all(client.clone());
    let versions = versions(&list_clouds(&clouds_api).await?);
    let api_before = ApiSnapshot::take(&args.plane).await?;
    let log_before = op::log_len(operator.log());
    eprintln!("bench: restarting the operator over {} clouds", r.clouds);
    let start = Instant::now();
    // Not `restart()`: a process whose /readyz never answers is a finding to measure, not a
    // reason to stop measuring.
    let mut operator = operator.respawn().await?;
    let deadline = start + Duration::from_secs(args.ready_timeout_secs);
    let window = Duration::from_secs(args.restart_secs);
    let mut last_metrics = None::<Instant>;
    loop {
        if r.restart.relist_secs.is_none() && operator.poll_ready().await? {
            r.restart.relist_secs = operator.ready_after().map(|d| d.as_secs_f64());
            r.rss.relist_peak_kib = operator.ready_memory().map(|m| m.peak_kib);
            eprintln!(
                "bench: restarted operator ready after {:.1}s, peak RSS {} MiB",
                r.restart.relist_secs.unwrap_or_default(),
                r.rss.relist_peak_kib.unwrap_or_default() / 1024
            );
        }
        // /readyz every 100 ms until it answers (its moment is the first-list peak), the
        // counters every second.
        if last_metrics.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            last_metrics = Some(Instant::now());
            // The new process serves /metrics a moment after its spawn: until it does, only
            // its being alive matters (memory() fails for a process that exited).
            operator.memory()?;
            let compared = match OpSnapshot::take(&operator).await {
                Ok(now) => now.applied + now.skipped,
                Err(_) => 0.0,
            };
            if r.restart.recheck_secs.is_none() && compared >= objects as f64 {
                r.restart.recheck_secs = Some(start.elapsed().as_secs_f64());
                eprintln!(
                    "bench: restarted operator compared all {objects} objects after {:.1}s",
                    start.elapsed().as_secs_f64()
                );
            }
        }
        let compared = r.restart.recheck_secs.is_some();
        let ready = r.restart.relist_secs.is_some();
        let out_of_time = Instant::now() >= deadline;
        if start.elapsed() >= window && ((compared && ready) || out_of_time) {
            break;
        }
        if start.elapsed() >= window && compared && !ready {
            eprintln!(
                "bench: the restarted operator compared every object but its /readyz has not answered 200 after {:.0}s; ending the window",
                start.elapsed().as_secs_f64()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(if ready { 1000 } else { 100 })).await;
    }
    r.restart.window_secs = start.elapsed().as_secs_f64();
    let memory = operator.memory()?;
    r.rss.restart_peak_kib = memory.peak_kib;
    r.rss.restart_kib = memory.rss_kib;
    // The restarted process's counters start at zero.
    r.restart.op = OpSnapshot::take(&operator).await?;
    r.restart.api = ApiSnapshot::take(&args.plane).await?.minus(&api_before);
    r.restart.log = op::summarize_log(operator.log(), log_before, op::log_len(operator.log()))?;
    r.restart.clouds_rewritten = rewritten(&list_clouds(&clouds_api).await?, &versions);
    Ok(operator)
}

/// Creates the clouds, `parallelism` at a time.
pub(crate) async fn create_all(
    client: &Client,
    clouds: Vec<InSyncCloud>,
    parallelism: usize,
) -> Result<()> {
    futures::stream::iter(clouds)
        .map(|cloud| {
            let api: Api<InSyncCloud> = Api::namespaced(
                client.clone(),
                cloud.metadata.namespace.as_deref().unwrap_or_default(),
            );
            async move { api.create(&PostParams::default(), &cloud).await }
        })
        .buffer_unordered(parallelism)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

fn versions(clouds: &[InSyncCloud]) -> BTreeMap<String, String> {
    clouds
        .iter()
        .map(|c| (c.name_any(), c.resource_version().unwrap_or_default()))
        .collect()
}

/// Clouds whose resourceVersion is not the one in `before`.
fn rewritten(clouds: &[InSyncCloud], before: &BTreeMap<String, String>) -> usize {
    clouds
        .iter()
        .filter(|c| before.get(&c.name_any()) != Some(&c.resource_version().unwrap_or_default()))
        .count()
}

pub(crate) fn ready_now(cloud: &InSyncCloud) -> bool {
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

pub(crate) async fn list_clouds(api: &Api<InSyncCloud>) -> Result<Vec<InSyncCloud>> {
    // resourceVersion=0: served from the API server's watch cache, the cheap list.
    Ok(api.list(&ListParams::default().match_any()).await?.items)
}
