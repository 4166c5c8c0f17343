use super::*;
use crate::dns::record::{Endpoint, RecordType};

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
