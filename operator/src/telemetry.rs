//! Tracing, metrics and health endpoints.
