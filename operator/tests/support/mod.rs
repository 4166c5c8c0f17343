//! Shared helpers for integration tests and benchmarks (`mod support;`).
//! Each test binary uses a different subset, hence the allow.
#![allow(dead_code)]

pub mod fault_proxy;
pub mod moto;
pub mod route53;
