//! What the worker publishes for handles to read: each cloud's status and the zones that may
//! hold its records, plus a broadcast of status changes. Entries are keyed by resource
//! (`insynccloud/<ns>/<name>`) and carry the [`CloudKey`], so a cloud deleted and created again
//! under the same name (a new UID) does not see its predecessor's state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::broadcast;

use super::{CloudDnsStatus, Desired};
use crate::dns::record::CloudKey;
use crate::dns::route53::DnsCounters;

/// Shared between every handle and the worker.
pub(super) struct StatusBoard {
    statuses: Mutex<HashMap<String, (CloudKey, CloudDnsStatus)>>,
    /// What each cloud last asked for, so a repeated identical upsert costs nothing.
    last_sent: Mutex<HashMap<String, (CloudKey, Desired)>>,
    /// Resource → zones that may hold the cloud's records (its zone and those still to clean).
    zones: Mutex<HashMap<String, (CloudKey, Vec<String>)>>,
    pub(super) events: broadcast::Sender<CloudKey>,
    pub(super) counters: Arc<DnsCounters>,
    pub(super) owner_id: String,
}

/// A poisoned lock only means another thread panicked mid-update of a map of plain values;
/// the map is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StatusBoard {
    pub(super) fn new(counters: Arc<DnsCounters>, owner_id: String) -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            statuses: Mutex::new(HashMap::new()),
            last_sent: Mutex::new(HashMap::new()),
            zones: Mutex::new(HashMap::new()),
            events,
            counters,
            owner_id,
        }
    }

    /// Sets the cloud's status; subscribers hear of it only if it changed.
    pub(super) fn set_status(&self, key: &CloudKey, status: CloudDnsStatus) {
        let changed = {
            let mut map = lock(&self.statuses);
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

    /// Forgets the cloud's status (its records are gone); subscribers hear of it.
    pub(super) fn clear_status(&self, key: &CloudKey) {
        let removed = lock(&self.statuses).remove(&key.resource()).is_some();
        if removed {
            let _ = self.events.send(key.clone());
        }
    }

    pub(super) fn status(&self, key: &CloudKey) -> Option<CloudDnsStatus> {
        lock(&self.statuses)
            .get(&key.resource())
            .filter(|(k, _)| k == key)
            .map(|(_, s)| s.clone())
    }

    pub(super) fn zones(&self, key: &CloudKey) -> Option<Vec<String>> {
        lock(&self.zones)
            .get(&key.resource())
            .filter(|(k, _)| k == key)
            .map(|(_, z)| z.clone())
    }

    pub(super) fn set_zones(&self, resource: &str, key: &CloudKey, zones: Vec<String>) {
        lock(&self.zones).insert(resource.to_owned(), (key.clone(), zones));
    }

    pub(super) fn clear_zones(&self, resource: &str) {
        lock(&self.zones).remove(resource);
    }

    /// Records what the cloud asks for; `false` if it asked for exactly this last time.
    pub(super) fn note_sent(&self, key: &CloudKey, desired: &Desired) -> bool {
        let mut sent = lock(&self.last_sent);
        let resource = key.resource();
        if sent
            .get(&resource)
            .is_some_and(|(k, d)| k == key && d == desired)
        {
            return false;
        }
        sent.insert(resource, (key.clone(), desired.clone()));
        true
    }

    /// Forgets what the cloud asked for, so asking again is never skipped as a repeat.
    pub(super) fn forget_sent(&self, key: &CloudKey) {
        lock(&self.last_sent).remove(&key.resource());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::broadcast::error::TryRecvError;

    fn board() -> StatusBoard {
        StatusBoard::new(Arc::default(), "test".into())
    }

    fn key(uid: &str) -> CloudKey {
        CloudKey::new("ns", "c", uid)
    }

    fn pending() -> CloudDnsStatus {
        CloudDnsStatus::Pending {
            reason: "publishing".into(),
        }
    }

    #[test]
    fn a_status_change_is_broadcast_once_and_a_repeat_is_not() {
        let b = board();
        let mut rx = b.events.subscribe();
        b.set_status(&key("u1"), pending());
        b.set_status(&key("u1"), pending());
        assert_eq!(rx.try_recv().unwrap(), key("u1"));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        b.set_status(&key("u1"), CloudDnsStatus::Ready);
        assert_eq!(rx.try_recv().unwrap(), key("u1"));
        assert_eq!(b.status(&key("u1")), Some(CloudDnsStatus::Ready));
    }

    #[test]
    fn a_cloud_created_again_under_the_same_name_does_not_see_its_predecessor() {
        let b = board();
        b.set_status(&key("old"), CloudDnsStatus::Ready);
        b.set_zones("insynccloud/ns/c", &key("old"), vec!["Z1".into()]);
        assert_eq!(b.status(&key("new")), None);
        assert_eq!(b.zones(&key("new")), None);
        assert_eq!(b.zones(&key("old")), Some(vec!["Z1".into()]));
        // The same status for the new UID is a change.
        let mut rx = b.events.subscribe();
        b.set_status(&key("new"), CloudDnsStatus::Ready);
        assert_eq!(rx.try_recv().unwrap(), key("new"));
    }

    #[test]
    fn clearing_a_status_is_broadcast_only_when_there_was_one() {
        let b = board();
        let mut rx = b.events.subscribe();
        b.clear_status(&key("u1"));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        b.set_status(&key("u1"), pending());
        b.clear_status(&key("u1"));
        assert_eq!(rx.try_recv().unwrap(), key("u1"));
        assert_eq!(rx.try_recv().unwrap(), key("u1"));
        assert_eq!(b.status(&key("u1")), None);
    }

    #[test]
    fn an_identical_request_is_noted_once_until_forgotten() {
        let b = board();
        let desired = Desired {
            domain: "example.com".into(),
            zone_hint: None,
            endpoints: Vec::new(),
        };
        assert!(b.note_sent(&key("u1"), &desired));
        assert!(!b.note_sent(&key("u1"), &desired));
        assert!(
            b.note_sent(&key("u2"), &desired),
            "a new UID is a new request"
        );
        b.forget_sent(&key("u2"));
        assert!(b.note_sent(&key("u2"), &desired));
    }
}
