//! The CRD's CEL rules on free strings and the Rust predicates `validate` and the renderer use
//! must agree: each rule's `matches()` pattern, taken from the generated CRD, is run (with the
//! `regex` crate, whose syntax RE2 shares for these patterns) on the same samples as the
//! predicate, and both must accept exactly the samples marked good.

use serde_json::Value;

use super::syntax::{
    is_aws_region, is_bucket_name, is_endpoint_url, is_host, is_image_repository, is_key_prefix,
    is_mysql_identifier, is_table_prefix,
};

/// The schema of the property at `path` (dot-separated, `[]` for array items) in `crd`.
fn property<'a>(crd: &'a Value, path: &str) -> &'a Value {
    let mut schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    for step in path.split('.') {
        schema = match step {
            "[]" => &schema["items"],
            name => &schema["properties"][name],
        };
        assert!(!schema.is_null(), "no property {path} (at {step})");
    }
    schema
}

/// The patterns of the rules at `path` that are `self.matches('P')` (true: must match) or
/// `!self.matches('P')` (false: must not), CEL escapes undone.
fn patterns(crd: &Value, path: &str) -> Vec<(bool, regex::Regex)> {
    let rules = property(crd, path)["x-kubernetes-validations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    rules
        .iter()
        .filter_map(|rule| {
            let text = rule["rule"].as_str()?;
            let (positive, rest) = match text.strip_prefix('!') {
                Some(rest) => (false, rest),
                None => (true, text),
            };
            let pattern = rest.strip_prefix("self.matches('")?.strip_suffix("')")?;
            let pattern = pattern.replace("\\\\", "\\");
            Some((
                positive,
                regex::Regex::new(&pattern).expect("pattern compiles"),
            ))
        })
        .collect()
}

/// What the CRD accepts at `path`: every pattern rule and the maximum length.
fn crd_accepts(crd: &Value, path: &str, value: &str) -> bool {
    let max = property(crd, path)["maxLength"].as_u64();
    let rules = patterns(crd, path);
    assert!(!rules.is_empty(), "{path} has no matches() rule");
    max.is_none_or(|max| value.chars().count() as u64 <= max)
        && rules
            .iter()
            .all(|(positive, re)| re.is_match(value) == *positive)
}

/// Checks that the CRD's rule at each path and `predicate` accept exactly `good`, and refuse
/// every one of `bad`.
fn agree(crd: &Value, paths: &[&str], predicate: fn(&str) -> bool, good: &[&str], bad: &[&str]) {
    for path in paths {
        for value in good {
            assert!(
                predicate(value),
                "predicate refuses good {value:?} ({path})"
            );
            assert!(
                crd_accepts(crd, path, value),
                "CRD refuses good {value:?} at {path}"
            );
        }
        for value in bad {
            assert!(
                !predicate(value),
                "predicate accepts bad {value:?} ({path})"
            );
            assert!(
                !crd_accepts(crd, path, value),
                "CRD accepts bad {value:?} at {path}"
            );
        }
    }
}

fn cloud_crd() -> Value {
    serde_json::to_value(crate::api::crd()).expect("CRD serializes")
}

#[test]
fn hosts_are_names_or_addresses_on_one_line() {
    agree(
        &cloud_crd(),
        &["spec.database.external.host"],
        is_host,
        &[
            "acme.c1abcdefghij.us-east-1.rds.amazonaws.com",
            "mysql",
            "10.0.0.5",
            "fd00::5",
            "::1",
        ],
        &[
            "",
            "db.example.com\n[database]",
            "db.example.com\r",
            "db example.com",
            "db.example.com:3306",
            "db.example.com/x",
            "-db",
            "db.",
            "user@db",
            &"a".repeat(254),
        ],
    );
}

#[test]
fn database_names_are_plain_identifiers() {
    agree(
        &cloud_crd(),
        &["spec.database.external.database"],
        is_mysql_identifier,
        &["insync", "insync_prod", "Acme2", "1a"],
        &[
            "",
            "--all-databases",
            "-x",
            "in sync",
            "a'b",
            "a`b",
            "a$b",
            "a\nb",
            "a-b",
            &"a".repeat(65),
        ],
    );
}

#[test]
fn table_prefixes_are_table_name_characters_not_options() {
    agree(
        &cloud_crd(),
        &["spec.metadataStore.external.tablePrefix"],
        is_table_prefix,
        &["", "acme-", "acme_", "a.b", "Prod-1."],
        &["-x", "--help", "a b", "a\nb", "a/b", "a:b", &"a".repeat(65)],
    );
}

#[test]
fn endpoints_are_single_line_http_urls() {
    let good = [
        "https://s3.amazonaws.com",
        "http://minio.ns.svc:9000",
        "https://dynamodb.us-east-1.amazonaws.com/",
        "http://10.0.0.1:8000/path?x=1",
        "http://[fd00::1]:9000",
    ];
    let bad = [
        "",
        "ftp://x",
        "https://",
        "https://x\n[objectstore]",
        "https://x/\r",
        "https://x/a b",
        "https://user:pw@x",
        "https://x:port",
        "https://x:123456",
        "https://[fd00::1",
        "https://x y",
    ];
    agree(
        &cloud_crd(),
        &[
            "spec.metadataStore.external.endpoint",
            "spec.objectStore.s3.endpoint",
            "spec.backup.destination.s3.endpoint",
            "spec.restore.s3.endpoint",
        ],
        is_endpoint_url,
        &good,
        &bad,
    );
}

#[test]
fn registries_and_repositories_are_image_references_without_tag() {
    agree(
        &cloud_crd(),
        &[
            "spec.images.registry",
            "spec.master.image.repository",
            "spec.nodes.image.repository",
            "spec.database.managed.image.repository",
            "spec.objectStore.minio.image.repository",
        ],
        is_image_repository,
        &[
            "registry.example.com/insync",
            "mirror.example.com/insync/cloudmaster",
            "localhost:5000/insync",
            "docker.io/library/mysql",
            "insync",
        ],
        &[
            "",
            "registry.example.com/insync/",
            "registry.example.com/insync:1.0",
            "registry.example.com/insync@sha256:abc",
            "registry.example.com/In Sync",
            "registry.example.com/insync\nx",
            "registry.example.com/Insync",
            "-registry/insync",
        ],
    );
}

#[test]
fn prefixes_hold_no_line_break() {
    // The leading '/' is refused by a `startsWith` rule beside this one.
    assert!(!is_key_prefix("/backups"));
    agree(
        &cloud_crd(),
        &[
            "spec.backup.destination.s3.prefix",
            "spec.restore.s3.prefix",
        ],
        is_key_prefix,
        &["", "backups/", "a b/c"],
        &["a\nb", "a\rb", "a\tb"],
    );
}

#[test]
fn buckets_and_regions_keep_their_rules() {
    let crd = cloud_crd();
    agree(
        &crd,
        &[
            "spec.objectStore.s3.bucket",
            "spec.backup.destination.s3.bucket",
            "spec.restore.s3.bucket",
        ],
        is_bucket_name,
        &["my-bucket", "a.b.c"],
        &["My_Bucket", "ab", "b\n", "-ab"],
    );
    agree(
        &crd,
        &[
            "spec.metadataStore.external.region",
            "spec.objectStore.s3.region",
            "spec.backup.destination.s3.region",
            "spec.restore.s3.region",
        ],
        is_aws_region,
        &["us-east-1", "ap-southeast-2", "us-gov-west-1"],
        &["moon", "us-east-1\n", "us east 1", "US-EAST-1"],
    );
}

#[test]
fn restore_backup_names_and_pull_secrets_are_object_names() {
    let crd = cloud_crd();
    let is_object_name = |value: &str| {
        let mut problems = super::problems::Problems::default();
        problems.object_name("x", value);
        problems.into_errors().is_empty()
    };
    for path in [
        "spec.restore.backup",
        "spec.images.pullSecrets.[]",
        "spec.nodes.storage.storageClassName",
    ] {
        for good in ["nightly", "fcloud-202501010300", "a.b"] {
            assert!(
                is_object_name(good) && crd_accepts(&crd, path, good),
                "{path}: {good:?}"
            );
        }
        for bad in ["", "Nightly", "a b", "a/b", "a\nb", "-a", "a-", "../x"] {
            assert!(!is_object_name(bad), "{bad:?}");
            assert!(!crd_accepts(&crd, path, bad), "{path} accepts {bad:?}");
        }
    }
}
