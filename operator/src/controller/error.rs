//! Controller errors, each with a stable label for metrics and events.

/// What to do about an outdated CRD, appended to the API server's refusal.
pub(crate) const OUTDATED_HINT: &str = "the CRD on the cluster is older than this operator: apply \
     this release's CRDs (`kubectl apply --server-side -f crds/`, or `insync-operator crd \
     insyncclouds | kubectl apply --server-side -f -`); `helm upgrade` does not update CRDs";

/// Everything a reconcile can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec is invalid in a way the CRD schema could not catch; waits for a spec change.
    #[error(transparent)]
    Invalid(#[from] crate::api::validate::InvalidCloud),
    /// Render failed.
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
    /// Writing a child failed.
    #[error("cannot write {object}: {}", api_message(source))]
    Write {
        /// `Kind/name` of the child.
        object: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Reading or patching the cloud itself failed.
    #[error("cannot update InSyncCloud {cloud}: {}", api_message(source))]
    Cloud {
        /// `namespace/name`.
        cloud: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Render produced an object the operator cannot place among its watched kinds (a bug).
    #[error("render produced an object of an unwatched kind: {0}")]
    UnknownKind(#[source] UnknownKind),
    /// JSON serialization failed (a bug).
    #[error("cannot serialize: {0}")]
    Serialize(#[source] serde_json::Error),
    /// A read or write of a step beside the children (a restore's Jobs and datastores, the
    /// cloud's backups).
    #[error("cannot {action}: {}", api_message(source))]
    Api {
        /// What was being done.
        action: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Removing DNS records during deletion failed; retried with backoff.
    #[error("cannot remove the DNS records of {cloud}: {source}")]
    Dns {
        /// `namespace/name`.
        cloud: String,
        /// What the syncer said.
        #[source]
        source: crate::dns::DnsError,
    },
}

/// Why a rendered object matches none of the kinds the operator watches.
#[derive(Debug, thiserror::Error)]
pub enum UnknownKind {
    /// It carries no apiVersion/kind at all.
    #[error("an object without apiVersion/kind")]
    Untyped,
    /// Its apiVersion does not parse.
    #[error("apiVersion {api_version:?}")]
    BadApiVersion {
        /// As rendered.
        api_version: String,
        /// Why it does not parse.
        #[source]
        source: kube::core::gvk::ParseGroupVersionError,
    },
    /// A well-formed `apiVersion/kind` that no cache watches.
    #[error("{0}")]
    Unwatched(String),
}

/// The API server's own message for an API error (what a person can act on), else the error.
/// A refusal of a field the CRD does not declare gets the way out appended.
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.message.contains("field not declared in schema") => {
            format!("{} ({})", status.message, OUTDATED_HINT)
        }
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

impl Error {
    /// A short, stable label for metrics (`errors_total{kind=...}`) and event reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_spec",
            Self::Render(
                crate::render::RenderError::Invalid(_) | crate::render::RenderError::Unsafe(_),
            ) => "invalid_spec",
            Self::Render(_) => "render",
            Self::Write { .. } => "write",
            Self::Cloud { .. } => "cloud_update",
            Self::UnknownKind(_) => "unknown_kind",
            Self::Serialize(_) => "serialize",
            Self::Dns { .. } => "dns",
            Self::Api { .. } => "api",
        }
    }

    /// Whether retrying without a spec change can help: everything but an invalid spec.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            Self::Invalid(_)
                | Self::Render(
                    crate::render::RenderError::Invalid(_) | crate::render::RenderError::Unsafe(_)
                )
        )
    }
}
