//! `insync-operator plan` against the live cloud: the preview compares the manifest with what
//! the API server holds, read with the user's kubeconfig (no operator needed).
//!
//! Run: `cargo build -p insync-operator && cargo test -p insync-e2e --test plan`.

mod common;

use std::time::Duration;

use anyhow::{Result, ensure};
use common::{create, fcloud_no_dns, operator_binary};
use insync_e2e::{TestNamespace, cluster, kubeconfig_path};
use insync_operator::api::InSyncCloud;

async fn plan(manifest: &InSyncCloud) -> Result<String> {
    let path = std::env::temp_dir().join(format!(
        "plan-{}-{}.yaml",
        manifest.metadata.namespace.as_deref().unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&path, serde_yaml::to_string(manifest)?)?;
    let out = tokio::process::Command::new(operator_binary()?)
        .args(["plan", "-f"])
        .arg(&path)
        .env("KUBECONFIG", kubeconfig_path())
        .output()
        .await?;
    let _ = std::fs::remove_file(&path);
    ensure!(
        out.status.success(),
        "plan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

#[tokio::test]
async fn plan_compares_with_the_live_cloud() -> Result<()> {
    let client = cluster().await?;
    common::install_crd().await?;
    let ns = TestNamespace::create(&client, "plan").await?;
    let live = fcloud_no_dns(ns.name())?;

    // Not there yet: everything would be created.
    let text = plan(&live).await?;
    ensure!(text.contains("does not exist"), "{text}");

    create(&ns.api(), &live).await?;
    let mut bumped = live.clone();
    bumped.spec.version = "5.9.2-r4190".into();
    bumped.spec.nodes.replicas = 3;
    let text = plan(&bumped).await?;
    for expected in [
        "5.9.1-r4178 → 5.9.2-r4190",
        "1. datastores",
        "Deployment/fcloud-node-0: image of node 5.9.1-r4178 → 5.9.2-r4190",
        "Deployment/fcloud-node-2",
        "Cannot be undone",
    ] {
        ensure!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // The live cloud is what counts, not the example: a manifest equal to it restarts nothing.
    let text = plan(&live).await?;
    ensure!(
        text.contains("No pod restarts.") && !text.contains("Changed in place"),
        "{text}"
    );
    ns.delete_and_wait(Duration::from_secs(120)).await
}
