//! DNS end to end: the operator publishes `<cloud>.<domain>` into a real Route53 API (moto on
//! loopback), refuses to take over a foreign record, and removes its records on deletion.

mod common;
#[path = "../../operator/tests/support/moto.rs"]
#[allow(dead_code)]
mod moto;
#[path = "../../operator/tests/support/route53.rs"]
#[allow(dead_code)]
mod route53;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{Operator, condition, create, fcloud, wait_ready};
use insync_e2e::{TestNamespace, cluster, poll_until, wait_for};
use insync_operator::api::InSyncCloud;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams, ListParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fcloud_is_published_in_route53_and_removed_on_delete() -> Result<()> {
    let moto = moto::Moto::start();
    let r53 = route53::client(&moto.endpoint()).await;
    let zone = route53::create_zone(&r53, "drtst.org").await;
    // A record someone else owns, under the name a second cloud will want.
    route53::put_foreign(&r53, &zone, "taken.drtst.org", "A", &["192.0.2.10"]).await;

    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "dns").await?;
    let endpoint = moto.endpoint();
    let op = Operator::start_with_env(
        ns.name(),
        &[
            "--dns-owner-id",
            "e2e-operator",
            "--dns-endpoint",
            &endpoint,
            // The explicit allow-all knob (the default allows no domain).
            "--dns-allow-all-domains",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ],
    )
    .await?;
    let api: Api<InSyncCloud> = ns.api();

    // The fcloud example (NodePort front end, Route53 DNS); its fixed node ports are left to
    // Kubernetes so the test does not collide with a `make demo` cloud on the same cluster.
    let mut example = fcloud(ns.name())?;
    example.spec.frontend.service.master_node_port = None;
    example.spec.frontend.service.storage_node_port = None;
    create(&api, &example).await?;
    let ready = wait_ready(&api, "fcloud", Duration::from_secs(180), &op).await?;
    let (status, reason, message) = condition(&ready, "DNSReady");
    ensure!(
        status == "True" && reason == "Published",
        "DNSReady: {status} {reason}: {message}"
    );
    // A NodePort front end answers on every node: the record holds each node's InternalIP
    // (127.0.0.1 for the kwok nodes, plus the real node's address when it is up).
    let nodes: Api<Node> = Api::all(client.clone());
    let mut addresses: Vec<String> = nodes
        .list(&ListParams::default())
        .await?
        .into_iter()
        .flat_map(|node| node.status.and_then(|s| s.addresses).unwrap_or_default())
        .filter(|address| address.type_ == "InternalIP")
        .map(|address| address.address)
        .collect();
    addresses.sort();
    addresses.dedup();
    ensure!(
        addresses.contains(&"127.0.0.1".to_owned()),
        "kwok nodes' address: {addresses:?}"
    );
    let records = route53::user_records(&r53, &zone).await;
    ensure!(
        records.iter().any(|(name, ty, values)| {
            let mut values = values.clone();
            values.sort();
            name.trim_end_matches('.') == "fcloud.drtst.org" && ty == "A" && values == addresses
        }),
        "no A record for fcloud.drtst.org with the nodes' addresses {addresses:?}: {records:?}"
    );
    ensure!(
        records.iter().any(|(name, ty, values)| ty == "TXT"
            && name.contains("fcloud.drtst.org")
            && values
                .iter()
                .any(|v| v.contains("e2e-operator") && v.contains(ns.name()))),
        "no ownership TXT record: {records:?}"
    );

    ensure!(
        op.metric("insync_operator_route53_calls").await? > 0.0,
        "Route53 calls are not in /metrics"
    );

    // A cloud whose name is taken by a foreign record: reported, and the record is untouched.
    let mut taken = fcloud(ns.name())?;
    taken.metadata.name = Some("taken".into());
    taken.spec.frontend.service.master_node_port = None;
    taken.spec.frontend.service.storage_node_port = None;
    create(&api, &taken).await?;
    let conflicted = poll_until(
        "DNSReady=False/Conflict on the taken cloud",
        Duration::from_secs(120),
        || async {
            let c = api.get("taken").await?;
            Ok((condition(&c, "DNSReady").1 == "Conflict").then_some(c))
        },
    )
    .await
    .with_context(|| op.log_tail())?;
    ensure!(
        condition(&conflicted, "Ready").0 == "False",
        "a cloud without its DNS name is not Ready"
    );
    let after = route53::user_records(&r53, &zone).await;
    ensure!(
        after.iter().any(
            |(name, ty, values)| name.trim_end_matches('.') == "taken.drtst.org"
                && ty == "A"
                && values == &vec!["192.0.2.10".to_owned()]
        ),
        "the foreign record was modified: {after:?}"
    );

    // Deleting fcloud removes its records (finalizer) and keeps its volumes.
    let pvcs: Api<PersistentVolumeClaim> = ns.api();
    let before = pvcs.list(&ListParams::default()).await?.items.len();
    api.delete("fcloud", &DeleteParams::default()).await?;
    wait_for("fcloud to be deleted", Duration::from_secs(60), || async {
        Ok(api.get_opt("fcloud").await?.is_none())
    })
    .await
    .with_context(|| op.log_tail())?;
    let left = route53::user_records(&r53, &zone).await;
    ensure!(
        !left
            .iter()
            .any(|(name, _, _)| name.contains("fcloud.drtst.org")),
        "fcloud's records survived its deletion: {left:?}"
    );
    ensure!(
        left.iter()
            .any(|(name, _, _)| name.trim_end_matches('.') == "taken.drtst.org"),
        "the foreign record was deleted: {left:?}"
    );
    ensure!(
        pvcs.list(&ListParams::default()).await?.items.len() >= before,
        "volumes were deleted with the cloud"
    );

    // Let the operator release the second cloud's finalizer before it stops.
    api.delete("taken", &DeleteParams::default()).await?;
    wait_for("taken to be deleted", Duration::from_secs(60), || async {
        Ok(api.get_opt("taken").await?.is_none())
    })
    .await?;
    Ok(())
}
