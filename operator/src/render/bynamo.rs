//! Managed Bynamo, the DynamoDB-compatible metadata store: a StatefulSet whose replicas know
//! each other by their stable DNS names.

use super::meta::Ctx;
use super::pod::{Check, Port, Profile, env, env_pod_name};
use super::secrets::{self, ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use super::workload::{self, Datastore};
use super::{Component, Out, RenderError};

const COMPONENT: Component = Component::Bynamo;
pub(super) const PORTS: [Port; 1] = [Port {
    name: "http",
    port: 8000,
}];
/// Bynamo ignores the region, but DynamoDB clients need one to sign requests.
pub(super) const REGION: &str = "us-east-1";
const DATA_DIR: &str = "/data";

pub(super) const PROFILE: Profile = Profile {
    uid: 10001,
    read_only_root: true,
    writable_dirs: &[],
    cpu_request: "250m",
    memory_request: "512Mi",
    memory_limit: "2Gi",
    startup_seconds: 120,
};

const DATASTORE: Datastore = Datastore {
    component: COMPONENT,
    profile: &PROFILE,
    ports: &PORTS,
    data_dir: DATA_DIR,
    credentials: &secrets::BYNAMO,
};

/// The client Service's URL.
pub(super) fn endpoint(ctx: &Ctx<'_>) -> String {
    ctx.http_endpoint(COMPONENT, PORTS[0].port)
}

pub(super) fn render(ctx: &Ctx<'_>, out: &mut Out) -> Result<(), RenderError> {
    let Some(managed) = &ctx.cloud.spec.metadata_store.managed else {
        return Ok(());
    };
    let peers: Vec<String> = (0..managed.replicas)
        .map(|i| workload::stateful_pod_host(ctx, COMPONENT, &i.to_string()))
        .map(|host| format!("{host}:{}", PORTS[0].port))
        .collect();
    let template = DATASTORE
        .pod(ctx)
        .env([
            env_pod_name("BYNAMO_NODE_NAME"),
            env("BYNAMO_PORT", PORTS[0].port.to_string()),
            env("BYNAMO_DATA_DIR", DATA_DIR),
            env("BYNAMO_PEERS", peers.join(",")),
            secrets::BYNAMO.env(ctx, "BYNAMO_ACCESS_KEY_ID", ACCESS_KEY_ID),
            secrets::BYNAMO.env(ctx, "BYNAMO_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        ])
        .probe(Check::Tcp(PORTS[0].name))
        .build();
    DATASTORE.render(ctx, out, managed.replicas, &managed.storage, template)
}
