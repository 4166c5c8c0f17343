#!/bin/sh
# Entrypoint of the e2e MySQL image (MariaDB 10.11 from Debian), honouring the part of the
# official mysql image's contract that the operator renders (see docs/images.md, "mysql"):
#
#   MYSQL_ROOT_PASSWORD   root password (root@localhost and root@'%'); required on first start
#                         unless MYSQL_ALLOW_EMPTY_PASSWORD=yes
#   MYSQL_DATABASE        database created on first start
#   MYSQL_USER, MYSQL_PASSWORD
#                         user created on first start, '%' host, ALL on MYSQL_DATABASE
#   MARIADB_* spellings of the same variables are accepted too.
#
# First start = no /var/lib/mysql/mysql directory: mariadb-install-db, a socket-only temporary
# server sets the passwords and creates the database and user, it stops, and then mariadbd runs
# in the foreground (exec, so SIGTERM reaches it and it shuts down cleanly). A data directory
# that already holds a system database is never initialised again.
#
# Runs as any uid that owns /var/lib/mysql (the pod runs it as 999), with a read-only root:
# only /var/lib/mysql, /tmp and /var/run/mysqld are written.
set -eu

DATADIR=/var/lib/mysql
SOCKET=/var/run/mysqld/mysqld.sock

log() { printf '%s [entrypoint] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# "mysqld --flag" / "--flag" / nothing all mean: run the server with these extra flags.
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  set -- mariadbd "$@"
fi
case "$1" in
  mysqld|mariadbd) shift; set -- mariadbd "$@" ;;
  *) exec "$@" ;;
esac

: "${MYSQL_ROOT_PASSWORD:=${MARIADB_ROOT_PASSWORD:-}}"
: "${MYSQL_ALLOW_EMPTY_PASSWORD:=${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-}}"
: "${MYSQL_DATABASE:=${MARIADB_DATABASE:-}}"
: "${MYSQL_USER:=${MARIADB_USER:-}}"
: "${MYSQL_PASSWORD:=${MARIADB_PASSWORD:-}}"

# One SQL line (printf, not echo: dash's echo would eat the backslashes of escaped passwords).
sq() { printf '%s\n' "$1"; }
# SQL string literal / identifier quoting.
sql_str() { printf "'%s'" "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g")"; }
# shellcheck disable=SC2016 # backticks are SQL quoting here, not command substitution
sql_id() { printf '`%s`' "$(printf '%s' "$1" | sed -e 's/`/``/g')"; }

initialise() {
  if [ -z "$MYSQL_ROOT_PASSWORD" ]; then
    case "$MYSQL_ALLOW_EMPTY_PASSWORD" in
      yes|true|1) ;;
      *) die "database is uninitialised and MYSQL_ROOT_PASSWORD is not set (or MYSQL_ALLOW_EMPTY_PASSWORD=yes)" ;;
    esac
  fi
  if [ "$MYSQL_USER" = root ]; then die "MYSQL_USER=root: set MYSQL_ROOT_PASSWORD instead"; fi
  if [ -n "$MYSQL_USER" ] && [ -z "$MYSQL_PASSWORD" ]; then die "MYSQL_USER is set but MYSQL_PASSWORD is not"; fi

  log "initialising $DATADIR (empty data directory)"
  # A half-finished earlier attempt leaves files but no marker: start from scratch.
  find "$DATADIR" -mindepth 1 -delete
  if ! mariadb-install-db --datadir="$DATADIR" --auth-root-authentication-method=normal \
      --skip-test-db --skip-name-resolve >/tmp/mariadb-install-db.log 2>&1; then
    cat /tmp/mariadb-install-db.log >&2
    die "mariadb-install-db failed"
  fi

  mariadbd --datadir="$DATADIR" --skip-networking --socket="$SOCKET" --skip-log-bin \
    --innodb-buffer-pool-size=32M &
  pid=$!
  i=0
  until mariadb-admin --socket="$SOCKET" -uroot ping >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || die "temporary server exited during initialisation"
    i=$((i + 1)); [ "$i" -lt 300 ] || die "temporary server did not start in 30 s"
    sleep 0.1
  done

  {
    sq "SET @@SESSION.SQL_LOG_BIN=0;"
    # Anonymous users and root@<hostname> from mariadb-install-db.
    sq "DELETE FROM mysql.global_priv WHERE User='' OR (User='root' AND Host NOT IN ('localhost'));"
    sq "DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost', '%');"
    sq "FLUSH PRIVILEGES;"
    sq "ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_str "$MYSQL_ROOT_PASSWORD");"
    sq "CREATE USER 'root'@'%' IDENTIFIED BY $(sql_str "$MYSQL_ROOT_PASSWORD");"
    sq "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    sq "GRANT PROXY ON ''@'%' TO 'root'@'%' WITH GRANT OPTION;"
    if [ -n "$MYSQL_DATABASE" ]; then
      sq "CREATE DATABASE IF NOT EXISTS $(sql_id "$MYSQL_DATABASE");"
    fi
    if [ -n "$MYSQL_USER" ]; then
      sq "CREATE USER $(sql_str "$MYSQL_USER")@'%' IDENTIFIED BY $(sql_str "$MYSQL_PASSWORD");"
      if [ -n "$MYSQL_DATABASE" ]; then
        sq "GRANT ALL ON $(sql_id "$MYSQL_DATABASE").* TO $(sql_str "$MYSQL_USER")@'%';"
      fi
    fi
    sq "FLUSH PRIVILEGES;"
  } | mariadb --socket="$SOCKET" -uroot --batch || die "setting up users and database failed"

  for f in /docker-entrypoint-initdb.d/*; do
    [ -e "$f" ] || continue
    case "$f" in
      *.sh)  log "running $f"
             # shellcheck disable=SC1090 # init scripts are mounted by the user
             . "$f" ;;
      *.sql) log "running $f"; MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mariadb --socket="$SOCKET" -uroot ${MYSQL_DATABASE:+"$MYSQL_DATABASE"} < "$f" ;;
      *)     log "ignoring $f" ;;
    esac
  done

  kill -TERM "$pid"
  wait "$pid" || die "temporary server did not stop cleanly"
  log "initialised: database '${MYSQL_DATABASE}', user '${MYSQL_USER}'"
}

[ -w "$DATADIR" ] || die "$DATADIR is not writable by uid $(id -u)"
if [ -d "$DATADIR/mysql" ]; then
  log "$DATADIR already holds a database: not initialising"
else
  initialise
fi

exec "$@"
