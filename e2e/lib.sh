# shellcheck shell=bash
# e2e/lib.sh — what the e2e shell scripts share; each sources it (sourcing it again is harmless):
# logging, and the pinned versions of e2e/versions. Definitions only: safe under `set -euo pipefail`.
#
# A script names itself in its log lines by setting LOG_PREFIX:
#   LOG_PREFIX=e2e/cluster; log "up"   ->   [e2e/cluster 23:33:28] up      (on stderr)

# shellcheck source=e2e/versions
source "$(dirname "${BASH_SOURCE[0]}")/versions"

# log MESSAGE... : one line on stderr, "[LOG_PREFIX HH:MM:SS] MESSAGE".
log() { printf '[%s %(%H:%M:%S)T] %s\n' "${LOG_PREFIX:-e2e}" -1 "$*" >&2; }

# die MESSAGE... : logs "ERROR: MESSAGE" and exits 1 (inside $(...) or ( ), that subshell).
die() { log "ERROR: $*"; exit 1; }

# say TITLE... : a bold step title on stdout, for a person watching (the demo).
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
