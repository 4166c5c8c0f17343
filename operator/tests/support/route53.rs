//! Route53 test helpers: clients with dummy credentials, zones, listings, waiting on statuses.

use std::time::Duration;

use aws_sdk_route53::Client;
use aws_sdk_route53::config::Credentials;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use insync_operator::dns::plan::RecordSet;
use insync_operator::dns::route53::from_sdk;
use insync_operator::dns::{CloudDnsStatus, CloudKey, DnsSyncer, RetryPolicy, Route53Config};

/// Dummy credentials: moto only needs SigV4-shaped requests.
pub fn dummy_credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "insync-tests")
}

/// A syncer config for tests: dummy credentials, short debounce, fast retries.
pub fn test_config(endpoint: &str, owner_id: &str) -> Route53Config {
    let mut c = Route53Config::new(owner_id);
    c.endpoint_url = Some(endpoint.to_owned());
    c.static_credentials = Some(dummy_credentials());
    c.debounce = Duration::from_millis(200);
    c.error_backoff = Duration::from_millis(200);
    c.retry = RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
    };
    c
}

/// An SDK client for setting up and checking zones directly.
pub async fn client(endpoint: &str) -> Client {
    test_config(endpoint, "tests").sdk_client().await
}

/// Creates a public hosted zone, returns its id (without `/hostedzone/`).
pub async fn create_zone(client: &Client, name: &str) -> String {
    let out = client
        .create_hosted_zone()
        .name(name)
        .caller_reference(format!("insync-tests-{name}-{}", std::process::id()))
        .send()
        .await
        .expect("CreateHostedZone against moto");
    let id = out
        .hosted_zone()
        .map(|z| z.id().to_owned())
        .unwrap_or_default();
    id.trim_start_matches("/hostedzone/").to_owned()
}

/// Writes a record as some other tool would (no ownership TXT).
pub async fn put_foreign(client: &Client, zone: &str, name: &str, ty: &str, values: &[&str]) {
    let mut rrs = ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::from(ty))
        .ttl(300);
    for v in values {
        rrs = rrs.resource_records(ResourceRecord::builder().value(*v).build().expect("record"));
    }
    client
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Create)
                        .resource_record_set(rrs.build().expect("record set"))
                        .build()
                        .expect("change"),
                )
                .build()
                .expect("batch"),
        )
        .send()
        .await
        .expect("writing a foreign record");
}

/// Deletes a hosted zone as a person would: its records (all but NS/SOA), then the zone.
pub async fn delete_zone(client: &Client, zone: &str) {
    let sets = client
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .expect("ListResourceRecordSets against moto");
    let changes: Vec<Change> = sets
        .resource_record_sets()
        .iter()
        .filter(|r| !matches!(r.r#type(), RrType::Ns | RrType::Soa))
        .map(|r| {
            Change::builder()
                .action(ChangeAction::Delete)
                .resource_record_set(r.clone())
                .build()
                .expect("change")
        })
        .collect();
    if !changes.is_empty() {
        client
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(
                ChangeBatch::builder()
                    .set_changes(Some(changes))
                    .build()
                    .expect("batch"),
            )
            .send()
            .await
            .expect("deleting the zone's records");
    }
    client
        .delete_hosted_zone()
        .id(zone)
        .send()
        .await
        .expect("deleting the zone");
}

/// Every record set of a zone (all pages).
pub async fn list_zone(client: &Client, zone: &str) -> Vec<RecordSet> {
    let mut out = Vec::new();
    let mut start: Option<(String, RrType)> = None;
    loop {
        let mut req = client.list_resource_record_sets().hosted_zone_id(zone);
        if let Some((n, t)) = &start {
            req = req.start_record_name(n).start_record_type(t.clone());
        }
        let page = req
            .send()
            .await
            .expect("ListResourceRecordSets against moto");
        out.extend(page.resource_record_sets().iter().map(from_sdk));
        match (
            page.is_truncated(),
            page.next_record_name(),
            page.next_record_type(),
        ) {
            (true, Some(n), Some(t)) => start = Some((n.to_owned(), t.clone())),
            _ => break,
        }
    }
    out
}

/// The zone's records other than its own NS/SOA, sorted, as `(name, type, values)`.
pub async fn user_records(client: &Client, zone: &str) -> Vec<(String, String, Vec<String>)> {
    let mut v: Vec<_> = list_zone(client, zone)
        .await
        .into_iter()
        .filter(|r| r.rtype != "NS" && r.rtype != "SOA")
        .map(|r| (r.name, r.rtype, r.values))
        .collect();
    v.sort();
    v
}

/// Waits until every key's status satisfies `pred`; returns the time it took, or a
/// description of the statuses that did not get there.
pub async fn wait_for(
    syncer: &DnsSyncer,
    keys: &[CloudKey],
    pred: impl Fn(Option<&CloudDnsStatus>) -> bool,
    timeout: Duration,
) -> Result<Duration, String> {
    let start = tokio::time::Instant::now();
    let deadline = start + timeout;
    let mut events = syncer.subscribe();
    loop {
        if keys.iter().all(|k| pred(syncer.status(k).as_ref())) {
            return Ok(start.elapsed());
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => {
                let pending: Vec<String> = keys
                    .iter()
                    .filter(|k| !pred(syncer.status(k).as_ref()))
                    .take(5)
                    .map(|k| format!("{k}: {:?}", syncer.status(k)))
                    .collect();
                return Err(format!(
                    "timed out after {timeout:?}; not there yet (first 5): {pending:#?}; counts {:?}",
                    syncer.counts()
                ));
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                return Err("syncer event stream closed".into());
            }
            Ok(_) => {}
        }
    }
}

/// Waits until every key is Ready.
pub async fn wait_ready(
    syncer: &DnsSyncer,
    keys: &[CloudKey],
    timeout: Duration,
) -> Result<Duration, String> {
    wait_for(
        syncer,
        keys,
        |s| s.is_some_and(CloudDnsStatus::is_ready),
        timeout,
    )
    .await
}
