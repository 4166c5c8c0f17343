//! The worker: an actor that takes commands from handles, debounces them, and runs at most one
//! round per zone at a time, backing a zone off after failures. What the outcomes mean for each
//! cloud is [`Clouds`]'s business.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Command;
use super::board::StatusBoard;
use super::clouds::Clouds;
use super::round::{RoundJob, ZoneRound};
use crate::dns::batch::BatchLimits;
use crate::dns::registry::TxtRegistry;
use crate::dns::route53::{Route53, Route53Config};
use crate::dns::zone::HostedZone;

/// How soon clouds whose hosted zone was not found look again.
const RESOLVE_RETRY: Duration = Duration::from_secs(30);

/// How long a listed set of hosted zones is trusted.
const ZONE_LIST_TTL: Duration = Duration::from_secs(30);

struct ZoneCache {
    fetched: Instant,
    zones: Vec<HostedZone>,
}

/// The worker future's state. Run it with [`DnsSyncerWorker::run`].
pub struct DnsSyncerWorker {
    rx: mpsc::UnboundedReceiver<Command>,
    clouds: Clouds,
    route53: Route53,
    registry: TxtRegistry,
    debounce: Duration,
    resync_interval: Duration,
    error_backoff: Duration,
    limits: BatchLimits,
    dry_run: bool,
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

/// How long a zone waits after `failures` consecutive failures: doubling from `base`, at most
/// sixteen times it (and never past twenty times, should the doubling cap change).
fn backoff_delay(base: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(4);
    (base * factor).min(base * 20)
}

impl DnsSyncerWorker {
    pub(super) fn new(
        rx: mpsc::UnboundedReceiver<Command>,
        board: Arc<StatusBoard>,
        route53: Route53,
        registry: TxtRegistry,
        config: &Route53Config,
    ) -> Self {
        Self {
            rx,
            clouds: Clouds::new(board),
            route53,
            registry,
            debounce: config.debounce,
            resync_interval: config.resync_interval,
            error_backoff: config.error_backoff,
            limits: config.limits,
            dry_run: config.dry_run,
            zones: None,
            dirty: BTreeSet::new(),
            in_flight: HashMap::new(),
            tasks: JoinSet::new(),
            flush_at: None,
            backoff: HashMap::new(),
            next_resync: Instant::now() + config.resync_interval,
            resolve_retry_at: None,
        }
    }

    /// Runs until every [`DnsSyncer`](super::DnsSyncer) handle is dropped and in-flight work
    /// has finished.
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

    /// The zone no longer exists: its clouds resolve their zone again from a fresh zone list
    /// (a zone created again under the same name has a new id), and the next round publishes
    /// into it.
    fn forget_zone(&mut self, zone: &str) {
        tracing::warn!(
            zone,
            "hosted zone no longer exists; resolving its clouds' zones again"
        );
        self.clouds.forget_zone(zone);
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

    /// A user-visible change: its zones are planned again at the next flush, backed off or not.
    fn retry_now(&mut self, zones: Vec<String>) {
        for z in zones {
            self.backoff.remove(&z);
            self.mark_dirty(&z);
        }
        self.schedule_flush();
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Upsert {
                key,
                desired,
                recorded,
            } => {
                let zones = self.clouds.upsert(key, desired, recorded);
                self.retry_now(zones);
            }
            Command::Remove { key, done } => {
                let zones = self.clouds.remove(key, done);
                self.retry_now(zones);
            }
            Command::Resync => self.resync_all(),
        }
    }

    fn resync_all(&mut self) {
        for z in self.clouds.all_zones() {
            self.mark_dirty(&z);
        }
        // Unresolved clouds get another look at the zone list too.
        if self.clouds.awaits_zone_list() {
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

    /// Lists the account's hosted zones if a cloud needs them and the list is stale, then
    /// places the clouds that can be placed.
    async fn resolve_zones(&mut self) {
        let needs_list = self.clouds.needs_zone_list();
        if !needs_list && !self.clouds.awaits_hinted_zone() {
            return;
        }
        let stale = self
            .zones
            .as_ref()
            .is_none_or(|c| c.fetched.elapsed() > ZONE_LIST_TTL);
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
                        self.clouds.fail_resolution(&e);
                        self.resolve_retry_at = Some(Instant::now() + RESOLVE_RETRY);
                        return;
                    }
                }
            }
        }
        let listed = self.zones.as_ref().map(|c| c.zones.as_slice());
        let resolution = self.clouds.resolve(listed);
        self.dirty.extend(resolution.dirty);
        if resolution.unresolved {
            self.resolve_retry_at = Some(Instant::now() + RESOLVE_RETRY);
        }
    }

    fn start_round(&mut self, zone: String) {
        let Some(inputs) = self.clouds.round_inputs(&zone, self.zones.is_some()) else {
            return;
        };
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
            desired: inputs.desired,
            removed: inputs.removed,
            members: inputs.members,
        };
        let handle = self.tasks.spawn(job.run());
        self.in_flight.insert(handle.id(), zone);
    }

    fn fail_later(&mut self, zone: &str) {
        let failures = self.backoff.get(zone).map_or(0, |(_, n)| *n) + 1;
        let delay = backoff_delay(self.error_backoff, failures);
        self.backoff
            .insert(zone.to_owned(), (Instant::now() + delay, failures));
        self.dirty.insert(zone.to_owned());
    }

    fn on_round(&mut self, round: ZoneRound) {
        let zone = round.zone.clone();
        if let Err(e) = &round.result {
            tracing::warn!(zone, error = %e, "DNS zone sync failed");
            if e.is_missing_zone() {
                self.forget_zone(&zone);
            }
        }
        let settled = self.clouds.settle(round);
        if settled.any_failed {
            self.fail_later(&zone);
        } else {
            self.backoff.remove(&zone);
            if settled.replan {
                self.mark_dirty(&zone);
            }
        }
        if self.dirty.contains(&zone) {
            self.schedule_flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_sixteen_times_it() {
        let base = Duration::from_secs(1);
        let delays: Vec<u64> = (1..=7).map(|n| backoff_delay(base, n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 16, 16]);
    }
}
