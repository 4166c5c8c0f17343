//! The DNS step: turns the HAProxy Service's addresses into the cloud's desired records, hands
//! them to the [`DnsSyncer`] (which batches every cloud's changes per zone), and maps its
//! outcome onto the `DNSReady` condition.

use futures::Stream;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, ListParams};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use tokio::sync::broadcast::error::RecvError;

use super::context::{Context, DnsOutcome};
use super::error::Error;
use super::status::Cond;
use crate::api::{InSyncCloud, NodeAddressType, ServiceType, condition};
use crate::dns::{
    CloudDnsStatus, CloudKey, DnsSyncer, FrontendAddresses, IngressAddress, PublishSpec,
    Route53Config, cloud_endpoints,
};

/// The operator's Route53 wiring.
pub struct DnsWiring {
    syncer: DnsSyncer,
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

impl DnsWiring {
    /// Builds the wiring from the flags and starts the syncer; `None` without `--dns-owner-id`.
    pub async fn from_args(args: &super::RunArgs, _client: Client) -> Result<Option<Self>, String> {
        let Some(owner) = &args.dns_owner_id else {
            return Ok(None);
        };
        let mut config = Route53Config::new(owner.clone());
        config.endpoint_url = args.dns_endpoint.clone();
        config.txt_prefix = args.dns_txt_prefix.clone();
        config.dry_run = args.dns_dry_run;
        let (syncer, worker) = DnsSyncer::from_config(&config)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(worker.run());
        Ok(Some(Self { syncer }))
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

    /// Publishes the cloud's records and reports DNSReady.
    pub async fn publish(&self, ctx: &Context, cloud: &InSyncCloud) -> DnsOutcome {
        let hostname = cloud.hostname();
        let Some(dns) = &cloud.spec.dns else {
            return DnsOutcome {
                endpoint: None,
                condition: dns_cond(true, "NotConfigured", "spec.dns is not set"),
                ready: true,
            };
        };
        let pending = |reason: &'static str, message: String| DnsOutcome {
            endpoint: hostname.clone(),
            condition: dns_cond(false, reason, message),
            ready: false,
        };
        let addresses = match frontend_addresses(&ctx.client, cloud).await {
            Ok(Some(a)) => a,
            Ok(None) if cloud.spec.frontend.service.type_ == ServiceType::ClusterIP => {
                return pending("NoExternalAddress", "a ClusterIP front end has no address to publish; use NodePort or LoadBalancer, or dns.provider: none".into());
            }
            Ok(None) => {
                return pending(
                    "WaitingForAddress",
                    "the front-end Service has no address to publish yet".into(),
                );
            }
            Err(e) => {
                return pending(
                    "AddressLookupFailed",
                    format!("cannot read the front end's addresses: {e}"),
                );
            }
        };
        let spec = PublishSpec {
            cloud: cloud.cloud_name().to_owned(),
            domain: dns.domain.clone(),
            ttl: u32::try_from(dns.ttl).unwrap_or(60),
            alias_hosted_zone_id: None,
        };
        let endpoints = match cloud_endpoints(&spec, &addresses) {
            Ok(e) => e,
            Err(e) => return pending("NoRecord", e.to_string()),
        };
        let targets: Vec<String> = endpoints.iter().flat_map(|e| e.targets.clone()).collect();
        let key = key_of(cloud);
        self.syncer.upsert_cloud(
            key.clone(),
            dns.domain.clone(),
            dns.hosted_zone_id.clone(),
            endpoints,
        );
        let name = hostname.clone().unwrap_or_default();
        ctx.metrics.set_route53(&self.syncer.counts());
        match self.syncer.status(&key) {
            Some(CloudDnsStatus::Ready) => DnsOutcome {
                endpoint: hostname,
                condition: dns_cond(
                    true,
                    "Published",
                    format!("{name} points at {}", targets.join(", ")),
                ),
                ready: true,
            },
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

    /// Removes the cloud's records, waiting until they are gone.
    pub async fn remove(&self, cloud: &InSyncCloud) -> Result<(), Error> {
        self.syncer
            .remove_cloud(&key_of(cloud))
            .await
            .map_err(|e| Error::Dns(e.to_string()))
    }

    /// Drops the records of a cloud that turned DNS off (if this process published any).
    pub fn forget(&self, cloud: &InSyncCloud) {
        let key = key_of(cloud);
        if self.syncer.status(&key).is_some() {
            let syncer = self.syncer.clone();
            tokio::spawn(async move {
                if let Err(e) = syncer.remove_cloud(&key).await {
                    tracing::warn!(cloud = %key, error = %e, "cannot remove DNS records of a cloud that turned DNS off");
                }
            });
        }
    }
}

/// The addresses the cloud's front end is reachable at: LoadBalancer ingress, or for NodePort
/// the nodes' addresses of the configured type. `None` while there is nothing to publish.
async fn frontend_addresses(
    client: &Client,
    cloud: &InSyncCloud,
) -> Result<Option<FrontendAddresses>, kube::Error> {
    let services: Api<Service> = Api::namespaced(client.clone(), cloud.cloud_namespace());
    let Some(service) = services
        .get_opt(&format!("{}-haproxy", cloud.cloud_name()))
        .await?
    else {
        return Ok(None);
    };
    match cloud.spec.frontend.service.type_ {
        ServiceType::LoadBalancer => {
            let ingress = service
                .status
                .and_then(|s| s.load_balancer)
                .and_then(|lb| lb.ingress)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|i| {
                    i.hostname
                        .map(IngressAddress::Hostname)
                        .or(i.ip.map(IngressAddress::Ip))
                })
                .collect::<Vec<_>>();
            Ok((!ingress.is_empty()).then_some(FrontendAddresses::LoadBalancer(ingress)))
        }
        ServiceType::NodePort => {
            let wanted = cloud
                .spec
                .dns
                .as_ref()
                .map(|d| d.node_address_type)
                .unwrap_or_default();
            let nodes: Api<Node> = Api::all(client.clone());
            let mut addresses = Vec::new();
            for node in nodes.list(&ListParams::default()).await? {
                let all = node.status.and_then(|s| s.addresses).unwrap_or_default();
                let of = |t: &str| all.iter().find(|a| a.type_ == t).map(|a| a.address.clone());
                let chosen = match wanted {
                    NodeAddressType::ExternalIP => of("ExternalIP").or_else(|| of("InternalIP")),
                    NodeAddressType::InternalIP => of("InternalIP"),
                };
                addresses.extend(chosen);
            }
            Ok((!addresses.is_empty()).then_some(FrontendAddresses::NodePort(addresses)))
        }
        ServiceType::ClusterIP => Ok(None),
    }
}
