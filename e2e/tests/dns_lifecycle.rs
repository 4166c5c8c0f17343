//! DNS records over a cloud's life, across operator restarts (issue 10): the operator finds the
//! records it owns from durable state, never leaves them behind or dangling, never drops its
//! finalizer while it cannot prove they are gone, and writes only into allowed domains (none
//! without an allow-list).
//! Route53 is moto on loopback.

mod common;
#[path = "../../operator/tests/support/moto.rs"]
#[allow(dead_code)]
mod moto;
#[path = "../../operator/tests/support/route53.rs"]
#[allow(dead_code)]
mod route53;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use aws_sdk_route53::Client as R53;
use common::{Operator, condition, create, fcloud};
use insync_e2e::{TestNamespace, cluster, poll_until, wait_for};
use insync_operator::api::InSyncCloud;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

const OWNER: &str = "e2e-operator";

/// The allow-list most tests run with: both zones they publish into. Without one the operator
/// publishes nothing (deny by default).
const ALLOWED: [&str; 4] = [
    "--dns-allowed-domain",
    "drtst.org",
    "--dns-allowed-domain",
    "example.net",
];

/// The operator for `ns` against `moto`, with DNS on (`owner`) or off (`None`).
async fn operator(
    ns: &str,
    moto: &moto::Moto,
    owner: Option<&str>,
    extra: &[&str],
) -> Result<Operator> {
    let endpoint = moto.endpoint();
    let mut args: Vec<&str> = vec!["--dns-endpoint", &endpoint];
    if let Some(owner) = owner {
        args.extend(["--dns-owner-id", owner]);
    }
    args.extend(extra);
    Operator::start_with_env(
        ns,
        &args,
        &[
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ],
    )
    .await
}

/// fcloud in `ns` publishing into `domain`, with node ports left to Kubernetes.
fn cloud(ns: &str, domain: &str) -> Result<InSyncCloud> {
    let mut c = fcloud(ns)?;
    c.spec.frontend.service.master_node_port = None;
    c.spec.frontend.service.storage_node_port = None;
    c.spec.dns.as_mut().context("fcloud has dns")?.domain = domain.to_owned();
    Ok(c)
}

/// Names of the records in `zone` that mention `fcloud.`.
async fn fcloud_records(r53: &R53, zone: &str) -> Vec<String> {
    route53::user_records(r53, zone)
        .await
        .into_iter()
        .filter(|(name, _, _)| name.contains("fcloud."))
        .map(|(name, ty, _)| format!("{ty} {name}"))
        .collect()
}

async fn wait_dns(api: &Api<InSyncCloud>, reason: &str, op: &Operator) -> Result<InSyncCloud> {
    poll_until(
        &format!("fcloud's DNSReady reason {reason}"),
        Duration::from_secs(120),
        || async {
            let c = api.get("fcloud").await?;
            let current =
                c.status.as_ref().and_then(|s| s.observed_generation) == c.metadata.generation;
            Ok((current && condition(&c, "DNSReady").1 == reason).then_some(c))
        },
    )
    .await
    .with_context(|| op.log_tail())
}

async fn wait_records(r53: &R53, zone: &str, present: bool, op: &Operator) -> Result<()> {
    wait_for(
        &format!(
            "fcloud's records in {zone} to be {}",
            if present { "present" } else { "gone" }
        ),
        Duration::from_secs(60),
        || async { Ok(fcloud_records(r53, zone).await.is_empty() != present) },
    )
    .await
    .with_context(|| op.log_tail())
}

/// Starts the operator, creates fcloud in drtst.org and waits until its records are in `zone`.
async fn publish_fcloud(
    namespace: &str,
    api: &Api<InSyncCloud>,
    moto: &moto::Moto,
    r53: &R53,
    zone: &str,
) -> Result<Operator> {
    let op = operator(namespace, moto, Some(OWNER), &ALLOWED).await?;
    create(api, &cloud(namespace, "drtst.org")?).await?;
    wait_dns(api, "Published", &op).await?;
    wait_records(r53, zone, true, &op).await?;
    Ok(op)
}

async fn patch_spec(api: &Api<InSyncCloud>, spec: serde_json::Value) -> Result<()> {
    api.patch(
        "fcloud",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await?;
    Ok(())
}

/// Deletes fcloud with a DNS-capable operator running and waits until it is gone.
async fn delete_and_wait(api: &Api<InSyncCloud>, op: &Operator) -> Result<()> {
    let _ = api.delete("fcloud", &DeleteParams::default()).await;
    wait_for("fcloud to be deleted", Duration::from_secs(60), || async {
        Ok(api.get_opt("fcloud").await?.is_none())
    })
    .await
    .with_context(|| op.log_tail())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_change_during_a_restart_removes_the_old_zones_records() -> Result<()> {
    let moto = moto::Moto::start();
    let r53 = route53::client(&moto.endpoint()).await;
    let old = route53::create_zone(&r53, "drtst.org").await;
    let new = route53::create_zone(&r53, "example.net").await;
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "dns-move").await?;
    let api: Api<InSyncCloud> = ns.api();

    let op = publish_fcloud(ns.name(), &api, &moto, &r53, &old).await?;
    op.kill().await?;

    // Moved while no operator runs: only durable state says where the records are.
    patch_spec(&api, json!({"dns": {"domain": "example.net"}})).await?;
    let op = operator(ns.name(), &moto, Some(OWNER), &ALLOWED).await?;
    wait_dns(&api, "Published", &op).await?;
    wait_records(&r53, &new, true, &op).await?;
    wait_records(&r53, &old, false, &op).await?;
    delete_and_wait(&api, &op).await?;
    ensure!(
        fcloud_records(&r53, &new).await.is_empty(),
        "records survived deletion"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_ip_front_end_removes_the_record_it_can_no_longer_back() -> Result<()> {
    let moto = moto::Moto::start();
    let r53 = route53::client(&moto.endpoint()).await;
    let zone = route53::create_zone(&r53, "drtst.org").await;
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "dns-cip").await?;
    let api: Api<InSyncCloud> = ns.api();

    let op = publish_fcloud(ns.name(), &api, &moto, &r53, &zone).await?;

    patch_spec(
        &api,
        json!({"frontend": {"service": {"type": "ClusterIP"}}}),
    )
    .await?;
    let c = wait_dns(&api, "NoExternalAddress", &op).await?;
    let (status, _, message) = condition(&c, "DNSReady");
    ensure!(status == "False", "DNSReady: {status}: {message}");
    // The old address may be anyone's now: the record pointing at it must go.
    wait_records(&r53, &zone, false, &op).await?;
    // And stay gone after a resync-worthy restart.
    op.kill().await?;
    let op = operator(ns.name(), &moto, Some(OWNER), &ALLOWED).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    ensure!(
        fcloud_records(&r53, &zone).await.is_empty(),
        "the record came back: {:?}\n{}",
        fcloud_records(&r53, &zone).await,
        op.log_tail()
    );
    delete_and_wait(&api, &op).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_dns_off_during_a_restart_removes_the_records() -> Result<()> {
    let moto = moto::Moto::start();
    let r53 = route53::client(&moto.endpoint()).await;
    let zone = route53::create_zone(&r53, "drtst.org").await;
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "dns-off").await?;
    let api: Api<InSyncCloud> = ns.api();

    let op = publish_fcloud(ns.name(), &api, &moto, &r53, &zone).await?;
    op.kill().await?;

    patch_spec(&api, json!({"dns": null})).await?;
    let op = operator(ns.name(), &moto, Some(OWNER), &ALLOWED).await?;
    wait_dns(&api, "NotConfigured", &op).await?;
    wait_records(&r53, &zone, false, &op).await?;
    // With the records gone, the DNS finalizer is no longer needed.
    wait_for(
        "the DNS finalizer to go",
        Duration::from_secs(30),
        || async {
            Ok(!api
                .get("fcloud")
                .await?
                .metadata
                .finalizers
                .unwrap_or_default()
                .iter()
                .any(|f| f == "insync.dev/dns-cleanup"))
        },
    )
    .await
    .with_context(|| op.log_tail())?;
    delete_and_wait(&api, &op).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_without_an_owner_id_keeps_the_finalizer_and_says_why() -> Result<()> {
    let moto = moto::Moto::start();
    let r53 = route53::client(&moto.endpoint()).await;
    let zone = route53::create_zone(&r53, "drtst.org").await;
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "dns-noowner").await?;
    let api: Api<InSyncCloud> = ns.api();

    let op = publish_fcloud(ns.name(), &api, &moto, &r53, &zone).await?;
    op.kill().await?;

    // Restarted without --dns-owner-id: it cannot remove (or even recognize) its records.
    let op = operator(ns.name(), &moto, None, &[]).await?;
    api.delete("fcloud", &DeleteParams::default()).await?;
    let c = poll_until(
        "DNSReady=False/CannotRemoveRecords on the deleting cloud",
        Duration::from_secs(60),
        || async {
            let c = api
                .get_opt("fcloud")
                .await?
                .context("fcloud was deleted with its records still in Route53")?;
            Ok((condition(&c, "DNSReady").1 == "CannotRemoveRecords").then_some(c))
        },
    )
    .await
    .with_context(|| op.log_tail())?;
    let (status, _, message) = condition(&c, "DNSReady");
    ensure!(
        status == "False" && message.contains("--dns-owner-id"),
        "DNSReady: {status}: {message}"
    );
    let events: Api<Event> = ns.api();
    wait_for(
        "a DNSCleanupBlocked event",
        Duration::from_secs(30),
        || async {
            Ok(events
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .any(|e| e.reason.as_deref() == Some("DNSCleanupBlocked")))
        },
    )
    .await
    .with_context(|| op.log_tail())?;
    ensure!(
        !fcloud_records(&r53, &zone).await.is_empty(),
        "records vanished on their own?"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        api.get_opt("fcloud").await?.is_some(),
        "finalizer dropped\n{}",
        op.log_tail()
    );
    op.kill().await?;

    // With the owner id back, the records go and so does the cloud.
    let op = operator(ns.name(), &moto, Some(OWNER), &ALLOWED).await?;
    wait_for("fcloud to be deleted", Duration::from_secs(60), || async {
        Ok(api.get_opt("fcloud").await?.is_none())
    })
    .await
    .with_context(|| op.log_tail())?;
    ensure!(
        fcloud_records(&r53, &zone).await.is_empty(),
        "records survived deletion"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_outside_the_allow_list_is_refused_and_nothing_is_written() -> Result<()> {
    let moto = moto::Moto::start();
    let r53 = route53::client(&moto.endpoint()).await;
    let zone = route53::create_zone(&r53, "drtst.org").await;
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "dns-allow").await?;
    let api: Api<InSyncCloud> = ns.api();

    let other = "someone-else.example.com".to_owned();
    let team = format!("{}=team.example.org", ns.name());
    let op = operator(
        ns.name(),
        &moto,
        Some(OWNER),
        &[
            "--dns-allowed-domain",
            &other,
            "--dns-allowed-domain",
            &team,
        ],
    )
    .await?;
    create(&api, &cloud(ns.name(), "drtst.org")?).await?;
    let c = wait_dns(&api, "DomainNotAllowed", &op).await?;
    let (status, _, message) = condition(&c, "DNSReady");
    ensure!(
        status == "False"
            && message.contains("someone-else.example.com")
            && message.contains("team.example.org"),
        "DNSReady: {status}: {message}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(
        fcloud_records(&r53, &zone).await.is_empty(),
        "a record was written into a zone outside the allow-list"
    );
    delete_and_wait(&api, &op).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_allow_list_nothing_new_is_published_and_old_records_are_kept() -> Result<()> {
    let moto = moto::Moto::start();
    let r53 = route53::client(&moto.endpoint()).await;
    let zone = route53::create_zone(&r53, "drtst.org").await;
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "dns-deny").await?;
    let api: Api<InSyncCloud> = ns.api();

    // Published while drtst.org was allowed, then restarted without any allow-list (an
    // operator upgraded from the allow-everything default).
    let op = publish_fcloud(ns.name(), &api, &moto, &r53, &zone).await?;
    let before = fcloud_records(&r53, &zone).await;
    op.kill().await?;
    let op = operator(ns.name(), &moto, Some(OWNER), &[]).await?;
    let c = wait_dns(&api, "NoAllowedDomains", &op).await?;
    let (status, _, message) = condition(&c, "DNSReady");
    ensure!(
        status == "False"
            && message.contains("--dns-allowed-domain")
            && message.contains("--dns-allow-all-domains")
            && message.contains("kept as they are"),
        "DNSReady: {status}: {message}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(
        fcloud_records(&r53, &zone).await == before,
        "the records changed without an allow-list: {:?} -> {:?}",
        before,
        fcloud_records(&r53, &zone).await
    );

    // A second cloud gets nothing at all.
    let mut other = cloud(ns.name(), "drtst.org")?;
    other.metadata.name = Some("other".into());
    create(&api, &other).await?;
    let other = poll_until(
        "other's DNSReady reason NoAllowedDomains",
        Duration::from_secs(120),
        || async {
            let c = api.get("other").await?;
            Ok((condition(&c, "DNSReady").1 == "NoAllowedDomains").then_some(c))
        },
    )
    .await
    .with_context(|| op.log_tail())?;
    ensure!(
        !other
            .metadata
            .finalizers
            .unwrap_or_default()
            .iter()
            .any(|f| f == "insync.dev/dns-cleanup"),
        "a cloud that publishes nothing got the DNS finalizer"
    );
    ensure!(
        route53::user_records(&r53, &zone)
            .await
            .iter()
            .all(|(name, _, _)| !name.contains("other.")),
        "a record was written without an allow-list"
    );
    let _ = api.delete("other", &DeleteParams::default()).await;

    // Deleting the cloud still removes what it published.
    delete_and_wait(&api, &op).await?;
    wait_records(&r53, &zone, false, &op).await
}
