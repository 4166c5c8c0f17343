//! One reconcile, as a screen: wish → observe → plan → act → conclude → record.
//!
//! - [`decide::wish`]: the spec, validated and rendered unpinned (pure);
//! - [`observe::observe`]: every read, from the caches;
//! - [`decide::plan`]: what to write (pure);
//! - [`act::act`]: the writes (finalizer, children, DNS);
//! - [`decide::conclude`]: status, events and requeue from what the writes did (pure);
//! - [`act::record`]: events, finalizer release, status.
//!
//! Deletion takes its own short path in [`cleanup`].

use std::sync::Arc;
use std::time::Instant;

use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::warn;

use super::act;
use super::cleanup;
use super::context::Context;
use super::decide::{self, Settings};
use super::error::Error;
use super::observe;
use crate::api::InSyncCloud;

/// The controller's reconcile entry point.
#[tracing::instrument(skip_all, fields(namespace = guard.namespace().unwrap_or_default(), cloud = guard.name_any()))]
pub async fn reconcile(
    guard: Arc<DeserializeGuard<InSyncCloud>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let cloud = match &guard.0 {
        Ok(cloud) => cloud,
        Err(e) => {
            // A malformed object must not stall the others: report it and wait for a change.
            warn!(error = %e, "InSyncCloud does not match the schema; waiting for it to be fixed");
            return Ok(Action::await_change());
        }
    };
    // Writes are only safe once every cache has listed what exists; the controller keeps
    // polling the watches while this waits.
    ctx.synced.wait().await;
    let result = reconcile_cloud(cloud, &ctx).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

/// Backoff policy: wait for a spec change on invalid input, back off exponentially otherwise.
pub fn error_policy(
    guard: Arc<DeserializeGuard<InSyncCloud>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics
        .errors
        .get_or_create(&crate::telemetry::ErrorLabels {
            kind: error.metric_label().into(),
        })
        .inc();
    warn!(cloud = %guard.name_any(), error = %error, "reconcile failed");
    if !error.is_transient() {
        return Action::await_change();
    }
    let key = ObjectRef::from_obj(&*guard).erase();
    Action::requeue(ctx.backoff.next(&key))
}

async fn reconcile_cloud(cloud: &InSyncCloud, ctx: &Context) -> Result<Action, Error> {
    if cloud.meta().deletion_timestamp.is_some() {
        return cleanup::cleanup(cloud, ctx).await;
    }
    let settings = Settings {
        dns: ctx.dns.as_ref().map(|w| w.allowed()),
        runner_image: ctx.runner_image.as_deref(),
    };
    let wished = match decide::wish(cloud)? {
        Ok(wished) => wished,
        Err(invalid) => {
            let seen = observe::observe(cloud, ctx, None).await;
            act::record(cloud, ctx, &decide::refuse(cloud, &invalid, &seen)).await?;
            return Err(invalid.into());
        }
    };
    let seen = observe::observe(cloud, ctx, Some(&wished)).await;
    let plan = decide::plan(settings, cloud, wished, &seen)?;
    let acted = act::act(cloud, ctx, &plan).await?;
    let mut conclusion = decide::conclude(cloud, &seen, &plan, acted);
    act::record_phase(cloud, ctx, conclusion.status.upgrade.as_ref());
    act::record(cloud, ctx, &conclusion).await?;
    match conclusion.error.take() {
        // Recorded in status above; returning it makes error_policy back off.
        Some(e) => Err(e),
        None => Ok(Action::requeue(conclusion.requeue)),
    }
}
