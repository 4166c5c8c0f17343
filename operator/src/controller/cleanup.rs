//! Deletion: remove the cloud's DNS records, then release it to garbage collection. Children
//! go with their owner; PVCs carry no owner reference, so data survives.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::warn;

use super::act;
use super::context::Context;
use super::decide::Note;
use super::dns::{self, FINALIZER};
use super::error::Error;
use super::finalizer;
use super::status::{self, Cond};
use crate::api::{InSyncCloud, InSyncCloudStatus, condition};

/// Removes the cloud's DNS records, then its finalizer. A cloud whose records cannot be
/// removed keeps the finalizer and says why.
pub async fn cleanup(cloud: &InSyncCloud, ctx: &Context) -> Result<Action, Error> {
    if !cloud.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    match dns::remove_on_delete(ctx.dns.as_ref(), cloud).await {
        Ok(()) => {}
        Err(blocked @ dns::RemoveError::Blocked { .. }) => {
            let message = blocked.to_string();
            // Dropping the finalizer now would leave the records in Route53 for good.
            warn!(%message, "DNS records cannot be removed; keeping the finalizer");
            act::publish_all(ctx, cloud, &[Note::warning("DNSCleanupBlocked", &message)]).await;
            let previous = cloud.status.clone().unwrap_or_default();
            let status = blocked_status(cloud, message, Timestamp::now());
            act::write_status(cloud, ctx, &previous, &status).await?;
            return Ok(Action::requeue(Duration::from_secs(300)));
        }
        Err(dns::RemoveError::Failed(source)) => {
            return Err(Error::Dns {
                cloud: format!("{}/{}", cloud.cloud_namespace(), cloud.cloud_name()),
                source,
            });
        }
    }
    let removed = Note::normal("DNSRemoved", "removed the cloud's DNS records");
    act::publish_all(ctx, cloud, &[removed]).await;
    if let Some(patch) = finalizer::remove(cloud.finalizers(), FINALIZER) {
        act::patch_finalizers(cloud, ctx, &patch).await?;
    }
    Ok(Action::await_change())
}

/// The status of a deleted cloud whose records cannot be removed: DNSReady says why, the rest
/// stays as it was.
fn blocked_status(cloud: &InSyncCloud, message: String, now: Timestamp) -> InSyncCloudStatus {
    let previous = cloud.status.clone().unwrap_or_default();
    let cond = Cond::new(condition::DNS_READY, false, "CannotRemoveRecords", message);
    let mut conds: Vec<_> = previous
        .conditions
        .iter()
        .filter(|c| c.type_ != condition::DNS_READY)
        .cloned()
        .collect();
    conds.extend(status::conditions(
        &previous.conditions,
        &[cond],
        cloud.metadata.generation,
        now,
    ));
    InSyncCloudStatus {
        conditions: conds,
        ..previous
    }
}
