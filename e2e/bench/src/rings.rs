//! The ring scenario: N clouds in rings (`--rings 10,30,60`), all converged, then one version
//! change for every cloud at once, as a platform team would push a release to its fleet. The
//! operator runs with `--max-concurrent-upgrades M` (one run per M). A watch on the clouds
//! records every status change as it arrives, which gives:
//!
//! - the time of each rollout step (`status.upgrade.phase` and `component`: Bynamo, CloudMaster,
//!   each storage node, HAProxy), from the first status naming it to the first naming the next
//!   step (or `Complete`);
//! - per ring, the clouds per minute: the ring's clouds over the time from its first cloud
//!   leaving `Waiting` to its last cloud `Complete`;
//! - the most clouds rolling at once (what the limit allows).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures::{StreamExt, TryStreamExt};
use insync_e2e::operator_process::OperatorCommand;
use insync_operator::api::{InSyncCloud, UpgradePhase};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::converge::{create_all, list_clouds, ready_now};
use crate::{Args, loadavg};

/// One status of one cloud, as the watch delivered it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// Seconds after the first version patch.
    pub at: f64,
    pub to_version: String,
    pub phase: UpgradePhase,
    pub component: String,
}

/// What one cloud's rollout looked like.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Timeline {
    /// Seconds after the first version patch: the first moving step, and `Complete`.
    pub start: Option<f64>,
    pub done: Option<f64>,
    /// Each step (phase, component) and how long it took.
    pub steps: Vec<(UpgradePhase, String, f64)>,
}

/// The steps of one cloud's rollout to `to_version` from what the watch saw of it, in order.
pub fn timeline(seen: &[Seen], to_version: &str) -> Timeline {
    let mut t = Timeline::default();
    let mut current: Option<(UpgradePhase, String, f64)> = None;
    for s in seen.iter().filter(|s| s.to_version == to_version) {
        let moving = matches!(
            s.phase,
            UpgradePhase::Datastores
                | UpgradePhase::CloudMaster
                | UpgradePhase::Nodes
                | UpgradePhase::Frontend
        );
        let same = current
            .as_ref()
            .is_some_and(|(p, c, _)| *p == s.phase && *c == s.component);
        if same {
            continue;
        }
        if let Some((phase, component, since)) = current.take() {
            t.steps.push((phase, component, s.at - since));
        }
        if moving {
            t.start.get_or_insert(s.at);
            current = Some((s.phase, s.component.clone(), s.at));
        } else if s.phase == UpgradePhase::Complete {
            t.done = Some(s.at);
            break;
        }
    }
    t
}

/// Whether the steps only ever move forward through the rollout's phases.
pub fn moves_forward(t: &Timeline) -> bool {
    let rank = |p: &UpgradePhase| match p {
        UpgradePhase::Datastores => 0,
        UpgradePhase::CloudMaster => 1,
        UpgradePhase::Nodes => 2,
        _ => 3,
    };
    t.steps.windows(2).all(|w| rank(&w[0].0) <= rank(&w[1].0))
}

/// Nearest-rank percentile (`q` in 0..=1) of unsorted values; NaN when empty.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// The most intervals `[start, done]` open at one moment.
pub fn max_overlap(intervals: &[(f64, f64)]) -> usize {
    let mut edges: Vec<(f64, i32)> = intervals
        .iter()
        .flat_map(|&(a, b)| [(a, 1), (b, -1)])
        .collect();
    // At the same instant an end frees its slot before a start takes it.
    edges.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    let (mut open, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        open += d;
        most = most.max(open);
    }
    most as usize
}

#[derive(Debug, Default, serde::Serialize)]
pub struct StepStats {
    /// `Datastores`, `CloudMaster`, `Nodes` (one storage node) or `Frontend`.
    pub step: String,
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub max: f64,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct RingStats {
    pub ring: usize,
    pub clouds: usize,
    /// Seconds after the version patch.
    pub first_start: f64,
    pub last_done: f64,
    /// clouds / (last done − first start) × 60.
    pub clouds_per_min: f64,
    /// One cloud's rollout, first step to Complete.
    pub rollout_p50: f64,
    pub rollout_p90: f64,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct RingResult {
    pub clouds: usize,
    pub run: usize,
    pub max_concurrent_upgrades: usize,
    pub ring_sizes: Vec<usize>,
    pub converge_secs: f64,
    /// Version patch of the first cloud to the last cloud Complete and Ready.
    pub total_secs: f64,
    pub clouds_per_min: f64,
    pub max_rolling: usize,
    /// Clouds whose status went back to an earlier phase during the rollout, with their steps
    /// (a rollout moves forward only: each one is worth a look).
    pub went_back: BTreeMap<String, Vec<String>>,
    pub steps: Vec<StepStats>,
    pub rings: Vec<RingStats>,
    pub load_start: String,
    pub load_end: String,
}

/// One run of the ring scenario with `max_concurrent` on a fresh plane (left up; the caller
/// tears it down).
pub async fn run(
    args: &Args,
    operator: &Path,
    sizes: &[usize],
    max_concurrent: usize,
) -> Result<RingResult> {
    let n: usize = sizes.iter().sum();
    let mut prepared = crate::prepare(args, n).await?;
    let ring_of: Vec<usize> = sizes
        .iter()
        .enumerate()
        .flat_map(|(ring, &size)| std::iter::repeat_n(ring, size))
        .collect();
    for (cloud, &ring) in prepared.clouds.iter_mut().zip(&ring_of) {
        cloud.spec.upgrade.ring = Some(ring as i32);
    }
    let rings: BTreeMap<String, usize> = prepared
        .clouds
        .iter()
        .zip(&ring_of)
        .map(|(c, &r)| (c.name_any(), r))
        .collect();
    let from_version = prepared
        .clouds
        .first()
        .map(|c| c.spec.version.clone())
        .unwrap_or_default();
    let client = prepared.client.clone();
    let op_kubeconfig = args.plane.operator_kubeconfig().await?;
    let op = OperatorCommand::new(
        operator,
        args.out_dir
            .join(format!("operator-rings-{n}-max{max_concurrent}.log")),
    )
    .kubeconfig(op_kubeconfig)
    .args([
        "--concurrency".to_owned(),
        args.concurrency.to_string(),
        "--max-concurrent-upgrades".to_owned(),
        max_concurrent.to_string(),
    ])
    .rust_log(&args.rust_log)
    .ready_timeout(Duration::from_secs(args.ready_timeout_secs))
    .stop_timeout(Duration::from_secs(60))
    .start()
    .await?;

    let mut r = RingResult {
        clouds: n,
        max_concurrent_upgrades: max_concurrent,
        ring_sizes: sizes.to_vec(),
        ..Default::default()
    };
    let start = Instant::now();
    create_all(&client, prepared.clouds, args.create_parallelism).await?;
    wait_all(args, &client, start, &from_version, "Ready").await?;
    r.converge_secs = start.elapsed().as_secs_f64();
    eprintln!(
        "rings: all {n} clouds Ready at {from_version} after {:.1}s; moving all to {}",
        r.converge_secs, args.to_version
    );

    // The watch starts before the patches; its clock is the first patch.
    let seen: Arc<Mutex<BTreeMap<String, Vec<Seen>>>> = Arc::default();
    let patched_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let watch = tokio::spawn(record(
        Api::all(client.clone()),
        seen.clone(),
        patched_at.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    r.load_start = loadavg();
    let patch_start = Instant::now();
    *patched_at.lock().expect("lock") = Some(patch_start);
    let clouds_api: Api<InSyncCloud> = Api::all(client.clone());
    let names: Vec<(String, String)> = list_clouds(&clouds_api)
        .await?
        .iter()
        .map(|c| (c.namespace().unwrap_or_default(), c.name_any()))
        .collect();
    let to_version = args.to_version.clone();
    futures::stream::iter(names)
        .map(|(ns, name)| {
            let api: Api<InSyncCloud> = Api::namespaced(client.clone(), &ns);
            let patch = json!({"spec": {"version": to_version}});
            async move {
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
            }
        })
        .buffer_unordered(args.create_parallelism)
        .try_collect::<Vec<_>>()
        .await?;
    wait_all(args, &client, patch_start, &args.to_version, "upgraded").await?;
    r.total_secs = patch_start.elapsed().as_secs_f64();
    r.load_end = loadavg();
    // Let the watch deliver the last Complete statuses.
    tokio::time::sleep(Duration::from_secs(2)).await;
    watch.abort();
    op.terminate().await?;

    let seen = seen.lock().expect("lock").clone();
    let timelines: BTreeMap<&String, Timeline> = seen
        .iter()
        .map(|(name, s)| (name, timeline(s, &args.to_version)))
        .collect();
    let mut by_step: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for t in timelines.values() {
        for (phase, _, secs) in &t.steps {
            by_step.entry(format!("{phase:?}")).or_default().push(*secs);
        }
    }
    let order = ["Datastores", "CloudMaster", "Nodes", "Frontend"];
    r.steps = order
        .iter()
        .filter_map(|step| {
            let v = by_step.get(*step)?;
            Some(StepStats {
                step: (*step).to_owned(),
                count: v.len(),
                p50: percentile(v, 0.5),
                p90: percentile(v, 0.9),
                max: percentile(v, 1.0),
            })
        })
        .collect();
    let all_steps: Vec<f64> = by_step.values().flatten().copied().collect();
    r.steps.push(StepStats {
        step: "any".to_owned(),
        count: all_steps.len(),
        p50: percentile(&all_steps, 0.5),
        p90: percentile(&all_steps, 0.9),
        max: percentile(&all_steps, 1.0),
    });
    for (name, t) in &timelines {
        if !moves_forward(t) {
            let steps = t
                .steps
                .iter()
                .map(|(p, c, secs)| format!("{p:?} {c} {secs:.1}s"))
                .collect();
            r.went_back.insert((*name).clone(), steps);
        }
    }
    if !r.went_back.is_empty() {
        eprintln!(
            "rings: {} cloud(s) went back to an earlier phase: {:#?}",
            r.went_back.len(),
            r.went_back
        );
    }
    let intervals: Vec<(f64, f64)> = timelines
        .values()
        .filter_map(|t| Some((t.start?, t.done?)))
        .collect();
    r.max_rolling = max_overlap(&intervals);
    let incomplete: Vec<&&String> = timelines
        .iter()
        .filter(|(_, t)| t.start.is_none() || t.done.is_none())
        .map(|(name, _)| name)
        .collect();
    if !incomplete.is_empty() {
        bail!(
            "the watch saw no whole rollout of {} cloud(s): {incomplete:?}",
            incomplete.len()
        );
    }
    for (ring, &size) in sizes.iter().enumerate() {
        let ts: Vec<&Timeline> = timelines
            .iter()
            .filter(|(name, _)| rings.get(**name) == Some(&ring))
            .map(|(_, t)| t)
            .collect();
        let first_start = ts.iter().filter_map(|t| t.start).fold(f64::MAX, f64::min);
        let last_done = ts.iter().filter_map(|t| t.done).fold(0.0, f64::max);
        let rollouts: Vec<f64> = ts.iter().filter_map(|t| Some(t.done? - t.start?)).collect();
        r.rings.push(RingStats {
            ring,
            clouds: size,
            first_start,
            last_done,
            clouds_per_min: size as f64 * 60.0 / (last_done - first_start),
            rollout_p50: percentile(&rollouts, 0.5),
            rollout_p90: percentile(&rollouts, 0.9),
        });
    }
    r.clouds_per_min = n as f64 * 60.0 / r.total_secs;
    Ok(r)
}

/// Records every status the watch delivers, per cloud, timed from the first patch (statuses
/// before it are not kept).
async fn record(
    api: Api<InSyncCloud>,
    seen: Arc<Mutex<BTreeMap<String, Vec<Seen>>>>,
    patched_at: Arc<Mutex<Option<Instant>>>,
) {
    let mut stream = watcher(api, watcher::Config::default())
        .applied_objects()
        .boxed();
    while let Some(event) = stream.next().await {
        let Ok(cloud) = event else { continue };
        let Some(t0) = *patched_at.lock().expect("lock") else {
            continue;
        };
        let Some(upgrade) = cloud.status.as_ref().and_then(|s| s.upgrade.as_ref()) else {
            continue;
        };
        let s = Seen {
            at: t0.elapsed().as_secs_f64(),
            to_version: upgrade.to_version.clone(),
            phase: upgrade.phase,
            component: upgrade.component.clone().unwrap_or_default(),
        };
        let mut seen = seen.lock().expect("lock");
        let list = seen.entry(cloud.name_any()).or_default();
        let changed = list.last().is_none_or(|l| {
            (&l.to_version, l.phase, &l.component) != (&s.to_version, s.phase, &s.component)
        });
        if changed {
            list.push(s);
        }
    }
}

/// Polls until every cloud is Ready at `version` for its generation.
async fn wait_all(
    args: &Args,
    client: &Client,
    since: Instant,
    version: &str,
    what: &str,
) -> Result<()> {
    let api: Api<InSyncCloud> = Api::all(client.clone());
    let deadline = since + Duration::from_secs(args.ready_timeout_secs);
    let mut last_report = Instant::now();
    loop {
        let clouds = list_clouds(&api).await?;
        let done = clouds
            .iter()
            .filter(|c| {
                ready_now(c)
                    && c.status.as_ref().and_then(|s| s.current_version.as_deref()) == Some(version)
            })
            .count();
        if done == clouds.len() {
            return Ok(());
        }
        if last_report.elapsed() >= Duration::from_secs(15) {
            let mut phases: BTreeMap<String, usize> = BTreeMap::new();
            for c in &clouds {
                let phase = c
                    .status
                    .as_ref()
                    .and_then(|s| s.upgrade.as_ref())
                    .map_or("-".to_owned(), |u| format!("{:?}", u.phase));
                *phases.entry(phase).or_default() += 1;
            }
            eprintln!(
                "rings: {:>5.0}s {what} {done}/{}, phases {phases:?}, load {}",
                since.elapsed().as_secs_f64(),
                clouds.len(),
                loadavg()
            );
            last_report = Instant::now();
        }
        if Instant::now() >= deadline {
            bail!(
                "only {done}/{} clouds {what} at {version} after {}s",
                clouds.len(),
                args.ready_timeout_secs
            );
        }
        tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
    }
}

/// The figures of every run, one table.
pub fn print_table(results: &[RingResult]) {
    println!(
        "\n| max concurrent upgrades | run | clouds (rings) | version change to all Ready (s) | clouds/min, fleet | clouds/min by ring | rollout per cloud p50 / p90 (s) by ring | most rolling at once |"
    );
    println!("|---:|---:|---|---:|---:|---|---|---:|");
    for r in results {
        let sizes: Vec<String> = r.ring_sizes.iter().map(ToString::to_string).collect();
        let per_min: Vec<String> = r
            .rings
            .iter()
            .map(|g| format!("{:.1}", g.clouds_per_min))
            .collect();
        let rollout: Vec<String> = r
            .rings
            .iter()
            .map(|g| format!("{:.1} / {:.1}", g.rollout_p50, g.rollout_p90))
            .collect();
        println!(
            "| {} | {} | {} ({}) | {:.1} | {:.1} | {} | {} | {} |",
            limit(r.max_concurrent_upgrades),
            r.run,
            r.clouds,
            sizes.join(" + "),
            r.total_secs,
            r.clouds_per_min,
            per_min.join(", "),
            rollout.join(", "),
            r.max_rolling
        );
    }
    println!("\n| max concurrent upgrades | run | step | steps | p50 (s) | p90 (s) | max (s) |");
    println!("|---:|---:|---|---:|---:|---:|---:|");
    for r in results {
        for s in &r.steps {
            println!(
                "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} |",
                limit(r.max_concurrent_upgrades),
                r.run,
                s.step,
                s.count,
                s.p50,
                s.p90,
                s.max
            );
        }
    }
    println!(
        "\n| max concurrent upgrades | run | ring | clouds | first start (s) | last done (s) | clouds/min |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        for g in &r.rings {
            println!(
                "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} |",
                limit(r.max_concurrent_upgrades),
                r.run,
                g.ring,
                g.clouds,
                g.first_start,
                g.last_done,
                g.clouds_per_min
            );
        }
    }
}

fn limit(max: usize) -> String {
    if max == 0 {
        "0 (no limit)".to_owned()
    } else {
        max.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(at: f64, to: &str, phase: UpgradePhase, component: &str) -> Seen {
        Seen {
            at,
            to_version: to.to_owned(),
            phase,
            component: component.to_owned(),
        }
    }

    #[test]
    fn a_timeline_times_each_step_until_complete() {
        use UpgradePhase::*;
        let s = [
            seen(0.1, "v1", Complete, ""),
            seen(0.5, "v2", Waiting, ""),
            seen(3.0, "v2", Datastores, "bynamo"),
            seen(5.0, "v2", CloudMaster, "cloudmaster"),
            seen(9.0, "v2", Nodes, "node-0"),
            seen(11.0, "v2", Nodes, "node-1"),
            seen(12.5, "v2", Frontend, "haproxy"),
            seen(14.0, "v2", Complete, ""),
            seen(20.0, "v2", Complete, "x"),
        ];
        let t = timeline(&s, "v2");
        assert_eq!(t.start, Some(3.0));
        assert_eq!(t.done, Some(14.0));
        assert_eq!(
            t.steps,
            vec![
                (Datastores, "bynamo".to_owned(), 2.0),
                (CloudMaster, "cloudmaster".to_owned(), 4.0),
                (Nodes, "node-0".to_owned(), 2.0),
                (Nodes, "node-1".to_owned(), 1.5),
                (Frontend, "haproxy".to_owned(), 1.5),
            ]
        );
    }

    #[test]
    fn a_phase_seen_again_after_a_later_one_is_going_back() {
        use UpgradePhase::*;
        let forward = [
            seen(1.0, "v2", Datastores, "bynamo"),
            seen(2.0, "v2", CloudMaster, "cloudmaster"),
            seen(3.0, "v2", Nodes, "node-0"),
            seen(4.0, "v2", Complete, ""),
        ];
        assert!(moves_forward(&timeline(&forward, "v2")));
        let back = [
            seen(1.0, "v2", Datastores, "bynamo"),
            seen(2.0, "v2", CloudMaster, "cloudmaster"),
            seen(3.0, "v2", Datastores, "bynamo"),
            seen(4.0, "v2", Complete, ""),
        ];
        assert!(!moves_forward(&timeline(&back, "v2")));
    }

    #[test]
    fn a_rollout_not_seen_whole_has_no_done() {
        let s = [seen(1.0, "v2", UpgradePhase::CloudMaster, "cloudmaster")];
        let t = timeline(&s, "v2");
        assert_eq!((t.start, t.done), (Some(1.0), None));
        assert!(t.steps.is_empty());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 5.0);
        assert_eq!(percentile(&v, 0.9), 9.0);
        assert_eq!(percentile(&v, 1.0), 10.0);
        assert_eq!(percentile(&[7.0], 0.9), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn overlap_counts_clouds_rolling_at_once() {
        assert_eq!(max_overlap(&[(0.0, 2.0), (1.0, 3.0), (2.0, 4.0)]), 2);
        assert_eq!(max_overlap(&[(0.0, 1.0), (1.0, 2.0)]), 1);
        assert_eq!(max_overlap(&[]), 0);
    }
}
