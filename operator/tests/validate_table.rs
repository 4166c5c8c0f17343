//! A table of invalid clouds, each refused by `validate` with the expected field path, and the
//! examples, which must all be valid.

use insync_operator::api::{InSyncCloud, validate::validate};

fn cloud(spec_yaml: &str) -> InSyncCloud {
    let spec: String = spec_yaml
        .lines()
        .map(|line| format!("  {line}\n"))
        .collect();
    let doc = format!(
        "apiVersion: insync.dev/v1alpha1\nkind: InSyncCloud\nmetadata: {{name: fcloud, namespace: t}}\nspec:\n{spec}"
    );
    serde_yaml::from_str(&doc).unwrap_or_else(|e| panic!("fixture does not parse: {e}\n{doc}"))
}

#[test]
fn every_invalid_spec_is_refused_with_its_field_path() {
    let table: &[(&str, &str, &str)] = &[
        ("version: ''", "spec.version", "image tag"),
        ("version: 'a b'", "spec.version", "image tag"),
        ("version: '-r1'", "spec.version", "image tag"),
        (
            "version: v1\nmaster: {replicas: 0}",
            "spec.master.replicas",
            "between 1 and 9",
        ),
        (
            "version: v1\nmaster: {replicas: 10}",
            "spec.master.replicas",
            "between 1 and 9",
        ),
        (
            "version: v1\nnodes: {replicas: 101}",
            "spec.nodes.replicas",
            "between 0 and 100",
        ),
        (
            "version: v1\nnodes: {storage: {size: 50GB}}",
            "spec.nodes.storage.size",
            "not a quantity",
        ),
        (
            "version: v1\nnodes: {storage: {size: '0'}}",
            "spec.nodes.storage.size",
            "greater than zero",
        ),
        (
            "version: v1\nnodes: {storage: {size: 1Gi, storageClassName: Fast_SSD}}",
            "spec.nodes.storage.storageClassName",
            "DNS subdomain",
        ),
        (
            "version: v1\nmaster: {image: {tag: 'bad tag'}}",
            "spec.master.image.tag",
            "image tag",
        ),
        (
            "version: v1\nmaster: {resources: {requests: {cpu: '4'}, limits: {cpu: '2'}}}",
            "spec.master.resources.requests.cpu",
            "larger than the cpu limit",
        ),
        (
            "version: v1\ndatabase: {}",
            "spec.database",
            "exactly one of 'managed' or 'external'",
        ),
        (
            "version: v1\ndatabase: {managed: {}, external: {host: h, secretRef: {name: s}}}",
            "spec.database",
            "exactly one",
        ),
        (
            "version: v1\ndatabase: {external: {host: '', secretRef: {name: s}}}",
            "spec.database.external.host",
            "required",
        ),
        (
            "version: v1\ndatabase: {external: {host: h, port: 70000, secretRef: {name: s}}}",
            "spec.database.external.port",
            "between 1 and 65535",
        ),
        (
            "version: v1\nmetadataStore: {}",
            "spec.metadataStore",
            "exactly one",
        ),
        (
            "version: v1\nmetadataStore: {managed: {replicas: 6}}",
            "spec.metadataStore.managed.replicas",
            "between 1 and 5",
        ),
        (
            "version: v1\nmetadataStore: {external: {region: moon}}",
            "spec.metadataStore.external.region",
            "AWS region",
        ),
        (
            "version: v1\nmetadataStore: {external: {region: us-east-1, endpoint: 'ftp://x'}}",
            "spec.metadataStore.external.endpoint",
            "http(s) URL",
        ),
        (
            "version: v1\nobjectStore: {}",
            "spec.objectStore",
            "exactly one of 'minio', 's3' or 'sharedFilesystem'",
        ),
        (
            "version: v1\nobjectStore: {minio: {replicas: 2}}",
            "spec.objectStore.minio.replicas",
            "at least 4 drives",
        ),
        (
            "version: v1\nobjectStore: {minio: {replicas: 33}}",
            "spec.objectStore.minio.replicas",
            "between 4 and 32",
        ),
        (
            "version: v1\nobjectStore: {s3: {bucket: 'My_Bucket', region: us-east-1}}",
            "spec.objectStore.s3.bucket",
            "bucket name",
        ),
        (
            "version: v1\nobjectStore: {sharedFilesystem: {claimName: 'Bad Claim'}}",
            "spec.objectStore.sharedFilesystem.claimName",
            "DNS subdomain",
        ),
        (
            "version: v1\nfrontend: {replicas: 0}",
            "spec.frontend.replicas",
            "between 1 and 10",
        ),
        (
            "version: v1\nfrontend: {service: {masterPort: 443, storagePort: 443}}",
            "spec.frontend.service.storagePort",
            "must differ from masterPort",
        ),
        (
            "version: v1\nfrontend: {service: {type: ClusterIP, masterNodePort: 30443}}",
            "spec.frontend.service.masterNodePort",
            "NodePort or LoadBalancer",
        ),
        (
            "version: v1\nfrontend: {service: {type: NodePort, storageNodePort: 80}}",
            "spec.frontend.service.storageNodePort",
            "between 30000 and 32767",
        ),
        (
            "version: v1\ndns: {domain: localhost}",
            "spec.dns.domain",
            "DNS name",
        ),
        (
            "version: v1\ndns: {domain: Drtst.org}",
            "spec.dns.domain",
            "DNS name",
        ),
        (
            "version: v1\ndns: {domain: drtst.org, ttl: 0}",
            "spec.dns.ttl",
            "between 1 and 86400",
        ),
        (
            "version: v1\ndns: {domain: drtst.org, hostedZoneId: 'zone-1'}",
            "spec.dns.hostedZoneId",
            "Z0123456789",
        ),
        (
            "version: v1\nupgrade: {maxUnavailable: 0}",
            "spec.upgrade.maxUnavailable",
            "at least 1",
        ),
        (
            "version: v1\nupgrade: {healthTimeout: 10min}",
            "spec.upgrade.healthTimeout",
            "duration",
        ),
        (
            "version: v1\nupgrade: {healthTimeout: 0s}",
            "spec.upgrade.healthTimeout",
            "positive duration",
        ),
        (
            "version: v1\nimages: {registry: 'r.example.com/', pullSecrets: [ok]}",
            "spec.images.registry",
            "no trailing '/'",
        ),
        (
            "version: v1\nplacement: {tolerations: [{key: k, operator: Matches}]}",
            "spec.placement.tolerations[0].operator",
            "Exists or Equal",
        ),
        (
            "version: v1\nplacement: {tolerations: [{key: k, operator: Exists, value: v}]}",
            "spec.placement.tolerations[0].value",
            "must be empty",
        ),
        (
            "version: v1\nmaster: {placement: {tolerations: [{key: k, effect: NoRun}]}}",
            "spec.master.placement.tolerations[0].effect",
            "NoSchedule",
        ),
        (
            "version: v1\nplacement: {nodeSelector: {'bad key!': x}}",
            "spec.placement.nodeSelector",
            "label key",
        ),
        (
            "version: v1\nnodes: {placement: {nodeSelector: {zone: 'a b'}}}",
            "spec.nodes.placement.nodeSelector.zone",
            "label value",
        ),
        (
            "version: v1\ndatabase: {managed: {placement: {priorityClassName: Critical}}}",
            "spec.database.managed.placement.priorityClassName",
            "DNS subdomain",
        ),
        (
            "version: v1\ndatabase: {external: {host: \"db.example.com\\n[objectstore]\", secretRef: {name: s}}}",
            "spec.database.external.host",
            "host name",
        ),
        (
            "version: v1\ndatabase: {external: {host: 'db.example.com:3306', secretRef: {name: s}}}",
            "spec.database.external.host",
            "no port",
        ),
        (
            "version: v1\ndatabase: {external: {host: h, database: '--all-databases', secretRef: {name: s}}}",
            "spec.database.external.database",
            "letters, digits and '_'",
        ),
        (
            "version: v1\nmetadataStore: {external: {region: us-east-1, tablePrefix: '--x'}}",
            "spec.metadataStore.external.tablePrefix",
            "not starting with '-'",
        ),
        (
            "version: v1\nmetadataStore: {external: {region: us-east-1, endpoint: \"https://x\\n[cloud]\"}}",
            "spec.metadataStore.external.endpoint",
            "http(s) URL",
        ),
        (
            "version: v1\nobjectStore: {s3: {bucket: b-1, region: us-east-1, endpoint: 'https://u:p@x'}}",
            "spec.objectStore.s3.endpoint",
            "http(s) URL",
        ),
        (
            "version: v1\nimages: {registry: 'r.example.com/In Sync'}",
            "spec.images.registry",
            "image repository",
        ),
        (
            "version: v1\nmaster: {image: {repository: 'r.example.com/cm:1.0'}}",
            "spec.master.image.repository",
            "image repository",
        ),
        (
            "version: v1\nbackup: {destination: {s3: {bucket: b-1, prefix: \"a\\nb/\", endpoint: 'http://x y'}}}",
            "spec.backup.destination.s3.prefix",
            "line break",
        ),
        (
            "version: v1\nbackup: {destination: {s3: {bucket: b-1, endpoint: 'http://x y'}}}",
            "spec.backup.destination.s3.endpoint",
            "http(s) URL",
        ),
        (
            "version: v1\nbackup: {destination: {s3: {bucket: B_1}}}",
            "spec.backup.destination.s3.bucket",
            "bucket name",
        ),
        (
            "version: v1\nrestore: {backup: '../other/nightly'}",
            "spec.restore.backup",
            "DNS subdomain",
        ),
        (
            "version: v1\nrestore: {backup: \"nightly\\nx\"}",
            "spec.restore.backup",
            "DNS subdomain",
        ),
        (
            "version: v1\nrestore: {s3: {bucket: b-1, prefix: 'x', region: moon}}",
            "spec.restore.s3.prefix",
            "end with '/'",
        ),
        (
            "version: v1\nrestore: {s3: {bucket: b-1, prefix: 'x/', region: moon}}",
            "spec.restore.s3.region",
            "AWS region",
        ),
    ];
    for (spec, path, message) in table {
        let errors = validate(&cloud(spec))
            .expect_err(&format!("accepted invalid spec:\n{spec}"))
            .errors;
        assert!(
            errors
                .iter()
                .any(|e| e.path == *path && e.message.contains(message)),
            "spec:\n{spec}\nexpected an error at {path} containing {message:?}, got {errors:#?}"
        );
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let bad = cloud(
        "version: ''\nmaster: {replicas: 0}\nobjectStore: {minio: {replicas: 2}}\ndns: {domain: x}",
    );
    let err = validate(&bad).expect_err("invalid");
    let paths: Vec<&str> = err.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.version",
            "spec.master.replicas",
            "spec.objectStore.minio.replicas",
            "spec.dns.domain"
        ]
    );
    let text = err.to_string();
    assert!(
        text.starts_with("InSyncCloud t/fcloud is invalid (4 problems):"),
        "{text}"
    );
}

#[test]
fn cloud_names_must_be_short_dns_labels() {
    for name in ["Fcloud", "1cloud", "cloud-", "a_b", &"a".repeat(41)] {
        let mut c = cloud("version: v1");
        c.metadata.name = Some(name.to_owned());
        let err = validate(&c).expect_err(name);
        assert_eq!(err.errors[0].path, "metadata.name", "{name}");
    }
}

#[test]
fn examples_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("read example");
            let clouds = insync_operator::cli::parse_clouds(&path.display().to_string(), &text)
                .expect("example parses");
            for c in &clouds {
                validate(c).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                seen += 1;
            }
        }
    }
    assert!(
        seen >= 3,
        "expected at least the three examples, saw {seen}"
    );
}
