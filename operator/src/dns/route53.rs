//! The Route53 edge: SDK client construction, the three calls the syncer makes, bounded
//! retries with backoff and jitter, and call counters.
//!
//! The SDK's own retry layer is switched off so every HTTP attempt is counted here and the
//! backoff is ours (and testable): `Throttling`, `PriorRequestNotComplete`, other throttling
//! codes, HTTP 429/5xx, timeouts and connection errors are retried; `InvalidChangeBatch` and
//! `InvalidInput` are content errors, returned at once as [`Route53Error::Rejected`] so the
//! caller can split the batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_route53::Client;
use aws_sdk_route53::config::retry::RetryConfig;
use aws_sdk_route53::config::timeout::TimeoutConfig;
use aws_sdk_route53::config::{Credentials, Region};
use aws_sdk_route53::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_route53::types::{self as sdk, ChangeAction as SdkAction, RrType};
use rand::Rng;

use crate::telemetry::CallCounts;

use crate::dns::batch::BatchLimits;
use crate::dns::plan::{AliasValue, Change, ChangeAction, RecordSet};
use crate::dns::record::normalize_name;
use crate::dns::registry::DEFAULT_TXT_PREFIX;
use crate::dns::zone::{HostedZone, normalize_zone_id};

/// How the operator talks to Route53 and how it marks ownership.
#[derive(Debug, Clone)]
pub struct Route53Config {
    /// Endpoint override (e.g. a moto server); `None` uses AWS (or `AWS_ENDPOINT_URL`).
    pub endpoint_url: Option<String>,
    /// Signing region; Route53 is global, `us-east-1` is right for AWS.
    pub region: String,
    /// This operator instance's owner id (`--dns-owner-id`), written in every ownership TXT.
    pub owner_id: String,
    /// Prefix of ownership TXT names (`<prefix><type>-<name>`).
    pub txt_prefix: String,
    /// Plan and log, never write.
    pub dry_run: bool,
    /// How long the syncer gathers changes before it plans a zone.
    pub debounce: Duration,
    /// How often every zone with clouds is re-listed and re-planned (heals drift).
    pub resync_interval: Duration,
    /// Delay before a zone whose last sync failed is tried again (doubles up to 20x).
    pub error_backoff: Duration,
    /// Retries of one Route53 call.
    pub retry: RetryPolicy,
    /// Per-call limits used to pack change batches.
    pub limits: BatchLimits,
    /// Static credentials instead of the default AWS credential chain (tests, benchmarks).
    pub static_credentials: Option<Credentials>,
}

impl Route53Config {
    /// Defaults for `owner_id`: AWS endpoint, `us-east-1`, prefix `insync-`, 300 ms debounce,
    /// 10 min resync.
    pub fn new(owner_id: impl Into<String>) -> Self {
        Self {
            endpoint_url: None,
            region: "us-east-1".into(),
            owner_id: owner_id.into(),
            txt_prefix: DEFAULT_TXT_PREFIX.into(),
            dry_run: false,
            debounce: Duration::from_millis(300),
            resync_interval: Duration::from_secs(600),
            error_backoff: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            limits: BatchLimits::default(),
            static_credentials: None,
        }
    }

    /// An SDK client: the normal AWS credential chain (env, profile, web identity/IRSA, ECS,
    /// IMDS) unless static credentials are set, plus the endpoint override. SDK retries are off
    /// (see the module docs); attempts time out after 30 s.
    pub async fn sdk_client(&self) -> Client {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            );
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        if let Some(creds) = &self.static_credentials {
            loader = loader.credentials_provider(creds.clone());
        }
        Client::new(&loader.load().await)
    }
}

/// Bounded exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub base_delay: Duration,
    /// Cap of one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `retry` (1-based): `base * 2^(retry-1)`, capped, with
    /// "equal jitter" (uniform in the upper half) so clients that failed together spread out.
    pub(crate) fn delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let exp = self.base_delay.saturating_mul(
            1u32.checked_shl(retry.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let capped = exp.min(self.max_delay);
        let half = capped / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(if jitter_ms == 0 {
            0
        } else {
            rng.random_range(0..=jitter_ms)
        })
    }
}

/// Counts of Route53 HTTP attempts, for metrics and benchmarks.
#[derive(Debug, Default)]
pub(crate) struct DnsCounters {
    change_calls: AtomicU64,
    list_records_calls: AtomicU64,
    list_zones_calls: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    rejected_batches: AtomicU64,
}

impl DnsCounters {
    /// Current values.
    pub(crate) fn snapshot(&self) -> CallCounts {
        CallCounts {
            change_calls: self.change_calls.load(Ordering::Relaxed),
            list_records_calls: self.list_records_calls.load(Ordering::Relaxed),
            list_zones_calls: self.list_zones_calls.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            rejected_batches: self.rejected_batches.load(Ordering::Relaxed),
        }
    }
}

/// The SDK's own error behind a [`Route53Error`], kept whole as its source. Shared, because one
/// failed call fails every cloud of its zone; two causes are equal when they read the same, as
/// the rest of a [`Route53Error`] is compared by its text.
#[derive(Clone)]
pub struct SdkCause(Arc<dyn std::error::Error + Send + Sync>);

impl SdkCause {
    /// Wraps an error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }
}

impl std::fmt::Debug for SdkCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for SdkCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for SdkCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for SdkCause {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.to_string() == other.to_string()
    }
}

impl Eq for SdkCause {}

/// A failed Route53 call. The SDK error is the source; `message` is what Route53 (or the
/// transport) said, with the SDK's context, for conditions and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Route53Error {
    /// The change batch was refused for its content; splitting it finds the culprit.
    #[error("Route53 rejected the change batch for zone {zone} ({code}): {message}")]
    Rejected {
        /// Hosted zone id.
        zone: String,
        /// `InvalidChangeBatch` or `InvalidInput`.
        code: String,
        /// Route53's explanation.
        message: String,
        /// An earlier attempt of the same call failed in a way that may hide success (5xx,
        /// timeout, connection loss), so the rejection may only say "already done": re-list
        /// and re-plan rather than blame the batch.
        after_lost_response: bool,
        /// The SDK error.
        #[source]
        source: SdkCause,
    },
    /// Still throttled or unreachable after every attempt.
    #[error(
        "Route53 {operation} still failing after {attempts} attempts (last: {code}): {message}; will retry on the next sync"
    )]
    GaveUp {
        /// The API operation.
        operation: &'static str,
        /// Attempts made.
        attempts: u32,
        /// Last error code (or kind of failure).
        code: String,
        /// Last error text.
        message: String,
        /// The last SDK error.
        #[source]
        source: SdkCause,
    },
    /// A failure retrying can't fix (permissions, missing zone, bad endpoint).
    #[error(
        "Route53 {operation} failed ({code}): {message}; check the AWS credentials, the IAM permissions (route53:ListHostedZones, ListResourceRecordSets, ChangeResourceRecordSets) and the endpoint"
    )]
    Failed {
        /// The API operation.
        operation: &'static str,
        /// Error code.
        code: String,
        /// Error text.
        message: String,
        /// The SDK error.
        #[source]
        source: SdkCause,
    },
    /// A request could not be built from our records (a bug, or a value Route53 can't hold).
    #[error("building a Route53 {what}: {source}")]
    Build {
        /// What was being built.
        what: &'static str,
        /// The builder's complaint.
        #[source]
        source: SdkCause,
    },
}

impl Route53Error {
    /// True when Route53 says the hosted zone does not exist (deleted, or created again under
    /// a new id): whatever records it held are gone with it.
    pub(crate) fn is_missing_zone(&self) -> bool {
        matches!(self, Route53Error::Failed { code, .. } if code == "NoSuchHostedZone")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Throttled,
    Transient,
    Rejected,
    Fatal,
}

const THROTTLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
];

fn classify<E>(err: &SdkError<E>) -> (Class, String, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code().unwrap_or("Unknown").to_owned();
            let status = ctx.raw().status().as_u16();
            let message = ctx
                .err()
                .message()
                .map(str::to_owned)
                .unwrap_or_else(|| DisplayErrorContext(ctx.err()).to_string());
            let class = if THROTTLE_CODES.contains(&code.as_str()) || status == 429 {
                Class::Throttled
            } else if code == "InvalidChangeBatch" || code == "InvalidInput" {
                Class::Rejected
            } else if status >= 500 {
                Class::Transient
            } else {
                Class::Fatal
            };
            (class, code, message)
        }
        SdkError::TimeoutError(_) => (
            Class::Transient,
            "Timeout".into(),
            DisplayErrorContext(err).to_string(),
        ),
        SdkError::DispatchFailure(_) => (
            Class::Transient,
            "DispatchFailure".into(),
            DisplayErrorContext(err).to_string(),
        ),
        SdkError::ResponseError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let class = if status == 429 {
                Class::Throttled
            } else {
                Class::Transient
            };
            (
                class,
                format!("HTTP {status}"),
                DisplayErrorContext(err).to_string(),
            )
        }
        _ => (
            Class::Fatal,
            "ConstructionFailure".into(),
            DisplayErrorContext(err).to_string(),
        ),
    }
}

/// The client edge the syncer uses. Cheap to clone.
#[derive(Clone)]
pub struct Route53 {
    client: Client,
    retry: RetryPolicy,
    counters: Arc<DnsCounters>,
}

impl std::fmt::Debug for Route53 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route53")
            .field("retry", &self.retry)
            .field("counters", &self.counters.snapshot())
            .finish_non_exhaustive()
    }
}

enum Op {
    Change,
    ListRecords,
    ListZones,
}

impl Route53 {
    /// Wraps an SDK client (build one with [`Route53Config::sdk_client`]).
    pub fn new(client: Client, retry: RetryPolicy) -> Self {
        Self {
            client,
            retry,
            counters: Arc::new(DnsCounters::default()),
        }
    }

    /// The shared counters.
    pub(crate) fn counters(&self) -> Arc<DnsCounters> {
        Arc::clone(&self.counters)
    }

    async fn call<T, E, F, Fut>(
        &self,
        op: Op,
        operation: &'static str,
        zone: &str,
        mut f: F,
    ) -> Result<T, Route53Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut attempt: u32 = 0;
        let mut maybe_applied = false;
        loop {
            attempt += 1;
            let counter = match op {
                Op::Change => &self.counters.change_calls,
                Op::ListRecords => &self.counters.list_records_calls,
                Op::ListZones => &self.counters.list_zones_calls,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            if attempt > 1 {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            let err = match f().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let (class, code, message) = classify(&err);
            match class {
                Class::Rejected => {
                    self.counters
                        .rejected_batches
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(Route53Error::Rejected {
                        zone: zone.to_owned(),
                        code,
                        message,
                        after_lost_response: maybe_applied,
                        source: SdkCause::new(err),
                    });
                }
                Class::Fatal => {
                    return Err(Route53Error::Failed {
                        operation,
                        code,
                        message,
                        source: SdkCause::new(err),
                    });
                }
                Class::Throttled | Class::Transient => {
                    if class == Class::Throttled {
                        self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                    } else {
                        // Throttling answers come before any work; anything else may have
                        // been applied before the response was lost.
                        maybe_applied = true;
                    }
                    if attempt >= self.retry.max_attempts {
                        return Err(Route53Error::GaveUp {
                            operation,
                            attempts: attempt,
                            code,
                            message,
                            source: SdkCause::new(err),
                        });
                    }
                    let delay = self.retry.delay(attempt, &mut rand::rng());
                    tracing::debug!(
                        operation,
                        zone,
                        code,
                        attempt,
                        ?delay,
                        "retrying Route53 call"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// All hosted zones of the account (paginated).
    pub(crate) async fn list_hosted_zones(&self) -> Result<Vec<HostedZone>, Route53Error> {
        let mut zones = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .call(Op::ListZones, "ListHostedZones", "-", || {
                    self.client
                        .list_hosted_zones()
                        .set_marker(marker.clone())
                        .send()
                })
                .await?;
            for z in out.hosted_zones() {
                zones.push(HostedZone {
                    id: normalize_zone_id(z.id()),
                    name: normalize_name(z.name()),
                    private: z.config().is_some_and(|c| c.private_zone()),
                });
            }
            match (out.is_truncated(), out.next_marker()) {
                (true, Some(m)) => marker = Some(m.to_owned()),
                _ => break,
            }
        }
        Ok(zones)
    }

    /// Every record set of a zone (paginated, 300 per page).
    pub(crate) async fn list_records(&self, zone_id: &str) -> Result<Vec<RecordSet>, Route53Error> {
        let mut records = Vec::new();
        let mut start: Option<(String, RrType, Option<String>)> = None;
        loop {
            let out = self
                .call(Op::ListRecords, "ListResourceRecordSets", zone_id, || {
                    let mut req = self
                        .client
                        .list_resource_record_sets()
                        .hosted_zone_id(zone_id);
                    if let Some((name, ty, ident)) = &start {
                        req = req
                            .start_record_name(name.clone())
                            .start_record_type(ty.clone())
                            .set_start_record_identifier(ident.clone());
                    }
                    req.send()
                })
                .await?;
            records.extend(out.resource_record_sets().iter().map(from_sdk));
            match (
                out.is_truncated(),
                out.next_record_name(),
                out.next_record_type(),
            ) {
                (true, Some(name), Some(ty)) => {
                    start = Some((
                        name.to_owned(),
                        ty.clone(),
                        out.next_record_identifier().map(str::to_owned),
                    ));
                }
                _ => break,
            }
        }
        Ok(records)
    }

    /// Sends one change batch (retrying throttling/transient failures).
    pub(crate) async fn change(
        &self,
        zone_id: &str,
        changes: &[Change],
        comment: &str,
    ) -> Result<(), Route53Error> {
        let sdk_changes = changes
            .iter()
            .map(to_sdk_change)
            .collect::<Result<Vec<_>, _>>()?;
        let batch = sdk::ChangeBatch::builder()
            .comment(comment)
            .set_changes(Some(sdk_changes))
            .build()
            .map_err(|e| Route53Error::Build {
                what: "change batch",
                source: SdkCause::new(e),
            })?;
        self.call(Op::Change, "ChangeResourceRecordSets", zone_id, || {
            self.client
                .change_resource_record_sets()
                .hosted_zone_id(zone_id)
                .change_batch(batch.clone())
                .send()
        })
        .await
        .map(|_| ())
    }
}

/// Our model of a listed record set.
pub fn from_sdk(r: &sdk::ResourceRecordSet) -> RecordSet {
    RecordSet {
        name: normalize_name(r.name()),
        rtype: r.r#type().as_str().to_ascii_uppercase(),
        set_identifier: r.set_identifier().map(str::to_owned),
        ttl: r.ttl(),
        values: r
            .resource_records()
            .iter()
            .map(|v| v.value().to_owned())
            .collect(),
        alias: r.alias_target().map(|a| AliasValue {
            hosted_zone_id: a.hosted_zone_id().to_owned(),
            dns_name: normalize_name(a.dns_name()),
            evaluate_target_health: a.evaluate_target_health(),
        }),
    }
}

fn to_sdk_change(c: &Change) -> Result<sdk::Change, Route53Error> {
    let build = |what: &'static str| {
        move |e: aws_sdk_route53::error::BuildError| Route53Error::Build {
            what,
            source: SdkCause::new(e),
        }
    };
    let r = &c.record;
    let mut rrs = sdk::ResourceRecordSet::builder()
        .name(format!("{}.", r.name))
        .r#type(RrType::from(r.rtype.as_str()))
        .set_set_identifier(r.set_identifier.clone())
        .set_ttl(r.ttl);
    if let Some(a) = &r.alias {
        rrs = rrs.alias_target(
            sdk::AliasTarget::builder()
                .hosted_zone_id(&a.hosted_zone_id)
                .dns_name(&a.dns_name)
                .evaluate_target_health(a.evaluate_target_health)
                .build()
                .map_err(build("alias target"))?,
        );
    } else {
        for v in &r.values {
            rrs = rrs.resource_records(
                sdk::ResourceRecord::builder()
                    .value(v)
                    .build()
                    .map_err(build("resource record"))?,
            );
        }
    }
    sdk::Change::builder()
        .action(match c.action {
            ChangeAction::Create => SdkAction::Create,
            ChangeAction::Upsert => SdkAction::Upsert,
            ChangeAction::Delete => SdkAction::Delete,
        })
        .resource_record_set(rrs.build().map_err(build("record set"))?)
        .build()
        .map_err(build("change"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A client that is never called: the calls under test fail before sending anything.
    fn offline_route53() -> Route53 {
        let config = aws_sdk_route53::Config::builder()
            .behavior_version(aws_sdk_route53::config::BehaviorVersion::latest())
            .build();
        Route53::new(Client::from_conf(config), RetryPolicy::default())
    }

    #[test]
    fn a_failed_call_keeps_the_sdk_error_as_its_source() {
        use aws_sdk_route53::operation::list_hosted_zones::ListHostedZonesError;
        use std::error::Error as _;
        let r53 = offline_route53();
        let err = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(r53.call(Op::ListZones, "ListHostedZones", "", || async {
                Err::<(), _>(SdkError::<ListHostedZonesError>::construction_failure(
                    std::io::Error::other("no route to the endpoint"),
                ))
            }))
            .unwrap_err();
        assert!(
            matches!(&err, Route53Error::Failed { code, .. } if code == "ConstructionFailure"),
            "{err:?}"
        );
        let mut chain = Vec::new();
        let mut cause = err.source();
        while let Some(c) = cause {
            chain.push(c.to_string());
            cause = c.source();
        }
        assert_eq!(
            chain.last().map(String::as_str),
            Some("no route to the endpoint"),
            "{chain:?}"
        );
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let d1 = p.delay(1, &mut rng);
        assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
        let d3 = p.delay(3, &mut rng);
        assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
        for retry in 6..40 {
            let d = p.delay(retry, &mut rng);
            assert!(
                d >= Duration::from_secs(1) && d <= Duration::from_secs(2),
                "{d:?}"
            );
        }
    }

    #[test]
    fn changes_convert_to_sdk_types() {
        let c = Change {
            action: ChangeAction::Upsert,
            record: RecordSet {
                name: "a.d.org".into(),
                rtype: "A".into(),
                set_identifier: None,
                ttl: Some(60),
                values: vec!["10.0.0.1".into()],
                alias: None,
            },
        };
        let s = to_sdk_change(&c).unwrap();
        assert_eq!(s.action(), &SdkAction::Upsert);
        let rrs = s.resource_record_set().unwrap();
        assert_eq!(rrs.name(), "a.d.org.");
        assert_eq!(from_sdk(rrs), c.record);
    }
}
