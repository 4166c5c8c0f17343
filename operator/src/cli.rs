//! The pieces of the command line that are plain functions: reading cloud manifests and
//! printing objects. The binary only wires them to clap and the process exit code.

use std::fmt::Write as _;

use serde::Deserialize;

use crate::api::{InSyncCloud, validate::InvalidCloud};
use crate::render::{RenderError, RenderOptions, render};

/// A manifest stream that could not be turned into objects.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A YAML document is not an InSyncCloud.
    #[error("{source_name}: document {index}: {source}")]
    Parse {
        /// File name or `-`.
        source_name: String,
        /// 1-based document index.
        index: usize,
        /// What is wrong with the document.
        #[source]
        source: DocumentError,
    },
    /// One or more clouds failed validation.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<InvalidCloud>),
    /// Rendering failed for a reason that is not the user's input.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// YAML output failed.
    #[error("cannot print YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// The input could not be read.
    #[error("cannot read {name}: {source}")]
    Read {
        /// File name or `-`.
        name: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Why one YAML document is not a usable InSyncCloud.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Not YAML at all; serde's message carries the line and column.
    #[error(transparent)]
    Yaml(#[from] serde_yaml::Error),
    /// YAML, but of another kind, which `render` would silently drop.
    #[error("expected kind InSyncCloud, found {kind:?}")]
    NotAnInSyncCloud {
        /// The document's `kind` (empty if none).
        kind: String,
    },
    /// An InSyncCloud with a field that does not fit the schema.
    #[error("{path}: {source}")]
    Field {
        /// Where in the document, e.g. `spec.nodes.replicas`.
        path: String,
        /// What serde said.
        #[source]
        source: serde_yaml::Error,
    },
}

/// The InSyncCloud CRD as YAML, exactly as committed under `crds/`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&crate::api::crd())
}

/// The InSyncCloudBackup CRD as YAML, exactly as committed under `crds/`.
pub fn backup_crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&crate::api::backup_crd())
}

/// Parses every `InSyncCloud` document in a (multi-document) YAML stream. Empty documents are
/// skipped; documents of other kinds are errors, because `render` would silently drop them.
pub fn parse_clouds(source_name: &str, text: &str) -> Result<Vec<InSyncCloud>, CliError> {
    let mut clouds = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let parse_error = |source: DocumentError| CliError::Parse {
            source_name: source_name.to_owned(),
            index: i + 1,
            source,
        };
        let value = serde_yaml::Value::deserialize(document)
            .map_err(|e| parse_error(DocumentError::Yaml(e)))?;
        if value.is_null() {
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default();
        if kind != "InSyncCloud" {
            return Err(parse_error(DocumentError::NotAnInSyncCloud {
                kind: kind.to_owned(),
            }));
        }
        // serde_path_to_error names the field ("spec.nodes.replicas: invalid type ...").
        let cloud: InSyncCloud = serde_path_to_error::deserialize(value).map_err(|e| {
            parse_error(DocumentError::Field {
                path: e.path().to_string(),
                source: e.into_inner(),
            })
        })?;
        clouds.push(cloud);
    }
    Ok(clouds)
}

/// Renders every cloud and prints all objects as one YAML stream, like `helm template`.
/// Every invalid cloud's problems are reported together.
pub fn render_stream(clouds: &[InSyncCloud]) -> Result<String, CliError> {
    let mut invalid = Vec::new();
    let mut out = String::new();
    for cloud in clouds {
        match render(cloud, &RenderOptions::default()) {
            Ok(objects) => {
                for desired in objects {
                    let _ = writeln!(out, "---");
                    out.push_str(&serde_yaml::to_string(&desired.object)?);
                }
            }
            Err(RenderError::Invalid(problems)) => invalid.push(problems),
            Err(other) => return Err(other.into()),
        }
    }
    if invalid.is_empty() {
        Ok(out)
    } else {
        Err(CliError::Invalid(invalid))
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn parse_error(text: &str) -> CliError {
        parse_clouds("clouds.yaml", text).expect_err("the document is refused")
    }

    #[test]
    fn a_field_error_names_the_document_and_field_and_keeps_serdes_error() {
        let err = parse_error(
            "kind: Service\n---\napiVersion: insync.dev/v1alpha1\nkind: InSyncCloud\nmetadata: {name: c}\nspec: {nodes: {replicas: many}}\n",
        );
        // The first document is of another kind and stops the parse first.
        assert_eq!(
            err.to_string(),
            "clouds.yaml: document 1: expected kind InSyncCloud, found \"Service\""
        );
        let err = parse_error(
            "apiVersion: insync.dev/v1alpha1\nkind: InSyncCloud\nmetadata: {name: c}\nspec: {nodes: {replicas: many}}\n",
        );
        let message = err.to_string();
        assert!(
            message.starts_with("clouds.yaml: document 1: spec.nodes.replicas: invalid type"),
            "{message}"
        );
        let document = err.source().expect("the document's error is the source");
        let serde = document.source().expect("serde's error is kept");
        assert!(serde.downcast_ref::<serde_yaml::Error>().is_some());
    }

    #[test]
    fn broken_yaml_keeps_its_line_and_column() {
        let err = parse_error("kind: [unclosed\n");
        let CliError::Parse { index, source, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*index, 1);
        let DocumentError::Yaml(yaml) = source else {
            panic!("{source:?}");
        };
        assert!(yaml.location().is_some(), "{yaml}");
    }
}
