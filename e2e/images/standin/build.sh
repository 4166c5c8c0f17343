#!/usr/bin/env bash
# Builds the stand-in cloudmaster/node program as one static binary.
#   e2e/images/standin/build.sh OUT_PATH
# Shares the Go module and build caches with the other e2e builds (~/.cache/insync-e2e).
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT_PATH" >&2
    exit 2
fi
out=$1
case "$out" in
    /*) ;;
    *) out="$PWD/$out" ;;
esac
cache="$HOME/.cache/insync-e2e"
mkdir -p "$(dirname "$out")"
cd "$(dirname "${BASH_SOURCE[0]}")"
env GOMODCACHE="$cache/gomodcache" GOCACHE="$cache/gocache" GOFLAGS=-mod=mod GOTOOLCHAIN=local \
    CGO_ENABLED=0 \
    nice go build -buildvcs=false -trimpath -ldflags "-s -w" -o "$out" .
