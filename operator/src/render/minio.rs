//! Managed MinIO, the object store: one drive per replica, a single drive for 1 replica or
//! one erasure-coded pool over every replica.

use super::meta::Ctx;
use super::pod::{Check, Port, Profile};
use super::secrets::{self, ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use super::workload::{self, Datastore};
use super::{Component, Out, RenderError};

const COMPONENT: Component = Component::Minio;
pub(super) const PORTS: [Port; 1] = [Port {
    name: "s3",
    port: 9000,
}];
/// The bucket inSync stores backup data in.
pub(super) const BUCKET: &str = "insync";
/// MinIO's default region.
pub(super) const REGION: &str = "us-east-1";
const DATA_DIR: &str = "/data";

const PROFILE: Profile = Profile {
    uid: 10001,
    read_only_root: true,
    writable_dirs: &[],
    cpu_request: "250m",
    memory_request: "1Gi",
    memory_limit: "4Gi",
    startup_seconds: 120,
};

const DATASTORE: Datastore = Datastore {
    component: COMPONENT,
    profile: &PROFILE,
    ports: &PORTS,
    data_dir: DATA_DIR,
    credentials: &secrets::MINIO,
};

/// The client Service's URL.
pub(super) fn endpoint(ctx: &Ctx<'_>) -> String {
    ctx.http_endpoint(COMPONENT, PORTS[0].port)
}

/// `minio server` arguments: the drive of every replica, in MinIO's `{0...n}` notation.
fn server_args(ctx: &Ctx<'_>, replicas: i32) -> Vec<String> {
    let drives = if replicas == 1 {
        DATA_DIR.to_owned()
    } else {
        let hosts =
            workload::stateful_pod_host(ctx, COMPONENT, &format!("{{0...{}}}", replicas - 1));
        format!("http://{hosts}:{}{DATA_DIR}", PORTS[0].port)
    };
    let address = format!(":{}", PORTS[0].port);
    // MinIO writes its certs directory under $HOME unless told otherwise; the root is read-only.
    [
        "server",
        &drives,
        "--address",
        &address,
        "--certs-dir",
        "/tmp/certs",
    ]
    .map(str::to_owned)
    .to_vec()
}

pub(super) fn render(ctx: &Ctx<'_>, out: &mut Out) -> Result<(), RenderError> {
    let Some(managed) = &ctx.cloud.spec.object_store.minio else {
        return Ok(());
    };
    let template = DATASTORE
        .pod(ctx)
        .args(server_args(ctx, managed.replicas))
        .env([
            secrets::MINIO.env(ctx, "MINIO_ROOT_USER", ACCESS_KEY_ID),
            secrets::MINIO.env(ctx, "MINIO_ROOT_PASSWORD", SECRET_ACCESS_KEY),
        ])
        .probe(Check::Http("/minio/health/live", PORTS[0].name))
        .readiness(Check::Http("/minio/health/ready", PORTS[0].name))
        .build();
    DATASTORE.render(ctx, out, managed.replicas, &managed.storage, template)
}
