//! The gates in front of a version change, on the local control plane (kwok pods): maintenance
//! windows, and a fleet of 10 clouds in 3 rings under an operator-wide limit on concurrent
//! upgrades, with a canary that fails (the kwok never-ready convention: pods of version
//! `0.0.0-never-ready` run but never become Ready).
//!
//! Run: `cargo build -p insync-operator && cargo test -p insync-e2e --test upgrade_gates`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use common::{Operator, condition, create, fcloud_no_dns, wait_ready};
use insync_e2e::{TestNamespace, cluster, holds_for, poll_until};
use insync_operator::api::{InSyncCloud, UpgradePhase};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

const READY_TIMEOUT: Duration = Duration::from_secs(240);
const V1: &str = "5.9.1-r4178";
const V2: &str = "5.9.2-r4190";
const NEVER_READY: &str = "0.0.0-never-ready";

async fn merge(api: &Api<InSyncCloud>, name: &str, patch: serde_json::Value) -> Result<()> {
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}

fn phase(cloud: &InSyncCloud) -> Option<UpgradePhase> {
    cloud
        .status
        .as_ref()
        .and_then(|s| s.upgrade.as_ref())
        .filter(|u| u.to_version == cloud.spec.version)
        .map(|u| u.phase)
}

fn rolling(cloud: &InSyncCloud) -> bool {
    matches!(
        phase(cloud),
        Some(
            UpgradePhase::Datastores
                | UpgradePhase::CloudMaster
                | UpgradePhase::Nodes
                | UpgradePhase::Frontend
        )
    )
}

fn done_at(cloud: &InSyncCloud, version: &str) -> bool {
    condition(cloud, "Ready").0 == "True"
        && cloud
            .status
            .as_ref()
            .and_then(|s| s.current_version.as_deref())
            == Some(version)
}

/// The CloudMaster Deployment's image tag: what the cloud actually runs.
async fn master_tag(ns: &TestNamespace, cloud: &str) -> Result<String> {
    let d = ns
        .api::<Deployment>()
        .get(&format!("{cloud}-cloudmaster"))
        .await?;
    let image = d
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.first().and_then(|c| c.image.clone()))
        .unwrap_or_default();
    Ok(image
        .rsplit_once(':')
        .map(|(_, t)| t.to_owned())
        .unwrap_or_default())
}

/// `HH:MM` UTC, `hours` from now.
fn clock_in(hours: i64) -> String {
    let t = Timestamp::now().as_second() + hours * 3600;
    let minutes = t.rem_euclid(86_400) / 60;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[tokio::test]
async fn a_version_change_waits_for_its_maintenance_window() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "window").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api: Api<InSyncCloud> = ns.api();
    create(&api, &fcloud_no_dns(ns.name())?).await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;

    // A daily window that opens in 6 hours: the bump waits, and says until when.
    let closed = json!([{"start": clock_in(6), "duration": "1h"}]);
    merge(
        &api,
        "fcloud",
        json!({"spec": {"version": V2, "upgrade": {"windows": closed}}}),
    )
    .await?;
    let waiting = poll_until("the upgrade to wait", READY_TIMEOUT, || async {
        let c = api.get("fcloud").await?;
        Ok((phase(&c) == Some(UpgradePhase::Waiting)).then_some(c))
    })
    .await?;
    let (ready, reason, message) = condition(&waiting, "Ready");
    ensure!(
        ready == "False" && reason == "UpgradeWaiting" && message.contains("next opens at"),
        "Ready: {ready} {reason} {message}"
    );
    holds_for(
        "the cloud to stay on its version",
        Duration::from_secs(8),
        || async { Ok(master_tag(&ns, "fcloud").await? == V1) },
    )
    .await?;

    // A window open now: the rollout goes through.
    let open = json!([{"start": clock_in(-1), "duration": "3h"}]);
    merge(
        &api,
        "fcloud",
        json!({"spec": {"upgrade": {"windows": open}}}),
    )
    .await?;
    poll_until("the upgrade to finish", READY_TIMEOUT, || async {
        let c = api.get("fcloud").await?;
        Ok(done_at(&c, V2).then_some(()))
    })
    .await?;
    ensure!(master_tag(&ns, "fcloud").await? == V2);
    ns.delete_and_wait(Duration::from_secs(180)).await
}

/// One poll of the fleet: ring and state of every cloud, from one list (one consistent
/// snapshot of the API server).
struct Snapshot {
    clouds: Vec<InSyncCloud>,
}

impl Snapshot {
    async fn take(api: &Api<InSyncCloud>) -> Result<Self> {
        Ok(Self {
            clouds: api.list(&ListParams::default()).await?.items,
        })
    }

    fn ring(c: &InSyncCloud) -> i32 {
        c.spec.upgrade.ring.unwrap_or_default()
    }

    /// Every cloud moving to or done at `version` has every cloud of an earlier ring done at it.
    fn rings_respected(&self, version: &str) -> Result<()> {
        for c in &self.clouds {
            let moved = rolling(c) || done_at(c, version);
            if !moved || Self::ring(c) == 0 {
                continue;
            }
            for earlier in self.clouds.iter().filter(|e| Self::ring(e) < Self::ring(c)) {
                ensure!(
                    done_at(earlier, version),
                    "{} (ring {}) moved to {version} before {} (ring {}) was Ready on it",
                    c.name_any(),
                    Self::ring(c),
                    earlier.name_any(),
                    Self::ring(earlier)
                );
            }
        }
        Ok(())
    }

    fn rolling(&self) -> usize {
        self.clouds.iter().filter(|c| rolling(c)).count()
    }
}

#[tokio::test]
async fn a_fleet_upgrades_ring_by_ring_and_a_failing_canary_stops_the_rest() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "rings").await?;
    let op = Operator::start(ns.name(), &["--max-concurrent-upgrades", "2"]).await?;
    let api: Api<InSyncCloud> = ns.api();
    // Ring 0: one canary; ring 1: four clouds; ring 2: five.
    let rings: BTreeMap<String, i32> = (0..10)
        .map(|i| {
            let ring = match i {
                0 => 0,
                1..=4 => 1,
                _ => 2,
            };
            (format!("c{i}"), ring)
        })
        .collect();
    for (name, ring) in &rings {
        let mut cloud = fcloud_no_dns(ns.name())?;
        cloud.metadata.name = Some(name.clone());
        cloud.spec.nodes.replicas = 1;
        cloud.spec.upgrade.ring = Some(*ring);
        cloud.spec.upgrade.health_timeout = "20s".into();
        create(&api, &cloud).await?;
    }
    for name in rings.keys() {
        wait_ready(&api, name, READY_TIMEOUT, &op).await?;
    }

    // Everyone asks for V2 at once.
    for name in rings.keys() {
        merge(&api, name, json!({"spec": {"version": V2}})).await?;
    }
    let started = Instant::now();
    let mut max_rolling = 0;
    let mut saw_waiting_for_ring = false;
    loop {
        let snap = Snapshot::take(&api).await?;
        snap.rings_respected(V2)?;
        max_rolling = max_rolling.max(snap.rolling());
        saw_waiting_for_ring |= snap.clouds.iter().any(|c| {
            phase(c) == Some(UpgradePhase::Waiting)
                && condition(c, "Progressing").2.contains("earlier rings")
        });
        if snap.clouds.iter().all(|c| done_at(c, V2)) {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the fleet did not reach {V2}\n{}", op.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    ensure!(
        max_rolling <= 2,
        "{max_rolling} clouds rolled at once under --max-concurrent-upgrades 2"
    );
    ensure!(max_rolling >= 1, "no rollout was ever seen in flight");
    ensure!(
        saw_waiting_for_ring,
        "no cloud was seen waiting for an earlier ring"
    );

    // Now a version whose pods never get Ready: the canary blocks, the later rings never start.
    for name in rings.keys() {
        merge(&api, name, json!({"spec": {"version": NEVER_READY}})).await?;
    }
    poll_until("the canary to block", READY_TIMEOUT, || async {
        let c = api.get("c0").await?;
        Ok((phase(&c) == Some(UpgradePhase::Blocked)).then_some(()))
    })
    .await?;
    poll_until(
        "the later rings to say the canary halted them",
        READY_TIMEOUT,
        || async {
            let snap = Snapshot::take(&api).await?;
            let halted = snap
                .clouds
                .iter()
                .filter(|c| c.name_any() != "c0")
                .all(|c| {
                    phase(c) == Some(UpgradePhase::Waiting)
                        && condition(c, "Progressing").2.contains("c0")
                });
            Ok(halted.then_some(()))
        },
    )
    .await?;
    holds_for(
        "the later rings to stay on V2",
        Duration::from_secs(10),
        || async {
            for name in rings.keys().filter(|n| *n != "c0") {
                if master_tag(&ns, name).await? != V2 {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await?;
    ns.delete_and_wait(Duration::from_secs(300)).await
}
