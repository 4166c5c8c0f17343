//! Per-cloud bookkeeping: the zone a cloud publishes to, the zones that may still hold its
//! records, who waits for its removal, and what a round's outcome makes of its status. No I/O:
//! the worker decides when to list zones and run rounds, this module what they mean for each
//! cloud. Every change of a cloud's zones is mirrored on the [`StatusBoard`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::board::StatusBoard;
use super::round::{CloudResult, Member, ZoneRound};
use super::{CloudDnsStatus, CloudFailure, Desired, DnsError, RemovalWaiter};
use crate::dns::plan::DesiredCloud;
use crate::dns::record::CloudKey;
use crate::dns::route53::Route53Error;
use crate::dns::zone::{HostedZone, select_zone};

/// What the syncer knows of one cloud.
struct CloudEntry {
    key: CloudKey,
    /// What it wants published; `None` once it is being removed.
    desired: Option<Desired>,
    /// Bumped by every request, so a round's result for an older one is ignored.
    generation: u64,
    /// The zone the desired records go to, once resolved.
    zone: Option<String>,
    /// Zones where this cloud must have no records left.
    cleanup: BTreeSet<String>,
    /// Cleanup must cover every zone (removal of a cloud we never resolved).
    cleanup_everywhere: bool,
    waiters: Vec<RemovalWaiter>,
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

    /// Zones that may hold its records: where it publishes, then where it cleans up.
    fn zones(&self) -> impl Iterator<Item = &String> {
        self.zone.iter().chain(self.cleanup.iter())
    }

    /// Wants records published but does not know where yet.
    fn unplaced(&self) -> bool {
        self.desired.is_some() && self.zone.is_none()
    }

    fn fail_waiters(&mut self, zone: &str, failure: &CloudFailure) {
        for w in self.waiters.drain(..) {
            let _ = w.send(Err(DnsError::Remove {
                cloud: self.key.to_string(),
                zone: zone.to_owned(),
                source: failure.clone(),
            }));
        }
    }
}

/// The inputs of one zone round.
pub(super) struct RoundInputs {
    pub(super) desired: Vec<DesiredCloud>,
    /// Resources whose records must leave the zone.
    pub(super) removed: Vec<String>,
    pub(super) members: Vec<Member>,
}

/// What resolving zones asks of the worker.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Resolution {
    /// Zones with work to do now.
    pub(super) dirty: Vec<String>,
    /// Some cloud's zone was not found; look at the zone list again later.
    pub(super) unresolved: bool,
}

/// What a settled round asks of the worker.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Settled {
    /// Something failed: back the zone off.
    pub(super) any_failed: bool,
    /// A change may or may not have landed: plan the zone again.
    pub(super) replan: bool,
}

/// Every cloud the syncer tracks, by resource.
pub(super) struct Clouds {
    entries: BTreeMap<String, CloudEntry>,
    board: Arc<StatusBoard>,
}

impl Clouds {
    pub(super) fn new(board: Arc<StatusBoard>) -> Self {
        Self {
            entries: BTreeMap::new(),
            board,
        }
    }

    /// A cloud asks for `desired`. Returns the zones to plan again right away.
    pub(super) fn upsert(
        &mut self,
        key: CloudKey,
        desired: Desired,
        recorded: Vec<String>,
    ) -> Vec<String> {
        let resource = key.resource();
        let entry = self
            .entries
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
        entry.key = key;
        entry.fail_waiters("*", &CloudFailure::PublishedAgain);
        entry.desired = Some(desired);
        entry.generation += 1;
        let zones = entry.zones().cloned().collect();
        self.share(&resource);
        zones
    }

    /// A cloud is gone; `done` hears when its records are. Returns the zones to clean now.
    pub(super) fn remove(&mut self, key: CloudKey, done: RemovalWaiter) -> Vec<String> {
        let resource = key.resource();
        let entry = self
            .entries
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
        let zones = entry.cleanup.iter().cloned().collect();
        self.board.set_status(
            &key,
            CloudDnsStatus::Pending {
                reason: "removing DNS records".into(),
            },
        );
        self.share(&resource);
        zones
    }

    /// Every zone some cloud publishes to or cleans.
    pub(super) fn all_zones(&self) -> BTreeSet<String> {
        self.entries
            .values()
            .flat_map(|e| e.zones().cloned())
            .collect()
    }

    /// Some cloud waits for the zone list: to find its zone, or to clean up everywhere.
    pub(super) fn awaits_zone_list(&self) -> bool {
        self.entries
            .values()
            .any(|e| e.unplaced() || e.cleanup_everywhere)
    }

    /// Some cloud can only be placed by a fresh zone list: it has no zone hint, or must be
    /// cleaned up everywhere.
    pub(super) fn needs_zone_list(&self) -> bool {
        self.entries.values().any(|e| {
            (e.zone.is_none() && e.desired.as_ref().is_some_and(|d| d.zone_hint.is_none()))
                || e.cleanup_everywhere
        })
    }

    /// Some cloud is placed by its zone hint alone.
    pub(super) fn awaits_hinted_zone(&self) -> bool {
        self.entries
            .values()
            .any(|e| e.zone.is_none() && e.desired.as_ref().is_some_and(|d| d.zone_hint.is_some()))
    }

    /// The zone no longer exists: no cloud publishes there or has records to clean there any
    /// more, so those that published there need their zone resolved again.
    pub(super) fn forget_zone(&mut self, zone: &str) {
        let mut touched = Vec::new();
        for (resource, entry) in self.entries.iter_mut() {
            let published_there = entry.zone.as_deref() == Some(zone);
            if published_there {
                entry.zone = None;
            }
            if entry.cleanup.remove(zone) || published_there {
                touched.push(resource.clone());
            }
        }
        for resource in &touched {
            self.share(resource);
        }
    }

    /// The zone list could not be read and none is known: clouds waiting for it fail.
    pub(super) fn fail_resolution(&mut self, error: &Route53Error) {
        let failure = CloudFailure::from(error.clone());
        let mut keys = Vec::new();
        for e in self.entries.values_mut() {
            if e.cleanup_everywhere {
                e.fail_waiters("*", &failure);
            }
            if e.unplaced() {
                keys.push(e.key.clone());
            }
        }
        for k in keys {
            self.board.set_status(
                &k,
                CloudDnsStatus::Error {
                    message: failure.to_string(),
                },
            );
        }
    }

    /// Places clouds that have no zone yet (by hint, or by longest suffix among `listed`, the
    /// account's zones when known) and turns "clean up everywhere" into the listed zones.
    pub(super) fn resolve(&mut self, listed: Option<&[HostedZone]>) -> Resolution {
        let zones = listed.unwrap_or_default();
        let mut resolution = Resolution::default();
        let mut unresolved = Vec::new();
        let mut finished = Vec::new();
        for (resource, e) in self.entries.iter_mut() {
            if let Some(d) = &e.desired
                && e.zone.is_none()
            {
                if d.zone_hint.is_none() && listed.is_none() {
                    continue;
                }
                match zone_for(d, zones) {
                    Some(z) => {
                        e.cleanup.remove(&z);
                        resolution.dirty.push(z.clone());
                        // Cleanup waits for the resolution (see round_inputs).
                        resolution.dirty.extend(e.cleanup.iter().cloned());
                        e.zone = Some(z);
                    }
                    None => unresolved.push((e.key.clone(), d.zone_lookup_name().to_owned())),
                }
            }
            if e.cleanup_everywhere && listed.is_some() {
                e.cleanup_everywhere = false;
                for z in zones {
                    if e.zone.as_deref() != Some(z.id.as_str()) {
                        e.cleanup.insert(z.id.clone());
                    }
                }
                resolution.dirty.extend(e.cleanup.iter().cloned());
                if e.desired.is_none() && e.cleanup.is_empty() {
                    finished.push(resource.clone());
                }
            }
        }
        resolution.unresolved = !unresolved.is_empty();
        for (key, name) in unresolved {
            self.board.set_status(
                &key,
                CloudDnsStatus::Error {
                    message: format!(
                        "no Route53 hosted zone for {name} among the account's {} zone(s); create the zone or set the zone id explicitly",
                        zones.len()
                    ),
                },
            );
        }
        for resource in finished {
            self.finish_removal(&resource);
        }
        self.share_all();
        resolution
    }

    /// Who takes part in a round of `zone`, and what it should plan. `None` if nobody.
    /// `zone_list_known` is whether the account's zones are currently known.
    pub(super) fn round_inputs(&self, zone: &str, zone_list_known: bool) -> Option<RoundInputs> {
        let mut inputs = RoundInputs {
            desired: Vec::new(),
            removed: Vec::new(),
            members: Vec::new(),
        };
        for (resource, e) in &self.entries {
            if let Some(d) = &e.desired
                && e.zone.as_deref() == Some(zone)
            {
                inputs.desired.push(DesiredCloud {
                    resource: resource.clone(),
                    endpoints: d.endpoints.clone(),
                });
                inputs.members.push(Member {
                    resource: resource.clone(),
                    generation: e.generation,
                    removal: false,
                });
            }
            // A wanted cloud whose zone is not known yet (the zone list failed) may be about to
            // publish into one of its cleanup zones: removing from there would take it offline.
            let unresolved = e.unplaced() && !zone_list_known;
            if e.cleanup.contains(zone) && !unresolved {
                inputs.removed.push(resource.clone());
                inputs.members.push(Member {
                    resource: resource.clone(),
                    generation: e.generation,
                    removal: true,
                });
            }
        }
        (!inputs.members.is_empty()).then_some(inputs)
    }

    /// Takes in a finished round: statuses, finished removals, zones left to clean.
    pub(super) fn settle(&mut self, round: ZoneRound) -> Settled {
        let zone = round.zone;
        let mut settled = Settled::default();
        match round.result {
            Err(e) => {
                settled.any_failed = true;
                let failure = CloudFailure::from(e);
                for member in round.members {
                    let Some(entry) = self.entries.get_mut(&member.resource) else {
                        continue;
                    };
                    if member.removal {
                        entry.fail_waiters(&zone, &failure);
                    } else if entry.generation == member.generation
                        // A failed re-check does not unpublish what is published.
                        && !self.board.status(&entry.key).is_some_and(|s| s.is_ready())
                    {
                        self.board.set_status(
                            &entry.key,
                            CloudDnsStatus::Error {
                                message: failure.to_string(),
                            },
                        );
                    }
                }
            }
            Ok(results) => {
                let mut finished = Vec::new();
                for (member, result) in results {
                    let Some(entry) = self.entries.get_mut(&member.resource) else {
                        continue;
                    };
                    if member.removal {
                        match result {
                            CloudResult::Uncertain => settled.replan = true,
                            CloudResult::Failed(failure) => {
                                settled.any_failed = true;
                                entry.fail_waiters(&zone, &failure);
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
                            finished.push(member.resource);
                        }
                        continue;
                    }
                    if entry.generation != member.generation {
                        continue; // a newer request is on its way
                    }
                    let status = match result {
                        CloudResult::Ready => CloudDnsStatus::Ready,
                        CloudResult::Uncertain => {
                            settled.replan = true;
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
                        CloudResult::Failed(failure) => {
                            settled.any_failed = true;
                            CloudDnsStatus::Error {
                                message: failure.to_string(),
                            }
                        }
                    };
                    self.board.set_status(&entry.key, status);
                }
                for resource in finished {
                    self.finish_removal(&resource);
                }
            }
        }
        self.share_all();
        settled
    }

    /// The cloud's records are gone everywhere: forget it and tell whoever waits.
    fn finish_removal(&mut self, resource: &str) {
        self.board.clear_zones(resource);
        if let Some(e) = self.entries.remove(resource) {
            self.board.clear_status(&e.key);
            for w in e.waiters {
                let _ = w.send(Ok(()));
            }
        }
    }

    /// Publishes where the cloud's records may be, for [`super::DnsSyncer::zones`].
    fn share(&self, resource: &str) {
        match self.entries.get(resource) {
            Some(e) => {
                let zones: BTreeSet<String> = e.zones().cloned().collect();
                self.board
                    .set_zones(resource, &e.key, zones.into_iter().collect());
            }
            None => self.board.clear_zones(resource),
        }
    }

    fn share_all(&self) {
        for resource in self.entries.keys() {
            self.share(resource);
        }
    }
}

/// The zone a cloud's records go to: the one it names, else the longest suffix match.
fn zone_for(d: &Desired, zones: &[HostedZone]) -> Option<String> {
    if let Some(z) = &d.zone_hint {
        return Some(z.clone());
    }
    select_zone(d.zone_lookup_name(), zones).map(|z| z.id.clone())
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use tokio::sync::oneshot;

    use super::*;
    use crate::dns::record::Endpoint;
    use crate::dns::route53::SdkCause;

    const Z1: &str = "Z1";
    const Z2: &str = "Z2";

    fn key(name: &str) -> CloudKey {
        CloudKey::new("ns", name, format!("uid-{name}"))
    }

    fn desired(host: &str, zone_hint: Option<&str>) -> Desired {
        Desired {
            domain: "example.com".into(),
            zone_hint: zone_hint.map(str::to_owned),
            endpoints: vec![Endpoint::a(host, &["192.0.2.1"], 60)],
        }
    }

    fn zone(id: &str, name: &str) -> HostedZone {
        HostedZone {
            id: id.into(),
            name: name.into(),
            private: false,
        }
    }

    fn clouds() -> Clouds {
        Clouds::new(Arc::new(StatusBoard::new(Arc::default(), "test".into())))
    }

    /// A cloud published into `zone` by its hint, as after its first resolution.
    fn placed(c: &mut Clouds, name: &str, zone: &str) {
        c.upsert(
            key(name),
            desired(&format!("{name}.example.com"), Some(zone)),
            Vec::new(),
        );
        c.resolve(None);
    }

    fn round(c: &Clouds, zone: &str, result: impl Fn(&Member) -> CloudResult) -> ZoneRound {
        let members = c
            .round_inputs(zone, true)
            .expect("someone is in the round")
            .members;
        ZoneRound {
            zone: zone.into(),
            result: Ok(members.iter().map(|m| (m.clone(), result(m))).collect()),
            members,
        }
    }

    fn failed_round(c: &Clouds, zone: &str, error: Route53Error) -> ZoneRound {
        ZoneRound {
            zone: zone.into(),
            result: Err(error),
            members: c
                .round_inputs(zone, true)
                .expect("someone is in the round")
                .members,
        }
    }

    fn throttled() -> Route53Error {
        Route53Error::GaveUp {
            operation: "ListResourceRecordSets",
            attempts: 5,
            code: "Throttling".into(),
            message: "Rate exceeded".into(),
            source: SdkCause::new(std::io::Error::other("throttled")),
        }
    }

    fn no_such_zone() -> Route53Error {
        Route53Error::Failed {
            operation: "ListResourceRecordSets",
            code: "NoSuchHostedZone".into(),
            message: "No hosted zone found with ID: Z1".into(),
            source: SdkCause::new(std::io::Error::other("404")),
        }
    }

    fn status(c: &Clouds, name: &str) -> Option<CloudDnsStatus> {
        c.board.status(&key(name))
    }

    #[test]
    fn a_clouds_status_after_a_round() {
        let error = |e: &Route53Error| CloudDnsStatus::Error {
            message: e.to_string(),
        };
        let cases: Vec<(&str, CloudResult, CloudDnsStatus, Settled)> = vec![
            (
                "published",
                CloudResult::Ready,
                CloudDnsStatus::Ready,
                Settled::default(),
            ),
            (
                "uncertain",
                CloudResult::Uncertain,
                CloudDnsStatus::Pending {
                    reason: "re-checking the zone after an interrupted change".into(),
                },
                Settled {
                    any_failed: false,
                    replan: true,
                },
            ),
            (
                "dry run",
                CloudResult::DryRun(2),
                CloudDnsStatus::Pending {
                    reason: "dry run: 2 change(s) planned, not applied".into(),
                },
                Settled::default(),
            ),
            (
                "conflict",
                CloudResult::Conflict {
                    name: "a.example.com".into(),
                    detail: "foreign".into(),
                },
                CloudDnsStatus::Conflict {
                    name: "a.example.com".into(),
                    detail: "foreign".into(),
                },
                Settled::default(),
            ),
            (
                "failed",
                CloudResult::Failed(throttled().into()),
                error(&throttled()),
                Settled {
                    any_failed: true,
                    replan: false,
                },
            ),
        ];
        for (case, result, want, want_settled) in cases {
            let mut c = clouds();
            placed(&mut c, "a", Z1);
            let r = round(&c, Z1, |_| result.clone());
            assert_eq!(c.settle(r), want_settled, "{case}");
            assert_eq!(status(&c, "a"), Some(want), "{case}");
        }
    }

    #[test]
    fn a_failed_round_marks_a_pending_cloud_failed_but_leaves_a_published_one_ready() {
        let mut c = clouds();
        placed(&mut c, "a", Z1);
        let r = failed_round(&c, Z1, throttled());
        assert!(c.settle(r).any_failed);
        assert_eq!(
            status(&c, "a"),
            Some(CloudDnsStatus::Error {
                message: throttled().to_string()
            })
        );

        let mut c = clouds();
        placed(&mut c, "a", Z1);
        let r = round(&c, Z1, |_| CloudResult::Ready);
        c.settle(r);
        let r = failed_round(&c, Z1, throttled());
        assert!(c.settle(r).any_failed);
        assert_eq!(status(&c, "a"), Some(CloudDnsStatus::Ready));
    }

    #[test]
    fn a_result_for_an_older_request_is_ignored() {
        let mut c = clouds();
        placed(&mut c, "a", Z1);
        let r = round(&c, Z1, |_| CloudResult::Ready);
        // Asked for something else while the round was in flight.
        c.upsert(key("a"), desired("b.example.com", Some(Z1)), Vec::new());
        c.settle(r);
        assert!(matches!(
            status(&c, "a"),
            Some(CloudDnsStatus::Pending { .. }) | None
        ));
        assert_ne!(status(&c, "a"), Some(CloudDnsStatus::Ready));
    }

    #[test]
    fn a_missing_zone_is_forgotten_and_its_clouds_placed_again() {
        let mut c = clouds();
        placed(&mut c, "a", Z1);
        // b moved from Z1 to Z2: Z1 is a zone it still has to clean.
        c.upsert(key("b"), desired("b.example.com", Some(Z1)), Vec::new());
        c.resolve(None);
        c.upsert(key("b"), desired("b.example.com", Some(Z2)), Vec::new());
        c.resolve(None);
        assert_eq!(c.board.zones(&key("b")), Some(vec![Z1.into(), Z2.into()]));

        c.forget_zone(Z1);
        assert_eq!(c.board.zones(&key("a")), Some(vec![]));
        assert_eq!(c.board.zones(&key("b")), Some(vec![Z2.into()]));
        assert!(c.round_inputs(Z1, true).is_none(), "nobody is left in Z1");
        // a has no zone again; the next resolution places it (here by its hint again).
        assert!(c.awaits_zone_list());
        let resolution = c.resolve(None);
        assert_eq!(resolution.dirty, [Z1]);
        assert_eq!(c.board.zones(&key("a")), Some(vec![Z1.into()]));
        // A failed round in a missing zone still fails the cloud until it is published again.
        let r = failed_round(&c, Z1, no_such_zone());
        c.settle(r);
        assert!(matches!(
            status(&c, "a"),
            Some(CloudDnsStatus::Error { .. })
        ));
    }

    #[test]
    fn placement_by_longest_suffix_cleans_the_recorded_zones_it_left() {
        let mut c = clouds();
        c.upsert(
            key("a"),
            desired("a.dev.example.com", None),
            vec![Z1.into(), "Z9".into()],
        );
        assert!(c.needs_zone_list());
        assert_eq!(
            c.resolve(None),
            Resolution::default(),
            "waits for the zone list"
        );
        let listed = [zone(Z1, "example.com"), zone(Z2, "dev.example.com")];
        let resolution = c.resolve(Some(&listed));
        assert_eq!(resolution.dirty, [Z2, Z1, "Z9"]);
        assert!(!resolution.unresolved);
        let inputs = c.round_inputs(Z1, true).unwrap();
        assert_eq!(inputs.removed, ["insynccloud/ns/a"]);
        assert!(inputs.desired.is_empty());
        // The cleanup round finishes: Z1 is clean, the cloud keeps publishing into Z2.
        let r = round(&c, Z1, |_| CloudResult::Ready);
        c.settle(r);
        assert_eq!(c.board.zones(&key("a")), Some(vec![Z2.into(), "Z9".into()]));
    }

    #[test]
    fn a_cloud_without_a_zone_is_told_how_to_fix_it() {
        let mut c = clouds();
        c.upsert(key("a"), desired("a.other.org", None), Vec::new());
        let resolution = c.resolve(Some(&[zone(Z1, "example.com")]));
        assert!(resolution.unresolved);
        let Some(CloudDnsStatus::Error { message }) = status(&c, "a") else {
            panic!("{:?}", status(&c, "a"));
        };
        assert!(
            message.contains("no Route53 hosted zone for a.other.org"),
            "{message}"
        );
        assert!(message.contains("set the zone id explicitly"), "{message}");
    }

    #[test]
    fn cleanup_waits_while_a_wanted_cloud_has_no_zone_list() {
        let mut c = clouds();
        c.upsert(key("a"), desired("a.example.com", None), vec![Z1.into()]);
        assert!(
            c.round_inputs(Z1, false).is_none(),
            "it may be about to publish into Z1"
        );
        assert!(c.round_inputs(Z1, true).is_some());
    }

    #[test]
    fn a_removal_ends_when_every_zone_is_clean() {
        let mut c = clouds();
        placed(&mut c, "a", Z1);
        let (done, mut wait) = oneshot::channel();
        assert_eq!(c.remove(key("a"), done), [Z1]);
        assert!(matches!(
            status(&c, "a"),
            Some(CloudDnsStatus::Pending { .. })
        ));
        let r = round(&c, Z1, |m| {
            assert!(m.removal);
            CloudResult::Ready
        });
        c.settle(r);
        assert_eq!(wait.try_recv().unwrap(), Ok(()));
        assert_eq!(status(&c, "a"), None);
        assert_eq!(c.board.zones(&key("a")), None);
    }

    #[test]
    fn a_removal_of_an_unknown_cloud_looks_in_every_zone() {
        let mut c = clouds();
        let (done, _wait) = oneshot::channel();
        assert!(c.remove(key("a"), done).is_empty());
        assert!(c.needs_zone_list());
        let resolution = c.resolve(Some(&[zone(Z1, "example.com"), zone(Z2, "example.org")]));
        assert_eq!(resolution.dirty, [Z1, Z2]);
        assert_eq!(c.board.zones(&key("a")), Some(vec![Z1.into(), Z2.into()]));
    }

    #[test]
    fn a_failed_removal_keeps_its_cause_in_the_error_chain() {
        let mut c = clouds();
        placed(&mut c, "a", Z1);
        let (done, mut wait) = oneshot::channel();
        c.remove(key("a"), done);
        let r = failed_round(&c, Z1, throttled());
        c.settle(r);
        let err = wait.try_recv().unwrap().unwrap_err();
        assert!(
            matches!(&err, DnsError::Remove { zone, .. } if zone == Z1),
            "{err:?}"
        );
        let source = err.source().expect("the removal error keeps its cause");
        let failure = source
            .downcast_ref::<CloudFailure>()
            .expect("a CloudFailure");
        assert_eq!(failure, &CloudFailure::from(throttled()));
        assert!(err.to_string().contains("Rate exceeded"), "{err}");
        // The cloud is still tracked and its zone still to be cleaned.
        assert_eq!(c.board.zones(&key("a")), Some(vec![Z1.into()]));
    }

    #[test]
    fn publishing_again_supersedes_a_pending_removal() {
        let mut c = clouds();
        placed(&mut c, "a", Z1);
        let (done, mut wait) = oneshot::channel();
        c.remove(key("a"), done);
        c.upsert(key("a"), desired("a.example.com", Some(Z1)), Vec::new());
        let err = wait.try_recv().unwrap().unwrap_err();
        assert_eq!(
            err,
            DnsError::Remove {
                cloud: key("a").to_string(),
                zone: "*".into(),
                source: CloudFailure::PublishedAgain
            }
        );
    }

    #[test]
    fn a_zone_list_failure_fails_waiting_clouds_with_its_cause() {
        let mut c = clouds();
        c.upsert(key("a"), desired("a.example.com", None), Vec::new());
        let (done, mut wait) = oneshot::channel();
        c.remove(key("b"), done);
        c.fail_resolution(&throttled());
        assert_eq!(
            status(&c, "a"),
            Some(CloudDnsStatus::Error {
                message: throttled().to_string()
            })
        );
        let err = wait.try_recv().unwrap().unwrap_err();
        assert!(err.source().is_some(), "{err:?}");
    }
}
