//! Desired records: what one cloud wants to see in DNS.
//!
//! [`cloud_endpoints`] is the pure helper the controller uses: cloud name + domain + the
//! HAProxy Service's addresses in, [`Endpoint`]s out.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

/// Identity of one `InSyncCloud`: the unit that owns records.
///
/// Ownership in the zone is recorded by `namespace/name` (see [`CloudKey::resource`]); the UID
/// lets the syncer tell a re-created cloud from the old one in its own bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloudKey {
    /// Namespace of the `InSyncCloud`.
    pub(crate) namespace: String,
    /// Name of the `InSyncCloud`.
    pub(crate) name: String,
    /// `metadata.uid` of the `InSyncCloud`.
    pub(crate) uid: String,
}

impl CloudKey {
    /// A key from its three parts.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        uid: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
        }
    }

    /// The resource id written into ownership TXT records: `insynccloud/<ns>/<name>`.
    pub fn resource(&self) -> String {
        format!("insynccloud/{}/{}", self.namespace, self.name)
    }
}

impl fmt::Display for CloudKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The kind of record an [`Endpoint`] becomes in Route53.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// An `A` record with one value per IPv4 address.
    A,
    /// A `CNAME` record with exactly one target hostname.
    Cname,
    /// A Route53 ALIAS (an `A` record with an `AliasTarget`), with exactly one target hostname
    /// (e.g. an ELB's DNS name) served from `hosted_zone_id` (the target's canonical zone).
    Alias {
        /// Canonical hosted zone id of the alias target (e.g. the load balancer's zone).
        hosted_zone_id: String,
    },
}

impl RecordType {
    /// The Route53 record type this becomes (`A` for ALIAS records).
    pub(crate) fn route53_type(&self) -> &'static str {
        match self {
            RecordType::A | RecordType::Alias { .. } => "A",
            RecordType::Cname => "CNAME",
        }
    }
}

/// One desired DNS record of a cloud.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Fully qualified name, lower case, without the trailing dot.
    pub(crate) dns_name: String,
    /// What record this becomes.
    pub(crate) record_type: RecordType,
    /// IPv4 addresses for `A`; one hostname for `CNAME` and ALIAS.
    pub(crate) targets: Vec<String>,
    /// TTL in seconds (ignored for ALIAS records, which have none).
    pub(crate) ttl: u32,
}

impl Endpoint {
    /// An `A` record for `dns_name` with the given addresses.
    pub fn a(dns_name: impl AsRef<str>, ips: &[&str], ttl: u32) -> Self {
        Self {
            dns_name: normalize_name(dns_name.as_ref()),
            record_type: RecordType::A,
            targets: ips.iter().map(|s| (*s).to_owned()).collect(),
            ttl,
        }
    }

    /// A `CNAME` record for `dns_name` pointing at `target`.
    pub fn cname(dns_name: impl AsRef<str>, target: impl AsRef<str>, ttl: u32) -> Self {
        Self {
            dns_name: normalize_name(dns_name.as_ref()),
            record_type: RecordType::Cname,
            targets: vec![normalize_name(target.as_ref())],
            ttl,
        }
    }

    /// Checks what Route53 would reject, so one bad endpoint is reported against its cloud
    /// instead of failing a whole change batch.
    pub(crate) fn validate(&self) -> Result<(), EndpointError> {
        validate_dns_name(&self.dns_name)?;
        match &self.record_type {
            RecordType::A => {
                if self.targets.is_empty() {
                    return Err(EndpointError::NoTargets {
                        name: self.dns_name.clone(),
                    });
                }
                for t in &self.targets {
                    if t.parse::<Ipv4Addr>().is_err() {
                        return Err(EndpointError::InvalidTarget {
                            name: self.dns_name.clone(),
                            target: t.clone(),
                            reason: "an A record needs IPv4 addresses".into(),
                        });
                    }
                }
            }
            RecordType::Cname | RecordType::Alias { .. } => {
                if self.targets.len() != 1 {
                    return Err(EndpointError::InvalidTarget {
                        name: self.dns_name.clone(),
                        target: self.targets.join(","),
                        reason: format!(
                            "a {} record needs exactly one target hostname",
                            self.kind_label()
                        ),
                    });
                }
                for t in &self.targets {
                    validate_dns_name(t)?;
                }
                if let RecordType::Alias { hosted_zone_id } = &self.record_type
                    && hosted_zone_id.trim().is_empty()
                {
                    return Err(EndpointError::InvalidTarget {
                        name: self.dns_name.clone(),
                        target: self.targets.join(","),
                        reason: "an ALIAS record needs the target's hosted zone id".into(),
                    });
                }
            }
        }
        Ok(())
    }

    fn kind_label(&self) -> &'static str {
        match self.record_type {
            RecordType::A => "A",
            RecordType::Cname => "CNAME",
            RecordType::Alias { .. } => "ALIAS",
        }
    }
}

/// An address the HAProxy Service's load balancer reports in `status.loadBalancer.ingress`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngressAddress {
    /// `ingress[].ip`
    Ip(String),
    /// `ingress[].hostname`
    Hostname(String),
}

/// Where a cloud's front door can be reached, as the controller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendAddresses {
    /// A `LoadBalancer` Service: its ingress addresses.
    LoadBalancer(Vec<IngressAddress>),
    /// A `NodePort` Service: the node addresses the caller chose to publish.
    NodePort(Vec<String>),
}

impl FrontendAddresses {
    /// Ingress addresses from a Service's `status.loadBalancer.ingress` list.
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "kept for the controller's observe step, which builds its own copy that takes only one address an ingress and keeps empty strings"
        )
    )]
    pub(crate) fn from_ingress(
        ingress: &[k8s_openapi::api::core::v1::LoadBalancerIngress],
    ) -> FrontendAddresses {
        let mut out = Vec::new();
        for i in ingress {
            if let Some(ip) = i.ip.as_deref().filter(|s| !s.is_empty()) {
                out.push(IngressAddress::Ip(ip.to_owned()));
            }
            if let Some(h) = i.hostname.as_deref().filter(|s| !s.is_empty()) {
                out.push(IngressAddress::Hostname(h.to_owned()));
            }
        }
        FrontendAddresses::LoadBalancer(out)
    }
}

/// How a cloud is published: the inputs of [`cloud_endpoints`] besides its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublishSpec {
    /// The cloud's name: the first label of its hostname.
    pub(crate) cloud: String,
    /// The DNS domain, e.g. `drtst.org`.
    pub(crate) domain: String,
    /// TTL of the records.
    pub(crate) ttl: u32,
    /// When set, load balancer hostnames are published as Route53 ALIAS records served from
    /// this canonical hosted zone id instead of `CNAME`s.
    pub(crate) alias_hosted_zone_id: Option<String>,
}

/// Why no endpoints could be built for a cloud.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The front door has no usable address yet (e.g. the load balancer is still pending).
    #[error(
        "no usable frontend address for {name} yet: the LoadBalancer has no IPv4 ingress IP or hostname, or no node address was given for NodePort"
    )]
    NoAddresses {
        /// The hostname that would have been published.
        name: String,
    },
    /// The hostname is not a valid DNS name.
    #[error("invalid DNS name {name:?}: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A record without any target.
    #[error("record {name} has no targets")]
    NoTargets {
        /// The record name.
        name: String,
    },
    /// A target that does not fit the record type.
    #[error("record {name}: invalid target {target:?}: {reason}")]
    InvalidTarget {
        /// The record name.
        name: String,
        /// The offending target(s).
        target: String,
        /// What is wrong.
        reason: String,
    },
}

/// The hostname of a cloud: `<cloud>.<domain>`, normalized.
pub(crate) fn cloud_hostname(cloud: &str, domain: &str) -> String {
    normalize_name(&format!(
        "{}.{}",
        cloud.trim(),
        domain.trim().trim_matches('.')
    ))
}

/// The endpoints that publish a cloud's front door: `<cloud>.<domain>` pointing at the HAProxy
/// Service.
///
/// - LoadBalancer with IPv4 ingress IPs: one `A` record with all of them (sorted, deduplicated);
///   IPv6 addresses are skipped (no `AAAA` support yet).
/// - LoadBalancer with only hostnames: a `CNAME` to the first hostname in sorted order, or an
///   ALIAS record when `spec.alias_hosted_zone_id` is set.
/// - NodePort: one `A` record with the given IPv4 node addresses.
///
/// No usable address is an error ([`EndpointError::NoAddresses`]): the caller should keep the
/// records it has rather than publish nothing.
pub(crate) fn cloud_endpoints(
    spec: &PublishSpec,
    frontend: &FrontendAddresses,
) -> Result<Vec<Endpoint>, EndpointError> {
    let name = cloud_hostname(&spec.cloud, &spec.domain);
    validate_dns_name(&name)?;
    let ipv4 = |addrs: &mut dyn Iterator<Item = &str>| -> Vec<String> {
        addrs
            .filter_map(|a| a.trim().parse::<Ipv4Addr>().ok())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|ip| ip.to_string())
            .collect()
    };
    let endpoint = match frontend {
        FrontendAddresses::LoadBalancer(ingress) => {
            let ips = ipv4(&mut ingress.iter().filter_map(|i| match i {
                IngressAddress::Ip(ip) => Some(ip.as_str()),
                IngressAddress::Hostname(_) => None,
            }));
            if !ips.is_empty() {
                Endpoint {
                    dns_name: name,
                    record_type: RecordType::A,
                    targets: ips,
                    ttl: spec.ttl,
                }
            } else {
                let hosts: BTreeSet<String> = ingress
                    .iter()
                    .filter_map(|i| match i {
                        IngressAddress::Hostname(h) => Some(normalize_name(h)),
                        IngressAddress::Ip(_) => None,
                    })
                    .filter(|h| !h.is_empty())
                    .collect();
                let Some(target) = hosts.into_iter().next() else {
                    return Err(EndpointError::NoAddresses { name });
                };
                let record_type = match &spec.alias_hosted_zone_id {
                    Some(zone) if !zone.trim().is_empty() => RecordType::Alias {
                        hosted_zone_id: zone.trim().to_owned(),
                    },
                    _ => RecordType::Cname,
                };
                Endpoint {
                    dns_name: name,
                    record_type,
                    targets: vec![target],
                    ttl: spec.ttl,
                }
            }
        }
        FrontendAddresses::NodePort(nodes) => {
            let ips = ipv4(&mut nodes.iter().map(String::as_str));
            if ips.is_empty() {
                return Err(EndpointError::NoAddresses { name });
            }
            Endpoint {
                dns_name: name,
                record_type: RecordType::A,
                targets: ips,
                ttl: spec.ttl,
            }
        }
    };
    endpoint.validate()?;
    Ok(vec![endpoint])
}

/// Lower case, trimmed, no trailing dot, Route53's `\052`-style octal escapes decoded.
pub(crate) fn normalize_name(name: &str) -> String {
    let name = name.trim().trim_end_matches('.');
    let mut out = String::with_capacity(name.len());
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let code = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            if let Some(c) = char::from_u32(code) {
                out.push(c.to_ascii_lowercase());
                i += 4;
                continue;
            }
        }
        // `i` is always on a char boundary: escapes are 4 ASCII bytes, anything else a whole char.
        let rest = &name[i..];
        let Some(c) = rest.chars().next() else { break };
        out.extend(c.to_lowercase());
        i += c.len_utf8();
    }
    out
}

/// Checks that `name` is a DNS name Route53 accepts for our records: labels of letters,
/// digits, `-` and `_`, each 1..=63 characters, at most 253 characters in all.
pub(crate) fn validate_dns_name(name: &str) -> Result<(), EndpointError> {
    let bad = |reason: &str| EndpointError::InvalidName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    if name.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    if !name.contains('.') {
        return Err(bad("not fully qualified (no domain)"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(bad("empty label"));
        }
        if label.len() > 63 {
            return Err(bad(&format!(
                "label {label:?} is longer than 63 characters"
            )));
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(&format!(
                "label {label:?} may hold only letters, digits, '-' and '_'"
            )));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad(&format!(
                "label {label:?} may not start or end with '-'"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(alias: Option<&str>) -> PublishSpec {
        PublishSpec {
            cloud: "fcloud".into(),
            domain: "drtst.org.".into(),
            ttl: 60,
            alias_hosted_zone_id: alias.map(str::to_owned),
        }
    }

    #[test]
    fn load_balancer_ips_become_one_sorted_a_record() {
        let fe = FrontendAddresses::LoadBalancer(vec![
            IngressAddress::Ip("10.0.0.9".into()),
            IngressAddress::Ip("10.0.0.2".into()),
            IngressAddress::Ip("10.0.0.9".into()),
            IngressAddress::Ip("fd00::1".into()),
            IngressAddress::Hostname("lb.example.com".into()),
        ]);
        let eps = cloud_endpoints(&spec(None), &fe).unwrap();
        assert_eq!(
            eps,
            vec![Endpoint::a(
                "fcloud.drtst.org",
                &["10.0.0.2", "10.0.0.9"],
                60
            )]
        );
    }

    #[test]
    fn load_balancer_hostname_becomes_cname_or_alias() {
        let fe = FrontendAddresses::LoadBalancer(vec![
            IngressAddress::Hostname("b-lb.elb.amazonaws.com.".into()),
            IngressAddress::Hostname("A-lb.elb.amazonaws.com".into()),
        ]);
        let eps = cloud_endpoints(&spec(None), &fe).unwrap();
        assert_eq!(
            eps,
            vec![Endpoint::cname(
                "fcloud.drtst.org",
                "a-lb.elb.amazonaws.com",
                60
            )]
        );
        let eps = cloud_endpoints(&spec(Some("Z35SXDOTRQ7X7K")), &fe).unwrap();
        assert_eq!(
            eps[0].record_type,
            RecordType::Alias {
                hosted_zone_id: "Z35SXDOTRQ7X7K".into()
            }
        );
        assert_eq!(eps[0].targets, vec!["a-lb.elb.amazonaws.com".to_owned()]);
    }

    #[test]
    fn node_port_uses_node_addresses() {
        let fe = FrontendAddresses::NodePort(vec!["172.18.0.3".into(), "172.18.0.2".into()]);
        let eps = cloud_endpoints(&spec(None), &fe).unwrap();
        assert_eq!(
            eps,
            vec![Endpoint::a(
                "fcloud.drtst.org",
                &["172.18.0.2", "172.18.0.3"],
                60
            )]
        );
    }

    #[test]
    fn no_address_is_an_error_not_an_empty_list() {
        for fe in [
            FrontendAddresses::LoadBalancer(vec![]),
            FrontendAddresses::LoadBalancer(vec![IngressAddress::Ip("fd00::1".into())]),
            FrontendAddresses::NodePort(vec!["not-an-ip".into()]),
        ] {
            assert!(matches!(
                cloud_endpoints(&spec(None), &fe),
                Err(EndpointError::NoAddresses { .. })
            ));
        }
    }

    #[test]
    fn bad_names_are_refused() {
        let mut s = spec(None);
        s.cloud = "bad name".into();
        let fe = FrontendAddresses::NodePort(vec!["10.0.0.1".into()]);
        assert!(matches!(
            cloud_endpoints(&s, &fe),
            Err(EndpointError::InvalidName { .. })
        ));
        s.cloud = "x".repeat(64);
        assert!(cloud_endpoints(&s, &fe).is_err());
    }

    #[test]
    fn ingress_from_k8s_types() {
        use k8s_openapi::api::core::v1::LoadBalancerIngress;
        let fe = FrontendAddresses::from_ingress(&[
            LoadBalancerIngress {
                ip: Some("10.1.1.1".into()),
                ..Default::default()
            },
            LoadBalancerIngress {
                hostname: Some("lb.example.com".into()),
                ..Default::default()
            },
        ]);
        assert_eq!(
            fe,
            FrontendAddresses::LoadBalancer(vec![
                IngressAddress::Ip("10.1.1.1".into()),
                IngressAddress::Hostname("lb.example.com".into())
            ])
        );
    }

    #[test]
    fn normalize_decodes_route53_escapes() {
        assert_eq!(normalize_name("\\052.Example.COM."), "*.example.com");
        assert_eq!(normalize_name("fcloud.drtst.org."), "fcloud.drtst.org");
    }

    #[test]
    fn resource_id() {
        assert_eq!(
            CloudKey::new("ns", "fcloud", "u1").resource(),
            "insynccloud/ns/fcloud"
        );
    }
}
