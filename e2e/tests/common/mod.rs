//! Shared by the operator's e2e tests: the operator as a real process, the CRD, cloud fixtures.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use insync_e2e::{external_cluster, kubeconfig_path, kubectl, repo_root, wait_for};
use insync_operator::api::InSyncCloud;
use kube::api::{Api, PostParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OnceCell;

/// The operator binary built next to this test (`cargo build -p insync-operator` first).
pub fn operator_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test binary has no target dir")?;
    let bin = dir.join("insync-operator");
    ensure!(
        bin.exists(),
        "{} is missing: run `cargo build -p insync-operator` before the e2e tests",
        bin.display()
    );
    Ok(bin)
}

static CRD: OnceCell<()> = OnceCell::const_new();

/// Installs the committed CRD once per test process and waits until it is served.
pub async fn install_crd() -> Result<()> {
    CRD.get_or_try_init(|| async {
        let crd = repo_root().join("crds/insyncclouds.insync.dev.yaml");
        kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &crd.display().to_string(),
        ])
        .await?;
        kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd/insyncclouds.insync.dev",
            "--timeout=60s",
        ])
        .await?;
        Ok::<(), anyhow::Error>(())
    })
    .await?;
    Ok(())
}

/// `insync-operator run` as a child process, watching one namespace.
pub struct Operator {
    child: tokio::process::Child,
    pub metrics_port: u16,
    pub log: PathBuf,
}

impl Operator {
    /// Starts the operator for `namespace` with extra flags.
    pub async fn start(namespace: &str, extra: &[&str]) -> Result<Self> {
        Self::start_with_env(namespace, extra, &[]).await
    }

    /// Starts the operator for `namespace` with extra flags and environment.
    pub async fn start_with_env(
        namespace: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        install_crd().await?;
        let port = free_port()?;
        let log = std::env::temp_dir().join(format!("insync-operator-{namespace}-{port}.log"));
        let file = std::fs::File::create(&log)?;
        let mut cmd = tokio::process::Command::new(operator_binary()?);
        cmd.args([
            "run",
            "--namespace",
            namespace,
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .args(extra)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info,insync_operator=debug,kube=warn")
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file))
        .kill_on_drop(true);
        if !external_cluster() && !env.iter().any(|(k, _)| *k == "KUBECONFIG") {
            cmd.env("KUBECONFIG", kubeconfig_path());
        }
        let child = cmd.spawn().context("starting insync-operator")?;
        let op = Self {
            child,
            metrics_port: port,
            log,
        };
        wait_for(
            "the operator's /readyz",
            Duration::from_secs(60),
            || async { Ok(op.get("/readyz").await.is_ok_and(|(code, _)| code == 200)) },
        )
        .await
        .with_context(|| op.log_tail())?;
        Ok(op)
    }

    /// GET on the operator's metrics port: (status code, body).
    pub async fn get(&self, path: &str) -> Result<(u16, String)> {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).await?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes())
            .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        let code = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((code, body))
    }

    /// A counter or gauge from /metrics (summed over labels).
    pub async fn metric(&self, name: &str) -> Result<f64> {
        let (_, body) = self.get("/metrics").await?;
        Ok(body
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// The last lines of the operator's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "operator log ({}):\n{}",
            self.log.display(),
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
    }

    /// Kills the process (SIGKILL: the harshest restart).
    pub async fn kill(mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// Stops the process with SIGTERM and waits for it to exit.
    pub async fn terminate(mut self) -> Result<std::process::ExitStatus> {
        let pid = self.child.id().context("no pid")?;
        let status = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await?;
        ensure!(status.success(), "kill -TERM failed");
        let exit = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .context("operator did not stop on SIGTERM")??;
        Ok(exit)
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The fcloud example, moved into `namespace`, with DNS off unless the test turns it on.
pub fn fcloud(namespace: &str) -> Result<InSyncCloud> {
    let text = std::fs::read_to_string(repo_root().join("examples/fcloud.yaml"))?;
    let mut cloud: InSyncCloud = serde_yaml::from_str(&text)?;
    cloud.metadata.namespace = Some(namespace.to_owned());
    Ok(cloud)
}

/// The fcloud example in `namespace` without DNS and with its node ports left to Kubernetes, so
/// tests can run side by side.
pub fn fcloud_no_dns(namespace: &str) -> Result<InSyncCloud> {
    let mut cloud = fcloud(namespace)?;
    cloud.spec.frontend.service.master_node_port = None;
    cloud.spec.frontend.service.storage_node_port = None;
    if let Some(dns) = cloud.spec.dns.as_mut() {
        dns.provider = insync_operator::api::DnsProvider::None;
    }
    Ok(cloud)
}

/// Lets volumes of the local cluster's default StorageClass grow (its default may not).
pub async fn allow_volume_expansion() -> Result<()> {
    kubectl(&[
        "patch",
        "storageclass",
        "standard",
        "--type=merge",
        "-p",
        r#"{"allowVolumeExpansion": true}"#,
    ])
    .await?;
    Ok(())
}

/// Creates the cloud.
pub async fn create(api: &Api<InSyncCloud>, cloud: &InSyncCloud) -> Result<InSyncCloud> {
    Ok(api.create(&PostParams::default(), cloud).await?)
}

/// The status of a condition, or "" when absent.
pub fn condition(cloud: &InSyncCloud, type_: &str) -> (String, String, String) {
    cloud
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

/// Waits until the cloud is Ready=True for its current generation.
pub async fn wait_ready(
    api: &Api<InSyncCloud>,
    name: &str,
    timeout: Duration,
    op: &Operator,
) -> Result<InSyncCloud> {
    let result = insync_e2e::poll_until(
        &format!("InSyncCloud {name} to be Ready"),
        timeout,
        || async {
            let cloud = api.get(name).await?;
            let ready = condition(&cloud, "Ready").0 == "True";
            let current = cloud.status.as_ref().and_then(|s| s.observed_generation)
                == cloud.metadata.generation;
            Ok((ready && current).then_some(cloud))
        },
    )
    .await;
    match result {
        Ok(c) => Ok(c),
        Err(e) => {
            let status = api
                .get(name)
                .await
                .ok()
                .and_then(|c| c.status)
                .map(|s| serde_yaml::to_string(&s).unwrap_or_default());
            bail!(
                "{e:#}\nstatus:\n{}\n{}",
                status.unwrap_or_default(),
                op.log_tail()
            )
        }
    }
}
