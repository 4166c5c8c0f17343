//! Table tests of plan and conclude.

use super::*;
use conclude::next_wake;
use std::collections::BTreeMap;
use std::time::Duration;

use kube::ResourceExt;

use crate::api::{InSyncCloud, InSyncCloudStatus, UpgradePhase, UpgradeStatus, condition};
use crate::controller::apply::ApplyReport;
use crate::controller::dns::{DnsOutcome, FINALIZER};
use crate::controller::error::Error;
use crate::controller::error::UnknownKind;
use crate::controller::observe::WorkloadCounts;
use crate::controller::observe::{Observation, targets};
use crate::controller::status::Cond;
use crate::dns::AllowList;
use crate::render::Desired;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::controller::dns::DnsObservation;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).expect("valid")
}

fn fcloud() -> InSyncCloud {
    let mut cloud: InSyncCloud =
        serde_yaml::from_str(include_str!("../../../../examples/fcloud.yaml")).expect("example");
    cloud.metadata.uid = Some("uid-1".into());
    cloud.metadata.generation = Some(3);
    cloud
}

fn wished(cloud: &InSyncCloud) -> Vec<Desired> {
    wish(cloud).expect("renders").expect("valid")
}

/// An observation of every workload of `cloud` settled at its target tag.
fn settled(cloud: &InSyncCloud) -> Observation {
    let workloads = targets(&wished(cloud))
        .into_iter()
        .map(|(id, t)| {
            let counts = WorkloadCounts {
                desired: 1,
                ready: 1,
                updated: 1,
                settled: true,
                tag: Some(t.tag),
                revision: Some(t.revision),
                config_maps: Vec::new(),
            };
            (id, counts)
        })
        .collect();
    Observation {
        now: at(0),
        workloads,
        missing_secrets: Vec::new(),
        dns: DnsObservation {
            frontend: None,
            known_zones: None,
        },
        needs_prune: false,
        gates: Default::default(),
        restore: Default::default(),
        backups: Vec::new(),
    }
}

fn dns(ready: bool, reason: &'static str) -> DnsOutcome {
    DnsOutcome {
        endpoint: Some("fcloud.drtst.org".into()),
        condition: Cond::new(condition::DNS_READY, ready, reason, "m"),
        ready,
        zones: vec!["Z1".into()],
        release_finalizer: false,
        warning: None,
    }
}

fn report() -> ApplyReport {
    ApplyReport::default()
}

fn condition_of<'a>(status: &'a InSyncCloudStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"))
}

fn reasons(notes: &[Note]) -> Vec<&'static str> {
    notes.iter().map(|n| n.reason).collect()
}

fn was_ready(cloud: &mut InSyncCloud) {
    cloud.status = Some(InSyncCloudStatus {
        conditions: vec![Condition {
            type_: condition::READY.into(),
            status: "True".into(),
            reason: "Ready".into(),
            message: String::new(),
            observed_generation: Some(3),
            last_transition_time: Time(at(-100)),
        }],
        ..Default::default()
    });
}

#[test]
fn conclusions_table() {
    struct Case {
        name: &'static str,
        setup: fn(&mut InSyncCloud, &mut Observation),
        apply: fn() -> Option<Result<ApplyReport, Error>>,
        dns: DnsOutcome,
        ready: &'static str,
        degraded: &'static str,
        notes: Vec<&'static str>,
        requeue: u64,
        error: bool,
    }
    let cases = vec![
        Case {
            name: "a settled cloud with DNS published turns Ready, once",
            setup: |_, _| {},
            apply: || Some(Ok(report())),
            dns: dns(true, "Published"),
            ready: "True",
            degraded: "False",
            notes: vec!["Ready"],
            requeue: 300,
            error: false,
        },
        Case {
            name: "a cloud already Ready publishes no event and writes nothing new",
            setup: |c, _| was_ready(c),
            apply: || Some(Ok(report())),
            dns: dns(true, "Published"),
            ready: "True",
            degraded: "False",
            notes: vec![],
            requeue: 300,
            error: false,
        },
        Case {
            name: "DNS not published yet holds Ready back and looks again within a minute",
            setup: |_, _| {},
            apply: || Some(Ok(report())),
            dns: dns(false, "Pending"),
            ready: "False",
            degraded: "False",
            notes: vec![],
            requeue: 60,
            error: false,
        },
        Case {
            name: "a refused write is Degraded, reported, and returned for backoff",
            setup: |_, _| {},
            apply: || {
                Some(Ok(ApplyReport {
                    failed: vec![Error::UnknownKind(UnknownKind::Unwatched(
                        "v1/Thing".into(),
                    ))],
                    ..report()
                }))
            },
            dns: dns(true, "Published"),
            ready: "False",
            degraded: "True",
            notes: vec!["ApplyFailed"],
            // Unused: the returned error makes the error policy back off instead.
            requeue: 60,
            error: true,
        },
        Case {
            name: "withheld credentials are Degraded above a failed write and retried soon",
            setup: |_, _| {},
            apply: || {
                Some(Ok(ApplyReport {
                    withheld: vec!["mysql data exists".into()],
                    ..report()
                }))
            },
            dns: dns(true, "Published"),
            ready: "False",
            degraded: "True",
            notes: vec!["CredentialsLost"],
            requeue: 30,
            error: false,
        },
        Case {
            name: "a missing referenced Secret is Degraded",
            setup: |_, seen| {
                seen.missing_secrets = vec![("spec.objectStore.s3.secretRef", "s3".into())]
            },
            apply: || Some(Ok(report())),
            dns: dns(true, "Published"),
            ready: "False",
            degraded: "True",
            notes: vec![],
            requeue: 60,
            error: false,
        },
        Case {
            name: "a workload not settled keeps the cloud Progressing, not Ready",
            setup: |_, seen| {
                if let Some(w) = seen.workloads.get_mut("cloudmaster") {
                    w.settled = false;
                }
            },
            apply: || Some(Ok(report())),
            dns: dns(true, "Published"),
            ready: "False",
            degraded: "False",
            notes: vec![],
            requeue: 60,
            error: false,
        },
        Case {
            name: "a paused cloud applies nothing and still reports",
            setup: |c, _| c.spec.paused = true,
            apply: || None,
            dns: dns(true, "Published"),
            ready: "True",
            degraded: "False",
            notes: vec!["Ready"],
            requeue: 300,
            error: false,
        },
    ];
    for case in cases {
        let mut cloud = fcloud();
        let mut seen = settled(&cloud);
        (case.setup)(&mut cloud, &mut seen);
        let allowed = AllowList::everything();
        let settings = Settings {
            dns: Some(&allowed),
            ..Settings::default()
        };
        let plan = plan(settings, &cloud, wished(&cloud), &seen).expect("plans");
        assert_eq!(plan.apply.is_none(), cloud.spec.paused, "{}", case.name);
        let acted = Acted {
            apply: (case.apply)(),
            dns: case.dns.clone(),
        };
        let c = conclude(&cloud, &seen, &plan, acted);
        assert_eq!(
            condition_of(&c.status, condition::READY).status,
            case.ready,
            "{}: Ready",
            case.name
        );
        assert_eq!(
            condition_of(&c.status, condition::DEGRADED).status,
            case.degraded,
            "{}: Degraded",
            case.name
        );
        assert_eq!(reasons(&c.notes), case.notes, "{}: events", case.name);
        assert_eq!(
            c.requeue,
            Duration::from_secs(case.requeue),
            "{}",
            case.name
        );
        assert_eq!(c.error.is_some(), case.error, "{}: error", case.name);
        assert_eq!(c.status.observed_generation, Some(3), "{}", case.name);
    }
}

#[test]
fn a_steady_cloud_concludes_to_the_status_it_already_has() {
    // Zero writes in steady state: concluding twice over the same observation must give
    // the status the first conclusion wrote, so write_status sends nothing.
    let mut cloud = fcloud();
    let seen = settled(&cloud);
    let settings = Settings::default();
    let first = {
        let plan = plan(settings, &cloud, wished(&cloud), &seen).expect("plans");
        let acted = Acted {
            apply: Some(Ok(report())),
            dns: dns(true, "Published"),
        };
        conclude(&cloud, &seen, &plan, acted)
    };
    cloud.status = Some(first.status.clone());
    let later = Observation {
        now: at(600),
        ..seen
    };
    let plan = plan(settings, &cloud, wished(&cloud), &later).expect("plans");
    let acted = Acted {
        apply: Some(Ok(report())),
        dns: dns(true, "Published"),
    };
    let second = conclude(&cloud, &later, &plan, acted);
    assert_eq!(second.status, first.status);
    assert!(second.notes.is_empty(), "{:?}", second.notes);
}

#[test]
fn the_dns_finalizer_is_added_only_where_this_operator_publishes() {
    let cloud = fcloud();
    let seen = settled(&cloud);
    let everything = AllowList::everything();
    let nothing = AllowList::default();
    let elsewhere = AllowList::parse(&["example.com"]).expect("parses");
    let with = |allowed: Option<&AllowList>| {
        plan(
            Settings {
                dns: allowed,
                ..Settings::default()
            },
            &cloud,
            wished(&cloud),
            &seen,
        )
        .expect("plans")
        .add_finalizer
        .is_some()
    };
    assert!(with(Some(&everything)), "route53 and allowed");
    assert!(!with(Some(&elsewhere)), "domain not allowed");
    assert!(!with(Some(&nothing)), "no allow-list: deny by default");
    assert!(!with(None), "operator without Route53");
    let mut finalized = fcloud();
    finalized.metadata.finalizers = Some(vec![FINALIZER.into()]);
    let plan = plan(
        Settings {
            dns: Some(&everything),
            ..Settings::default()
        },
        &finalized,
        wished(&finalized),
        &seen,
    )
    .expect("plans");
    assert!(plan.add_finalizer.is_none(), "already there");
}

#[test]
fn without_an_allow_list_nothing_is_published_and_published_records_are_kept() {
    use crate::controller::dns::DnsIntent;
    let nothing = AllowList::default();
    let intent_of = |cloud: &InSyncCloud| {
        plan(
            Settings {
                dns: Some(&nothing),
                ..Settings::default()
            },
            cloud,
            wished(cloud),
            &settled(cloud),
        )
        .expect("plans")
    };
    // A new cloud: no finalizer, nothing handed to the syncer, and the condition says what the
    // platform team must set.
    let fresh = intent_of(&fcloud());
    assert!(fresh.add_finalizer.is_none());
    let DnsIntent::Report(outcome) = fresh.dns else {
        panic!("nothing may be published: {:?}", fresh.dns);
    };
    assert!(!outcome.ready && !outcome.release_finalizer);
    assert_eq!(outcome.condition.reason, "NoAllowedDomains");
    for hint in ["--dns-allowed-domain", "--dns-allow-all-domains"] {
        assert!(
            outcome.condition.message.contains(hint),
            "{}",
            outcome.condition.message
        );
    }
    // A cloud that published before (an upgraded allow-everything operator): its records are
    // neither removed nor updated, its finalizer and recorded zones stay.
    let mut published = fcloud();
    published.metadata.finalizers = Some(vec![FINALIZER.into()]);
    published.status = Some(InSyncCloudStatus {
        dns_zones: vec!["Z1".into()],
        ..InSyncCloudStatus::default()
    });
    let DnsIntent::Report(outcome) = intent_of(&published).dns else {
        panic!("the records must not be retired");
    };
    assert!(!outcome.release_finalizer);
    assert_eq!(outcome.zones, ["Z1"]);
    assert!(
        outcome.condition.message.contains("kept as they are"),
        "{}",
        outcome.condition.message
    );
}

#[test]
fn a_released_dns_finalizer_is_removed_without_touching_others() {
    let mut cloud = fcloud();
    cloud.metadata.finalizers = Some(vec!["example.com/keep-me".into(), FINALIZER.into()]);
    let seen = settled(&cloud);
    let plan = plan(Settings::default(), &cloud, wished(&cloud), &seen).expect("plans");
    let mut outcome = dns(true, "NotConfigured");
    outcome.release_finalizer = true;
    let c = conclude(
        &cloud,
        &seen,
        &plan,
        Acted {
            apply: Some(Ok(report())),
            dns: outcome,
        },
    );
    let patch = serde_json::to_value(c.remove_finalizer.expect("released")).expect("json");
    assert_eq!(patch[1]["path"], "/metadata/finalizers/1", "{patch}");
}

#[test]
fn an_invalid_spec_is_refused_with_its_reason() {
    let mut cloud = fcloud();
    cloud.spec.upgrade.health_timeout = "soon".into();
    let invalid = wish(&cloud).expect("no render error").expect_err("invalid");
    let c = refuse(&cloud, &invalid, &settled(&fcloud()));
    let degraded = condition_of(&c.status, condition::DEGRADED);
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "InvalidSpec")
    );
    assert!(
        degraded.message.contains("healthTimeout"),
        "{}",
        degraded.message
    );
    assert_eq!(reasons(&c.notes), vec!["InvalidSpec"]);
}

fn step(phase: UpgradePhase, started: i64) -> UpgradeStatus {
    UpgradeStatus {
        component: Some("cloudmaster".into()),
        step_started_at: Some(Time(at(started))),
        ..UpgradeStatus::new(None, "v2", phase)
    }
}

fn seen_at(secs: i64) -> Observation {
    Observation {
        now: at(secs),
        ..settled(&fcloud())
    }
}

#[test]
fn a_rolling_step_wakes_at_its_health_deadline() {
    let timeout = Duration::from_secs(15);
    let rolling = step(UpgradePhase::CloudMaster, 0);
    assert_eq!(
        next_wake(Some(&rolling), timeout, &seen_at(5), false),
        Duration::from_secs(10)
    );
    assert_eq!(
        next_wake(Some(&rolling), timeout, &seen_at(20), false),
        Duration::from_secs(2),
        "overdue: soon"
    );
    let long = Duration::from_secs(600);
    assert_eq!(
        next_wake(Some(&rolling), long, &seen_at(0), false),
        Duration::from_secs(60),
        "capped"
    );
}

#[test]
fn without_a_rolling_step_the_timer_is_only_a_safety_net() {
    let timeout = Duration::from_secs(15);
    let blocked = step(UpgradePhase::Blocked, 0);
    assert_eq!(
        next_wake(Some(&blocked), timeout, &seen_at(5), false),
        Duration::from_secs(60)
    );
    // A paused step's clock is stopped: its deadline is not coming.
    let paused = UpgradeStatus {
        paused_at: Some(Time(at(1))),
        ..step(UpgradePhase::CloudMaster, 0)
    };
    assert_eq!(
        next_wake(Some(&paused), timeout, &seen_at(500), false),
        Duration::from_secs(60)
    );
    assert_eq!(
        next_wake(None, timeout, &seen_at(5), false),
        Duration::from_secs(60)
    );
    assert_eq!(
        next_wake(None, timeout, &seen_at(5), true),
        Duration::from_secs(300)
    );
}

#[test]
fn a_resources_change_writes_only_the_step_it_reached_and_keeps_the_rest_as_they_run() {
    let mut cloud = fcloud();
    let mut seen = settled(&cloud);
    // What the live workloads mount: the ConfigMaps of the revision they run.
    for (id, counts) in &mut seen.workloads {
        counts.config_maps = vec![format!("{id}-config-old")];
    }
    cloud.status = Some(InSyncCloudStatus {
        current_version: Some(cloud.spec.version.clone()),
        ..Default::default()
    });
    cloud.spec.nodes.resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
        requests: Some(BTreeMap::from([(
            "cpu".to_owned(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("2".into()),
        )])),
        ..Default::default()
    });
    let plan = plan(Settings::default(), &cloud, wished(&cloud), &seen).expect("plans");
    let upgrade = plan.rollout.upgrade.clone().expect("a rollout");
    assert_eq!(upgrade.phase, UpgradePhase::Nodes);
    assert_eq!(upgrade.component.as_deref(), Some("node-0"));
    assert_eq!(
        upgrade.rolling["node-0"].reason.as_deref(),
        Some("resources")
    );
    let written: Vec<String> = plan
        .apply
        .as_ref()
        .expect("applies")
        .iter()
        .filter(|d| d.workload.is_some())
        .map(|d| d.object.name_any())
        .collect();
    assert!(written.contains(&"fcloud-node-0".to_owned()), "{written:?}");
    assert!(
        !written.contains(&"fcloud-node-1".to_owned()),
        "node-1 is held as it runs: {written:?}"
    );
    assert!(
        written.contains(&"fcloud-cloudmaster".to_owned()),
        "unchanged workloads are still applied: {written:?}"
    );
    assert!(
        plan.keep
            .contains(&("Deployment".to_owned(), "fcloud-node-1".to_owned())),
        "a held workload is not pruned: {:?}",
        plan.keep
    );
    assert!(
        plan.keep
            .contains(&("ConfigMap".to_owned(), "node-1-config-old".to_owned())),
        "nor the ConfigMap it mounts: {:?}",
        plan.keep
    );
}

mod restore_seam {
    //! The seam between the restore step and the cloud's own conclusion (issue 22): while a
    //! restore holds the cloud's workloads back, nothing of the cloud runs, and "nothing runs"
    //! must not read as "everything is settled".
    use super::*;
    use crate::api::RestorePhase;
    use crate::controller::cache::job_state::JobState;
    use crate::dns::AllowList;
    use k8s_openapi::jiff::Timestamp;

    fn now() -> Timestamp {
        "2026-12-07T22:00:00Z".parse().expect("time")
    }

    /// One reconcile of `cloud` from wish to conclusion, with nothing live (no workload has
    /// been created: the restore holds them back) and the check Job still running.
    fn reconcile(cloud: &InSyncCloud) -> Conclusion {
        let seen = Observation {
            now: now(),
            workloads: BTreeMap::new(),
            restore: restore::Seen {
                check: Some(JobState::Running),
                ..restore::Seen::default()
            },
            ..settled(cloud)
        };
        let allowed = AllowList::everything();
        let settings = Settings {
            dns: Some(&allowed),
            runner_image: Some("operator:dev"),
        };
        let plan = plan(
            settings,
            cloud,
            wish(cloud).expect("renders").expect("valid"),
            &seen,
        )
        .expect("plans");
        let acted = Acted {
            apply: Some(Ok(ApplyReport::default())),
            dns: DnsOutcome {
                endpoint: None,
                condition: Cond::new(condition::DNS_READY, true, "NotRequested", "no DNS"),
                ready: true,
                zones: Vec::new(),
                release_finalizer: false,
                warning: None,
            },
        };
        conclude(cloud, &seen, &plan, acted)
    }

    #[test]
    fn a_cloud_waiting_for_its_restore_is_neither_ready_nor_at_a_version() {
        for phase in [RestorePhase::Checking, RestorePhase::Failed] {
            // fcloud created from an offsite backup, its restore at `phase`.
            let cloud = restore::tests::cloud(Some(phase));
            let concluded = reconcile(&cloud);
            let reasons: Vec<&str> = concluded.notes.iter().map(|n| n.reason).collect();
            assert!(
                !reasons.contains(&"Ready"),
                "{phase:?}: a Ready event while nothing runs: {reasons:?}"
            );
            assert_eq!(
                concluded.status.current_version, None,
                "{phase:?}: currentVersion set while nothing of the cloud runs"
            );
            let ready = concluded
                .status
                .conditions
                .iter()
                .find(|c| c.type_ == condition::READY)
                .expect("Ready");
            assert_eq!(ready.status, "False", "{phase:?}");
            let progressing = concluded
                .status
                .conditions
                .iter()
                .find(|c| c.type_ == condition::PROGRESSING)
                .expect("Progressing");
            assert_ne!(
                progressing.reason, "Stable",
                "{phase:?}: 'nothing is rolling out' while the restore holds the cloud back"
            );
        }
    }
}
