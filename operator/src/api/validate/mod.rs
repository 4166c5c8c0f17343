//! Validation that returns every problem at once, each with its field path.
//!
//! The API server enforces the CRD's OpenAPI and CEL rules, but `insync-operator render -f`
//! reads files that never went through an API server, and some checks (cross-field, resource
//! requests against limits) are clearer here than in CEL. So this repeats the CRD's rules that
//! matter for rendering and adds those the schema cannot express.
//!
//! [`validate`] walks the spec section by section (`sections`, one function a section); the
//! rules for one kind of field (a range, an image override, resources, placement) are methods
//! of the collector in `problems`, and the syntax of names, tags and durations is in `syntax`.

mod problems;
mod sections;
mod syntax;

use std::fmt;

use super::InSyncCloud;
use problems::Problems;
pub(crate) use syntax::{is_mysql_identifier, is_single_line, parse_duration};

/// One problem with a cloud, at a field path such as `spec.nodes.replicas`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the offending field.
    pub path: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one cloud.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidCloud {
    /// `namespace/name` of the cloud.
    pub cloud: String,
    /// The problems, in field order.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for InvalidCloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "InSyncCloud {} is invalid ({} problem",
            self.cloud,
            self.errors.len()
        )?;
        if self.errors.len() != 1 {
            write!(f, "s")?;
        }
        write!(f, "):")?;
        for error in &self.errors {
            write!(f, "\n  - {error}")?;
        }
        Ok(())
    }
}

/// Checks a cloud and returns every problem found, or `Ok(())`.
pub fn validate(cloud: &InSyncCloud) -> Result<(), InvalidCloud> {
    let mut problems = Problems::default();
    let spec = &cloud.spec;

    sections::name(&mut problems, cloud.metadata.name.as_deref());
    problems.image_tag("spec.version", &spec.version);
    sections::images(&mut problems, &spec.images);
    problems.placement("spec", Some(&spec.placement));
    sections::master(&mut problems, &spec.master);
    sections::nodes(&mut problems, &spec.nodes);
    sections::database(&mut problems, &spec.database);
    sections::metadata_store(&mut problems, &spec.metadata_store);
    sections::object_store(&mut problems, &spec.object_store);
    sections::frontend(&mut problems, &spec.frontend);
    if let Some(dns) = &spec.dns {
        sections::dns(&mut problems, dns);
    }
    sections::upgrade(&mut problems, &spec.upgrade);
    if let Some(backup) = &spec.backup {
        sections::backup(&mut problems, backup);
    }
    if let Some(restore) = &spec.restore {
        sections::restore(&mut problems, restore);
    }

    let errors = problems.into_errors();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(InvalidCloud {
            cloud: format!("{}/{}", cloud.cloud_namespace(), cloud.cloud_name()),
            errors,
        })
    }
}

#[cfg(test)]
mod tests;
