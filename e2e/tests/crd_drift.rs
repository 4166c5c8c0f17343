//! An operator newer than the CRD on the cluster (what `helm upgrade` leaves: Helm never
//! upgrades a chart's CRDs). Server-side apply refuses a status naming a field the schema does
//! not declare, so every status write fails; the operator must say so, with the way out, at
//! start and on each refusal, and recover by itself once the CRD is updated.
//!
//! This file changes the shared InSyncCloud CRD: it is the only test in its binary, so nothing
//! else runs while it does (cargo runs test binaries one at a time), and it puts the CRD back
//! however it ends.
//!
//! Run: `cargo build -p insync-operator && cargo test -p insync-e2e --test crd_drift`.

mod common;

use std::time::Duration;

use anyhow::{Result, ensure};
use common::{Operator, fcloud_no_dns, install_crd};
use insync_e2e::{
    TestNamespace, cluster, kubeconfig_path, kubectl, kubectl_path, repo_root, wait_for,
};
use insync_operator::api::InSyncCloud;
use kube::api::{Api, PostParams};

const CRD: &str = "insyncclouds.insync.dev";
const METRIC: &str = "insync_operator_crd_missing_fields";
/// A status field every reconcile writes, and that an older CRD would not have.
const DROPPED: &str =
    "/spec/versions/0/schema/openAPIV3Schema/properties/status/properties/targetVersion";

/// Puts the committed CRD back, whatever way the test ends.
struct RestoreCrd;

impl Drop for RestoreCrd {
    fn drop(&mut self) {
        let crd = repo_root().join("crds").join(format!("{CRD}.yaml"));
        let _ = std::process::Command::new(kubectl_path())
            .env("KUBECONFIG", kubeconfig_path())
            .args(["apply", "--server-side", "--force-conflicts", "-f"])
            .arg(crd)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The operator's gauge of missing fields for the clouds' CRD.
async fn missing_fields(operator: &Operator) -> Result<f64> {
    let samples = operator.metrics().await?;
    let sample = samples
        .iter()
        .find(|s| s.name == METRIC && s.labels.get("crd").map(String::as_str) == Some(CRD));
    Ok(sample.map_or(f64::NAN, |s| s.value))
}

#[tokio::test]
async fn an_operator_newer_than_its_crd_says_so_and_recovers_when_the_crd_is_updated() -> Result<()>
{
    let client = cluster().await?;
    install_crd().await?;
    let _restore = RestoreCrd;
    // The CRD as an older release shipped it: without `status.targetVersion`.
    kubectl(&[
        "patch",
        "crd",
        CRD,
        "--type=json",
        &format!(r#"-p=[{{"op":"remove","path":"{DROPPED}"}}]"#),
    ])
    .await?;
    let ns = TestNamespace::create(&client, "crd-drift").await?;
    let operator = Operator::start(ns.name(), &[]).await?;

    // At start: the gauge and the log name the field and the way out.
    let missing = missing_fields(&operator).await?;
    ensure!(missing == 1.0, "{METRIC} = {missing}, want 1");
    let log = std::fs::read_to_string(operator.log())?;
    ensure!(
        log.contains(".status.targetVersion") && log.contains("helm upgrade` does not update CRDs"),
        "the start-up log does not name the missing field and the fix:\n{}",
        operator.log_tail()
    );

    // A cloud's status write is refused, and the refusal carries the way out.
    let clouds: Api<InSyncCloud> = ns.api();
    clouds
        .create(&PostParams::default(), &fcloud_no_dns(ns.name())?)
        .await?;
    wait_for(
        "the refused status write to be logged with the fix",
        Duration::from_secs(60),
        || async {
            let log = std::fs::read_to_string(operator.log())?;
            Ok(log.lines().any(|l| {
                l.contains("field not declared in schema")
                    && l.contains("apply this release's CRDs")
            }))
        },
    )
    .await?;
    let cloud = clouds.get("fcloud").await?;
    ensure!(
        cloud.status.is_none(),
        "a status was written over the old CRD: {:?}",
        cloud.status
    );

    // The CRD updated: the same operator writes the status on its next retry, no restart.
    kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &repo_root()
            .join("crds")
            .join(format!("{CRD}.yaml"))
            .display()
            .to_string(),
    ])
    .await?;
    wait_for(
        "the status to be written once the CRD is current",
        Duration::from_secs(120),
        || async {
            let cloud = clouds.get("fcloud").await?;
            Ok(cloud
                .status
                .as_ref()
                .is_some_and(|s| s.target_version.is_some() && !s.conditions.is_empty()))
        },
    )
    .await?;

    // And a restarted operator finds nothing missing.
    let operator = operator.restart().await?;
    let missing = missing_fields(&operator).await?;
    ensure!(
        missing == 0.0,
        "{METRIC} = {missing} after the update, want 0"
    );
    drop(operator);
    ns.delete_and_wait(Duration::from_secs(120)).await?;
    Ok(())
}
