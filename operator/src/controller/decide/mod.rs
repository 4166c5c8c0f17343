//! Decide: from what was observed to what to do ([`plan()`], in [`plan`](mod@plan)), and from what
//! was done to what to report ([`conclude()`], in [`conclude`](mod@conclude)). Pure: no client and no clock (the clock reading is part of the
//! observation), so every branch is table-tested below.
//!
//! A reconcile is `observe → plan → act → conclude → record`: the status a reconcile writes
//! depends on what its writes did (a refused object, withheld credentials, the DNS syncer's
//! answer), so deciding comes in two halves around acting.

mod conclude;
mod plan;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kube::runtime::events::EventType;

use super::apply::ApplyReport;
use super::dns::{DnsIntent, DnsOutcome};
use super::error::Error;
use super::gate::Hold;
use super::observe::Observed;
use super::restore::{self};
use super::rollout::{RolloutDecision, TargetWorkload};
use crate::api::validate::{self, InvalidCloud};
use crate::api::{InSyncCloud, InSyncCloudStatus};
use crate::dns::AllowList;
use crate::render::{self, Desired, RenderOptions};

pub use conclude::{conclude, refuse};
pub use plan::plan;

/// An event to publish on the cloud.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Normal or Warning.
    pub type_: EventType,
    /// CamelCase reason.
    pub reason: &'static str,
    /// What happened, for a person.
    pub message: String,
}

impl Note {
    pub(super) fn normal(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            type_: EventType::Normal,
            reason,
            message: message.into(),
        }
    }

    pub(super) fn warning(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            type_: EventType::Warning,
            reason,
            message: message.into(),
        }
    }
}

/// The operator-wide settings a decision depends on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Settings<'a> {
    /// The DNS allow-list when the operator publishes to Route53, `None` when it runs without.
    pub dns: Option<&'a AllowList>,
    /// The image restore Jobs run (the operator's own), `None` when the operator was not told.
    pub runner_image: Option<&'a str>,
}

/// What a reconcile of a live, valid cloud will do.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The finalizer patch to send first, when the cloud needs the DNS finalizer.
    pub add_finalizer: Option<json_patch::Patch>,
    /// Objects to apply; `None` while the cloud is paused.
    pub apply: Option<Vec<Desired>>,
    /// Whether to scan the caches for objects the cloud no longer needs.
    pub prune: bool,
    /// The rollout step.
    pub rollout: RolloutDecision,
    /// Target tag per workload.
    pub targets: BTreeMap<String, TargetWorkload>,
    /// The workloads as observed.
    pub observed: Observed,
    /// `spec.upgrade.healthTimeout`.
    pub health_timeout: Duration,
    /// The DNS step.
    pub dns: DnsIntent,
    /// Events owed before acting (a rollout step starting, blocking or completing).
    pub notes: Vec<Note>,
    /// The gate holding a version change, if any.
    pub hold: Option<Hold>,
    /// Objects to leave alone when pruning although `apply` does not list them, as
    /// `(kind, name)`: the workloads held as they are live, and the ConfigMaps live workloads
    /// mount (a held workload's pods restarting still find their own config).
    pub keep: BTreeSet<(String, String)>,
    /// The restore step: which workloads may exist yet, the restore Job to create, and
    /// `status.restore`.
    pub restore: restore::Decision,
}

/// What acting on a plan did.
#[derive(Debug)]
pub struct Acted {
    /// The apply pass, when the plan applied anything; `Err` when it could not run at all.
    pub apply: Option<Result<ApplyReport, Error>>,
    /// The DNS step's outcome.
    pub dns: DnsOutcome,
}

/// What to record after acting.
#[derive(Debug)]
pub struct Conclusion {
    /// The status to write (written only when it differs from the previous one).
    pub status: InSyncCloudStatus,
    /// Events to publish.
    pub notes: Vec<Note>,
    /// The finalizer patch that releases the cloud, when its DNS records are proven gone.
    pub remove_finalizer: Option<json_patch::Patch>,
    /// When to look again without being woken.
    pub requeue: Duration,
    /// The error to return after recording (so the error policy backs off).
    pub error: Option<Error>,
}

/// The unpinned render of a valid spec, or why the spec is refused.
pub fn wish(cloud: &InSyncCloud) -> Result<Result<Vec<Desired>, InvalidCloud>, Error> {
    if let Err(invalid) = validate::validate(cloud) {
        return Ok(Err(invalid));
    }
    match render::render(cloud, &RenderOptions::default()) {
        Err(render::RenderError::Unsafe(value)) => Ok(Err(value.into_invalid(cloud))),
        rendered => Ok(Ok(rendered?)),
    }
}
