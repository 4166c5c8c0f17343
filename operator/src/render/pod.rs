//! Pods: image resolution, the restricted security context, default resources, probes and the
//! config hash. Every pod template is built by [`PodBuilder`]: a component's, and a Job's with
//! its init containers (built by [`super::container::ContainerBuilder`] from the same shapes:
//! ports, mounts, probes, security context).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, ExecAction, HTTPGetAction, Lifecycle, LifecycleHandler,
    LocalObjectReference, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecurityContext, SleepAction,
    TCPSocketAction, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};

use super::meta::Ctx;
use super::{Component, keys};
use crate::api::{ImageOverride, InSyncCloudSpec, Placement, PullPolicy};

/// MySQL's image tag when `database.managed.image.tag` is unset. MySQL is versioned
/// independently of inSync, so a version bump does not restart the database.
pub const MYSQL_DEFAULT_TAG: &str = "8.4.5";

/// MinIO's image tag when `objectStore.minio.image.tag` is unset (versioned independently).
pub const MINIO_DEFAULT_TAG: &str = "RELEASE.2025-04-22T22-12-26Z";

/// A container image and the tag it was resolved to (the component's version).
#[derive(Clone, Debug)]
pub(super) struct Image {
    pub(crate) reference: String,
    pub(crate) tag: String,
}

/// The tag a component should run, ignoring pins: its override tag, else its own default (MySQL,
/// MinIO), else `spec.version`.
pub(super) fn target_tag(ctx: &Ctx<'_>, component: Component) -> String {
    let spec = &ctx.cloud.spec;
    let default = match component {
        Component::Mysql => MYSQL_DEFAULT_TAG,
        Component::Minio => MINIO_DEFAULT_TAG,
        _ => &spec.version,
    };
    overrides(spec, component)
        .image
        .and_then(|image| image.tag.as_deref())
        .unwrap_or(default)
        .to_owned()
}

/// The image of workload `workload_id`: `<registry>/<component>` (or the override repository)
/// at the pinned tag if the rollout pinned this workload, else [`target_tag`].
pub(super) fn image(ctx: &Ctx<'_>, component: Component, workload_id: &str) -> Image {
    let spec = &ctx.cloud.spec;
    let repository = overrides(spec, component)
        .image
        .and_then(|image| image.repository.clone())
        .unwrap_or_else(|| format!("{}/{}", spec.images.registry, component.name()));
    let tag = ctx
        .options
        .pinned_tags
        .get(workload_id)
        .cloned()
        .unwrap_or_else(|| target_tag(ctx, component));
    Image {
        reference: format!("{repository}:{tag}"),
        tag,
    }
}

/// What a component's own part of the spec says of its pods: none of it for a datastore that
/// is not managed.
#[derive(Default)]
struct Overrides<'a> {
    image: Option<&'a ImageOverride>,
    resources: Option<&'a ResourceRequirements>,
    placement: Option<&'a Placement>,
}

fn overrides(spec: &InSyncCloudSpec, component: Component) -> Overrides<'_> {
    let own = match component {
        Component::Mysql => spec
            .database
            .managed
            .as_ref()
            .map(|m| (&m.image, &m.resources, &m.placement)),
        Component::Bynamo => spec
            .metadata_store
            .managed
            .as_ref()
            .map(|m| (&m.image, &m.resources, &m.placement)),
        Component::Minio => spec
            .object_store
            .minio
            .as_ref()
            .map(|m| (&m.image, &m.resources, &m.placement)),
        Component::CloudMaster => {
            let m = &spec.master;
            Some((&m.image, &m.resources, &m.placement))
        }
        Component::Node => {
            let m = &spec.nodes;
            Some((&m.image, &m.resources, &m.placement))
        }
        Component::Haproxy => {
            let m = &spec.frontend;
            Some((&m.image, &m.resources, &m.placement))
        }
    };
    own.map_or_else(Overrides::default, |(image, resources, placement)| {
        Overrides {
            image: image.as_ref(),
            resources: resources.as_ref(),
            placement: placement.as_ref(),
        }
    })
}

/// Where `component`'s pods run: the cloud-wide placement with the component's own fields
/// put over it.
fn placement(spec: &InSyncCloudSpec, component: Component) -> Placement {
    spec.placement
        .overridden_by(overrides(spec, component).placement)
}

/// What a component's container needs from its pod, declared once in the component's module.
pub(super) struct Profile {
    /// Non-zero user, group and fsGroup the container runs as.
    pub(crate) uid: i64,
    /// Whether the image works with a read-only root filesystem.
    pub(crate) read_only_root: bool,
    /// Directories besides `/tmp` that get a writable emptyDir.
    pub(crate) writable_dirs: &'static [&'static str],
    /// Default requests (cpu, memory) and memory limit when the spec sets no resources.
    pub(crate) cpu_request: &'static str,
    pub(crate) memory_request: &'static str,
    pub(crate) memory_limit: &'static str,
    /// How long the container may take to start before liveness checks begin.
    pub(crate) startup_seconds: i32,
}

/// A named container port.
#[derive(Clone, Copy, Debug)]
pub(super) struct Port {
    pub(crate) name: &'static str,
    pub(crate) port: i32,
}

/// How a probe checks a container.
#[derive(Clone, Copy, Debug)]
pub(super) enum Check {
    /// TCP connect to a named port.
    Tcp(&'static str),
    /// HTTP GET of a path on a named port.
    Http(&'static str, &'static str),
    /// TCP connect to a port by its number (an init container's ports have no names).
    TcpPort(i32),
    /// A command inside the container (a server that listens on 127.0.0.1 only, which the
    /// kubelet's TCP and HTTP checks, made to the pod's address, cannot reach).
    Exec(&'static [&'static str]),
}

/// An init container of a pod (a step run to completion, or a native sidecar), as
/// [`super::container::ContainerBuilder`] built it: [`PodBuilder::build`] hardens it like the
/// main container, as the user it was built to run as, and adds the volumes it mounts.
pub(super) struct InitContainer {
    pub(super) container: Container,
    /// The image's own user, when it is not the pod's ([`Profile::uid`]).
    pub(super) run_as: Option<i64>,
    /// The emptyDirs only this container mounts.
    pub(super) volumes: Vec<Volume>,
}

/// The volume every pod gets for `/tmp`.
const TMP: &str = "/tmp";
const PROBE_PERIOD_SECONDS: i32 = 10;
/// How long a client-facing pod keeps serving after it is told to stop (see
/// [`PodBuilder::drain_before_stop`]); well inside the default 30 s grace period.
pub(super) const DRAIN_SECONDS: i64 = 5;

/// A pod template and the image tag it runs, in full (its version label may be shortened).
pub(super) struct Template {
    pub(super) spec: PodTemplateSpec,
    pub(super) version: String,
}

/// Builds a component's pod template with everything components share.
pub(super) struct PodBuilder<'a> {
    ctx: &'a Ctx<'a>,
    /// `None` for a task's pod (a backup Job): no component placement, resources or spread.
    component: Option<Component>,
    profile: &'static Profile,
    container: Container,
    init_containers: Vec<InitContainer>,
    readiness: Option<Check>,
    liveness: Option<Check>,
    volumes: Vec<Volume>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    hostname: Option<(String, String)>,
    version: String,
}

impl<'a> PodBuilder<'a> {
    pub(crate) fn new(
        ctx: &'a Ctx<'a>,
        component: Component,
        profile: &'static Profile,
        image: Image,
    ) -> Self {
        let labels = ctx.labels(component, &image.tag);
        Self::with(
            ctx,
            Some(component),
            component.name(),
            profile,
            image,
            labels,
        )
    }

    /// A pod of a task the cloud runs to completion (a backup), not of a component: container
    /// `name`, the cloud's instance labels with `app.kubernetes.io/component: <name>` (so the
    /// NetworkPolicies let it reach the datastores and no component's Service selects it), the
    /// cloud-wide placement, and resources from `profile`.
    pub(crate) fn task(
        ctx: &'a Ctx<'a>,
        name: &str,
        profile: &'static Profile,
        image: Image,
    ) -> Self {
        let mut labels = ctx.instance_selector();
        labels.extend([
            (keys::COMPONENT.to_owned(), name.to_owned()),
            (keys::MANAGED_BY.to_owned(), keys::MANAGER.to_owned()),
            (keys::PART_OF.to_owned(), "insync".to_owned()),
        ]);
        Self::with(ctx, None, name, profile, image, labels)
    }

    /// A pod whose main container `name` runs `image`, with nothing else set yet.
    fn with(
        ctx: &'a Ctx<'a>,
        component: Option<Component>,
        name: &str,
        profile: &'static Profile,
        image: Image,
        labels: BTreeMap<String, String>,
    ) -> Self {
        Self {
            labels,
            ctx,
            component,
            profile,
            container: Container {
                name: name.to_owned(),
                image: Some(image.reference),
                ..Container::default()
            },
            init_containers: Vec::new(),
            readiness: None,
            liveness: None,
            volumes: Vec::new(),
            annotations: BTreeMap::new(),
            hostname: None,
            version: image.tag,
        }
    }

    /// A container that starts before the main one (a step that runs to completion, or a native
    /// sidecar), hardened the same way (security context, pull policy, resources, writable
    /// `/tmp`).
    pub(crate) fn init_container(mut self, init: InitContainer) -> Self {
        self.init_containers.push(init);
        self
    }

    /// The main container's command (the image's entrypoint is replaced).
    pub(crate) fn command<I: IntoIterator<Item = String>>(mut self, command: I) -> Self {
        self.container.command = Some(command.into_iter().collect());
        self
    }

    pub(crate) fn ports(mut self, ports: &[Port]) -> Self {
        let ports = ports
            .iter()
            .map(|port| tcp_port(Some(port.name), port.port));
        self.container
            .ports
            .get_or_insert_with(Vec::new)
            .extend(ports);
        self
    }

    pub(crate) fn args<I: IntoIterator<Item = String>>(mut self, args: I) -> Self {
        self.container.args = Some(args.into_iter().collect());
        self
    }

    pub(crate) fn env<I: IntoIterator<Item = EnvVar>>(mut self, env: I) -> Self {
        self.container.env.get_or_insert_with(Vec::new).extend(env);
        self
    }

    /// Readiness, liveness and startup all use `check`.
    pub(crate) fn probe(mut self, check: Check) -> Self {
        self.readiness = Some(check);
        self.liveness = Some(check);
        self
    }

    /// Keeps a terminating pod serving for `seconds` before it gets SIGTERM. Removing a pod from
    /// its Service is asynchronous: until every kube-proxy (and HAProxy's resolver) has caught
    /// up, new connections still arrive at the old pod, and a server that closes its listener
    /// on SIGTERM refuses them. A `sleep` preStop hook needs nothing in the image.
    pub(crate) fn drain_before_stop(mut self, seconds: i64) -> Self {
        self.container.lifecycle = Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction { seconds }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        });
        self
    }

    /// Readiness uses a different check than liveness and startup.
    pub(crate) fn readiness(mut self, check: Check) -> Self {
        self.readiness = Some(check);
        self
    }

    /// Mounts `volume` at `path`; `volume: None` for volumes the workload provides itself
    /// (StatefulSet volume claim templates).
    pub(crate) fn mount(mut self, name: &str, path: &str, volume: Option<Volume>) -> Self {
        self.container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(volume_mount(name, path));
        self.volumes.extend(volume);
        self
    }

    /// Mounts extra volumes (e.g. a shared filesystem the wiring provides).
    pub(crate) fn mounts(mut self, volumes: Vec<Volume>, mounts: Vec<VolumeMount>) -> Self {
        self.container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .extend(mounts);
        self.volumes.extend(volumes);
        self
    }

    /// Mounts `config` at `path` and records its hash, so a config change rolls the pods.
    pub(crate) fn config(mut self, config: &ConfigMap, path: &str) -> Self {
        let name = config.metadata.name.clone().unwrap_or_default();
        self.annotations
            .insert(keys::CONFIG_HASH.to_owned(), config_hash(config));
        let volume = Volume {
            name: "config".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name,
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        };
        self.mount("config", path, Some(volume))
    }

    /// An extra pod label (also part of the workload's selector if it is a selector key).
    pub(crate) fn label(mut self, key: &str, value: String) -> Self {
        self.labels.insert(key.to_owned(), value);
        self
    }

    /// Gives the pod a DNS name `<hostname>.<subdomain>.<ns>.svc` under headless Service
    /// `subdomain`.
    pub(crate) fn hostname(mut self, hostname: String, subdomain: String) -> Self {
        self.hostname = Some((hostname, subdomain));
        self
    }

    pub(crate) fn build(self) -> Template {
        let Self {
            ctx,
            component,
            profile,
            mut container,
            init_containers,
            readiness,
            liveness,
            ..
        } = self;
        let mut volumes = self.volumes;
        let mut writable = Vec::new();
        for dir in std::iter::once(&TMP).chain(profile.writable_dirs) {
            let name = volume_name(dir);
            writable.push(volume_mount(&name, dir));
            volumes.push(empty_dir(name));
        }
        let spec = &ctx.cloud.spec;
        let resources = component
            .and_then(|component| overrides(spec, component).resources)
            .cloned()
            .unwrap_or_else(|| default_resources(profile));
        let harden = |container: &mut Container, run_as: Option<i64>| {
            container
                .volume_mounts
                .get_or_insert_with(Vec::new)
                .extend(writable.iter().cloned());
            container.image_pull_policy = Some(pull_policy(spec.images.pull_policy).to_owned());
            container.security_context = Some(container_security(profile, run_as));
            container.resources = Some(resources.clone());
        };
        harden(&mut container, None);
        let init_containers: Vec<Container> = init_containers
            .into_iter()
            .map(|mut init| {
                harden(&mut init.container, init.run_as);
                volumes.extend(init.volumes);
                init.container
            })
            .collect();
        container.readiness_probe = readiness.map(|check| probe(check, PROBE_PERIOD_SECONDS, 3));
        container.liveness_probe = liveness.map(|check| probe(check, 2 * PROBE_PERIOD_SECONDS, 3));
        container.startup_probe = liveness.map(|check| {
            probe(
                check,
                PROBE_PERIOD_SECONDS,
                profile.startup_seconds / PROBE_PERIOD_SECONDS,
            )
        });
        let pull_secrets = spec
            .images
            .pull_secrets
            .iter()
            .map(|name| LocalObjectReference { name: name.clone() });
        let (hostname, subdomain) = self.hostname.unzip();
        let Placement {
            node_selector,
            tolerations,
            affinity,
            priority_class_name,
        } = component.map_or_else(
            || spec.placement.clone(),
            |component| placement(spec, component),
        );
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(self.labels),
                annotations: (!self.annotations.is_empty()).then_some(self.annotations),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                containers: vec![container],
                init_containers: (!init_containers.is_empty()).then_some(init_containers),
                volumes: Some(volumes),
                image_pull_secrets: Some(pull_secrets.collect::<Vec<_>>())
                    .filter(|secrets| !secrets.is_empty()),
                security_context: Some(pod_security(profile)),
                automount_service_account_token: Some(false),
                enable_service_links: Some(false),
                hostname,
                subdomain,
                topology_spread_constraints: component
                    .map(|component| vec![spread(ctx, component)]),
                node_selector,
                tolerations,
                affinity,
                priority_class_name,
                ..PodSpec::default()
            }),
        };
        Template {
            spec: template,
            version: self.version,
        }
    }
}

/// sha256 (hex) of a ConfigMap's data, keys in order.
pub(super) fn config_hash(config: &ConfigMap) -> String {
    let mut hash = Sha256::new();
    for (key, value) in config.data.iter().flatten() {
        hash.update(key.as_bytes());
        hash.update([0]);
        hash.update(value.as_bytes());
        hash.update([0]);
    }
    hash.finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// An environment variable with a literal value.
pub(super) fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

/// An environment variable read from a Secret key.
pub(super) fn env_from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// An environment variable holding the pod's own name.
pub(super) fn env_pod_name(name: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.name".to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn pod_security(profile: &Profile) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(profile.uid),
        run_as_group: Some(profile.uid),
        fs_group: Some(profile.uid),
        fs_group_change_policy: Some("OnRootMismatch".to_owned()),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// The restricted security context of every container, as `run_as` (user and group) when it is
/// not the pod's user.
fn container_security(profile: &Profile, run_as: Option<i64>) -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: run_as,
        run_as_group: run_as,
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(profile.read_only_root),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}

fn default_resources(profile: &Profile) -> ResourceRequirements {
    let quantity = |value: &str| Quantity(value.to_owned());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), quantity(profile.cpu_request)),
            ("memory".to_owned(), quantity(profile.memory_request)),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_owned(),
            quantity(profile.memory_limit),
        )])),
        ..ResourceRequirements::default()
    }
}

fn probe(check: Check, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        timeout_seconds: Some(5),
        failure_threshold: Some(failure_threshold.max(1)),
        ..probe_every(check, period_seconds)
    }
}

/// A probe of `check` every `period_seconds`, the rest of its settings Kubernetes' defaults.
pub(super) fn probe_every(check: Check, period_seconds: i32) -> Probe {
    let tcp = |port| Some(TCPSocketAction { port, host: None });
    let exec = match check {
        Check::Exec(command) => Some(ExecAction {
            command: Some(command.iter().map(|c| (*c).to_owned()).collect()),
        }),
        _ => None,
    };
    let (tcp_socket, http_get) = match check {
        Check::Exec(_) => (None, None),
        Check::Tcp(port) => (tcp(IntOrString::String(port.to_owned())), None),
        Check::TcpPort(port) => (tcp(IntOrString::Int(port)), None),
        Check::Http(path, port) => (
            None,
            Some(HTTPGetAction {
                path: Some(path.to_owned()),
                port: IntOrString::String(port.to_owned()),
                scheme: Some("HTTP".to_owned()),
                ..HTTPGetAction::default()
            }),
        ),
    };
    Probe {
        exec,
        tcp_socket,
        http_get,
        period_seconds: Some(period_seconds),
        ..Probe::default()
    }
}

/// A TCP port of a container, named or not.
pub(super) fn tcp_port(name: Option<&str>, number: i32) -> ContainerPort {
    ContainerPort {
        name: name.map(str::to_owned),
        container_port: number,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

/// Volume `name` mounted at `path`.
pub(super) fn volume_mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        ..VolumeMount::default()
    }
}

/// An emptyDir volume: scratch space that lives as long as the pod.
pub(super) fn empty_dir(name: String) -> Volume {
    Volume {
        name,
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

/// Spreads a component's pods over cluster nodes where possible.
fn spread(ctx: &Ctx<'_>, component: Component) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "kubernetes.io/hostname".to_owned(),
        when_unsatisfiable: "ScheduleAnyway".to_owned(),
        label_selector: Some(LabelSelector {
            match_labels: Some(ctx.selector(component)),
            ..LabelSelector::default()
        }),
        ..TopologySpreadConstraint::default()
    }
}

fn pull_policy(policy: PullPolicy) -> &'static str {
    match policy {
        PullPolicy::IfNotPresent => "IfNotPresent",
        PullPolicy::Always => "Always",
        PullPolicy::Never => "Never",
    }
}

/// `/var/run/mysqld` -> `var-run-mysqld`.
fn volume_name(dir: &str) -> String {
    dir.trim_matches('/')
        .replace(['/', '.', '_'], "-")
        .to_lowercase()
}

/// For the Jobs' tests: every container of `pod`, init containers included, runs restricted
/// (not root, no privilege escalation, every capability dropped, a read-only root filesystem).
#[cfg(test)]
pub(crate) fn assert_restricted(pod: &PodSpec) {
    for container in pod.init_containers.iter().flatten().chain(&pod.containers) {
        let name = &container.name;
        let sc = container.security_context.as_ref().expect("security");
        assert_eq!(sc.run_as_non_root, Some(true), "{name}");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{name}");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{name}");
        assert_eq!(
            sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_owned()]),
            "{name}"
        );
    }
}
