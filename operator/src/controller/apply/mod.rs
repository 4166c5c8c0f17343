//! Writing children: server-side apply under one field manager, but only when the live object
//! (its projection in the cache, see [`super::cache`]) differs from what render wants. A steady
//! cluster costs no writes.
//!
//! [`ssa`]: the diff and the apply call; [`credentials`]: generated Secrets and their data;
//! [`volumes`]: claim growth and StatefulSet re-creation.

mod credentials;
mod ssa;
mod volumes;

use std::collections::BTreeSet;

use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::{Client, ResourceExt};

pub use super::cache::kinds::FIELD_MANAGER;
use super::cache::kinds::{ChildKind, cached, kind_for};
use super::error::Error;
use crate::render::{ApplyPolicy, Desired};

/// What one apply pass did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Objects written (created or patched).
    pub applied: Vec<String>,
    /// Objects already as desired.
    pub unchanged: usize,
    /// Objects deleted because the cloud no longer needs them.
    pub pruned: Vec<String>,
    /// Writes that failed. One refused object (say, a node port already taken) must not keep
    /// the rest of the cloud from converging, so the pass goes on and reports them all.
    pub failed: Vec<Error>,
    /// Generated credentials deliberately not created because data they would lock out
    /// exists, each with what happened and the way out (see [`lost_credentials`]).
    pub withheld: Vec<String>,
}

/// What writing one object did.
pub(super) enum Outcome {
    Written,
    Unchanged,
    /// Generated credentials not created over existing data: why, and the way out.
    Withheld(String),
    /// A StatefulSet whose volume claim templates changed was deleted with its pods orphaned;
    /// the next reconcile creates it again with the new templates and it adopts the pods.
    Recreating,
}

/// Writes the desired objects that differ from the cache, then prunes the ones no longer
/// needed (when `prune`), leaving alone the objects in `keep` as `(kind, name)` (workloads the
/// rollout holds as they are live, and the ConfigMaps live workloads mount). `owner_uid` identifies this cloud's children among
/// the cached objects. A write the API server refuses is recorded in the report and the pass
/// goes on.
pub async fn apply_all(
    client: &Client,
    kinds: &[ChildKind],
    namespace: &str,
    owner_uid: &str,
    desired: &[Desired],
    prune: bool,
    keep: &BTreeSet<(String, String)>,
) -> Result<ApplyReport, Error> {
    let mut report = ApplyReport::default();
    let mut wanted = keep.clone();
    for item in desired {
        let kind = kind_for(kinds, &item.object)?;
        let name = item.object.name_any();
        wanted.insert((kind.resource.kind.clone(), name.clone()));
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &*kind.resource);
        let live = cached(kind, namespace, &name);
        let label = format!("{}/{name}", kind.resource.kind);
        let outcome = match (item.policy, live.as_deref()) {
            (ApplyPolicy::CreateOnly, None) => create_unless_data(client, &api, &item.object).await,
            (ApplyPolicy::CreateOnly, Some(live)) => grow_claim(&api, &item.object, live).await,
            (ApplyPolicy::Apply, live) => {
                let sent = with_hash(&item.object)?;
                match live {
                    Some(live) if up_to_date(&sent, live)? => Ok(Outcome::Unchanged),
                    Some(live) if claim_templates_differ(&sent, live) => {
                        recreate_statefulset(client, namespace, &sent).await
                    }
                    Some(live) if scales_up(&sent, live) => {
                        // Claims a scale-down kept come back as they are: grow them first.
                        match grow_statefulset_claims(client, namespace, &sent).await {
                            Ok(()) => server_side_apply(&api, &name, &sent).await,
                            Err(e) => Err(e),
                        }
                    }
                    _ => server_side_apply(&api, &name, &sent).await,
                }
            }
        };
        match outcome {
            Ok(Outcome::Written) => report.applied.push(label),
            Ok(Outcome::Recreating) => report.applied.push(format!(
                "{label} (recreating for new volume claim templates)"
            )),
            Ok(Outcome::Unchanged) => report.unchanged += 1,
            Ok(Outcome::Withheld(why)) => report.withheld.push(why),
            Err(source) => report.failed.push(Error::Write {
                object: label,
                source,
            }),
        }
    }

    for kind in kinds.iter().filter(|k| prune && k.prunable) {
        for live in kind.store.state() {
            if !live.controlled_by(owner_uid)
                || live.namespace.as_deref() != Some(namespace)
                || live.deleting
            {
                continue;
            }
            let name = live.name.to_string();
            if wanted.contains(&(kind.resource.kind.clone(), name.clone())) {
                continue;
            }
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &*kind.resource);
            let label = format!("{}/{name}", kind.resource.kind);
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => report.pruned.push(label),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => report.failed.push(Error::Write {
                    object: label,
                    source,
                }),
            }
        }
    }
    Ok(report)
}

pub(super) async fn create(
    api: &Api<DynamicObject>,
    desired: &DynamicObject,
) -> Result<Outcome, kube::Error> {
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.create(&params, &fill_generated(desired)).await {
        Ok(_) => Ok(Outcome::Written),
        // The cache lags a moment behind a create: already there is what we want.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Outcome::Unchanged),
        Err(e) => Err(e),
    }
}

pub use credentials::lost_credentials;
use credentials::{create_unless_data, fill_generated};
use ssa::server_side_apply;
pub use ssa::{APPLIED_HASH, first_difference, is_subset, up_to_date, with_hash};
use volumes::*;
