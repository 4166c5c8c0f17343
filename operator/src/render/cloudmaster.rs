//! The CloudMaster: a Deployment configured through `/etc/inSyncCloud`, wired to every datastore.

use super::meta::Ctx;
use super::pod::{Check, DRAIN_SECONDS, PodBuilder, Port, Profile, image};
use super::wiring::{Wiring, cloud_section};
use super::workload::{self, ServiceShape, Strategy};
use super::{Component, Out, RenderError};

const COMPONENT: Component = Component::CloudMaster;
/// The CloudMaster listens unprivileged; HAProxy maps the public `masterPort` to it.
pub(super) const PORTS: [Port; 1] = [Port {
    name: "master",
    port: 8443,
}];
const CONFIG_DIR: &str = "/etc/inSyncCloud";
const CONFIG_FILE: &str = "cloudmaster.conf";

const PROFILE: Profile = Profile {
    uid: 10001,
    // The CloudMaster writes logs and state under its install directory.
    read_only_root: false,
    writable_dirs: &[],
    cpu_request: "500m",
    memory_request: "1Gi",
    memory_limit: "4Gi",
    startup_seconds: 600,
};

/// The CloudMaster Service's `host:port`, for nodes and HAProxy.
pub(super) fn address(ctx: &Ctx<'_>) -> String {
    format!(
        "{}:{}",
        ctx.service_host(&ctx.component_name(COMPONENT)),
        PORTS[0].port
    )
}

pub(super) fn render(ctx: &Ctx<'_>, out: &mut Out) -> Result<(), RenderError> {
    let replicas = ctx.cloud.spec.master.replicas;
    let image = image(ctx, COMPONENT, COMPONENT.name());
    let tag = image.tag.clone();
    let config = cloud_section(ctx)
        .section("master")
        .set("listen_port", PORTS[0].port);
    let wiring = Wiring::new(config)
        .database(ctx)
        .metadata_store(ctx)
        .object_store(ctx);
    let config_map = workload::config_map(
        ctx,
        COMPONENT,
        &tag,
        CONFIG_FILE,
        wiring.config.render(ctx)?,
    );
    let template = PodBuilder::new(ctx, COMPONENT, &PROFILE, image)
        .ports(&PORTS)
        .env(wiring.env)
        .probe(Check::Tcp(PORTS[0].name))
        .drain_before_stop(DRAIN_SECONDS)
        .config(&config_map, CONFIG_DIR)
        .mounts(wiring.volumes, wiring.mounts)
        .build();
    let name = ctx.component_name(COMPONENT);
    out.apply(&config_map)?;
    out.apply(&workload::service(
        ctx,
        name.clone(),
        COMPONENT,
        &tag,
        ServiceShape::Client,
        &PORTS,
    ))?;
    let deployment = workload::deployment(ctx, name, replicas, Strategy::Surge, template);
    out.workload(&deployment, COMPONENT, COMPONENT.name())?;
    out.apply_some(workload::pdb(ctx, COMPONENT, &tag, replicas))
}
