//! The `insync-operator` binary as a user runs it.

use std::io::Write as _;
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_insync-operator"))
}

fn example(name: &str) -> String {
    format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn crd_subcommand_prints_the_committed_crd() {
    let out = bin().arg("crd").output().expect("run");
    assert!(out.status.success());
    let committed = std::fs::read_to_string(format!(
        "{}/../crds/insyncclouds.insync.dev.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("crd");
    assert_eq!(String::from_utf8_lossy(&out.stdout), committed);
}

#[test]
fn render_prints_the_whole_cloud() {
    let out = bin()
        .args(["render", "-f", &example("fcloud.yaml")])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let kinds: Vec<String> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            serde::Deserialize::deserialize(d)
                .map(|v: serde_yaml::Value| v["kind"].as_str().unwrap_or_default().to_owned())
                .expect("yaml")
        })
        .collect();
    for kind in [
        "Deployment",
        "StatefulSet",
        "Service",
        "ConfigMap",
        "PersistentVolumeClaim",
        "Secret",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "render of fcloud has no {kind}: {kinds:?}"
        );
    }
}

#[test]
fn render_reads_stdin() {
    let mut child = bin()
        .args(["render", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let manifest = std::fs::read(example("production.yaml")).expect("example");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&manifest)
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("name: prod-cloudmaster"));
}

#[test]
fn render_of_a_broken_file_lists_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: insync.dev/v1alpha1\nkind: InSyncCloud\nmetadata: {name: Bad, namespace: x}\nspec:\n  version: ''\n  objectStore: {minio: {replicas: 2}}\n---\napiVersion: insync.dev/v1alpha1\nkind: InSyncCloud\nmetadata: {name: other, namespace: x}\nspec: {version: v1, master: {replicas: 0}}\n",
    )
    .expect("write");
    let out = bin()
        .args(["render", "-f"])
        .arg(&file)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "x/Bad is invalid (3 problems)",
        "metadata.name",
        "spec.version",
        "spec.objectStore.minio.replicas",
        "x/other is invalid (1 problem)",
        "spec.master.replicas",
    ] {
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    }
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing is printed for an invalid stream"
    );
}

#[test]
fn render_names_the_field_of_a_type_error() {
    let mut child = bin()
        .args(["render", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(b"kind: InSyncCloud\nmetadata: {name: a}\nspec: {version: v1, nodes: {replicas: many}}\n").expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.nodes.replicas: invalid type"));
}

#[test]
fn render_of_a_missing_file_is_a_clear_error() {
    let out = bin()
        .args(["render", "-f", "/nonexistent/cloud.yaml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/cloud.yaml"));
}

/// `plan` offline: a version bump of fcloud, through stdin, against the example as it is.
#[test]
fn plan_previews_a_version_bump_offline() {
    let bumped = std::fs::read_to_string(example("fcloud.yaml"))
        .expect("example")
        .replace("5.9.1-r4178", "5.9.2-r4190");
    let mut child = bin()
        .args([
            "plan",
            "-f",
            "-",
            "--from",
            &example("fcloud.yaml"),
            "-o",
            "json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bumped.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let previews: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let steps: Vec<(String, String)> = previews[0]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .flat_map(|s| {
            let phase = s["phase"].as_str().unwrap_or_default().to_owned();
            s["workloads"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |w| {
                    (
                        phase.clone(),
                        w["object"].as_str().unwrap_or_default().to_owned(),
                    )
                })
        })
        .collect();
    let order: Vec<&str> = steps.iter().map(|(_, o)| o.as_str()).collect();
    assert_eq!(
        order,
        [
            "StatefulSet/fcloud-bynamo",
            "Deployment/fcloud-cloudmaster",
            "Deployment/fcloud-node-0",
            "Deployment/fcloud-node-1",
            "Deployment/fcloud-haproxy"
        ]
    );
    assert_eq!(previews[0]["fromVersion"], "5.9.1-r4178");
}

#[test]
fn plan_refuses_an_invalid_cloud_with_exit_code_2() {
    let broken = std::fs::read_to_string(example("fcloud.yaml"))
        .expect("example")
        .replace("healthTimeout: 5m", "healthTimeout: soon");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, broken).expect("write");
    let out = bin()
        .args([
            "plan",
            "-f",
            path.to_str().unwrap_or_default(),
            "--from",
            &example("fcloud.yaml"),
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("healthTimeout"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn render_refuses_strings_that_would_inject_config_sql_or_options() {
    let mut child = bin()
        .args(["render", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(
            b"apiVersion: insync.dev/v1alpha1\nkind: InSyncCloud\nmetadata: {name: acme, namespace: x}\nspec:\n  version: v1\n  database: {external: {host: \"db.example.com\\n[objectstore]\\ntype = filesystem\", database: '--all-databases', secretRef: {name: db}}}\n  metadataStore: {external: {region: us-east-1, tablePrefix: '--help'}}\n  restore: {backup: '../nightly'}\n",
        )
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "x/acme is invalid (4 problems)",
        "spec.database.external.host",
        "spec.database.external.database",
        "spec.metadataStore.external.tablePrefix",
        "spec.restore.backup",
    ] {
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    }
    assert!(
        out.stdout.is_empty(),
        "nothing is printed for an invalid cloud"
    );
}
