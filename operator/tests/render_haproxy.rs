//! Every generated `haproxy.cfg` must pass the real `haproxy -c` (Debian's haproxy package).

use std::path::{Path, PathBuf};
use std::process::Command;

use insync_operator::api::{InSyncCloud, InSyncCloudSpec, ServiceType};
use insync_operator::render::{self, RenderOptions, haproxy_cfg, keys};

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
            let text = std::fs::read_to_string(&path).expect("example is readable");
            let cloud = serde_yaml::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not an InSyncCloud: {e}", path.display()));
            (
                path.file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                cloud,
            )
        })
        .collect()
}

fn cloud(configure: impl FnOnce(&mut InSyncCloudSpec)) -> InSyncCloud {
    let mut spec = InSyncCloudSpec::with_version("5.9.1-r4178");
    configure(&mut spec);
    let mut cloud = InSyncCloud::new("variant", spec);
    cloud.metadata.namespace = Some("variants".to_owned());
    cloud
}

/// Runs `haproxy -c -f` on the config; fails on errors and on warnings.
fn check(name: &str, cfg: &str) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join(format!("{name}.cfg"));
    std::fs::write(&path, cfg).expect("config is writable");
    let output = match Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
    {
        Ok(output) => output,
        Err(e) => panic!(
            "cannot run `haproxy` ({e}): these tests need the real HAProxy; install it with \
             `apt-get install -y haproxy`"
        ),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "haproxy -c rejected {name}:\n{text}\n--- config ---\n{cfg}"
    );
    assert!(
        !text.contains("[WARNING]") && !text.contains("[ALERT]"),
        "haproxy -c warned about {name}:\n{text}\n--- config ---\n{cfg}"
    );
}

#[test]
fn examples_pass_haproxy_check() {
    for (name, cloud) in examples() {
        check(&name, &haproxy_cfg(&cloud));
    }
}

#[test]
fn variants_pass_haproxy_check() {
    let variants = [
        (
            "nodeport",
            cloud(|s| {
                s.frontend.service.type_ = ServiceType::NodePort;
                s.frontend.service.master_node_port = Some(30443);
                s.frontend.service.storage_node_port = Some(30661);
            }),
        ),
        (
            "clusterip",
            cloud(|s| s.frontend.service.type_ = ServiceType::ClusterIP),
        ),
        ("no-nodes", cloud(|s| s.nodes.replicas = 0)),
        ("hundred-nodes", cloud(|s| s.nodes.replicas = 100)),
        (
            "odd-ports",
            cloud(|s| {
                s.frontend.service.master_port = 8443;
                s.frontend.service.storage_port = 443;
            }),
        ),
    ];
    for (name, cloud) in variants {
        insync_operator::api::validate::validate(&cloud).expect("variant is valid");
        check(name, &haproxy_cfg(&cloud));
    }
}

#[test]
fn storage_nodes_are_found_through_dns_of_their_headless_service() {
    let cfg = haproxy_cfg(&cloud(|s| s.nodes.replicas = 3));
    let templates: Vec<&str> = cfg
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("server-template "))
        .collect();
    // One slot per node the CRD allows, filled from the SRV records of the `storage` port.
    assert_eq!(
        templates,
        ["server-template node 100 _storage._tcp.variant-node.variants.svc.cluster.local"],
        "{cfg}"
    );
    assert!(
        !cfg.contains("server node-"),
        "no server line per node:\n{cfg}"
    );
    assert!(cfg.contains("server cloudmaster variant-cloudmaster.variants.svc.cluster.local:8443"));
}

/// Scaling storage nodes must not restart HAProxy (it would drop every client's TCP session):
/// its objects, and so its pod template, do not depend on the number of nodes.
#[test]
fn scaling_storage_nodes_changes_nothing_haproxy_runs() {
    let haproxy_objects = |replicas: i32| -> Vec<serde_json::Value> {
        let cloud = cloud(|s| s.nodes.replicas = replicas);
        render::render(&cloud, &RenderOptions::default())
            .expect("renders")
            .into_iter()
            .filter(|d| {
                d.object
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(keys::COMPONENT))
                    .is_some_and(|c| c == "haproxy")
            })
            .map(|d| serde_json::to_value(&d.object).expect("serializes"))
            .collect()
    };
    let two = haproxy_objects(2);
    assert!(two.len() >= 3, "ConfigMap, Service, Deployment at least");
    for replicas in [0, 1, 3, 100] {
        assert_eq!(haproxy_objects(replicas), two, "{replicas} nodes");
    }
}
