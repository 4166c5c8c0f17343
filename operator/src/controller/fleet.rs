//! The operator's view of every cloud it manages, for the gates that look beyond one cloud:
//! fleet rings and the operator-wide limit on concurrent upgrades.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::core::DeserializeGuard;
use kube::runtime::reflector::Store;

use super::gate::FleetMember;
use crate::api::{InSyncCloud, UpgradePhase, condition};

/// How long an admitted upgrade holds its slot before its status shows it rolling. Long
/// enough for the reconcile that admitted it to write its status, short enough that a slot
/// taken by a reconcile that then failed comes back.
const ADMISSION_TTL: Duration = Duration::from_secs(120);

/// The clouds the controller watches (its own cache) and the upgrades admitted by this process.
pub struct Fleet {
    clouds: Store<DeserializeGuard<InSyncCloud>>,
    max_concurrent: Option<usize>,
    admitted: Mutex<BTreeMap<String, Instant>>,
}

fn key(cloud: &InSyncCloud) -> String {
    format!("{}/{}", cloud.cloud_namespace(), cloud.cloud_name())
}

/// Whether the cloud's rollout to its `spec.version` is under way (it holds a slot).
fn rolling(cloud: &InSyncCloud) -> bool {
    cloud
        .status
        .as_ref()
        .and_then(|s| s.upgrade.as_ref())
        .is_some_and(|u| {
            u.to_version == cloud.spec.version
                && matches!(
                    u.phase,
                    UpgradePhase::Datastores
                        | UpgradePhase::CloudMaster
                        | UpgradePhase::Nodes
                        | UpgradePhase::Frontend
                        | UpgradePhase::RollingBack
                )
        })
}

/// Whether the cloud runs its `spec.version` everywhere.
fn finished(cloud: &InSyncCloud) -> bool {
    cloud
        .status
        .as_ref()
        .and_then(|s| s.current_version.as_deref())
        == Some(cloud.spec.version.as_str())
}

impl Fleet {
    /// The fleet over the controller's cloud cache; `max_concurrent` is the operator's
    /// `--max-concurrent-upgrades` (0: no limit).
    pub fn new(clouds: Store<DeserializeGuard<InSyncCloud>>, max_concurrent: usize) -> Self {
        Self {
            clouds,
            max_concurrent: (max_concurrent > 0).then_some(max_concurrent),
            admitted: Mutex::default(),
        }
    }

    /// The clouds' cache (every cloud the operator watches, without managedFields).
    pub fn cache(&self) -> Store<DeserializeGuard<InSyncCloud>> {
        self.clouds.clone()
    }

    /// The limit on concurrent upgrades, when there is one.
    pub fn max_concurrent(&self) -> Option<usize> {
        self.max_concurrent
    }

    fn clouds(&self) -> Vec<InSyncCloud> {
        self.clouds
            .state()
            .iter()
            .filter_map(|guard| guard.0.as_ref().ok().cloned())
            .collect()
    }

    /// Every other cloud, as the ring gate sees it.
    pub fn members(&self, except: &InSyncCloud) -> Vec<FleetMember> {
        let me = key(except);
        self.clouds()
            .iter()
            .filter(|c| key(c) != me)
            .map(|c| {
                let status = c.status.clone().unwrap_or_default();
                let ready = status
                    .conditions
                    .iter()
                    .any(|k| k.type_ == condition::READY && k.status == "True");
                let blocked = status.upgrade.as_ref().is_some_and(|u| {
                    // A rollback is a failed gate too: the later rings must not follow.
                    matches!(
                        u.phase,
                        UpgradePhase::Blocked
                            | UpgradePhase::RollingBack
                            | UpgradePhase::RolledBack
                    ) && u.to_version == c.spec.version
                });
                FleetMember {
                    cloud: key(c),
                    ring: c.spec.upgrade.ring,
                    version: c.spec.version.clone(),
                    current_version: status.current_version,
                    ready,
                    blocked,
                }
            })
            .collect()
    }

    /// Whether `cloud` may roll under the concurrency limit: it is rolling already, was
    /// admitted a moment ago, or there is room (then it is admitted now). Atomic, so two
    /// reconciles can never both take the last slot.
    pub fn admit(&self, cloud: &InSyncCloud) -> bool {
        let Some(max) = self.max_concurrent else {
            return true;
        };
        if rolling(cloud) {
            return true;
        }
        let me = key(cloud);
        let mut admitted = self
            .admitted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let others = self.clouds();
        // An admission ends when its rollout shows in status (then `rolling` counts it), when
        // the cloud runs its version (done), when it is gone, or after the TTL.
        admitted.retain(|k, at| {
            at.elapsed() < ADMISSION_TTL
                && others
                    .iter()
                    .find(|c| key(c) == *k)
                    .is_some_and(|c| !rolling(c) && !finished(c))
        });
        if admitted.contains_key(&me) {
            return true;
        }
        let in_flight = others
            .iter()
            .filter(|c| key(c) != me && (rolling(c) || admitted.contains_key(&key(c))))
            .count();
        if in_flight >= max {
            return false;
        }
        admitted.insert(me, Instant::now());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{InSyncCloudStatus, UpgradeStatus};
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    fn cloud(name: &str, version: &str, current: &str, phase: Option<UpgradePhase>) -> InSyncCloud {
        let mut c: InSyncCloud =
            serde_yaml::from_str(include_str!("../../../examples/fcloud.yaml")).expect("example");
        c.metadata.name = Some(name.into());
        c.spec.version = version.into();
        c.status = Some(InSyncCloudStatus {
            current_version: Some(current.into()),
            upgrade: phase.map(|phase| UpgradeStatus::new(Some(current.into()), version, phase)),
            ..Default::default()
        });
        c
    }

    fn put(writer: &mut Writer<DeserializeGuard<InSyncCloud>>, c: &InSyncCloud) {
        writer.apply_watcher_event(&Event::Apply(DeserializeGuard(Ok(c.clone()))));
    }

    #[test]
    fn the_queue_frees_a_slot_when_an_upgrade_finishes() {
        let mut writer = Writer::default();
        let fleet = Fleet::new(writer.as_reader(), 1);
        let a = cloud("a", "v2", "v1", None);
        let b = cloud("b", "v2", "v1", None);
        put(&mut writer, &a);
        put(&mut writer, &b);
        assert!(fleet.admit(&a), "a free slot");
        assert!(!fleet.admit(&b), "a holds the only slot");
        assert!(fleet.admit(&a), "a keeps it");
        // a's rollout shows in status: it holds the slot through `rolling`.
        let a_rolling = cloud("a", "v2", "v1", Some(UpgradePhase::Nodes));
        put(&mut writer, &a_rolling);
        assert!(!fleet.admit(&b));
        // a is done: its slot is free at once, not after the admission TTL.
        let a_done = cloud("a", "v2", "v2", Some(UpgradePhase::Complete));
        put(&mut writer, &a_done);
        assert!(fleet.admit(&b), "the slot a held is free again");
    }

    #[test]
    fn without_a_limit_everyone_is_admitted() {
        let mut writer = Writer::default();
        let fleet = Fleet::new(writer.as_reader(), 0);
        let a = cloud("a", "v2", "v1", None);
        put(&mut writer, &a);
        assert!(fleet.admit(&a));
        assert!(fleet.admit(&cloud("b", "v2", "v1", None)));
    }
}
