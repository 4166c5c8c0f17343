//! NetworkPolicies: the datastores, CloudMaster and storage nodes accept traffic only from the
//! cloud's own pods (by the instance labels); the HAProxy front end is open to clients.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::Ctx;
use super::pod::{Port, target_tag};
use super::{Component, Out, RenderError, bynamo, cloudmaster, haproxy, minio, mysql, nodes};

/// Who may connect to a component's ports.
enum From {
    /// Pods of the same cloud.
    Cloud,
    /// Anyone.
    Anywhere,
}

pub(super) fn render(ctx: &Ctx<'_>, out: &mut Out) -> Result<(), RenderError> {
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
