//! The Helm chart on the real control plane: it installs, its manifests are accepted by the API
//! server, and its RBAC is enough for the operator to converge a cloud — and no more.
//!
//! No container runs here (kwok plays the kubelet), so the chart's operator pod cannot execute
//! the binary. The closest real thing: run the binary locally with exactly the arguments of the
//! chart's Deployment, authenticated as the chart's ServiceAccount (a token from the API
//! server), so every API call is authorized by the chart's RBAC and nothing else.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{Operator, create, fcloud, wait_ready};
use insync_e2e::{
    TestNamespace, cluster, helm, kubeconfig_path, kubectl, kubectl_stdin, repo_root, unique_name,
};
use insync_operator::api::{DnsProvider, InSyncCloud};
use kube::api::Api;

/// A kubeconfig for the same API server that authenticates with `token`.
fn token_kubeconfig(token: &str, path: &std::path::Path) -> Result<()> {
    let admin: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(kubeconfig_path())?)?;
    let cluster = admin["clusters"][0]["cluster"].clone();
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": cluster}],
        "users": [{"name": "chart-sa", "user": {"token": token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "chart-sa"}}],
        "current-context": "e2e",
    });
    std::fs::write(path, serde_yaml::to_string(&config)?)?;
    Ok(())
}

#[tokio::test]
async fn chart_installs_and_its_rbac_runs_a_cloud_to_ready_and_no_further() -> Result<()> {
    ensure!(
        !insync_e2e::external_cluster() || std::env::var("INSYNC_E2E_CHART").is_ok(),
        "set INSYNC_E2E_CHART=1 to install the chart into an external cluster"
    );
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "chart").await?;
    common::install_crd().await?;
    let release_ns = unique_name("e2e-chart-sys");
    let release = "isc";
    let chart = repo_root()
        .join("charts/insync-operator")
        .display()
        .to_string();
    let values = ["--set", &format!("watchNamespace={}", ns.name())];

    // The rendered manifests are accepted by the real API server.
    let rendered = helm(
        &[
            &["template", release, &chart, "-n", &release_ns][..],
            &values[..],
        ]
        .concat(),
    )
    .await?;
    kubectl(&["create", "namespace", &release_ns]).await?;
    kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &rendered)
        .await
        .context("the API server refused the chart's manifests")?;

    // helm install (the pod is simulated by kwok and runs nothing).
    helm(
        &[
            &[
                "install",
                release,
                &chart,
                "-n",
                &release_ns,
                "--wait",
                "--timeout",
                "2m",
            ][..],
            &values[..],
        ]
        .concat(),
    )
    .await?;
    let sa = format!("{release}-insync-operator");
    let who = format!("system:serviceaccount:{release_ns}:{sa}");

    // Least privilege, asked of the API server's authorizer.
    let can = |verb: &'static str, resource: &'static str, namespace: String| {
        let who = who.clone();
        async move {
            let out = insync_e2e::kubectl_output(&[
                "auth", "can-i", verb, resource, "-n", &namespace, "--as", &who,
            ])
            .await?;
            Ok::<bool, anyhow::Error>(String::from_utf8_lossy(&out.stdout).trim() == "yes")
        }
    };
    ensure!(
        can("patch", "deployments.apps", ns.name().to_owned()).await?,
        "the operator must patch Deployments in its namespace"
    );
    ensure!(
        can("create", "secrets", ns.name().to_owned()).await?,
        "the operator must create generated Secrets"
    );
    ensure!(
        !can("delete", "persistentvolumeclaims", ns.name().to_owned()).await?,
        "the operator must never delete PVCs"
    );
    for verb in ["patch", "delete"] {
        ensure!(
            !can(verb, "secrets", ns.name().to_owned()).await?,
            "the operator never changes or deletes a Secret, so it may not {verb} one"
        );
    }
    ensure!(
        !can("get", "secrets", "kube-system".to_owned()).await?,
        "namespace mode must not read Secrets elsewhere"
    );
    ensure!(
        !can("patch", "deployments.apps", "kube-system".to_owned()).await?,
        "namespace mode must not write elsewhere"
    );
    ensure!(
        !can("delete", "namespaces", ns.name().to_owned()).await?,
        "the operator has no business deleting namespaces"
    );

    // Run the binary with the chart's own arguments, as the chart's ServiceAccount.
    let deployment: serde_yaml::Value = serde_yaml::Deserializer::from_str(&rendered)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .find(|d: &serde_yaml::Value| d["kind"] == "Deployment")
        .context("the chart renders no Deployment")?;
    let args: Vec<String> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .context("container args")?
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .filter(|a| a != "run" && !a.starts_with("--metrics-addr") && !a.starts_with("--namespace"))
        .collect();
    let token = kubectl(&[
        "create",
        "token",
        &sa,
        "-n",
        &release_ns,
        "--duration",
        "1h",
    ])
    .await?;
    let kubeconfig = std::env::temp_dir().join(format!("{release_ns}.kubeconfig"));
    token_kubeconfig(token.trim(), &kubeconfig)?;
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let kubeconfig_str = kubeconfig.display().to_string();
    let op = Operator::start_with_env(
        ns.name(),
        &arg_refs,
        &[
            ("KUBECONFIG", &kubeconfig_str),
            ("POD_NAMESPACE", &release_ns),
        ],
    )
    .await?;

    let api: Api<InSyncCloud> = ns.api();
    let mut cloud = fcloud(ns.name())?;
    if let Some(dns) = cloud.spec.dns.as_mut() {
        dns.provider = DnsProvider::None;
    }
    cloud.spec.frontend.service.master_node_port = None;
    cloud.spec.frontend.service.storage_node_port = None;
    create(&api, &cloud).await?;
    wait_ready(&api, "fcloud", Duration::from_secs(180), &op).await?;
    let log = std::fs::read_to_string(op.log())?;
    // RBAC's refusal reads `<resource> is forbidden: User "<subject>" cannot <verb> ...`; other
    // refusals that say "forbidden" (the API server refusing a streaming list where its
    // WatchList gate is off, which the operator probes for) are no RBAC matter.
    let refused: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("forbidden: User"))
        .collect();
    ensure!(
        refused.is_empty(),
        "the operator hit a forbidden API call under the chart's RBAC:\n{}",
        refused.join("\n")
    );

    drop(op);
    helm(&["uninstall", release, "-n", &release_ns, "--wait"]).await?;
    kubectl(&["delete", "namespace", &release_ns, "--wait=false"]).await?;
    Ok(())
}
