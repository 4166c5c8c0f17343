#!/usr/bin/env bash
# Copies the generated CRD (crds/, the source of truth, regenerated from the Rust types with
# `insync-operator crd`) into the Helm chart, which must ship an identical copy: Helm installs
# CRDs only from a chart's own crds/ folder. operator/tests/chart_crd_sync.rs fails on drift.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/crds/insyncclouds.insync.dev.yaml"
dst="$root/charts/insync-operator/crds/insyncclouds.insync.dev.yaml"
if [[ ! -f "$src" ]]; then
  echo "sync-crds: $src is missing; generate it first: insync-operator crd > crds/insyncclouds.insync.dev.yaml" >&2
  exit 1
fi
mkdir -p "$(dirname "$dst")"
cp "$src" "$dst"
echo "sync-crds: copied crds/insyncclouds.insync.dev.yaml -> charts/insync-operator/crds/"
