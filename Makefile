# The two commands a newcomer needs: `make demo` (see the operator run a cloud) and `make test`.
SHELL := bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/insync-operator/target

.PHONY: demo test lint unit e2e crds clean-cluster

## demo: start a local control plane (unless KUBECONFIG is set), install the operator with its
## Helm chart, apply examples/fcloud.yaml and wait until the cloud is Ready.
demo:
	e2e/demo.sh

## test: formatting, lints, unit/render/chart/DNS tests, then the e2e suite on a real control plane.
test: lint unit e2e

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

unit:
	cargo test -p insync-operator

e2e:
	cargo build -p insync-operator
	cargo test -p insync-e2e -- --test-threads 3

## crds: regenerate the committed CRD (and the chart's copy) from the Rust types.
crds:
	cargo run -q -p insync-operator -- crd > crds/insyncclouds.insync.dev.yaml
	charts/sync-crds.sh

clean-cluster:
	e2e/cluster down --purge
