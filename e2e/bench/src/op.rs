//! `insync-operator run` as a child process: its metrics port, /proc figures and log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::prom;

pub struct Operator {
    child: tokio::process::Child,
    pub pid: u32,
    pub metrics_port: u16,
    pub log: PathBuf,
}

/// The operator's own counters at one moment.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct OpSnapshot {
    pub applied: f64,
    pub skipped: f64,
    pub pruned: f64,
    pub reconciles: f64,
    pub errors: f64,
    /// Seconds spent inside reconciles, summed over the concurrent workers.
    pub reconcile_secs: f64,
    /// user + system CPU seconds of the process so far.
    pub cpu_secs: f64,
}

impl OpSnapshot {
    pub fn minus(&self, before: &Self) -> Self {
        Self {
            applied: self.applied - before.applied,
            skipped: self.skipped - before.skipped,
            pruned: self.pruned - before.pruned,
            reconciles: self.reconciles - before.reconciles,
            errors: self.errors - before.errors,
            reconcile_secs: self.reconcile_secs - before.reconcile_secs,
            cpu_secs: self.cpu_secs - before.cpu_secs,
        }
    }
}

impl Operator {
    /// Starts `binary run` watching all namespaces, with its own kubeconfig, and waits for /readyz.
    pub async fn start(
        binary: &Path,
        kubeconfig: &Path,
        concurrency: u16,
        rust_log: &str,
        log: PathBuf,
    ) -> Result<Self> {
        let metrics_port = free_port()?;
        let file = std::fs::File::create(&log)?;
        let child = tokio::process::Command::new(binary)
            .args([
                "run",
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
                "--concurrency",
                &concurrency.to_string(),
            ])
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", rust_log)
            .env_remove("WATCH_NAMESPACE")
            .env_remove("LEADER_ELECT")
            .env_remove("DNS_OWNER_ID")
            .env_remove("AWS_ENDPOINT_URL_ROUTE_53")
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id().context("operator has no pid")?;
        let op = Self {
            child,
            pid,
            metrics_port,
            log,
        };
        insync_e2e::wait_for(
            "the operator's /readyz",
            Duration::from_secs(60),
            || async { Ok(op.get("/readyz").await.is_ok_and(|(code, _)| code == 200)) },
        )
        .await
        .with_context(|| format!("operator log: {}", op.log.display()))?;
        Ok(op)
    }

    async fn get(&self, path: &str) -> Result<(u16, String)> {
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

    pub async fn snapshot(&self, ticks_per_sec: f64) -> Result<OpSnapshot> {
        let (code, body) = self.get("/metrics").await?;
        ensure!(code == 200, "operator /metrics answered {code}");
        let s = prom::parse(&body);
        Ok(OpSnapshot {
            applied: prom::sum(&s, "insync_operator_objects_applied_total"),
            skipped: prom::sum(&s, "insync_operator_objects_skipped_total"),
            pruned: prom::sum(&s, "insync_operator_objects_pruned_total"),
            reconciles: prom::sum(&s, "insync_operator_reconciles_total"),
            errors: prom::sum(&s, "insync_operator_reconcile_errors_total"),
            reconcile_secs: prom::sum(&s, "insync_operator_reconcile_duration_seconds_sum"),
            cpu_secs: cpu_ticks(self.pid)? / ticks_per_sec,
        })
    }

    /// (VmHWM, VmRSS) in MiB.
    pub fn memory_mib(&self) -> Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let kb = |key: &str| -> f64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Ok((kb("VmHWM:") / 1024.0, kb("VmRSS:") / 1024.0))
    }

    /// SIGTERM, wait up to 30 s, then kill.
    pub async fn stop(mut self) -> Result<()> {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        Ok(())
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn cpu_ticks(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // the command name (field 2) may hold spaces: count fields after its closing parenthesis
    let rest = stat.rsplit_once(')').context("odd /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime field 15
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    Ok(utime + stime)
}

/// Clock ticks per second for /proc/<pid>/stat (`getconf CLK_TCK`, 100 when unknown).
pub fn ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// What the operator's log says it wrote and why, from byte `from` on.
#[derive(Debug, Default, serde::Serialize)]
pub struct LogSummary {
    /// "Kind/<cloud>-suffix" → writes logged by `applied`.
    pub applied: BTreeMap<String, u64>,
    /// "<object> <field path>" → `live object differs from desired` lines.
    pub differs: BTreeMap<String, u64>,
    pub warnings: u64,
    pub errors: u64,
    /// Cloud → seconds of the day (UTC) of its first `applied` line.
    #[serde(skip)]
    pub first_applied: BTreeMap<String, f64>,
}

pub fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

pub fn summarize_log(path: &Path, from: u64, to: u64) -> Result<LogSummary> {
    let bytes = std::fs::read(path)?;
    let end = (to as usize).min(bytes.len());
    let start = (from as usize).min(end);
    let text = strip_ansi(&String::from_utf8_lossy(&bytes[start..end]));
    let mut out = LogSummary::default();
    for line in text.lines() {
        if line.contains(" WARN ") {
            out.warnings += 1;
        }
        if line.contains(" ERROR ") {
            out.errors += 1;
        }
        if line.contains("live object differs from desired") {
            let object = field(line, "object=").unwrap_or("?");
            let path = field(line, "field=").unwrap_or("?");
            *out.differs
                .entry(format!("{} {}", generalize(object), path))
                .or_default() += 1;
        }
        if let Some(i) = line.find("applied=[") {
            if let (Some(cloud), Some(t)) = (field(line, "cloud="), day_secs(line)) {
                let cloud = cloud
                    .trim_end_matches(['}', ':'])
                    .trim_matches('"')
                    .to_owned();
                out.first_applied.entry(cloud).or_insert(t);
            }
            let list = &line[i + "applied=[".len()..];
            let list = &list[..list.find(']').unwrap_or(list.len())];
            for item in list.split(", ") {
                let item = item.trim().trim_matches('"');
                if !item.is_empty() {
                    *out.applied.entry(generalize(item)).or_default() += 1;
                }
            }
        }
    }
    Ok(out)
}

/// Removes terminal colour codes (the operator's text log has them even into a file).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Seconds of the day (UTC) of a log line that starts with an RFC 3339 timestamp.
fn day_secs(line: &str) -> Option<f64> {
    let t = line.split_whitespace().next()?.split_once('T')?.1;
    let t = t.trim_end_matches('Z');
    let mut parts = t.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Seconds of the day (UTC) now.
pub fn now_day_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() % 86_400.0)
        .unwrap_or(0.0)
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let i = line.find(key)?;
    line[i + key.len()..].split_whitespace().next()
}

/// Replaces the bench's cloud names (`fcloud-0042`) with `<cloud>` so objects group by kind.
pub fn generalize(name: &str) -> String {
    let mut out = String::new();
    let mut rest = name;
    while let Some(i) = rest.find("fcloud-") {
        let after = &rest[i + "fcloud-".len()..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            out.push_str(&rest[..i + "fcloud-".len()]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..i]);
        out.push_str("<cloud>");
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalizes_cloud_names() {
        assert_eq!(
            generalize("Deployment/fcloud-0042-node-1"),
            "Deployment/<cloud>-node-1"
        );
        assert_eq!(generalize("fcloud-x"), "fcloud-x");
    }

    #[test]
    fn reads_applied_and_differs() {
        let dir = std::env::temp_dir().join(format!("insync-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("op.log");
        std::fs::write(&log, "2025-01-01T00:00:01.5Z DEBUG reconcile{cloud=a}: live object differs from desired object=fcloud-0001-haproxy field=.spec.replicas\n\u{1b}[2m2025-01-01T00:01:02.5Z\u{1b}[0m  INFO reconcile{namespace=\"b\" \u{1b}[3mcloud\u{1b}[0m\u{1b}[2m=\u{1b}[0m\"fcloud-0001\"}: applied \u{1b}[3mapplied\u{1b}[0m\u{1b}[2m=\u{1b}[0m[\"Deployment/fcloud-0001-haproxy\", \"Service/fcloud-0001-node\"]\n").unwrap();
        let s = summarize_log(&log, 0, u64::MAX).unwrap();
        assert_eq!(s.differs["<cloud>-haproxy .spec.replicas"], 1);
        assert_eq!(s.applied["Deployment/<cloud>-haproxy"], 1);
        assert_eq!(s.applied["Service/<cloud>-node"], 1);
        assert_eq!(s.first_applied["fcloud-0001"], 62.5);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
