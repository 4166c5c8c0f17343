//! NetworkPolicies. Every pod of the cloud (its components and its backup, verification,
//! restore and deletion Jobs: all carry the instance labels) starts from a default deny of
//! ingress and egress; then exactly the flows the cloud needs are allowed:
//! - ingress: the datastores, CloudMaster and storage nodes from the cloud's own pods; the
//!   HAProxy front end from anywhere on its ports; a Job's pod from nobody (a verification's
//!   throwaway stores included);
//! - egress: to the cloud's own pods; to DNS (port 53, any address: the cluster's DNS may be a
//!   pod or a node-local address, and a policy cannot name "the cluster's DNS" portably); and to
//!   the external datastores and backup stores the spec declares, by their ports. A policy
//!   selects addresses, not host names: an external endpoint is allowed on its port to any
//!   address (docs/multi-tenancy.md says what that does and does not keep out).

use std::collections::BTreeSet;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::Ctx;
use super::pod::{Port, target_tag};
use super::{Component, Out, RenderError, bynamo, cloudmaster, haproxy, minio, mysql, nodes};
use crate::api::InSyncCloud;

/// Who may connect to a component's ports.
enum From {
    /// Pods of the same cloud.
    Cloud,
    /// Anyone.
    Anywhere,
}

pub(super) fn render(ctx: &Ctx<'_>, out: &mut Out) -> Result<(), RenderError> {
    out.apply(&default_deny(ctx))?;
    out.apply(&egress(ctx))?;
    let spec = &ctx.cloud.spec;
    let policies = [
        (
            Component::Mysql,
            &mysql::PORTS[..],
            From::Cloud,
            spec.database.managed.is_some(),
        ),
        (
            Component::Bynamo,
            &bynamo::PORTS,
            From::Cloud,
            spec.metadata_store.managed.is_some(),
        ),
        (
            Component::Minio,
            &minio::PORTS,
            From::Cloud,
            spec.object_store.minio.is_some(),
        ),
        (
            Component::CloudMaster,
            &cloudmaster::PORTS,
            From::Cloud,
            true,
        ),
        (Component::Node, &nodes::PORTS, From::Cloud, true),
        (Component::Haproxy, &haproxy::PORTS, From::Anywhere, true),
    ];
    for (component, ports, from, present) in policies {
        if present {
            out.apply(&policy(ctx, component, ports, from))?;
        }
    }
    Ok(())
}

/// Metadata of a policy over every pod of the cloud.
fn cloud_wide(
    ctx: &Ctx<'_>,
    suffix: &str,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    let mut labels = ctx.instance_selector();
    labels.extend([
        (
            super::keys::MANAGED_BY.to_owned(),
            super::keys::MANAGER.to_owned(),
        ),
        (super::keys::PART_OF.to_owned(), "insync".to_owned()),
        (
            super::keys::VERSION.to_owned(),
            // A tag may have 128 characters, a label value 63.
            super::meta::label_value(&ctx.cloud.spec.version),
        ),
    ]);
    ctx.meta_with(format!("{}-{suffix}", ctx.cloud.cloud_name()), labels)
}

fn every_pod_of_the_cloud(ctx: &Ctx<'_>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(ctx.instance_selector()),
        ..LabelSelector::default()
    }
}

/// `<cloud>-default-deny`: nothing in or out of any pod of the cloud unless another policy
/// allows it.
fn default_deny(ctx: &Ctx<'_>) -> NetworkPolicy {
    NetworkPolicy {
        metadata: cloud_wide(ctx, "default-deny"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(every_pod_of_the_cloud(ctx)),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: None,
            egress: None,
        }),
    }
}

/// `<cloud>-egress`: where the cloud's pods may connect to.
fn egress(ctx: &Ctx<'_>) -> NetworkPolicy {
    let tcp = |port: i32| NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_owned()),
        end_port: None,
    };
    let mut rules = vec![
        NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                pod_selector: Some(every_pod_of_the_cloud(ctx)),
                ..NetworkPolicyPeer::default()
            }]),
            ports: None,
        },
        NetworkPolicyEgressRule {
            to: None,
            ports: Some(vec![
                NetworkPolicyPort {
                    port: Some(IntOrString::Int(53)),
                    protocol: Some("UDP".to_owned()),
                    end_port: None,
                },
                tcp(53),
            ]),
        },
    ];
    let external = external_ports(ctx.cloud);
    if !external.is_empty() {
        rules.push(NetworkPolicyEgressRule {
            to: None,
            ports: Some(external.into_iter().map(tcp).collect()),
        });
    }
    NetworkPolicy {
        metadata: cloud_wide(ctx, "egress"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(every_pod_of_the_cloud(ctx)),
            policy_types: Some(vec!["Egress".to_owned()]),
            ingress: None,
            egress: Some(rules),
        }),
    }
}

/// The TCP ports of every store outside the cloud that the spec declares: an external
/// database, metadata store or object store, the backup destination and a restore's source.
pub(super) fn external_ports(cloud: &InSyncCloud) -> BTreeSet<i32> {
    let spec = &cloud.spec;
    let mut ports = BTreeSet::new();
    if let Some(db) = &spec.database.external {
        ports.insert(db.port);
    }
    let endpoints = [
        spec.metadata_store
            .external
            .as_ref()
            .map(|e| e.endpoint.as_deref()),
        spec.object_store
            .s3
            .as_ref()
            .map(|s3| s3.endpoint.as_deref()),
        spec.backup
            .as_ref()
            .and_then(|b| b.destination.as_ref())
            .and_then(|d| d.s3.as_ref())
            .map(|s3| s3.endpoint.as_deref()),
        spec.restore
            .as_ref()
            .and_then(|r| r.s3.as_ref())
            .map(|s3| s3.endpoint.as_deref()),
    ];
    // An endpoint that is not set is AWS's: HTTPS.
    ports.extend(
        endpoints
            .into_iter()
            .flatten()
            .map(|url| url.map_or(443, url_port)),
    );
    ports
}

/// The port of an http(s) URL: the one it names, else its scheme's.
fn url_port(url: &str) -> i32 {
    let (default, rest) = match url.split_once("://") {
        Some(("http", rest)) => (80, rest),
        Some((_, rest)) => (443, rest),
        None => (443, url),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // After an IPv6 literal's closing bracket, or after the only ':' of a name or IPv4.
    let port = match authority.rsplit_once(']') {
        Some((_, after)) => after.strip_prefix(':'),
        None => authority.rsplit_once(':').map(|(_, port)| port),
    };
    port.and_then(|p| p.parse().ok()).unwrap_or(default)
}

fn policy(ctx: &Ctx<'_>, component: Component, ports: &[Port], from: From) -> NetworkPolicy {
    let ports = ports
        .iter()
        .map(|port| NetworkPolicyPort {
            port: Some(IntOrString::Int(port.port)),
            protocol: Some("TCP".to_owned()),
            end_port: None,
        })
        .collect();
    let from = match from {
        From::Cloud => Some(vec![NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_labels: Some(ctx.instance_selector()),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        }]),
        From::Anywhere => None,
    };
    NetworkPolicy {
        metadata: ctx.meta(
            ctx.component_name(component),
            component,
            &target_tag(ctx, component),
        ),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(ctx.selector(component)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from,
                ports: Some(ports),
            }]),
            ..NetworkPolicySpec::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BackupDestination, BackupS3, BackupSpec, InSyncCloudSpec};

    /// A version tag may have 128 characters, a label value at most 63 (the e2e of a long tag
    /// saw the API server refuse the cloud-wide policies).
    #[test]
    fn the_cloud_wide_policies_label_a_long_version_validly() {
        let long = format!("_{}", "7".repeat(127));
        let mut cloud = InSyncCloud::new("fcloud", InSyncCloudSpec::with_version(&long));
        cloud.metadata.namespace = Some("fcloud".to_owned());
        let options = crate::render::RenderOptions {
            pinned_tags: Default::default(),
        };
        let ctx = Ctx::new(&cloud, &options);
        let label = cloud_wide(&ctx, "egress")
            .labels
            .and_then(|l| l.get(crate::render::keys::VERSION).cloned())
            .unwrap_or_default();
        assert!(label.len() <= 63 && label.starts_with('7'), "{label}");
    }

    #[test]
    fn a_urls_port_is_the_one_it_names_or_its_schemes() {
        assert_eq!(url_port("http://minio.backups:9000"), 9000);
        assert_eq!(url_port("https://s3.eu-west-1.amazonaws.com"), 443);
        assert_eq!(url_port("http://offsite.example/bucket?x=1"), 80);
        assert_eq!(url_port("http://[fd00::1]:9000/"), 9000);
        assert_eq!(url_port("https://[fd00::1]/"), 443);
    }

    #[test]
    fn the_stores_outside_the_cloud_are_allowed_by_their_ports() {
        let mut cloud = InSyncCloud::new("fcloud", InSyncCloudSpec::with_version("5.9.1-r4178"));
        assert!(
            external_ports(&cloud).is_empty(),
            "everything runs in the cloud"
        );
        cloud.spec.backup = Some(BackupSpec {
            destination: Some(BackupDestination {
                s3: Some(BackupS3 {
                    bucket: "offsite".to_owned(),
                    prefix: None,
                    endpoint: Some("http://minio.backups:9000".to_owned()),
                    region: None,
                    secret_ref: None,
                }),
            }),
            ..BackupSpec::default()
        });
        assert_eq!(external_ports(&cloud), BTreeSet::from([9000]));
        if let Some(s3) = cloud
            .spec
            .backup
            .as_mut()
            .and_then(|b| b.destination.as_mut())
            .and_then(|d| d.s3.as_mut())
        {
            s3.endpoint = None;
        }
        assert_eq!(external_ports(&cloud), BTreeSet::from([443]), "AWS");
    }
}
