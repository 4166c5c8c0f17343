#!/usr/bin/env bash
# Runs the stand-in's Go tests against real peers (a throwaway MariaDB, moto for DynamoDB and
# S3). The tests skip when a peer is missing, which suits a quick local run; here, where
# `make deps` has installed both, a missing peer is an error rather than a silent skip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=e2e/lib.sh
source ../../lib.sh
LOG_PREFIX=e2e/images/standin/test.sh
for peer in mariadbd mariadb-install-db moto_server; do
  command -v "$peer" >/dev/null || PATH="$PATH:/usr/sbin"
  command -v "$peer" >/dev/null || die "$peer is missing (make deps installs it)"
done
cache="$HOME/.cache/insync-e2e"
env GOMODCACHE="$cache/gomodcache" GOCACHE="$cache/gocache" GOFLAGS=-mod=mod GOTOOLCHAIN=local \
  CGO_ENABLED=0 go test -count=1 ./...
