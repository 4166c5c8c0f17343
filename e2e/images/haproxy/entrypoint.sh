#!/bin/sh
# Entrypoint of the e2e HAProxy image (HAProxy 2.6 from Debian), shaped like the official image's:
# no arguments, or arguments that start with "-", run haproxy; "haproxy ..." runs in
# master-worker mode in the foreground (-W -db) so that it logs to stdout and stops on SIGTERM;
# anything else is run as given. The default is
#   haproxy -W -db -f /usr/local/etc/haproxy/haproxy.cfg
# (the operator mounts its ConfigMap at /usr/local/etc/haproxy and renders no command).
#
# File descriptors need nothing here: the operator's haproxy.cfg sets no maxconn, so HAProxy
# derives it from the RLIMIT_NOFILE the runtime gives the container (docs/images.md).
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
exec haproxy -W -db "$@"
