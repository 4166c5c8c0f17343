#!/usr/bin/env bash
# Copies the generated CRDs (crds/, the source of truth, regenerated from the Rust types with
# `make crds`) into the Helm chart, which must ship identical copies: Helm installs CRDs only
# from a chart's own crds/ folder. operator/tests/chart_crd_sync.rs fails on drift.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=e2e/lib.sh
source "$root/e2e/lib.sh"
LOG_PREFIX=sync-crds
dst="$root/charts/insync-operator/crds"
mkdir -p "$dst"
for name in insyncclouds.insync.dev.yaml insynccloudbackups.insync.dev.yaml; do
  src="$root/crds/$name"
  [[ -f "$src" ]] || die "$src is missing; generate it first: make crds"
  cp "$src" "$dst/$name"
  log "copied crds/$name -> charts/insync-operator/crds/"
done
