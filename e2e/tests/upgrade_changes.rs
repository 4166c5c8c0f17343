//! Every change that restarts pods goes through the ordered, health-gated rollout, not only a
//! new image (issue 11): a config change, turning DNS on (the `[cloud] hostname` every inSync
//! component reads), a resources change. A change that needs no restart restarts nothing.
//! End to end on the local control plane: the operator runs as a process and kwok plays the
//! kubelet.
//!
//! Run: `cargo build -p insync-operator && cargo test -p insync-e2e --test upgrade_changes`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{Operator, condition, create, fcloud_no_dns, wait_ready};
use insync_e2e::{TestNamespace, cluster, holds_for};
use insync_operator::api::{InSyncCloud, UpgradePhase};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

const READY_TIMEOUT: Duration = Duration::from_secs(180);
const VERSION: &str = "5.9.1-r4178";

fn instance() -> ListParams {
    ListParams::default().labels("app.kubernetes.io/instance=fcloud")
}

async fn patch_spec(api: &Api<InSyncCloud>, spec: Value) -> Result<()> {
    api.patch(
        "fcloud",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await?;
    Ok(())
}

/// A ready cloud (no DNS provider) with `nodes` storage nodes, `maxUnavailable: 1`.
async fn ready_cloud(
    ns: &TestNamespace,
    op: &Operator,
    nodes: i32,
    health_timeout: &str,
    edit: impl FnOnce(&mut InSyncCloud),
) -> Result<Api<InSyncCloud>> {
    let api: Api<InSyncCloud> = ns.api();
    let mut cloud = fcloud_no_dns(ns.name())?;
    cloud.spec.version = VERSION.to_owned();
    cloud.spec.nodes.replicas = nodes;
    cloud.spec.upgrade.max_unavailable = 1;
    cloud.spec.upgrade.health_timeout = health_timeout.to_owned();
    edit(&mut cloud);
    create(&api, &cloud).await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, op).await?;
    Ok(api)
}

/// One workload as sampled: its generation and whether its pods all run that generation and
/// are ready.
#[derive(Clone, Debug)]
struct Seen {
    generation: i64,
    settled: bool,
}

/// The generation and settledness of every Deployment and StatefulSet of the cloud.
async fn sample(ns: &TestNamespace) -> Result<BTreeMap<String, Seen>> {
    let mut out = BTreeMap::new();
    for d in ns.api::<Deployment>().list(&instance()).await? {
        let generation = d.metadata.generation.unwrap_or(0);
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let settled = d.status.as_ref().is_some_and(|s| {
            s.observed_generation.unwrap_or(0) >= generation
                && s.updated_replicas.unwrap_or(0) == want
                && s.ready_replicas.unwrap_or(0) == want
                && s.available_replicas.unwrap_or(0) == want
                && s.replicas.unwrap_or(0) == want
        });
        out.insert(
            d.name_any(),
            Seen {
                generation,
                settled,
            },
        );
    }
    for s in ns.api::<StatefulSet>().list(&instance()).await? {
        let generation = s.metadata.generation.unwrap_or(0);
        let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let settled = s.status.as_ref().is_some_and(|st| {
            st.observed_generation.unwrap_or(0) >= generation
                && st.updated_replicas.unwrap_or(0) == want
                && st.ready_replicas.unwrap_or(0) == want
                && st.current_revision.is_some()
                && st.current_revision == st.update_revision
        });
        out.insert(
            s.name_any(),
            Seen {
                generation,
                settled,
            },
        );
    }
    Ok(out)
}

/// What a change did, watched every 100 ms from just before it was made until the cloud was
/// Ready on it (or `until` held).
#[derive(Debug, Default)]
struct Watched {
    /// When each workload's template first changed (its generation moved), from the patch.
    changed: BTreeMap<String, Duration>,
    /// The most storage nodes seen changed and not yet settled at once.
    nodes_in_flight: usize,
    /// Every reason `status.upgrade.rolling` gave, by workload id.
    reasons: BTreeMap<String, String>,
    /// The phases `status.upgrade` went through.
    phases: Vec<UpgradePhase>,
}

impl Watched {
    /// Workloads that changed, in the order they did; ties (changed within one sample) are
    /// joined with `+`.
    fn order(&self) -> Vec<String> {
        let mut by_time: Vec<(&Duration, &String)> =
            self.changed.iter().map(|(n, t)| (t, n)).collect();
        by_time.sort();
        let mut out: Vec<(Duration, String)> = Vec::new();
        for (at, name) in by_time {
            let short = name.trim_start_matches("fcloud-").to_owned();
            match out.last_mut() {
                Some((last, names)) if *last == *at => {
                    names.push('+');
                    names.push_str(&short);
                }
                _ => out.push((*at, short)),
            }
        }
        out.into_iter().map(|(_, n)| n).collect()
    }
}

/// Applies `spec` to the cloud and watches the workloads until `done` says so.
async fn watch_change(
    ns: &TestNamespace,
    api: &Api<InSyncCloud>,
    op: &Operator,
    spec: Value,
    timeout: Duration,
    done: impl Fn(&InSyncCloud, &Watched) -> bool,
) -> Result<Watched> {
    let before = sample(ns).await?;
    patch_spec(api, spec).await?;
    let started = Instant::now();
    let mut watched = Watched::default();
    loop {
        let now = sample(ns).await?;
        let mut in_flight = 0;
        for (name, seen) in &now {
            let moved = before
                .get(name)
                .is_some_and(|b| seen.generation > b.generation);
            if moved {
                watched
                    .changed
                    .entry(name.clone())
                    .or_insert_with(|| started.elapsed());
                if name.starts_with("fcloud-node-") && !seen.settled {
                    in_flight += 1;
                }
            }
        }
        watched.nodes_in_flight = watched.nodes_in_flight.max(in_flight);
        let cloud = api.get("fcloud").await?;
        if let Some(upgrade) = cloud.status.as_ref().and_then(|s| s.upgrade.as_ref()) {
            if watched.phases.last() != Some(&upgrade.phase) {
                watched.phases.push(upgrade.phase);
            }
            for (id, w) in &upgrade.rolling {
                if let Some(reason) = &w.reason {
                    watched.reasons.insert(id.clone(), reason.clone());
                }
            }
        }
        if done(&cloud, &watched) {
            return Ok(watched);
        }
        ensure!(
            started.elapsed() < timeout,
            "the change did not finish: {watched:?}\n{}",
            op.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The cloud is Ready again and its last rollout is complete.
fn ready_and_complete(cloud: &InSyncCloud) -> bool {
    let complete = cloud
        .status
        .as_ref()
        .and_then(|s| s.upgrade.as_ref())
        .is_some_and(|u| u.phase == UpgradePhase::Complete);
    complete && condition(cloud, "Ready").0 == "True" && generation_observed(cloud)
}

fn generation_observed(cloud: &InSyncCloud) -> bool {
    cloud.status.as_ref().and_then(|s| s.observed_generation) == cloud.metadata.generation
}

/// A config change (the storage port every inSync component and HAProxy read) with 3 storage
/// nodes and `maxUnavailable: 1`: CloudMaster first, then the nodes one at a time, HAProxy last,
/// never two nodes restarting at once; the datastores, whose templates did not change, not at
/// all.
#[tokio::test]
async fn a_config_change_rolls_in_order_one_node_at_a_time() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "cfgroll").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api = ready_cloud(&ns, &op, 3, "2m", |_| {}).await?;

    let spec = json!({"frontend": {"service": {"storagePort": 7443}}});
    let watched = watch_change(&ns, &api, &op, spec, READY_TIMEOUT, |cloud, w| {
        ready_and_complete(cloud) && w.changed.contains_key("fcloud-haproxy")
    })
    .await?;
    ensure!(
        watched.order() == ["cloudmaster", "node-0", "node-1", "node-2", "haproxy"],
        "order of the restarts: {:?} ({watched:?})",
        watched.order()
    );
    ensure!(
        watched.nodes_in_flight <= 1,
        "{} storage nodes restarting at once ({watched:?})",
        watched.nodes_in_flight
    );
    ensure!(
        watched.reasons.get("node-1").map(String::as_str) == Some("configuration"),
        "status.upgrade says why: {:?}",
        watched.reasons
    );
    let cloud = api.get("fcloud").await?;
    ensure!(
        condition(&cloud, "Ready").0 == "True",
        "Ready at the end: {:?}",
        condition(&cloud, "Ready")
    );
    Ok(())
}

/// Turning DNS on changes the `[cloud] hostname` CloudMaster and every storage node read: they
/// roll in order, one node at a time, instead of all at once.
#[tokio::test]
async fn turning_dns_on_rolls_in_order() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "dnsroll").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api = ready_cloud(&ns, &op, 3, "2m", |cloud| cloud.spec.dns = None).await?;

    let spec = json!({"dns": {"domain": "drtst.org", "provider": "none"}});
    let watched = watch_change(&ns, &api, &op, spec, READY_TIMEOUT, |cloud, w| {
        ready_and_complete(cloud) && w.changed.contains_key("fcloud-node-2")
    })
    .await?;
    ensure!(
        watched.order() == ["cloudmaster", "node-0", "node-1", "node-2"],
        "order of the restarts: {:?} ({watched:?})",
        watched.order()
    );
    ensure!(
        watched.nodes_in_flight <= 1,
        "{} storage nodes restarting at once ({watched:?})",
        watched.nodes_in_flight
    );
    Ok(())
}

/// A resources change for the storage nodes that no node can hold (64 CPUs asked of 32-CPU
/// nodes): node-0 goes first and never gets ready, the rollout blocks on it and the other nodes
/// keep running their old pods. A request that fits is a new target: the block lifts and the
/// nodes roll one at a time.
#[tokio::test]
async fn a_resources_change_goes_through_the_gates_and_a_failing_step_blocks_the_rest() -> Result<()>
{
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "resroll").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api = ready_cloud(&ns, &op, 3, "15s", |_| {}).await?;
    let replica_sets = |node: &str| {
        let lp = ListParams::default().labels(&format!(
            "app.kubernetes.io/instance=fcloud,insync.dev/node-index={node}"
        ));
        let api = ns.api::<ReplicaSet>();
        async move { Ok::<usize, anyhow::Error>(api.list(&lp).await?.items.len()) }
    };

    let too_big = json!({"nodes": {"resources": {"requests": {"cpu": "64"}}}});
    let watched = watch_change(&ns, &api, &op, too_big, READY_TIMEOUT, |cloud, _| {
        condition(cloud, "UpgradeBlocked").0 == "True"
    })
    .await?;
    let cloud = api.get("fcloud").await?;
    let upgrade = cloud
        .status
        .as_ref()
        .and_then(|s| s.upgrade.clone())
        .context("no rollout")?;
    let message = upgrade.message.clone().unwrap_or_default();
    ensure!(
        upgrade.phase == UpgradePhase::Blocked && upgrade.component.as_deref() == Some("node-0"),
        "blocked on node-0: {upgrade:?}"
    );
    ensure!(
        message.contains("(resources)"),
        "the message says why node-0 restarted: {message}"
    );
    ensure!(
        watched.order() == ["node-0"],
        "only node-0 restarted: {:?}",
        watched.order()
    );
    // Blocked stays blocked: node-1 and node-2 keep their one ReplicaSet and their pods.
    holds_for(
        "node-1 and node-2 untouched while blocked",
        Duration::from_secs(10),
        || async { Ok(replica_sets("1").await? == 1 && replica_sets("2").await? == 1) },
    )
    .await
    .with_context(|| op.log_tail())?;

    let fits = json!({"nodes": {"resources": {"requests": {"cpu": "1"}}}});
    let watched = watch_change(&ns, &api, &op, fits, READY_TIMEOUT, |cloud, w| {
        ready_and_complete(cloud) && w.changed.contains_key("fcloud-node-2")
    })
    .await?;
    ensure!(
        watched.order() == ["node-0", "node-1", "node-2"],
        "order after the fix: {:?} ({watched:?})",
        watched.order()
    );
    ensure!(
        watched.nodes_in_flight <= 1,
        "{} storage nodes restarting at once ({watched:?})",
        watched.nodes_in_flight
    );
    ensure!(
        watched.reasons.get("node-2").map(String::as_str) == Some("resources"),
        "{:?}",
        watched.reasons
    );
    Ok(())
}

/// Scaling the storage nodes and annotating the front-end Service change no pod template:
/// nothing restarts (every workload keeps its generation) and no rollout starts.
#[tokio::test]
async fn a_change_that_needs_no_restart_restarts_nothing() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "norestart").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api = ready_cloud(&ns, &op, 2, "2m", |_| {}).await?;

    let spec = json!({
        "nodes": {"replicas": 3},
        "frontend": {"service": {"annotations": {"example.com/team": "storage"}}},
    });
    let watched = watch_change(&ns, &api, &op, spec, READY_TIMEOUT, |cloud, _| {
        condition(cloud, "Ready").0 == "True" && generation_observed(cloud)
    })
    .await?;
    // Look a little longer: a restart may come a reconcile or two later.
    let before = sample(&ns).await?;
    holds_for("no workload changes", Duration::from_secs(5), || async {
        let now = sample(&ns).await?;
        Ok(before
            .iter()
            .all(|(name, seen)| now.get(name).map(|n| n.generation) == Some(seen.generation)))
    })
    .await
    .with_context(|| op.log_tail())?;
    ensure!(
        watched.changed.is_empty(),
        "restarted: {:?}",
        watched.changed
    );
    ensure!(
        before.contains_key("fcloud-node-2"),
        "node-2 was created: {before:?}"
    );
    let cloud = api.get("fcloud").await?;
    ensure!(
        cloud
            .status
            .as_ref()
            .and_then(|s| s.upgrade.as_ref())
            .is_none(),
        "no rollout: {:?}",
        cloud.status.as_ref().and_then(|s| s.upgrade.as_ref())
    );
    Ok(())
}
