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
    #[error("{source_name}: document {index}: {message}")]
    Parse {
        /// File name or `-`.
        source_name: String,
        /// 1-based document index.
        index: usize,
        /// What serde said, with its line and column.
        message: String,
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

/// The CRD as YAML, exactly as committed under `crds/`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&crate::api::crd())
}

/// Parses every `InSyncCloud` document in a (multi-document) YAML stream. Empty documents are
/// skipped; documents of other kinds are errors, because `render` would silently drop them.
pub fn parse_clouds(source_name: &str, text: &str) -> Result<Vec<InSyncCloud>, CliError> {
    let mut clouds = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let parse_error = |message: String| CliError::Parse {
            source_name: source_name.to_owned(),
            index: i + 1,
            message,
        };
        let value =
            serde_yaml::Value::deserialize(document).map_err(|e| parse_error(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default();
        if kind != "InSyncCloud" {
            return Err(parse_error(format!(
                "expected kind InSyncCloud, found {kind:?}"
            )));
        }
        // serde_path_to_error names the field ("spec.nodes.replicas: invalid type ...").
        let cloud: InSyncCloud = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            parse_error(format!("{path}: {}", e.into_inner()))
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
