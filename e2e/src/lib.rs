//! Harness for the end-to-end tests: finds (or starts) a real Kubernetes control plane.
