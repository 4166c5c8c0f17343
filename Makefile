# The two commands a newcomer needs: `make demo` (see the operator run a cloud) and `make test`.
SHELL := bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/insync-operator/target
# The pinned kubectl/helm/etcd that `e2e/cluster install-tools` links, ahead of anything else.
export PATH := $(or $(INSYNC_E2E_CACHE),$(HOME)/.cache/insync-e2e)/bin/path:$(HOME)/.cargo/bin:$(PATH)

.PHONY: demo test deps lint unit e2e crds clean-cluster

## demo: start a local control plane (unless KUBECONFIG is set), install the operator with its
## Helm chart, apply examples/fcloud.yaml and wait until the cloud is Ready.
demo: deps
	e2e/demo.sh

## test: installs what the tests need (deps), then formatting, lints, unit/render/chart/DNS
## tests, then the e2e suite on a real control plane.
test: deps lint unit e2e

## deps: Debian packages, moto, rustfmt/clippy and the e2e tools (cached; seconds when present).
deps:
	e2e/install-deps

## lint: rustfmt, clippy, and shellcheck on every tracked shell script (a *.sh file, or one whose
## first line is a sh/bash shebang or `# shellcheck shell=`), following the files they source.
lint:
	cargo fmt --all -- --check
	e2e/lint/module-cycles.py operator/src
	cargo clippy --workspace --all-targets -- -D warnings
	set -o pipefail; git ls-files -z \
	  | xargs -0 awk 'FNR == 1 { if (FILENAME ~ /\.sh$$/ || /^#!.*[\/ ](ba|da)?sh( |$$)/ || /^# shellcheck shell=/) print FILENAME; nextfile }' \
	  | xargs -d '\n' shellcheck -x -P SCRIPTDIR

unit:
	cargo test -p insync-operator
	e2e/images/standin/test.sh
	e2e/enforcer-cleanup-test

e2e:
	cargo build -p insync-operator
	e2e/cluster up --real-node
	cargo test -p insync-e2e -- --test-threads 3

## crds: regenerate the committed CRDs (and the chart's copies) from the Rust types.
crds:
	cargo run -q -p insync-operator -- crd insyncclouds > crds/insyncclouds.insync.dev.yaml
	cargo run -q -p insync-operator -- crd insynccloudbackups > crds/insynccloudbackups.insync.dev.yaml
	charts/sync-crds.sh

clean-cluster:
	e2e/cluster down --purge
