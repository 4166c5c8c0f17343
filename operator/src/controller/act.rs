//! Act: every write a reconcile makes. [`act`] carries out a [`Plan`] (finalizer, children,
//! DNS) and [`record`] writes what [`super::decide::conclude`] made of it (events, finalizer
//! release, status).

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::Event;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::apply::{self, FIELD_MANAGER};
use super::context::Context;
use super::decide::{Acted, Conclusion, Note, Plan};
use super::dns::DnsResult;
use super::error::Error;
use crate::api::{InSyncCloud, InSyncCloudStatus, UpgradePhase, UpgradeStatus};
use crate::telemetry::CloudLabels;

/// Carries out the plan: adds the finalizer, starts the restore Job it asks for, applies the
/// children, hands DNS to the syncer.
pub async fn act(cloud: &InSyncCloud, ctx: &Context, plan: &Plan) -> Result<Acted, Error> {
    if let Some(patch) = &plan.add_finalizer {
        patch_finalizers(cloud, ctx, patch).await?;
    }
    publish_all(ctx, cloud, &plan.notes).await;
    if let Some(job) = &plan.restore.create {
        create_job(cloud, ctx, job).await?;
    }

    let apply = match &plan.apply {
        None => None,
        Some(desired) => Some(apply_children(cloud, ctx, desired, plan).await),
    };

    let result = match &ctx.dns {
        Some(wiring) => wiring.execute(&plan.dns, &ctx.metrics).await,
        None => DnsResult::Reported,
    };
    Ok(Acted {
        apply,
        dns: plan.dns.clone().outcome(result),
    })
}

/// Creates a restore Job; one created by an earlier reconcile (the Job cache had not seen it
/// yet) is left as it is and followed.
async fn create_job(cloud: &InSyncCloud, ctx: &Context, job: &Job) -> Result<(), Error> {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), cloud.cloud_namespace());
    match jobs.create(&PostParams::default(), job).await {
        Ok(_) => {
            info!(job = ?job.metadata.name, "restore Job created");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(source) => Err(Error::Api {
            action: "create a Job",
            source,
        }),
    }
}

async fn apply_children(
    cloud: &InSyncCloud,
    ctx: &Context,
    desired: &[crate::render::Desired],
    plan: &Plan,
) -> Result<apply::ApplyReport, Error> {
    let namespace = cloud.cloud_namespace();
    let uid = cloud.uid().unwrap_or_default();
    let prune = plan.prune;
    let report = apply::apply_all(
        &ctx.client,
        &ctx.kinds,
        namespace,
        &uid,
        desired,
        prune,
        &plan.keep,
    )
    .await?;
    ctx.metrics
        .objects_applied
        .inc_by(report.applied.len() as u64);
    ctx.metrics.objects_skipped.inc_by(report.unchanged as u64);
    ctx.metrics
        .objects_pruned
        .inc_by(report.pruned.len() as u64);
    if !report.applied.is_empty() {
        info!(applied = ?report.applied, "applied");
    }
    if !report.pruned.is_empty() {
        info!(pruned = ?report.pruned, "pruned");
    }
    if !report.withheld.is_empty() {
        warn!(message = %report.withheld.join("; "), "generated credentials withheld over existing data");
    }
    // The set of objects only changes with the spec: scanning the caches for orphans is
    // needed once per generation, not on every status-driven wake-up.
    if prune && report.failed.is_empty() {
        ctx.pruned(&uid, cloud.metadata.generation);
    }
    Ok(report)
}

/// Records the conclusion: events, the finalizer release, then the status.
pub async fn record(
    cloud: &InSyncCloud,
    ctx: &Context,
    conclusion: &Conclusion,
) -> Result<(), Error> {
    publish_all(ctx, cloud, &conclusion.notes).await;
    if let Some(patch) = &conclusion.remove_finalizer {
        // DNS is not wanted and the records are gone: nothing is left to clean up.
        patch_finalizers(cloud, ctx, patch).await?;
    }
    let previous = cloud.status.clone().unwrap_or_default();
    write_status(cloud, ctx, &previous, &conclusion.status).await
}

/// Sets the cloud's `upgrade_phase` gauge.
pub fn record_phase(cloud: &InSyncCloud, ctx: &Context, upgrade: Option<&UpgradeStatus>) {
    let number = match upgrade.map(|u| u.phase) {
        None | Some(UpgradePhase::Complete) => 0,
        Some(UpgradePhase::Datastores) => 1,
        Some(UpgradePhase::CloudMaster) => 2,
        Some(UpgradePhase::Nodes) => 3,
        Some(UpgradePhase::Frontend) => 4,
        Some(UpgradePhase::Blocked) => 5,
        Some(UpgradePhase::Waiting) => 6,
        Some(UpgradePhase::RollingBack) => 7,
        Some(UpgradePhase::RolledBack) => 8,
    };
    ctx.metrics
        .upgrade_phase
        .get_or_create(&CloudLabels {
            namespace: cloud.cloud_namespace().to_owned(),
            name: cloud.cloud_name().to_owned(),
        })
        .set(number);
}

/// Sends a finalizer JSON patch (see [`super::finalizer`]).
pub async fn patch_finalizers(
    cloud: &InSyncCloud,
    ctx: &Context,
    patch: &json_patch::Patch,
) -> Result<(), Error> {
    api(cloud, ctx)
        .patch_metadata(
            cloud.cloud_name(),
            &PatchParams::default(),
            &Patch::Json::<()>(patch.clone()),
        )
        .await
        .map_err(|source| cloud_error(cloud, source))?;
    Ok(())
}

/// Writes status only when it differs from what is there: a steady cloud costs no write.
pub async fn write_status(
    cloud: &InSyncCloud,
    ctx: &Context,
    previous: &InSyncCloudStatus,
    status: &InSyncCloudStatus,
) -> Result<(), Error> {
    if previous == status {
        return Ok(());
    }
    let patch =
        json!({"apiVersion": "insync.dev/v1alpha1", "kind": "InSyncCloud", "status": status});
    api(cloud, ctx)
        .patch_status(
            cloud.cloud_name(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| cloud_error(cloud, source))?;
    Ok(())
}

/// Publishes events on the cloud; a failed event is logged, never fatal.
pub async fn publish_all(ctx: &Context, cloud: &InSyncCloud, notes: &[Note]) {
    for note in notes {
        let event = Event {
            type_: note.type_,
            reason: note.reason.into(),
            note: Some(note.message.chars().take(1000).collect()),
            action: note.reason.into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &cloud.object_ref(&())).await {
            warn!(error = %e, "cannot publish event");
        }
    }
}

fn api(cloud: &InSyncCloud, ctx: &Context) -> Api<InSyncCloud> {
    Api::namespaced(ctx.client.clone(), cloud.cloud_namespace())
}

fn cloud_error(cloud: &InSyncCloud, source: kube::Error) -> Error {
    Error::Cloud {
        cloud: format!("{}/{}", cloud.cloud_namespace(), cloud.cloud_name()),
        source,
    }
}
