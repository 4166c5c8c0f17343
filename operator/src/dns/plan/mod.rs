//! The plan: current zone records + desired endpoints in, changes out. Pure.
//!
//! Rules (see the module docs of [`crate::dns`] for the whole picture):
//! - A record is ours only when its TXT companion (see [`TxtRegistry`]) names our owner id.
//!   Records of other owners, or without a TXT companion, are never created over, changed or
//!   deleted: a cloud that wants such a name gets [`PlanOutcome::Conflict`].
//! - A name owned by another cloud of ours that is still desired is a conflict too; a name owned
//!   by a cloud being removed in the same plan is taken over in place.
//! - Records owned by clouds in `removed`, and records of desired clouds at names they no
//!   longer want, are deleted together with their TXT companions. Owned records of clouds that
//!   are neither desired nor removed are left alone (after a restart the syncer may simply not
//!   have heard of them yet).
//! - Each record change travels with its TXT change in one [`ChangeGroup`], which the batcher
//!   never splits.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::dns::record::{Endpoint, EndpointError, RecordType, normalize_name};
use crate::dns::registry::TxtRegistry;
use crate::dns::zone::name_in_zone;

/// Route53 TTL of ownership TXT records that accompany ALIAS records (which have no TTL).
const ALIAS_TXT_TTL: u32 = 300;

/// The target of a Route53 ALIAS record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AliasValue {
    /// Canonical hosted zone id of the target.
    pub hosted_zone_id: String,
    /// The target's DNS name, normalized.
    pub dns_name: String,
    /// Route53's `EvaluateTargetHealth`.
    pub evaluate_target_health: bool,
}

/// A record set as listed from, or sent to, a zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordSet {
    /// Normalized name (lower case, no trailing dot).
    pub name: String,
    /// Route53 type, upper case (`A`, `CNAME`, `TXT`, ...).
    pub rtype: String,
    /// Routing-policy identifier; the operator only writes simple records (none).
    pub set_identifier: Option<String>,
    /// TTL; `None` for ALIAS records.
    pub ttl: Option<i64>,
    /// Values in zone order (empty for ALIAS records).
    pub values: Vec<String>,
    /// Alias target, for ALIAS records.
    pub alias: Option<AliasValue>,
}

impl RecordSet {
    /// The record set an endpoint becomes.
    pub(crate) fn from_endpoint(ep: &Endpoint) -> RecordSet {
        match &ep.record_type {
            RecordType::A => RecordSet {
                name: ep.dns_name.clone(),
                rtype: "A".into(),
                set_identifier: None,
                ttl: Some(i64::from(ep.ttl)),
                values: ep.targets.clone(),
                alias: None,
            },
            RecordType::Cname => RecordSet {
                name: ep.dns_name.clone(),
                rtype: "CNAME".into(),
                set_identifier: None,
                ttl: Some(i64::from(ep.ttl)),
                values: ep.targets.iter().map(|t| normalize_name(t)).collect(),
                alias: None,
            },
            RecordType::Alias { hosted_zone_id } => RecordSet {
                name: ep.dns_name.clone(),
                rtype: "A".into(),
                set_identifier: None,
                ttl: None,
                values: Vec::new(),
                alias: Some(AliasValue {
                    hosted_zone_id: hosted_zone_id.clone(),
                    dns_name: ep
                        .targets
                        .first()
                        .map(|t| normalize_name(t))
                        .unwrap_or_default(),
                    evaluate_target_health: false,
                }),
            },
        }
    }

    /// Whether `self` (as listed) already serves what `desired` asks for.
    fn serves(&self, desired: &RecordSet) -> bool {
        if self.rtype != desired.rtype || self.set_identifier.is_some() {
            return false;
        }
        match (&self.alias, &desired.alias) {
            (Some(a), Some(b)) => {
                normalize_name(&a.dns_name) == normalize_name(&b.dns_name)
                    && crate::dns::zone::normalize_zone_id(&a.hosted_zone_id)
                        == crate::dns::zone::normalize_zone_id(&b.hosted_zone_id)
                    && a.evaluate_target_health == b.evaluate_target_health
            }
            (None, None) => {
                let norm = |vals: &[String]| {
                    let mut v: Vec<String> = vals
                        .iter()
                        .map(|s| {
                            if self.rtype == "CNAME" {
                                normalize_name(s)
                            } else {
                                s.trim().to_owned()
                            }
                        })
                        .collect();
                    v.sort();
                    v
                };
                self.ttl == desired.ttl && norm(&self.values) == norm(&desired.values)
            }
            _ => false,
        }
    }
}

/// What to do with one record set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ChangeAction {
    /// Create; fails if the record appeared meanwhile (which is what we want).
    Create,
    /// Create or replace; only used on records we own.
    Upsert,
    /// Delete; carries the exact current record, so it fails if someone changed it.
    Delete,
}

/// One change of one record set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Change {
    /// Create, upsert or delete.
    pub(crate) action: ChangeAction,
    /// The record set (for deletes: exactly as listed).
    pub(crate) record: RecordSet,
}

/// Changes that must land together: a record and its ownership TXT (and, when a record changes
/// type, the deletion of the old one). Attributed to one cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeGroup {
    /// Owning resource, `insynccloud/<ns>/<name>`.
    pub(crate) resource: String,
    /// The DNS name the group is about.
    pub(crate) name: String,
    /// Deletes first, then creates/upserts.
    pub(crate) changes: Vec<Change>,
}

/// A cloud's desired endpoints in one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredCloud {
    /// Owning resource, `insynccloud/<ns>/<name>`.
    pub resource: String,
    /// Endpoints to publish (all in this zone).
    pub endpoints: Vec<Endpoint>,
}

/// The planned state of one cloud in one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanOutcome {
    /// Nothing to change.
    InSync,
    /// Changes planned (see the groups of the same resource).
    Changes,
    /// A desired name is held by a record we do not own, or by another cloud.
    Conflict {
        /// The contested DNS name.
        name: String,
        /// Who holds it.
        detail: String,
    },
    /// The desired endpoints cannot be published as given; nothing of this cloud is touched.
    Invalid(Unpublishable),
}

/// Why a cloud's endpoints cannot be published into a zone as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unpublishable {
    /// An endpoint is malformed.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// Two endpoints have the same name.
    #[error("{name} is listed twice; publish one record per name")]
    Duplicate {
        /// The repeated DNS name.
        name: String,
    },
    /// A name lies outside the zone the cloud resolved to.
    #[error("{name} is not in hosted zone {zone}; fix spec.dns.domain or the zone id")]
    OutsideZone {
        /// The DNS name.
        name: String,
        /// The zone's name.
        zone: String,
    },
    /// The ownership TXT record's name would not be a valid DNS name.
    #[error(
        "ownership TXT name {txt} would be too long (labels are at most 63 characters); use a shorter cloud name or --dns-txt-prefix"
    )]
    TxtNameTooLong {
        /// The TXT record's name.
        txt: String,
    },
}

/// Everything planned for one zone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ZonePlan {
    /// Change groups, ordered by resource then name.
    pub groups: Vec<ChangeGroup>,
    /// One outcome per desired or removed resource.
    pub outcomes: BTreeMap<String, PlanOutcome>,
}

impl ZonePlan {
    /// Number of individual record changes.
    pub(crate) fn change_count(&self) -> usize {
        self.groups.iter().map(|g| g.changes.len()).sum()
    }
}

enum Holder {
    Us(String),
    Foreign(String),
}

struct Index<'a> {
    by_name: HashMap<&'a str, Vec<&'a RecordSet>>,
    registry: &'a TxtRegistry,
}

impl<'a> Index<'a> {
    fn new(current: &'a [RecordSet], registry: &'a TxtRegistry) -> Self {
        let mut by_name: HashMap<&str, Vec<&RecordSet>> = HashMap::new();
        for r in current {
            by_name.entry(r.name.as_str()).or_default().push(r);
        }
        Self { by_name, registry }
    }

    fn at(&self, name: &str) -> &[&'a RecordSet] {
        self.by_name.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    fn simple(&self, name: &str, rtype: &str) -> Option<&'a RecordSet> {
        self.at(name)
            .iter()
            .copied()
            .find(|r| r.rtype == rtype && r.set_identifier.is_none())
    }

    /// Who the TXT record at `txt_name` says owns the companion record; `None` if no TXT.
    fn txt_holder(&self, txt_name: &str) -> Option<Holder> {
        let txt = self.simple(txt_name, "TXT")?;
        Some(match self.registry.owned_by_us(&txt.values) {
            Some(o) => Holder::Us(o.resource),
            None => {
                let other = txt
                    .values
                    .iter()
                    .find_map(|v| crate::dns::registry::Ownership::parse_txt(v));
                Holder::Foreign(match other {
                    Some(o) => format!(
                        "owned by another insync-operator instance ({o}); this one is {:?}",
                        self.registry.owner_id()
                    ),
                    None => format!(
                        "TXT record {txt_name} exists and was not written by insync-operator"
                    ),
                })
            }
        })
    }

    fn record_holder(&self, r: &RecordSet) -> Holder {
        if r.set_identifier.is_some() {
            return Holder::Foreign(format!(
                "an existing {} record with routing policy (set identifier {:?}) not managed by insync-operator",
                r.rtype,
                r.set_identifier.as_deref().unwrap_or_default()
            ));
        }
        match self.txt_holder(&self.registry.txt_name(&r.rtype, &r.name)) {
            Some(h) => h,
            None => Holder::Foreign(format!(
                "an existing {} record without an insync-operator ownership TXT record",
                r.rtype
            )),
        }
    }
}

fn validate_cloud(
    cloud: &DesiredCloud,
    zone_name: Option<&str>,
    registry: &TxtRegistry,
) -> Result<(), Unpublishable> {
    let mut names = HashSet::new();
    for ep in &cloud.endpoints {
        ep.validate()?;
        if !names.insert(ep.dns_name.as_str()) {
            return Err(Unpublishable::Duplicate {
                name: ep.dns_name.clone(),
            });
        }
        if let Some(zone) = zone_name
            && !name_in_zone(&ep.dns_name, zone)
        {
            return Err(Unpublishable::OutsideZone {
                name: ep.dns_name.clone(),
                zone: zone.to_owned(),
            });
        }
        let txt = registry.txt_name(ep.record_type.route53_type(), &ep.dns_name);
        let first = txt.split('.').next().unwrap_or_default();
        if first.len() > 63 || txt.len() > 253 {
            return Err(Unpublishable::TxtNameTooLong { txt });
        }
    }
    Ok(())
}

fn txt_record(name: String, value: String, ttl: u32) -> RecordSet {
    RecordSet {
        name,
        rtype: "TXT".into(),
        set_identifier: None,
        ttl: Some(i64::from(ttl)),
        values: vec![value],
        alias: None,
    }
}

/// Plans one zone. `zone_name` (normalized) lets names outside the zone be refused up front.
pub fn plan_zone(
    zone_name: Option<&str>,
    current: &[RecordSet],
    desired: &[DesiredCloud],
    removed: &[String],
    registry: &TxtRegistry,
) -> ZonePlan {
    let idx = Index::new(current, registry);
    let removed_set: HashSet<&str> = removed.iter().map(String::as_str).collect();
    let mut outcomes = BTreeMap::new();
    let mut groups: BTreeMap<(String, String), Vec<Change>> = BTreeMap::new();
    // Names claimed by a desired cloud in this plan → that cloud.
    let mut claimed: HashMap<String, String> = HashMap::new();
    // TXT records and records already dealt with by the desired pass.
    let mut handled_txt: HashSet<String> = HashSet::new();
    let mut handled_rec: HashSet<(String, String)> = HashSet::new();
    // Resources whose stale records may be cleaned up.
    let mut cleanable: HashSet<&str> = removed_set.clone();

    let mut sorted: Vec<&DesiredCloud> = desired.iter().collect();
    sorted.sort_by(|a, b| a.resource.cmp(&b.resource));

    for cloud in sorted {
        let r = cloud.resource.as_str();
        if let Err(why) = validate_cloud(cloud, zone_name, registry) {
            outcomes.insert(r.to_owned(), PlanOutcome::Invalid(why));
            continue;
        }
        cleanable.insert(r);
        let manageable = |holder: &str| holder == r || removed_set.contains(holder);
        let mut conflict: Option<(String, String)> = None;

        for ep in &cloud.endpoints {
            let name = ep.dns_name.as_str();
            let ty = ep.record_type.route53_type();
            if let Some(other) = claimed.get(name) {
                conflict.get_or_insert((
                    name.to_owned(),
                    format!(
                        "also wanted by {other} in this operator; give each cloud its own name"
                    ),
                ));
                continue;
            }
            // Does anything at this name stop us?
            let mut blocked: Option<String> = None;
            for x in idx.at(name) {
                let relevant = if ty == "CNAME" {
                    true // a CNAME may not share its name with anything
                } else {
                    x.rtype == ty || x.rtype == "CNAME"
                };
                if !relevant {
                    continue;
                }
                match idx.record_holder(x) {
                    Holder::Us(h) if manageable(&h) => {}
                    Holder::Us(h) => {
                        blocked = Some(format!("held by {h} (same operator)"));
                        break;
                    }
                    Holder::Foreign(d) => {
                        blocked = Some(d);
                        break;
                    }
                }
            }
            let txt_name = registry.txt_name(ty, name);
            if blocked.is_none() {
                match idx.txt_holder(&txt_name) {
                    Some(Holder::Us(h)) if !manageable(&h) => {
                        blocked = Some(format!(
                            "ownership TXT record {txt_name} belongs to {h} (same operator)"
                        ));
                    }
                    Some(Holder::Foreign(d)) => blocked = Some(d),
                    _ => {}
                }
            }
            if let Some(detail) = blocked {
                conflict.get_or_insert((name.to_owned(), detail));
                continue;
            }
            claimed.insert(name.to_owned(), r.to_owned());

            let want = RecordSet::from_endpoint(ep);
            let mut changes = Vec::new();
            // Our records of another type at this name go first (e.g. CNAME → A).
            for x in idx.at(name) {
                if x.rtype == ty || x.rtype == "TXT" || x.set_identifier.is_some() {
                    continue;
                }
                if let Holder::Us(h) = idx.record_holder(x)
                    && manageable(&h)
                {
                    changes.push(Change {
                        action: ChangeAction::Delete,
                        record: (*x).clone(),
                    });
                    handled_rec.insert((x.name.clone(), x.rtype.clone()));
                    let old_txt = registry.txt_name(&x.rtype, name);
                    if let Some(t) = idx.simple(&old_txt, "TXT") {
                        changes.push(Change {
                            action: ChangeAction::Delete,
                            record: t.clone(),
                        });
                    }
                    handled_txt.insert(old_txt);
                }
            }
            match idx.simple(name, ty) {
                Some(x) if x.serves(&want) => {}
                Some(_) => changes.push(Change {
                    action: ChangeAction::Upsert,
                    record: want.clone(),
                }),
                None => changes.push(Change {
                    action: ChangeAction::Create,
                    record: want.clone(),
                }),
            }
            handled_rec.insert((name.to_owned(), ty.to_owned()));
            let value = registry.ownership(r).to_txt_value();
            let ttl = if want.alias.is_some() {
                ALIAS_TXT_TTL
            } else {
                ep.ttl
            };
            match idx.simple(&txt_name, "TXT") {
                Some(t) if t.values.len() == 1 && t.values[0] == value => {}
                Some(_) => changes.push(Change {
                    action: ChangeAction::Upsert,
                    record: txt_record(txt_name.clone(), value, ttl),
                }),
                None => changes.push(Change {
                    action: ChangeAction::Create,
                    record: txt_record(txt_name.clone(), value, ttl),
                }),
            }
            handled_txt.insert(txt_name);
            if !changes.is_empty() {
                groups.insert((r.to_owned(), name.to_owned()), changes);
            }
        }
        let outcome = match conflict {
            Some((name, detail)) => PlanOutcome::Conflict { name, detail },
            None => PlanOutcome::InSync,
        };
        outcomes.insert(r.to_owned(), outcome);
    }

    // Cleanup: owned records of removed clouds, and of desired clouds at names they dropped.
    for t in current {
        if t.rtype != "TXT" || t.set_identifier.is_some() || handled_txt.contains(&t.name) {
            continue;
        }
        let Some(owner) = registry.owned_by_us(&t.values) else {
            continue;
        };
        if !cleanable.contains(owner.resource.as_str()) {
            continue;
        }
        let Some((ty, name)) = registry.parse_txt_name(&t.name) else {
            continue;
        };
        let mut changes = Vec::new();
        if !handled_rec.contains(&(name.clone(), ty.clone()))
            && let Some(x) = idx.simple(&name, &ty)
        {
            changes.push(Change {
                action: ChangeAction::Delete,
                record: x.clone(),
            });
            handled_rec.insert((name.clone(), ty.clone()));
        }
        changes.push(Change {
            action: ChangeAction::Delete,
            record: t.clone(),
        });
        groups
            .entry((owner.resource.clone(), name))
            .or_default()
            .extend(changes);
    }

    for r in removed {
        outcomes.entry(r.clone()).or_insert(PlanOutcome::InSync);
    }
    let groups: Vec<ChangeGroup> = groups
        .into_iter()
        .map(|((resource, name), mut changes)| {
            // Deletes before creates/upserts inside a group (stable otherwise).
            changes.sort_by_key(|c| c.action != ChangeAction::Delete);
            ChangeGroup {
                resource,
                name,
                changes,
            }
        })
        .collect();
    for g in &groups {
        if let Some(o @ PlanOutcome::InSync) = outcomes.get_mut(&g.resource) {
            *o = PlanOutcome::Changes;
        }
    }
    ZonePlan { groups, outcomes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::record::Endpoint;

    const A: &str = "insynccloud/ns/a";
    const B: &str = "insynccloud/ns/b";

    fn reg() -> TxtRegistry {
        TxtRegistry::new("me", "insync-").unwrap()
    }

    fn rec(name: &str, ty: &str, values: &[&str]) -> RecordSet {
        RecordSet {
            name: name.into(),
            rtype: ty.into(),
            set_identifier: None,
            ttl: Some(60),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
            alias: None,
        }
    }

    fn owned(name: &str, ty: &str, values: &[&str], owner: &str, resource: &str) -> Vec<RecordSet> {
        let reg = TxtRegistry::new(owner, "insync-").unwrap();
        vec![
            rec(name, ty, values),
            rec(
                &reg.txt_name(ty, name),
                "TXT",
                &[&reg.ownership(resource).to_txt_value()],
            ),
        ]
    }

    fn want(resource: &str, eps: Vec<Endpoint>) -> DesiredCloud {
        DesiredCloud {
            resource: resource.into(),
            endpoints: eps,
        }
    }

    fn actions(plan: &ZonePlan) -> Vec<(ChangeAction, String, String)> {
        plan.groups
            .iter()
            .flat_map(|g| g.changes.iter())
            .map(|c| (c.action, c.record.rtype.clone(), c.record.name.clone()))
            .collect()
    }

    #[test]
    fn creates_record_and_txt_in_one_group() {
        let plan = plan_zone(
            Some("d.org"),
            &[rec("d.org", "NS", &["ns1."])],
            &[want(A, vec![Endpoint::a("a.d.org", &["10.0.0.1"], 60)])],
            &[],
            &reg(),
        );
        assert_eq!(plan.groups.len(), 1);
        assert_eq!(
            actions(&plan),
            vec![
                (ChangeAction::Create, "A".into(), "a.d.org".into()),
                (
                    ChangeAction::Create,
                    "TXT".into(),
                    "insync-a-a.d.org".into()
                ),
            ]
        );
        assert_eq!(plan.outcomes[A], PlanOutcome::Changes);
    }

    #[test]
    fn steady_state_plans_nothing() {
        let current = owned("a.d.org", "A", &["10.0.0.2", "10.0.0.1"], "me", A);
        let plan = plan_zone(
            Some("d.org"),
            &current,
            &[want(
                A,
                vec![Endpoint::a("a.d.org", &["10.0.0.1", "10.0.0.2"], 60)],
            )],
            &[],
            &reg(),
        );
        assert!(plan.groups.is_empty());
        assert_eq!(plan.outcomes[A], PlanOutcome::InSync);
    }

    #[test]
    fn changed_targets_upsert_only_the_record() {
        let current = owned("a.d.org", "A", &["10.0.0.1"], "me", A);
        let plan = plan_zone(
            None,
            &current,
            &[want(A, vec![Endpoint::a("a.d.org", &["10.0.0.9"], 60)])],
            &[],
            &reg(),
        );
        assert_eq!(
            actions(&plan),
            vec![(ChangeAction::Upsert, "A".into(), "a.d.org".into())]
        );
    }

    #[test]
    fn type_change_deletes_old_record_and_txt_first() {
        let current = owned("a.d.org", "CNAME", &["lb.example.com"], "me", A);
        let plan = plan_zone(
            None,
            &current,
            &[want(A, vec![Endpoint::a("a.d.org", &["10.0.0.9"], 60)])],
            &[],
            &reg(),
        );
        assert_eq!(plan.groups.len(), 1);
        assert_eq!(
            actions(&plan),
            vec![
                (ChangeAction::Delete, "CNAME".into(), "a.d.org".into()),
                (
                    ChangeAction::Delete,
                    "TXT".into(),
                    "insync-cname-a.d.org".into()
                ),
                (ChangeAction::Create, "A".into(), "a.d.org".into()),
                (
                    ChangeAction::Create,
                    "TXT".into(),
                    "insync-a-a.d.org".into()
                ),
            ]
        );
    }

    #[test]
    fn foreign_record_is_a_conflict_and_untouched() {
        let current = vec![rec("a.d.org", "A", &["1.1.1.1"])];
        let plan = plan_zone(
            None,
            &current,
            &[want(A, vec![Endpoint::a("a.d.org", &["10.0.0.1"], 60)])],
            &[],
            &reg(),
        );
        assert!(plan.groups.is_empty());
        assert!(matches!(
            &plan.outcomes[A],
            PlanOutcome::Conflict { name, detail } if name == "a.d.org" && detail.contains("without")
        ));
    }

    #[test]
    fn other_owner_ids_and_foreign_txt_at_our_txt_name_conflict() {
        let current = owned("a.d.org", "A", &["1.1.1.1"], "someone-else", A);
        let plan = plan_zone(
            None,
            &current,
            &[want(A, vec![Endpoint::a("a.d.org", &["10.0.0.1"], 60)])],
            &[A.to_owned()],
            &reg(),
        );
        assert!(plan.groups.is_empty(), "{:?}", plan.groups);
        assert!(
            matches!(&plan.outcomes[A], PlanOutcome::Conflict { detail, .. } if detail.contains("another insync-operator"))
        );

        let current = vec![rec("insync-a-a.d.org", "TXT", &["\"hello\""])];
        let plan = plan_zone(
            None,
            &current,
            &[want(A, vec![Endpoint::a("a.d.org", &["10.0.0.1"], 60)])],
            &[],
            &reg(),
        );
        assert!(plan.groups.is_empty());
        assert!(matches!(&plan.outcomes[A], PlanOutcome::Conflict { .. }));
    }

    #[test]
    fn foreign_txt_at_the_name_blocks_a_cname_but_not_an_a() {
        let current = vec![rec("a.d.org", "TXT", &["\"v=spf1 -all\""])];
        let plan = plan_zone(
            None,
            &current,
            &[want(
                A,
                vec![Endpoint::cname("a.d.org", "lb.example.com", 60)],
            )],
            &[],
            &reg(),
        );
        assert!(matches!(&plan.outcomes[A], PlanOutcome::Conflict { .. }));
        let plan = plan_zone(
            None,
            &current,
            &[want(A, vec![Endpoint::a("a.d.org", &["10.0.0.1"], 60)])],
            &[],
            &reg(),
        );
        assert_eq!(plan.outcomes[A], PlanOutcome::Changes);
    }

    #[test]
    fn two_clouds_one_name_first_wins_second_conflicts() {
        let plan = plan_zone(
            None,
            &[],
            &[
                want(B, vec![Endpoint::a("x.d.org", &["10.0.0.2"], 60)]),
                want(A, vec![Endpoint::a("x.d.org", &["10.0.0.1"], 60)]),
            ],
            &[],
            &reg(),
        );
        assert_eq!(plan.outcomes[A], PlanOutcome::Changes);
        assert!(
            matches!(&plan.outcomes[B], PlanOutcome::Conflict { detail, .. } if detail.contains(A))
        );
        assert_eq!(plan.groups.len(), 1);
        // Once A holds it, B keeps conflicting even though B sorts after.
        let current = owned("x.d.org", "A", &["10.0.0.1"], "me", A);
        let plan = plan_zone(
            None,
            &current,
            &[want(B, vec![Endpoint::a("x.d.org", &["10.0.0.2"], 60)])],
            &[],
            &reg(),
        );
        assert!(plan.groups.is_empty());
        assert!(
            matches!(&plan.outcomes[B], PlanOutcome::Conflict { detail, .. } if detail.contains(A))
        );
    }

    #[test]
    fn removed_clouds_are_deleted_unknown_ones_left_alone() {
        let mut current = owned("a.d.org", "A", &["10.0.0.1"], "me", A);
        current.extend(owned("b.d.org", "A", &["10.0.0.2"], "me", B));
        current.push(rec("c.d.org", "A", &["10.0.0.3"]));
        let plan = plan_zone(None, &current, &[], &[A.to_owned()], &reg());
        assert_eq!(
            actions(&plan),
            vec![
                (ChangeAction::Delete, "A".into(), "a.d.org".into()),
                (
                    ChangeAction::Delete,
                    "TXT".into(),
                    "insync-a-a.d.org".into()
                ),
            ]
        );
        assert_eq!(plan.groups[0].resource, A);
        assert_eq!(plan.outcomes[A], PlanOutcome::Changes);
        assert!(!plan.outcomes.contains_key(B));
        // Exact current values travel with the delete.
        assert_eq!(
            plan.groups[0].changes[0].record.values,
            vec!["10.0.0.1".to_owned()]
        );
    }

    #[test]
    fn renamed_cloud_creates_new_and_deletes_old() {
        let current = owned("old.d.org", "A", &["10.0.0.1"], "me", A);
        let plan = plan_zone(
            None,
            &current,
            &[want(A, vec![Endpoint::a("new.d.org", &["10.0.0.1"], 60)])],
            &[],
            &reg(),
        );
        let mut acts = actions(&plan);
        acts.sort();
        assert_eq!(acts.len(), 4);
        assert_eq!(plan.groups.len(), 2);
        assert!(acts.contains(&(ChangeAction::Delete, "A".into(), "old.d.org".into())));
        assert!(acts.contains(&(ChangeAction::Create, "A".into(), "new.d.org".into())));
    }

    #[test]
    fn name_of_a_removed_cloud_is_taken_over_in_place() {
        let current = owned("x.d.org", "A", &["10.0.0.1"], "me", A);
        let plan = plan_zone(
            None,
            &current,
            &[want(B, vec![Endpoint::a("x.d.org", &["10.0.0.2"], 60)])],
            &[A.to_owned()],
            &reg(),
        );
        assert_eq!(
            actions(&plan),
            vec![
                (ChangeAction::Upsert, "A".into(), "x.d.org".into()),
                (
                    ChangeAction::Upsert,
                    "TXT".into(),
                    "insync-a-x.d.org".into()
                ),
            ]
        );
        assert_eq!(plan.outcomes[B], PlanOutcome::Changes);
        assert_eq!(plan.outcomes[A], PlanOutcome::InSync);
    }

    #[test]
    fn a_malformed_endpoint_is_reported_as_itself() {
        let plan = plan_zone(
            Some("d.org"),
            &[],
            &[want(A, vec![Endpoint::a("a.d.org", &[], 60)])],
            &[],
            &reg(),
        );
        assert!(plan.groups.is_empty());
        assert_eq!(
            plan.outcomes[A],
            PlanOutcome::Invalid(Unpublishable::Endpoint(EndpointError::NoTargets {
                name: "a.d.org".into()
            }))
        );
    }

    #[test]
    fn invalid_clouds_touch_nothing() {
        let current = owned("a.d.org", "A", &["10.0.0.1"], "me", A);
        let plan = plan_zone(
            Some("d.org"),
            &current,
            &[want(A, vec![Endpoint::a("a.other.org", &["10.0.0.1"], 60)])],
            &[],
            &reg(),
        );
        assert!(plan.groups.is_empty());
        assert!(
            matches!(&plan.outcomes[A], PlanOutcome::Invalid(Unpublishable::OutsideZone { name, zone }) if name == "a.other.org" && zone == "d.org")
        );
    }

    #[test]
    fn orphan_txt_of_ours_is_reused() {
        let current = vec![owned("a.d.org", "A", &["10.0.0.1"], "me", A).remove(1)];
        let plan = plan_zone(
            None,
            &current,
            &[want(A, vec![Endpoint::a("a.d.org", &["10.0.0.1"], 60)])],
            &[],
            &reg(),
        );
        assert_eq!(
            actions(&plan),
            vec![(ChangeAction::Create, "A".into(), "a.d.org".into())]
        );
    }

    #[test]
    fn alias_records_compare_on_target() {
        let ep = Endpoint {
            dns_name: "a.d.org".into(),
            record_type: RecordType::Alias {
                hosted_zone_id: "ZLB".into(),
            },
            targets: vec!["lb.example.com".into()],
            ttl: 60,
        };
        let plan = plan_zone(None, &[], &[want(A, vec![ep.clone()])], &[], &reg());
        let current: Vec<RecordSet> = plan
            .groups
            .iter()
            .flat_map(|g| g.changes.iter().map(|c| c.record.clone()))
            .collect();
        assert!(current[0].alias.is_some() && current[0].ttl.is_none());
        let again = plan_zone(None, &current, &[want(A, vec![ep])], &[], &reg());
        assert!(again.groups.is_empty());
    }
}
