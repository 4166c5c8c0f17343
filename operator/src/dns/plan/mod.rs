//! The plan: current zone records + desired endpoints in, changes out. Pure.
//!
//! Rules (see the module docs of [`crate::dns`] for the whole picture):
//! - A record is ours only when its TXT companion (see [`TxtRegistry`]) names our owner id.
//!   Records of other owners, or without a TXT companion, are never created over, changed or
//!   deleted: a cloud that wants such a name gets [`PlanOutcome::Conflict`]. Any record set at
//!   the name counts, of any type (an A record is not added beside someone's AAAA, MX or TXT);
//!   only an ownership TXT of ours lying there is not in the way of a non-CNAME record.
//! - A name owned by another cloud of ours that is still desired is a conflict too; a name owned
//!   by a cloud being removed in the same plan is taken over in place.
//! - Records owned by clouds in `removed`, and records of desired clouds at names they no
//!   longer want, are deleted together with their TXT companions. Owned records of clouds that
//!   are neither desired nor removed are left alone (after a restart the syncer may simply not
//!   have heard of them yet).
//! - Each record change travels with its TXT change in one [`ChangeGroup`], which the batcher
//!   never splits.
//!
//! [`plan_zone`] takes the steps of `planner` over the zone's records as `ownership` reads
//! them; `record_set` holds the records themselves.

mod ownership;
mod planner;
mod record_set;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};

use crate::dns::record::{Endpoint, EndpointError};
use crate::dns::registry::TxtRegistry;
use crate::dns::zone::name_in_zone;
use planner::Planner;
pub use record_set::{AliasValue, RecordSet};

/// Route53 TTL of ownership TXT records that accompany ALIAS records (which have no TTL).
const ALIAS_TXT_TTL: u32 = 300;

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
        self.groups.iter().map(|group| group.changes.len()).sum()
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
    let mut planner = Planner::new(current, removed, registry);
    // Clouds in resource order: of two that want one name, the first gets it.
    let mut by_resource: Vec<&DesiredCloud> = desired.iter().collect();
    by_resource.sort_by(|one, other| one.resource.cmp(&other.resource));
    for cloud in by_resource {
        planner.plan_cloud(cloud, zone_name);
    }
    planner.clean_up(current);
    planner.finish(removed)
}

/// Whether every endpoint of `cloud` can be published into the zone as given: well formed,
/// each name once, inside the zone, with an ownership TXT name that is a valid DNS name.
fn validate_cloud(
    cloud: &DesiredCloud,
    zone_name: Option<&str>,
    registry: &TxtRegistry,
) -> Result<(), Unpublishable> {
    let mut names = HashSet::new();
    for endpoint in &cloud.endpoints {
        endpoint.validate()?;
        if !names.insert(endpoint.dns_name.as_str()) {
            return Err(Unpublishable::Duplicate {
                name: endpoint.dns_name.clone(),
            });
        }
        if let Some(zone) = zone_name
            && !name_in_zone(&endpoint.dns_name, zone)
        {
            return Err(Unpublishable::OutsideZone {
                name: endpoint.dns_name.clone(),
                zone: zone.to_owned(),
            });
        }
        let txt = registry.txt_name(endpoint.record_type.route53_type(), &endpoint.dns_name);
        let first_label = txt.split('.').next().unwrap_or_default();
        if first_label.len() > 63 || txt.len() > 253 {
            return Err(Unpublishable::TxtNameTooLong { txt });
        }
    }
    Ok(())
}
