//! The controller defects of issue 10 that need the cluster, each reproduced against the real
//! control plane: every test here failed on the operator before its fix. (Quantities compared
//! as strings, defect 1, is pure logic: unit tests in `controller::apply` and `api::quantity`.)
//!
//! Run: `cargo build -p insync-operator && cargo test -p insync-e2e --test controller_defects`.

mod common;
#[path = "../../operator/tests/support/moto.rs"]
#[allow(dead_code)]
mod moto;
#[path = "../../operator/tests/support/route53.rs"]
#[allow(dead_code)]
mod route53;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{Operator, condition, create, fcloud, fcloud_no_dns, wait_ready};
use futures::{StreamExt, TryStreamExt};
use insync_e2e::{TestNamespace, cluster, holds_for, poll_until, wait_for};
use insync_operator::api::InSyncCloud;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

const READY_TIMEOUT: Duration = Duration::from_secs(180);

async fn merge(api: &Api<InSyncCloud>, name: &str, patch: serde_json::Value) -> Result<()> {
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}

/// Wakes the operator for the cloud without changing its spec.
async fn poke(api: &Api<InSyncCloud>, name: &str, n: u32) -> Result<()> {
    merge(
        api,
        name,
        json!({"metadata": {"annotations": {"e2e.insync.dev/poke": n.to_string()}}}),
    )
    .await
}

fn requested_storage(pvc: &PersistentVolumeClaim) -> String {
    pvc.spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage").map(|q| q.0.clone()))
        .unwrap_or_default()
}

/// Defect 2: the DNS finalizer is added and removed without touching another controller's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dns_finalizer_leaves_other_finalizers_alone() -> Result<()> {
    const THEIRS: &str = "example.com/keep-me";
    const OURS: &str = "insync.dev/dns-cleanup";
    let moto = moto::Moto::start();
    let r53 = route53::client(&moto.endpoint()).await;
    route53::create_zone(&r53, "drtst.org").await;
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "finalizer").await?;
    let op = Operator::start_with_env(
        ns.name(),
        &[
            "--dns-owner-id",
            "e2e-operator",
            "--dns-endpoint",
            &moto.endpoint(),
            "--dns-allowed-domain",
            "drtst.org",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ],
    )
    .await?;
    let api: Api<InSyncCloud> = ns.api();
    let mut cloud = fcloud(ns.name())?;
    cloud.spec.frontend.service.master_node_port = None;
    cloud.spec.frontend.service.storage_node_port = None;
    cloud.metadata.finalizers = Some(vec![THEIRS.to_owned()]);
    create(&api, &cloud).await?;

    let finalizers =
        || async { Ok::<_, anyhow::Error>(api.get("fcloud").await?.finalizers().to_vec()) };
    wait_for(
        "the operator's finalizer",
        Duration::from_secs(60),
        || async { Ok(finalizers().await?.iter().any(|f| f == OURS)) },
    )
    .await
    .with_context(|| op.log_tail())?;
    let now = finalizers().await?;
    ensure!(
        now.iter().any(|f| f == THEIRS),
        "adding the DNS finalizer dropped {THEIRS}: {now:?}"
    );

    // Deletion: ours goes once the records are removed, theirs stays.
    api.delete("fcloud", &DeleteParams::default()).await?;
    let left = poll_until(
        "the operator to remove its finalizer",
        Duration::from_secs(60),
        || async {
            let f = finalizers().await?;
            Ok((!f.iter().any(|f| f == OURS)).then_some(f))
        },
    )
    .await
    .with_context(|| op.log_tail())?;
    ensure!(
        left == [THEIRS],
        "removing the DNS finalizer touched others: {left:?}"
    );
    // Play the other controller: release the cloud.
    api.patch(
        "fcloud",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    wait_for("fcloud to be deleted", Duration::from_secs(60), || async {
        Ok(api.get_opt("fcloud").await?.is_none())
    })
    .await?;
    Ok(())
}

/// Defect 3: after a restart, objects from the initial list carry no apiVersion/kind; before
/// the fix every cached child looked different from the desired one and every reconcile
/// re-applied every child (26 writes for fcloud), forever. Same measure as the steady-state
/// check in `operator.rs`: the operator's applied-objects counter and the cloud's
/// resourceVersion over a window, here in the restarted process.
#[tokio::test]
async fn steady_state_costs_no_writes_after_an_operator_restart() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "restart-steady").await?;
    let first = Operator::start(ns.name(), &[]).await?;
    let api: Api<InSyncCloud> = ns.api();
    create(&api, &fcloud_no_dns(ns.name())?).await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &first).await?;
    first.terminate().await?;

    let op = Operator::start(ns.name(), &[]).await?;
    // The restarted process reconciles the cloud at start; wake it twice more on purpose.
    wait_for(
        "the restarted operator to compare the cloud's objects",
        Duration::from_secs(60),
        || async { Ok(op.metric("insync_operator_objects_skipped_total").await? > 0.0) },
    )
    .await
    .with_context(|| op.log_tail())?;
    poke(&api, "fcloud", 1).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    poke(&api, "fcloud", 2).await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let applied = op.metric("insync_operator_objects_applied_total").await?;
    let reconciles = op.metric("insync_operator_reconciles_total").await?;
    ensure!(
        reconciles >= 3.0,
        "expected at least 3 reconciles, saw {reconciles}"
    );
    ensure!(
        applied == 0.0,
        "the restarted operator wrote {applied} object(s) over a steady cloud\n{}",
        op.log_tail()
    );
    ensure!(
        condition(&api.get("fcloud").await?, "Ready").0 == "True",
        "the cloud is no longer Ready"
    );
    Ok(())
}

/// Seen at 100 clouds: an operator restarted over many objects kept `/readyz` at 503 forever,
/// while some reconciles ran. The readiness probe and every reconcile waited on kube's
/// `Store::wait_until_ready`, which wakes only the last of several waiters: when a cache's list
/// ran past the clouds' 500 ms debounce, a reconcile's wait replaced the probe's, and the probe
/// (and all but one of the waiting reconciles) slept forever. 6000 Secrets (the Secret cache
/// watches them all, whatever their labels: 60 pages) make that list slow enough; about every
/// other start hung before the fix, so the operator is started four times, and each start must
/// turn ready and finish a reconcile of every cloud.
#[tokio::test]
async fn an_operator_started_over_many_pages_of_objects_turns_ready() -> Result<()> {
    const SECRETS: usize = 6000;
    const CLOUDS: usize = 3;
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "many-pages").await?;
    let secrets: Api<Secret> = ns.api();
    futures::stream::iter(0..SECRETS)
        .map(|i| {
            let secrets = secrets.clone();
            async move {
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(format!("bulk-{i}")),
                        ..ObjectMeta::default()
                    },
                    string_data: Some([("a".to_owned(), "b".to_owned())].into()),
                    ..Secret::default()
                };
                secrets.create(&PostParams::default(), &secret).await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    let api: Api<InSyncCloud> = ns.api();
    for i in 0..CLOUDS {
        let mut cloud = fcloud_no_dns(ns.name())?;
        cloud.metadata.name = Some(format!("fcloud-{i}"));
        create(&api, &cloud).await?;
    }
    for start in 1..=4 {
        // `start` waits for /readyz (60 s).
        let op = Operator::start(ns.name(), &[])
            .await
            .with_context(|| format!("start {start} over {SECRETS} Secrets never turned ready"))?;
        wait_for(
            &format!("start {start}: a finished reconcile of each of the {CLOUDS} clouds"),
            Duration::from_secs(60),
            || async {
                Ok(op
                    .metric("insync_operator_reconcile_duration_seconds_count")
                    .await?
                    >= CLOUDS as f64)
            },
        )
        .await
        .with_context(|| op.log_tail())?;
        op.terminate().await?;
    }
    Ok(())
}

/// `--initial-list auto` (the default) probes whether the API server streams initial lists and
/// falls back to pages when it does not. This plane runs with the WatchList feature off (its
/// etcd cannot report watch progress): the operator must say "paged" once and turn ready,
/// where `--initial-list streaming` forced on the same server never does.
#[tokio::test]
async fn initial_lists_fall_back_to_pages_where_streaming_is_refused() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "initial-list").await?;
    let op = Operator::start(ns.name(), &["--initial-list", "auto"]).await?;
    let log = std::fs::read_to_string(op.log())?;
    anyhow::ensure!(
        log.matches("initial lists paged").count() == 1 && !log.contains("initial lists streamed"),
        "auto on a server that refuses streaming lists should page, and say so once: {}",
        op.log_tail()
    );
    op.terminate().await?;
    let forced = Operator::start(ns.name(), &["--initial-list", "streaming"]).await;
    anyhow::ensure!(
        forced.is_err(),
        "streaming lists forced on a server that refuses them turned ready: the probe proves nothing"
    );
    Ok(())
}

/// Defect 4: a generated credential Secret deleted while its data volume exists is not
/// regenerated (new random passwords would lock inSync out of the existing data); the cloud
/// says so, with the way out.
#[tokio::test]
async fn a_lost_credential_secret_is_not_regenerated_over_existing_data() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "lost-creds").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api: Api<InSyncCloud> = ns.api();
    create(&api, &fcloud_no_dns(ns.name())?).await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;
    let secrets: Api<Secret> = ns.api();
    let claims: Api<PersistentVolumeClaim> = ns.api();
    ensure!(
        claims.get_opt("data-fcloud-mysql-0").await?.is_some(),
        "MySQL's data volume is missing"
    );

    secrets
        .delete("fcloud-mysql-credentials", &DeleteParams::default())
        .await?;
    wait_for("the Secret to be gone", Duration::from_secs(30), || async {
        Ok(secrets.get_opt("fcloud-mysql-credentials").await?.is_none())
    })
    .await?;
    poke(&api, "fcloud", 1).await?;
    let degraded = poll_until(
        "Degraded=True about the lost credentials",
        Duration::from_secs(60),
        || async {
            if secrets.get_opt("fcloud-mysql-credentials").await?.is_some() {
                anyhow::bail!("the operator generated new credentials over MySQL's existing data");
            }
            let c = api.get("fcloud").await?;
            let (status, reason, message) = condition(&c, "Degraded");
            Ok((status == "True" && reason == "CredentialsLost").then_some(message))
        },
    )
    .await
    .with_context(|| op.log_tail())?;
    for needle in [
        "fcloud-mysql-credentials",
        "data-fcloud-mysql-0",
        "Restore the Secret from a backup",
        "delete the PersistentVolumeClaim",
    ] {
        ensure!(
            degraded.contains(needle),
            "the Degraded message does not mention {needle:?}: {degraded}"
        );
    }
    holds_for(
        "the Secret to stay absent",
        Duration::from_secs(10),
        || async { Ok(secrets.get_opt("fcloud-mysql-credentials").await?.is_none()) },
    )
    .await
    .with_context(|| op.log_tail())?;
    Ok(())
}

/// Issue 22: deleting a generated Secret (which has no owner reference: it outlives the cloud
/// with its volumes) wakes the cloud by itself. Before the fix nothing reconciled for over a
/// minute, while the cloud said `Degraded=False Healthy`, `Ready=True`; the test above pokes
/// the cloud, this one does not.
#[tokio::test]
async fn deleting_a_generated_secret_wakes_its_cloud() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "deleted-secret").await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api: Api<InSyncCloud> = ns.api();
    create(&api, &fcloud_no_dns(ns.name())?).await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;
    // Let the last child status changes of the start-up pass, so that nothing but the
    // deletion is left to wake the cloud.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let secrets: Api<Secret> = ns.api();
    secrets
        .delete("fcloud-mysql-credentials", &DeleteParams::default())
        .await?;
    // Well inside the 60 s and 300 s safety-net timers: only the deletion can wake the cloud.
    let ready_message = poll_until(
        "Degraded=CredentialsLost and Ready=False saying why, without a poke",
        Duration::from_secs(20),
        || async {
            let c = api.get("fcloud").await?;
            let (degraded, reason, _) = condition(&c, "Degraded");
            let (ready, _, message) = condition(&c, "Ready");
            Ok(
                (degraded == "True" && reason == "CredentialsLost" && ready == "False")
                    .then_some(message),
            )
        },
    )
    .await
    .with_context(|| op.log_tail())?;
    ensure!(
        ready_message.contains("CredentialsLost")
            && ready_message.contains("fcloud-mysql-credentials"),
        "Ready=False does not say why: {ready_message:?}"
    );
    Ok(())
}

/// Defect 5: storage growth also grows the claims a scale-down kept, so a scale-up does not
/// bring a replica back at the old size.
#[tokio::test]
async fn claims_kept_from_a_scale_down_grow_too() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "grow-kept").await?;
    common::allow_volume_expansion().await?;
    let op = Operator::start(ns.name(), &[]).await?;
    let api: Api<InSyncCloud> = ns.api();
    let mut cloud = fcloud_no_dns(ns.name())?;
    if let Some(bynamo) = cloud.spec.metadata_store.managed.as_mut() {
        bynamo.replicas = 2;
    }
    create(&api, &cloud).await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;
    let claims: Api<PersistentVolumeClaim> = ns.api();
    let old = requested_storage(&claims.get("data-fcloud-bynamo-1").await?);

    merge(
        &api,
        "fcloud",
        json!({"spec": {"metadataStore": {"managed": {"replicas": 1}}}}),
    )
    .await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;
    let bigger = "25Gi";
    ensure!(old != bigger, "pick another size: the claim has {old}");
    merge(
        &api,
        "fcloud",
        json!({"spec": {"metadataStore": {"managed": {"storage": {"size": bigger}}}}}),
    )
    .await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;
    merge(
        &api,
        "fcloud",
        json!({"spec": {"metadataStore": {"managed": {"replicas": 2}}}}),
    )
    .await?;
    wait_ready(&api, "fcloud", READY_TIMEOUT, &op).await?;
    for name in ["data-fcloud-bynamo-0", "data-fcloud-bynamo-1"] {
        let size = requested_storage(&claims.get(name).await?);
        ensure!(
            size == bigger,
            "{name} requests {size}, not {bigger}\n{}",
            op.log_tail()
        );
    }
    Ok(())
}
