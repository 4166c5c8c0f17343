//! The renderer on the shipped examples: full snapshots, plus the properties the controller and
//! the cluster rely on, checked on every object.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use insync_operator::api::{
    ExternalS3, InSyncCloud, InSyncCloudSpec, ObjectStoreSpec, SecretRef, SharedFilesystem,
};
use insync_operator::render::{
    self, ApplyPolicy, Component, Desired, MINIO_DEFAULT_TAG, MYSQL_DEFAULT_TAG, RenderOptions,
    keys,
};
use serde_json::Value;

const UID: &str = "6f1c2a4e-0000-4000-8000-000000000001";
const VERSION: &str = "5.9.1-r4178";

// ---------------------------------------------------------------------------------------------
// Fixtures

fn examples() -> Vec<(String, InSyncCloud)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no examples in {}", dir.display());
    paths
        .into_iter()
        .map(|path| {
            let name = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name.clone(), example(&name))
        })
        .collect()
}

/// `examples/<name>.yaml` with a uid, as the API server would return it.
fn example(name: &str) -> InSyncCloud {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/{name}.yaml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut cloud: InSyncCloud = serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not an InSyncCloud: {e}", path.display()));
    cloud.metadata.uid = Some(UID.to_owned());
    cloud
}

/// A minimal cloud `t1` in namespace `test`, adjusted by `configure`.
fn cloud(configure: impl FnOnce(&mut InSyncCloudSpec)) -> InSyncCloud {
    let mut spec = InSyncCloudSpec::with_version(VERSION);
    configure(&mut spec);
    let mut cloud = InSyncCloud::new("t1", spec);
    cloud.metadata.namespace = Some("test".to_owned());
    cloud.metadata.uid = Some(UID.to_owned());
    cloud
}

fn rendered(cloud: &InSyncCloud) -> Vec<Desired> {
    render::render(cloud, &RenderOptions::default()).expect("cloud renders")
}

fn pinned(cloud: &InSyncCloud, pins: &[(&str, &str)]) -> Vec<Desired> {
    let pinned_tags = pins
        .iter()
        .map(|(id, tag)| (id.to_string(), tag.to_string()))
        .collect();
    render::render(cloud, &RenderOptions { pinned_tags }).expect("cloud renders")
}

// ---------------------------------------------------------------------------------------------
// Accessors

fn kind(desired: &Desired) -> &str {
    desired
        .object
        .types
        .as_ref()
        .map(|t| t.kind.as_str())
        .unwrap_or_default()
}

fn name(desired: &Desired) -> &str {
    desired.object.metadata.name.as_deref().unwrap_or_default()
}

fn find<'a>(objects: &'a [Desired], kind_: &str, name_: &str) -> &'a Desired {
    objects
        .iter()
        .find(|d| kind(d) == kind_ && name(d) == name_)
        .unwrap_or_else(|| panic!("no {kind_} {name_}"))
}

fn of_kind<'a>(objects: &'a [Desired], kind_: &'a str) -> impl Iterator<Item = &'a Desired> {
    objects.iter().filter(move |d| kind(d) == kind_)
}

fn workloads(objects: &[Desired]) -> impl Iterator<Item = &Desired> {
    objects
        .iter()
        .filter(|d| matches!(kind(d), "Deployment" | "StatefulSet"))
}

fn pod_spec(desired: &Desired) -> &Value {
    &desired.object.data["spec"]["template"]["spec"]
}

fn container(desired: &Desired) -> &Value {
    &pod_spec(desired)["containers"][0]
}

fn image_tag(desired: &Desired) -> &str {
    let image = container(desired)["image"].as_str().expect("image");
    image
        .rsplit_once(':')
        .map(|(_, tag)| tag)
        .expect("tagged image")
}

fn config_hash(desired: &Desired) -> &str {
    desired.object.data["spec"]["template"]["metadata"]["annotations"][keys::CONFIG_HASH]
        .as_str()
        .unwrap_or_else(|| panic!("{} has no config hash", name(desired)))
}

/// `name=value` for every env var of the first container (`name<-secret/key` for Secret refs).
fn env(desired: &Desired) -> Vec<String> {
    container(desired)["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|var| {
            let name = var["name"].as_str().unwrap_or_default();
            match var["valueFrom"]["secretKeyRef"].as_object() {
                Some(secret) => {
                    format!("{name}<-{}/{}", secret["name"], secret["key"]).replace('"', "")
                }
                None => format!("{name}={}", var["value"].as_str().unwrap_or_default()),
            }
        })
        .collect()
}

/// The name of a ConfigMap without the content hash that ends it (`fcloud-node-0123456789` is
/// `fcloud-node`): each revision of a config is a ConfigMap of its own.
fn config_map_base(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((base, hash)) if hash.len() == 10 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            base
        }
        _ => name,
    }
}

fn config_text<'a>(objects: &'a [Desired], config_map: &str) -> &'a str {
    let found = of_kind(objects, "ConfigMap")
        .find(|d| config_map_base(name(d)) == config_map)
        .unwrap_or_else(|| panic!("no ConfigMap {config_map}-<hash>"));
    let data = &found.object.data["data"];
    data.as_object()
        .and_then(|files| files.values().next())
        .and_then(Value::as_str)
        .expect("config file")
}

// ---------------------------------------------------------------------------------------------
// Snapshots

#[test]
fn examples_match_snapshots() {
    for (name, cloud) in examples() {
        let yaml = render::to_yaml_stream(&rendered(&cloud)).expect("objects serialize");
        insta::assert_snapshot!(name, yaml);
    }
}

#[test]
fn rendering_is_deterministic() {
    for (_, cloud) in examples() {
        let first = render::to_yaml_stream(&rendered(&cloud)).expect("serializes");
        let second = render::to_yaml_stream(&rendered(&cloud)).expect("serializes");
        assert_eq!(first, second);
    }
}

// ---------------------------------------------------------------------------------------------
// Names, labels, ownership, policies

#[test]
fn fcloud_renders_exactly_these_objects_in_this_order() {
    let objects = rendered(&example("fcloud"));
    let got: Vec<String> = objects
        .iter()
        .map(|d| match kind(d) {
            "ConfigMap" => format!("ConfigMap {}-<hash>", config_map_base(name(d))),
            kind => format!("{kind} {}", name(d)),
        })
        .collect();
    let want = [
        "Secret fcloud-mysql-credentials",
        "Service fcloud-mysql-headless",
        "Service fcloud-mysql",
        "StatefulSet fcloud-mysql",
        "Secret fcloud-bynamo-credentials",
        "Service fcloud-bynamo-headless",
        "Service fcloud-bynamo",
        "StatefulSet fcloud-bynamo",
        "Secret fcloud-minio-credentials",
        "Service fcloud-minio-headless",
        "Service fcloud-minio",
        "StatefulSet fcloud-minio",
        "ConfigMap fcloud-cloudmaster-<hash>",
        "Service fcloud-cloudmaster",
        "Deployment fcloud-cloudmaster",
        "ConfigMap fcloud-node-<hash>",
        "Service fcloud-node",
        "PersistentVolumeClaim fcloud-node-0-data",
        "Deployment fcloud-node-0",
        "PersistentVolumeClaim fcloud-node-1-data",
        "Deployment fcloud-node-1",
        "PodDisruptionBudget fcloud-node",
        "ConfigMap fcloud-haproxy-<hash>",
        "Service fcloud-haproxy",
        "Deployment fcloud-haproxy",
        "NetworkPolicy fcloud-default-deny",
        "NetworkPolicy fcloud-egress",
        "NetworkPolicy fcloud-mysql",
        "NetworkPolicy fcloud-bynamo",
        "NetworkPolicy fcloud-minio",
        "NetworkPolicy fcloud-cloudmaster",
        "NetworkPolicy fcloud-node",
        "NetworkPolicy fcloud-haproxy",
    ];
    assert_eq!(got, want);
}

#[test]
fn every_object_has_the_common_labels_and_namespace() {
    for (example, cloud) in examples() {
        let ns = cloud
            .metadata
            .namespace
            .clone()
            .expect("example has a namespace");
        for desired in rendered(&cloud) {
            let meta = &desired.object.metadata;
            let what = format!("{example}: {} {}", kind(&desired), name(&desired));
            assert_eq!(meta.namespace.as_deref(), Some(ns.as_str()), "{what}");
            assert!(
                name(&desired).starts_with(&format!("{}-", cloud.cloud_name())),
                "{what}"
            );
            let labels = meta.labels.clone().unwrap_or_default();
            assert_eq!(
                labels.get(keys::NAME).map(String::as_str),
                Some("insync"),
                "{what}"
            );
            assert_eq!(
                labels.get(keys::INSTANCE),
                cloud.metadata.name.as_ref(),
                "{what}"
            );
            assert_eq!(
                labels.get(keys::MANAGED_BY).map(String::as_str),
                Some("insync-operator"),
                "{what}"
            );
            assert_eq!(
                labels.get(keys::PART_OF).map(String::as_str),
                Some("insync"),
                "{what}"
            );
            assert!(
                labels.get(keys::VERSION).is_some_and(|v| !v.is_empty()),
                "{what}"
            );
            // The cloud-wide policies (default deny, egress) are of no one component.
            let cloud_wide = kind(&desired) == "NetworkPolicy"
                && (name(&desired).ends_with("-default-deny")
                    || name(&desired).ends_with("-egress"));
            if cloud_wide {
                assert!(!labels.contains_key(keys::COMPONENT), "{what}");
                continue;
            }
            let component = labels.get(keys::COMPONENT).expect("component label");
            assert!(
                Component::ALL.iter().any(|c| c.name() == component),
                "{what}: {component}"
            );
        }
    }
}

#[test]
fn every_object_but_data_volumes_and_their_credentials_is_owned_by_the_cloud() {
    for (example, cloud) in examples() {
        for desired in rendered(&cloud) {
            let what = format!("{example}: {} {}", kind(&desired), name(&desired));
            let owners = desired
                .object
                .metadata
                .owner_references
                .clone()
                .unwrap_or_default();
            if kind(&desired) == "PersistentVolumeClaim" {
                assert!(owners.is_empty(), "{what}: data must outlive the cloud");
                continue;
            }
            if kind(&desired) == "Secret" && name(&desired).ends_with("-credentials") {
                assert!(
                    owners.is_empty(),
                    "{what}: credentials of retained data must outlive the cloud"
                );
                continue;
            }
            assert_eq!(owners.len(), 1, "{what}");
            let owner = &owners[0];
            assert_eq!(
                (
                    owner.api_version.as_str(),
                    owner.kind.as_str(),
                    owner.name.as_str(),
                    owner.uid.as_str()
                ),
                (
                    "insync.dev/v1alpha1",
                    "InSyncCloud",
                    cloud.cloud_name(),
                    UID
                ),
                "{what}"
            );
            assert_eq!(owner.controller, Some(true), "{what}");
            assert_eq!(owner.block_owner_deletion, Some(true), "{what}");
        }
    }
}

#[test]
fn a_cloud_without_uid_renders_without_owner_references() {
    let mut cloud = example("fcloud");
    cloud.metadata.uid = None;
    for desired in rendered(&cloud) {
        assert_eq!(
            desired.object.metadata.owner_references,
            None,
            "{}",
            name(&desired)
        );
    }
}

#[test]
fn only_data_volumes_and_generated_credentials_are_create_only() {
    for (example, cloud) in examples() {
        for desired in rendered(&cloud) {
            let create_only = matches!(kind(&desired), "PersistentVolumeClaim" | "Secret");
            let expected = if create_only {
                ApplyPolicy::CreateOnly
            } else {
                ApplyPolicy::Apply
            };
            assert_eq!(
                desired.policy,
                expected,
                "{example}: {} {}",
                kind(&desired),
                name(&desired)
            );
        }
    }
}

#[test]
fn workloads_carry_their_component_and_id() {
    let objects = rendered(&example("production"));
    let ids: Vec<(Component, String)> = objects.iter().filter_map(|d| d.workload.clone()).collect();
    let mut want = vec![
        (Component::Mysql, "mysql".to_owned()),
        (Component::Bynamo, "bynamo".to_owned()),
        (Component::Minio, "minio".to_owned()),
        (Component::CloudMaster, "cloudmaster".to_owned()),
    ];
    want.extend((0..6).map(|i| (Component::Node, format!("node-{i}"))));
    want.push((Component::Haproxy, "haproxy".to_owned()));
    assert_eq!(ids, want);
    for desired in &objects {
        assert_eq!(
            desired.workload.is_some(),
            matches!(kind(desired), "Deployment" | "StatefulSet"),
            "{}",
            name(desired)
        );
    }
}

#[test]
fn generated_secrets_have_no_data_and_name_the_keys_to_generate() {
    let objects = rendered(&example("fcloud"));
    let want = [
        ("fcloud-mysql-credentials", "password,rootPassword"),
        ("fcloud-bynamo-credentials", "accessKeyId,secretAccessKey"),
        ("fcloud-minio-credentials", "accessKeyId,secretAccessKey"),
    ];
    for (secret, generate) in want {
        let desired = find(&objects, "Secret", secret);
        let annotations = desired
            .object
            .metadata
            .annotations
            .clone()
            .unwrap_or_default();
        assert_eq!(
            annotations.get(keys::GENERATE_KEYS).map(String::as_str),
            Some(generate)
        );
        assert!(
            desired.object.data.get("data").is_none()
                && desired.object.data.get("stringData").is_none()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Images and pods

#[test]
fn images_follow_spec_version_and_datastores_their_own_tags() {
    for (example, cloud) in examples() {
        let registry = &cloud.spec.images.registry;
        for desired in rendered(&cloud).iter().filter(|d| d.workload.is_some()) {
            let (component, _) = desired.workload.clone().expect("workload");
            let tag = match component {
                Component::Mysql => MYSQL_DEFAULT_TAG,
                Component::Minio => MINIO_DEFAULT_TAG,
                _ => VERSION,
            };
            let want = format!("{registry}/{}:{tag}", component.name());
            assert_eq!(
                container(desired)["image"],
                want.as_str(),
                "{example}: {}",
                name(desired)
            );
            let labels = desired.object.metadata.labels.clone().unwrap_or_default();
            assert_eq!(labels.get(keys::VERSION).map(String::as_str), Some(tag));
        }
    }
}

#[test]
fn image_overrides_change_repository_and_tag() {
    let cloud = cloud(|s| {
        s.master.image = Some(insync_operator::api::ImageOverride {
            repository: Some("mirror.example.com/cm".to_owned()),
            tag: Some("5.9.1-hotfix1".to_owned()),
        });
    });
    let objects = rendered(&cloud);
    let master = find(&objects, "Deployment", "t1-cloudmaster");
    assert_eq!(
        container(master)["image"],
        "mirror.example.com/cm:5.9.1-hotfix1"
    );
    assert_eq!(
        image_tag(find(&objects, "Deployment", "t1-node-0")),
        VERSION
    );
}

#[test]
fn every_pod_runs_restricted() {
    for (example, cloud) in examples() {
        let pull_secrets: Vec<Value> = cloud
            .spec
            .images
            .pull_secrets
            .iter()
            .map(|name| serde_json::json!({"name": name}))
            .collect();
        for desired in workloads(&rendered(&cloud)) {
            let what = format!("{example}: {}", name(desired));
            let pod = pod_spec(desired);
            let security = &pod["securityContext"];
            assert_eq!(security["runAsNonRoot"], true, "{what}");
            for id in ["runAsUser", "runAsGroup", "fsGroup"] {
                assert!(
                    security[id].as_i64().is_some_and(|id| id > 0),
                    "{what}: {id}"
                );
            }
            assert_eq!(
                security["seccompProfile"]["type"], "RuntimeDefault",
                "{what}"
            );
            assert_eq!(pod["automountServiceAccountToken"], false, "{what}");
            for container in pod["containers"].as_array().expect("containers") {
                let security = &container["securityContext"];
                assert_eq!(security["allowPrivilegeEscalation"], false, "{what}");
                assert_eq!(security["runAsNonRoot"], true, "{what}");
                assert_eq!(
                    security["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{what}"
                );
                assert!(security["readOnlyRootFilesystem"].is_boolean(), "{what}");
                let tmp = container["volumeMounts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|m| m["mountPath"] == "/tmp");
                assert!(tmp, "{what}: /tmp must be writable");
                assert!(
                    container["resources"]["requests"]["memory"].is_string(),
                    "{what}"
                );
                assert!(container["readinessProbe"].is_object(), "{what}");
                assert!(container["livenessProbe"].is_object(), "{what}");
            }
            let got = pod["imagePullSecrets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert_eq!(got, pull_secrets, "{what}");
        }
    }
}

#[test]
fn resources_from_the_spec_replace_the_defaults() {
    let objects = rendered(&example("production"));
    let master = container(find(&objects, "Deployment", "prod-cloudmaster"));
    assert_eq!(master["resources"]["limits"]["memory"], "8Gi");
    assert_eq!(master["resources"]["requests"]["cpu"], "2");
    let haproxy = container(find(&objects, "Deployment", "prod-haproxy"));
    assert!(
        haproxy["resources"]["requests"]["cpu"].is_string(),
        "defaults when unset"
    );
}

#[test]
fn placement_applies_cloud_wide_and_components_override_it_field_by_field() {
    let cloud: InSyncCloud = serde_yaml::from_str(
        r#"
apiVersion: insync.dev/v1alpha1
kind: InSyncCloud
metadata: {name: t1, namespace: test, uid: 6f1c2a4e-0000-4000-8000-000000000001}
spec:
  version: "5.9.1-r4178"
  placement:
    nodeSelector: {pool: insync}
    tolerations: [{key: dedicated, operator: Equal, value: insync, effect: NoSchedule}]
    priorityClassName: insync-normal
  database:
    managed:
      placement:
        priorityClassName: insync-critical
        affinity:
          nodeAffinity:
            requiredDuringSchedulingIgnoredDuringExecution:
              nodeSelectorTerms: [{matchExpressions: [{key: disk, operator: In, values: [ssd]}]}]
  frontend:
    placement:
      nodeSelector: {pool: edge}
"#,
    )
    .expect("fixture parses");
    let objects = rendered(&cloud);
    let mysql = pod_spec(find(&objects, "StatefulSet", "t1-mysql"));
    assert_eq!(
        mysql["priorityClassName"], "insync-critical",
        "the component's own field wins"
    );
    assert_eq!(
        mysql["nodeSelector"]["pool"], "insync",
        "unset fields fall back to the cloud's"
    );
    assert_eq!(mysql["tolerations"][0]["key"], "dedicated");
    assert_eq!(
        mysql["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchExpressions"][0]["values"][0],
        "ssd"
    );
    let haproxy = pod_spec(find(&objects, "Deployment", "t1-haproxy"));
    assert_eq!(haproxy["nodeSelector"], serde_json::json!({"pool": "edge"}));
    assert_eq!(haproxy["priorityClassName"], "insync-normal");
    for workload in workloads(&objects) {
        let pod = pod_spec(workload);
        assert_eq!(
            pod["tolerations"][0]["effect"],
            "NoSchedule",
            "{}",
            name(workload)
        );
        assert!(pod["priorityClassName"].is_string(), "{}", name(workload));
    }
    let plain = rendered(&example("fcloud"));
    for workload in workloads(&plain) {
        let pod = pod_spec(workload);
        for field in [
            "nodeSelector",
            "tolerations",
            "affinity",
            "priorityClassName",
        ] {
            assert!(
                pod[field].is_null(),
                "{} has {field} without placement",
                name(workload)
            );
        }
    }
}

#[test]
fn client_facing_pods_keep_serving_while_they_leave_their_service() {
    let objects = rendered(&example("fcloud"));
    for name in ["fcloud-cloudmaster", "fcloud-haproxy"] {
        let seconds = &container(find(&objects, "Deployment", name))["lifecycle"]["preStop"]["sleep"]
            ["seconds"];
        assert!(
            seconds.as_i64().is_some_and(|s| s > 0),
            "{name} has no preStop sleep: {seconds}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Workload shapes

#[test]
fn stateful_sets_retain_their_volumes() {
    for (example, cloud) in examples() {
        for desired in of_kind(&rendered(&cloud), "StatefulSet") {
            let spec = &desired.object.data["spec"];
            let policy = &spec["persistentVolumeClaimRetentionPolicy"];
            assert_eq!(
                policy["whenDeleted"],
                "Retain",
                "{example}: {}",
                name(desired)
            );
            assert_eq!(
                policy["whenScaled"],
                "Retain",
                "{example}: {}",
                name(desired)
            );
            // Claim templates are immutable: no version label that would change on upgrade.
            let claim_labels = &spec["volumeClaimTemplates"][0]["metadata"]["labels"];
            assert!(
                claim_labels.get(keys::VERSION).is_none(),
                "{example}: {}",
                name(desired)
            );
            let service = spec["serviceName"].as_str().expect("serviceName");
            let headless =
                find(&rendered(&cloud), "Service", service).object.data["spec"]["clusterIP"]
                    .clone();
            assert_eq!(headless, "None");
        }
    }
}

#[test]
fn selectors_are_stable_across_versions() {
    let old = rendered(&example("production"));
    let mut cloud = example("production");
    cloud.spec.version = "5.10.0-r5000".to_owned();
    let new = rendered(&cloud);
    for (before, after) in workloads(&old).zip(workloads(&new)) {
        let selector = |d: &Desired| d.object.data["spec"]["selector"].clone();
        assert_eq!(selector(before), selector(after), "{}", name(before));
        assert!(selector(before)["matchLabels"].get(keys::VERSION).is_none());
    }
}

#[test]
fn production_is_highly_available() {
    let objects = rendered(&example("production"));
    let replicas = |kind_: &str, name_: &str| {
        find(&objects, kind_, name_).object.data["spec"]["replicas"].clone()
    };
    assert_eq!(replicas("Deployment", "prod-cloudmaster"), 3);
    assert_eq!(replicas("Deployment", "prod-haproxy"), 3);
    assert_eq!(replicas("StatefulSet", "prod-bynamo"), 3);
    assert_eq!(replicas("StatefulSet", "prod-minio"), 4);
    assert_eq!(replicas("StatefulSet", "prod-mysql"), 1);
    let nodes: Vec<&Desired> = of_kind(&objects, "Deployment")
        .filter(|d| {
            d.workload
                .as_ref()
                .is_some_and(|(c, _)| *c == Component::Node)
        })
        .collect();
    assert_eq!(nodes.len(), 6);
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(name(node), format!("prod-node-{i}"));
        assert_eq!(node.object.data["spec"]["replicas"], 1);
        assert_eq!(node.object.data["spec"]["strategy"]["type"], "Recreate");
        let selector = &node.object.data["spec"]["selector"]["matchLabels"];
        assert_eq!(selector[keys::NODE_INDEX], i.to_string());
        let claim = format!("prod-node-{i}-data");
        let volumes = pod_spec(node)["volumes"].as_array().expect("volumes");
        assert!(
            volumes
                .iter()
                .any(|v| v["persistentVolumeClaim"]["claimName"] == claim.as_str())
        );
        let pvc = find(&objects, "PersistentVolumeClaim", &claim);
        assert_eq!(
            pvc.object.data["spec"]["resources"]["requests"]["storage"],
            "2Ti"
        );
        assert_eq!(pvc.object.data["spec"]["storageClassName"], "fast-ssd");
    }
    for pdb in [
        "prod-cloudmaster",
        "prod-node",
        "prod-bynamo",
        "prod-minio",
        "prod-haproxy",
    ] {
        find(&objects, "PodDisruptionBudget", pdb);
    }
    assert!(of_kind(&objects, "PodDisruptionBudget").all(|d| name(d) != "prod-mysql"));
}

#[test]
fn minio_lists_every_replica_or_uses_a_single_drive() {
    let objects = rendered(&example("production"));
    let args = container(find(&objects, "StatefulSet", "prod-minio"))["args"].clone();
    assert_eq!(args[0], "server");
    assert_eq!(
        args[1],
        "http://prod-minio-{0...3}.prod-minio-headless.insync-prod.svc.cluster.local:9000/data"
    );
    let objects = rendered(&example("fcloud"));
    let args = container(find(&objects, "StatefulSet", "fcloud-minio"))["args"].clone();
    assert_eq!(args[1], "/data");
}

#[test]
fn frontend_service_follows_the_spec() {
    let objects = rendered(&example("fcloud"));
    let spec = &find(&objects, "Service", "fcloud-haproxy").object.data["spec"];
    assert_eq!(spec["type"], "NodePort");
    assert_eq!(spec["ports"][0]["port"], 443);
    assert_eq!(spec["ports"][0]["nodePort"], 30443);
    assert_eq!(spec["ports"][1]["port"], 6061);
    assert_eq!(spec["ports"][1]["nodePort"], 30661);
    let objects = rendered(&example("external-aws"));
    let service = find(&objects, "Service", "acme-haproxy");
    assert_eq!(service.object.data["spec"]["type"], "LoadBalancer");
    let annotations = service
        .object
        .metadata
        .annotations
        .clone()
        .unwrap_or_default();
    assert_eq!(
        annotations
            .get("service.beta.kubernetes.io/aws-load-balancer-type")
            .map(String::as_str),
        Some("nlb")
    );
}

#[test]
fn network_policies_admit_only_the_cloud_to_its_datastores() {
    let objects = rendered(&example("fcloud"));
    let policy = &find(&objects, "NetworkPolicy", "fcloud-mysql").object.data["spec"];
    assert_eq!(
        policy["podSelector"]["matchLabels"][keys::COMPONENT],
        "mysql"
    );
    let from = &policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"];
    assert_eq!(
        from,
        &serde_json::json!({keys::NAME: "insync", keys::INSTANCE: "fcloud"})
    );
    assert_eq!(policy["ingress"][0]["ports"][0]["port"], 3306);
    let front = &find(&objects, "NetworkPolicy", "fcloud-haproxy")
        .object
        .data["spec"];
    assert!(
        front["ingress"][0].get("from").is_none(),
        "the front end is open to clients"
    );
}

// ---------------------------------------------------------------------------------------------
// Wiring

#[test]
fn external_aws_runs_no_datastore_and_wires_the_secret_refs() {
    let objects = rendered(&example("external-aws"));
    assert_eq!(of_kind(&objects, "StatefulSet").count(), 0);
    assert_eq!(
        of_kind(&objects, "Secret").count(),
        0,
        "nothing to generate"
    );
    let master = find(&objects, "Deployment", "acme-cloudmaster");
    let env = env(master);
    for want in [
        "INSYNC_DB_USER<-acme-rds/username",
        "INSYNC_DB_PASSWORD<-acme-rds/password",
        "INSYNC_METADATA_ACCESS_KEY_ID<-acme-aws/accessKeyId",
        "INSYNC_METADATA_SECRET_ACCESS_KEY<-acme-aws/secretAccessKey",
        "INSYNC_OBJECTSTORE_ACCESS_KEY_ID<-acme-aws/accessKeyId",
        "INSYNC_OBJECTSTORE_SECRET_ACCESS_KEY<-acme-aws/secretAccessKey",
    ] {
        assert!(
            env.contains(&want.to_owned()),
            "{want} missing from {env:#?}"
        );
    }
    let config = config_text(&objects, "acme-cloudmaster");
    for want in [
        "host = acme.c1abcdefghij.us-east-1.rds.amazonaws.com",
        "endpoint = https://dynamodb.us-east-1.amazonaws.com",
        "table_prefix = acme-",
        "bucket = acme-insync-backups",
        "hostname = acme.drtst.org",
    ] {
        assert!(config.contains(want), "{want} missing from\n{config}");
    }
    let node_env = self::env(find(&objects, "Deployment", "acme-node-0"));
    assert!(
        node_env.contains(&"INSYNC_OBJECTSTORE_ACCESS_KEY_ID<-acme-aws/accessKeyId".to_owned())
    );
    let policies: Vec<&str> = of_kind(&objects, "NetworkPolicy").map(name).collect();
    assert_eq!(
        policies,
        [
            "acme-default-deny",
            "acme-egress",
            "acme-cloudmaster",
            "acme-node",
            "acme-haproxy"
        ]
    );
}

#[test]
fn managed_datastores_are_wired_with_generated_credentials() {
    let objects = rendered(&example("fcloud"));
    let env = env(find(&objects, "Deployment", "fcloud-cloudmaster"));
    for want in [
        "INSYNC_DB_USER=insync",
        "INSYNC_DB_PASSWORD<-fcloud-mysql-credentials/password",
        "INSYNC_METADATA_ACCESS_KEY_ID<-fcloud-bynamo-credentials/accessKeyId",
        "INSYNC_OBJECTSTORE_SECRET_ACCESS_KEY<-fcloud-minio-credentials/secretAccessKey",
    ] {
        assert!(
            env.contains(&want.to_owned()),
            "{want} missing from {env:#?}"
        );
    }
    let config = config_text(&objects, "fcloud-cloudmaster");
    assert!(
        config.contains("host = fcloud-mysql.fcloud.svc.cluster.local"),
        "{config}"
    );
    assert!(
        config.contains("endpoint = http://fcloud-minio.fcloud.svc.cluster.local:9000"),
        "{config}"
    );
    let node = config_text(&objects, "fcloud-node");
    assert!(
        node.contains("address = fcloud-cloudmaster.fcloud.svc.cluster.local:8443"),
        "{node}"
    );
    let mysql_env = self::env(find(&objects, "StatefulSet", "fcloud-mysql"));
    assert!(
        mysql_env
            .contains(&"MYSQL_ROOT_PASSWORD<-fcloud-mysql-credentials/rootPassword".to_owned())
    );
}

#[test]
fn a_shared_filesystem_is_mounted_into_cloudmaster_and_nodes() {
    let cloud = cloud(|s| {
        s.object_store = ObjectStoreSpec {
            minio: None,
            s3: None,
            shared_filesystem: Some(SharedFilesystem {
                claim_name: "backups".to_owned(),
            }),
        };
    });
    let objects = rendered(&cloud);
    assert!(of_kind(&objects, "StatefulSet").all(|d| name(d) != "t1-minio"));
    for workload in ["t1-cloudmaster", "t1-node-0", "t1-node-1"] {
        let desired = find(&objects, "Deployment", workload);
        let volumes = pod_spec(desired)["volumes"].as_array().expect("volumes");
        assert!(
            volumes
                .iter()
                .any(|v| v["persistentVolumeClaim"]["claimName"] == "backups"),
            "{workload}"
        );
        let mounts = container(desired)["volumeMounts"]
            .as_array()
            .expect("mounts");
        assert!(
            mounts
                .iter()
                .any(|m| m["mountPath"] == "/mnt/insync-objects"),
            "{workload}"
        );
    }
    assert!(config_text(&objects, "t1-cloudmaster").contains("type = filesystem"));
}

#[test]
fn s3_without_secret_ref_uses_the_pod_identity() {
    let cloud = cloud(|s| {
        s.object_store = ObjectStoreSpec {
            minio: None,
            s3: Some(ExternalS3 {
                bucket: "b-1".to_owned(),
                region: "eu-west-1".to_owned(),
                endpoint: None,
                secret_ref: None,
            }),
            shared_filesystem: None,
        };
        s.database.managed = None;
        s.database.external = Some(insync_operator::api::ExternalDatabase {
            host: "db.example.com".to_owned(),
            port: 3307,
            database: "cloud".to_owned(),
            secret_ref: SecretRef {
                name: "db".to_owned(),
            },
        });
    });
    let objects = rendered(&cloud);
    let env = env(find(&objects, "Deployment", "t1-cloudmaster"));
    assert!(
        env.iter().all(|e| !e.starts_with("INSYNC_OBJECTSTORE_")),
        "{env:#?}"
    );
    let config = config_text(&objects, "t1-cloudmaster");
    assert!(
        config.contains("port = 3307") && config.contains("name = cloud"),
        "{config}"
    );
}

// ---------------------------------------------------------------------------------------------
// Rollouts

#[test]
fn pinned_tags_keep_a_workload_exactly_as_it_was() {
    let old = rendered(&example("production"));
    let mut cloud = example("production");
    cloud.spec.version = "5.10.0-r5000".to_owned();
    let new = pinned(
        &cloud,
        &[
            ("node-4", VERSION),
            ("node-5", VERSION),
            ("haproxy", VERSION),
        ],
    );
    for workload in ["prod-node-4", "prod-node-5", "prod-haproxy"] {
        let before = find(&old, "Deployment", workload);
        let after = find(&new, "Deployment", workload);
        assert_eq!(
            before.object, after.object,
            "{workload} must not change while pinned"
        );
    }
    for workload in ["prod-cloudmaster", "prod-node-0", "prod-node-3"] {
        assert_eq!(
            image_tag(find(&new, "Deployment", workload)),
            "5.10.0-r5000",
            "{workload}"
        );
    }
    assert_eq!(
        image_tag(find(&new, "StatefulSet", "prod-bynamo")),
        "5.10.0-r5000"
    );
    // Datastores versioned on their own do not move with spec.version.
    for sts in ["prod-mysql", "prod-minio"] {
        assert_eq!(
            find(&old, "StatefulSet", sts).object,
            find(&new, "StatefulSet", sts).object
        );
    }
}

#[test]
fn config_hash_follows_the_mounted_config() {
    let base = rendered(&example("fcloud"));
    let hashes = |objects: &[Desired]| -> BTreeMap<String, String> {
        workloads(objects)
            .filter(|d| d.workload.as_ref().is_some_and(|(c, _)| !c.is_datastore()))
            .map(|d| (name(d).to_owned(), config_hash(d).to_owned()))
            .collect()
    };
    let before = hashes(&base);
    assert_eq!(before.len(), 4, "cloudmaster, 2 nodes, haproxy");

    let mut bumped = example("fcloud");
    bumped.spec.version = "5.10.0-r5000".to_owned();
    assert_eq!(
        hashes(&rendered(&bumped)),
        before,
        "a version bump alone changes no config"
    );

    let mut moved = example("fcloud");
    moved.spec.dns.as_mut().expect("dns").domain = "example.org".to_owned();
    let after = hashes(&rendered(&moved));
    for workload in ["fcloud-cloudmaster", "fcloud-node-0", "fcloud-node-1"] {
        assert_ne!(
            after[workload], before[workload],
            "{workload} must roll on a config change"
        );
    }
    assert_eq!(
        after["fcloud-haproxy"], before["fcloud-haproxy"],
        "haproxy.cfg did not change"
    );

    let mut grown = example("fcloud");
    grown.spec.nodes.replicas = 3;
    let after = hashes(&rendered(&grown));
    assert_eq!(
        after["fcloud-haproxy"], before["fcloud-haproxy"],
        "HAProxy finds nodes through DNS: a new node restarts no HAProxy"
    );
    assert_eq!(after["fcloud-cloudmaster"], before["fcloud-cloudmaster"]);
}

#[test]
fn invalid_clouds_are_refused() {
    let cloud = cloud(|s| s.nodes.replicas = 101);
    let error = render::render(&cloud, &RenderOptions::default()).expect_err("invalid");
    assert!(error.to_string().contains("spec.nodes.replicas"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// What the examples ask of a cluster

/// A kind node on a laptop with 2 cores and 8 GiB: kind reserves nothing for the system, so
/// the node's allocatable is the machine, less the kubelet's default hard eviction threshold
/// (`memory.available<100Mi`; kind may set it to 0, counted anyway).
const LAPTOP_CPU_MILLI: u64 = 2_000;
const LAPTOP_MEMORY_MI: u64 = 8 * 1024 - 100;
/// What the kind node's own pods request: the control plane's static pods as kubeadm writes
/// them (kube-apiserver 250m, kube-controller-manager 200m, kube-scheduler 100m, etcd 100m and
/// 100Mi), CoreDNS's two replicas (100m and 70Mi each) and kindnet (100m, 50Mi); kube-proxy and
/// the local-path provisioner request nothing. 250 + 200 + 100 + 100 + 2 × 100 + 100 = 950m,
/// 100 + 2 × 70 + 50 = 290Mi.
const KIND_SYSTEM_CPU_MILLI: u64 = 250 + 200 + 100 + 100 + 2 * 100 + 100;
const KIND_SYSTEM_MEMORY_MI: u64 = 100 + 2 * 70 + 50;
const MI: u64 = 1024 * 1024;
const GI: f64 = 1024.0 * 1024.0 * 1024.0;

/// A quantity ("250m", "2", "0.5", "512Mi", "2Ti") in thousandths of its unit, exactly.
fn thousandths(text: &str) -> u128 {
    const SUFFIXES: [(&str, u128, u128); 10] = [
        ("Ki", 1 << 10, 1),
        ("Mi", 1 << 20, 1),
        ("Gi", 1 << 30, 1),
        ("Ti", 1 << 40, 1),
        ("m", 1, 1000),
        ("k", 1_000, 1),
        ("M", 1_000_000, 1),
        ("G", 1_000_000_000, 1),
        ("T", 1_000_000_000_000, 1),
        ("", 1, 1),
    ];
    let (number, multiplier, divisor) = SUFFIXES
        .iter()
        .find_map(|(suffix, mul, div)| text.strip_suffix(suffix).map(|n| (n, *mul, *div)))
        .expect("the empty suffix matches");
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits: u128 = format!("{whole}{fraction}")
        .parse()
        .unwrap_or_else(|_| panic!("{text:?} is not a quantity this test reads"));
    let scale = 10u128.pow(u32::try_from(fraction.len()).expect("short fraction"));
    digits * multiplier * 1000 / (scale * divisor)
}

fn milli_cpu(text: &str) -> u64 {
    u64::try_from(thousandths(text)).expect("fits")
}

fn bytes(text: &str) -> u64 {
    u64::try_from(thousandths(text) / 1000).expect("fits")
}

/// What one container requests: (milli-CPU, bytes). Where requests leave a resource out and
/// limits set it, the API server defaults the request to the limit.
fn container_requests(container: &Value) -> (u64, u64) {
    let resources = &container["resources"];
    let get = |resource: &str| {
        resources["requests"][resource]
            .as_str()
            .or_else(|| resources["limits"][resource].as_str())
    };
    (
        get("cpu").map_or(0, milli_cpu),
        get("memory").map_or(0, bytes),
    )
}

/// What a pod requests the way the scheduler counts it: the larger of its running containers
/// (app containers plus restartable init containers, i.e. sidecars) and the peak of its init
/// containers (each with the sidecars started before it), per resource, plus the pod overhead.
fn pod_requests(pod: &Value) -> (u64, u64) {
    let add = |a: (u64, u64), b: (u64, u64)| (a.0 + b.0, a.1 + b.1);
    let max = |a: (u64, u64), b: (u64, u64)| (a.0.max(b.0), a.1.max(b.1));
    let mut sidecars = (0, 0);
    let mut init_peak = (0, 0);
    for init in pod["initContainers"].as_array().into_iter().flatten() {
        if init["restartPolicy"] == "Always" {
            sidecars = add(sidecars, container_requests(init));
            init_peak = max(init_peak, sidecars);
        } else {
            init_peak = max(init_peak, add(sidecars, container_requests(init)));
        }
    }
    let running = pod["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(container_requests)
        .fold(sidecars, add);
    let overhead = &pod["overhead"];
    let overhead = (
        overhead["cpu"].as_str().map_or(0, milli_cpu),
        overhead["memory"].as_str().map_or(0, bytes),
    );
    add(max(running, init_peak), overhead)
}

/// What a rendered cloud asks of the cluster.
#[derive(Debug, Default)]
struct Demand {
    pods: u64,
    cpu_milli: u64,
    memory: u64,
    /// The most a rollout adds on top: the cloud rolls one workload at a time, and only
    /// Deployments with `maxSurge` run more pods than their replicas while they roll.
    surge_cpu_milli: u64,
    surge_memory: u64,
    claims: u64,
    storage: u64,
    /// `workload: replicas × (milli-CPU, MiB)`, for messages.
    breakdown: Vec<String>,
}

fn demand(objects: &[Desired]) -> Demand {
    let mut total = Demand::default();
    for desired in workloads(objects) {
        let spec = &desired.object.data["spec"];
        let replicas = spec["replicas"].as_u64().unwrap_or(1);
        let (cpu, memory) = pod_requests(&spec["template"]["spec"]);
        total.pods += replicas;
        total.cpu_milli += replicas * cpu;
        total.memory += replicas * memory;
        total.breakdown.push(format!(
            "{}: {replicas} × ({cpu}m, {}Mi)",
            name(desired),
            memory / MI
        ));
        let strategy = &spec["strategy"];
        if kind(desired) == "Deployment" && strategy["type"] != "Recreate" {
            // maxSurge: a count, or a percentage of the replicas rounded up (default 25%).
            let surge = match &strategy["rollingUpdate"]["maxSurge"] {
                Value::Number(n) => n.as_u64().expect("a count"),
                other => {
                    let percent: u64 = other
                        .as_str()
                        .unwrap_or("25%")
                        .trim_end_matches('%')
                        .parse()
                        .expect("a percentage");
                    (replicas * percent).div_ceil(100)
                }
            };
            total.surge_cpu_milli = total.surge_cpu_milli.max(surge * cpu);
            total.surge_memory = total.surge_memory.max(surge * memory);
        }
        for claim in spec["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let size = claim["spec"]["resources"]["requests"]["storage"]
                .as_str()
                .expect("claim size");
            total.claims += replicas;
            total.storage += replicas * bytes(size);
        }
    }
    for claim in of_kind(objects, "PersistentVolumeClaim") {
        let size = claim.object.data["spec"]["resources"]["requests"]["storage"]
            .as_str()
            .expect("claim size");
        total.claims += 1;
        total.storage += bytes(size);
    }
    total
}

/// The operator's pods as the chart installs them by default: (milli-CPU, bytes).
fn operator_chart_requests() -> (u64, u64) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/insync-operator/values.yaml");
    let values: Value = serde_yaml::from_str(
        &std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())),
    )
    .expect("values.yaml is YAML");
    let replicas = values["replicas"].as_u64().unwrap_or(1);
    // `resources` in the values has the shape of a container's, and the chart copies it there.
    let (cpu, memory) = container_requests(&values);
    (replicas * cpu, replicas * memory)
}

#[test]
fn quantities_are_read_exactly() {
    assert_eq!(milli_cpu("250m"), 250);
    assert_eq!(milli_cpu("2"), 2000);
    assert_eq!(milli_cpu("0.5"), 500);
    assert_eq!(bytes("512Mi"), 512 * MI);
    assert_eq!(bytes("1.5Gi"), 1536 * MI);
    assert_eq!(bytes("2Ti"), 2 << 40);
    assert_eq!(bytes("1G"), 1_000_000_000);
}

#[test]
fn pods_are_counted_the_way_the_scheduler_counts_them() {
    let container = |cpu: &str, memory: &str| {
        let requests = serde_json::json!({"cpu": cpu, "memory": memory});
        serde_json::json!({"resources": {"requests": requests}})
    };
    let mut sidecar = container("50m", "32Mi");
    sidecar["restartPolicy"] = "Always".into();
    let pod = serde_json::json!({
        // the first init container's 1 CPU outweighs the app; the second runs beside the sidecar
        "initContainers": [container("1", "64Mi"), sidecar, container("100m", "512Mi")],
        "containers": [container("200m", "128Mi"), container("300m", "128Mi")],
    });
    assert_eq!(pod_requests(&pod), (1000, (512 + 32) * MI));
    let limits_only =
        serde_json::json!({"containers": [{"resources": {"limits": {"memory": "1Gi"}}}]});
    assert_eq!(pod_requests(&limits_only), (0, 1024 * MI));
}

/// The laptop example as written, not only as `make demo` places it: with the kind node's own
/// pods and the operator, fcloud and the extra pod of a rollout fit a 2-core, 8 GiB node.
#[test]
fn fcloud_fits_a_two_core_eight_gib_kind_node_with_the_operator() {
    let fcloud = demand(&rendered(&example("fcloud")));
    let (operator_cpu, operator_memory) = operator_chart_requests();
    let cpu_budget = LAPTOP_CPU_MILLI - KIND_SYSTEM_CPU_MILLI - operator_cpu;
    let memory_budget = (LAPTOP_MEMORY_MI - KIND_SYSTEM_MEMORY_MI) * MI - operator_memory;
    let cpu = fcloud.cpu_milli + fcloud.surge_cpu_milli;
    let memory = fcloud.memory + fcloud.surge_memory;
    assert!(
        cpu <= cpu_budget,
        "fcloud asks for {cpu}m CPU while it rolls ({}m + {}m), more than the {cpu_budget}m a \
         2-core kind node has left after its own pods ({KIND_SYSTEM_CPU_MILLI}m) and the \
         operator ({operator_cpu}m):\n{:#?}",
        fcloud.cpu_milli,
        fcloud.surge_cpu_milli,
        fcloud.breakdown
    );
    assert!(
        memory <= memory_budget,
        "fcloud asks for {}Mi of memory while it rolls, more than the {}Mi left on an 8 GiB kind \
         node:\n{:#?}",
        memory / MI,
        memory_budget / MI,
        fcloud.breakdown
    );
}

/// `0.8`, `1.81` -> `1.8`, `20`: how the examples' comments write a figure.
fn figure(value: f64) -> String {
    let text = if value < 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.1}")
    };
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_owned()
}

/// The comment at the top of fcloud and production says what the cloud asks of the cluster;
/// it must say what the renderer makes of the file.
#[test]
fn examples_state_what_they_ask_of_the_cluster() {
    for name in ["fcloud", "production"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/{name}.yaml"));
        let text = std::fs::read_to_string(&path).expect("example is readable");
        let comment = text
            .lines()
            .take_while(|line| line.starts_with('#'))
            .map(|line| line.trim_start_matches('#').trim())
            .collect::<Vec<_>>()
            .join(" ");
        let d = demand(&rendered(&example(name)));
        let (cpu, memory, surge_cpu, surge_memory, storage) = (
            d.cpu_milli as f64 / 1000.0,
            d.memory as f64 / GI,
            d.surge_cpu_milli as f64 / 1000.0,
            d.surge_memory as f64 / GI,
            d.storage as f64 / GI,
        );
        let storage = if storage >= 1024.0 {
            format!("{} TiB", figure(storage / 1024.0))
        } else {
            format!("{} GiB", figure(storage))
        };
        for want in [
            format!(
                "{} CPUs and {} GiB of memory for its {} pods",
                figure(cpu),
                figure(memory),
                d.pods
            ),
            format!(
                "{} CPUs and {} GiB more while",
                figure(surge_cpu),
                figure(surge_memory)
            ),
            format!("{storage} of volumes in {} claims", d.claims),
        ] {
            assert!(
                comment.contains(&want),
                "examples/{name}.yaml should say \"{want}\" in its opening comment:\n{comment}\n{:#?}",
                d.breakdown
            );
        }
    }
}
