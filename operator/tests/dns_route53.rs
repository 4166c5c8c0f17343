//! The DNS syncer against a real Route53 API: moto in server mode, started per test on
//! 127.0.0.1. Needs `moto_server` (`pip install 'moto[server]==5.2.1'`); fails, not skips,
//! without it.

mod support;

use std::time::Duration;

use insync_operator::dns::batch::{BatchLimits, group_cost};
use insync_operator::dns::plan::{DesiredCloud, plan_zone};
use insync_operator::dns::{
    CloudDnsStatus, CloudKey, DnsSyncer, Endpoint, Ownership, Route53, TxtRegistry,
};
use support::fault_proxy::{FaultProxy, Faults, ProxyStats};
use support::moto::Moto;
use support::route53::{
    client, create_zone, delete_zone, list_zone, put_foreign, test_config, user_records, wait_for,
    wait_ready,
};

const OWNER: &str = "test-owner";
const WAIT: Duration = Duration::from_secs(60);

fn key(name: &str) -> CloudKey {
    CloudKey::new("ns", name, format!("uid-{name}"))
}

fn txt(resource: &str) -> String {
    Ownership {
        owner_id: OWNER.into(),
        resource: resource.into(),
    }
    .to_txt_value()
}

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

async fn start_syncer(endpoint: &str) -> DnsSyncer {
    let cfg = test_config(endpoint, OWNER);
    let (syncer, worker) = DnsSyncer::from_config(&cfg).await.expect("syncer config");
    tokio::spawn(worker.run());
    syncer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_update_retype_and_delete() {
    let moto = Moto::start();
    let c = client(&moto.endpoint()).await;
    let zone = create_zone(&c, "drtst.org").await;
    let syncer = start_syncer(&moto.endpoint()).await;
    let k = key("fcloud");

    // Create.
    syncer.upsert_cloud(
        k.clone(),
        "drtst.org",
        None,
        vec![Endpoint::a("fcloud.drtst.org", &["10.0.0.1"], 60)],
    );
    assert!(matches!(
        syncer.status(&k),
        Some(CloudDnsStatus::Pending { .. })
    ));
    wait_ready(&syncer, std::slice::from_ref(&k), WAIT)
        .await
        .unwrap();
    assert_eq!(
        user_records(&c, &zone).await,
        vec![
            (
                "fcloud.drtst.org".into(),
                "A".into(),
                vec!["10.0.0.1".into()]
            ),
            (
                "insync-a-fcloud.drtst.org".into(),
                "TXT".into(),
                vec![txt("insynccloud/ns/fcloud")]
            ),
        ]
    );

    // The same request again is free: no new call at all.
    let before = syncer.counts();
    syncer.upsert_cloud(
        k.clone(),
        "drtst.org",
        None,
        vec![Endpoint::a("fcloud.drtst.org", &["10.0.0.1"], 60)],
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(syncer.counts(), before);
    assert_eq!(syncer.status(&k), Some(CloudDnsStatus::Ready));

    // Update: new addresses.
    syncer.upsert_cloud(
        k.clone(),
        "drtst.org",
        None,
        vec![Endpoint::a(
            "fcloud.drtst.org",
            &["10.0.0.2", "10.0.0.3"],
            60,
        )],
    );
    wait_ready(&syncer, std::slice::from_ref(&k), WAIT)
        .await
        .unwrap();
    let recs = user_records(&c, &zone).await;
    assert_eq!(
        recs[0].2,
        vec!["10.0.0.2".to_owned(), "10.0.0.3".to_owned()]
    );
    assert_eq!(recs.len(), 2);

    // Re-type: A → CNAME (the load balancer now has a hostname).
    syncer.upsert_cloud(
        k.clone(),
        "drtst.org",
        None,
        vec![Endpoint::cname(
            "fcloud.drtst.org",
            "lb-1.elb.example.com",
            60,
        )],
    );
    wait_ready(&syncer, std::slice::from_ref(&k), WAIT)
        .await
        .unwrap();
    assert_eq!(
        user_records(&c, &zone).await,
        vec![
            (
                "fcloud.drtst.org".into(),
                "CNAME".into(),
                vec!["lb-1.elb.example.com".into()]
            ),
            (
                "insync-cname-fcloud.drtst.org".into(),
                "TXT".into(),
                vec![txt("insynccloud/ns/fcloud")]
            ),
        ]
    );

    // Delete.
    syncer.remove_cloud(&k).await.expect("records removed");
    assert_eq!(user_records(&c, &zone).await, vec![]);
    assert_eq!(syncer.status(&k), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_record_is_left_alone_and_reported_as_conflict() {
    let moto = Moto::start();
    let c = client(&moto.endpoint()).await;
    let zone = create_zone(&c, "drtst.org").await;
    put_foreign(&c, &zone, "fcloud.drtst.org", "A", &["192.0.2.10"]).await;
    let foreign_before = user_records(&c, &zone).await;
    let syncer = start_syncer(&moto.endpoint()).await;
    let k = key("fcloud");
    syncer.upsert_cloud(
        k.clone(),
        "drtst.org",
        None,
        vec![Endpoint::a("fcloud.drtst.org", &["10.0.0.1"], 60)],
    );
    wait_for(
        &syncer,
        std::slice::from_ref(&k),
        |s| matches!(s, Some(CloudDnsStatus::Conflict { .. })),
        WAIT,
    )
    .await
    .unwrap();
    match syncer.status(&k) {
        Some(CloudDnsStatus::Conflict { name, detail }) => {
            assert_eq!(name, "fcloud.drtst.org");
            assert!(
                detail.contains("without an insync-operator ownership TXT"),
                "{detail}"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(syncer.counts().change_calls, 0);
    assert_eq!(user_records(&c, &zone).await, foreign_before);

    // Removing the cloud must not take the foreign record with it.
    syncer
        .remove_cloud(&k)
        .await
        .expect("nothing of ours to remove");
    assert_eq!(user_records(&c, &zone).await, foreign_before);
    assert_eq!(syncer.counts().change_calls, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_a_record_is_not_added_beside_someone_elses_aaaa_or_mx() {
    let moto = Moto::start();
    let c = client(&moto.endpoint()).await;
    let zone = create_zone(&c, "drtst.org").await;
    put_foreign(&c, &zone, "fcloud.drtst.org", "AAAA", &["2001:db8::10"]).await;
    put_foreign(
        &c,
        &zone,
        "fcloud.drtst.org",
        "MX",
        &["10 mail.example.com."],
    )
    .await;
    let foreign_before = user_records(&c, &zone).await;
    let syncer = start_syncer(&moto.endpoint()).await;
    let k = key("fcloud");
    syncer.upsert_cloud(
        k.clone(),
        "drtst.org",
        None,
        vec![Endpoint::a("fcloud.drtst.org", &["10.0.0.1"], 60)],
    );
    wait_for(
        &syncer,
        std::slice::from_ref(&k),
        |s| matches!(s, Some(CloudDnsStatus::Conflict { .. })),
        WAIT,
    )
    .await
    .unwrap();
    match syncer.status(&k) {
        Some(CloudDnsStatus::Conflict { name, detail }) => {
            assert_eq!(name, "fcloud.drtst.org");
            assert!(
                detail.contains("record types in the way: AAAA, MX"),
                "{detail}"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(syncer.counts().change_calls, 0);
    assert_eq!(user_records(&c, &zone).await, foreign_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clouds_in_one_zone_and_a_contested_name() {
    let moto = Moto::start();
    let c = client(&moto.endpoint()).await;
    let zone = create_zone(&c, "drtst.org").await;
    let syncer = start_syncer(&moto.endpoint()).await;
    let (a, b) = (key("alpha"), key("beta"));
    syncer.upsert_cloud(
        a.clone(),
        "drtst.org",
        None,
        vec![Endpoint::a("alpha.drtst.org", &["10.0.0.1"], 60)],
    );
    syncer.upsert_cloud(
        b.clone(),
        "drtst.org",
        None,
        vec![Endpoint::a("beta.drtst.org", &["10.0.0.2"], 60)],
    );
    wait_ready(&syncer, &[a.clone(), b.clone()], WAIT)
        .await
        .unwrap();
    // Both landed in one call.
    assert_eq!(syncer.counts().change_calls, 1);
    assert_eq!(user_records(&c, &zone).await.len(), 4);

    // A third cloud (another namespace) asking for alpha's name gets a conflict.
    let intruder = CloudKey::new("other", "alpha", "uid-x");
    syncer.upsert_cloud(
        intruder.clone(),
        "drtst.org",
        None,
        vec![Endpoint::a("alpha.drtst.org", &["10.9.9.9"], 60)],
    );
    wait_for(
        &syncer,
        std::slice::from_ref(&intruder),
        |s| matches!(s, Some(CloudDnsStatus::Conflict { detail, .. }) if detail.contains("insynccloud/ns/alpha")),
        WAIT,
    )
    .await
    .unwrap();

    // Removing one cloud leaves the other untouched.
    syncer.remove_cloud(&a).await.unwrap();
    syncer.remove_cloud(&intruder).await.unwrap();
    assert_eq!(
        user_records(&c, &zone).await,
        vec![
            ("beta.drtst.org".into(), "A".into(), vec!["10.0.0.2".into()]),
            (
                "insync-a-beta.drtst.org".into(),
                "TXT".into(),
                vec![txt("insynccloud/ns/beta")]
            ),
        ]
    );
    assert_eq!(syncer.status(&b), Some(CloudDnsStatus::Ready));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clouds_converge_in_few_calls() {
    let moto = Moto::start();
    let c = client(&moto.endpoint()).await;
    let zone = create_zone(&c, "drtst.org").await;
    let syncer = start_syncer(&moto.endpoint()).await;
    let n = 200;
    let keys: Vec<CloudKey> = (0..n).map(|i| key(&format!("c{i}"))).collect();
    let mut desired = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let ep = Endpoint::a(format!("c{i}.drtst.org"), &[&ip(i)], 60);
        desired.push(DesiredCloud {
            resource: k.resource(),
            endpoints: vec![ep.clone()],
        });
        syncer.upsert_cloud(k.clone(), "drtst.org", None, vec![ep]);
    }
    wait_ready(&syncer, &keys, WAIT).await.unwrap();

    // The bound: the same plan, packed "next fit", closes a call only when the next group does
    // not fit, so every closed call carries more than (limit - largest group) characters.
    let registry = TxtRegistry::new(OWNER, "insync-").unwrap();
    let plan = plan_zone(Some("drtst.org"), &[], &desired, &[], &registry);
    let costs: Vec<_> = plan.groups.iter().map(group_cost).collect();
    let total_chars: usize = costs.iter().map(|c| c.chars).sum();
    let total_values: usize = costs.iter().map(|c| c.values).sum();
    let max_group = costs.iter().map(|c| c.chars).max().unwrap_or(0);
    let limits = BatchLimits::default();
    let by_chars = total_chars.div_ceil(limits.max_value_chars - max_group);
    let by_values = total_values.div_ceil(limits.max_values - 2);
    let bound = by_chars.max(by_values) as u64;
    let counts = syncer.counts();
    println!("200 clouds: {counts:?}; {total_values} values, {total_chars} chars, bound {bound}");
    assert!(bound <= 2, "the fixture should fit in at most two calls");
    assert!(
        counts.change_calls <= bound,
        "{} ChangeResourceRecordSets calls for {n} clouds, expected at most {bound}",
        counts.change_calls
    );
    // One zone list, one round (one page of the empty zone).
    assert!(counts.list_zones_calls <= 1, "{counts:?}");
    assert!(counts.list_records_calls <= 2, "{counts:?}");
    assert_eq!(counts.retries, 0);

    let recs = list_zone(&c, &zone).await;
    assert_eq!(recs.iter().filter(|r| r.rtype == "A").count(), n);
    assert_eq!(recs.iter().filter(|r| r.rtype == "TXT").count(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_lost_responses_lose_and_duplicate_nothing() {
    let moto = Moto::start();
    let c = client(&moto.endpoint()).await;
    let zone = create_zone(&c, "drtst.org").await;
    let proxy = FaultProxy::start(
        moto.port(),
        Faults {
            seed: 42,
            throttle: 0.3,
            prior_request: 0.1,
            fail_after_apply: 0.2,
            reject_body_containing: None,
        },
    )
    .await;
    let mut cfg = test_config(&proxy.endpoint(), OWNER);
    // Small batches make many calls, so every fault gets its turn.
    cfg.limits = BatchLimits {
        max_values: 20,
        ..BatchLimits::default()
    };
    let (syncer, worker) =
        DnsSyncer::new(Route53::new(cfg.sdk_client().await, cfg.retry), &cfg).expect("config");
    tokio::spawn(worker.run());

    let n = 60;
    let keys: Vec<CloudKey> = (0..n).map(|i| key(&format!("t{i}"))).collect();
    for (i, k) in keys.iter().enumerate() {
        syncer.upsert_cloud(
            k.clone(),
            "drtst.org",
            None,
            vec![Endpoint::a(format!("t{i}.drtst.org"), &[&ip(i)], 60)],
        );
    }
    wait_ready(&syncer, &keys, Duration::from_secs(120))
        .await
        .unwrap();
    // Then update half of them and remove a quarter, still under fire.
    for (i, k) in keys.iter().enumerate().take(30) {
        syncer.upsert_cloud(
            k.clone(),
            "drtst.org",
            None,
            vec![Endpoint::a(format!("t{i}.drtst.org"), &[&ip(i + 1000)], 60)],
        );
    }
    let removals = keys[45..].to_vec();
    let remover = syncer.clone();
    let removing = tokio::spawn(async move {
        for k in &removals {
            // A removal can report a failed round; the syncer retries, so ask again.
            let mut tries = 0;
            while let Err(e) = remover.remove_cloud(k).await {
                tries += 1;
                assert!(tries < 20, "removal of {k} kept failing: {e}");
            }
        }
    });
    wait_ready(&syncer, &keys[..45], Duration::from_secs(120))
        .await
        .unwrap();
    removing.await.unwrap();

    let stats = proxy.stats();
    let counts = syncer.counts();
    println!(
        "proxy: {} requests, {} throttled, {} prior-request, {} failed after apply; syncer {counts:?}",
        ProxyStats::get(&stats.requests),
        ProxyStats::get(&stats.throttled),
        ProxyStats::get(&stats.prior_request),
        ProxyStats::get(&stats.failed_after_apply)
    );
    assert!(ProxyStats::get(&stats.throttled) > 0);
    assert!(ProxyStats::get(&stats.prior_request) > 0);
    assert!(ProxyStats::get(&stats.failed_after_apply) > 0);
    assert!(counts.retries > 0 && counts.throttled > 0);

    // The zone holds exactly what is wanted: no record lost, none duplicated.
    let mut expected = Vec::new();
    for i in 0..45 {
        let addr = if i < 30 { ip(i + 1000) } else { ip(i) };
        expected.push((format!("t{i}.drtst.org"), "A".to_owned(), vec![addr]));
        expected.push((
            format!("insync-a-t{i}.drtst.org"),
            "TXT".to_owned(),
            vec![txt(&format!("insynccloud/ns/t{i}"))],
        ));
    }
    expected.sort();
    assert_eq!(user_records(&c, &zone).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_change_only_fails_its_own_cloud() {
    let moto = Moto::start();
    let c = client(&moto.endpoint()).await;
    let zone = create_zone(&c, "drtst.org").await;
    let proxy = FaultProxy::start(
        moto.port(),
        Faults {
            seed: 1,
            reject_body_containing: Some("10.66.6.6".into()),
            ..Faults::default()
        },
    )
    .await;
    let syncer = start_syncer(&proxy.endpoint()).await;
    let n = 32;
    let keys: Vec<CloudKey> = (0..n).map(|i| key(&format!("r{i}"))).collect();
    for (i, k) in keys.iter().enumerate() {
        let addr = if i == 13 {
            "10.66.6.6".to_owned()
        } else {
            ip(i)
        };
        syncer.upsert_cloud(
            k.clone(),
            "drtst.org",
            None,
            vec![Endpoint::a(format!("r{i}.drtst.org"), &[&addr], 60)],
        );
    }
    let good: Vec<CloudKey> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 13)
        .map(|(_, k)| k.clone())
        .collect();
    wait_ready(&syncer, &good, WAIT).await.unwrap();
    wait_for(
        &syncer,
        &keys[13..14],
        |s| matches!(s, Some(CloudDnsStatus::Error { message }) if message.contains("InvalidChangeBatch")),
        WAIT,
    )
    .await
    .unwrap();
    let counts = syncer.counts();
    // One full batch, then halving down to the culprit: 1 + 2·log2(32) calls at most for the
    // first round (later backoff retries only resend the culprit's own group).
    println!("rejection isolation: {counts:?}");
    assert!(counts.rejected_batches >= 6, "{counts:?}");
    let recs = user_records(&c, &zone).await;
    assert_eq!(recs.len(), 2 * (n - 1));
    assert!(
        !recs
            .iter()
            .any(|r| r.0.starts_with("r13.") || r.0.contains("-r13."))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_nothing() {
    let moto = Moto::start();
    let c = client(&moto.endpoint()).await;
    let zone = create_zone(&c, "drtst.org").await;
    let mut cfg = test_config(&moto.endpoint(), OWNER);
    cfg.dry_run = true;
    let (syncer, worker) = DnsSyncer::from_config(&cfg).await.unwrap();
    tokio::spawn(worker.run());
    let k = key("fcloud");
    syncer.upsert_cloud(
        k.clone(),
        "drtst.org",
        None,
        vec![Endpoint::a("fcloud.drtst.org", &["10.0.0.1"], 60)],
    );
    wait_for(
        &syncer,
        std::slice::from_ref(&k),
        |s| matches!(s, Some(CloudDnsStatus::Pending { reason }) if reason.contains("dry run")),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(syncer.counts().change_calls, 0);
    assert_eq!(user_records(&c, &zone).await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_by_longest_suffix_and_removal_after_restart() {
    let moto = Moto::start();
    let c = client(&moto.endpoint()).await;
    let parent = create_zone(&c, "drtst.org").await;
    let child = create_zone(&c, "eu.drtst.org").await;
    let (k1, k2) = (key("one"), key("two"));
    {
        let syncer = start_syncer(&moto.endpoint()).await;
        syncer.upsert_cloud(
            k1.clone(),
            "drtst.org",
            None,
            vec![Endpoint::a("one.drtst.org", &["10.0.0.1"], 60)],
        );
        syncer.upsert_cloud(
            k2.clone(),
            "eu.drtst.org",
            None,
            vec![Endpoint::a("two.eu.drtst.org", &["10.0.0.2"], 60)],
        );
        wait_ready(&syncer, &[k1.clone(), k2.clone()], WAIT)
            .await
            .unwrap();
        // Two zones, two calls (one each), run concurrently.
        assert_eq!(syncer.counts().change_calls, 2);
    }
    assert_eq!(user_records(&c, &parent).await.len(), 2);
    assert_eq!(user_records(&c, &child).await.len(), 2);

    // A domain without a hosted zone is an error on that cloud, not a write anywhere.
    {
        let syncer = start_syncer(&moto.endpoint()).await;
        let lost = key("lost");
        syncer.upsert_cloud(
            lost.clone(),
            "nowhere.test",
            None,
            vec![Endpoint::a("lost.nowhere.test", &["10.0.0.9"], 60)],
        );
        wait_for(
            &syncer,
            std::slice::from_ref(&lost),
            |s| matches!(s, Some(CloudDnsStatus::Error { message }) if message.contains("no Route53 hosted zone for lost.nowhere.test")),
            WAIT,
        )
        .await
        .unwrap();
        assert_eq!(syncer.counts().change_calls, 0);
    }

    // A new operator process has never heard of "two": removal searches every zone.
    let syncer = start_syncer(&moto.endpoint()).await;
    syncer
        .remove_cloud(&k2)
        .await
        .expect("removed after restart");
    assert_eq!(user_records(&c, &child).await, vec![]);
    assert_eq!(
        user_records(&c, &parent).await.len(),
        2,
        "the other cloud stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_zones_are_cleaned_after_a_restart_and_a_domain_change() {
    let moto = Moto::start();
    let c = client(&moto.endpoint()).await;
    let old = create_zone(&c, "drtst.org").await;
    let new = create_zone(&c, "example.net").await;
    let k = key("moved");
    let recorded = {
        let syncer = start_syncer(&moto.endpoint()).await;
        syncer.upsert_cloud(
            k.clone(),
            "drtst.org",
            None,
            vec![Endpoint::a("moved.drtst.org", &["10.0.0.1"], 60)],
        );
        wait_ready(&syncer, std::slice::from_ref(&k), WAIT)
            .await
            .unwrap();
        syncer.zones(&k).expect("tracked")
    };
    assert_eq!(recorded, vec![old.clone()], "the zone to record in status");
    assert_eq!(user_records(&c, &old).await.len(), 2);

    // A new process: only the recorded zones say where the old records are.
    let syncer = start_syncer(&moto.endpoint()).await;
    syncer.upsert_cloud_recorded(
        k.clone(),
        "example.net",
        None,
        vec![Endpoint::a("moved.example.net", &["10.0.0.1"], 60)],
        recorded,
    );
    wait_ready(&syncer, std::slice::from_ref(&k), WAIT)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while !user_records(&c, &old).await.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(user_records(&c, &old).await, vec![], "old zone cleaned");
    assert_eq!(user_records(&c, &new).await.len(), 2);
    assert_eq!(
        syncer.zones(&k),
        Some(vec![new]),
        "only the new zone is left to record"
    );
}

/// A hosted zone deleted and created again (same name, new id) takes the records with it; the
/// syncer must find the new zone rather than keep writing to the id it resolved first (it did,
/// until the operator restarted: every round failed with NoSuchHostedZone and the status still
/// read Ready).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_created_again_under_a_new_id_is_found_again() {
    let moto = Moto::start();
    let c = client(&moto.endpoint()).await;
    let old = create_zone(&c, "drtst.org").await;
    let syncer = start_syncer(&moto.endpoint()).await;
    let k = key("fcloud");
    syncer.upsert_cloud(
        k.clone(),
        "drtst.org",
        None,
        vec![Endpoint::a("fcloud.drtst.org", &["10.0.0.1"], 60)],
    );
    wait_ready(&syncer, std::slice::from_ref(&k), WAIT)
        .await
        .unwrap();
    assert_eq!(user_records(&c, &old).await.len(), 2, "A + ownership TXT");

    delete_zone(&c, &old).await;
    let new = create_zone(&c, "drtst.org").await;
    assert_ne!(old, new);
    syncer.resync();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let records = user_records(&c, &new).await;
        if records
            .iter()
            .any(|(name, ty, _)| name.trim_end_matches('.') == "fcloud.drtst.org" && ty == "A")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the record never reached the re-created zone {new}: {records:?}; status {:?}",
            syncer.status(&k)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        syncer.resync();
    }
    wait_ready(&syncer, std::slice::from_ref(&k), WAIT)
        .await
        .unwrap();
}
