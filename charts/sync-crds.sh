#!/usr/bin/env bash
# Copies the generated CRDs (crds/, the source of truth, regenerated from the Rust types with
# `make crds`) into the Helm chart, which must ship identical copies: Helm installs CRDs only
# from a chart's own crds/ folder. operator/tests/chart_crd_sync.rs fails on drift.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dst="$root/charts/insync-operator/crds"
mkdir -p "$dst"
for name in insyncclouds.insync.dev.yaml insynccloudbackups.insync.dev.yaml; do
  src="$root/crds/$name"
  if [[ ! -f "$src" ]]; then
    echo "sync-crds: $src is missing; generate it first: make crds" >&2
    exit 1
  fi
  cp "$src" "$dst/$name"
  echo "sync-crds: copied crds/$name -> charts/insync-operator/crds/"
done
