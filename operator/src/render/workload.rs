//! The object shapes components share: Deployments, StatefulSets, Services, PodDisruptionBudgets,
//! ConfigMaps and PersistentVolumeClaims.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment, StatefulSet,
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodTemplateSpec, Service,
    ServicePort, ServiceSpec, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{Ctx, selector_of};
use super::pod::{PodBuilder, Port, Profile, Template, config_hash, image};
use super::revision;
use super::secrets::Credentials;
use super::{Component, Out, RenderError, keys};
use crate::api::StorageSpec;

/// Name of the data volume claim template of every StatefulSet (PVCs `data-<sts>-<ordinal>`).
pub(super) const DATA_VOLUME: &str = "data";

/// How a Deployment replaces its pods.
pub(super) enum Strategy {
    /// Start a new pod before stopping an old one, never dropping below `replicas`.
    Surge,
    /// Stop the old pod first: for pods that own a ReadWriteOnce volume.
    Recreate,
}

/// A Deployment named `name` running `template`, selecting it by the template's selector labels.
pub(super) fn deployment(
    ctx: &Ctx<'_>,
    name: String,
    replicas: i32,
    strategy: Strategy,
    template: Template,
) -> Deployment {
    let labels = template_labels(&template.spec);
    let strategy = match strategy {
        Strategy::Surge => DeploymentStrategy {
            type_: Some("RollingUpdate".to_owned()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(1)),
                max_unavailable: Some(IntOrString::Int(0)),
            }),
        },
        Strategy::Recreate => DeploymentStrategy {
            type_: Some("Recreate".to_owned()),
            rolling_update: None,
        },
    };
    Deployment {
        metadata: workload_meta(ctx, name, labels.clone(), &template),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: match_labels(selector_of(&labels)),
            strategy: Some(strategy),
            revision_history_limit: Some(5),
            template: template.spec,
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// A StatefulSet `<cloud>-<component>` with one `data` volume per replica of `storage`, governed
/// by [`headless_service_name`]. Its volumes are kept when the cloud is deleted or scaled down.
pub(super) fn stateful_set(
    ctx: &Ctx<'_>,
    component: Component,
    replicas: i32,
    storage: &StorageSpec,
    template: Template,
) -> StatefulSet {
    let labels = template_labels(&template.spec);
    let selector = selector_of(&labels);
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.to_owned()),
            // Claim templates cannot change after creation: only the stable selector labels.
            labels: Some(selector.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(claim_spec(storage)),
        status: None,
    };
    StatefulSet {
        metadata: workload_meta(ctx, ctx.component_name(component), labels, &template),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            selector: match_labels(selector),
            service_name: Some(headless_service_name(ctx, component)),
            pod_management_policy: Some("Parallel".to_owned()),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".to_owned()),
                    when_scaled: Some("Retain".to_owned()),
                },
            ),
            revision_history_limit: Some(5),
            template: template.spec,
            volume_claim_templates: Some(vec![claim]),
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

/// `<cloud>-<component>-headless`: the Service that gives each StatefulSet pod a DNS name.
pub(super) fn headless_service_name(ctx: &Ctx<'_>, component: Component) -> String {
    ctx.name(&format!("{}-headless", component.name()))
}

/// DNS name of StatefulSet pod `ordinal` (a number, or a MinIO `{0...n}` range).
pub(super) fn stateful_pod_host(ctx: &Ctx<'_>, component: Component, ordinal: &str) -> String {
    let service = ctx.service_host(&headless_service_name(ctx, component));
    format!("{}-{ordinal}.{service}", ctx.component_name(component))
}

/// Whether a Service load-balances over a virtual IP or only publishes pod DNS records.
pub(super) enum ServiceShape {
    /// A ClusterIP Service.
    Client,
    /// `clusterIP: None`; `publish_not_ready` lets peers find each other while starting.
    Headless { publish_not_ready: bool },
}

/// A Service `name` over the pods of `component` on `ports` (port = target port name).
pub(super) fn service(
    ctx: &Ctx<'_>,
    name: String,
    component: Component,
    version: &str,
    shape: ServiceShape,
    ports: &[Port],
) -> Service {
    let ports = ports
        .iter()
        .map(|port| ServicePort {
            name: Some(port.name.to_owned()),
            port: port.port,
            target_port: Some(IntOrString::String(port.name.to_owned())),
            protocol: Some("TCP".to_owned()),
            ..ServicePort::default()
        })
        .collect();
    let (cluster_ip, publish_not_ready_addresses) = match shape {
        ServiceShape::Client => (None, None),
        ServiceShape::Headless { publish_not_ready } => {
            (Some("None".to_owned()), Some(publish_not_ready))
        }
    };
    Service {
        metadata: ctx.meta(name, component, version),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            cluster_ip,
            publish_not_ready_addresses,
            selector: Some(ctx.selector(component)),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// A PodDisruptionBudget letting one of a component's `pods` be evicted at a time; none for a
/// single pod, where any budget would either block node drains forever or mean nothing.
pub(super) fn pdb(
    ctx: &Ctx<'_>,
    component: Component,
    version: &str,
    pods: i32,
) -> Option<PodDisruptionBudget> {
    (pods >= 2).then(|| PodDisruptionBudget {
        metadata: ctx.meta(ctx.component_name(component), component, version),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(match_labels(ctx.selector(component))),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })
}

/// A ConfigMap `<cloud>-<component>-<content hash>` holding one file.
///
/// Named after its content, so a config change is a new ConfigMap and the old one stays as it
/// was: a pod of a workload the rollout has not reached yet that restarts (a crash, an
/// eviction) still reads the config of its own revision. The controller deletes an old one
/// once no workload refers to it.
pub(super) fn config_map(
    ctx: &Ctx<'_>,
    component: Component,
    version: &str,
    file: &str,
    content: String,
) -> ConfigMap {
    let data = BTreeMap::from([(file.to_owned(), content)]);
    let mut config = ConfigMap {
        data: Some(data),
        ..ConfigMap::default()
    };
    let hash = config_hash(&config);
    let name = ctx.name(&format!(
        "{}-{}",
        component.name(),
        &hash[..CONFIG_NAME_HASH]
    ));
    config.metadata = ctx.meta(name, component, version);
    config
}

/// Hex digits of the content hash in a ConfigMap's name: 40 bits, so that two configs of one
/// component in use at once never share a name by chance.
const CONFIG_NAME_HASH: usize = 10;

/// The spec of a ReadWriteOnce claim for `storage`.
pub(super) fn claim_spec(storage: &StorageSpec) -> PersistentVolumeClaimSpec {
    PersistentVolumeClaimSpec {
        access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
        storage_class_name: storage.storage_class_name.clone(),
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([(
                "storage".to_owned(),
                Quantity(storage.size.clone()),
            )])),
            limits: None,
        }),
        ..PersistentVolumeClaimSpec::default()
    }
}

/// Metadata of a workload: its pod template's labels (so a pinned workload keeps its version
/// label), the template's full image tag and its revision, which the controller reads back.
fn workload_meta(
    ctx: &Ctx<'_>,
    name: String,
    labels: BTreeMap<String, String>,
    template: &Template,
) -> ObjectMeta {
    ObjectMeta {
        annotations: Some(BTreeMap::from([
            (keys::WORKLOAD_VERSION.to_owned(), template.version.clone()),
            (keys::REVISION.to_owned(), revision::of(&template.spec)),
        ])),
        ..ctx.meta_with(name, labels)
    }
}

/// The labels of a pod template.
fn template_labels(template: &PodTemplateSpec) -> BTreeMap<String, String> {
    template
        .metadata
        .as_ref()
        .and_then(|meta| meta.labels.clone())
        .unwrap_or_default()
}

fn match_labels(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    }
}

/// A managed datastore (MySQL, Bynamo, MinIO): a StatefulSet of its own image with one data
/// volume a replica, its generated credentials, Services and PodDisruptionBudget.
pub(super) struct Datastore {
    pub(super) component: Component,
    pub(super) profile: &'static Profile,
    pub(super) ports: &'static [Port],
    /// Where its pods mount their data volume.
    pub(super) data_dir: &'static str,
    pub(super) credentials: &'static Credentials,
}

impl Datastore {
    /// Its pod: the component's own image, its ports and its data volume; the component adds
    /// its environment, arguments and probes.
    pub(super) fn pod<'a>(&self, ctx: &'a Ctx<'a>) -> PodBuilder<'a> {
        let image = image(ctx, self.component, self.component.name());
        PodBuilder::new(ctx, self.component, self.profile, image)
            .ports(self.ports)
            .mount(DATA_VOLUME, self.data_dir, None)
    }

    /// Its credentials, then its StatefulSet of `replicas` running `template` with data volumes
    /// of `storage`, with the rest of [`render_stateful`].
    pub(super) fn render(
        &self,
        ctx: &Ctx<'_>,
        out: &mut Out,
        replicas: i32,
        storage: &StorageSpec,
        template: Template,
    ) -> Result<(), RenderError> {
        self.credentials.render(ctx, out)?;
        render_stateful(
            ctx,
            out,
            self.component,
            replicas,
            storage,
            self.ports,
            template,
        )
    }
}

/// A datastore's StatefulSet with its headless and client Services and (for several replicas)
/// its PodDisruptionBudget, in that order.
fn render_stateful(
    ctx: &Ctx<'_>,
    out: &mut Out,
    component: Component,
    replicas: i32,
    storage: &StorageSpec,
    ports: &[Port],
    template: Template,
) -> Result<(), RenderError> {
    let version = template.version.clone();
    let headless = ServiceShape::Headless {
        publish_not_ready: true,
    };
    let headless = service(
        ctx,
        headless_service_name(ctx, component),
        component,
        &version,
        headless,
        ports,
    );
    let client = service(
        ctx,
        ctx.component_name(component),
        component,
        &version,
        ServiceShape::Client,
        ports,
    );
    out.apply(&headless)?;
    out.apply(&client)?;
    out.workload(
        &stateful_set(ctx, component, replicas, storage, template),
        component,
        component.name(),
    )?;
    out.apply_some(pdb(ctx, component, &version, replicas))
}
