//! Write requests as the API server counts them, for all clients and for the operator alone.

use std::collections::BTreeMap;

use anyhow::Result;
use insync_e2e::prom;

use crate::plane::PlaneArgs;

/// Write requests as the API server counts them: apiserver_request_total, by
/// "VERB group/resource[/subresource]", plus APF dispatches by FlowSchema.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ApiSnapshot {
    pub writes: BTreeMap<String, f64>,
    pub flows: BTreeMap<String, f64>,
}

const WRITE_VERBS: [&str; 6] = [
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];
pub const OP_FLOW_CLOUDS: &str = "insync-bench-op-write-clouds";
pub const OP_FLOW_EVENTS: &str = "insync-bench-op-write-events";
pub const OP_FLOW_CHILDREN: &str = "insync-bench-op-write-children";
pub const OP_FLOW_READ: &str = "insync-bench-op-read";

impl ApiSnapshot {
    pub async fn take(plane: &PlaneArgs) -> Result<Self> {
        let text = plane.kubectl(&["get", "--raw", "/metrics"], None).await?;
        let mut snap = Self::default();
        for s in prom::parse(&text) {
            if s.name == "apiserver_request_total" {
                let verb = s.labels.get("verb").map(String::as_str).unwrap_or("");
                if !WRITE_VERBS.contains(&verb) {
                    continue;
                }
                let l = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
                let mut key = format!("{verb} ");
                if !l("group").is_empty() {
                    key += &format!("{}/", l("group"));
                }
                key += &l("resource");
                if !l("subresource").is_empty() {
                    key += &format!("/{}", l("subresource"));
                }
                *snap.writes.entry(key).or_default() += s.value;
            } else if s.name == "apiserver_flowcontrol_dispatched_requests_total" {
                let fs = s.labels.get("flow_schema").cloned().unwrap_or_default();
                *snap.flows.entry(fs).or_default() += s.value;
            }
        }
        Ok(snap)
    }

    pub fn minus(&self, before: &Self) -> Self {
        let diff = |a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>| {
            a.iter()
                .map(|(k, v)| (k.clone(), v - b.get(k).copied().unwrap_or(0.0)))
                .filter(|(_, v)| *v != 0.0)
                .collect()
        };
        Self {
            writes: diff(&self.writes, &before.writes),
            flows: diff(&self.flows, &before.flows),
        }
    }

    pub fn total_writes(&self) -> f64 {
        self.writes.values().sum()
    }

    pub fn flow(&self, name: &str) -> f64 {
        self.flows.get(name).copied().unwrap_or(0.0)
    }

    /// The operator's writes (its three write FlowSchemas).
    pub fn operator_writes(&self) -> f64 {
        self.flow(OP_FLOW_CLOUDS) + self.flow(OP_FLOW_EVENTS) + self.flow(OP_FLOW_CHILDREN)
    }
}
