//! Record sets as a zone lists them and as the plan writes them, and whether one already serves
//! what another asks for.

use crate::dns::record::{Endpoint, RecordType, normalize_name};
use crate::dns::zone::normalize_zone_id;

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
    pub(crate) fn from_endpoint(endpoint: &Endpoint) -> RecordSet {
        let simple = |rtype: &str, values: Vec<String>| RecordSet {
            name: endpoint.dns_name.clone(),
            rtype: rtype.into(),
            set_identifier: None,
            ttl: Some(i64::from(endpoint.ttl)),
            values,
            alias: None,
        };
        match &endpoint.record_type {
            RecordType::A => simple("A", endpoint.targets.clone()),
            RecordType::Cname => simple(
                "CNAME",
                endpoint
                    .targets
                    .iter()
                    .map(|target| normalize_name(target))
                    .collect(),
            ),
            RecordType::Alias { hosted_zone_id } => RecordSet {
                name: endpoint.dns_name.clone(),
                rtype: "A".into(),
                set_identifier: None,
                ttl: None,
                values: Vec::new(),
                alias: Some(AliasValue {
                    hosted_zone_id: hosted_zone_id.clone(),
                    dns_name: endpoint
                        .targets
                        .first()
                        .map(|target| normalize_name(target))
                        .unwrap_or_default(),
                    evaluate_target_health: false,
                }),
            },
        }
    }

    /// The ownership TXT record `name` with the single `value`.
    pub(crate) fn txt(name: String, value: String, ttl: u32) -> RecordSet {
        RecordSet {
            name,
            rtype: "TXT".into(),
            set_identifier: None,
            ttl: Some(i64::from(ttl)),
            values: vec![value],
            alias: None,
        }
    }

    /// Whether `self` (as listed) already serves what `desired` asks for.
    pub(crate) fn serves(&self, desired: &RecordSet) -> bool {
        if self.rtype != desired.rtype || self.set_identifier.is_some() {
            return false;
        }
        match (&self.alias, &desired.alias) {
            (Some(listed), Some(wanted)) => {
                normalize_name(&listed.dns_name) == normalize_name(&wanted.dns_name)
                    && normalize_zone_id(&listed.hosted_zone_id)
                        == normalize_zone_id(&wanted.hosted_zone_id)
                    && listed.evaluate_target_health == wanted.evaluate_target_health
            }
            (None, None) => {
                self.ttl == desired.ttl
                    && self.comparable_values(&self.values)
                        == self.comparable_values(&desired.values)
            }
            _ => false,
        }
    }

    /// `values` in a form two listings compare in: sorted, CNAME targets normalized, others
    /// trimmed.
    fn comparable_values(&self, values: &[String]) -> Vec<String> {
        let mut comparable: Vec<String> = values
            .iter()
            .map(|value| {
                if self.rtype == "CNAME" {
                    normalize_name(value)
                } else {
                    value.trim().to_owned()
                }
            })
            .collect();
        comparable.sort();
        comparable
    }
}
