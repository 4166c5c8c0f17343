//! [`DnsSyncer`], the handle the controller holds.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::board::StatusBoard;
use super::worker::DnsSyncerWorker;
use super::{CloudDnsStatus, Command, Desired, DnsError};
use crate::dns::record::{CloudKey, Endpoint, normalize_name};
use crate::dns::registry::TxtRegistry;
use crate::dns::route53::{Route53, Route53Config};
use crate::dns::zone::normalize_zone_id;
use crate::telemetry::CallCounts;

/// Handle to the DNS syncer. Clone it freely; the worker stops when every handle is dropped.
#[derive(Clone)]
pub struct DnsSyncer {
    tx: mpsc::UnboundedSender<Command>,
    board: Arc<StatusBoard>,
}

impl std::fmt::Debug for DnsSyncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsSyncer")
            .field("owner_id", &self.board.owner_id)
            .finish_non_exhaustive()
    }
}

impl DnsSyncer {
    /// Builds the SDK client from `config` and returns the handle and its worker; spawn or
    /// select on [`DnsSyncerWorker::run`].
    pub async fn from_config(
        config: &Route53Config,
    ) -> Result<(DnsSyncer, DnsSyncerWorker), DnsError> {
        let route53 = Route53::new(config.sdk_client().await, config.retry);
        Self::new(route53, config)
    }

    /// A syncer over an existing [`Route53`] edge.
    pub fn new(
        route53: Route53,
        config: &Route53Config,
    ) -> Result<(DnsSyncer, DnsSyncerWorker), DnsError> {
        let registry = TxtRegistry::new(&config.owner_id, &config.txt_prefix)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let board = Arc::new(StatusBoard::new(
            route53.counters(),
            config.owner_id.clone(),
        ));
        let worker = DnsSyncerWorker::new(rx, Arc::clone(&board), route53, registry, config);
        Ok((DnsSyncer { tx, board }, worker))
    }

    /// Publishes `endpoints` for a cloud (replacing what it asked for before). `domain` picks
    /// the hosted zone by longest suffix unless `zone_id` names one. Returns at once; the
    /// status turns [`CloudDnsStatus::Pending`] and later Ready/Conflict/Error. Calling it
    /// again with the same arguments costs nothing, so it is safe on every reconcile. An empty
    /// `endpoints` removes the cloud's records but keeps it known.
    pub fn upsert_cloud(
        &self,
        key: CloudKey,
        domain: impl Into<String>,
        zone_id: Option<String>,
        endpoints: Vec<Endpoint>,
    ) {
        self.upsert_cloud_recorded(key, domain, zone_id, endpoints, Vec::new());
    }

    /// [`DnsSyncer::upsert_cloud`] for a cloud whose durable state (its status) says its
    /// records may be in `recorded_zones`: when this syncer first hears of the cloud (after a
    /// restart), records it owns in any of those zones but the one it now resolves to are
    /// removed. Later calls for a cloud the syncer already tracks ignore `recorded_zones`.
    pub fn upsert_cloud_recorded(
        &self,
        key: CloudKey,
        domain: impl Into<String>,
        zone_id: Option<String>,
        endpoints: Vec<Endpoint>,
        recorded_zones: Vec<String>,
    ) {
        let desired = Desired {
            domain: normalize_name(&domain.into()),
            zone_hint: zone_id
                .map(|z| normalize_zone_id(&z))
                .filter(|z| !z.is_empty()),
            endpoints,
        };
        if !self.board.note_sent(&key, &desired) {
            return;
        }
        self.board.set_status(
            &key,
            CloudDnsStatus::Pending {
                reason: "publishing DNS records".into(),
            },
        );
        let recorded = recorded_zones
            .iter()
            .map(|z| normalize_zone_id(z))
            .filter(|z| !z.is_empty())
            .collect();
        if self
            .tx
            .send(Command::Upsert {
                key,
                desired,
                recorded,
            })
            .is_err()
        {
            tracing::warn!("DNS syncer worker is not running; upsert dropped");
        }
    }

    /// Removes every record the cloud owns, and returns when they are gone (or with the error
    /// that stopped it; the syncer keeps retrying in the background). A cloud this syncer never
    /// heard of (e.g. after a restart) is looked for in every hosted zone of the account.
    pub async fn remove_cloud(&self, key: &CloudKey) -> Result<(), DnsError> {
        self.board.forget_sent(key);
        let (done, wait) = oneshot::channel();
        let stopped = || DnsError::Stopped {
            cloud: key.to_string(),
        };
        self.tx
            .send(Command::Remove {
                key: key.clone(),
                done,
            })
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }

    /// Hosted zone ids that may hold the cloud's records: the zone it publishes to and zones
    /// still to be cleaned. `None` if the syncer does not track the cloud. The controller keeps
    /// this in the cloud's status, so a restarted operator knows where to clean up.
    pub fn zones(&self, key: &CloudKey) -> Option<Vec<String>> {
        self.board.zones(key)
    }

    /// The cloud's DNS status; `None` if the syncer has no record of this cloud (this UID).
    pub fn status(&self, key: &CloudKey) -> Option<CloudDnsStatus> {
        self.board.status(key)
    }

    /// A stream of clouds whose status changed. A lagged receiver should re-check every cloud.
    pub fn subscribe(&self) -> broadcast::Receiver<CloudKey> {
        self.board.events.subscribe()
    }

    /// Route53 call counters since start.
    pub fn counts(&self) -> CallCounts {
        self.board.counters.snapshot()
    }

    /// Re-lists and re-plans every zone now (normally done every `resync_interval`).
    pub fn resync(&self) {
        let _ = self.tx.send(Command::Resync);
    }
}
