#!/bin/sh
# Entrypoint of the e2e HAProxy image (HAProxy 2.6 from Debian), shaped like the official image's:
# no arguments, or arguments that start with "-", run haproxy; "haproxy ..." runs in
# master-worker mode in the foreground (-W -db) so that it logs to stdout and stops on SIGTERM;
# anything else is run as given. The default is
#   haproxy -W -db -f /usr/local/etc/haproxy/haproxy.cfg
# (the operator mounts its ConfigMap at /usr/local/etc/haproxy and renders no command).
#
# File descriptors: HAProxy needs about 2 x maxconn of them and, with its default
# strict-limits, refuses to start when it cannot raise RLIMIT_NOFILE that far. Nobody but a
# privileged process can raise the hard limit, and the container runtime's may be lower than
# the configured maxconn needs (the operator renders maxconn 20000: 40033 descriptors). Then
# this entrypoint lowers maxconn to what the hard limit allows (haproxy -n, which overrides the
# configuration) and says so on stderr. Besides 2 per connection HAProxy keeps one descriptor
# per listener and per server slot (the storage nodes' server-template has 100), so 1000 are
# kept back for those.
set -eu

if [ "$#" -eq 0 ]; then
  set -- -f /usr/local/etc/haproxy/haproxy.cfg
fi
if [ "${1#-}" != "$1" ]; then
  set -- haproxy "$@"
fi
if [ "$1" != haproxy ]; then
  exec "$@"
fi
shift

cfg=""
prev=""
for a in "$@"; do
  if [ "$prev" = -f ]; then cfg=$a; fi
  prev=$a
done
if [ -n "$cfg" ] && [ -f "$cfg" ]; then
  want="$(awk '/^[ \t]*global([ \t]|$)/ { g = 1; next }
               /^[^ \t#]/ { g = 0 }
               g && $1 == "maxconn" { print $2; exit }' "$cfg")"
  # shellcheck disable=SC3045 # dash (/bin/sh here) has ulimit -H
  hard="$(ulimit -Hn)"
  if [ -n "$want" ] && [ "$hard" != unlimited ] && [ $((want * 2 + 1000)) -gt "$hard" ]; then
    n=$(((hard - 1000) / 2))
    echo "entrypoint: RLIMIT_NOFILE hard limit $hard is too low for maxconn $want; running with maxconn $n (haproxy -n $n)" >&2
    set -- -n "$n" "$@"
  fi
fi
exec haproxy -W -db "$@"
