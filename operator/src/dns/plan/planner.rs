//! The steps of [`plan_zone`](super::plan_zone): claim each desired name or find who holds it,
//! the changes that publish a claimed name, the cleanup of what clouds no longer want, and the
//! groups and outcomes that come of it.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::ownership::{Holder, ZoneRecords};
use super::{
    ALIAS_TXT_TTL, Change, ChangeAction, ChangeGroup, DesiredCloud, PlanOutcome, RecordSet,
    ZonePlan, validate_cloud,
};
use crate::dns::record::Endpoint;
use crate::dns::registry::TxtRegistry;

/// The plan of one zone as it is made.
pub(crate) struct Planner<'a> {
    zone: ZoneRecords<'a>,
    registry: &'a TxtRegistry,
    /// Resources of clouds being removed in this plan.
    removed: HashSet<&'a str>,
    outcomes: BTreeMap<String, PlanOutcome>,
    /// Changes by resource and DNS name.
    groups: BTreeMap<(String, String), Vec<Change>>,
    /// Names claimed by a desired cloud in this plan → that cloud.
    claimed: HashMap<String, String>,
    /// Ownership TXT records already dealt with by the desired pass.
    handled_txt: HashSet<String>,
    /// Records, as (name, type), already dealt with.
    handled_records: HashSet<(String, String)>,
    /// Resources whose stale records may be cleaned up: removed clouds, and desired clouds
    /// whose endpoints are valid.
    cleanable: HashSet<&'a str>,
}

/// Deletes `record`, exactly as listed (so the delete fails if someone changed it).
fn delete(record: &RecordSet) -> Change {
    Change {
        action: ChangeAction::Delete,
        record: record.clone(),
    }
}

/// Writes `record` over the one listed there (`existing`), or creates it where there is none.
fn write(existing: Option<&RecordSet>, record: RecordSet) -> Change {
    let action = match existing {
        Some(_) => ChangeAction::Upsert,
        None => ChangeAction::Create,
    };
    Change { action, record }
}

impl<'a> Planner<'a> {
    pub(crate) fn new(
        current: &'a [RecordSet],
        removed: &'a [String],
        registry: &'a TxtRegistry,
    ) -> Self {
        let removed: HashSet<&str> = removed.iter().map(String::as_str).collect();
        Self {
            zone: ZoneRecords::new(current, registry),
            registry,
            cleanable: removed.clone(),
            removed,
            outcomes: BTreeMap::new(),
            groups: BTreeMap::new(),
            claimed: HashMap::new(),
            handled_txt: HashSet::new(),
            handled_records: HashSet::new(),
        }
    }

    /// Plans the endpoints of one desired cloud: all of them, or none when one is invalid. The
    /// first name held by someone else is the cloud's conflict; its other names are planned.
    pub(crate) fn plan_cloud(&mut self, cloud: &'a DesiredCloud, zone_name: Option<&str>) {
        let resource = cloud.resource.as_str();
        if let Err(why) = validate_cloud(cloud, zone_name, self.registry) {
            self.outcomes
                .insert(resource.to_owned(), PlanOutcome::Invalid(why));
            return;
        }
        self.cleanable.insert(resource);
        let mut conflict = None;
        for endpoint in &cloud.endpoints {
            if let Err(detail) = self.plan_endpoint(resource, endpoint) {
                conflict.get_or_insert(PlanOutcome::Conflict {
                    name: endpoint.dns_name.clone(),
                    detail,
                });
            }
        }
        let outcome = conflict.unwrap_or(PlanOutcome::InSync);
        self.outcomes.insert(resource.to_owned(), outcome);
    }

    /// Claims the endpoint's name for `resource` and plans the changes that publish it, or says
    /// who holds the name.
    fn plan_endpoint(&mut self, resource: &str, endpoint: &Endpoint) -> Result<(), String> {
        let name = endpoint.dns_name.as_str();
        let rtype = endpoint.record_type.route53_type();
        self.claim(resource, name, rtype)?;
        let wanted = RecordSet::from_endpoint(endpoint);
        let mut changes = self.retire_other_types(resource, name, rtype);
        changes.extend(self.record_change(&wanted));
        changes.extend(self.ownership_change(resource, endpoint, &wanted));
        if !changes.is_empty() {
            self.groups
                .insert((resource.to_owned(), name.to_owned()), changes);
        }
        Ok(())
    }

    /// Claims `name` for `resource` in this plan, or says who holds it: another desired cloud
    /// of this plan, a record at the name, or the ownership TXT of the record to write.
    fn claim(&mut self, resource: &str, name: &str, rtype: &str) -> Result<(), String> {
        if let Some(other) = self.claimed.get(name) {
            return Err(format!(
                "also wanted by {other} in this operator; give each cloud its own name"
            ));
        }
        if let Some(detail) = self
            .blocking_record(resource, name, rtype)
            .or_else(|| self.blocking_txt(resource, name, rtype))
        {
            return Err(detail);
        }
        self.claimed.insert(name.to_owned(), resource.to_owned());
        Ok(())
    }

    /// Whether `resource` may change what `holder` holds: its own, or a removed cloud's (taken
    /// over in place).
    fn may_manage(&self, resource: &str, holder: &str) -> bool {
        holder == resource || self.removed.contains(holder)
    }

    /// What is in the way of a `rtype` record of `resource` at `name`: every record set there
    /// that `resource` may not manage (another cloud's, or one without our ownership TXT),
    /// whatever its type: a name is one tenant's, so an A record is not added beside someone
    /// else's AAAA, MX or TXT either. An ownership TXT of this operator that happens to lie at
    /// the name is not in the way of an A record (it belongs to another name's record); a CNAME
    /// may not share its name with anything, so for a CNAME it is. The answer names the record
    /// types in the way and who holds each.
    fn blocking_record(&self, resource: &str, name: &str, rtype: &str) -> Option<String> {
        let mut types: Vec<&str> = Vec::new();
        let mut holders: Vec<String> = Vec::new();
        for record in self.zone.at(name) {
            if rtype != "CNAME" && self.zone.is_our_ownership_txt(record) {
                continue;
            }
            let holder = match self.zone.record_holder(record) {
                Holder::Us(holder) if self.may_manage(resource, &holder) => continue,
                Holder::Us(holder) => {
                    format!("{} record held by {holder} (same operator)", record.rtype)
                }
                Holder::Foreign(detail) => detail,
            };
            types.push(&record.rtype);
            holders.push(holder);
        }
        if types.is_empty() {
            return None;
        }
        types.sort_unstable();
        types.dedup();
        holders.dedup();
        Some(format!(
            "record types in the way: {} ({})",
            types.join(", "),
            holders.join("; ")
        ))
    }

    /// Who holds the ownership TXT name of a `rtype` record at `name`, when it is not
    /// `resource` to manage.
    fn blocking_txt(&self, resource: &str, name: &str, rtype: &str) -> Option<String> {
        let txt_name = self.registry.txt_name(rtype, name);
        match self.zone.txt_holder(&txt_name) {
            Some(Holder::Us(holder)) if !self.may_manage(resource, &holder) => Some(format!(
                "ownership TXT record {txt_name} belongs to {holder} (same operator)"
            )),
            Some(Holder::Foreign(detail)) => Some(detail),
            _ => None,
        }
    }

    /// Deletes the records of another type than `rtype` at `name` that `resource` may manage,
    /// with their ownership TXT (e.g. a CNAME that becomes an A record); they go first.
    fn retire_other_types(&mut self, resource: &str, name: &str, rtype: &str) -> Vec<Change> {
        let mut changes = Vec::new();
        for record in self.zone.at(name) {
            if record.rtype == rtype || record.rtype == "TXT" || record.set_identifier.is_some() {
                continue;
            }
            let Holder::Us(holder) = self.zone.record_holder(record) else {
                continue;
            };
            if !self.may_manage(resource, &holder) {
                continue;
            }
            changes.push(delete(record));
            self.handled_records
                .insert((record.name.clone(), record.rtype.clone()));
            let old_txt_name = self.registry.txt_name(&record.rtype, name);
            if let Some(old_txt) = self.zone.simple(&old_txt_name, "TXT") {
                changes.push(delete(old_txt));
            }
            self.handled_txt.insert(old_txt_name);
        }
        changes
    }

    /// The change that makes the zone serve `wanted`; none when the record there does already.
    fn record_change(&mut self, wanted: &RecordSet) -> Option<Change> {
        let existing = self.zone.simple(&wanted.name, &wanted.rtype);
        self.handled_records
            .insert((wanted.name.clone(), wanted.rtype.clone()));
        match existing {
            Some(listed) if listed.serves(wanted) => None,
            _ => Some(write(existing, wanted.clone())),
        }
    }

    /// The change that makes the ownership TXT of `wanted` name `resource`; none when it does
    /// already. An ALIAS record has no TTL, so its TXT gets [`ALIAS_TXT_TTL`].
    fn ownership_change(
        &mut self,
        resource: &str,
        endpoint: &Endpoint,
        wanted: &RecordSet,
    ) -> Option<Change> {
        let txt_name = self.registry.txt_name(&wanted.rtype, &wanted.name);
        let value = self.registry.ownership(resource).to_txt_value();
        let ttl = if wanted.alias.is_some() {
            ALIAS_TXT_TTL
        } else {
            endpoint.ttl
        };
        let existing = self.zone.simple(&txt_name, "TXT");
        self.handled_txt.insert(txt_name.clone());
        match existing {
            Some(listed) if listed.values == [value.as_str()] => None,
            _ => Some(write(existing, RecordSet::txt(txt_name, value, ttl))),
        }
    }

    /// Cleanup: the owned records of removed clouds, and of desired clouds at names they
    /// dropped, are deleted with their ownership TXT, in the group of their owner and name.
    pub(crate) fn clean_up(&mut self, current: &[RecordSet]) {
        for txt in current {
            let Some((owner, rtype, name)) = self.stale_ownership(txt) else {
                continue;
            };
            let mut changes = Vec::new();
            if !self
                .handled_records
                .contains(&(name.clone(), rtype.clone()))
                && let Some(record) = self.zone.simple(&name, &rtype)
            {
                changes.push(delete(record));
                self.handled_records.insert((name.clone(), rtype.clone()));
            }
            changes.push(delete(txt));
            self.groups
                .entry((owner, name))
                .or_default()
                .extend(changes);
        }
    }

    /// The owner, type and name of the record `txt` owns, when `txt` is an ownership TXT record
    /// of ours that the desired pass left alone and its owner's stale records may go.
    fn stale_ownership(&self, txt: &RecordSet) -> Option<(String, String, String)> {
        if txt.rtype != "TXT"
            || txt.set_identifier.is_some()
            || self.handled_txt.contains(&txt.name)
        {
            return None;
        }
        let owner = self.registry.owned_by_us(&txt.values)?;
        if !self.cleanable.contains(owner.resource.as_str()) {
            return None;
        }
        let (rtype, name) = self.registry.parse_txt_name(&txt.name)?;
        Some((owner.resource, rtype, name))
    }

    /// The plan: one group a resource and name (deletes first), and one outcome a desired or
    /// removed cloud, `Changes` where it has a group.
    pub(crate) fn finish(mut self, removed: &[String]) -> ZonePlan {
        for resource in removed {
            self.outcomes
                .entry(resource.clone())
                .or_insert(PlanOutcome::InSync);
        }
        let groups: Vec<ChangeGroup> = self
            .groups
            .into_iter()
            .map(|((resource, name), mut changes)| {
                // Deletes before creates/upserts inside a group (stable otherwise).
                changes.sort_by_key(|change| change.action != ChangeAction::Delete);
                ChangeGroup {
                    resource,
                    name,
                    changes,
                }
            })
            .collect();
        for group in &groups {
            if let Some(outcome @ PlanOutcome::InSync) = self.outcomes.get_mut(&group.resource) {
                *outcome = PlanOutcome::Changes;
            }
        }
        ZonePlan {
            groups,
            outcomes: self.outcomes,
        }
    }
}
