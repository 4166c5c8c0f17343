//! The cloud's NetworkPolicies on the real node, where `e2e/cluster up --real-node` runs a
//! policy enforcer (kube-router's policy controller; `INSYNC_E2E_ENFORCE_POLICIES=0` runs the
//! node without it). With it, a pod of another namespace cannot open a connection to the cloud's
//! MySQL, Bynamo, MinIO or CloudMaster, but reaches the front end; and the cloud, all of whose
//! pods sit behind a default deny of ingress and egress, is Ready and answers `/health`
//! through the front end. Without it, the same test checks that the cloud works and the front
//! end answers, and says that nothing was enforced.

mod common;
#[path = "common/real_pods.rs"]
mod real_pods;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use insync_e2e::real_node::{self, BUSYBOX_IMAGE};
use insync_e2e::{TestNamespace, kubectl, kubectl_stdin, poll_until, unique_name};
use insync_operator::api::InSyncCloud;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

const VERSION: &str = "5.9.1-r4178";
/// Node ports of this test's cloud (real_cloud and real_rollback use others).
const MASTER_NODE_PORT: u16 = 30743;
const STORAGE_NODE_PORT: u16 = 30763;

/// Whether the real node runs the policy enforcer now.
fn enforced() -> bool {
    std::process::Command::new("pgrep")
        .args(["-x", "kube-router"])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// The cloud's pod of `component`: its address and its main container's first port.
async fn target(pods: &Api<Pod>, component: &str) -> Result<(String, i32)> {
    let list = pods
        .list(&ListParams::default().labels(&format!(
            "app.kubernetes.io/instance=fcloud,app.kubernetes.io/component={component}"
        )))
        .await?;
    let pod = list
        .items
        .into_iter()
        .find(|p| p.metadata.deletion_timestamp.is_none())
        .with_context(|| format!("no {component} pod"))?;
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .with_context(|| format!("{component} has no address"))?;
    let port = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.ports.as_ref())
        .and_then(|p| p.first())
        .map(|p| p.container_port)
        .with_context(|| format!("{component} has no port"))?;
    Ok((ip, port))
}

/// Whether the probe pod of `namespace` can open a TCP connection to `ip:port`: busybox's `nc`
/// says "can't connect" when the connection is refused, reset or times out; a connection that
/// opens is held until `timeout` ends it.
async fn can_connect(namespace: &str, ip: &str, port: i32) -> Result<bool> {
    let script = format!(
        "out=$(timeout 5 nc -w 3 {ip} {port} </dev/null 2>&1); case \"$out\" in *\"can't connect\"*) echo closed ;; *) echo open ;; esac"
    );
    let answer = kubectl(&["-n", namespace, "exec", "probe", "--", "sh", "-c", &script]).await?;
    Ok(answer.trim().ends_with("open"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_namespace_reaches_only_the_front_end() -> Result<()> {
    let client = real_node::cluster().await?;
    common::install_crd().await?;
    let enforced = enforced();
    let ns = real_pods::restricted_namespace(&client, "policy").await?;
    let release_ns = unique_name("e2e-policy-sys");
    let operator = real_pods::install_operator(&release_ns, ns.name(), None).await?;
    let clouds: Api<InSyncCloud> = ns.api();
    let mut cloud =
        real_pods::real_fcloud(ns.name(), VERSION, MASTER_NODE_PORT, STORAGE_NODE_PORT)?;
    // No DNS here: this test is about the network inside the cluster.
    cloud.spec.dns = None;
    clouds.create(&PostParams::default(), &cloud).await?;
    real_pods::wait_cloud_ready(&clouds, VERSION).await?;
    let health = poll_until(
        "/health through the front end",
        real_pods::READY_TIMEOUT,
        || async {
            Ok(
                match real_pods::http(MASTER_NODE_PORT, "GET", "/health", "").await {
                    Ok((200, body)) => Some(body),
                    _ => None,
                },
            )
        },
    )
    .await?;
    eprintln!("enforcer on: {enforced}; /health through the front end: {health}");

    // A pod of another namespace on the same node.
    let intruder = TestNamespace::create(&client, "intruder").await?;
    let placement = real_node::pod_spec_fields();
    let probe = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "probe"},
        "spec": {
            "nodeSelector": placement["nodeSelector"],
            "tolerations": placement["tolerations"],
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsUser": 1000, "runAsNonRoot": true},
            "containers": [{
                "name": "probe", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                "command": ["sleep", "3600"],
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true},
            }],
        },
    });
    kubectl_stdin(
        &["-n", intruder.name(), "apply", "-f", "-"],
        &probe.to_string(),
    )
    .await?;
    let probes: Api<Pod> = intruder.api();
    poll_until("the probe pod to run", Duration::from_secs(120), || async {
        let pod = probes.get_opt("probe").await?;
        Ok(pod.filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")))
    })
    .await?;

    let pods: Api<Pod> = ns.api();
    let mut seen = Vec::new();
    for component in ["mysql", "bynamo", "minio", "cloudmaster", "haproxy"] {
        let (ip, port) = target(&pods, component).await?;
        let open = can_connect(intruder.name(), &ip, port).await?;
        eprintln!(
            "from another namespace to {component} {ip}:{port}: {}",
            if open { "open" } else { "closed" }
        );
        seen.push((component, open));
    }
    for (component, open) in &seen {
        if *component == "haproxy" {
            ensure!(
                *open,
                "the front end must be reachable from anywhere: {seen:?}"
            );
        } else if enforced {
            ensure!(
                !*open,
                "{component} is reachable from another namespace: {seen:?}"
            );
        }
    }
    if !enforced {
        eprintln!("no policy enforcer runs on the real node: reachability was only reported");
    }
    // The cloud still answers behind its default deny.
    let (code, _) = real_pods::http(MASTER_NODE_PORT, "GET", "/health", "").await?;
    ensure!(code == 200, "/health {code} after the probes");

    intruder.delete_and_wait(Duration::from_secs(120)).await?;
    operator.uninstall().await?;
    ns.delete_and_wait(Duration::from_secs(180)).await?;
    Ok(())
}
