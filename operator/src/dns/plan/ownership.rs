//! Who holds a name in a zone: the zone's records indexed by name, and what their ownership TXT
//! companions say.

use std::collections::HashMap;

use super::RecordSet;
use crate::dns::registry::{Ownership, TxtRegistry};

/// Who holds a record or an ownership TXT name.
pub(crate) enum Holder {
    /// A cloud of this operator instance (its resource, `insynccloud/<ns>/<name>`).
    Us(String),
    /// Someone else, with why that is so for people.
    Foreign(String),
}

/// A zone's records, by name, read against this operator's ownership TXT records.
pub(crate) struct ZoneRecords<'a> {
    by_name: HashMap<&'a str, Vec<&'a RecordSet>>,
    registry: &'a TxtRegistry,
}

impl<'a> ZoneRecords<'a> {
    pub(crate) fn new(current: &'a [RecordSet], registry: &'a TxtRegistry) -> Self {
        let mut by_name: HashMap<&str, Vec<&RecordSet>> = HashMap::new();
        for record in current {
            by_name
                .entry(record.name.as_str())
                .or_default()
                .push(record);
        }
        Self { by_name, registry }
    }

    /// Every record at `name`.
    pub(crate) fn at(&self, name: &str) -> &[&'a RecordSet] {
        self.by_name.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The simple (no routing policy) record of type `rtype` at `name`.
    pub(crate) fn simple(&self, name: &str, rtype: &str) -> Option<&'a RecordSet> {
        self.at(name)
            .iter()
            .copied()
            .find(|record| record.rtype == rtype && record.set_identifier.is_none())
    }

    /// Who the TXT record at `txt_name` says owns the companion record; `None` if no TXT.
    pub(crate) fn txt_holder(&self, txt_name: &str) -> Option<Holder> {
        let txt = self.simple(txt_name, "TXT")?;
        if let Some(ours) = self.registry.owned_by_us(&txt.values) {
            return Some(Holder::Us(ours.resource));
        }
        let theirs = txt
            .values
            .iter()
            .find_map(|value| Ownership::parse_txt(value));
        Some(Holder::Foreign(match theirs {
            Some(owner) => format!(
                "owned by another insync-operator instance ({owner}); this one is {:?}",
                self.registry.owner_id()
            ),
            None => format!("TXT record {txt_name} exists and was not written by insync-operator"),
        }))
    }

    /// Whether `record` is an ownership TXT record of this operator instance (any cloud's).
    pub(crate) fn is_our_ownership_txt(&self, record: &RecordSet) -> bool {
        record.rtype == "TXT"
            && record.set_identifier.is_none()
            && self.registry.owned_by_us(&record.values).is_some()
    }

    /// Who holds `record`: the cloud its ownership TXT names, or someone else when it has a
    /// routing policy or no ownership TXT.
    pub(crate) fn record_holder(&self, record: &RecordSet) -> Holder {
        if record.set_identifier.is_some() {
            return Holder::Foreign(format!(
                "an existing {} record with routing policy (set identifier {:?}) not managed by insync-operator",
                record.rtype,
                record.set_identifier.as_deref().unwrap_or_default()
            ));
        }
        if record.rtype == "TXT"
            && let Some(theirs) = record.values.iter().find_map(|v| Ownership::parse_txt(v))
            && self.registry.owned_by_us(&record.values).is_none()
        {
            return Holder::Foreign(format!(
                "a TXT ownership record of another insync-operator instance ({theirs})"
            ));
        }
        let txt_name = self.registry.txt_name(&record.rtype, &record.name);
        self.txt_holder(&txt_name).unwrap_or_else(|| {
            Holder::Foreign(format!(
                "an existing {} record without an insync-operator ownership TXT record",
                record.rtype
            ))
        })
    }
}
