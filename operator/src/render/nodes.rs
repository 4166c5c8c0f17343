//! Storage nodes: one Deployment per node (`<cloud>-node-<i>`, workload id `node-<i>`), each with
//! its own data volume, so nodes keep their data across restarts and upgrade one at a time.
//!
//! A node's PVC `<cloud>-node-<i>-data` is created once and has no owner reference: deleting
//! the cloud or scaling nodes down never deletes backup data.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Volume,
};

use super::meta::Ctx;
use super::pod::{Check, PodBuilder, Port, Profile, env, image, target_tag};
use super::wiring::{Wiring, cloud_section};
use super::workload::{self, ServiceShape, Strategy};
use super::{Component, Out, RenderError, cloudmaster, keys};

const COMPONENT: Component = Component::Node;
pub(super) const PORTS: [Port; 1] = [Port {
    name: "storage",
    port: 6061,
}];
const CONFIG_DIR: &str = "/etc/inSyncStorage";
const CONFIG_FILE: &str = "storage.conf";
const DATA_DIR: &str = "/var/lib/inSyncStorage";

const PROFILE: Profile = Profile {
    uid: 10001,
    // The storage node writes logs and state under its install directory.
    read_only_root: false,
    writable_dirs: &[],
    cpu_request: "500m",
    memory_request: "1Gi",
    memory_limit: "8Gi",
    startup_seconds: 300,
};

/// The most storage nodes a cloud may have (the CRD's bound on `nodes.replicas`): HAProxy keeps
/// one server slot for each.
pub(super) const MAX_NODES: i32 = 100;

/// `<cloud>-node`: the headless Service under which node `i` is
/// `<cloud>-node-<i>.<cloud>-node.<ns>.svc`.
pub(super) fn service_name(ctx: &Ctx<'_>) -> String {
    ctx.component_name(COMPONENT)
}

/// Node `index`'s DNS name and port, for HAProxy.
pub(super) fn address(ctx: &Ctx<'_>, index: i32) -> String {
    let host = format!(
        "{}.{}",
        ctx.node_name(index),
        ctx.service_host(&service_name(ctx))
    );
    format!("{host}:{}", PORTS[0].port)
}

/// The DNS name of the SRV records listing every ready node's name and storage port.
pub(super) fn srv_name(ctx: &Ctx<'_>) -> String {
    format!(
        "_{}._tcp.{}",
        PORTS[0].name,
        ctx.service_host(&service_name(ctx))
    )
}

pub(super) fn render(ctx: &Ctx<'_>, out: &mut Out) -> Result<(), RenderError> {
    let nodes = &ctx.cloud.spec.nodes;
    let tag = target_tag(ctx, COMPONENT);
    let config = cloud_section(ctx)
        .section("node")
        .set("listen_port", PORTS[0].port)
        .set("data_dir", DATA_DIR)
        .section("master")
        .set("address", cloudmaster::address(ctx));
    let wiring = Wiring::new(config).metadata_store(ctx).object_store(ctx);
    let config_map = workload::config_map(
        ctx,
        COMPONENT,
        &tag,
        CONFIG_FILE,
        wiring.config.render(ctx)?,
    );
    out.apply(&config_map)?;
    let headless = ServiceShape::Headless {
        publish_not_ready: false,
    };
    out.apply(&workload::service(
        ctx,
        service_name(ctx),
        COMPONENT,
        &tag,
        headless,
        &PORTS,
    ))?;
    for index in 0..nodes.replicas {
        let id = format!("node-{index}");
        let name = ctx.node_name(index);
        let claim = PersistentVolumeClaim {
            metadata: ctx.unowned_meta(format!("{name}-data"), node_labels(ctx, index, &tag)),
            spec: Some(workload::claim_spec(&nodes.storage)),
            status: None,
        };
        let data = Volume {
            name: "data".to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.metadata.name.clone().unwrap_or_default(),
                read_only: Some(false),
            }),
            ..Volume::default()
        };
        let template = PodBuilder::new(ctx, COMPONENT, &PROFILE, image(ctx, COMPONENT, &id))
            .label(keys::NODE_INDEX, index.to_string())
            .hostname(name.clone(), service_name(ctx))
            .ports(&PORTS)
            .env([
                env("INSYNC_NODE_INDEX", index.to_string()),
                env("INSYNC_NODE_NAME", name.clone()),
                env("INSYNC_NODE_ADDRESS", address(ctx, index)),
            ])
            .env(wiring.env.iter().cloned())
            .probe(Check::Tcp(PORTS[0].name))
            .config(&config_map, CONFIG_DIR)
            .mount("data", DATA_DIR, Some(data))
            .mounts(wiring.volumes.clone(), wiring.mounts.clone())
            .build();
        out.create_only(&claim)?;
        let deployment = workload::deployment(ctx, name, 1, Strategy::Recreate, template);
        out.workload(&deployment, COMPONENT, &id)?;
    }
    out.apply_some(workload::pdb(ctx, COMPONENT, &tag, nodes.replicas))
}

fn node_labels(ctx: &Ctx<'_>, index: i32, tag: &str) -> BTreeMap<String, String> {
    let mut labels = ctx.labels(COMPONENT, tag);
    labels.insert(keys::NODE_INDEX.to_owned(), index.to_string());
    labels
}
