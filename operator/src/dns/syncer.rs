//! The background worker that keeps every cloud's records in Route53.
//!
//! [`DnsSyncer`] is the cheap, cloneable handle the controller holds; [`DnsSyncerWorker::run`]
//! is the future that does the work. The controller says what each cloud wants
//! ([`DnsSyncer::upsert_cloud`]) or that it is gone ([`DnsSyncer::remove_cloud`]); the worker
//! gathers changes for a short debounce, then per dirty zone lists the records, plans
//! ([`plan_zone`]), packs the changes ([`pack`]) and applies them, one call in flight per zone
//! (zones run concurrently). Outcomes become a [`CloudDnsStatus`] per cloud, and every status
//! change is broadcast so the controller can re-reconcile.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::dns::batch::{BatchLimits, pack};
use crate::dns::plan::{ChangeGroup, DesiredCloud, PlanOutcome, ZonePlan, plan_zone};
use crate::dns::record::{CloudKey, Endpoint, normalize_name};
use crate::dns::registry::{RegistryError, TxtRegistry};
use crate::dns::route53::{CallCounts, DnsCounters, Route53, Route53Config, Route53Error};
use crate::dns::zone::{HostedZone, normalize_zone_id, select_zone};

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
    #[error("removing DNS records of {cloud} from zone {zone}: {message}")]
    Remove {
        /// The cloud.
        cloud: String,
        /// The zone (or `*` when the zone list itself failed).
        zone: String,
        /// What failed.
        message: String,
    },
}

/// How soon clouds whose hosted zone was not found look again.
const RESOLVE_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Desired {
    domain: String,
    zone_hint: Option<String>,
    endpoints: Vec<Endpoint>,
}

enum Command {
    Upsert {
        key: CloudKey,
        desired: Desired,
        /// Zones durable state says may hold the cloud's records (after a restart).
        recorded: Vec<String>,
    },
    Remove {
        key: CloudKey,
        done: oneshot::Sender<Result<(), DnsError>>,
    },
    Resync,
}

struct Shared {
    statuses: Mutex<HashMap<String, (CloudKey, CloudDnsStatus)>>,
    last_sent: Mutex<HashMap<String, (CloudKey, Desired)>>,
    /// Resource → zones that may hold the cloud's records (its zone and those still to clean).
    zones: Mutex<HashMap<String, (CloudKey, Vec<String>)>>,
    events: broadcast::Sender<CloudKey>,
    counters: Arc<DnsCounters>,
    owner_id: String,
}

impl Shared {
    fn set_status(&self, key: &CloudKey, status: CloudDnsStatus) {
        let changed = {
            let mut map = self.statuses.lock().unwrap_or_else(PoisonError::into_inner);
            let resource = key.resource();
            match map.get(&resource) {
                Some((k, s)) if k == key && *s == status => false,
                _ => {
                    map.insert(resource, (key.clone(), status));
                    true
                }
            }
        };
        if changed {
            // No receivers is fine.
            let _ = self.events.send(key.clone());
        }
    }

    fn clear_status(&self, key: &CloudKey) {
        let removed = self
            .statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key.resource())
            .is_some();
        if removed {
            let _ = self.events.send(key.clone());
        }
    }

    fn zones(&self, key: &CloudKey) -> Option<Vec<String>> {
        let map = self.zones.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&key.resource())
            .filter(|(k, _)| k == key)
            .map(|(_, z)| z.clone())
    }

    fn status(&self, key: &CloudKey) -> Option<CloudDnsStatus> {
        let map = self.statuses.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&key.resource())
            .filter(|(k, _)| k == key)
            .map(|(_, s)| s.clone())
    }
}

/// Handle to the DNS syncer. Clone it freely; the worker stops when every handle is dropped.
#[derive(Clone)]
pub struct DnsSyncer {
    tx: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DnsSyncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsSyncer")
            .field("owner_id", &self.shared.owner_id)
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
        let (events, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            statuses: Mutex::new(HashMap::new()),
            last_sent: Mutex::new(HashMap::new()),
            zones: Mutex::new(HashMap::new()),
            events,
            counters: route53.counters(),
            owner_id: config.owner_id.clone(),
        });
        let now = Instant::now();
        let worker = DnsSyncerWorker {
            rx,
            shared: Arc::clone(&shared),
            route53,
            registry,
            debounce: config.debounce,
            resync_interval: config.resync_interval,
            error_backoff: config.error_backoff,
            limits: config.limits,
            dry_run: config.dry_run,
            clouds: BTreeMap::new(),
            zones: None,
            dirty: BTreeSet::new(),
            in_flight: HashMap::new(),
            tasks: JoinSet::new(),
            flush_at: None,
            backoff: HashMap::new(),
            next_resync: now + config.resync_interval,
            resolve_retry_at: None,
        };
        Ok((DnsSyncer { tx, shared }, worker))
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
        {
            let mut sent = self
                .shared
                .last_sent
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let resource = key.resource();
            if sent
                .get(&resource)
                .is_some_and(|(k, d)| *k == key && *d == desired)
            {
                return;
            }
            sent.insert(resource, (key.clone(), desired.clone()));
        }
        self.shared.set_status(
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
        self.shared
            .last_sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key.resource());
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
        self.shared.zones(key)
    }

    /// The cloud's DNS status; `None` if the syncer has no record of this cloud (this UID).
    pub fn status(&self, key: &CloudKey) -> Option<CloudDnsStatus> {
        self.shared.status(key)
    }

    /// A stream of clouds whose status changed. A lagged receiver should re-check every cloud.
    pub fn subscribe(&self) -> broadcast::Receiver<CloudKey> {
        self.shared.events.subscribe()
    }

    /// Route53 call counters since start.
    pub fn counts(&self) -> CallCounts {
        self.shared.counters.snapshot()
    }

    /// Re-lists and re-plans every zone now (normally done every `resync_interval`).
    pub fn resync(&self) {
        let _ = self.tx.send(Command::Resync);
    }

    /// This syncer's owner id.
    pub fn owner_id(&self) -> &str {
        &self.shared.owner_id
    }
}

struct CloudEntry {
    key: CloudKey,
    desired: Option<Desired>,
    generation: u64,
    /// The zone the desired records go to, once resolved.
    zone: Option<String>,
    /// Zones where this cloud must have no records left.
    cleanup: BTreeSet<String>,
    /// Cleanup must cover every zone (removal of a cloud we never resolved).
    cleanup_everywhere: bool,
    waiters: Vec<oneshot::Sender<Result<(), DnsError>>>,
}

impl CloudEntry {
    /// A cloud this process has not seen before: nothing desired yet, records possibly in
    /// `cleanup` (or, with `everywhere`, in any zone).
    fn first_heard(key: CloudKey, cleanup: Vec<String>, everywhere: bool) -> Self {
        Self {
            key,
            desired: None,
            generation: 0,
            zone: None,
            cleanup: cleanup.into_iter().collect(),
            cleanup_everywhere: everywhere,
            waiters: Vec::new(),
        }
    }
}

struct ZoneCache {
    fetched: Instant,
    zones: Vec<HostedZone>,
}

/// Outcome of one cloud in one zone round.
enum CloudResult {
    Ready,
    /// A change may or may not have landed (its response was lost); re-plan to find out.
    Uncertain,
    DryRun(usize),
    Conflict {
        name: String,
        detail: String,
    },
    Failed(String),
}

struct ZoneRound {
    zone: String,
    /// (resource, generation, removal?) → result. `Err` when the round failed as a whole.
    result: Result<Vec<(String, u64, bool, CloudResult)>, Route53Error>,
    members: Vec<(String, u64, bool)>,
}

/// The worker future's state. Run it with [`DnsSyncerWorker::run`].
pub struct DnsSyncerWorker {
    rx: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    route53: Route53,
    registry: TxtRegistry,
    debounce: Duration,
    resync_interval: Duration,
    error_backoff: Duration,
    limits: BatchLimits,
    dry_run: bool,
    clouds: BTreeMap<String, CloudEntry>,
    zones: Option<ZoneCache>,
    dirty: BTreeSet<String>,
    in_flight: HashMap<tokio::task::Id, String>,
    tasks: JoinSet<ZoneRound>,
    flush_at: Option<Instant>,
    /// Zone → (not before, consecutive failures).
    backoff: HashMap<String, (Instant, u32)>,
    next_resync: Instant,
    /// When clouds without a zone (or a failed zone list) get another try.
    resolve_retry_at: Option<Instant>,
}

impl DnsSyncerWorker {
    /// Runs until every [`DnsSyncer`] handle is dropped and in-flight work has finished.
    pub async fn run(mut self) {
        let mut closed = false;
        loop {
            if closed && self.tasks.is_empty() {
                break;
            }
            let wake = self.next_wake();
            tokio::select! {
                cmd = self.rx.recv(), if !closed => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => closed = true,
                },
                Some(joined) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    match joined {
                        Ok((id, round)) => {
                            self.in_flight.remove(&id);
                            self.on_round(round);
                        }
                        Err(e) => {
                            if let Some(zone) = self.in_flight.remove(&e.id()) {
                                tracing::error!(zone, error = %e, "DNS zone sync task failed");
                                self.fail_later(&zone);
                            }
                        }
                    }
                }
                () = tokio::time::sleep_until(wake), if !closed => self.on_timer().await,
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let mut wake = self.next_resync;
        if let Some(f) = self.flush_at {
            wake = wake.min(f);
        }
        if let Some(r) = self.resolve_retry_at {
            wake = wake.min(r);
        }
        let busy: BTreeSet<&String> = self.in_flight.values().collect();
        for (zone, (at, _)) in &self.backoff {
            if self.dirty.contains(zone) && !busy.contains(zone) {
                wake = wake.min(*at);
            }
        }
        wake
    }

    /// The zone no longer exists: no cloud publishes there or has records to clean there any
    /// more. Its clouds resolve their zone again from a fresh zone list (a zone created again
    /// under the same name has a new id), and the next round publishes into it.
    fn forget_zone(&mut self, zone: &str) {
        tracing::warn!(
            zone,
            "hosted zone no longer exists; resolving its clouds' zones again"
        );
        let mut touched = Vec::new();
        for (resource, entry) in self.clouds.iter_mut() {
            let published_there = entry.zone.as_deref() == Some(zone);
            if published_there {
                entry.zone = None;
            }
            if entry.cleanup.remove(zone) || published_there {
                touched.push(resource.clone());
            }
        }
        for resource in &touched {
            self.share_zones(resource);
        }
        self.zones = None;
        self.backoff.remove(zone);
        self.dirty.remove(zone);
        self.schedule_flush();
    }

    fn schedule_flush(&mut self) {
        if self.flush_at.is_none() {
            self.flush_at = Some(Instant::now() + self.debounce);
        }
    }

    fn mark_dirty(&mut self, zone: &str) {
        self.dirty.insert(zone.to_owned());
        self.schedule_flush();
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Upsert {
                key,
                desired,
                recorded,
            } => {
                let resource = key.resource();
                let entry = self
                    .clouds
                    .entry(resource.clone())
                    // First heard of: wherever durable state says records may be. The zone it
                    // resolves to is taken out again when it is resolved.
                    .or_insert_with(|| CloudEntry::first_heard(key.clone(), recorded, false));
                let placement_changed = entry
                    .desired
                    .as_ref()
                    .is_none_or(|d| d.domain != desired.domain || d.zone_hint != desired.zone_hint);
                if placement_changed && let Some(old) = entry.zone.take() {
                    entry.cleanup.insert(old);
                }
                // A pending removal is superseded: the cloud is wanted again.
                for w in entry.waiters.drain(..) {
                    let _ = w.send(Err(DnsError::Remove {
                        cloud: key.to_string(),
                        zone: "*".into(),
                        message: "the cloud was published again before its records were removed"
                            .into(),
                    }));
                }
                entry.key = key;
                entry.desired = Some(desired);
                entry.generation += 1;
                let zones: Vec<String> = entry
                    .zone
                    .iter()
                    .chain(entry.cleanup.iter())
                    .cloned()
                    .collect();
                for z in zones {
                    // A user-visible change retries a backed-off zone right away.
                    self.backoff.remove(&z);
                    self.mark_dirty(&z);
                }
                self.schedule_flush();
                self.share_zones(&resource);
            }
            Command::Remove { key, done } => {
                let resource = key.resource();
                let entry = self
                    .clouds
                    .entry(resource.clone())
                    .or_insert_with(|| CloudEntry::first_heard(key.clone(), Vec::new(), true));
                entry.desired = None;
                entry.generation += 1;
                match entry.zone.take() {
                    Some(z) => {
                        entry.cleanup.insert(z);
                    }
                    None => entry.cleanup_everywhere = true,
                }
                entry.waiters.push(done);
                let zones: Vec<String> = entry.cleanup.iter().cloned().collect();
                self.shared.set_status(
                    &key,
                    CloudDnsStatus::Pending {
                        reason: "removing DNS records".into(),
                    },
                );
                for z in zones {
                    self.backoff.remove(&z);
                    self.mark_dirty(&z);
                }
                self.schedule_flush();
                self.share_zones(&resource);
            }
            Command::Resync => self.resync_all(),
        }
    }

    fn resync_all(&mut self) {
        let zones: BTreeSet<String> = self
            .clouds
            .values()
            .flat_map(|e| e.zone.iter().chain(e.cleanup.iter()).cloned())
            .collect();
        for z in zones {
            self.mark_dirty(&z);
        }
        // Unresolved clouds get another look at the zone list too.
        if self
            .clouds
            .values()
            .any(|e| (e.desired.is_some() && e.zone.is_none()) || e.cleanup_everywhere)
        {
            self.zones = None;
        }
        self.schedule_flush();
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        if now >= self.next_resync {
            self.next_resync = now + self.resync_interval;
            self.resync_all();
        }
        if self.resolve_retry_at.is_some_and(|r| now >= r) {
            self.resolve_retry_at = None;
            self.zones = None; // look at the zone list afresh
            self.schedule_flush();
        }
        let flush_due = self.flush_at.is_some_and(|f| now >= f);
        let busy: BTreeSet<&String> = self.in_flight.values().collect();
        let retry_due = self
            .backoff
            .iter()
            .any(|(z, (at, _))| self.dirty.contains(z) && !busy.contains(z) && now >= *at);
        if flush_due || retry_due {
            if flush_due {
                self.flush_at = None;
            }
            self.flush().await;
        }
    }

    /// Resolves zones where needed, then starts a round for every dirty zone that is not in
    /// flight or backing off.
    async fn flush(&mut self) {
        self.resolve_zones().await;
        let now = Instant::now();
        let busy: BTreeSet<String> = self.in_flight.values().cloned().collect();
        let ready: Vec<String> = self
            .dirty
            .iter()
            .filter(|z| !busy.contains(*z))
            .filter(|z| self.backoff.get(*z).is_none_or(|(at, _)| now >= *at))
            .cloned()
            .collect();
        for zone in ready {
            self.dirty.remove(&zone);
            self.start_round(zone);
        }
    }

    async fn resolve_zones(&mut self) {
        let needs_list = self.clouds.values().any(|e| {
            (e.zone.is_none() && e.desired.as_ref().is_some_and(|d| d.zone_hint.is_none()))
                || e.cleanup_everywhere
        });
        let explicit_only = self
            .clouds
            .values()
            .any(|e| e.zone.is_none() && e.desired.as_ref().is_some_and(|d| d.zone_hint.is_some()));
        if !needs_list && !explicit_only {
            return;
        }
        let stale = self
            .zones
            .as_ref()
            .is_none_or(|c| c.fetched.elapsed() > Duration::from_secs(30));
        if needs_list && stale {
            match self.route53.list_hosted_zones().await {
                Ok(zones) => {
                    self.zones = Some(ZoneCache {
                        fetched: Instant::now(),
                        zones,
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listing Route53 hosted zones failed");
                    if self.zones.is_none() {
                        self.fail_resolution(&e.to_string());
                        self.resolve_retry_at = Some(Instant::now() + RESOLVE_RETRY);
                        return;
                    }
                }
            }
        }
        let zones: Vec<HostedZone> = self
            .zones
            .as_ref()
            .map(|c| c.zones.clone())
            .unwrap_or_default();
        let mut to_mark = Vec::new();
        let mut unresolved = Vec::new();
        let mut finished = Vec::new();
        for (resource, e) in self.clouds.iter_mut() {
            if let Some(d) = &e.desired
                && e.zone.is_none()
            {
                if d.zone_hint.is_none() && self.zones.is_none() {
                    continue;
                }
                match Self::zone_of_static(d, &zones) {
                    Some(z) => {
                        e.cleanup.remove(&z);
                        to_mark.push(z.clone());
                        // Cleanup waits for the resolution (see start_round).
                        to_mark.extend(e.cleanup.iter().cloned());
                        e.zone = Some(z);
                    }
                    None => unresolved.push((e.key.clone(), d.clone(), zones.len())),
                }
            }
            if e.cleanup_everywhere && self.zones.is_some() {
                e.cleanup_everywhere = false;
                for z in &zones {
                    if e.zone.as_deref() != Some(z.id.as_str()) {
                        e.cleanup.insert(z.id.clone());
                    }
                }
                to_mark.extend(e.cleanup.iter().cloned());
                if e.desired.is_none() && e.cleanup.is_empty() {
                    finished.push(resource.clone());
                }
            }
        }
        for z in to_mark {
            self.dirty.insert(z);
        }
        if !unresolved.is_empty() {
            self.resolve_retry_at = Some(Instant::now() + RESOLVE_RETRY);
        }
        for (key, d, n) in unresolved {
            let name = d
                .endpoints
                .first()
                .map(|e| e.dns_name.clone())
                .unwrap_or(d.domain.clone());
            self.shared.set_status(
                &key,
                CloudDnsStatus::Error {
                    message: format!(
                        "no Route53 hosted zone for {name} among the account's {n} zone(s); create the zone or set the zone id explicitly"
                    ),
                },
            );
        }
        for resource in finished {
            self.finish_removal(&resource);
        }
        self.share_all_zones();
    }

    fn zone_of_static(d: &Desired, zones: &[HostedZone]) -> Option<String> {
        if let Some(z) = &d.zone_hint {
            return Some(z.clone());
        }
        let name = d
            .endpoints
            .first()
            .map(|e| e.dns_name.as_str())
            .unwrap_or(d.domain.as_str());
        select_zone(name, zones).map(|z| z.id.clone())
    }

    fn fail_resolution(&mut self, message: &str) {
        let mut keys = Vec::new();
        for e in self.clouds.values_mut() {
            if e.cleanup_everywhere {
                for w in e.waiters.drain(..) {
                    let _ = w.send(Err(DnsError::Remove {
                        cloud: e.key.to_string(),
                        zone: "*".into(),
                        message: message.to_owned(),
                    }));
                }
            }
            if e.zone.is_none() && e.desired.is_some() {
                keys.push(e.key.clone());
            }
        }
        for k in keys {
            self.shared.set_status(
                &k,
                CloudDnsStatus::Error {
                    message: message.to_owned(),
                },
            );
        }
    }

    /// Publishes where the cloud's records may be, for [`DnsSyncer::zones`].
    fn share_zones(&self, resource: &str) {
        let mut map = self
            .shared
            .zones
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match self.clouds.get(resource) {
            Some(e) => {
                let zones: BTreeSet<String> =
                    e.zone.iter().chain(e.cleanup.iter()).cloned().collect();
                map.insert(
                    resource.to_owned(),
                    (e.key.clone(), zones.into_iter().collect()),
                );
            }
            None => {
                map.remove(resource);
            }
        }
    }

    fn share_all_zones(&self) {
        let resources: Vec<String> = self.clouds.keys().cloned().collect();
        for r in resources {
            self.share_zones(&r);
        }
    }

    fn finish_removal(&mut self, resource: &str) {
        self.shared
            .zones
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(resource);
        if let Some(e) = self.clouds.remove(resource) {
            self.shared.clear_status(&e.key);
            for w in e.waiters {
                let _ = w.send(Ok(()));
            }
        }
    }

    fn start_round(&mut self, zone: String) {
        let mut desired = Vec::new();
        let mut removed = Vec::new();
        let mut members = Vec::new();
        for (resource, e) in &self.clouds {
            if let Some(d) = &e.desired
                && e.zone.as_deref() == Some(zone.as_str())
            {
                desired.push(DesiredCloud {
                    resource: resource.clone(),
                    endpoints: d.endpoints.clone(),
                });
                members.push((resource.clone(), e.generation, false));
            }
            // A wanted cloud whose zone is not known yet (the zone list failed) may be about to
            // publish into one of its cleanup zones: removing from there would take it offline.
            let unresolved = e.desired.is_some() && e.zone.is_none() && self.zones.is_none();
            if e.cleanup.contains(&zone) && !unresolved {
                removed.push(resource.clone());
                members.push((resource.clone(), e.generation, true));
            }
        }
        if members.is_empty() {
            return;
        }
        let zone_name = self
            .zones
            .as_ref()
            .and_then(|c| c.zones.iter().find(|z| z.id == zone))
            .map(|z| z.name.clone());
        let job = RoundJob {
            route53: self.route53.clone(),
            registry: self.registry.clone(),
            limits: self.limits,
            dry_run: self.dry_run,
            zone: zone.clone(),
            zone_name,
            desired,
            removed,
            members,
        };
        let handle = self.tasks.spawn(job.run());
        self.in_flight.insert(handle.id(), zone);
    }

    fn fail_later(&mut self, zone: &str) {
        let failures = self.backoff.get(zone).map_or(0, |(_, n)| *n) + 1;
        let factor = 1u32 << (failures - 1).min(4);
        let delay = (self.error_backoff * factor).min(self.error_backoff * 20);
        self.backoff
            .insert(zone.to_owned(), (Instant::now() + delay, failures));
        self.dirty.insert(zone.to_owned());
    }

    fn on_round(&mut self, round: ZoneRound) {
        let zone = round.zone.clone();
        let mut any_failed = false;
        let mut replan = false;
        match round.result {
            Err(e) => {
                any_failed = true;
                tracing::warn!(zone, error = %e, "DNS zone sync failed");
                if e.is_missing_zone() {
                    self.forget_zone(&zone);
                }
                for (resource, generation, removal) in round.members {
                    let Some(entry) = self.clouds.get_mut(&resource) else {
                        continue;
                    };
                    if removal {
                        for w in entry.waiters.drain(..) {
                            let _ = w.send(Err(DnsError::Remove {
                                cloud: entry.key.to_string(),
                                zone: zone.clone(),
                                message: e.to_string(),
                            }));
                        }
                    } else if entry.generation == generation
                        && !self.shared.status(&entry.key).is_some_and(|s| s.is_ready())
                    {
                        self.shared.set_status(
                            &entry.key,
                            CloudDnsStatus::Error {
                                message: e.to_string(),
                            },
                        );
                    }
                }
            }
            Ok(results) => {
                let mut finished = Vec::new();
                for (resource, generation, removal, result) in results {
                    let Some(entry) = self.clouds.get_mut(&resource) else {
                        continue;
                    };
                    if removal {
                        match result {
                            CloudResult::Uncertain => replan = true,
                            CloudResult::Failed(message) => {
                                any_failed = true;
                                for w in entry.waiters.drain(..) {
                                    let _ = w.send(Err(DnsError::Remove {
                                        cloud: entry.key.to_string(),
                                        zone: zone.clone(),
                                        message: message.clone(),
                                    }));
                                }
                            }
                            CloudResult::DryRun(_) => {
                                // Nothing was deleted; report done so a finalizer can proceed.
                                entry.cleanup.remove(&zone);
                            }
                            _ => {
                                if entry.zone.as_deref() != Some(zone.as_str()) {
                                    entry.cleanup.remove(&zone);
                                }
                            }
                        }
                        if entry.desired.is_none()
                            && entry.cleanup.is_empty()
                            && !entry.cleanup_everywhere
                        {
                            finished.push(resource.clone());
                        }
                        continue;
                    }
                    if entry.generation != generation {
                        continue; // a newer request is on its way
                    }
                    let status = match result {
                        CloudResult::Ready => CloudDnsStatus::Ready,
                        CloudResult::Uncertain => {
                            replan = true;
                            CloudDnsStatus::Pending {
                                reason: "re-checking the zone after an interrupted change".into(),
                            }
                        }
                        CloudResult::DryRun(n) => CloudDnsStatus::Pending {
                            reason: format!("dry run: {n} change(s) planned, not applied"),
                        },
                        CloudResult::Conflict { name, detail } => {
                            CloudDnsStatus::Conflict { name, detail }
                        }
                        CloudResult::Failed(message) => {
                            any_failed = true;
                            CloudDnsStatus::Error { message }
                        }
                    };
                    let key = entry.key.clone();
                    self.shared.set_status(&key, status);
                }
                for resource in finished {
                    self.finish_removal(&resource);
                }
            }
        }
        self.share_all_zones();
        if any_failed {
            self.fail_later(&zone);
        } else {
            self.backoff.remove(&zone);
            if replan {
                self.mark_dirty(&zone);
            }
        }
        if self.dirty.contains(&zone) {
            self.schedule_flush();
        }
    }
}

struct RoundJob {
    route53: Route53,
    registry: TxtRegistry,
    limits: BatchLimits,
    dry_run: bool,
    zone: String,
    zone_name: Option<String>,
    desired: Vec<DesiredCloud>,
    removed: Vec<String>,
    members: Vec<(String, u64, bool)>,
}

impl RoundJob {
    async fn run(self) -> ZoneRound {
        let records = match self.route53.list_records(&self.zone).await {
            Ok(r) => r,
            Err(e) => {
                return ZoneRound {
                    zone: self.zone,
                    result: Err(e),
                    members: self.members,
                };
            }
        };
        let plan = plan_zone(
            self.zone_name.as_deref(),
            &records,
            &self.desired,
            &self.removed,
            &self.registry,
        );
        let report = if plan.groups.is_empty() {
            ApplyReport::default()
        } else if self.dry_run {
            log_dry_run(&self.zone, &plan);
            ApplyReport::default()
        } else {
            tracing::info!(
                zone = self.zone,
                groups = plan.groups.len(),
                changes = plan.change_count(),
                "applying DNS changes"
            );
            apply(&self.route53, &self.zone, plan.groups.clone(), &self.limits).await
        };
        let mut changes_per: HashMap<&str, usize> = HashMap::new();
        for g in &plan.groups {
            *changes_per.entry(g.resource.as_str()).or_default() += g.changes.len();
        }
        let results = self
            .members
            .iter()
            .map(|(resource, generation, removal)| {
                let outcome = plan.outcomes.get(resource);
                let result = if let Some(msg) = report.failures.get(resource) {
                    CloudResult::Failed(msg.clone())
                } else if report.uncertain.contains(resource) {
                    CloudResult::Uncertain
                } else {
                    match outcome {
                        Some(PlanOutcome::Conflict { name, detail }) => CloudResult::Conflict {
                            name: name.clone(),
                            detail: detail.clone(),
                        },
                        Some(PlanOutcome::Invalid { message }) => {
                            CloudResult::Failed(message.clone())
                        }
                        _ if self.dry_run
                            && changes_per.get(resource.as_str()).is_some_and(|n| *n > 0) =>
                        {
                            CloudResult::DryRun(
                                changes_per.get(resource.as_str()).copied().unwrap_or(0),
                            )
                        }
                        _ => CloudResult::Ready,
                    }
                };
                (resource.clone(), *generation, *removal, result)
            })
            .collect();
        ZoneRound {
            zone: self.zone,
            result: Ok(results),
            members: self.members,
        }
    }
}

fn log_dry_run(zone: &str, plan: &ZonePlan) {
    for g in &plan.groups {
        for c in &g.changes {
            tracing::info!(
                zone,
                resource = g.resource,
                action = ?c.action,
                name = c.record.name,
                rtype = c.record.rtype,
                values = ?c.record.values,
                "dry run: would change DNS record"
            );
        }
    }
}

/// What an apply left undone.
#[derive(Default)]
struct ApplyReport {
    /// Resource → error, for groups that did not land.
    failures: HashMap<String, String>,
    /// Resources whose changes may or may not have landed.
    uncertain: std::collections::HashSet<String>,
}

/// Applies groups in limit-sized batches, one call at a time. A batch refused for its content
/// is halved until the offending group is alone, so one bad change only fails its own cloud.
async fn apply(
    route53: &Route53,
    zone: &str,
    groups: Vec<ChangeGroup>,
    limits: &BatchLimits,
) -> ApplyReport {
    let mut failures: HashMap<String, String> = HashMap::new();
    let mut uncertain = std::collections::HashSet::new();
    let (batches, oversized) = pack(groups, limits);
    for o in oversized {
        failures.entry(o.resource.clone()).or_insert(o.to_string());
    }
    // Work stack of chunks; the front of the zone's order is processed first.
    let mut stack: Vec<Vec<ChangeGroup>> = batches.into_iter().rev().collect();
    while let Some(mut chunk) = stack.pop() {
        let changes: Vec<_> = chunk
            .iter()
            .flat_map(|g| g.changes.iter().cloned())
            .collect();
        let comment = format!("insync-operator: {} change(s)", changes.len());
        match route53.change(zone, &changes, &comment).await {
            Ok(()) => {}
            Err(Route53Error::Rejected {
                after_lost_response: true,
                ..
            }) => {
                // Probably our own earlier attempt; the next plan will tell.
                uncertain.extend(chunk.into_iter().map(|g| g.resource));
            }
            Err(e @ Route53Error::Rejected { .. }) => {
                if chunk.len() > 1 {
                    let right = chunk.split_off(chunk.len() / 2);
                    stack.push(right);
                    stack.push(chunk);
                } else {
                    for g in chunk {
                        tracing::warn!(zone, resource = g.resource, name = g.name, error = %e, "DNS change rejected");
                        failures.entry(g.resource).or_insert(e.to_string());
                    }
                }
            }
            Err(e) => {
                // Throttled past the retry budget, or a failure that affects every call:
                // stop here and let the zone be retried later.
                for g in chunk.into_iter().chain(stack.drain(..).flatten()) {
                    failures.entry(g.resource).or_insert(e.to_string());
                }
            }
        }
    }
    ApplyReport {
        failures,
        uncertain,
    }
}
