//! Is the cluster's CRD the one this operator was built with?
//!
//! Helm installs a chart's CRDs once and never upgrades them, so `helm upgrade` of the operator
//! leaves the previous release's CRDs in place. Server-side apply refuses a status that names a
//! field the schema lacks ("field not declared in schema"), so a newer operator over an older
//! CRD fails every status write of every cloud. This check, run at start, names the missing
//! fields and the fix before that happens; [`OUTDATED_HINT`] repeats the fix on the failures.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::{Api, Client};
use tracing::{error, info};

use super::error::{OUTDATED_HINT, api_message};

/// How many missing fields a report names.
const NAMED: usize = 5;

/// What the check found for one CRD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CrdState {
    /// Every field the operator writes is in the installed schema.
    Current,
    /// The installed schema of the operator's version lacks these fields (paths such as
    /// `.status.upgrade.rolling.*.revision`).
    Missing(Vec<String>),
    /// The version the operator writes is not served.
    VersionNotServed(String),
    /// The CRD could not be read (not installed, or no RBAC to read it).
    Unreadable(String),
}

/// What [`check`] found.
#[derive(Debug, Default)]
pub struct Report {
    /// Per CRD, the number of fields the installed schema lacks (the `crd_missing_fields`
    /// gauge).
    pub missing: BTreeMap<String, i64>,
    /// CRDs known not to be installed (not those that could not be read).
    pub absent: Vec<String>,
}

/// Checks both CRDs at start and logs what is wrong with the way out.
pub async fn check(client: &Client) -> Report {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut report = Report::default();
    for built in [crate::api::crd(), crate::api::backup_crd()] {
        let name = built.metadata.name.clone().unwrap_or_default();
        let state = match api.get_opt(&name).await {
            Ok(Some(installed)) => compare(&installed, &built),
            Ok(None) => {
                report.absent.push(name.clone());
                CrdState::Unreadable("not installed".to_owned())
            }
            Err(e) => CrdState::Unreadable(api_message(&e)),
        };
        match &state {
            CrdState::Current => {
                info!(crd = %name, "the installed CRD has every field this operator writes")
            }
            CrdState::Missing(fields) => error!(
                crd = %name,
                missing = fields.len(),
                "the installed CRD lacks fields of this operator's API ({}{}): the API server \
                 refuses status writes that carry them and drops them from specs; \
                 {OUTDATED_HINT}",
                fields.iter().take(NAMED).cloned().collect::<Vec<_>>().join(", "),
                if fields.len() > NAMED { ", ..." } else { "" },
            ),
            CrdState::VersionNotServed(version) => error!(
                crd = %name,
                "the installed CRD does not serve {version}, the version this operator writes; \
                 {OUTDATED_HINT}"
            ),
            // Reading CRDs is a cluster-scoped permission an installation may not grant.
            CrdState::Unreadable(why) => info!(crd = %name, %why, "cannot check the installed CRD"),
        }
        let count = match state {
            CrdState::Missing(fields) => fields.len(),
            CrdState::VersionNotServed(_) => 1,
            CrdState::Current | CrdState::Unreadable(_) => 0,
        };
        report
            .missing
            .insert(name, i64::try_from(count).unwrap_or(i64::MAX));
    }
    report
}

/// Compares the installed CRD with the one this operator was built with, for the version the
/// operator writes (the built CRD's storage version).
pub fn compare(installed: &CustomResourceDefinition, built: &CustomResourceDefinition) -> CrdState {
    let Some(version) = built.spec.versions.iter().find(|v| v.storage) else {
        return CrdState::Current;
    };
    let Some(served) = installed
        .spec
        .versions
        .iter()
        .find(|v| v.name == version.name && v.served)
    else {
        return CrdState::VersionNotServed(version.name.clone());
    };
    let schema = |v: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionVersion| {
        v.schema.as_ref().and_then(|s| s.open_api_v3_schema.clone())
    };
    let (Some(want), Some(have)) = (schema(version), schema(served)) else {
        return CrdState::Current;
    };
    let mut missing = Vec::new();
    missing_fields(&have, &want, "", &mut missing);
    if missing.is_empty() {
        CrdState::Current
    } else {
        CrdState::Missing(missing)
    }
}

/// Collects the paths of the fields `want` declares that `have` does not. Only what is absent
/// matters: server-side apply refuses undeclared fields, while a changed description,
/// validation rule or default does not stop a write.
fn missing_fields(
    have: &JSONSchemaProps,
    want: &JSONSchemaProps,
    path: &str,
    out: &mut Vec<String>,
) {
    // Below a preserve-unknown-fields node anything goes.
    if have.x_kubernetes_preserve_unknown_fields == Some(true) {
        return;
    }
    for (name, field) in want.properties.iter().flatten() {
        let at = format!("{path}.{name}");
        match have.properties.as_ref().and_then(|p| p.get(name)) {
            Some(existing) => missing_fields(existing, field, &at, out),
            None => out.push(at),
        }
    }
    if let (
        Some(JSONSchemaPropsOrArray::Schema(want)),
        Some(JSONSchemaPropsOrArray::Schema(have)),
    ) = (&want.items, &have.items)
    {
        missing_fields(have, want, &format!("{path}[]"), out);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(want)) = &want.additional_properties {
        match &have.additional_properties {
            Some(JSONSchemaPropsOrBool::Schema(have)) => {
                missing_fields(have, want, &format!("{path}.*"), out);
            }
            Some(JSONSchemaPropsOrBool::Bool(true)) => {}
            _ => out.push(format!("{path}.*")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema of `crd`'s storage version, at `path` (property names).
    fn property<'a>(
        crd: &'a mut CustomResourceDefinition,
        path: &[&str],
    ) -> &'a mut JSONSchemaProps {
        let version = crd
            .spec
            .versions
            .iter_mut()
            .find(|v| v.storage)
            .expect("storage");
        let mut props = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .expect("schema");
        for name in path {
            props = props
                .properties
                .as_mut()
                .and_then(|p| p.get_mut(*name))
                .unwrap_or_else(|| panic!("{path:?} exists"));
        }
        props
    }

    /// The built CRD with the property at `path` removed.
    fn without(path: &[&str]) -> CustomResourceDefinition {
        let mut crd = crate::api::crd();
        let (last, parents) = path.split_last().expect("a path");
        let parent = property(&mut crd, parents);
        assert!(
            parent
                .properties
                .as_mut()
                .expect("properties")
                .remove(*last)
                .is_some()
        );
        crd
    }

    #[test]
    fn the_crd_this_operator_ships_is_current() {
        assert_eq!(
            compare(&crate::api::crd(), &crate::api::crd()),
            CrdState::Current
        );
        let backups = crate::api::backup_crd();
        assert_eq!(compare(&backups, &backups), CrdState::Current);
    }

    #[test]
    fn an_older_crd_names_the_fields_it_lacks() {
        let old = without(&["status", "restore"]);
        assert_eq!(
            compare(&old, &crate::api::crd()),
            CrdState::Missing(vec![".status.restore".to_owned()])
        );
    }

    #[test]
    fn fields_inside_maps_are_named_through_the_map() {
        // status.upgrade.rolling is a map of workload id to step.
        let mut old = crate::api::crd();
        let rolling = property(&mut old, &["status", "upgrade", "rolling"]);
        let Some(JSONSchemaPropsOrBool::Schema(step)) = rolling.additional_properties.as_mut()
        else {
            panic!("rolling is a map");
        };
        step.properties.as_mut().expect("step").remove("revision");
        assert_eq!(
            compare(&old, &crate::api::crd()),
            CrdState::Missing(vec![".status.upgrade.rolling.*.revision".to_owned()])
        );
    }

    #[test]
    fn a_crd_that_no_longer_serves_the_version_says_so() {
        let mut old = crate::api::crd();
        old.spec.versions.iter_mut().for_each(|v| v.served = false);
        assert!(matches!(
            compare(&old, &crate::api::crd()),
            CrdState::VersionNotServed(_)
        ));
    }

    #[test]
    fn preserved_unknown_fields_accept_anything() {
        let mut old = without(&["status", "restore"]);
        let status = property(&mut old, &["status"]);
        status.x_kubernetes_preserve_unknown_fields = Some(true);
        assert_eq!(compare(&old, &crate::api::crd()), CrdState::Current);
    }
}
