//! insync-operator: runs an inSync Cloud from one `InSyncCloud` custom resource.
//!
//! The crate is laid out as the reconcile pipeline reads:
//! - [`api`]: the `InSyncCloud` types, defaults and validation.
//! - [`render`]: pure builders, spec in, Kubernetes objects out.
//! - [`controller`]: watch, apply, status, finalizer, rollout state machine.
//! - [`dns`]: desired records to a Route53 plan, ExternalDNS-style ownership.
//! - [`telemetry`]: tracing, metrics and health endpoints.
//! - [`runner`]: what runs inside the operator's Jobs (`backup-run`, `restore-run`,
//!   `backup-delete`, the verify drill).
//! - [`contract`]: what the runner and the operator exchange (a backup's layout, the runner's
//!   reports); the runner and render both import it, neither imports the other.

pub mod api;
pub mod cli;
pub mod contract;
pub mod controller;
pub mod dns;
pub mod preview;
pub mod render;
pub mod runner;
pub mod telemetry;

/// Selects rustls' ring provider for the whole process. kube and the AWS SDK enable different
/// rustls providers, and rustls refuses to guess when more than one is compiled in.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
