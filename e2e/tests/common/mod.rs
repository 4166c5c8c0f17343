//! Shared by the operator's e2e tests: the operator as a real process, the CRD, cloud fixtures.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use insync_e2e::operator_process::{OperatorCommand, OperatorProcess};
use insync_e2e::{external_cluster, kubeconfig_path, kubectl, repo_root, unique_name};
use insync_operator::api::InSyncCloud;
use kube::api::{Api, PostParams};
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

/// Installs the committed CRDs (clouds and backups, as the chart does) once per test process
/// and waits until they are served.
pub async fn install_crd() -> Result<()> {
    CRD.get_or_try_init(|| async {
        let crds = repo_root().join("crds");
        kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &crds.display().to_string(),
        ])
        .await?;
        kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd/insyncclouds.insync.dev",
            "crd/insynccloudbackups.insync.dev",
            "--timeout=60s",
        ])
        .await?;
        Ok::<(), anyhow::Error>(())
    })
    .await?;
    Ok(())
}

/// `insync-operator run` as a child process watching one namespace of the shared cluster (the
/// process itself is [`OperatorProcess`]; this adds the CRD and the cluster's kubeconfig).
pub struct Operator(OperatorProcess);

impl std::ops::Deref for Operator {
    type Target = OperatorProcess;

    fn deref(&self) -> &OperatorProcess {
        &self.0
    }
}

impl Operator {
    /// Starts the operator for `namespace` with extra flags.
    pub async fn start(namespace: &str, extra: &[&str]) -> Result<Self> {
        Self::start_with_env(namespace, extra, &[]).await
    }

    /// Starts the operator for `namespace` with extra flags and environment (a `KUBECONFIG`
    /// there replaces the test cluster's).
    pub async fn start_with_env(
        namespace: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        install_crd().await?;
        let log = std::env::temp_dir().join(format!("{}.log", unique_name("insync-operator")));
        let mut command = OperatorCommand::new(operator_binary()?, log)
            .args(["--namespace", namespace])
            .args(extra.iter().copied());
        if !external_cluster() {
            command = command.kubeconfig(kubeconfig_path());
        }
        for (key, value) in env {
            command = command.env(key, value);
        }
        Ok(Self(command.start().await?))
    }

    /// Stops the process (SIGTERM) and starts it again with the same command; waits for
    /// `/readyz`.
    pub async fn restart(self) -> Result<Self> {
        Ok(Self(self.0.restart().await?))
    }

    /// Kills the process (SIGKILL: the harshest restart).
    pub async fn kill(self) -> Result<()> {
        Ok(self.0.kill().await?)
    }

    /// Stops the process with SIGTERM and waits for it to exit.
    pub async fn terminate(self) -> Result<std::process::ExitStatus> {
        Ok(self.0.terminate().await?)
    }
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
