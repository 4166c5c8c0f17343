//! Harness for the end-to-end tests: finds (or starts) a real Kubernetes control plane.
//!
//! * `KUBECONFIG` set: the tests use that cluster as it is (a kind cluster, a shared cluster).
//! * `KUBECONFIG` unset: the first call to [`cluster`] in a test process runs `e2e/cluster up`
//!   (etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok on loopback; see
//!   docs/e2e.md) and the tests use its admin kubeconfig. `up` is idempotent and takes a file
//!   lock, so parallel tests and parallel test binaries share one cluster.
//!
//! * [`real_node::cluster`] (local control plane only) also brings up one real node
//!   (`e2e/cluster up --real-node`: containerd, kubelet, kube-proxy, CoreDNS) for real pods.
//!
//! Helpers: [`TestNamespace`] (a unique namespace, deleted on drop), [`wait_for`] /
//! [`poll_until`] (polling with a deadline), [`kubectl`] (runs kubectl against the right
//! cluster), [`helm_path`] / [`helm_command`], [`operator_process`] (the operator as a child
//! process, for the tests and the benchmark), [`prom`] (reads Prometheus text).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use tokio::io::AsyncWriteExt;

pub mod operator_process;
pub mod prom;

/// Label put on every namespace made by [`TestNamespace`], to find leftovers:
/// `kubectl delete ns -l insync.dev/e2e=true`.
pub const TEST_NAMESPACE_LABEL: &str = "insync.dev/e2e";

/// Pods with this value in label `app.kubernetes.io/version` become Running but never Ready on
/// the local control plane (a kwok Stage in e2e/kwok/pod-stages.yaml). On other clusters, make
/// such a pod fail its readiness probe instead.
pub const NEVER_READY_VERSION: &str = "0.0.0-never-ready";

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// `e2e/cluster`, the script that manages the local control plane.
pub fn cluster_script() -> PathBuf {
    repo_root().join("e2e").join("cluster")
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Cache of the local control plane's tools: `$INSYNC_E2E_CACHE` or `~/.cache/insync-e2e`.
pub fn cache_dir() -> PathBuf {
    env_path("INSYNC_E2E_CACHE").unwrap_or_else(|| home().join(".cache/insync-e2e"))
}

/// State of the local control plane: `$INSYNC_E2E_STATE` or `~/.cache/insync-e2e/state`.
pub fn state_dir() -> PathBuf {
    env_path("INSYNC_E2E_STATE").unwrap_or_else(|| home().join(".cache/insync-e2e/state"))
}

/// Directory with the pinned `kubectl`, `helm`, `etcd`, ... that `e2e/cluster install-tools` links.
pub fn tools_dir() -> PathBuf {
    cache_dir().join("bin").join("path")
}

/// True when the tests run against a cluster named by `KUBECONFIG` rather than the local one.
pub fn external_cluster() -> bool {
    env_path("KUBECONFIG").is_some()
}

/// The kubeconfig the tests use: `$KUBECONFIG` when set, else the local control plane's.
pub fn kubeconfig_path() -> PathBuf {
    env_path("KUBECONFIG").unwrap_or_else(|| state_dir().join("kubeconfig"))
}

fn tool(name: &str, env: &str) -> PathBuf {
    if let Some(p) = env_path(env) {
        return p;
    }
    let pinned = tools_dir().join(name);
    if pinned.exists() {
        pinned
    } else {
        PathBuf::from(name)
    }
}

/// The `kubectl` to run: `$INSYNC_E2E_KUBECTL`, else the pinned one from the tools dir, else
/// `kubectl` on PATH.
pub fn kubectl_path() -> PathBuf {
    tool("kubectl", "INSYNC_E2E_KUBECTL")
}

/// The `helm` to run: `$INSYNC_E2E_HELM`, else the pinned one from the tools dir, else `helm`
/// on PATH.
pub fn helm_path() -> PathBuf {
    tool("helm", "INSYNC_E2E_HELM")
}

static UP: OnceLock<Result<(), String>> = OnceLock::new();
static UP_REAL_NODE: OnceLock<Result<(), String>> = OnceLock::new();

/// Runs `e2e/cluster ARGS` once per test process (per `cell`); `up` takes a file lock, so
/// parallel test binaries never race.
fn run_cluster_once(cell: &OnceLock<Result<(), String>>, args: &[&str]) -> Result<PathBuf> {
    let result = cell.get_or_init(|| {
        let started = Instant::now();
        let out = std::process::Command::new(cluster_script())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", cluster_script().display()))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            eprintln!(
                "e2e: `e2e/cluster {}` ready in {:.1?}",
                args.join(" "),
                started.elapsed()
            );
            Ok(())
        } else {
            Err(format!(
                "`e2e/cluster {}` failed ({}):\n{stderr}",
                args.join(" "),
                out.status
            ))
        }
    });
    match result {
        Ok(()) => Ok(kubeconfig_path()),
        Err(e) => Err(anyhow!("{e}")),
    }
}

/// Makes sure a cluster is there (once per test process) and returns the kubeconfig path.
fn ensure_cluster_blocking() -> Result<PathBuf> {
    if external_cluster() {
        return Ok(kubeconfig_path());
    }
    if UP_REAL_NODE.get().is_some_and(|r| r.is_ok()) {
        return Ok(kubeconfig_path()); // `up --real-node` is a superset of `up`
    }
    run_cluster_once(&UP, &["up"])
}

/// The real node of the local control plane (`e2e/cluster up --real-node`, see docs/e2e.md
/// "Real node"): containerd + kubelet + kube-proxy + CoreDNS running real containers.
pub mod real_node {
    use anyhow::{Context, Result, bail};
    use kube::Client;

    /// The node's name.
    pub const NODE_NAME: &str = "insync-real-0";
    /// Label (value `"true"`) and taint key (effect `NoSchedule`) of the real node: pods meant
    /// for it need [`pod_spec_fields`] (nodeSelector + toleration); kwok-based tests never
    /// land there.
    pub const REAL_NODE_LABEL: &str = "insync.dev/real-node";
    /// StorageClass of the real node's pre-created `local` volumes (kubelet applies fsGroup to
    /// them, unlike the host-path volumes of the default class `standard`); WaitForFirstConsumer.
    pub const REAL_STORAGE_CLASS: &str = "insync-local";
    /// A busybox image present on the real node (Debian's busybox-static, imported by
    /// `up --real-node`; nothing is ever pulled, so use `imagePullPolicy: Never` or
    /// `IfNotPresent`): `sh`, `httpd`, `nslookup`, `wget`, ...
    pub const BUSYBOX_IMAGE: &str = "registry.k8s.io/insync-e2e/busybox:1.35.0-insync-local";

    /// `nodeSelector` and `tolerations` to merge into a pod spec so it runs on the real node.
    pub fn pod_spec_fields() -> serde_json::Value {
        serde_json::json!({
            "nodeSelector": {REAL_NODE_LABEL: "true"},
            "tolerations": [{"key": REAL_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
        })
    }

    /// A client for the local control plane **with the real node**: the first call in a test
    /// process runs `e2e/cluster up --real-node` (needs root; seconds when warm, near instant
    /// when already up; a file lock serialises parallel test binaries). Fails on an external
    /// cluster (`KUBECONFIG` set): check [`crate::external_cluster`] first and skip.
    pub async fn cluster() -> Result<Client> {
        if crate::external_cluster() {
            bail!("the real node exists only on the local control plane (KUBECONFIG is set)");
        }
        tokio::task::spawn_blocking(|| {
            crate::run_cluster_once(&crate::UP_REAL_NODE, &["up", "--real-node"])
        })
        .await??;
        crate::cluster().await
    }

    /// The node's address (its InternalIP: this host's primary address, where NodePorts answer
    /// besides 127.0.0.1), as `ip -4 route get 1` tells it (that sends nothing).
    pub fn node_ip() -> Result<String> {
        let out = std::process::Command::new("ip")
            .args(["-4", "route", "get", "1"])
            .output()
            .context("running `ip -4 route get 1`")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace();
        while let Some(w) = words.next() {
            if w == "src" {
                return words
                    .next()
                    .map(str::to_owned)
                    .context("no address after `src`");
            }
        }
        bail!("no `src` in `ip -4 route get 1`: {text}")
    }
}

/// A client for the test cluster. Without `KUBECONFIG`, the first call in a test process runs
/// `e2e/cluster up` (seconds when it is already up). Each call builds a new client, so each
/// `#[tokio::test]` (each with its own runtime) gets one of its own.
pub async fn cluster() -> Result<Client> {
    insync_operator::install_crypto_provider();
    let path = tokio::task::spawn_blocking(ensure_cluster_blocking).await??;
    let config = if external_cluster() {
        Config::infer()
            .await
            .context("reading the cluster config from KUBECONFIG")?
    } else {
        let kubeconfig =
            Kubeconfig::read_from(&path).with_context(|| format!("reading {}", path.display()))?;
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
    };
    let client = Client::try_from(config)?;
    Ok(client)
}

/// Polls `check` every 250 ms until it returns `Some(value)`; fails after `timeout` with the
/// description and the last error `check` returned (errors are retried, not fatal).
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last_err = match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if Instant::now() >= deadline {
            return Err(match last_err {
                Some(e) => e.context(format!("timed out after {timeout:?} waiting for {what}")),
                None => anyhow!("timed out after {timeout:?} waiting for {what}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Polls `condition` every 250 ms until it is true; fails after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    poll_until(what, timeout, || {
        let fut = condition();
        async move { Ok(fut.await?.then_some(())) }
    })
    .await
}

/// Checks that `condition` holds on every poll for the whole `duration` (e.g. "stays NotReady").
pub async fn holds_for<F, Fut>(what: &str, duration: Duration, mut condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        if !condition().await? {
            bail!("{what} stopped holding before {duration:?} had passed");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

fn configure(cmd: &mut tokio::process::Command) {
    cmd.env("KUBECONFIG", kubeconfig_path());
    // the pinned tools first on PATH (helm plugins and scripts may call kubectl)
    if tools_dir().exists() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![tools_dir()];
        paths.extend(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(paths) {
            cmd.env("PATH", joined);
        }
    }
    cmd.kill_on_drop(true);
}

/// A `kubectl` command set up for the test cluster (kubeconfig, PATH); run it yourself.
pub fn kubectl_command() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(kubectl_path());
    configure(&mut cmd);
    cmd
}

/// A `helm` command set up for the test cluster (kubeconfig, PATH); run it yourself.
pub fn helm_command() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(helm_path());
    configure(&mut cmd);
    cmd
}

async fn run(mut cmd: tokio::process::Command, stdin: Option<&str>) -> Result<Output> {
    cmd.stdin(if stdin.is_some() {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    });
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input.as_bytes()).await?;
        drop(pipe);
    }
    Ok(child.wait_with_output().await?)
}

fn check_output(what: String, out: Output) -> Result<String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// Runs `kubectl ARGS` against the test cluster; returns stdout, fails with stderr on a
/// non-zero exit.
pub async fn kubectl(args: &[&str]) -> Result<String> {
    let out = kubectl_output(args).await?;
    check_output(format!("kubectl {}", args.join(" ")), out)
}

/// Runs `kubectl ARGS` with `stdin` (e.g. `kubectl(&["apply", "-f", "-"])` and a manifest).
pub async fn kubectl_stdin(args: &[&str], stdin: &str) -> Result<String> {
    let mut cmd = kubectl_command();
    cmd.args(args);
    let out = run(cmd, Some(stdin)).await?;
    check_output(format!("kubectl {}", args.join(" ")), out)
}

/// Runs `kubectl ARGS` and returns its raw output whatever the exit status.
pub async fn kubectl_output(args: &[&str]) -> Result<Output> {
    let mut cmd = kubectl_command();
    cmd.args(args);
    run(cmd, None).await
}

/// Runs `helm ARGS` against the test cluster; returns stdout, fails with stderr.
pub async fn helm(args: &[&str]) -> Result<String> {
    let mut cmd = helm_command();
    cmd.args(args);
    let out = run(cmd, None).await?;
    check_output(format!("helm {}", args.join(" ")), out)
}

/// A short name unique within this machine and run: `<prefix>-<base36>`, a valid DNS label
/// for prefixes of up to 40 characters.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut x = (nanos as u64)
        ^ (u64::from(std::process::id()) << 32)
        ^ u64::from(COUNTER.fetch_add(1, Ordering::Relaxed)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let suffix: String = (0..7)
        .map(|_| {
            let c = alphabet[(x % 36) as usize] as char;
            x /= 36;
            c
        })
        .collect();
    let prefix: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    format!("{}-{suffix}", prefix.trim_matches('-'))
}

/// A namespace of its own for one test, labelled `insync.dev/e2e=true`. Dropping it deletes the
/// namespace (without waiting) unless `INSYNC_E2E_KEEP_NAMESPACES=1`, to look at a failure.
pub struct TestNamespace {
    name: String,
    client: Client,
    deleted: bool,
}

impl TestNamespace {
    /// Creates `e2e-<prefix>-<random>`.
    pub async fn create(client: &Client, prefix: &str) -> Result<Self> {
        let name = unique_name(&format!("e2e-{prefix}"));
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(TEST_NAMESPACE_LABEL.to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(Self {
            name,
            client: client.clone(),
            deleted: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// An `Api<K>` for this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Deletes the namespace and waits until it is gone (at most `timeout`).
    pub async fn delete_and_wait(mut self, timeout: Duration) -> Result<()> {
        self.deleted = true;
        let api = Api::<Namespace>::all(self.client.clone());
        match api.delete(&self.name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let name = self.name.clone();
        wait_for(&format!("namespace {name} to be deleted"), timeout, || {
            let api = api.clone();
            let name = name.clone();
            async move { Ok(api.get_opt(&name).await?.is_none()) }
        })
        .await
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.deleted || std::env::var("INSYNC_E2E_KEEP_NAMESPACES").is_ok_and(|v| v == "1") {
            return;
        }
        // Drop cannot be async and the test's runtime may be shutting down: ask kubectl.
        let _ = std::process::Command::new(kubectl_path())
            .env("KUBECONFIG", kubeconfig_path())
            .args([
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_dns_labels_and_differ() {
        let a = unique_name("e2e-Smoke_Test");
        let b = unique_name("e2e-Smoke_Test");
        assert_ne!(a, b);
        assert!(a.starts_with("e2e-smoke-test-"), "{a}");
        assert!(a.len() <= 63);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }

    #[tokio::test]
    async fn poll_until_times_out_with_the_description() {
        let err = poll_until::<(), _, _>("the impossible", Duration::from_millis(300), || async {
            Ok(None)
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("the impossible"), "{err}");
    }

    #[tokio::test]
    async fn wait_for_returns_once_true() {
        let mut n = 0;
        wait_for("n to reach 3", Duration::from_secs(5), || {
            n += 1;
            let v = n;
            async move { Ok(v >= 3) }
        })
        .await
        .unwrap();
        assert!(n >= 3);
    }
}
