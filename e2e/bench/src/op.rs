//! What the operator process says about itself: its counters and its log.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use insync_e2e::operator_process::OperatorProcess;
use insync_e2e::prom;

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

    /// The counters of `/metrics` and the CPU time of `/proc` now.
    pub async fn take(op: &OperatorProcess) -> Result<Self> {
        let s = op.metrics().await?;
        Ok(Self {
            applied: prom::sum(&s, "insync_operator_objects_applied_total"),
            skipped: prom::sum(&s, "insync_operator_objects_skipped_total"),
            pruned: prom::sum(&s, "insync_operator_objects_pruned_total"),
            reconciles: prom::sum(&s, "insync_operator_reconciles_total"),
            errors: prom::sum(&s, "insync_operator_reconcile_errors_total"),
            reconcile_secs: prom::sum(&s, "insync_operator_reconcile_duration_seconds_sum"),
            cpu_secs: op.cpu_secs()?,
        })
    }
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
