//! The Helm chart, checked with a real `helm`: `helm lint --strict` for the value sets people
//! use, the schema refusing bad values, and `helm template` output asserted object by object
//! (least-privilege RBAC, namespace mode, leader election, restricted pods).
//!
//! helm is found via `$HELM`, then the pinned one that `e2e/cluster install-tools` links into
//! `~/.cache/insync-e2e/bin/path/`, then `PATH`. Without helm these tests fail: a chart nobody
//! linted is not tested.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_yaml::Value;

const RELEASE: &str = "t";
const RELEASE_NAMESPACE: &str = "insync-system";
const FULLNAME: &str = "t-insync-operator";
/// Cluster-scoped objects carry the release namespace in their names.
const CLUSTER_NAME: &str = "t-insync-operator-insync-system";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart_dir() -> PathBuf {
    repo_root().join("charts/insync-operator")
}

/// Where `e2e/cluster install-tools` links the pinned tools (helm among them): the `bin/path`
/// folder of `$INSYNC_E2E_CACHE`, else of `~/.cache/insync-e2e`. Kept in step with the script's
/// `TOOLS` (a test below asks the script itself).
fn pinned_tools_dir() -> Option<PathBuf> {
    let cache = std::env::var_os("INSYNC_E2E_CACHE")
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/insync-e2e"))
        })?;
    Some(cache.join("bin/path"))
}

fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        if let Some(path) = std::env::var_os("HELM").filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "$HELM is set to {} but no file is there",
                path.display()
            );
            return path;
        }
        // The pinned helm first (the version the chart is tested with), then whatever is on PATH.
        let pinned = pinned_tools_dir().map(|dir| dir.join("helm"));
        let on_path = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
            .map(|dir| dir.join("helm"));
        pinned.into_iter().chain(on_path).find(|candidate| candidate.is_file()).unwrap_or_else(|| {
            panic!(
                "helm not found: set $HELM, put helm on PATH, or run `e2e/cluster install-tools` \
                 (it links the pinned helm into {}); `make test` does this",
                pinned_tools_dir().map(|d| d.display().to_string()).unwrap_or_default()
            )
        })
    })
}

/// The chart tests look for helm where `e2e/cluster install-tools` puts it. They once looked in
/// `~/.cache/insync-e2e/tools/`, which nothing creates, and passed only on machines that had an
/// older install there.
#[test]
fn helm_is_looked_up_where_install_tools_links_it() {
    let out = Command::new(repo_root().join("e2e/cluster"))
        .arg("env")
        .output()
        .expect("run e2e/cluster env");
    assert!(
        out.status.success(),
        "e2e/cluster env failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = String::from_utf8(out.stdout).expect("UTF-8");
    let tools = env
        .lines()
        .find_map(|line| line.strip_prefix("export PATH=")?.strip_suffix(":$PATH"))
        .unwrap_or_else(|| panic!("e2e/cluster env prints no PATH line:\n{env}"));
    assert_eq!(
        Some(PathBuf::from(tools)),
        pinned_tools_dir(),
        "the chart tests and e2e/cluster disagree on where helm is"
    );
}

/// Helm's own config, cache and data go to a throwaway folder so a user's repositories and
/// plugins cannot change the result.
fn helm_home() -> &'static Path {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    HOME.get_or_init(|| tempfile::tempdir().expect("temporary helm home"))
        .path()
}

fn run_helm(args: &[&str]) -> Output {
    let home = helm_home();
    Command::new(helm())
        .args(args)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", helm().display()))
}

fn set_args(sets: &[&str]) -> Vec<String> {
    sets.iter()
        .flat_map(|s| ["--set".to_owned(), (*s).to_owned()])
        .collect()
}

fn lint(sets: &[&str]) -> (bool, String) {
    let chart = chart_dir();
    let mut args = vec![
        "lint".to_owned(),
        "--strict".to_owned(),
        chart.to_string_lossy().into_owned(),
    ];
    args.extend(set_args(sets));
    let out = run_helm(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Every object `helm template` renders (hooks and tests included) for these `--set`s.
fn template(sets: &[&str]) -> Vec<Value> {
    let chart = chart_dir();
    let mut args = vec![
        "template".to_owned(),
        RELEASE.to_owned(),
        chart.to_string_lossy().into_owned(),
        "--namespace".to_owned(),
        RELEASE_NAMESPACE.to_owned(),
    ];
    args.extend(set_args(sets));
    let out = run_helm(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "helm template {sets:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("helm prints UTF-8");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("helm template prints valid YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path)?.as_str()
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(*key))
}

fn seq<'a>(v: &'a Value, path: &[&str]) -> Vec<&'a Value> {
    get(v, path)
        .and_then(Value::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

fn strings(v: &Value, path: &[&str]) -> Vec<String> {
    seq(v, path)
        .into_iter()
        .filter_map(|x| x.as_str().map(str::to_owned))
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects
        .iter()
        .filter(|o| s(o, &["kind"]) == Some(kind))
        .collect()
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| s(o, &["kind"]) == Some(kind) && s(o, &["metadata", "name"]) == Some(name))
        .unwrap_or_else(|| {
            let have: Vec<_> = objects
                .iter()
                .map(|o| {
                    format!(
                        "{}/{}",
                        s(o, &["kind"]).unwrap_or("?"),
                        s(o, &["metadata", "name"]).unwrap_or("?")
                    )
                })
                .collect();
            panic!("no {kind}/{name} rendered; have {have:?}")
        })
}

/// A role's rules flattened to `(apiGroup, resource, verb)` triples.
fn permissions(role: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in seq(role, &["rules"]) {
        for group in strings(rule, &["apiGroups"]) {
            for resource in strings(rule, &["resources"]) {
                for verb in strings(rule, &["verbs"]) {
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

fn triples(table: &[(&str, &[&str], &[&str])]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for (group, resources, verbs) in table {
        for resource in *resources {
            for verb in *verbs {
                out.insert((
                    (*group).to_owned(),
                    (*resource).to_owned(),
                    (*verb).to_owned(),
                ));
            }
        }
    }
    out
}

/// Exactly what the operator does to clouds and their children.
fn expected_main_permissions() -> BTreeSet<(String, String, String)> {
    const CRUD: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];
    triples(&[
        (
            "insync.dev",
            &["insyncclouds"],
            &["get", "list", "watch", "patch", "update"],
        ),
        (
            "insync.dev",
            &["insyncclouds/status"],
            &["get", "patch", "update"],
        ),
        ("insync.dev", &["insyncclouds/finalizers"], &["update"]),
        (
            "insync.dev",
            &["insynccloudbackups"],
            // patch: the schedule annotates a backup (expired, verification asked for).
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        ("insync.dev", &["insynccloudbackups/status"], &["patch"]),
        (
            "insync.dev",
            &["insynccloudbackups/finalizers"],
            &["update"],
        ),
        // delete: a failed deletion Job, or the last verification's, makes way for a new one.
        (
            "batch",
            &["jobs"],
            &["get", "list", "watch", "create", "delete"],
        ),
        ("apps", &["deployments", "statefulsets"], CRUD),
        ("", &["services", "configmaps"], CRUD),
        // Generated credentials are created once and never changed or deleted: no patch or
        // delete on Secrets (issue 18, item 3: both were granted and never used).
        ("", &["secrets"], &["get", "list", "watch", "create"]),
        (
            "",
            &["persistentvolumeclaims"],
            &["get", "list", "watch", "create", "patch"],
        ),
        ("", &["pods"], &["list", "watch"]),
        ("policy", &["poddisruptionbudgets"], CRUD),
        ("networking.k8s.io", &["networkpolicies"], CRUD),
        ("events.k8s.io", &["events"], &["create", "patch"]),
    ])
}

fn operator_container(objects: &[Value]) -> &Value {
    let deployment = named(objects, "Deployment", FULLNAME);
    let containers = seq(deployment, &["spec", "template", "spec", "containers"]);
    assert_eq!(containers.len(), 1, "one container in the operator pod");
    containers[0]
}

fn args(objects: &[Value]) -> Vec<String> {
    strings(operator_container(objects), &["args"])
}

fn env_names(objects: &[Value]) -> Vec<String> {
    seq(operator_container(objects), &["env"])
        .into_iter()
        .filter_map(|e| s(e, &["name"]).map(str::to_owned))
        .collect()
}

fn env_var<'a>(objects: &'a [Value], name: &str) -> &'a Value {
    seq(operator_container(objects), &["env"])
        .into_iter()
        .find(|e| s(e, &["name"]) == Some(name))
        .unwrap_or_else(|| panic!("no env {name} in the operator container"))
}

const VALUE_SETS: [&[&str]; 3] = [&[], &["watchNamespace=foo"], &["replicas=2"]];

#[test]
fn lint_strict_is_clean_for_the_usual_value_sets() {
    for sets in VALUE_SETS {
        let (ok, output) = lint(sets);
        assert!(ok, "helm lint --strict {sets:?} failed:\n{output}");
        assert!(
            !output.contains("[WARNING]") && !output.contains("[ERROR]"),
            "helm lint --strict {sets:?} is not clean:\n{output}"
        );
    }
}

#[test]
fn schema_refuses_bad_values() {
    for bad in [
        "unknownTopLevel=1",
        "dns.unknown=1",
        "logFormat=xml",
        "image.pullPolicy=Sometimes",
        "replicas=two",
        "watchNamespace=Not_A_Namespace",
    ] {
        let (ok, output) = lint(&[bad]);
        assert!(!ok, "helm lint accepted --set {bad}:\n{output}");
        assert!(
            output.contains("schema"),
            "helm lint --set {bad} failed for another reason than the schema:\n{output}"
        );
    }
}

#[test]
fn cluster_wide_rbac_is_exactly_what_the_operator_uses() {
    let objects = template(&[]);
    let role = named(&objects, "ClusterRole", CLUSTER_NAME);
    assert_eq!(permissions(role), expected_main_permissions());

    let binding = named(&objects, "ClusterRoleBinding", CLUSTER_NAME);
    assert_eq!(s(binding, &["roleRef", "kind"]), Some("ClusterRole"));
    assert_eq!(s(binding, &["roleRef", "name"]), Some(CLUSTER_NAME));
    let subjects = seq(binding, &["subjects"]);
    assert_eq!(subjects.len(), 1);
    assert_eq!(s(subjects[0], &["kind"]), Some("ServiceAccount"));
    assert_eq!(s(subjects[0], &["name"]), Some(FULLNAME));
    assert_eq!(s(subjects[0], &["namespace"]), Some(RELEASE_NAMESPACE));

    // Node access is its own small ClusterRole.
    let nodes = named(&objects, "ClusterRole", &format!("{CLUSTER_NAME}-nodes"));
    assert_eq!(
        permissions(nodes),
        triples(&[("", &["nodes"], &["get", "list", "watch"])])
    );
    named(
        &objects,
        "ClusterRoleBinding",
        &format!("{CLUSTER_NAME}-nodes"),
    );
    assert_crd_check_role(&objects);

    assert!(
        !args(&objects).iter().any(|a| a.starts_with("--namespace")),
        "cluster-wide mode has no --namespace"
    );
    named(&objects, "ServiceAccount", FULLNAME);
}

/// The CRD check's ClusterRole: `get` on the operator's two CRDs, by name, and nothing else.
fn assert_crd_check_role(objects: &[Value]) {
    let crds = named(objects, "ClusterRole", &format!("{CLUSTER_NAME}-crds"));
    assert_eq!(
        permissions(crds),
        triples(&[(
            "apiextensions.k8s.io",
            &["customresourcedefinitions"],
            &["get"]
        )])
    );
    let names: Vec<&str> = seq(seq(crds, &["rules"])[0], &["resourceNames"])
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert_eq!(
        names,
        ["insyncclouds.insync.dev", "insynccloudbackups.insync.dev"]
    );
    named(
        objects,
        "ClusterRoleBinding",
        &format!("{CLUSTER_NAME}-crds"),
    );
}

#[test]
fn no_role_deletes_persistentvolumeclaims_or_uses_wildcards() {
    let value_sets: [&[&str]; 4] = [
        &[],
        &["watchNamespace=foo"],
        &["replicas=2"],
        &["watchNamespace=foo", "replicas=3"],
    ];
    for sets in value_sets {
        let objects = template(sets);
        let roles: Vec<_> = of_kind(&objects, "ClusterRole")
            .into_iter()
            .chain(of_kind(&objects, "Role"))
            .collect();
        assert!(!roles.is_empty());
        for role in roles {
            let name = s(role, &["metadata", "name"]).unwrap_or("?");
            for (group, resource, verb) in permissions(role) {
                assert!(
                    !(resource == "persistentvolumeclaims" && verb == "delete"),
                    "{name} may delete PVCs with {sets:?}: the operator never deletes data"
                );
                assert!(
                    group != "*" && resource != "*" && verb != "*",
                    "{name} has a wildcard rule ({group}, {resource}, {verb}) with {sets:?}"
                );
            }
        }
    }
}

#[test]
fn namespace_mode_renders_a_role_in_that_namespace() {
    let objects = template(&["watchNamespace=foo"]);
    let role = named(&objects, "Role", FULLNAME);
    assert_eq!(s(role, &["metadata", "namespace"]), Some("foo"));
    assert_eq!(permissions(role), expected_main_permissions());

    let binding = named(&objects, "RoleBinding", FULLNAME);
    assert_eq!(s(binding, &["metadata", "namespace"]), Some("foo"));
    assert_eq!(s(binding, &["roleRef", "kind"]), Some("Role"));
    assert_eq!(s(binding, &["roleRef", "name"]), Some(FULLNAME));
    assert_eq!(
        s(seq(binding, &["subjects"])[0], &["namespace"]),
        Some(RELEASE_NAMESPACE)
    );

    // The only cluster-scoped grants left are reading nodes and the operator's own CRDs.
    let cluster_roles = of_kind(&objects, "ClusterRole");
    assert_eq!(
        cluster_roles.len(),
        2,
        "namespace mode: only the nodes and CRD ClusterRoles"
    );
    assert_eq!(
        permissions(named(
            &objects,
            "ClusterRole",
            &format!("{CLUSTER_NAME}-nodes")
        )),
        triples(&[("", &["nodes"], &["get", "list", "watch"])])
    );
    assert_crd_check_role(&objects);
    let small = [
        format!("{CLUSTER_NAME}-nodes"),
        format!("{CLUSTER_NAME}-crds"),
    ];
    assert!(
        of_kind(&objects, "ClusterRoleBinding")
            .iter()
            .all(|b| small.iter().any(|n| s(b, &["roleRef", "name"]) == Some(n))),
        "namespace mode binds no other ClusterRole"
    );

    assert!(
        args(&objects).contains(&"--namespace=foo".to_owned()),
        "args: {:?}",
        args(&objects)
    );

    // A namespace-only installation can go without any cluster-scoped grant.
    let namespace_only = template(&[
        "watchNamespace=foo",
        "rbac.nodeAccess=false",
        "rbac.crdAccess=false",
    ]);
    assert!(of_kind(&namespace_only, "ClusterRole").is_empty());
    assert!(of_kind(&namespace_only, "ClusterRoleBinding").is_empty());
}

#[test]
fn leader_election_is_on_iff_more_than_one_replica_or_asked_for() {
    let lease_role = format!("{FULLNAME}-leader-election");
    for (sets, expected) in [
        (&[][..], false),
        (&["replicas=1"][..], false),
        (&["replicas=2"][..], true),
        (&["replicas=3", "watchNamespace=foo"][..], true),
        (&["leaderElection.enabled=true"][..], true),
    ] {
        let objects = template(sets);
        let flag = args(&objects).contains(&"--leader-elect".to_owned());
        assert_eq!(
            flag,
            expected,
            "--leader-elect with {sets:?}: args {:?}",
            args(&objects)
        );

        let lease_roles: Vec<_> = of_kind(&objects, "Role")
            .into_iter()
            .filter(|r| s(r, &["metadata", "name"]) == Some(lease_role.as_str()))
            .collect();
        assert_eq!(
            !lease_roles.is_empty(),
            expected,
            "lease Role with {sets:?}"
        );

        let strategy = s(
            named(&objects, "Deployment", FULLNAME),
            &["spec", "strategy", "type"],
        );
        if expected {
            let role = lease_roles[0];
            assert_eq!(
                s(role, &["metadata", "namespace"]),
                Some(RELEASE_NAMESPACE),
                "the Lease lives in the release namespace"
            );
            assert_eq!(
                permissions(role),
                triples(&[(
                    "coordination.k8s.io",
                    &["leases"],
                    &["get", "create", "update"]
                )])
            );
            let binding = named(&objects, "RoleBinding", &lease_role);
            assert_eq!(
                s(binding, &["metadata", "namespace"]),
                Some(RELEASE_NAMESPACE)
            );
            assert_ne!(strategy, Some("Recreate"));
        } else {
            // Two operators must never overlap without leader election, not even in a rollout.
            assert_eq!(
                strategy,
                Some("Recreate"),
                "single operator without leader election: Recreate"
            );
        }
    }
}

#[test]
fn operator_pod_is_restricted() {
    let objects = template(&[]);
    let deployment = named(&objects, "Deployment", FULLNAME);
    let pod = get(deployment, &["spec", "template", "spec"]).expect("pod spec");
    assert_eq!(
        get(pod, &["securityContext", "runAsNonRoot"]).and_then(Value::as_bool),
        Some(true)
    );
    assert_eq!(
        get(pod, &["securityContext", "runAsUser"]).and_then(Value::as_u64),
        Some(65532)
    );
    assert_eq!(
        s(pod, &["securityContext", "seccompProfile", "type"]),
        Some("RuntimeDefault")
    );
    assert_eq!(s(pod, &["serviceAccountName"]), Some(FULLNAME));

    let container = operator_container(&objects);
    let sc = get(container, &["securityContext"]).expect("container securityContext");
    assert_eq!(
        get(sc, &["runAsNonRoot"]).and_then(Value::as_bool),
        Some(true)
    );
    assert_eq!(get(sc, &["runAsUser"]).and_then(Value::as_u64), Some(65532));
    assert_eq!(
        get(sc, &["readOnlyRootFilesystem"]).and_then(Value::as_bool),
        Some(true)
    );
    assert_eq!(
        get(sc, &["allowPrivilegeEscalation"]).and_then(Value::as_bool),
        Some(false)
    );
    assert_eq!(strings(sc, &["capabilities", "drop"]), ["ALL"]);
    assert!(get(sc, &["capabilities", "add"]).is_none());
    assert_eq!(s(sc, &["seccompProfile", "type"]), Some("RuntimeDefault"));
}

#[test]
fn operator_container_runs_with_probes_and_downward_namespace() {
    let objects = template(&[]);
    let container = operator_container(&objects);

    let chart_yaml: Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("Chart.yaml is YAML");
    let app_version = s(&chart_yaml, &["appVersion"]).expect("appVersion");
    assert_eq!(
        s(container, &["image"]),
        Some(format!("ghcr.io/insync-operator/insync-operator:{app_version}").as_str()),
        "image tag defaults to appVersion"
    );

    let a = args(&objects);
    assert_eq!(a.first().map(String::as_str), Some("run"));
    for expected in [
        "--metrics-addr=0.0.0.0:8080",
        "--concurrency=8",
        "--max-concurrent-upgrades=0",
        "--log-format=json",
        "--dns-txt-prefix=insync-",
    ] {
        assert!(
            a.contains(&expected.to_owned()),
            "{expected} missing from {a:?}"
        );
    }

    assert_eq!(
        s(
            env_var(&objects, "POD_NAMESPACE"),
            &["valueFrom", "fieldRef", "fieldPath"]
        ),
        Some("metadata.namespace")
    );

    let ports = seq(container, &["ports"]);
    assert_eq!(s(ports[0], &["name"]), Some("metrics"));
    assert_eq!(
        get(ports[0], &["containerPort"]).and_then(Value::as_u64),
        Some(8080)
    );
    assert_eq!(
        s(container, &["livenessProbe", "httpGet", "path"]),
        Some("/healthz")
    );
    assert_eq!(
        s(container, &["livenessProbe", "httpGet", "port"]),
        Some("metrics")
    );
    assert_eq!(
        s(container, &["readinessProbe", "httpGet", "path"]),
        Some("/readyz")
    );
    assert_eq!(
        s(container, &["readinessProbe", "httpGet", "port"]),
        Some("metrics")
    );

    let service = named(&objects, "Service", &format!("{FULLNAME}-metrics"));
    assert_eq!(
        s(seq(service, &["spec", "ports"])[0], &["targetPort"]),
        Some("metrics")
    );
    assert!(
        of_kind(&objects, "ServiceMonitor").is_empty(),
        "ServiceMonitor is off by default"
    );
    assert_eq!(
        of_kind(
            &template(&["metrics.serviceMonitor.enabled=true"]),
            "ServiceMonitor"
        )
        .len(),
        1
    );

    // Issue 18, item 9: the operator's pod admits connections to its metrics port only, from
    // the namespaces the platform team selects.
    let policy = named(&objects, "NetworkPolicy", FULLNAME);
    let rule = seq(policy, &["spec", "ingress"])[0];
    assert_eq!(seq(rule, &["ports"]).len(), 1);
    assert_eq!(
        seq(rule, &["ports"])[0]["port"].as_i64(),
        Some(8080),
        "{rule:?}"
    );
    let narrowed = template(&["metrics.networkPolicy.scrapeNamespaceSelector.team=monitoring"]);
    let rule = seq(
        named(&narrowed, "NetworkPolicy", FULLNAME),
        &["spec", "ingress"],
    )[0];
    assert_eq!(
        s(
            seq(rule, &["from"])[0],
            &["namespaceSelector", "matchLabels", "team"]
        ),
        Some("monitoring")
    );
    assert!(
        of_kind(
            &template(&["metrics.networkPolicy.enabled=false"]),
            "NetworkPolicy"
        )
        .is_empty()
    );
}

#[test]
fn dns_and_aws_values_become_flags_and_env() {
    let defaults = template(&[]);
    let a = args(&defaults);
    assert!(
        a.contains(&format!("--dns-owner-id={RELEASE}.{RELEASE_NAMESPACE}")),
        "owner id defaults to release.namespace: {a:?}"
    );
    assert!(
        !a.iter()
            .any(|x| x.starts_with("--dns-endpoint") || x == "--dns-dry-run"),
        "{a:?}"
    );
    let names = env_names(&defaults);
    assert!(
        !names.iter().any(|n| n.starts_with("AWS_")),
        "no AWS env by default: {names:?}"
    );

    let objects = template(&[
        "dns.ownerId=lab-1",
        "dns.endpoint=http://127.0.0.1:5000",
        "dns.dryRun=true",
        "dns.txtPrefix=own-",
        "aws.region=eu-west-1",
        "aws.existingSecret=route53-creds",
        "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/r53",
    ]);
    let a = args(&objects);
    for expected in [
        "--dns-owner-id=lab-1",
        "--dns-endpoint=http://127.0.0.1:5000",
        "--dns-dry-run",
        "--dns-txt-prefix=own-",
    ] {
        assert!(
            a.contains(&expected.to_owned()),
            "{expected} missing from {a:?}"
        );
    }
    assert_eq!(
        s(env_var(&objects, "AWS_REGION"), &["value"]),
        Some("eu-west-1")
    );
    for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        let from =
            get(env_var(&objects, key), &["valueFrom", "secretKeyRef"]).expect("secretKeyRef");
        assert_eq!(s(from, &["name"]), Some("route53-creds"));
        assert_eq!(s(from, &["key"]), Some(key));
    }
    let sa = named(&objects, "ServiceAccount", FULLNAME);
    assert_eq!(
        s(
            sa,
            &["metadata", "annotations", "eks.amazonaws.com/role-arn"]
        ),
        Some("arn:aws:iam::123456789012:role/r53")
    );
}

#[test]
fn helm_test_pod_curls_readyz_on_the_metrics_service() {
    let objects = template(&[]);
    let pod = named(&objects, "Pod", &format!("{FULLNAME}-test-readyz"));
    assert_eq!(
        s(pod, &["metadata", "annotations", "helm.sh/hook"]),
        Some("test")
    );
    let container = seq(pod, &["spec", "containers"])[0];
    let command = strings(container, &["command"]);
    assert_eq!(command.first().map(String::as_str), Some("curl"));
    assert!(
        command.contains(&"--fail".to_owned()),
        "curl must fail on HTTP errors: {command:?}"
    );
    let url = format!("http://{FULLNAME}-metrics.{RELEASE_NAMESPACE}.svc:8080/readyz");
    assert_eq!(command.last(), Some(&url));

    // The metrics Service must not select the test pod.
    let service = named(&objects, "Service", &format!("{FULLNAME}-metrics"));
    let selector = get(service, &["spec", "selector"])
        .and_then(Value::as_mapping)
        .expect("selector");
    let labels = get(pod, &["metadata", "labels"])
        .and_then(Value::as_mapping)
        .expect("labels");
    assert!(
        selector.iter().any(|(k, v)| labels.get(k) != Some(v)),
        "the metrics Service selects the test pod"
    );
}

/// Every flag the chart passes must be one `insync-operator run` knows, for every value set
/// that adds flags.
#[test]
fn chart_flags_are_known_to_the_binary() {
    let help = Command::new(env!("CARGO_BIN_EXE_insync-operator"))
        .args(["run", "--help"])
        .output()
        .expect("run insync-operator");
    assert!(
        help.status.success(),
        "insync-operator run --help failed:\n{}",
        String::from_utf8_lossy(&help.stderr)
    );
    let help = String::from_utf8_lossy(&help.stdout);
    let known: BTreeSet<&str> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .collect();
    let objects = template(&[
        "watchNamespace=foo",
        "replicas=2",
        "dns.endpoint=http://127.0.0.1:5000",
        "dns.dryRun=true",
        "dns.allowAllDomains=true",
    ]);
    for arg in args(&objects).iter().skip(1) {
        let flag = arg.split('=').next().unwrap_or(arg);
        assert!(
            known.contains(flag),
            "the chart passes {flag}, which `insync-operator run --help` does not list:\n{help}"
        );
    }
}

#[test]
fn dns_allowed_domains_become_flags_and_bad_ones_are_refused() {
    let defaults = args(&template(&[]));
    assert!(
        !defaults
            .iter()
            .any(|x| x.starts_with("--dns-allowed-domain")
                || x.starts_with("--dns-allow-all-domains")),
        "no allow-list and no allow-all by default (the operator denies DNS): {defaults:?}"
    );
    let all = args(&template(&["dns.allowAllDomains=true"]));
    assert!(
        all.contains(&"--dns-allow-all-domains".to_owned())
            && !all.iter().any(|x| x.starts_with("--dns-allowed-domain")),
        "{all:?}"
    );
    let a = args(&template(&[
        "dns.allowedDomains={drtst.org,example.net}",
        "dns.allowedDomainsByNamespace.team-a={team-a.example.com}",
    ]));
    for expected in [
        "--dns-allowed-domain=drtst.org",
        "--dns-allowed-domain=example.net",
        "--dns-allowed-domain=team-a=team-a.example.com",
    ] {
        assert!(
            a.contains(&expected.to_owned()),
            "{expected} missing from {a:?}"
        );
    }
    for bad in [
        "dns.allowedDomains={Not A Domain}",
        "dns.allowedDomainsByNamespace.Team_A={team-a.example.com}",
    ] {
        let (ok, output) = lint(&[bad]);
        assert!(!ok, "helm lint accepted --set {bad}:\n{output}");
        assert!(output.contains("schema"), "{bad}: {output}");
    }
    for list in [
        "dns.allowedDomains={drtst.org}",
        "dns.allowedDomainsByNamespace.team-a={team-a.example.com}",
    ] {
        // `helm lint` only notes a template's `fail`; `helm template` (and install) stop.
        let chart = chart_dir();
        let mut a = vec!["template", RELEASE, chart.to_str().expect("UTF-8 path")];
        let sets = set_args(&["dns.allowAllDomains=true", list]);
        a.extend(sets.iter().map(String::as_str));
        let out = run_helm(&a);
        let output = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "helm template accepted allowAllDomains with {list}"
        );
        assert!(output.contains("cannot be combined"), "{list}: {output}");
    }
}

#[test]
fn the_upgrade_queue_limit_reaches_the_operator() {
    let objects = template(&["maxConcurrentUpgrades=3"]);
    assert!(
        args(&objects).contains(&"--max-concurrent-upgrades=3".to_owned()),
        "{:?}",
        args(&objects)
    );
}
