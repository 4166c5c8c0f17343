//! DNS: desired records → Route53, ExternalDNS-style, safe to share a zone.
//!
//! The pipeline, one module a step:
//! - [`allow`]: which domains the operator may write into, per namespace (pure).
//! - [`record`]: what a cloud wants ([`Endpoint`]s built by [`cloud_endpoints`], pure).
//! - [`registry`]: ownership TXT records (`<prefix><type>-<name>`, `heritage=insync-operator,...`).
//! - [`zone`]: hosted zones and longest-suffix zone selection.
//! - [`plan`]: current records + desired endpoints → change groups (pure).
//! - [`batch`]: packing groups into calls within Route53 limits (pure).
//! - [`route53`]: the SDK edge: client config, calls, retries with backoff + jitter, counters.
//! - [`syncer`]: the background worker and the [`DnsSyncer`] handle the controller uses.
//!
//! The operator never creates over, changes or deletes a record it does not own; a contested
//! name is reported as [`CloudDnsStatus::Conflict`]. See `docs/dns.md`.

pub(crate) mod allow;
pub mod batch;
pub mod plan;
pub(crate) mod record;
pub(crate) mod registry;
pub mod route53;
pub(crate) mod syncer;
pub(crate) mod zone;

pub use allow::AllowList;
pub(crate) use allow::{AllowListError, NotAllowed};
pub use record::{CloudKey, Endpoint, EndpointError, RecordType};
pub(crate) use record::{FrontendAddresses, IngressAddress, PublishSpec, cloud_endpoints};
pub use registry::{Ownership, TxtRegistry};
pub use route53::{RetryPolicy, Route53, Route53Config, Route53Error};
pub use syncer::{CloudDnsStatus, DnsError, DnsSyncer, DnsSyncerWorker};
