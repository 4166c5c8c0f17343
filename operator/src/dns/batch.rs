//! Packing change groups into `ChangeResourceRecordSets` calls within Route53's limits.
//!
//! Route53 accepts at most 1,000 `ResourceRecord` elements and 32,000 characters of `Value`
//! text per request, and an `UPSERT` counts twice towards both. Groups (a record and its
//! ownership TXT) are never split, so a record never lands without its owner marker.

use crate::dns::plan::{Change, ChangeAction, ChangeGroup};

/// Per-call limits of `ChangeResourceRecordSets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Maximum `ResourceRecord` elements per call (UPSERT counts twice).
    pub max_values: usize,
    /// Maximum characters of `Value` text per call (UPSERT counts twice).
    pub max_value_chars: usize,
    /// Maximum `Change` elements per call.
    pub max_changes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_values: 1_000,
            max_value_chars: 32_000,
            max_changes: 1_000,
        }
    }
}

/// What a change or group costs against [`BatchLimits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cost {
    /// `ResourceRecord` elements (UPSERT twice).
    pub values: usize,
    /// Characters of `Value` text (UPSERT twice).
    pub chars: usize,
    /// `Change` elements.
    pub changes: usize,
}

impl Cost {
    fn add(self, o: Cost) -> Cost {
        Cost {
            values: self.values + o.values,
            chars: self.chars + o.chars,
            changes: self.changes + o.changes,
        }
    }

    fn fits(self, limits: &BatchLimits) -> bool {
        self.values <= limits.max_values
            && self.chars <= limits.max_value_chars
            && self.changes <= limits.max_changes
    }
}

/// The cost of one change. ALIAS records have no `Value` elements; they are counted as one
/// value of their target's length, to stay on the safe side.
pub(crate) fn change_cost(change: &Change) -> Cost {
    let r = &change.record;
    let (values, chars) = match &r.alias {
        Some(a) => (1, a.dns_name.len()),
        None => (
            r.values.len(),
            r.values.iter().map(|v| v.chars().count()).sum(),
        ),
    };
    let factor = if change.action == ChangeAction::Upsert {
        2
    } else {
        1
    };
    Cost {
        values: values * factor,
        chars: chars * factor,
        changes: 1,
    }
}

/// The cost of a group.
pub fn group_cost(group: &ChangeGroup) -> Cost {
    group
        .changes
        .iter()
        .map(change_cost)
        .fold(Cost::default(), Cost::add)
}

/// A group that cannot fit in any call on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "changes for {name} ({resource}) need {} record values / {} characters / {} changes, more than one Route53 call may carry ({} / {} / {}); publish fewer targets",
    cost.values, cost.chars, cost.changes, limits.max_values, limits.max_value_chars, limits.max_changes
)]
pub struct OversizedGroup {
    /// Owning resource.
    pub(crate) resource: String,
    /// The DNS name of the group.
    pub(crate) name: String,
    /// Its cost.
    pub(crate) cost: Cost,
    /// The limits it exceeds.
    pub(crate) limits: BatchLimits,
}

/// Packs groups, in order, into as few batches as fit ("next fit": a batch is closed when the
/// next group would overflow it). With groups much smaller than a call, this leaves at most one
/// group's worth of room unused per call. Groups too large for any call are returned apart.
pub(crate) fn pack(
    groups: Vec<ChangeGroup>,
    limits: &BatchLimits,
) -> (Vec<Vec<ChangeGroup>>, Vec<OversizedGroup>) {
    let mut batches: Vec<Vec<ChangeGroup>> = Vec::new();
    let mut oversized = Vec::new();
    let mut current: Vec<ChangeGroup> = Vec::new();
    let mut used = Cost::default();
    for g in groups {
        let cost = group_cost(&g);
        if !cost.fits(limits) {
            oversized.push(OversizedGroup {
                resource: g.resource.clone(),
                name: g.name.clone(),
                cost,
                limits: *limits,
            });
            continue;
        }
        if !used.add(cost).fits(limits) {
            batches.push(std::mem::take(&mut current));
            used = Cost::default();
        }
        used = used.add(cost);
        current.push(g);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    (batches, oversized)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::plan::RecordSet;

    fn change(action: ChangeAction, ty: &str, values: Vec<String>) -> Change {
        Change {
            action,
            record: RecordSet {
                name: "x.d.org".into(),
                rtype: ty.into(),
                set_identifier: None,
                ttl: Some(60),
                values,
                alias: None,
            },
        }
    }

    fn group(i: usize, changes: Vec<Change>) -> ChangeGroup {
        ChangeGroup {
            resource: format!("insynccloud/ns/c{i}"),
            name: format!("c{i}.d.org"),
            changes,
        }
    }

    fn batch_cost(b: &[ChangeGroup]) -> Cost {
        b.iter().map(group_cost).fold(Cost::default(), Cost::add)
    }

    #[test]
    fn upsert_counts_twice() {
        let c = change(
            ChangeAction::Upsert,
            "A",
            vec!["10.0.0.1".into(), "10.0.0.2".into()],
        );
        assert_eq!(
            change_cost(&c),
            Cost {
                values: 4,
                chars: 32,
                changes: 1
            }
        );
        let c = change(ChangeAction::Create, "A", vec!["10.0.0.1".into()]);
        assert_eq!(change_cost(&c).values, 1);
    }

    #[test]
    fn value_count_limit() {
        // 600 groups of 2 values: 1,000 values fit 500 groups per call.
        let groups: Vec<_> = (0..600)
            .map(|i| {
                group(
                    i,
                    vec![
                        change(ChangeAction::Create, "A", vec!["1.1.1.1".into()]),
                        change(ChangeAction::Create, "TXT", vec!["\"t\"".into()]),
                    ],
                )
            })
            .collect();
        let (batches, over) = pack(groups, &BatchLimits::default());
        assert!(over.is_empty());
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![500, 100]
        );
    }

    #[test]
    fn character_limit_with_upserts() {
        // Each group: UPSERT of one 100-char value = 200 chars. 32,000 / 200 = 160 per call.
        let v = "x".repeat(100);
        let groups: Vec<_> = (0..400)
            .map(|i| {
                group(
                    i,
                    vec![change(ChangeAction::Upsert, "TXT", vec![v.clone()])],
                )
            })
            .collect();
        let limits = BatchLimits::default();
        let (batches, _) = pack(groups, &limits);
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![160, 160, 80]
        );
        for b in &batches {
            assert!(batch_cost(b).fits(&limits));
        }
    }

    #[test]
    fn groups_are_never_split_and_order_is_kept() {
        let limits = BatchLimits {
            max_values: 3,
            max_value_chars: 1_000,
            max_changes: 10,
        };
        let groups: Vec<_> = (0..5)
            .map(|i| {
                group(
                    i,
                    vec![
                        change(ChangeAction::Delete, "A", vec!["1.1.1.1".into()]),
                        change(ChangeAction::Create, "TXT", vec!["\"t\"".into()]),
                    ],
                )
            })
            .collect();
        let (batches, _) = pack(groups.clone(), &limits);
        assert_eq!(batches.len(), 5);
        let flat: Vec<ChangeGroup> = batches.into_iter().flatten().collect();
        assert_eq!(flat, groups);
    }

    #[test]
    fn oversized_groups_are_reported_not_sent() {
        let many: Vec<String> = (0..1_001)
            .map(|i| format!("10.0.{}.{}", i / 256, i % 256))
            .collect();
        let groups = vec![
            group(0, vec![change(ChangeAction::Create, "A", many)]),
            group(
                1,
                vec![change(ChangeAction::Create, "A", vec!["1.1.1.1".into()])],
            ),
        ];
        let (batches, over) = pack(groups, &BatchLimits::default());
        assert_eq!(batches.len(), 1);
        assert_eq!(over.len(), 1);
        assert_eq!(over[0].resource, "insynccloud/ns/c0");
        assert!(over[0].to_string().contains("1001 record values"));
    }
}
