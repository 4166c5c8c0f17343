//! Managed MySQL: one replica in a StatefulSet, its credentials generated once.

use super::meta::Ctx;
use super::pod::{Check, Port, Profile, env};
use super::secrets::{self, PASSWORD, ROOT_PASSWORD};
use super::workload::Datastore;
use super::{Component, Out, RenderError};

const COMPONENT: Component = Component::Mysql;
pub(super) const PORTS: [Port; 1] = [Port {
    name: "mysql",
    port: 3306,
}];
/// The schema and user inSync uses on the managed server.
pub(super) const DATABASE: &str = "insync";
pub(super) const USER: &str = "insync";

pub(super) const PROFILE: Profile = Profile {
    // The `mysql` user of the official image.
    uid: 999,
    read_only_root: true,
    writable_dirs: &["/var/run/mysqld"],
    cpu_request: "250m",
    memory_request: "512Mi",
    memory_limit: "2Gi",
    startup_seconds: 300,
};

const DATASTORE: Datastore = Datastore {
    component: COMPONENT,
    profile: &PROFILE,
    ports: &PORTS,
    data_dir: "/var/lib/mysql",
    credentials: &secrets::MYSQL,
};

/// The client Service's host and port.
pub(super) fn endpoint(ctx: &Ctx<'_>) -> (String, i32) {
    (
        ctx.service_host(&ctx.component_name(COMPONENT)),
        PORTS[0].port,
    )
}

pub(super) fn render(ctx: &Ctx<'_>, out: &mut Out) -> Result<(), RenderError> {
    let Some(managed) = &ctx.cloud.spec.database.managed else {
        return Ok(());
    };
    let template = DATASTORE
        .pod(ctx)
        .env([
            env("MYSQL_DATABASE", DATABASE),
            env("MYSQL_USER", USER),
            secrets::MYSQL.env(ctx, "MYSQL_PASSWORD", PASSWORD),
            secrets::MYSQL.env(ctx, "MYSQL_ROOT_PASSWORD", ROOT_PASSWORD),
        ])
        .probe(Check::Tcp(PORTS[0].name))
        .build();
    DATASTORE.render(ctx, out, 1, &managed.storage, template)
}
