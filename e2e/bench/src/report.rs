//! What the bench prints: details per run, then one table (medians over runs of each N).

use std::collections::BTreeMap;
use std::fmt;

use crate::Args;
use crate::api::{OP_FLOW_CHILDREN, OP_FLOW_CLOUDS, OP_FLOW_EVENTS, OP_FLOW_READ};
use crate::converge::RunResult;

/// The machine and the tree measured, printed with the results.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cores: usize,
    pub load: String,
    /// `git describe --always --dirty` of the bench's repository.
    pub commit: String,
}

impl Machine {
    pub fn now() -> Self {
        let commit = std::process::Command::new("git")
            .arg("-C")
            .arg(insync_e2e::repo_root())
            .args(["describe", "--always", "--dirty"])
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        Self {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            load: crate::loadavg(),
            commit,
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} cores, load {} at start, tree {}",
            self.cores, self.load, self.commit
        )
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
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
    if map.is_empty() {
        return "none".into();
    }
    top(
        &map.iter().map(|(k, v)| (k.clone(), *v as f64)).collect(),
        k,
    )
}

pub fn print_details(r: &RunResult) {
    let n = r.clouds as f64;
    let c = &r.converge_api;
    let s = &r.steady_api;
    println!("\n--- N={} run {} ---", r.clouds, r.run);
    if let Some(floor) = &r.floor {
        println!(
            "floor: {:.1}s (clouds created by {:.1}s, {} children written by {:.1}s, {} workloads settled); all clients' writes {:.0} ({:.1}/cloud); load {} -> {}",
            floor.secs,
            floor.create_secs,
            floor.children_written,
            floor.written_secs,
            floor.workloads,
            floor.api.total_writes(),
            floor.api.total_writes() / n,
            floor.load_start,
            floor.load_end
        );
    }
    println!(
        "converge: {:.1}s{} (creates took {:.1}s; per cloud creation->Ready p50 {}s, max {}s); extra kwok nodes {}",
        r.converge_secs,
        r.ratio()
            .map(|x| format!(" = {x:.2} x floor"))
            .unwrap_or_default(),
        r.create_secs,
        r.per_cloud_ready_p50,
        r.per_cloud_ready_max,
        r.extra_nodes
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
        top_u(&r.converge_log.differs, 8)
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
    let x = &r.restart;
    println!(
        "restart: re-list (to /readyz) {}, every object compared after {}, window {:.0}s: operator writes {:.0} (clouds {:.0}, events {:.0}, children {:.0}), objects applied {:.0}, skipped {:.0}, reconciles {:.0}, CPU {:.1}s, clouds rewritten {}",
        x.relist_secs
            .map(|s| format!("{s:.1}s"))
            .unwrap_or_else(|| "never (/readyz did not answer 200 in the window)".into()),
        x.recheck_secs
            .map(|s| format!("{s:.1}s"))
            .unwrap_or_else(|| "never (timed out)".into()),
        x.window_secs,
        x.api.operator_writes(),
        x.api.flow(OP_FLOW_CLOUDS),
        x.api.flow(OP_FLOW_EVENTS),
        x.api.flow(OP_FLOW_CHILDREN),
        x.op.applied,
        x.op.skipped,
        x.op.reconciles,
        x.op.cpu_secs,
        x.clouds_rewritten
    );
    if !x.log.applied.is_empty() || !x.log.differs.is_empty() {
        println!(
            "  restart writes by object: {}; why: {}",
            top_u(&x.log.applied, 10),
            top_u(&x.log.differs, 10)
        );
    }
    let m = &r.rss;
    println!(
        "memory (MiB): converge peak {:.1}; steady {:.1} (peak {:.1}); after restart: first list (to /readyz) peak {}, window peak {:.1}, end {:.1}; load {} -> {} -> {}",
        mib(m.converge_peak_kib),
        mib(m.steady_kib),
        mib(m.steady_peak_kib),
        m.relist_peak_kib
            .map(|k| format!("{:.1}", mib(k)))
            .unwrap_or_else(|| "not reached".into()),
        mib(m.restart_peak_kib),
        mib(m.restart_kib),
        r.load_start,
        r.load_ready,
        r.load_end
    );
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// One N: medians over its runs (maxima for the counts that must be 0).
struct Row {
    clouds: usize,
    runs: usize,
    floor_secs: f64,
    converge_secs: f64,
    ratio: f64,
    writes_per_cloud: f64,
    steady_writes_max: f64,
    restart_writes_max: f64,
    relist_kib: f64,
    converge_kib: f64,
    steady_kib: f64,
    restart_kib: f64,
    load_floor: String,
    load_operator: String,
}

fn rows(results: &[RunResult]) -> Vec<Row> {
    let mut by_n: BTreeMap<usize, Vec<&RunResult>> = BTreeMap::new();
    for r in results {
        by_n.entry(r.clouds).or_default().push(r);
    }
    by_n.into_iter()
        .map(|(clouds, runs)| {
            let med = |f: &dyn Fn(&RunResult) -> Option<f64>| {
                median(runs.iter().filter_map(|r| f(r)).collect())
            };
            let max =
                |f: &dyn Fn(&RunResult) -> f64| runs.iter().map(|r| f(r)).fold(f64::NAN, f64::max);
            let loads = |f: &dyn Fn(&RunResult) -> Option<String>| {
                runs.iter()
                    .filter_map(|r| f(r))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let one_minute = |load: &str| load.split_whitespace().next().unwrap_or("").to_owned();
            Row {
                clouds,
                runs: runs.len(),
                floor_secs: med(&|r| r.floor.as_ref().map(|f| f.secs)),
                converge_secs: med(&|r| Some(r.converge_secs)),
                ratio: med(&|r| r.ratio()),
                writes_per_cloud: med(&|r| {
                    Some(r.converge_api.operator_writes() / r.clouds as f64)
                }),
                steady_writes_max: max(&|r| r.steady_api.operator_writes()),
                restart_writes_max: max(&|r| r.restart.api.operator_writes()),
                relist_kib: med(&|r| r.rss.relist_peak_kib.map(|k| k as f64)),
                converge_kib: med(&|r| Some(r.rss.converge_peak_kib as f64)),
                steady_kib: med(&|r| Some(r.rss.steady_kib as f64)),
                restart_kib: med(&|r| Some(r.rss.restart_peak_kib as f64)),
                load_floor: loads(&|r| {
                    r.floor.as_ref().map(|f| {
                        format!("{}→{}", one_minute(&f.load_start), one_minute(&f.load_end))
                    })
                }),
                load_operator: loads(&|r| {
                    Some(format!(
                        "{}→{}",
                        one_minute(&r.load_start),
                        one_minute(&r.load_ready)
                    ))
                }),
            }
        })
        .collect()
}

/// A figure with `decimals` places, or "–" where there is none (the floor skipped: NaN).
fn figure(value: f64, decimals: usize) -> String {
    if value.is_nan() {
        "–".into()
    } else {
        format!("{value:.decimals$}")
    }
}

/// KiB per cloud between two N: the slope of a memory figure.
fn slope(prev: Option<&Row>, row: &Row, kib: impl Fn(&Row) -> f64) -> String {
    match prev {
        Some(p) if row.clouds > p.clouds => format!(
            "{:.0}",
            (kib(row) - kib(p)) / (row.clouds - p.clouds) as f64
        ),
        _ => "–".into(),
    }
}

pub fn print_table(results: &[RunResult], args: &Args, machine: &Machine) {
    let rows = rows(results);
    println!(
        "\n| clouds | runs | floor (s) | operator (s) | operator / floor | operator writes / cloud | steady writes | writes after restart | RSS MiB: first list / converge peak / steady / after-restart peak | KiB / cloud: after-restart peak, steady | load 1m floor; operator start→Ready |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|");
    let mut prev: Option<&Row> = None;
    for row in &rows {
        println!(
            "| {} | {} | {} | {:.1} | {} | {:.1} | {:.0} | {:.0} | {} / {:.1} / {:.1} / {:.1} | {}, {} | {}; {} |",
            row.clouds,
            row.runs,
            figure(row.floor_secs, 1),
            row.converge_secs,
            figure(row.ratio, 2),
            row.writes_per_cloud,
            row.steady_writes_max,
            row.restart_writes_max,
            if row.relist_kib.is_nan() {
                "never ready".to_owned()
            } else {
                format!("{:.1}", row.relist_kib / 1024.0)
            },
            row.converge_kib / 1024.0,
            row.steady_kib / 1024.0,
            row.restart_kib / 1024.0,
            slope(prev, row, |r| r.restart_kib),
            slope(prev, row, |r| r.steady_kib),
            row.load_floor,
            row.load_operator
        );
        prev = Some(row);
    }
    println!(
        "\nmedians over runs; steady writes and writes after restart are the maxima. concurrency {}, {} namespaces, steady window {}s, restart window ≥ {}s, one operator process; {machine}; results: {}",
        args.concurrency,
        args.namespaces,
        args.steady_secs,
        args.restart_secs,
        args.out_dir.join("results.json").display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }
}
