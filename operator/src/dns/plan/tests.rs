use super::ChangeAction::{Create, Delete, Upsert};
use super::*;
use crate::dns::record::{Endpoint, RecordType};

const A: &str = "insynccloud/ns/a";
const B: &str = "insynccloud/ns/b";

fn registry() -> TxtRegistry {
    TxtRegistry::new("me", "insync-").unwrap()
}

fn record(name: &str, rtype: &str, values: &[&str]) -> RecordSet {
    RecordSet {
        name: name.into(),
        rtype: rtype.into(),
        set_identifier: None,
        ttl: Some(60),
        values: values.iter().map(|value| (*value).to_owned()).collect(),
        alias: None,
    }
}

/// A record and the ownership TXT that says `owner`'s `resource` holds it.
fn owned(name: &str, rtype: &str, values: &[&str], owner: &str, resource: &str) -> Vec<RecordSet> {
    let registry = TxtRegistry::new(owner, "insync-").unwrap();
    vec![
        record(name, rtype, values),
        record(
            &registry.txt_name(rtype, name),
            "TXT",
            &[&registry.ownership(resource).to_txt_value()],
        ),
    ]
}

fn wants(resource: &str, endpoints: Vec<Endpoint>) -> DesiredCloud {
    DesiredCloud {
        resource: resource.into(),
        endpoints,
    }
}

/// `resource` wanting an A record at `name` for `ip`, with a TTL of 60 s.
fn wants_a(resource: &str, name: &str, ip: &str) -> DesiredCloud {
    wants(resource, vec![Endpoint::a(name, &[ip], 60)])
}

/// Plans `current` for `desired` with nothing removed, in a zone of unknown name.
fn plan_of(current: &[RecordSet], desired: &[DesiredCloud]) -> ZonePlan {
    plan_zone(None, current, desired, &[], &registry())
}

/// Plans `current` for `desired` while cloud `removed` is removed, in a zone of unknown name.
fn plan_removing(current: &[RecordSet], desired: &[DesiredCloud], removed: &str) -> ZonePlan {
    plan_zone(None, current, desired, &[removed.to_owned()], &registry())
}

/// Plans `current` for `desired` with nothing removed, in zone `d.org`.
fn plan_in_zone(current: &[RecordSet], desired: &[DesiredCloud]) -> ZonePlan {
    plan_zone(Some("d.org"), current, desired, &[], &registry())
}

fn actions(plan: &ZonePlan) -> Vec<(ChangeAction, String, String)> {
    plan.groups
        .iter()
        .flat_map(|group| group.changes.iter())
        .map(|change| {
            (
                change.action,
                change.record.rtype.clone(),
                change.record.name.clone(),
            )
        })
        .collect()
}

/// One change as [`actions`] lists it: `action` on the `rtype` record at `name`.
fn change(action: ChangeAction, rtype: &str, name: &str) -> (ChangeAction, String, String) {
    (action, rtype.to_owned(), name.to_owned())
}

#[test]
fn creates_record_and_txt_in_one_group() {
    let plan = plan_in_zone(
        &[record("d.org", "NS", &["ns1."])],
        &[wants_a(A, "a.d.org", "10.0.0.1")],
    );
    assert_eq!(plan.groups.len(), 1);
    assert_eq!(
        actions(&plan),
        vec![
            change(Create, "A", "a.d.org"),
            change(Create, "TXT", "insync-a-a.d.org"),
        ]
    );
    assert_eq!(plan.outcomes[A], PlanOutcome::Changes);
}

#[test]
fn steady_state_plans_nothing() {
    let current = owned("a.d.org", "A", &["10.0.0.2", "10.0.0.1"], "me", A);
    let plan = plan_in_zone(
        &current,
        &[wants(
            A,
            vec![Endpoint::a("a.d.org", &["10.0.0.1", "10.0.0.2"], 60)],
        )],
    );
    assert!(plan.groups.is_empty());
    assert_eq!(plan.outcomes[A], PlanOutcome::InSync);
}

#[test]
fn changed_targets_upsert_only_the_record() {
    let current = owned("a.d.org", "A", &["10.0.0.1"], "me", A);
    let plan = plan_of(&current, &[wants_a(A, "a.d.org", "10.0.0.9")]);
    assert_eq!(actions(&plan), vec![change(Upsert, "A", "a.d.org")]);
}

#[test]
fn type_change_deletes_old_record_and_txt_first() {
    let current = owned("a.d.org", "CNAME", &["lb.example.com"], "me", A);
    let plan = plan_of(&current, &[wants_a(A, "a.d.org", "10.0.0.9")]);
    assert_eq!(plan.groups.len(), 1);
    assert_eq!(
        actions(&plan),
        vec![
            change(Delete, "CNAME", "a.d.org"),
            change(Delete, "TXT", "insync-cname-a.d.org"),
            change(Create, "A", "a.d.org"),
            change(Create, "TXT", "insync-a-a.d.org"),
        ]
    );
}

#[test]
fn foreign_record_is_a_conflict_and_untouched() {
    let current = vec![record("a.d.org", "A", &["1.1.1.1"])];
    let plan = plan_of(&current, &[wants_a(A, "a.d.org", "10.0.0.1")]);
    assert!(plan.groups.is_empty());
    assert!(matches!(
        &plan.outcomes[A],
        PlanOutcome::Conflict { name, detail } if name == "a.d.org" && detail.contains("without")
    ));
}

#[test]
fn other_owner_ids_and_foreign_txt_at_our_txt_name_conflict() {
    let current = owned("a.d.org", "A", &["1.1.1.1"], "someone-else", A);
    let plan = plan_removing(&current, &[wants_a(A, "a.d.org", "10.0.0.1")], A);
    assert!(plan.groups.is_empty(), "{:?}", plan.groups);
    assert!(
        matches!(&plan.outcomes[A], PlanOutcome::Conflict { detail, .. } if detail.contains("another insync-operator"))
    );

    let current = vec![record("insync-a-a.d.org", "TXT", &["\"hello\""])];
    let plan = plan_of(&current, &[wants_a(A, "a.d.org", "10.0.0.1")]);
    assert!(plan.groups.is_empty());
    assert!(matches!(&plan.outcomes[A], PlanOutcome::Conflict { .. }));
}

#[test]
fn foreign_txt_at_the_name_blocks_a_cname_and_an_a() {
    let current = vec![record("a.d.org", "TXT", &["\"v=spf1 -all\""])];
    let cname = Endpoint::cname("a.d.org", "lb.example.com", 60);
    let plan = plan_of(&current, &[wants(A, vec![cname])]);
    assert!(matches!(&plan.outcomes[A], PlanOutcome::Conflict { .. }));
    let plan = plan_of(&current, &[wants_a(A, "a.d.org", "10.0.0.1")]);
    assert!(plan.groups.is_empty(), "{:?}", plan.groups);
    assert!(
        matches!(&plan.outcomes[A], PlanOutcome::Conflict { name, detail } if name == "a.d.org" && detail.contains("in the way: TXT")),
        "{:?}",
        plan.outcomes[A]
    );
}

/// The conflict `resource` gets in `plan`, or a panic saying what it got instead.
fn conflict_of(plan: &ZonePlan, resource: &str) -> String {
    match &plan.outcomes[resource] {
        PlanOutcome::Conflict { detail, .. } => detail.clone(),
        other => panic!("{resource}: expected a conflict, got {other:?}"),
    }
}

#[test]
fn any_record_set_at_the_name_that_we_do_not_own_is_a_conflict() {
    for (rtype, values) in [
        ("AAAA", &["2001:db8::1"][..]),
        ("MX", &["10 mail.example.com."][..]),
        ("TXT", &["\"hello\""][..]),
        ("CNAME", &["elsewhere.example.com"][..]),
        ("NS", &["ns1.example.com."][..]),
    ] {
        let current = vec![record("a.d.org", rtype, values)];
        let plan = plan_of(&current, &[wants_a(A, "a.d.org", "10.0.0.1")]);
        assert!(plan.groups.is_empty(), "{rtype}: {:?}", plan.groups);
        let detail = conflict_of(&plan, A);
        assert!(
            detail.contains(&format!("record types in the way: {rtype} ")),
            "{rtype}: {detail}"
        );
    }
    // An ALIAS record is an A record to Route53: the same rule.
    let alias = Endpoint {
        dns_name: "a.d.org".into(),
        record_type: RecordType::Alias {
            hosted_zone_id: "ZLB".into(),
        },
        targets: vec!["lb.example.com".into()],
        ttl: 60,
    };
    let current = vec![record("a.d.org", "AAAA", &["2001:db8::1"])];
    let plan = plan_of(&current, &[wants(A, vec![alias])]);
    assert!(plan.groups.is_empty());
    assert!(conflict_of(&plan, A).contains("in the way: AAAA"));
}

#[test]
fn the_conflict_names_every_type_in_the_way() {
    let mut current = vec![
        record("a.d.org", "MX", &["10 mail.example.com."]),
        record("a.d.org", "AAAA", &["2001:db8::1"]),
    ];
    // Another owner's AAAA-style record with its own ownership TXT, and one of another cloud
    // of ours: both in the way too.
    current.extend(owned("a.d.org", "SRV", &["0 0 80 x."], "someone-else", A));
    current.extend(owned("a.d.org", "CAA", &["0 issue \"ca\""], "me", B));
    let plan = plan_of(&current, &[wants_a(A, "a.d.org", "10.0.0.1")]);
    assert!(plan.groups.is_empty(), "{:?}", plan.groups);
    let detail = conflict_of(&plan, A);
    assert!(
        detail.starts_with("record types in the way: AAAA, CAA, MX, SRV ("),
        "{detail}"
    );
    assert!(detail.contains("another insync-operator"), "{detail}");
    assert!(
        detail.contains(&format!("CAA record held by {B}")),
        "{detail}"
    );
}

#[test]
fn our_own_records_at_the_name_are_not_in_the_way() {
    // A record set of this cloud of another type at the name (here an AAAA) is its own: no
    // conflict, and replaced like any type change.
    let mut current = owned("a.d.org", "AAAA", &["2001:db8::1"], "me", A);
    // An ownership TXT of ours lying at the name (cloud B's marker for a record elsewhere).
    let marker = TxtRegistry::new("me", "insync-")
        .unwrap()
        .ownership(B)
        .to_txt_value();
    current.push(record("a.d.org", "TXT", &[&marker]));
    let plan = plan_of(&current, &[wants_a(A, "a.d.org", "10.0.0.1")]);
    assert_eq!(
        plan.outcomes[A],
        PlanOutcome::Changes,
        "{:?}",
        plan.outcomes
    );
    assert_eq!(
        actions(&plan),
        vec![
            change(Delete, "AAAA", "a.d.org"),
            change(Delete, "TXT", "insync-aaaa-a.d.org"),
            change(Create, "A", "a.d.org"),
            change(Create, "TXT", "insync-a-a.d.org"),
        ]
    );
    // But a CNAME may share its name with nothing, our marker included.
    let cname = Endpoint::cname("a.d.org", "lb.example.com", 60);
    let plan = plan_of(
        &[record("a.d.org", "TXT", &[&marker])],
        &[wants(A, vec![cname])],
    );
    assert!(conflict_of(&plan, A).contains("in the way: TXT"));
}

#[test]
fn another_operators_ownership_txt_at_the_name_is_in_the_way() {
    let theirs = TxtRegistry::new("someone-else", "insync-")
        .unwrap()
        .ownership(B)
        .to_txt_value();
    let current = vec![record("a.d.org", "TXT", &[&theirs])];
    let plan = plan_of(&current, &[wants_a(A, "a.d.org", "10.0.0.1")]);
    let detail = conflict_of(&plan, A);
    assert!(
        detail.contains("TXT ownership record of another insync-operator instance"),
        "{detail}"
    );
}

#[test]
fn two_clouds_one_name_first_wins_second_conflicts() {
    let plan = plan_of(
        &[],
        &[
            wants_a(B, "x.d.org", "10.0.0.2"),
            wants_a(A, "x.d.org", "10.0.0.1"),
        ],
    );
    assert_eq!(plan.outcomes[A], PlanOutcome::Changes);
    assert!(
        matches!(&plan.outcomes[B], PlanOutcome::Conflict { detail, .. } if detail.contains(A))
    );
    assert_eq!(plan.groups.len(), 1);
    // Once A holds it, B keeps conflicting even though B sorts after.
    let current = owned("x.d.org", "A", &["10.0.0.1"], "me", A);
    let plan = plan_of(&current, &[wants_a(B, "x.d.org", "10.0.0.2")]);
    assert!(plan.groups.is_empty());
    assert!(
        matches!(&plan.outcomes[B], PlanOutcome::Conflict { detail, .. } if detail.contains(A))
    );
}

#[test]
fn removed_clouds_are_deleted_unknown_ones_left_alone() {
    let mut current = owned("a.d.org", "A", &["10.0.0.1"], "me", A);
    current.extend(owned("b.d.org", "A", &["10.0.0.2"], "me", B));
    current.push(record("c.d.org", "A", &["10.0.0.3"]));
    let plan = plan_removing(&current, &[], A);
    assert_eq!(
        actions(&plan),
        vec![
            change(Delete, "A", "a.d.org"),
            change(Delete, "TXT", "insync-a-a.d.org"),
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
    let plan = plan_of(&current, &[wants_a(A, "new.d.org", "10.0.0.1")]);
    let mut planned = actions(&plan);
    planned.sort();
    assert_eq!(planned.len(), 4);
    assert_eq!(plan.groups.len(), 2);
    assert!(planned.contains(&change(Delete, "A", "old.d.org")));
    assert!(planned.contains(&change(Create, "A", "new.d.org")));
}

#[test]
fn name_of_a_removed_cloud_is_taken_over_in_place() {
    let current = owned("x.d.org", "A", &["10.0.0.1"], "me", A);
    let plan = plan_removing(&current, &[wants_a(B, "x.d.org", "10.0.0.2")], A);
    assert_eq!(
        actions(&plan),
        vec![
            change(Upsert, "A", "x.d.org"),
            change(Upsert, "TXT", "insync-a-x.d.org"),
        ]
    );
    assert_eq!(plan.outcomes[B], PlanOutcome::Changes);
    assert_eq!(plan.outcomes[A], PlanOutcome::InSync);
}

#[test]
fn a_malformed_endpoint_is_reported_as_itself() {
    let plan = plan_in_zone(&[], &[wants(A, vec![Endpoint::a("a.d.org", &[], 60)])]);
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
    let plan = plan_in_zone(&current, &[wants_a(A, "a.other.org", "10.0.0.1")]);
    assert!(plan.groups.is_empty());
    assert!(
        matches!(&plan.outcomes[A], PlanOutcome::Invalid(Unpublishable::OutsideZone { name, zone }) if name == "a.other.org" && zone == "d.org")
    );
}

#[test]
fn orphan_txt_of_ours_is_reused() {
    let current = vec![owned("a.d.org", "A", &["10.0.0.1"], "me", A).remove(1)];
    let plan = plan_of(&current, &[wants_a(A, "a.d.org", "10.0.0.1")]);
    assert_eq!(actions(&plan), vec![change(Create, "A", "a.d.org")]);
}

#[test]
fn alias_records_compare_on_target() {
    let endpoint = Endpoint {
        dns_name: "a.d.org".into(),
        record_type: RecordType::Alias {
            hosted_zone_id: "ZLB".into(),
        },
        targets: vec!["lb.example.com".into()],
        ttl: 60,
    };
    let plan = plan_of(&[], &[wants(A, vec![endpoint.clone()])]);
    let current: Vec<RecordSet> = plan
        .groups
        .iter()
        .flat_map(|group| group.changes.iter().map(|change| change.record.clone()))
        .collect();
    assert!(current[0].alias.is_some() && current[0].ttl.is_none());
    let again = plan_of(&current, &[wants(A, vec![endpoint])]);
    assert!(again.groups.is_empty());
}
