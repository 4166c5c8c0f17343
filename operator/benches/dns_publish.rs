//! Route53 calls and time to publish (and then remove) the records of 1, 100 and 1000 clouds,
//! against a moto server started here. Prints a table of medians.
//!
//! `cargo bench -p insync-operator --bench dns_publish` (needs `moto_server`; set
//! `DNS_BENCH_SIZES=1,100` / `DNS_BENCH_RUNS=5` to change the grid).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use insync_operator::dns::{CloudKey, DnsSyncer, Endpoint, Route53Config};
use insync_operator::telemetry::CallCounts;
use support::moto::Moto;
use support::route53::{client, create_zone, dummy_credentials, list_zone, wait_for, wait_ready};

struct Run {
    publish: Duration,
    publish_calls: CallCounts,
    resync_calls: CallCounts,
    remove: Duration,
    remove_calls: CallCounts,
}

fn diff(a: CallCounts, b: CallCounts) -> CallCounts {
    CallCounts {
        change_calls: b.change_calls - a.change_calls,
        list_records_calls: b.list_records_calls - a.list_records_calls,
        list_zones_calls: b.list_zones_calls - a.list_zones_calls,
        retries: b.retries - a.retries,
        throttled: b.throttled - a.throttled,
        rejected_batches: b.rejected_batches - a.rejected_batches,
    }
}

async fn one_run(moto: &Moto, n: usize, run: usize) -> Run {
    let sdk = client(&moto.endpoint()).await;
    // A fresh zone per run: moto keeps a per-zone change journal.
    let domain = format!("bench-{n}-{run}.example.org");
    let zone = create_zone(&sdk, &domain).await;
    let mut cfg = Route53Config::new("bench");
    cfg.endpoint_url = Some(moto.endpoint());
    cfg.static_credentials = Some(dummy_credentials());
    // Production defaults otherwise (300 ms debounce, default retry policy and limits).
    let (syncer, worker) = DnsSyncer::from_config(&cfg).await.expect("config");
    let task = tokio::spawn(worker.run());
    let keys: Vec<CloudKey> = (0..n)
        .map(|i| CloudKey::new(format!("ns-{i}"), format!("cloud-{i}"), format!("uid-{i}")))
        .collect();

    let start = Instant::now();
    for (i, k) in keys.iter().enumerate() {
        let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        syncer.upsert_cloud(
            k.clone(),
            domain.clone(),
            None,
            vec![Endpoint::a(format!("cloud-{i}.{domain}"), &[&ip], 60)],
        );
    }
    wait_ready(&syncer, &keys, Duration::from_secs(600))
        .await
        .expect("publish converged");
    let publish = start.elapsed();
    let publish_calls = syncer.counts();
    let recs = list_zone(&sdk, &zone).await;
    assert_eq!(recs.iter().filter(|r| r.rtype == "A").count(), n);

    // A steady-state resync: list, plan, no change.
    syncer.resync();
    let mut last = syncer.counts();
    let mut quiet = 0;
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = syncer.counts();
        if now == last && now.list_records_calls > publish_calls.list_records_calls {
            quiet += 1;
            if quiet >= 5 {
                break;
            }
        } else {
            quiet = 0;
        }
        last = now;
    }
    let resync_calls = diff(publish_calls, syncer.counts());

    let before = syncer.counts();
    let start = Instant::now();
    let removals = keys.iter().map(|k| syncer.remove_cloud(k));
    for r in futures::future::join_all(removals).await {
        r.expect("removed");
    }
    wait_for(&syncer, &keys, |s| s.is_none(), Duration::from_secs(60))
        .await
        .expect("statuses cleared");
    let remove = start.elapsed();
    let remove_calls = diff(before, syncer.counts());
    drop(syncer);
    let _ = task.await;
    Run {
        publish,
        publish_calls,
        resync_calls,
        remove,
        remove_calls,
    }
}

fn median<T: Copy + Ord>(mut v: Vec<T>) -> T {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let sizes: Vec<usize> = std::env::var("DNS_BENCH_SIZES")
        .unwrap_or_else(|_| "1,100,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let runs: usize = std::env::var("DNS_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let moto = Moto::start();
        println!(
            "| clouds | publish: Change calls | List calls (zones+records) | time (median of {runs}) | resync: List / Change | remove all: Change calls | List calls | time |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
        for &n in &sizes {
            let mut results = Vec::new();
            for run in 0..runs {
                results.push(one_run(&moto, n, run).await);
            }
            let pt = median(results.iter().map(|r| r.publish).collect());
            let pc = median(results.iter().map(|r| r.publish_calls.change_calls).collect());
            let pl = median(
                results
                    .iter()
                    .map(|r| r.publish_calls.list_records_calls + r.publish_calls.list_zones_calls)
                    .collect(),
            );
            let rl = median(results.iter().map(|r| r.resync_calls.list_records_calls).collect());
            let rc = median(results.iter().map(|r| r.resync_calls.change_calls).collect());
            let dt = median(results.iter().map(|r| r.remove).collect());
            let dc = median(results.iter().map(|r| r.remove_calls.change_calls).collect());
            let dl = median(
                results
                    .iter()
                    .map(|r| r.remove_calls.list_records_calls + r.remove_calls.list_zones_calls)
                    .collect(),
            );
            let retries: u64 = results.iter().map(|r| r.publish_calls.retries).sum();
            println!(
                "| {n} | {pc} | {pl} | {:.2} s | {rl} / {rc} | {dc} | {dl} | {:.2} s |{}",
                pt.as_secs_f64(),
                dt.as_secs_f64(),
                if retries > 0 {
                    format!(" ({retries} retries)")
                } else {
                    String::new()
                }
            );
        }
    });
}
