//! The DNS step: turns the HAProxy Service's addresses into the cloud's desired records, hands
//! them to the [`DnsSyncer`] (which batches every cloud's changes per zone), and maps its
//! outcome onto the `DNSReady` condition.
//!
//! What the step may do is bounded by durable state, not by what this process remembers: the
//! zones that may hold a cloud's records are recorded in `status.dnsZones`, and the DNS
//! finalizer stays on the cloud while records may exist. So a restarted operator still cleans
//! up after a domain change, after DNS was turned off, and on deletion; and an operator that
//! cannot remove records (no `--dns-owner-id`) keeps the finalizer and says so.

use futures::Stream;
use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::broadcast::error::RecvError;

use super::cache::{Ingress, ServiceFacts};
use super::status::Cond;
use crate::api::{DnsProvider, DnsSpec, InSyncCloud, NodeAddressType, ServiceType, condition};
use crate::dns::{
    AllowList, AllowListError, CloudDnsStatus, CloudKey, DnsError, DnsSyncer, Endpoint,
    FrontendAddresses, IngressAddress, NotAllowed, PublishSpec, Route53Config, cloud_endpoints,
};
use crate::telemetry::Metrics;

/// Finalizer that removes the cloud's DNS records before it goes.
pub const FINALIZER: &str = "insync.dev/dns-cleanup";

/// Flags of `insync-operator run` that wire Route53 (flattened into its `RunArgs`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DnsArgs {
    /// Owner id written into DNS ownership records; DNS publishing is off without it.
    #[arg(long, env = "DNS_OWNER_ID")]
    pub dns_owner_id: Option<String>,
    /// Route53-compatible endpoint URL (tests, private endpoints).
    #[arg(long, env = "AWS_ENDPOINT_URL_ROUTE_53")]
    pub dns_endpoint: Option<String>,
    /// Log DNS plans without writing them.
    #[arg(long)]
    pub dns_dry_run: bool,
    /// Prefix of ownership TXT record names.
    #[arg(long, default_value = "insync-")]
    pub dns_txt_prefix: String,
    /// A domain clouds may publish under (suffix match on whole labels), for every namespace
    /// (`drtst.org`) or one (`team-a=team-a.example.com`). Repeat it for more. A cloud outside
    /// the list gets DNSReady=False/DomainNotAllowed and nothing is written. Deny by default:
    /// without this flag or --dns-allow-all-domains no cloud publishes any record
    /// (DNSReady=False/NoAllowedDomains).
    #[arg(long = "dns-allowed-domain", value_name = "[NAMESPACE=]DOMAIN")]
    pub dns_allowed_domains: Vec<String>,
    /// Let clouds in every namespace publish under any domain, into every hosted zone the AWS
    /// credentials can write (logged as a warning at start). Only for clusters with a single
    /// tenant; cannot be combined with --dns-allowed-domain.
    #[arg(long)]
    pub dns_allow_all_domains: bool,
}

/// The operator's Route53 wiring.
pub struct DnsWiring {
    syncer: DnsSyncer,
    allowed: AllowList,
}

/// DNS could not be set up from the flags.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A `--dns-allowed-domain` value is malformed.
    #[error(transparent)]
    AllowList(#[from] AllowListError),
    /// The owner id or TXT prefix is unusable.
    #[error(transparent)]
    Syncer(#[from] DnsError),
}

/// The outcome of the DNS step for one cloud.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsOutcome {
    /// Host name (or address) clients use.
    pub endpoint: Option<String>,
    /// The DNSReady condition.
    pub condition: Cond,
    /// Whether DNS counts as ready for the Ready condition.
    pub ready: bool,
    /// Hosted zones that may hold the cloud's records, for `status.dnsZones`.
    pub zones: Vec<String>,
    /// DNS is not wanted and the cloud's records are proven gone: the finalizer may go.
    pub release_finalizer: bool,
    /// A warning to publish as an event: (reason, message).
    pub warning: Option<(&'static str, String)>,
}

impl DnsOutcome {
    fn new(endpoint: Option<String>, condition: Cond, ready: bool, zones: Vec<String>) -> Self {
        Self {
            endpoint,
            condition,
            ready,
            zones,
            release_finalizer: false,
            warning: None,
        }
    }
}

/// Why the cloud's records were not removed on deletion.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    /// This operator cannot remove records at all (it runs without Route53); `zones` are the
    /// hosted zones the cloud's status says may hold them.
    #[error("{}", blocked_message(zones))]
    Blocked {
        /// From `status.dnsZones`.
        zones: Vec<String>,
    },
    /// Removing failed; retried with backoff.
    #[error(transparent)]
    Failed(#[from] DnsError),
}

fn key_of(cloud: &InSyncCloud) -> CloudKey {
    CloudKey::new(
        cloud.cloud_namespace(),
        cloud.cloud_name(),
        cloud.uid().unwrap_or_default(),
    )
}

fn dns_cond(ready: bool, reason: &'static str, message: impl Into<String>) -> Cond {
    Cond::new(condition::DNS_READY, ready, reason, message)
}

fn recorded_zones(cloud: &InSyncCloud) -> Vec<String> {
    cloud
        .status
        .as_ref()
        .map(|s| s.dns_zones.clone())
        .unwrap_or_default()
}

fn has_finalizer(cloud: &InSyncCloud) -> bool {
    cloud.finalizers().iter().any(|f| f == FINALIZER)
}

/// The message of a cloud whose records this operator cannot remove.
fn blocked_message(zones: &[String]) -> String {
    let zones = if zones.is_empty() {
        String::new()
    } else {
        format!(" (hosted zone(s) {})", zones.join(", "))
    };
    format!(
        "the operator runs without Route53 (no --dns-owner-id), so it cannot remove or even recognize the DNS records it published for this cloud{zones}; the {FINALIZER} finalizer stays until it can. Restart the operator with its --dns-owner-id, or delete the records by hand and then remove the finalizer"
    )
}

/// Whether the cloud needs the DNS finalizer: this operator publishes records for it.
/// `allowed` is the allow-list of an operator that publishes to Route53, `None` otherwise.
pub fn wants_finalizer(allowed: Option<&AllowList>, cloud: &InSyncCloud) -> bool {
    let Some(allowed) = allowed else { return false };
    cloud.spec.dns.as_ref().is_some_and(|d| {
        d.provider == DnsProvider::Route53
            && allowed.check(cloud.cloud_namespace(), &d.domain).is_ok()
    })
}

/// What the DNS step of a live cloud reads besides the cloud: observed before deciding.
#[derive(Clone, Debug)]
pub struct DnsObservation {
    /// The front end's addresses, from the caches; `None` while it has none.
    pub frontend: Option<FrontendAddresses>,
    /// The hosted zones this process knows the cloud's records are in.
    pub known_zones: Option<Vec<String>>,
}

/// What the DNS step will do for a live cloud: decided by [`intent`] from what was observed,
/// carried out by [`DnsWiring::execute`], and turned into an outcome by [`DnsIntent::outcome`].
#[derive(Clone, Debug)]
pub enum DnsIntent {
    /// Nothing to write: the outcome is already known.
    Report(DnsOutcome),
    /// Remove every record the cloud may have; `then` is the outcome once they are gone.
    Retire {
        /// The cloud.
        key: CloudKey,
        /// The zones that may hold its records, kept recorded while removal fails.
        recorded: Vec<String>,
        /// The outcome after a successful removal.
        then: DnsOutcome,
    },
    /// Hand the cloud's records (possibly none) to the syncer and report its state.
    Publish(Publication),
}

/// The records a cloud wants published, and how to report them.
#[derive(Clone, Debug)]
pub struct Publication {
    key: CloudKey,
    domain: String,
    hosted_zone_id: Option<String>,
    endpoints: Vec<Endpoint>,
    recorded: Vec<String>,
    hostname: Option<String>,
    /// Why nothing can be published (the records are removed instead): (reason, message).
    unpublishable: Option<(&'static str, String)>,
}

/// What carrying out an intent found.
#[derive(Debug)]
pub enum DnsResult {
    /// Nothing was done.
    Reported,
    /// The records were removed, or removing them failed.
    Retired(Result<(), DnsError>),
    /// The syncer's state for the cloud after the hand-over.
    Published {
        /// Its publishing status.
        status: Option<CloudDnsStatus>,
        /// The zones it knows the cloud's records are in.
        zones: Option<Vec<String>>,
    },
}

/// Decides the DNS step of a live cloud. `allowed` is the operator's allow-list when it runs
/// with Route53, `None` when it runs without.
pub fn intent(
    allowed: Option<&AllowList>,
    cloud: &InSyncCloud,
    observed: &DnsObservation,
) -> DnsIntent {
    let hostname = cloud.hostname();
    let (dns, off) = match &cloud.spec.dns {
        None => (
            None,
            dns_cond(
                true,
                "NotConfigured",
                "spec.dns is not set; reach the cloud through its Service",
            ),
        ),
        Some(d) if d.provider == DnsProvider::None => (
            None,
            dns_cond(
                true,
                "Disabled",
                format!(
                    "dns.provider is none: create the record for {} yourself",
                    hostname.clone().unwrap_or_default()
                ),
            ),
        ),
        Some(d) => (Some(d), dns_cond(true, "", "")),
    };
    let endpoint = if cloud.spec.dns.is_some() {
        hostname.clone()
    } else {
        None
    };
    match (dns, allowed) {
        (Some(d), Some(allowed)) => match allowed.check(cloud.cloud_namespace(), &d.domain) {
            Ok(()) => publication(cloud, d, observed),
            Err(refused) if refused.unconfigured => kept(cloud, observed, endpoint, &refused),
            Err(refused) => {
                let cond = dns_cond(false, refused.reason(), refused.to_string());
                retirement(cloud, observed, endpoint, cond, false)
            }
        },
        (Some(_), None) => DnsIntent::Report(DnsOutcome::new(
            endpoint,
            dns_cond(
                false,
                "OperatorDNSDisabled",
                "spec.dns.provider is route53 but the operator runs without Route53 (start it with --dns-owner-id)",
            ),
            false,
            recorded_zones(cloud),
        )),
        (None, Some(_)) => retirement(cloud, observed, endpoint, off, true),
        (None, None) if has_finalizer(cloud) || !recorded_zones(cloud).is_empty() => {
            let message = blocked_message(&recorded_zones(cloud));
            let mut outcome = DnsOutcome::new(
                endpoint,
                dns_cond(false, "CannotRemoveRecords", message.clone()),
                false,
                recorded_zones(cloud),
            );
            outcome.warning = Some(("DNSCleanupBlocked", message));
            DnsIntent::Report(outcome)
        }
        (None, None) => DnsIntent::Report(DnsOutcome::new(endpoint, off, true, Vec::new())),
    }
}

/// A cloud refused because the operator allows no domain at all (deny by default): nothing is
/// written, and records it may have published before (an operator that allowed every domain
/// without asking, upgraded) are kept as they are, not removed: a missing allow-list is a
/// configuration gap, and removing every published record would take every cloud off the air.
/// The finalizer and `status.dnsZones` stay, so deletion still removes them.
fn kept(
    cloud: &InSyncCloud,
    observed: &DnsObservation,
    endpoint: Option<String>,
    refused: &NotAllowed,
) -> DnsIntent {
    let mut zones = recorded_zones(cloud);
    zones.extend(observed.known_zones.iter().flatten().cloned());
    zones.sort();
    zones.dedup();
    let mut message = refused.to_string();
    if has_finalizer(cloud) || !zones.is_empty() {
        message.push_str(
            ". Records this cloud published before are kept as they are (not updated, not removed) until its domain is allowed or the cloud is deleted",
        );
    }
    DnsIntent::Report(DnsOutcome::new(
        endpoint,
        dns_cond(false, refused.reason(), message),
        false,
        zones,
    ))
}

/// Removing every record of a cloud that must publish none (DNS off, domain not allowed), if
/// it may have any: the finalizer, `status.dnsZones` or this process say so. Records published
/// before a restart are found by their ownership TXT records in every zone.
fn retirement(
    cloud: &InSyncCloud,
    observed: &DnsObservation,
    endpoint: Option<String>,
    cond: Cond,
    ready: bool,
) -> DnsIntent {
    let mut then = DnsOutcome::new(endpoint, cond, ready, Vec::new());
    if !has_finalizer(cloud) && recorded_zones(cloud).is_empty() && observed.known_zones.is_none() {
        return DnsIntent::Report(then);
    }
    then.release_finalizer = true;
    DnsIntent::Retire {
        key: key_of(cloud),
        recorded: recorded_zones(cloud),
        then,
    }
}

/// Publishing the cloud's records. With no address to publish, the cloud's records are
/// removed: an old address may belong to someone else by now.
fn publication(cloud: &InSyncCloud, dns: &DnsSpec, observed: &DnsObservation) -> DnsIntent {
    let hostname = cloud.hostname();
    let recorded = recorded_zones(cloud);
    let addresses = observed.frontend.clone();
    let spec = PublishSpec {
        cloud: cloud.cloud_name().to_owned(),
        domain: dns.domain.clone(),
        ttl: u32::try_from(dns.ttl).unwrap_or(60),
        alias_hosted_zone_id: None,
    };
    let (endpoints, unpublishable) = match addresses.map(|a| cloud_endpoints(&spec, &a)) {
        Some(Ok(e)) => (e, None),
        Some(Err(e)) => (Vec::new(), Some(("NoRecord", e.to_string()))),
        None if cloud.spec.frontend.service.type_ == ServiceType::ClusterIP => (
            Vec::new(),
            Some((
                "NoExternalAddress",
                "a ClusterIP front end has no address to publish; use NodePort or LoadBalancer, or dns.provider: none".to_owned(),
            )),
        ),
        None => (
            Vec::new(),
            Some((
                "WaitingForAddress",
                "the front-end Service has no address to publish yet".to_owned(),
            )),
        ),
    };
    DnsIntent::Publish(Publication {
        key: key_of(cloud),
        domain: dns.domain.clone(),
        hosted_zone_id: dns.hosted_zone_id.clone(),
        endpoints,
        recorded,
        hostname,
        unpublishable,
    })
}

impl DnsIntent {
    /// The step's outcome, given what carrying the intent out found.
    pub fn outcome(self, result: DnsResult) -> DnsOutcome {
        match (self, result) {
            (Self::Report(outcome), _) => outcome,
            (Self::Retire { then, .. }, DnsResult::Retired(Ok(()))) => then,
            (Self::Retire { then, recorded, .. }, failed) => {
                let reason = match failed {
                    DnsResult::Retired(Err(e)) => e.to_string(),
                    _ => "the removal did not run".to_owned(),
                };
                DnsOutcome::new(
                    then.endpoint,
                    dns_cond(
                        false,
                        "RemovalFailed",
                        format!(
                            "cannot remove the DNS records this cloud published before: {reason}"
                        ),
                    ),
                    false,
                    // Still where they may be: keep them recorded.
                    recorded,
                )
            }
            (Self::Publish(p), DnsResult::Published { status, zones }) => p.outcome(status, zones),
            (Self::Publish(p), _) => p.outcome(None, None),
        }
    }
}

impl Publication {
    fn outcome(self, status: Option<CloudDnsStatus>, zones: Option<Vec<String>>) -> DnsOutcome {
        let name = self.hostname.clone().unwrap_or_default();
        let zones = zones.unwrap_or(self.recorded);
        let pending = |reason: &'static str, message: String| {
            DnsOutcome::new(
                self.hostname.clone(),
                dns_cond(false, reason, message),
                false,
                zones.clone(),
            )
        };
        if let Some((reason, message)) = self.unpublishable {
            let what = match status {
                Some(CloudDnsStatus::Ready) => format!("no record is published for {name}"),
                Some(CloudDnsStatus::Error { message }) => {
                    format!("removing the records of {name} failed: {message}")
                }
                _ => format!("removing the records of {name}"),
            };
            return pending(reason, format!("{message}; {what}"));
        }
        let targets: Vec<String> = self
            .endpoints
            .iter()
            .flat_map(|e| e.targets.clone())
            .collect();
        match status {
            Some(CloudDnsStatus::Ready) => DnsOutcome::new(
                self.hostname.clone(),
                dns_cond(
                    true,
                    "Published",
                    format!("{name} points at {}", targets.join(", ")),
                ),
                true,
                zones.clone(),
            ),
            Some(CloudDnsStatus::Pending { reason }) => pending("Pending", reason),
            Some(CloudDnsStatus::Conflict { name, detail }) => pending(
                "Conflict",
                format!(
                    "{name} is held by a record this operator does not own; nothing was overwritten: {detail}"
                ),
            ),
            Some(CloudDnsStatus::Error { message }) => pending("PublishFailed", message),
            None => pending("Pending", "publishing DNS records".into()),
        }
    }
}

/// Removes the records of a cloud being deleted, returning when they are gone.
pub async fn remove_on_delete(
    wiring: Option<&DnsWiring>,
    cloud: &InSyncCloud,
) -> Result<(), RemoveError> {
    match wiring {
        Some(w) => Ok(w.syncer.remove_cloud(&key_of(cloud)).await?),
        None => Err(RemoveError::Blocked {
            zones: recorded_zones(cloud),
        }),
    }
}

impl DnsWiring {
    /// Builds the wiring from the flags and starts the syncer; `None` without `--dns-owner-id`.
    pub async fn from_args(args: &DnsArgs) -> Result<Option<Self>, SetupError> {
        let allowed = AllowList::from_flags(&args.dns_allowed_domains, args.dns_allow_all_domains)?;
        let Some(owner) = &args.dns_owner_id else {
            return Ok(None);
        };
        if allowed.allows_all() {
            tracing::warn!(
                "--dns-allow-all-domains: clouds in every namespace may publish records into any hosted zone these AWS credentials can write"
            );
        } else if allowed.allows_nothing() {
            tracing::warn!(
                "no --dns-allowed-domain and no --dns-allow-all-domains: DNS is denied by default, no cloud will publish records (their DNSReady condition says so)"
            );
        }
        let mut config = Route53Config::new(owner.clone());
        config.endpoint_url = args.dns_endpoint.clone();
        config.txt_prefix = args.dns_txt_prefix.clone();
        config.dry_run = args.dns_dry_run;
        let (syncer, worker) = DnsSyncer::from_config(&config).await?;
        tokio::spawn(worker.run());
        Ok(Some(Self { syncer, allowed }))
    }

    /// Clouds whose DNS status changed, to reconcile again.
    pub fn changes(
        &self,
    ) -> impl Stream<Item = ObjectRef<DeserializeGuard<InSyncCloud>>> + Send + 'static {
        futures::stream::unfold(self.syncer.subscribe(), |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(key) => return Some((ObjectRef::new(&key.name).within(&key.namespace), rx)),
                    // Missed notifications are caught by the periodic requeue.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                }
            }
        })
    }

    /// The operator's allow-list of domains.
    pub fn allowed(&self) -> &AllowList {
        &self.allowed
    }

    /// The zones this process knows the cloud's records are in.
    pub fn known_zones(&self, cloud: &InSyncCloud) -> Option<Vec<String>> {
        self.syncer.zones(&key_of(cloud))
    }

    /// Carries out a DNS intent.
    pub async fn execute(&self, intent: &DnsIntent, metrics: &Metrics) -> DnsResult {
        match intent {
            DnsIntent::Report(_) => DnsResult::Reported,
            DnsIntent::Retire { key, .. } => {
                DnsResult::Retired(self.syncer.remove_cloud(key).await)
            }
            DnsIntent::Publish(p) => {
                self.syncer.upsert_cloud_recorded(
                    p.key.clone(),
                    p.domain.clone(),
                    p.hosted_zone_id.clone(),
                    p.endpoints.clone(),
                    p.recorded.clone(),
                );
                metrics.set_route53(&self.syncer.counts());
                DnsResult::Published {
                    status: self.syncer.status(&p.key),
                    zones: self.syncer.zones(&p.key),
                }
            }
        }
    }
}

/// Where the DNS step reads the front end from: the controller's caches, so a reconcile costs
/// no reads of Services or Nodes.
pub trait Frontend: Sync {
    /// The cached Service `name` in `namespace`.
    fn service(&self, namespace: &str, name: &str) -> Option<ServiceFacts>;
    /// Every node's addresses as (type, address), once the node cache has listed them all.
    fn node_addresses(&self) -> impl Future<Output = Vec<Vec<(String, String)>>> + Send;
}

/// The addresses the cloud's front end is reachable at: LoadBalancer ingress, or for NodePort
/// the nodes' addresses of the configured type. `None` while there is nothing to publish.
pub async fn frontend_addresses(
    frontend: &impl Frontend,
    cloud: &InSyncCloud,
) -> Option<FrontendAddresses> {
    let service = frontend.service(
        cloud.cloud_namespace(),
        &format!("{}-haproxy", cloud.cloud_name()),
    )?;
    match cloud.spec.frontend.service.type_ {
        ServiceType::LoadBalancer => {
            let ingress = service
                .ingress
                .into_iter()
                .map(|i| match i {
                    Ingress::Hostname(h) => IngressAddress::Hostname(h),
                    Ingress::Ip(ip) => IngressAddress::Ip(ip),
                })
                .collect::<Vec<_>>();
            (!ingress.is_empty()).then_some(FrontendAddresses::LoadBalancer(ingress))
        }
        ServiceType::NodePort => {
            let wanted = cloud
                .spec
                .dns
                .as_ref()
                .map(|d| d.node_address_type)
                .unwrap_or_default();
            let addresses: Vec<String> = frontend
                .node_addresses()
                .await
                .iter()
                .filter_map(|all| {
                    let of = |t: &str| {
                        all.iter()
                            .find(|(type_, _)| type_ == t)
                            .map(|(_, a)| a.clone())
                    };
                    match wanted {
                        NodeAddressType::ExternalIP => {
                            of("ExternalIP").or_else(|| of("InternalIP"))
                        }
                        NodeAddressType::InternalIP => of("InternalIP"),
                    }
                })
                .collect();
            (!addresses.is_empty()).then_some(FrontendAddresses::NodePort(addresses))
        }
        ServiceType::ClusterIP => None,
    }
}
