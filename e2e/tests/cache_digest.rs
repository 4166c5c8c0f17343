//! The child caches keep a digest of the fields the operator owns instead of whole objects
//! (`controller::cache::digest`). That is only sound if the real API server stores exactly
//! what the digest expects: these tests apply every object render produces for a cloud, with
//! quantities written the way the API server rewrites them, read each back (by get and by
//! list, as a restarted operator does) and compare digests; then change objects the ways
//! people do and check the digest notices.
//!
//! Run: `cargo test -p insync-e2e --test cache_digest`.

mod common;

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use insync_e2e::{TestNamespace, cluster, kubectl};
use insync_operator::api::InSyncCloud;
use insync_operator::controller::apply::{FIELD_MANAGER, up_to_date, with_hash};
use insync_operator::controller::cache::{self, Child};
use insync_operator::render::{self, ApplyPolicy, Desired, RenderOptions};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::json;

/// A cloud of the fcloud example in `ns`, its quantities spelt the way the API server rewrites
/// them (`5120Mi` is stored as `5Gi`, `1000m` as `1`).
async fn cloud_with_odd_quantities(client: &Client, ns: &TestNamespace) -> Result<InSyncCloud> {
    common::install_crd().await?;
    let mut cloud = serde_json::to_value(common::fcloud_no_dns(ns.name())?)?;
    let resources = json!({"requests": {"cpu": "1000m", "memory": "5120Mi"},
                           "limits": {"memory": "10240Mi"}});
    cloud["spec"]["master"]["resources"] = resources.clone();
    cloud["spec"]["nodes"]["resources"] = resources;
    cloud["spec"]["nodes"]["storage"]["size"] = json!("5120Mi");
    cloud["spec"]["database"]["managed"]["storage"]["size"] = json!("5120Mi");
    let cloud: InSyncCloud = serde_json::from_value(cloud)?;
    let api: Api<InSyncCloud> = Api::namespaced(client.clone(), ns.name());
    // Created for real: the children's owner references point at it.
    Ok(api.create(&PostParams::default(), &cloud).await?)
}

fn resource_of(object: &DynamicObject) -> Result<ApiResource> {
    let types = object
        .types
        .as_ref()
        .context("rendered object without a kind")?;
    let gvk = GroupVersionKind::try_from(types)?;
    // Every kind render produces is a plain plural of its kind.
    Ok(ApiResource::from_gvk(&gvk))
}

fn api_for(client: &Client, ns: &str, object: &DynamicObject) -> Result<Api<DynamicObject>> {
    Ok(Api::namespaced_with(
        client.clone(),
        ns,
        &resource_of(object)?,
    ))
}

/// Writes every rendered object the way the operator does: server-side apply (with the
/// applied-hash annotation) under its field manager, create-only objects by POST. Returns
/// each object as sent.
async fn write_all(
    client: &Client,
    ns: &str,
    desired: &[Desired],
) -> Result<Vec<(DynamicObject, ApplyPolicy)>> {
    let mut sent = Vec::new();
    for item in desired {
        let api = api_for(client, ns, &item.object)?;
        let name = item.object.name_any();
        let object = match item.policy {
            ApplyPolicy::Apply => {
                let object = with_hash(&item.object)?;
                api.patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&object),
                )
                .await
                .with_context(|| format!("applying {name}"))?;
                object
            }
            ApplyPolicy::CreateOnly => {
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                };
                api.create(&params, &item.object)
                    .await
                    .with_context(|| format!("creating {name}"))?;
                item.object.clone()
            }
        };
        sent.push((object, item.policy));
    }
    Ok(sent)
}

async fn live(client: &Client, ns: &str, sent: &DynamicObject) -> Result<Child> {
    let resource = resource_of(sent)?;
    let object = api_for(client, ns, sent)?.get(&sent.name_any()).await?;
    Ok(cache::project(&resource.kind, object, FIELD_MANAGER))
}

fn label(object: &DynamicObject) -> String {
    let kind = object
        .types
        .as_ref()
        .map(|t| t.kind.as_str())
        .unwrap_or_default();
    format!("{kind}/{}", object.name_any())
}

#[tokio::test]
async fn every_applied_child_reads_back_with_the_digest_it_was_sent_with() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "digest").await?;
    let cloud = cloud_with_odd_quantities(&client, &ns).await?;
    let desired = render::render(&cloud, &RenderOptions::default())?;
    let sent = write_all(&client, ns.name(), &desired).await?;

    let mut kinds_checked = BTreeSet::new();
    for (object, policy) in &sent {
        let child = live(&client, ns.name(), object).await?;
        match policy {
            ApplyPolicy::Apply => {
                ensure!(
                    up_to_date(object, &child)?,
                    "{}: the live object's owned fields hash differently from what was sent",
                    label(object)
                );
                kinds_checked.insert(object.types.clone().map(|t| t.kind).unwrap_or_default());
            }
            // Never compared: created once, then only grown (claims) or left alone (Secrets).
            ApplyPolicy::CreateOnly => ensure!(
                child.owned.is_some(),
                "{}: the creator owns fields",
                label(object)
            ),
        }
    }
    let expected: BTreeSet<String> = [
        "ConfigMap",
        "Deployment",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
        "StatefulSet",
    ]
    .map(str::to_owned)
    .into();
    ensure!(
        kinds_checked == expected,
        "kinds checked: {kinds_checked:?}"
    );

    // The requested sizes, read in the watch, are the amounts asked for, however spelt.
    let claims: Vec<&DynamicObject> = sent
        .iter()
        .map(|(o, _)| o)
        .filter(|o| {
            o.types
                .as_ref()
                .is_some_and(|t| t.kind == "PersistentVolumeClaim")
        })
        .collect();
    ensure!(!claims.is_empty(), "render made no claims");
    for claim in claims {
        let child = live(&client, ns.name(), claim).await?;
        let asked = claim
            .data
            .pointer("/spec/resources/requests/storage")
            .context("claim size")?;
        // The size as sent, parsed the same way (`5120Mi`), against the stored one (`5Gi`).
        let sent = cache::project("PersistentVolumeClaim", claim.clone(), FIELD_MANAGER);
        ensure!(
            child.storage().is_some() && child.storage() == sent.storage(),
            "{}: {:?} vs {asked}",
            label(claim),
            child.storage()
        );
    }

    // A restarted operator lists what exists: list items (no apiVersion/kind on them) must
    // project to the same digests as single reads.
    for (object, policy) in sent.iter().filter(|(_, p)| *p == ApplyPolicy::Apply) {
        let _ = policy;
        let resource = resource_of(object)?;
        let listed = api_for(&client, ns.name(), object)?
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .find(|o| o.name_any() == object.name_any())
            .context("listed")?;
        let child = cache::project(&resource.kind, listed, FIELD_MANAGER);
        ensure!(
            up_to_date(object, &child)?,
            "{}: listed, the digest differs",
            label(object)
        );
    }
    ns.delete_and_wait(std::time::Duration::from_secs(120))
        .await
        .ok();
    Ok(())
}

#[tokio::test]
async fn edits_by_anyone_else_change_the_digest_and_a_reapply_restores_it() -> Result<()> {
    let client = cluster().await?;
    let ns = TestNamespace::create(&client, "digest-drift").await?;
    let cloud = cloud_with_odd_quantities(&client, &ns).await?;
    let desired = render::render(&cloud, &RenderOptions::default())?;
    let sent = write_all(&client, ns.name(), &desired).await?;
    let first = |kind: &str| {
        sent.iter()
            .map(|(o, _)| o)
            .find(|o| o.types.as_ref().is_some_and(|t| t.kind == kind))
            .cloned()
            .with_context(|| format!("render made no {kind}"))
    };
    let (deployment, config, budget) = (
        first("Deployment")?,
        first("ConfigMap")?,
        first("PodDisruptionBudget")?,
    );

    // Another manager applying the very values the operator owns shares them: no drift.
    let resource = resource_of(&budget)?;
    let same = json!({"apiVersion": resource.api_version, "kind": resource.kind,
        "metadata": {"name": budget.name_any()}, "spec": budget.data["spec"].clone()});
    api_for(&client, ns.name(), &budget)?
        .patch(
            &budget.name_any(),
            &PatchParams::apply("someone-else"),
            &Patch::Apply(&same),
        )
        .await?;
    ensure!(
        up_to_date(&budget, &live(&client, ns.name(), &budget).await?)?,
        "a shared, equal value is not drift"
    );

    // kubectl scale, kubectl patch (as an edit does), and a forced apply by another manager.
    kubectl(&[
        "scale",
        "-n",
        ns.name(),
        "deployment",
        &deployment.name_any(),
        "--replicas=3",
    ])
    .await?;
    let key = config.data["data"]
        .as_object()
        .and_then(|d| d.keys().next().cloned())
        .context("config key")?;
    let patch = json!({"data": {key: "edited"}}).to_string();
    kubectl(&[
        "patch",
        "-n",
        ns.name(),
        "configmap",
        &config.name_any(),
        "--type=merge",
        "-p",
        &patch,
    ])
    .await?;
    let mut changed = same.clone();
    changed["spec"]["maxUnavailable"] = json!(2);
    changed["spec"]
        .as_object_mut()
        .map(|s| s.remove("minAvailable"));
    api_for(&client, ns.name(), &budget)?
        .patch(
            &budget.name_any(),
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(&changed),
        )
        .await?;
    for object in [&deployment, &config, &budget] {
        ensure!(
            !up_to_date(object, &live(&client, ns.name(), object).await?)?,
            "{}: edited by someone else, yet the digest is unchanged",
            label(object)
        );
    }

    // The operator's re-apply takes its fields back: in sync again.
    for object in [&deployment, &config, &budget] {
        api_for(&client, ns.name(), object)?
            .patch(
                &object.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(object),
            )
            .await?;
        ensure!(
            up_to_date(object, &live(&client, ns.name(), object).await?)?,
            "{}: re-applied, still differs",
            label(object)
        );
    }
    ns.delete_and_wait(std::time::Duration::from_secs(120))
        .await
        .ok();
    Ok(())
}
