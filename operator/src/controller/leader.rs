//! Leader election with a `coordination.k8s.io/v1` Lease, so several replicas can run and only
//! one writes. The timing follows client-go's `leaderelection`:
//!
//! - the holder renews every [`RETRY_PERIOD`] and steps down (the process ends) when it has not
//!   renewed for [`RENEW_DEADLINE`], which is shorter than [`LEASE_DURATION`]: it stops writing
//!   before any standby may consider the lease expired;
//! - each renew call is bounded by the time left until that deadline, so one hung request cannot
//!   keep a leader that lost the API server writing;
//! - a standby never compares its clock with the holder's `renewTime` (clocks skew): it
//!   measures expiry from the moment *it* saw the lease record change.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::time::Instant;
use tracing::{info, warn};

/// How long a standby waits, from when it last saw the lease record change, before taking over.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How long the holder keeps writing without a successful renewal (shorter than
/// [`LEASE_DURATION`], so it has stopped before anyone else may take over).
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often the holder renews and a standby retries.
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// What a standby knows of the current holder: the record it last saw and when (by its own
/// clock) that record last changed.
#[derive(Debug, Default)]
struct Observed {
    record: Option<LeaseSpec>,
    changed_at: Option<Instant>,
}

impl Observed {
    /// Notes the record read at `now`; a changed record restarts the expiry clock.
    fn observe(&mut self, record: &LeaseSpec, now: Instant) {
        if self.record.as_ref() != Some(record) || self.changed_at.is_none() {
            self.record = Some(record.clone());
            self.changed_at = Some(now);
        }
    }

    /// Whether the holder has let the lease lapse: the record has not changed for its duration
    /// (the record's own, else [`LEASE_DURATION`]) as measured locally.
    fn expired(&self, now: Instant) -> bool {
        let duration = self
            .record
            .as_ref()
            .and_then(|r| r.lease_duration_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .map_or(LEASE_DURATION, Duration::from_secs);
        self.changed_at
            .is_none_or(|at| now.saturating_duration_since(at) >= duration)
    }
}

/// The holder's renewal clock.
#[derive(Debug, Clone, Copy)]
struct Renewal {
    last_renewed: Instant,
}

impl Renewal {
    /// The time a renew attempt at `now` may take: what is left until the renew deadline.
    /// `None` when the deadline has passed and the holder must step down.
    fn attempt_budget(self, now: Instant) -> Option<Duration> {
        let deadline = self.last_renewed + RENEW_DEADLINE;
        (now < deadline).then(|| deadline - now)
    }
}

/// A lease this process tries to hold.
pub struct LeaderElection {
    api: Api<Lease>,
    name: String,
    identity: String,
    observed: Mutex<Observed>,
}

impl LeaderElection {
    /// A lease `name` in `namespace`, held as `identity`.
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            observed: Mutex::new(Observed::default()),
        }
    }

    /// Tries once to acquire or renew. Returns whether this process holds the lease.
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let duration = i32::try_from(LEASE_DURATION.as_secs()).unwrap_or(15);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(duration),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let ours = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let held = spec
            .holder_identity
            .as_deref()
            .is_some_and(|h| !h.is_empty());
        let expired = {
            let mut observed = self
                .observed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            observed.observe(spec, Instant::now());
            observed.expired(Instant::now())
        };
        if !ours && held && !expired {
            return Ok(false);
        }
        if !ours {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.acquire_time = Some(MicroTime(now));
            spec.holder_identity = Some(self.identity.clone());
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(duration);
        // Replace carries the resourceVersion we read: a concurrent writer makes this fail.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this process holds the lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire().await {
                Ok(true) => {
                    info!(lease = %self.name, identity = %self.identity, "became leader");
                    return;
                }
                Ok(false) => {}
                Err(e) => warn!(error = %e, "leader election failed; retrying"),
            }
            tokio::time::sleep(RETRY_PERIOD).await;
        }
    }

    /// Renews until the lease is lost or cannot be renewed within [`RENEW_DEADLINE`]; then the
    /// caller must stop writing.
    pub async fn hold(&self) {
        let mut renewal = Renewal {
            last_renewed: Instant::now(),
        };
        loop {
            tokio::time::sleep(RETRY_PERIOD).await;
            let Some(budget) = renewal.attempt_budget(Instant::now()) else {
                warn!(lease = %self.name, deadline = ?RENEW_DEADLINE, "could not renew the lease in time; stepping down");
                return;
            };
            match tokio::time::timeout(budget, self.try_acquire()).await {
                Ok(Ok(true)) => renewal.last_renewed = Instant::now(),
                Ok(Ok(false)) => {
                    warn!(lease = %self.name, "lost the lease to another replica");
                    return;
                }
                Ok(Err(e)) => warn!(error = %e, "cannot renew the lease"),
                Err(_) => warn!(lease = %self.name, "renewing the lease timed out"),
            }
        }
    }

    /// Gives the lease up on shutdown so a standby takes over at once.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(self.identity.as_str())
        {
            spec.holder_identity = None;
            let _ = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: &str, renewed_at_secs: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(
                Timestamp::from_second(1_700_000_000 + renewed_at_secs).expect("valid"),
            )),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn the_holder_steps_down_before_a_standby_may_take_over() {
        const { assert!(RENEW_DEADLINE.as_secs() < LEASE_DURATION.as_secs()) };
        const { assert!(RETRY_PERIOD.as_secs() < RENEW_DEADLINE.as_secs()) };
        let start = Instant::now();
        let renewal = Renewal {
            last_renewed: start,
        };
        assert_eq!(
            renewal.attempt_budget(start + Duration::from_secs(2)),
            Some(Duration::from_secs(8)),
            "an attempt may only take what is left until the deadline"
        );
        assert_eq!(renewal.attempt_budget(start + RENEW_DEADLINE), None);
        assert_eq!(renewal.attempt_budget(start + LEASE_DURATION), None);
    }

    #[test]
    fn expiry_is_measured_from_when_the_standby_saw_the_record_change() {
        let start = Instant::now();
        let mut observed = Observed::default();
        assert!(observed.expired(start), "nothing seen yet: free to try");
        // The holder's clock is an hour ahead (or behind): irrelevant, only changes count.
        observed.observe(&record("a", 3600), start);
        assert!(!observed.expired(start + Duration::from_secs(14)));
        // Renewed (the record changed) at 10 s: the 15 s start again from there.
        observed.observe(&record("a", 3610), start + Duration::from_secs(10));
        assert!(!observed.expired(start + Duration::from_secs(20)));
        // The same record read again does not restart the clock.
        observed.observe(&record("a", 3610), start + Duration::from_secs(20));
        assert!(observed.expired(start + Duration::from_secs(25)));
    }

    #[test]
    fn a_standby_with_a_skewed_clock_does_not_take_over_a_live_lease() {
        // The old rule compared the standby's clock with renewTime: a standby 20 s ahead saw
        // every lease as expired. Now a lease renewed every few seconds never expires.
        let start = Instant::now();
        let mut observed = Observed::default();
        for i in 0..10 {
            let at = start + Duration::from_secs(2 * i);
            observed.observe(&record("a", -20 + i64::try_from(2 * i).unwrap_or(0)), at);
            assert!(!observed.expired(at + Duration::from_secs(1)), "step {i}");
        }
    }
}
