# shellcheck shell=bash disable=SC2034  # its settings are read by the scripts that source it
# e2e/plane.sh — the local control plane's settings (cache, state, pinned tools, ports, addresses)
# and the helpers that e2e/cluster and its real node (e2e/node.sh) share: locks, processes and
# waits, certificates and kubeconfigs, kubectl. Both source it (twice is harmless): settings and
# definitions only, nothing runs. Sources e2e/lib.sh (log, die, the versions).

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=e2e/lib.sh
source "$E2E_DIR/lib.sh"

CACHE="${INSYNC_E2E_CACHE:-$HOME/.cache/insync-e2e}"
STATE="${INSYNC_E2E_STATE:-$HOME/.cache/insync-e2e/state}"
# (the pinned versions, KUBE_VERSION and the others: e2e/versions, which e2e/lib.sh sources)

# ---- ports (loopback only) --------------------------------------------------------------------
ETCD_PORT="${INSYNC_E2E_ETCD_PORT:-12379}"
ETCD_PEER_PORT="${INSYNC_E2E_ETCD_PEER_PORT:-12380}"
APISERVER_PORT="${INSYNC_E2E_APISERVER_PORT:-16443}"
KCM_PORT="${INSYNC_E2E_KCM_PORT:-16257}"
SCHEDULER_PORT="${INSYNC_E2E_SCHEDULER_PORT:-16259}"
KWOK_PORT="${INSYNC_E2E_KWOK_PORT:-16250}"
HOST=127.0.0.1

SERVICE_CIDR=10.96.0.0/16
POD_CIDR=10.244.0.0/16
UP_TIMEOUT="${INSYNC_E2E_UP_TIMEOUT:-180}"   # seconds for each wait in `up`

BIN="$CACHE/bin"
KUBE_BIN="$BIN/kubernetes-$KUBE_VERSION"
KWOK_BIN="$BIN/kwok-$KWOK_VERSION"
ETCD_BIN="$BIN/etcd-$ETCD_VERSION"
KUBECTL_BIN="$BIN/kubectl-$KUBECTL_VERSION"
HELM_BIN="$BIN/helm-$HELM_VERSION"
TOOLS="$BIN/path"               # symlinks to the pinned tools: put this on PATH

PKI="$STATE/pki"
LOGS="$STATE/logs"
RUN="$STATE/run"
KUBECONFIG_ADMIN="$STATE/kubeconfig"

# Go: everything (modules, build cache) under the e2e cache so a second build is reused.
export GOPATH="$CACHE/gopath" GOMODCACHE="$CACHE/gomodcache" GOCACHE="$CACHE/gocache"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"

# ---- locking: one `up`/`down` at a time, one tool install at a time ---------------------------
lock() { # lock FILE FD
  mkdir -p "$(dirname "$1")"
  eval "exec $2>\"\$1\""
  if ! flock -n "$2"; then
    log "waiting for lock $1 (another e2e/cluster is running)"
    flock "$2"
  fi
}

# ---- building Kubernetes ----------------------------------------------------------------------
kube_ldflags() { # the same for the control plane and the real node's kubelet/kube-proxy
  local pkg=k8s.io/component-base/version minor
  minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  echo "-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor" \
    "-X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
}

# check_kube_gomod : e2e/k8s/go.mod, what the Kubernetes binaries are built from, is the one
# e2e/k8s/gen-gomod.sh wrote for KUBE_VERSION (else the binaries would claim a version they are not)
check_kube_gomod() {
  grep -qE "^[[:space:]]*k8s\.io/kubernetes $KUBE_VERSION( |\$)" "$E2E_DIR/k8s/go.mod" \
    || die "KUBE_VERSION ($KUBE_VERSION) differs from e2e/k8s/go.mod: run e2e/k8s/gen-gomod.sh"
}

# ---- certificates and kubeconfigs (the CA is made by e2e/cluster's ensure_pki) ----------------
gen_cert() { # gen_cert NAME SUBJECT EXT_USAGE [SANS]   (signed by $SIGNER, default: ca)
  local name=$1 subj=$2 usage=$3 sans=${4:-} ca=${SIGNER:-ca}
  [[ -f "$PKI/$name.crt" ]] && return
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [[ -n "$sans" ]] && echo "subjectAltName=$sans"
  } > "$PKI/$name.ext"
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

write_kubeconfig() { # write_kubeconfig FILE CERTNAME USER
  local file=$1 cert=$2 user=$3   # rewritten each time: the apiserver port may have changed
  cat > "$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: insync-e2e
  cluster:
    server: https://$HOST:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 < "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 < "$PKI/$cert.crt")
    client-key-data: $(base64 -w0 < "$PKI/$cert.key")
contexts:
- name: insync-e2e
  context: {cluster: insync-e2e, user: $user}
current-context: insync-e2e
EOF
  chmod 600 "$file.tmp"; mv "$file.tmp" "$file"
}

# ---- processes --------------------------------------------------------------------------------
pid_of() { # prints the pid of a running component, or fails
  local f="$RUN/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # guard against a recycled pid: the process must be the binary we started
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "/$1 " || return 1
  echo "$pid"
}

start() { # start NAME BINARY ARGS...
  local name=$1; shift
  if pid_of "$name" >/dev/null; then return; fi
  log "starting $name (log: $LOGS/$name.log)"
  # A new session, so a Ctrl-C to the caller (e.g. cargo test) does not kill the cluster; no fd
  # of the caller is inherited (a caller that reads our stdout sees EOF when `up` returns), nor
  # our lock fds 8 and 9 (else the daemon would hold the lock forever).
  # shellcheck disable=SC2016 # $$, $0 and $@ are the new bash's own, not to expand here
  setsid bash -c 'echo $$ > "$0"; exec "$@"' "$RUN/$name.pid" "$@" \
    </dev/null >>"$LOGS/$name.log" 2>&1 8>&- 9>&- &
  local i
  for i in $(seq 50); do [[ -s "$RUN/$name.pid" ]] && break; sleep 0.1; done
}

stop() { # stop NAME... : SIGTERM the recorded pids together, wait, SIGKILL after 15s
  local name pid i alive
  local -A pids=()
  for name in "$@"; do
    if pid="$(pid_of "$name")"; then pids[$name]=$pid; kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for i in $(seq 150); do
    alive=0
    for name in "${!pids[@]}"; do kill -0 "${pids[$name]}" 2>/dev/null && alive=1; done
    (( alive )) || break
    sleep 0.1
  done
  for name in "${!pids[@]}"; do
    pid=${pids[$name]}
    if kill -0 "$pid" 2>/dev/null; then
      log "$name ($pid) did not stop in 15s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    log "stopped $name ($pid)"
  done
  for name in "$@"; do rm -f "$RUN/$name.pid"; done
}

fail_with_log() { # fail_with_log NAME MESSAGE
  log "ERROR: $2; last lines of $LOGS/$1.log:"
  tail -n 40 "$LOGS/$1.log" >&2 || true
  exit 1
}

wait_until() { # wait_until NAME TIMEOUT DESCRIPTION COMMAND... (NAME: the component to blame)
  local name=$1 timeout=$2 what=$3; shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [[ -n "$name" ]] && ! pid_of "$name" >/dev/null; then fail_with_log "$name" "$name exited while waiting for $what"; fi
    if (( SECONDS >= deadline )); then
      if [[ -n "$name" ]]; then fail_with_log "$name" "timed out after ${timeout}s waiting for $what"; fi
      die "timed out after ${timeout}s waiting for $what"
    fi
    sleep 0.5
  done
}

kc() { "$KUBECTL_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" --request-timeout=20s "$@"; }

port_listening() { # port_listening PORT
  if command -v ss >/dev/null; then
    [[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]
  else
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
  fi
}
