//! The bench's own control plane: `e2e/cluster` with a state directory and ports of its own, so
//! the shared e2e cluster (state `~/.cache/insync-e2e/state`, apiserver 16443) is never touched.
//! The built binaries are shared through the e2e cache.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::{Node, PersistentVolume};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

use crate::quantity;

/// Where the bench's control plane lives and listens.
#[derive(Debug, Clone, clap::Args)]
pub struct PlaneArgs {
    /// State directory of the bench's control plane (never the shared e2e one).
    #[arg(long, default_value_os_t = default_state())]
    pub state: PathBuf,
    #[arg(long, default_value_t = 17443)]
    pub apiserver_port: u16,
    #[arg(long, default_value_t = 13379)]
    pub etcd_port: u16,
    #[arg(long, default_value_t = 13380)]
    pub etcd_peer_port: u16,
    #[arg(long, default_value_t = 17257)]
    pub kcm_port: u16,
    #[arg(long, default_value_t = 17259)]
    pub scheduler_port: u16,
    #[arg(long, default_value_t = 17250)]
    pub kwok_port: u16,
}

fn default_state() -> PathBuf {
    insync_e2e::cache_dir().join("bench-state")
}

impl PlaneArgs {
    /// Refuses the shared e2e cluster's state and ports.
    pub fn check(&self) -> Result<()> {
        let shared = insync_e2e::cache_dir().join("state");
        ensure!(
            self.state != shared,
            "--state {} is the shared e2e cluster's state; the bench needs its own",
            self.state.display()
        );
        let shared_ports = [16443, 12379, 12380, 16257, 16259, 16250];
        for p in [
            self.apiserver_port,
            self.etcd_port,
            self.etcd_peer_port,
            self.kcm_port,
            self.scheduler_port,
            self.kwok_port,
        ] {
            ensure!(
                !shared_ports.contains(&p),
                "port {p} belongs to the shared e2e cluster"
            );
        }
        Ok(())
    }

    /// The environment `e2e/cluster` reads.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("INSYNC_E2E_STATE", self.state.display().to_string()),
            ("INSYNC_E2E_APISERVER_PORT", self.apiserver_port.to_string()),
            ("INSYNC_E2E_ETCD_PORT", self.etcd_port.to_string()),
            ("INSYNC_E2E_ETCD_PEER_PORT", self.etcd_peer_port.to_string()),
            ("INSYNC_E2E_KCM_PORT", self.kcm_port.to_string()),
            ("INSYNC_E2E_SCHEDULER_PORT", self.scheduler_port.to_string()),
            ("INSYNC_E2E_KWOK_PORT", self.kwok_port.to_string()),
        ]
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.state.join("kubeconfig")
    }

    /// Runs `e2e/cluster <args>` against the bench's state; its log lines go to our stderr.
    pub async fn script(&self, args: &[&str]) -> Result<()> {
        let status = tokio::process::Command::new(insync_e2e::cluster_script())
            .args(args)
            .envs(self.env())
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .status()
            .await
            .context("running e2e/cluster")?;
        ensure!(
            status.success(),
            "e2e/cluster {} failed: {status}",
            args.join(" ")
        );
        Ok(())
    }

    /// A client with the admin kubeconfig of the bench's control plane.
    pub async fn client(&self) -> Result<Client> {
        let path = self.kubeconfig();
        let kubeconfig =
            Kubeconfig::read_from(&path).with_context(|| format!("reading {}", path.display()))?;
        let config =
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// kubectl with the bench's admin kubeconfig; returns stdout.
    pub async fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new(insync_e2e::kubectl_path());
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("starting kubectl")?;
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().context("kubectl stdin")?;
            pipe.write_all(text.as_bytes()).await?;
            drop(pipe);
        }
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Fresh control plane: wipe whatever a previous bench left, then `up`.
    pub async fn fresh(&self) -> Result<()> {
        self.teardown().await?;
        self.script(&["up"]).await
    }

    /// `down --purge`, and removes the host-path volume directories this plane provisioned
    /// (they live under /tmp/hostpath_pv, outside the state directory).
    pub async fn teardown(&self) -> Result<()> {
        let mut dirs = Vec::new();
        if self.kubeconfig().exists()
            && let Ok(client) = self.client().await
        {
            let pvs: Api<PersistentVolume> = Api::all(client);
            if let Ok(Ok(list)) =
                tokio::time::timeout(Duration::from_secs(10), pvs.list(&ListParams::default()))
                    .await
            {
                dirs = list
                    .items
                    .iter()
                    .filter_map(|pv| pv.spec.as_ref()?.host_path.as_ref())
                    .map(|h| PathBuf::from(&h.path))
                    .filter(|p| {
                        p.starts_with("/tmp/hostpath_pv/") && p != Path::new("/tmp/hostpath_pv/")
                    })
                    .collect();
            }
        }
        if self.state.exists() {
            self.script(&["down", "--purge"]).await?;
        }
        for dir in &dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
        if !dirs.is_empty() {
            eprintln!("bench: removed {} host-path volume directories", dirs.len());
        }
        Ok(())
    }

    /// Gives the operator an identity of its own (see operator-identity.yaml) and returns a
    /// kubeconfig for it, written next to the admin one.
    pub async fn operator_kubeconfig(&self) -> Result<PathBuf> {
        let manifest = include_str!("../operator-identity.yaml");
        self.kubectl(&["apply", "--server-side", "-f", "-"], Some(manifest))
            .await?;
        let token = self
            .kubectl(
                &[
                    "create",
                    "token",
                    "insync-bench-operator",
                    "-n",
                    "default",
                    "--duration=48h",
                ],
                None,
            )
            .await?;
        let admin = std::fs::read_to_string(self.kubeconfig())?;
        let mut config: serde_yaml::Value = serde_yaml::from_str(&admin)?;
        let users = config
            .get_mut("users")
            .and_then(|u| u.as_sequence_mut())
            .context("kubeconfig without users")?;
        for user in users {
            user["user"] = serde_yaml::to_value(json!({"token": token.trim()}))?;
        }
        let path = self.state.join("operator.kubeconfig");
        std::fs::write(&path, serde_yaml::to_string(&config)?)?;
        Ok(path)
    }

    /// Installs the committed CRDs (clouds and backups) and waits until both are served: the
    /// operator runs as it does in a cluster, with its backup controller and its caches (without
    /// the backup CRD it turns backups off and measures less than it costs).
    pub async fn install_crds(&self) -> Result<()> {
        let crds = insync_e2e::repo_root().join("crds");
        self.kubectl(
            &["apply", "--server-side", "-f", &crds.display().to_string()],
            None,
        )
        .await?;
        for crd in ["insyncclouds.insync.dev", "insynccloudbackups.insync.dev"] {
            // Polled rather than `kubectl wait`: that fails outright ("accessor error: <nil>")
            // when it reads the CRD before the API server has written any condition.
            insync_e2e::wait_for(
                &format!("the CRD {crd} to be Established"),
                Duration::from_secs(60),
                || async {
                    let status = self
                        .kubectl(
                            &[
                                "get",
                                &format!("crd/{crd}"),
                                "-o",
                                r#"jsonpath={.status.conditions[?(@.type=="Established")].status}"#,
                            ],
                            None,
                        )
                        .await?;
                    Ok(status.trim() == "True")
                },
            )
            .await?;
        }
        Ok(())
    }
}

/// What a set of pods asks of the nodes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Demand {
    pub pods: f64,
    pub cpu_milli: f64,
    pub memory: f64,
}

/// Capacity of one extra bench node. Same labels and annotations as e2e/kwok/nodes.yaml (so kwok
/// manages it and the pod stages apply); bigger than those (256 CPU, 2Ti) so that fewer nodes
/// are needed: every node is a lease and status writer of its own.
const BENCH_NODE_CPU: &str = "256";
const BENCH_NODE_MEMORY: &str = "2Ti";
const BENCH_NODE_PODS: &str = "1000";
const FAKE: &str = "kwok.x-k8s.io/node";

/// Adds `kwok-bench-<i>` nodes until the fake nodes can hold `demand` (with 10% headroom); waits
/// until they are Ready. Returns how many it added.
pub async fn ensure_capacity(client: &Client, demand: Demand) -> Result<usize> {
    let nodes: Api<Node> = Api::all(client.clone());
    let fake = ListParams::default().labels(&format!("{FAKE}=fake"));
    let mut have = Demand::default();
    for node in nodes.list(&fake).await? {
        let alloc = node.status.and_then(|s| s.allocatable).unwrap_or_default();
        let q = |k: &str| alloc.get(k).map(|q| q.0.clone()).unwrap_or_default();
        have.pods += quantity::parse(&q("pods")).unwrap_or(0.0);
        have.cpu_milli += quantity::parse(&q("cpu")).unwrap_or(0.0) * 1000.0;
        have.memory += quantity::parse(&q("memory")).unwrap_or(0.0);
    }
    let per = Demand {
        pods: quantity::parse(BENCH_NODE_PODS)?,
        cpu_milli: quantity::parse(BENCH_NODE_CPU)? * 1000.0,
        memory: quantity::parse(BENCH_NODE_MEMORY)?,
    };
    let short = |want: f64, have: f64, per: f64| ((want * 1.1 - have) / per).ceil().max(0.0);
    let extra = short(demand.pods, have.pods, per.pods)
        .max(short(demand.cpu_milli, have.cpu_milli, per.cpu_milli))
        .max(short(demand.memory, have.memory, per.memory)) as usize;
    let zones = ["e2e-a", "e2e-b", "e2e-c"];
    for i in 0..extra {
        let name = format!("kwok-bench-{i}");
        let node = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {FAKE: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    FAKE: "fake",
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "node-role.kubernetes.io/agent": "",
                    "topology.kubernetes.io/region": "e2e",
                    "topology.kubernetes.io/zone": zones[i % zones.len()],
                },
            },
            "status": {
                "allocatable": {"cpu": BENCH_NODE_CPU, "memory": BENCH_NODE_MEMORY, "ephemeral-storage": "1Ti", "pods": BENCH_NODE_PODS},
                "capacity": {"cpu": BENCH_NODE_CPU, "memory": BENCH_NODE_MEMORY, "ephemeral-storage": "1Ti", "pods": BENCH_NODE_PODS},
            },
        });
        nodes
            .patch(
                &name,
                &PatchParams::apply("insync-bench").force(),
                &Patch::Apply(&node),
            )
            .await?;
    }
    if extra > 0 {
        insync_e2e::wait_for(
            "the bench nodes to be Ready",
            Duration::from_secs(120),
            || {
                let nodes = nodes.clone();
                let fake = fake.clone();
                async move {
                    let list = nodes.list(&fake).await?;
                    let ready = list.iter().filter(|n| node_ready(n)).count();
                    Ok(ready == list.items.len())
                }
            },
        )
        .await?;
    }
    Ok(extra)
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
