//! Smoke test of the real node (`e2e/cluster up --real-node`, see docs/e2e.md "Real node"): a
//! real container runs there as a non-root user with a read-only root filesystem, passes its
//! own readiness probe, writes its `insync-local` volume, answers through a ClusterIP and a
//! NodePort Service from this host, and resolves service names through the cluster DNS (and
//! nothing else).
//!
//! Run: `CARGO_TARGET_DIR=$HOME/.cache/insync-operator/target cargo test -p insync-e2e --test real_node`
//! (needs root; skipped when KUBECONFIG names another cluster).

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use insync_e2e::real_node::{self, BUSYBOX_IMAGE, NODE_NAME, REAL_STORAGE_CLASS};
use insync_e2e::{
    TestNamespace, external_cluster, kubectl, kubectl_output, kubectl_stdin, poll_until,
};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod, Service};
use kube::Api;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_secs(120);
const UID: i64 = 10001;
const MARKER: &str = "insync-real-node-ok";

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// GET http://ADDR/PATH with a plain HTTP/1.0 request; returns the body on a 200.
async fn http_get(addr: &str, path: &str) -> Result<String> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        anyhow::Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    let resp = tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .with_context(|| format!("GET {addr}{path} timed out"))??;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    ensure!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "GET {addr}{path}: {}",
        head.lines().next().unwrap_or("")
    );
    Ok(body.to_string())
}

/// Polls GET until the body carries the marker (kube-proxy programs rules within a second or two).
async fn wait_http(addr: String) -> Result<()> {
    poll_until(&format!("{MARKER} from http://{addr}/"), TIMEOUT, || {
        let addr = addr.clone();
        async move {
            let body = http_get(&addr, "/index.html").await?;
            Ok(body.contains(MARKER).then_some(()))
        }
    })
    .await
}

async fn exec(ns: &str, cmd: &[&str]) -> Result<std::process::Output> {
    let mut args = vec!["-n", ns, "exec", "web", "--"];
    args.extend_from_slice(cmd);
    kubectl_output(&args).await
}

#[tokio::test]
async fn real_pod_runs_serves_and_resolves() -> Result<()> {
    if external_cluster() {
        eprintln!("skipped: the real node exists only on the local control plane");
        return Ok(());
    }
    let client = real_node::cluster().await?;
    let ns = TestNamespace::create(&client, "real-node").await?;
    let n = ns.name();

    let placement = real_node::pod_spec_fields();
    let manifests = [
        json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {"storageClassName": REAL_STORAGE_CLASS, "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}},
        }),
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "nodeSelector": placement["nodeSelector"],
                "tolerations": placement["tolerations"],
                "securityContext": {"runAsUser": UID, "runAsGroup": UID, "fsGroup": UID, "runAsNonRoot": true},
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "web", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                    "command": ["/bin/sh", "-c", format!(
                        "echo {MARKER} > /data/index.html && echo wrote /data/index.html as $(id -u) \
                         && exec httpd -f -v -p 8080 -h /data")],
                    "ports": [{"containerPort": 8080}],
                    "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false},
                    "readinessProbe": {"httpGet": {"path": "/index.html", "port": 8080}, "periodSeconds": 1},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            },
        }),
        json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "site"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        }),
        json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-np"},
            "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        }),
    ];
    let yaml: Vec<String> = manifests.iter().map(|m| m.to_string()).collect();
    kubectl_stdin(&["-n", n, "apply", "-f", "-"], &yaml.join("\n---\n")).await?;

    // Ready by its own readiness probe, executed by the real kubelet
    let pods: Api<Pod> = ns.api();
    let pod = poll_until("pod web Ready on the real node", TIMEOUT, || {
        let pods = pods.clone();
        async move { Ok(pods.get_opt("web").await?.filter(pod_ready)) }
    })
    .await?;
    let spec = pod.spec.as_ref().context("pod spec")?;
    ensure!(
        spec.node_name.as_deref() == Some(NODE_NAME),
        "scheduled on {:?}",
        spec.node_name
    );
    let pod_ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .context("pod IP")?;
    ensure!(
        pod_ip.starts_with("10.244."),
        "pod IP {pod_ip} is not in the pod range"
    );

    // kubectl logs and exec go through the kubelet
    let logs = kubectl(&["-n", n, "logs", "web"]).await?;
    ensure!(
        logs.contains(&format!("wrote /data/index.html as {UID}")),
        "logs: {logs}"
    );
    let id = exec(n, &["id", "-u"]).await?;
    ensure!(
        String::from_utf8_lossy(&id.stdout).trim() == UID.to_string(),
        "id -u: {id:?}"
    );
    let touch = exec(n, &["touch", "/rootfs-write-test"]).await?;
    ensure!(!touch.status.success(), "the root filesystem is writable");
    ensure!(
        String::from_utf8_lossy(&touch.stderr).contains("Read-only file system"),
        "touch /: {touch:?}"
    );

    // the volume is a local PV on the node, owned by the pod's fsGroup, with the file in it
    let pvc = ns.api::<PersistentVolumeClaim>().get("data").await?;
    let pv_name = pvc
        .spec
        .and_then(|s| s.volume_name)
        .context("PVC not bound")?;
    let pv = Api::<PersistentVolume>::all(client.clone())
        .get(&pv_name)
        .await?;
    let path = pv
        .spec
        .as_ref()
        .and_then(|s| s.local.as_ref())
        .map(|l| PathBuf::from(&l.path));
    let path = path.context("not a local PV")?;
    let meta = std::fs::metadata(&path).with_context(|| format!("{}", path.display()))?;
    ensure!(
        i64::from(meta.gid()) == UID,
        "{} has gid {}",
        path.display(),
        meta.gid()
    );
    let written = std::fs::read_to_string(path.join("index.html"))?;
    ensure!(written.trim() == MARKER, "PV content: {written:?}");
    let file_uid = std::fs::metadata(path.join("index.html"))?.uid();
    ensure!(
        i64::from(file_uid) == UID,
        "index.html is owned by {file_uid}"
    );

    // ClusterIP and NodePort (node IP and 127.0.0.1) answer from this host
    let svcs: Api<Service> = ns.api();
    let cluster_ip = svcs
        .get("site")
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .context("ClusterIP")?;
    let node_port = svcs
        .get("web-np")
        .await?
        .spec
        .and_then(|s| s.ports)
        .and_then(|p| p.first().and_then(|p| p.node_port))
        .context("nodePort")?;
    let node = Api::<Node>::all(client.clone()).get(NODE_NAME).await?;
    let node_ip = node
        .status
        .and_then(|s| s.addresses)
        .and_then(|a| a.into_iter().find(|a| a.type_ == "InternalIP"))
        .map(|a| a.address)
        .context("node InternalIP")?;
    ensure!(
        node_ip == real_node::node_ip()?,
        "node InternalIP {node_ip} is not this host's address"
    );
    wait_http(format!("{pod_ip}:8080")).await?;
    wait_http(format!("{cluster_ip}:80")).await?;
    wait_http(format!("{node_ip}:{node_port}")).await?;
    wait_http(format!("127.0.0.1:{node_port}")).await?;

    // the cluster DNS answers cluster names, and nothing else
    let fqdn = format!("site.{n}.svc.cluster.local");
    let out = exec(n, &["nslookup", &fqdn]).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && text.contains(&cluster_ip),
        "nslookup {fqdn}: {out:?}"
    );
    let out = exec(n, &["nslookup", "kubernetes.default.svc.cluster.local"]).await?;
    ensure!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("10.96.0.1"),
        "nslookup kubernetes.default: {out:?}"
    );
    // a short name through the pod's search path, then the Service's ClusterIP, from the pod
    let out = exec(n, &["wget", "-q", "-O", "-", "http://site/index.html"]).await?;
    ensure!(
        String::from_utf8_lossy(&out.stdout).contains(MARKER),
        "wget http://site/: {out:?}"
    );
    let out = exec(n, &["nslookup", "example.com"]).await?;
    if out.status.success() {
        bail!("an outside name resolved inside the pod: {out:?}");
    }

    ns.delete_and_wait(TIMEOUT).await
}
