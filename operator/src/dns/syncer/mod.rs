//! The background worker that keeps every cloud's records in Route53.
//!
//! [`DnsSyncer`] is the cheap, cloneable handle the controller holds; [`DnsSyncerWorker::run`]
//! is the future that does the work. The controller says what each cloud wants
//! ([`DnsSyncer::upsert_cloud`]) or that it is gone ([`DnsSyncer::remove_cloud`]); the worker
//! gathers changes for a short debounce, then per dirty zone lists the records, plans
//! ([`plan_zone`](crate::dns::plan::plan_zone)), packs the changes and applies them, one call in
//! flight per zone (zones run concurrently). Outcomes become a [`CloudDnsStatus`] per cloud, and
//! every status change is broadcast so the controller can re-reconcile.
//!
//! One job a module:
//! - [`handle`]: the [`DnsSyncer`] handle; turns calls into commands for the worker.
//! - [`board`]: what the worker publishes for handles to read (statuses, zones, events).
//! - [`clouds`]: per-cloud bookkeeping: which zone a cloud publishes to, which zones still hold
//!   records to clean, who waits for a removal, and what a round's outcome makes of its status.
//! - [`worker`]: the actor: debounce, dirty zones, per-zone backoff, the zone list, rounds.
//! - [`round`]: one zone round (list, plan, apply) and each cloud's result of it.
//! - [`apply`]: sending a zone's change groups in batches, halving rejected ones.

mod apply;
mod board;
mod clouds;
mod handle;
mod round;
mod worker;

use tokio::sync::oneshot;

use crate::dns::batch::OversizedGroup;
use crate::dns::plan::Unpublishable;
use crate::dns::record::{CloudKey, Endpoint};
use crate::dns::registry::RegistryError;
use crate::dns::route53::Route53Error;

pub use handle::DnsSyncer;
pub use worker::DnsSyncerWorker;

/// Where a cloud's DNS stands; the controller maps it onto the `DNSReady` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudDnsStatus {
    /// Every record is published as asked.
    Ready,
    /// Changes are planned or in flight (or, in dry-run mode, planned and not applied).
    Pending {
        /// Why it is not ready yet.
        reason: String,
    },
    /// A name the cloud wants is held by a record this operator does not own (or by another
    /// cloud). Nothing was overwritten.
    Conflict {
        /// The contested name.
        name: String,
        /// Who holds it and how to resolve it.
        detail: String,
    },
    /// Publishing failed; it is retried with backoff.
    Error {
        /// What failed.
        message: String,
    },
}

impl CloudDnsStatus {
    /// Whether this is [`CloudDnsStatus::Ready`].
    pub fn is_ready(&self) -> bool {
        matches!(self, CloudDnsStatus::Ready)
    }
}

/// Errors of the DNS syncer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The owner id or TXT prefix is unusable.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The worker is no longer running (shut down or never started).
    #[error("the DNS syncer is not running; records of {cloud} were not removed")]
    Stopped {
        /// The cloud.
        cloud: String,
    },
    /// Records of a cloud could not be removed (yet); the syncer keeps retrying.
    #[error("removing DNS records of {cloud} from zone {zone}: {source}")]
    Remove {
        /// The cloud.
        cloud: String,
        /// The zone (or `*` when the zone list itself failed).
        zone: String,
        /// What failed.
        #[source]
        source: CloudFailure,
    },
}

/// Why publishing or removing one cloud's records failed. Cloneable, because one failed zone
/// round fails every cloud in it; payloads are boxed to keep [`DnsError`] small.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudFailure {
    /// A Route53 call failed (the zone list, the record list or a change batch).
    #[error(transparent)]
    Route53(Box<Route53Error>),
    /// One of the cloud's record groups is larger than any change batch may be.
    #[error(transparent)]
    Oversized(Box<OversizedGroup>),
    /// The cloud's endpoints cannot be published as given.
    #[error(transparent)]
    Unpublishable(Box<Unpublishable>),
    /// A removal that was waited for was overtaken by a new publish of the same cloud.
    #[error("the cloud was published again before its records were removed")]
    PublishedAgain,
}

impl From<Route53Error> for CloudFailure {
    fn from(e: Route53Error) -> Self {
        Self::Route53(Box::new(e))
    }
}

impl From<OversizedGroup> for CloudFailure {
    fn from(o: OversizedGroup) -> Self {
        Self::Oversized(Box::new(o))
    }
}

/// What a cloud asks to have published.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Desired {
    /// Normalized domain; picks the zone by longest suffix when there is no hint.
    domain: String,
    /// Normalized hosted zone id the user named, if any.
    zone_hint: Option<String>,
    endpoints: Vec<Endpoint>,
}

impl Desired {
    /// The name a zone is chosen for: the first endpoint's, else the domain.
    fn zone_lookup_name(&self) -> &str {
        self.endpoints
            .first()
            .map(|e| e.dns_name.as_str())
            .unwrap_or(self.domain.as_str())
    }
}

/// Who waits for a cloud's removal, and hears how it ended.
type RemovalWaiter = oneshot::Sender<Result<(), DnsError>>;

/// What a handle asks of the worker.
enum Command {
    Upsert {
        key: CloudKey,
        desired: Desired,
        /// Zones durable state says may hold the cloud's records (after a restart).
        recorded: Vec<String>,
    },
    Remove {
        key: CloudKey,
        done: RemovalWaiter,
    },
    Resync,
}
