//! Generated credentials of the managed datastores.
//!
//! Render is pure and has no randomness, so a generated Secret is rendered without data and
//! with the keys to generate in the `insync.dev/generate-keys` annotation. The controller
//! creates it once (`ApplyPolicy::CreateOnly`) with a random value per key and never touches it
//! again, so credentials are never regenerated under a running datastore. They carry no owner
//! reference: deleting the cloud keeps them alongside the data volumes they unlock.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, Secret};

use super::meta::Ctx;
use super::pod::{env_from_secret, target_tag};
use super::{Component, Out, RenderError, keys};

/// The generated credentials of one datastore.
pub(super) struct Credentials {
    component: Component,
    keys: &'static [&'static str],
}

/// MySQL: `password` of the `insync` user and `rootPassword`.
pub(super) const MYSQL: Credentials = Credentials {
    component: Component::Mysql,
    keys: &[PASSWORD, ROOT_PASSWORD],
};
/// Bynamo: the access key pair clients sign requests with.
pub(super) const BYNAMO: Credentials = Credentials {
    component: Component::Bynamo,
    keys: &[ACCESS_KEY_ID, SECRET_ACCESS_KEY],
};
/// MinIO: the root access key pair.
pub(super) const MINIO: Credentials = Credentials {
    component: Component::Minio,
    keys: &[ACCESS_KEY_ID, SECRET_ACCESS_KEY],
};

pub(super) const PASSWORD: &str = "password";
pub(super) const ROOT_PASSWORD: &str = "rootPassword";
/// Key names shared with the Secrets users give for AWS (`secretRef`s).
pub(super) const ACCESS_KEY_ID: &str = "accessKeyId";
pub(super) const SECRET_ACCESS_KEY: &str = "secretAccessKey";

impl Credentials {
    /// `<cloud>-<component>-credentials`.
    pub(crate) fn secret_name(&self, ctx: &Ctx<'_>) -> String {
        ctx.name(&format!("{}-credentials", self.component.name()))
    }

    /// An environment variable read from `key` of this Secret.
    pub(crate) fn env(&self, ctx: &Ctx<'_>, name: &str, key: &str) -> EnvVar {
        debug_assert!(self.keys.contains(&key), "{key} is not generated");
        env_from_secret(name, &self.secret_name(ctx), key)
    }

    /// Adds the (empty, annotated) Secret, created once by the controller.
    pub(crate) fn render(&self, ctx: &Ctx<'_>, out: &mut Out) -> Result<(), RenderError> {
        let mut metadata = ctx.meta(
            self.secret_name(ctx),
            self.component,
            &target_tag(ctx, self.component),
        );
        // Like the data volumes, credentials outlive the cloud: the retained MySQL, Bynamo and
        // MinIO volumes are only readable with them, so a re-created cloud must find the same
        // Secret, not a new random one. No owner reference, so garbage collection keeps it.
        metadata.owner_references = None;
        metadata.annotations = Some(BTreeMap::from([(
            keys::GENERATE_KEYS.to_owned(),
            self.keys.join(","),
        )]));
        let secret = Secret {
            metadata,
            type_: Some("Opaque".to_owned()),
            ..Secret::default()
        };
        out.create_only(&secret)
    }
}
