//! Hosted zones and which one a name belongs to.

use crate::dns::record::normalize_name;

/// A Route53 hosted zone as the syncer needs it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct HostedZone {
    /// The zone id without the `/hostedzone/` prefix.
    pub(crate) id: String,
    /// The zone's domain, normalized (lower case, no trailing dot).
    pub(crate) name: String,
    /// Whether this is a private (VPC) zone.
    pub(crate) private: bool,
}

/// `/hostedzone/Z123` → `Z123`.
pub(crate) fn normalize_zone_id(id: &str) -> String {
    id.trim()
        .trim_start_matches("/hostedzone/")
        .trim_start_matches("hostedzone/")
        .to_owned()
}

/// Whether `name` is `zone` or below it.
pub(crate) fn name_in_zone(name: &str, zone: &str) -> bool {
    let name = normalize_name(name);
    let zone = normalize_name(zone);
    name == zone
        || (name.len() > zone.len()
            && name.ends_with(&zone)
            && name.as_bytes()[name.len() - zone.len() - 1] == b'.')
}

/// The zone a name is published in: the longest zone name that is a suffix of `name` (at a
/// label boundary). On a tie (a public and a private zone of the same name) the public zone
/// wins; pass an explicit zone id to choose otherwise.
pub(crate) fn select_zone<'a>(name: &str, zones: &'a [HostedZone]) -> Option<&'a HostedZone> {
    zones
        .iter()
        .filter(|z| name_in_zone(name, &z.name))
        .max_by(|a, b| {
            a.name
                .len()
                .cmp(&b.name.len())
                .then_with(|| b.private.cmp(&a.private))
                // Deterministic among equals: the smallest id.
                .then_with(|| b.id.cmp(&a.id))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(id: &str, name: &str, private: bool) -> HostedZone {
        HostedZone {
            id: id.into(),
            name: name.into(),
            private,
        }
    }

    #[test]
    fn longest_suffix_wins_at_label_boundaries() {
        let zones = vec![
            z("Z1", "org", false),
            z("Z2", "drtst.org", false),
            z("Z3", "eu.drtst.org", false),
            z("Z4", "tst.org", false),
        ];
        assert_eq!(select_zone("fcloud.drtst.org", &zones).unwrap().id, "Z2");
        assert_eq!(select_zone("fcloud.eu.drtst.org", &zones).unwrap().id, "Z3");
        assert_eq!(select_zone("x.example.org", &zones).unwrap().id, "Z1");
        assert_eq!(select_zone("x.example.com", &zones), None);
        // "tst.org" is a string suffix of "drtst.org" but not at a label boundary.
        assert_eq!(select_zone("a.drtst.org", &zones[3..]), None);
    }

    #[test]
    fn public_zone_preferred_on_tie() {
        let zones = vec![z("ZP", "d.org", true), z("ZQ", "d.org", false)];
        assert_eq!(select_zone("a.d.org", &zones).unwrap().id, "ZQ");
    }

    #[test]
    fn zone_ids_are_normalized() {
        assert_eq!(normalize_zone_id("/hostedzone/Z12"), "Z12");
        assert_eq!(normalize_zone_id("Z12"), "Z12");
    }
}
