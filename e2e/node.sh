# shellcheck shell=bash
# e2e/node.sh — the real node of `e2e/cluster up --real-node`; sourced by e2e/cluster. What it
# shares with the control plane (CACHE, STATE, PKI, the ports and ranges, the versions, log, die,
# lock, start, stop, pid_of, wait_until, kc, gen_cert, write_kubeconfig, ...) is e2e/plane.sh's.
#
# One node, insync-real-0, beside the 3 kwok nodes: containerd (Debian's) + runc + CNI bridge,
# kubelet and kube-proxy built from e2e/k8s, CoreDNS built from e2e/coredns, kube-router (its
# NetworkPolicy controller only; INSYNC_E2E_ENFORCE_POLICIES=0 leaves it out). It runs
# real containers from images imported into containerd; nothing is ever pulled. See docs/e2e.md
# ("Real node") for the addresses, routes, and why each setting is there.

# shellcheck source=e2e/plane.sh
source "$(dirname "${BASH_SOURCE[0]}")/plane.sh"

# ---- settings (the versions, KUBE_VERSION and COREDNS_VERSION: e2e/versions) ------------------
NODE_DEBS=(containerd runc containernetworking-plugins umoci gcc libc6-dev iptables iproute2 busybox-static socat ipset)
NODE_NAME=insync-real-0
NODE_LABEL=insync.dev/real-node  # label and taint key (value "true"; taint effect NoSchedule)
KUBE_NODE_BIN="$BIN/kubernetes-node-$KUBE_VERSION"   # kubelet, kube-proxy (plain `up` needs neither)
COREDNS_BIN="$BIN/coredns-$COREDNS_VERSION"
KUBE_ROUTER_BIN="$BIN/kube-router-$KUBE_ROUTER_VERSION"
IMAGES_CACHE="$CACHE/node-images"
# The $STATE whose node owns the machine-wide bridge and routes. Kept machine-wide too (in /run,
# gone at reboot like the bridge), not in $CACHE: a plane of another user's (or another HOME's)
# cache must see that the bridge is taken, or its `down` deletes it from under a running node.
NODE_OWNER=/run/insync-e2e/real-node.owner

NODE="$STATE/node"               # everything of the node: containerd root/state, kubelet root, PVs
CONTAINERD_SOCK="$NODE/containerd/containerd.sock"
KUBELET_ROOT="$NODE/kubelet"
PV_DIR="$NODE/volumes"           # the local PersistentVolumes (kept by `down`, wiped by --purge)
BRIDGE=insync-br0
NODE_SUBNET=10.244.100.0/24      # this node's pods, inside POD_CIDR
NODE_GW=10.244.100.1             # the bridge's address: pods' gateway and the cluster DNS
CNI_NETWORK=insync-e2e
CGROUP_ROOT=insync-e2e           # kubelet's cgroupRoot: /sys/fs/cgroup/<controller>/insync-e2e

KUBELET_PORT="${INSYNC_E2E_KUBELET_PORT:-16262}"            # on the node IP (the apiserver calls it)
KUBELET_HEALTHZ_PORT="${INSYNC_E2E_KUBELET_HEALTHZ_PORT:-16263}"
KUBE_PROXY_HEALTHZ_PORT="${INSYNC_E2E_KUBE_PROXY_HEALTHZ_PORT:-16264}"
KUBE_PROXY_METRICS_PORT="${INSYNC_E2E_KUBE_PROXY_METRICS_PORT:-16265}"
COREDNS_READY_PORT="${INSYNC_E2E_COREDNS_READY_PORT:-16266}"
KUBE_ROUTER_HEALTH_PORT="${INSYNC_E2E_KUBE_ROUTER_HEALTH_PORT:-16267}"   # kube-router binds it on all addresses

# NetworkPolicy enforcement on the real node: kube-router's firewall (policy) controller, on by
# default; INSYNC_E2E_ENFORCE_POLICIES=0 runs the node without it (policies are then ignored)
ENFORCE_POLICIES="${INSYNC_E2E_ENFORCE_POLICIES:-1}"
KUBE_ROUTER_TIMEOUT=30           # seconds for kube-router to answer /healthz and install its chains
# What kube-router's policy controller leaves in the kernel (filter table, IPv4; IPv6 when enabled)
KUBE_ROUTER_CHAINS='^(KUBE-ROUTER-|KUBE-POD-FW-|KUBE-NWPLCY-)'
# its sets: KUBE-SRC-/KUBE-DST- + 16 base32 characters, the TMP- sets of its atomic swaps (left
# behind only by a crash), each with "inet6:" in front for IPv6
KUBE_ROUTER_SETS='^(inet6:)?(KUBE-SRC-|KUBE-DST-|TMP-)[A-Z2-7]{16}$'

PAUSE_IMAGE=registry.k8s.io/pause:3.10-insync-local
BUSYBOX_IMAGE=registry.k8s.io/insync-e2e/busybox:1.35.0-insync-local   # Debian busybox-static
# Registries whose names may appear in image references: each one (and "*", any other) is
# mirrored to a dead loopback endpoint, and containerd's HTTP(S) proxy is that same dead
# endpoint, so a missing image fails at once and no pull ever leaves the machine.
DEAD_ENDPOINT=http://127.0.0.1:1
MIRRORED_REGISTRIES=(docker.io registry.k8s.io registry.example.com ghcr.io quay.io gcr.io
                     k8s.gcr.io public.ecr.aws mcr.microsoft.com '*')
LOCAL_PV_COUNT=48   # five claims per cloud: room for several real clouds at once (24 ran out at three)
LOCAL_PV_SIZE=4Ti

NODE_COMPONENTS=(containerd coredns kube-proxy kubelet apiserver-proxy)
# sysctls that `up --real-node` (or kubelet/kube-proxy) change; saved before and restored by `down`
NODE_SYSCTLS=(net.ipv4.ip_forward net.ipv4.conf.all.route_localnet
              net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
              vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
              kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

node_ports() { echo "$KUBELET_PORT $KUBELET_HEALTHZ_PORT $KUBE_PROXY_HEALTHZ_PORT $KUBE_PROXY_METRICS_PORT $COREDNS_READY_PORT $KUBE_ROUTER_HEALTH_PORT"; }
enforcer_on() { [[ "$ENFORCE_POLICIES" != 0 ]]; }
node_ip() { ip -4 route get 1 | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1; }  # sends nothing
node_dev() { ip -4 route show default | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -n1; }
ctr_() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

# ---- tools ------------------------------------------------------------------------------------
ensure_node_debs() {
  local p missing=()
  for p in "${NODE_DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  (( ${#missing[@]} == 0 )) && return
  (( EUID == 0 )) || die "the real node needs root and Debian packages: ${missing[*]}"
  log "installing Debian packages ${missing[*]} (log: $CACHE/apt-node.log)"
  { apt-get install -y --no-install-recommends "${missing[@]}" \
    || { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }; } \
    >"$CACHE/apt-node.log" 2>&1 || { tail -n 20 "$CACHE/apt-node.log" >&2; die "apt-get install failed"; }
}

build_kube_node() {
  [[ -x "$KUBE_NODE_BIN/kubelet" && -x "$KUBE_NODE_BIN/kube-proxy" ]] && return
  check_kube_gomod
  local tmp="$KUBE_NODE_BIN.tmp.$$" start=$SECONDS
  log "building kubelet, kube-proxy $KUBE_VERSION (log: $CACHE/build-kubernetes-node.log)"
  mkdir -p "$tmp"
  if ! (cd "$E2E_DIR/k8s" && nice go build -trimpath -ldflags "$(kube_ldflags)" -o "$tmp/" \
        k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy) >"$CACHE/build-kubernetes-node.log" 2>&1; then
    tail -n 30 "$CACHE/build-kubernetes-node.log" >&2; rm -rf "$tmp"; die "building kubelet/kube-proxy failed"
  fi
  rm -rf "$KUBE_NODE_BIN"; mv "$tmp" "$KUBE_NODE_BIN"
  log "built kubelet, kube-proxy $KUBE_VERSION in $((SECONDS - start))s"
}

build_coredns() {
  [[ -x "$COREDNS_BIN/coredns" ]] && return
  grep -q "github.com/coredns/coredns $COREDNS_VERSION\$" "$E2E_DIR/coredns/go.mod" \
    || die "COREDNS_VERSION ($COREDNS_VERSION) differs from e2e/coredns/go.mod"
  local tmp="$COREDNS_BIN.tmp.$$" start=$SECONDS
  log "building CoreDNS $COREDNS_VERSION (log: $CACHE/build-coredns.log)"
  mkdir -p "$tmp"
  if ! (cd "$E2E_DIR/coredns" && nice go build -trimpath -ldflags "-s -w" -o "$tmp/coredns" .) \
        >"$CACHE/build-coredns.log" 2>&1; then
    tail -n 30 "$CACHE/build-coredns.log" >&2; rm -rf "$tmp"; die "building CoreDNS failed"
  fi
  rm -rf "$COREDNS_BIN"; mv "$tmp" "$COREDNS_BIN"
  log "built CoreDNS $COREDNS_VERSION in $((SECONDS - start))s"
}

build_kube_router() {
  [[ -x "$KUBE_ROUTER_BIN/kube-router" ]] && return
  command -v go >/dev/null || die "go is needed to build kube-router $KUBE_ROUTER_VERSION"
  local tmp="$KUBE_ROUTER_BIN.tmp.$$" start=$SECONDS
  log "building kube-router $KUBE_ROUTER_VERSION (cold: ~3 min; log: $CACHE/build-kube-router.log)"
  mkdir -p "$tmp"
  if ! (cd "$tmp" && GOBIN="$tmp" nice go install -trimpath -ldflags "-s -w" \
        "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION") \
        >"$CACHE/build-kube-router.log" 2>&1; then
    tail -n 30 "$CACHE/build-kube-router.log" >&2; rm -rf "$tmp"; die "building kube-router failed"
  fi
  rm -rf "$KUBE_ROUTER_BIN"; mv "$tmp" "$KUBE_ROUTER_BIN"
  log "built kube-router $KUBE_ROUTER_VERSION in $((SECONDS - start))s"
}

# The sandbox ("pause") process: PID 1 of every pod, reaps zombies, exits on SIGINT/SIGTERM.
PAUSE_C='#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
static void down(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
  struct sigaction a = {0}, r = {0};
  if (getpid() != 1) fprintf(stderr, "pause: not running as PID 1\n");
  a.sa_handler = down; sigaction(SIGINT, &a, NULL); sigaction(SIGTERM, &a, NULL);
  r.sa_handler = reap; r.sa_flags = SA_NOCLDSTOP; sigaction(SIGCHLD, &r, NULL);
  for (;;) pause();
}
'

make_image_tar() { # make_image_tar OUT.tar TAG ROOTFS_DIR UMOCI_CONFIG_ARGS...
  local out=$1 tag=$2 src=$3 work; shift 3
  work="$(mktemp -d "$IMAGES_CACHE/work.XXXXXX")"
  {
    umoci init --layout "$work/oci"
    umoci new --image "$work/oci:$tag"
    umoci unpack --image "$work/oci:$tag" "$work/bundle"
    cp -a "$src/." "$work/bundle/rootfs/"
    umoci repack --image "$work/oci:$tag" "$work/bundle"
    umoci config --image "$work/oci:$tag" "$@"
    umoci gc --layout "$work/oci"
    tar -C "$work/oci" -cf "$out.tmp" .
  } >>"$IMAGES_CACHE/build.log" 2>&1 || { rm -rf "$work"; tail -n 20 "$IMAGES_CACHE/build.log" >&2; die "building image $tag failed"; }
  mv "$out.tmp" "$out"; rm -rf "$work"
}

# Each image tarball is named by a hash of what goes in, so it is built once per content.
build_node_images() {
  mkdir -p "$IMAGES_CACHE"
  local key root
  key="$(printf '%s' "$PAUSE_C" "$(gcc --version | head -n1)" | sha256sum | cut -c1-16)"
  PAUSE_TAR="$IMAGES_CACHE/pause-$key.tar"
  if [[ ! -f "$PAUSE_TAR" ]]; then
    log "building $PAUSE_IMAGE (static pause, umoci)"
    root="$(mktemp -d "$IMAGES_CACHE/root.XXXXXX")"
    printf '%s' "$PAUSE_C" > "$root/pause.c"
    gcc -static -Os -s -o "$root/pause" "$root/pause.c" || die "compiling pause failed"
    rm "$root/pause.c"
    make_image_tar "$PAUSE_TAR" "${PAUSE_IMAGE##*:}" "$root" \
      --config.entrypoint /pause --config.user 65535:65535
    rm -rf "$root"
  fi
  key="$(sha256sum /bin/busybox | cut -c1-16)"
  BUSYBOX_TAR="$IMAGES_CACHE/busybox-$key.tar"
  if [[ ! -f "$BUSYBOX_TAR" ]]; then
    log "building $BUSYBOX_IMAGE (Debian busybox-static, umoci)"
    root="$(mktemp -d "$IMAGES_CACHE/root.XXXXXX")"
    mkdir -p "$root/bin" "$root/etc"
    cp /bin/busybox "$root/bin/busybox"
    chroot "$root" /bin/busybox --install -s /bin
    echo 'nobody:x:65534:65534:nobody:/:/bin/false' > "$root/etc/passwd"
    make_image_tar "$BUSYBOX_TAR" "${BUSYBOX_IMAGE##*:}" "$root" --config.cmd /bin/sh
    rm -rf "$root"
  fi
}

import_image() { # import_image REF TAR  (skipped when containerd already has that exact tarball)
  local ref=$1 tar=$2 stamp
  stamp="$NODE/containerd/imported-$(basename "$2")"
  [[ -f "$stamp" ]] && ctr_ images ls -q "name==$ref" 2>/dev/null | grep -qx "$ref" && return
  ctr_ images import --base-name "${ref%:*}" "$tar" >/dev/null || die "importing $tar as $ref failed"
  ctr_ images ls -q "name==$ref" | grep -qx "$ref" || die "after import, containerd has no image $ref"
  touch "$stamp"
}

# ---- host networking -------------------------------------------------------------------------
# Fails when an address this machine uses (resolver, routes, interface addresses) lies inside
# the pod or service range: routing those ranges locally would cut the machine off it.
check_ranges_free() {
  python3 - "$POD_CIDR" "$SERVICE_CIDR" "$BRIDGE" <<'EOF' || die "the pod/service ranges overlap an address in use here (see above); not routing them"
import ipaddress, re, subprocess, sys
nets = [ipaddress.ip_network(n) for n in sys.argv[1:3]]
bridge = sys.argv[3]
seen = []
for line in open("/etc/resolv.conf"):
    f = line.split()
    if len(f) >= 2 and f[0] == "nameserver":
        seen.append(("resolver", f[1]))
out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
for line in out.splitlines():
    if f"dev {bridge} " in line + " " or line.startswith("unreachable " + sys.argv[1]):
        continue  # ours
    for tok in re.findall(r"\d+\.\d+\.\d+\.\d+(?:/\d+)?", line):
        seen.append(("route: " + line.strip(), tok))
out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
for line in out.splitlines():
    if f" {bridge} " in line:
        continue
    m = re.search(r"inet (\S+)", line)
    if m:
        seen.append(("address: " + line.split()[1], m.group(1)))
bad = 0
for what, tok in seen:
    n = ipaddress.ip_network(tok, strict=False)
    if n.prefixlen == 0:
        continue  # default route
    for r in nets:
        if n.overlaps(r):
            print(f"{tok} ({what}) overlaps {r}", file=sys.stderr); bad = 1
sys.exit(bad)
EOF
}

save_sysctls() {
  [[ -f "$NODE/sysctl.saved" ]] && return   # keep the values from before the first `up`
  local k
  for k in "${NODE_SYSCTLS[@]}"; do
    [[ -e "/proc/sys/${k//.//}" ]] && echo "$k=$(cat "/proc/sys/${k//.//}")"
  done > "$NODE/sysctl.saved.tmp"
  mv "$NODE/sysctl.saved.tmp" "$NODE/sysctl.saved"
}

restore_sysctls() {
  [[ -f "$NODE/sysctl.saved" ]] || return 0
  local line
  while IFS= read -r line; do
    [[ -n "$line" ]] && { sysctl -q -w "$line" >/dev/null || log "WARNING: could not restore $line"; }
  done < "$NODE/sysctl.saved"
  rm -f "$NODE/sysctl.saved"
}

# The order matters: the bridge (with the gateway address) first, then the two routes, then
# anything that may send to a pod or service address.
node_network_up() {
  check_ranges_free
  save_sysctls
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  sysctl -q -w "net.ipv6.conf.$BRIDGE.disable_ipv6=1" >/dev/null 2>&1 || true
  ip addr replace "$NODE_GW/${NODE_SUBNET#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # the pod range beyond this node's /24: unreachable (the bridge's /24 is more specific, wins)
  ip route replace unreachable "$POD_CIDR"
  # the service range: to the bridge, so kube-proxy's OUTPUT DNAT works and unmatched packets
  # stay on the bridge (an `unreachable` route would fail before DNAT happens)
  ip route replace "$SERVICE_CIDR" dev "$BRIDGE"
  # nothing from the bridge is forwarded anywhere but the bridge (pods have no route out anyway),
  # and nothing is forwarded from the uplink back out of it
  local dev; dev="$(node_dev)"
  iptables -w -N INSYNC-E2E-FWD 2>/dev/null || iptables -w -F INSYNC-E2E-FWD
  iptables -w -A INSYNC-E2E-FWD -i "$BRIDGE" -o "$BRIDGE" -j RETURN
  iptables -w -A INSYNC-E2E-FWD -i "$BRIDGE" -j REJECT --reject-with icmp-net-unreachable
  iptables -w -A INSYNC-E2E-FWD -o "$BRIDGE" -j DROP
  [[ -n "$dev" ]] && iptables -w -A INSYNC-E2E-FWD -i "$dev" -o "$dev" -j DROP
  iptables -w -C FORWARD -j INSYNC-E2E-FWD 2>/dev/null || iptables -w -I FORWARD 1 -j INSYNC-E2E-FWD
  sysctl -q -w net.bridge.bridge-nf-call-iptables=1 >/dev/null
  sysctl -q -w net.ipv4.ip_forward=1 >/dev/null
}

# ---- configuration files ---------------------------------------------------------------------
write_node_configs() {
  local ip=$1 r
  mkdir -p "$NODE/containerd" "$NODE/cni/net.d" "$NODE/cni/ipam" "$KUBELET_ROOT" "$NODE/pod-logs" \
           "$NODE/kubelet-plugins" "$PV_DIR"
  {
    cat <<EOF
# generated by e2e/cluster up --real-node
version = 2
root = "$NODE/containerd/root"
state = "$NODE/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  # pods' network namespaces under our state dir, not /run/netns
  netns_mounts_under_state_dir = true
  sandbox_image = "$PAUSE_IMAGE"
  # root here lacks CAP_SYS_RESOURCE: never lower oom_score_adj (runc fails otherwise)
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE/cni/net.d"
    max_conf_num = 1
EOF
    for r in "${MIRRORED_REGISTRIES[@]}"; do
      printf '  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."%s"]\n    endpoint = ["%s"]\n' "$r" "$DEAD_ENDPOINT"
    done
  } > "$NODE/containerd/config.toml"

  # loopback: containerd's CRI sets up lo itself with /usr/lib/cni/loopback. The pods get routes
  # to the pod and service ranges and the node IP only: no default route, nothing to go out by.
  cat > "$NODE/cni/net.d/10-$CNI_NETWORK.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "isDefaultGateway": false,
      "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$NODE/cni/ipam",
        "ranges": [[{"subnet": "$NODE_SUBNET", "gateway": "$NODE_GW"}]],
        "routes": [{"dst": "$POD_CIDR"}, {"dst": "$SERVICE_CIDR"}, {"dst": "$ip/32"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

  # pods with dnsPolicy Default get this too: the cluster DNS, never the host's resolver
  echo "nameserver $NODE_GW" > "$NODE/resolv.conf"

  cat > "$NODE/Corefile" <<EOF
# generated by e2e/cluster up --real-node: the cluster zones only, no forwarding
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $NODE_GW
    ready 127.0.0.1:$COREDNS_READY_PORT
    errors
    cache 5
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $NODE/coredns.kubeconfig insync-e2e
        pods insecure
        ttl 5
    }
}
EOF

  cat > "$NODE/kubelet.yaml" <<EOF
# generated by e2e/cluster up --real-node (tests only: AlwaysAllow authorization)
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ip
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: AlwaysAllow}
podCIDR: $NODE_SUBNET
clusterDNS: [$NODE_GW]
clusterDomain: cluster.local
resolvConf: $NODE/resolv.conf
enforceNodeAllocatable: []
localStorageCapacityIsolation: false
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
volumePluginDir: $NODE/kubelet-plugins
podLogsDir: $NODE/pod-logs
serializeImagePulls: false
registerWithTaints:
- {key: $NODE_LABEL, value: "true", effect: NoSchedule}
EOF

  cat > "$NODE/kube-proxy.yaml" <<EOF
# generated by e2e/cluster up --real-node
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $NODE/kube-proxy.kubeconfig}
mode: iptables
hostnameOverride: $NODE_NAME
bindAddress: $ip
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
# NodePorts answer on the node IP and on 127.0.0.1 (kube-proxy sets route_localnet for that)
nodePortAddresses: [$ip/32, 127.0.0.1/32]
iptables: {localhostNodePorts: true, syncPeriod: 30s, minSyncPeriod: 1s}
# 0: leave the host's conntrack settings alone
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

node_pki() {
  gen_cert "node-$NODE_NAME" "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  gen_cert kube-proxy "/CN=system:kube-proxy" clientAuth
  gen_cert coredns "/CN=system:coredns" clientAuth
  write_kubeconfig "$NODE/kubelet.kubeconfig" "node-$NODE_NAME" "system:node:$NODE_NAME"
  write_kubeconfig "$NODE/kube-proxy.kubeconfig" kube-proxy system:kube-proxy
  write_kubeconfig "$NODE/coredns.kubeconfig" coredns system:coredns
  if enforcer_on; then   # reads pods, namespaces, policies, nodes cluster-wide (like kwok: masters)
    gen_cert kube-router "/O=system:masters/CN=insync-e2e-kube-router" clientAuth
    write_kubeconfig "$NODE/kube-router.kubeconfig" kube-router insync-e2e-kube-router
  fi
}

node_manifests() {
  cat <<EOF
# RBAC authorizes the kubelet as system:nodes (no Node authorizer on this control plane)
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "insync-e2e:system:nodes"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:node"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "system:nodes"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "insync-e2e:coredns"}
rules:
- {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "insync-e2e:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "insync-e2e:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}]
---
# kubernetes.default for pods: the apiserver-proxy on the bridge address (the control plane
# runs with --endpoint-reconciler-type=none and listens on loopback)
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kubernetes-insync-e2e
  namespace: default
  labels: {kubernetes.io/service-name: kubernetes, endpointslice.kubernetes.io/managed-by: insync-e2e}
addressType: IPv4
endpoints: [{addresses: ["$NODE_GW"], conditions: {ready: true}}]
ports: [{name: https, port: $APISERVER_PORT, protocol: TCP}]
---
# local volumes on the real node: pre-created, kubelet applies fsGroup ownership to them
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: insync-local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
  local i name
  for ((i = 0; i < LOCAL_PV_COUNT; i++)); do
    printf -v name '%s-pv-%02d' "$NODE_NAME" "$i"
    mkdir -p "$PV_DIR/$name"; chmod 0777 "$PV_DIR/$name"
    cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $name
  labels: {insync.dev/local-pool: "true"}
spec:
  capacity: {storage: $LOCAL_PV_SIZE}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: insync-local
  volumeMode: Filesystem
  local: {path: $PV_DIR/$name}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [$NODE_NAME]}]
EOF
  done
}

# A Released local PV (its claim is gone) is wiped and made Available again, so the pool of
# $LOCAL_PV_COUNT volumes does not run dry across test runs.
recycle_local_pvs() {
  local name
  for name in $(kc get pv -l insync.dev/local-pool=true \
      -o 'jsonpath={range .items[?(@.status.phase=="Released")]}{.metadata.name}{"\n"}{end}'); do
    [[ "$name" =~ ^$NODE_NAME-pv-[0-9]+$ && -d "$PV_DIR/$name" ]] || continue
    find "$PV_DIR/$name" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system {} +
    chown root:root "$PV_DIR/$name"; chmod 0777 "$PV_DIR/$name"
    kc patch pv "$name" --type=json -p='[{"op":"remove","path":"/spec/claimRef"}]' >/dev/null \
      && log "recycled local PV $name"
  done
}

make_cgroup_root() {
  local c d
  for c in /sys/fs/cgroup/*/; do
    c="${c%/}"
    [[ "$(basename "$c")" == unified ]] && continue
    d="$c/$CGROUP_ROOT"
    mkdir -p "$d" 2>/dev/null || continue
    if [[ -f "$c/cpuset.cpus" && -z "$(cat "$d/cpuset.cpus")" ]]; then
      cat "$c/cpuset.cpus" > "$d/cpuset.cpus"; cat "$c/cpuset.mems" > "$d/cpuset.mems"
    fi
  done
}

# ---- the NetworkPolicy enforcer (kube-router's policy controller) -----------------------------
kube_router_ready() { # /healthz answers and its jump from FORWARD is in place
  curl -sf --max-time 2 "http://127.0.0.1:$KUBE_ROUTER_HEALTH_PORT/healthz" >/dev/null \
    && iptables -w -S FORWARD 2>/dev/null | grep -q -- '-j KUBE-ROUTER-FORWARD'
}

# Started once the node is Ready (it reads its own Node object). A kube-router that does not come
# up in time is stopped again and its rules removed: no half-programmed firewall stays behind.
enforcer_up() {
  pid_of kube-router >/dev/null && kube_router_ready && return 0
  [[ -x "$KUBE_ROUTER_BIN/kube-router" ]] || die "kube-router is not built ($KUBE_ROUTER_BIN)"
  command -v ipset >/dev/null || die "ipset is needed for kube-router (apt-get install ipset)"
  if ! pid_of kube-router >/dev/null && port_listening "$KUBE_ROUTER_HEALTH_PORT"; then
    die "port $KUBE_ROUTER_HEALTH_PORT (for kube-router) is already in use; set INSYNC_E2E_KUBE_ROUTER_HEALTH_PORT"
  fi
  # --cleanup-config crashes here; `down` removes its chains and sets itself (kube_router_cleanup)
  start kube-router "$KUBE_ROUTER_BIN/kube-router" --kubeconfig="$NODE/kube-router.kubeconfig" \
    --run-firewall=true --run-router=false --run-service-proxy=false \
    --hostname-override="$NODE_NAME" --service-cluster-ip-range="$SERVICE_CIDR" \
    --metrics-port=0 --health-port="$KUBE_ROUTER_HEALTH_PORT"
  local deadline=$((SECONDS + KUBE_ROUTER_TIMEOUT)) why=""
  until kube_router_ready; do
    pid_of kube-router >/dev/null || why="exited"
    [[ -z "$why" ]] && (( SECONDS >= deadline )) && why="did not answer /healthz with its chains in place within ${KUBE_ROUTER_TIMEOUT}s"
    if [[ -n "$why" ]]; then
      log "ERROR: kube-router $why; last lines of $LOGS/kube-router.log:"
      tail -n 40 "$LOGS/kube-router.log" >&2 || true
      enforcer_down || true
      die "the NetworkPolicy enforcer did not come up (INSYNC_E2E_ENFORCE_POLICIES=0 runs the real node without it)"
    fi
    sleep 0.5
  done
  log "kube-router $KUBE_ROUTER_VERSION enforces NetworkPolicies on $NODE_NAME (healthz :$KUBE_ROUTER_HEALTH_PORT)"
}

# kube_router_leftovers: prints what is left of kube-router's rules and sets
kube_router_leftovers() {
  local ipt n s
  for ipt in iptables ip6tables; do
    command -v "$ipt-save" >/dev/null || continue
    n="$("$ipt-save" 2>/dev/null | grep -cE "(^:| -j )${KUBE_ROUTER_CHAINS#^}" || true)"
    [[ "$n" == 0 ]] || echo "$ipt-save: $n lines with kube-router chains"
  done
  if command -v ipset >/dev/null; then
    for s in $(ipset list -n 2>/dev/null); do [[ "$s" =~ $KUBE_ROUTER_SETS ]] && echo "ipset $s"; done
  fi
  return 0
}

# kube_router_cleanup: what kube-router's --cleanup-config should do (it crashes
# here): the jumps from INPUT/FORWARD/OUTPUT (and any other chain) to its chains, its chains in
# every table (IPv4 and IPv6), then its ipsets (only once no rule refers to them). Stop kube-router
# first, it re-creates them. Idempotent: nothing there, nothing done. Fails when something stays.
# (Tests may narrow the sets it destroys: KUBE_ROUTER_SETS=REGEX kube_router_cleanup.)
kube_router_cleanup() {
  local ipt s left
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null && delete_chains "$ipt" "$KUBE_ROUTER_CHAINS"
  done
  if command -v ipset >/dev/null; then
    # list:set sets may hold other sets: two rounds destroy those before their members
    for _ in 1 2; do
      for s in $(ipset list -n 2>/dev/null); do
        [[ "$s" =~ $KUBE_ROUTER_SETS ]] && { ipset destroy "$s" 2>/dev/null || true; }
      done
    done
  fi
  left="$(kube_router_leftovers)"
  if [[ -n "$left" ]]; then
    log "ERROR: kube-router's rules or sets are left:"; printf '  %s\n' "${left//$'\n'/$'\n'  }" >&2
    return 1
  fi
  return 0
}

enforcer_down() { # stop kube-router, then remove everything it programmed
  stop kube-router
  kube_router_cleanup
}

# ---- up ----------------------------------------------------------------------------------------
node_base_ready() { # the node's processes run, its routes are there, and it is Ready
  local name
  for name in "${NODE_COMPONENTS[@]}"; do pid_of "$name" >/dev/null || return 1; done
  ip route show type unreachable "$POD_CIDR" | grep -q . || return 1
  [[ "$(kc get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}

node_is_ready() { # ... and the enforcer runs exactly when it is switched on (else `up` fixes that)
  if enforcer_on; then pid_of kube-router >/dev/null || return 1
  elif pid_of kube-router >/dev/null; then return 1; fi
  node_base_ready
}

run_images_build() {
  [[ -x "$E2E_DIR/images/build" ]] || return 0
  log "importing component images: e2e/images/build --import $CONTAINERD_SOCK"
  # not fatal: the real node is useful without the component images (pods naming a missing one
  # stay in ErrImageNeverPull / ImagePullBackOff, and no pull leaves the machine)
  "$E2E_DIR/images/build" --import "$CONTAINERD_SOCK" >&2 \
    || log "WARNING: e2e/images/build --import failed (see above): component images may be missing on $NODE_NAME"
}

node_up() {
  local start=$SECONDS
  if node_is_ready 2>/dev/null; then
    # (e2e/images/build is not run here: it may rebuild images, and this path must stay instant;
    # run `e2e/images/build --import <containerd socket>` for fresh images on a running node)
    recycle_local_pvs
    log "real node $NODE_NAME already up"
    return 0
  fi
  (( EUID == 0 )) || die "--real-node needs root (containers, routes, iptables)"
  ensure_node_debs
  lock "$CACHE/install.lock" 8
  build_kube_node
  build_coredns
  if enforcer_on; then build_kube_router; fi
  exec 8>&-
  build_node_images
  mkdir -p "$NODE"; touch "$NODE/enabled"
  if enforcer_on; then echo on; else echo off; fi > "$NODE/enforce-policies"   # for `status`
  # The bridge, routes and iptables chains are machine-wide: say which state owns them, so a
  # private plane's `down --purge` (the bench's) never tears down this one's node.
  mkdir -p "$(dirname "$NODE_OWNER")"
  echo "$STATE" >"$NODE_OWNER"
  local ip; ip="$(node_ip)"
  [[ -n "$ip" ]] || die "cannot tell this host's primary address (ip route get 1)"
  node_pki
  write_node_configs "$ip"
  local name port
  for name in "${NODE_COMPONENTS[@]}"; do pid_of "$name" >/dev/null && continue
    case $name in kubelet) port="$KUBELET_PORT $KUBELET_HEALTHZ_PORT" ;; kube-proxy) port="$KUBE_PROXY_HEALTHZ_PORT $KUBE_PROXY_METRICS_PORT" ;;
                  coredns) port="$COREDNS_READY_PORT" ;; *) port="" ;; esac
    for port in $port; do port_listening "$port" && die "port $port (for $name) is already in use; see INSYNC_E2E_*_PORT in docs/e2e.md"; done
  done
  node_network_up
  make_cgroup_root

  # no registry is reachable: a dead proxy for anything the mirrors do not catch
  start containerd env HTTP_PROXY="$DEAD_ENDPOINT" HTTPS_PROXY="$DEAD_ENDPOINT" \
    http_proxy="$DEAD_ENDPOINT" https_proxy="$DEAD_ENDPOINT" NO_PROXY= no_proxy= \
    /usr/bin/containerd --config "$NODE/containerd/config.toml"
  wait_until containerd 60 "containerd's socket" ctr_ version
  import_image "$PAUSE_IMAGE" "$PAUSE_TAR"
  import_image "$BUSYBOX_IMAGE" "$BUSYBOX_TAR"
  run_images_build

  kc apply --server-side --force-conflicts -f - >/dev/null < <(node_manifests)
  # Pods reach the API server as kubernetes.default (10.96.0.1:443), which the EndpointSlice in
  # node_manifests sends to the bridge address; the API server itself listens on loopback only,
  # so a forwarder on the bridge address passes those connections to it (TLS is end to end).
  mkdir -p "$NODE/bin"; ln -sfn "$(command -v socat)" "$NODE/bin/apiserver-proxy"
  start apiserver-proxy "$NODE/bin/apiserver-proxy" \
    "TCP-LISTEN:$APISERVER_PORT,bind=$NODE_GW,reuseaddr,fork" "TCP:$HOST:$APISERVER_PORT"
  start coredns "$COREDNS_BIN/coredns" -conf "$NODE/Corefile"
  start kube-proxy "$KUBE_NODE_BIN/kube-proxy" --config="$NODE/kube-proxy.yaml" --v=1
  start kubelet "$KUBE_NODE_BIN/kubelet" --config="$NODE/kubelet.yaml" \
    --kubeconfig="$NODE/kubelet.kubeconfig" --root-dir="$KUBELET_ROOT" --cert-dir="$NODE/kubelet-pki" \
    --hostname-override="$NODE_NAME" --node-ip="$ip" --node-labels="$NODE_LABEL=true" --v=1
  wait_until coredns 60 "CoreDNS ready" curl -sf --max-time 2 "http://127.0.0.1:$COREDNS_READY_PORT/ready"
  wait_until kube-proxy 60 "kube-proxy healthz" curl -sf --max-time 2 "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz"
  wait_until kubelet "$UP_TIMEOUT" "node $NODE_NAME Ready" node_base_ready
  if enforcer_on; then
    enforcer_up
  elif pid_of kube-router >/dev/null || [[ -n "$(kube_router_leftovers)" ]]; then
    log "INSYNC_E2E_ENFORCE_POLICIES=0: stopping kube-router and removing its rules"
    enforcer_down || die "could not remove kube-router's rules and sets (see above)"
  fi
  recycle_local_pvs
  log "real node $NODE_NAME up in $((SECONDS - start))s (node IP $ip, pods $NODE_SUBNET, DNS $NODE_GW)"
}

# ---- down --------------------------------------------------------------------------------------
node_mounts() { # mount points under the node's dir and CNI netns mounts, deepest first
  awk '{print $5}' /proc/self/mountinfo | while IFS= read -r m; do
    m="$(printf '%b' "${m//\\/\\0}")"
    case $m in "$NODE"/*|"$NODE") echo "$m" ;; esac
  done | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-
}

# Deletes the jumps to, then the chains, of every chain named by the pattern (both families,
# all tables): kubelet's KUBE-FIREWALL/KUBE-KUBELET-CANARY/KUBE-IPTABLES-HINT, kube-proxy's
# leftovers, the CNI portmap chains, ours.
delete_chains() { # delete_chains IPTABLES REGEX
  local ipt=$1 re=$2 table chain n
  for table in filter nat mangle raw security; do
    local chains
    chains="$("$ipt-save" -t "$table" 2>/dev/null | sed -n 's/^:\([^ ]*\) .*/\1/p')" || continue
    for chain in $chains; do
      [[ "$chain" =~ $re ]] && continue
      # delete (from the bottom) the rules of other chains that jump to ours
      for n in $("$ipt" -w -t "$table" -L "$chain" -n --line-numbers 2>/dev/null \
                 | awk -v re="$re" 'NR>2 && $2 ~ re {print $1}' | sort -rn); do
        "$ipt" -w -t "$table" -D "$chain" "$n" || true
      done
    done
    for chain in $chains; do
      [[ "$chain" =~ $re ]] || continue
      "$ipt" -w -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $chains; do
      [[ "$chain" =~ $re ]] || continue
      "$ipt" -w -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
  return 0
}

node_leftovers() { # prints what is left of the real node, one line each
  local m p n
  ip link show "$BRIDGE" >/dev/null 2>&1 && echo "link $BRIDGE"
  ip -o link show type veth 2>/dev/null | grep -q "master $BRIDGE" && echo "veths on $BRIDGE"
  ip route show type unreachable "$POD_CIDR" 2>/dev/null | grep -q . && echo "route unreachable $POD_CIDR"
  ip route show "$SERVICE_CIDR" 2>/dev/null | grep -q . && echo "route $SERVICE_CIDR"
  for p in iptables ip6tables; do
    n="$("$p-save" 2>/dev/null | grep -cE 'KUBE|CNI-|INSYNC-E2E' || true)"
    [[ "$n" == 0 ]] || echo "$p-save: $n lines with KUBE/CNI-/INSYNC-E2E"
  done
  while IFS= read -r m; do [[ -n "$m" ]] && echo "mount $m"; done < <(node_mounts)
  for p in $(our_shims); do echo "containerd-shim $p"; done
  for m in "${NODE_COMPONENTS[@]}" kube-router; do pid_of "$m" >/dev/null && echo "process $m"; done
  kube_router_leftovers
  for p in $(node_ports); do port_listening "$p" && echo "port $p listening"; done
  [[ -n "$(ss -Hln "src $NODE_GW" 2>/dev/null)" ]] && echo "listener on $NODE_GW"
  [[ "$(cat /proc/sys/net/ipv4/ip_forward)" == 1 && -f "$NODE/sysctl.saved" ]] && echo "net.ipv4.ip_forward=1"
  for m in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do [[ -d "$m" ]] && echo "cgroup $m"; done
  return 0
}

our_shims() { # pids of containerd shims started by our containerd (its socket is in their args)
  local d
  for d in /proc/[0-9]*; do
    tr '\0' ' ' 2>/dev/null < "$d/cmdline" | grep -q "^/usr/bin/containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK " \
      && echo "${d#/proc/}"
  done
  return 0
}

node_down() {
  # nothing to do when no real node was ever started here; a bridge left without its state
  # dir is cleaned up only by the state that made it (or when nobody claims it)
  if [[ ! -d "$NODE" ]]; then
    ip link show "$BRIDGE" >/dev/null 2>&1 || return 0
    local owner; owner="$(cat "$NODE_OWNER" 2>/dev/null || true)"
    if [[ -n "$owner" && "$owner" != "$STATE" && -d "$owner/node" ]]; then
      log "the real node belongs to $owner: left alone"
      return 0
    fi
  fi
  (( EUID == 0 )) || die "taking the real node down needs root"
  local start=$SECONDS p id ids="" kr_rc=0
  # the enforcer first: it would re-create its rules while they are removed
  enforcer_down || kr_rc=$?
  stop kubelet
  if pid_of containerd >/dev/null; then
    ids="$(ctr_ containers ls -q 2>/dev/null || true)"   # for the CNI result cache below
    # kill every container (pods' sandboxes too) before containerd goes
    for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
    for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$id" >/dev/null 2>&1 || true; done
  fi
  stop kube-proxy coredns apiserver-proxy containerd
  for p in $(our_shims); do kill -KILL "$p" 2>/dev/null || true; done
  if [[ -x "$KUBE_NODE_BIN/kube-proxy" ]]; then
    "$KUBE_NODE_BIN/kube-proxy" --cleanup >>"$LOGS/kube-proxy.log" 2>&1 || true
  fi
  delete_chains iptables '^(KUBE-|CNI-|INSYNC-E2E)'
  delete_chains ip6tables '^(KUBE-|CNI-|INSYNC-E2E)'
  local m
  while IFS= read -r m; do
    [[ -n "$m" ]] || continue
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "WARNING: cannot unmount $m"
  done < <(node_mounts)
  for p in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$p" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  ip route del unreachable "$POD_CIDR" 2>/dev/null || true
  ip route del "$SERVICE_CIDR" 2>/dev/null || true
  restore_sysctls
  # cgroups kubelet made under its cgroupRoot (deepest first; empty once the processes are gone)
  for p in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
    [[ -d "$p" ]] && find "$p" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  # kubelet's links to container logs, the CNI result cache, pod IP leases
  find /var/log/containers -maxdepth 1 -type l -lname "$NODE/*" -delete 2>/dev/null || true
  rm -f /var/lib/cni/results/"$CNI_NETWORK"-* 2>/dev/null || true
  for id in $ids; do rm -f /var/lib/cni/results/*-"$id"-* 2>/dev/null || true; done
  # kubelet's device-plugin socket and the directories kubelet/CNI make at fixed paths (removed
  # only when empty: nothing of anyone else's)
  rm -f /var/lib/kubelet/device-plugins/kubelet.sock
  rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet /var/lib/cni/results /var/lib/cni \
        /var/log/containers 2>/dev/null || true
  rm -rf "$NODE/cni/ipam"
  rm -f "$NODE/enabled" "$NODE/enforce-policies" "$NODE"/containerd/imported-*
  [[ "$(cat "$NODE_OWNER" 2>/dev/null)" != "$STATE" ]] || rm -f "$NODE_OWNER"
  local left; left="$(node_leftovers)"
  (( kr_rc == 0 )) || left+="${left:+$'\n'}kube-router's rules or sets (see above)"
  if [[ -n "$left" ]]; then
    log "ERROR: the real node left behind:"; printf '  %s\n' "${left//$'\n'/$'\n'  }" >&2
    return 1
  fi
  log "real node down in $((SECONDS - start))s (nothing left: links, routes, iptables, ipsets, mounts, shims, ports, cgroups)"
}

node_status() {
  [[ -f "$NODE/enabled" ]] || return 0
  local name pid rc=0 ports
  for name in "${NODE_COMPONENTS[@]}"; do
    case $name in kubelet) ports="$KUBELET_PORT $KUBELET_HEALTHZ_PORT" ;; kube-proxy) ports="$KUBE_PROXY_HEALTHZ_PORT $KUBE_PROXY_METRICS_PORT" ;;
                  coredns) ports="$NODE_GW:53 $COREDNS_READY_PORT" ;; containerd) ports="$CONTAINERD_SOCK" ;;
                  apiserver-proxy) ports="$NODE_GW:$APISERVER_PORT" ;; esac
    if pid="$(pid_of "$name")"; then
      printf '%-24s %-8s %-8s %s\n' "$name" running "$pid" "$ports"
    else
      printf '%-24s %-8s %-8s %s\n' "$name" stopped - "$ports"; rc=1
    fi
  done
  if pid="$(pid_of kube-router)"; then
    printf '%-24s %-8s %-8s %s\n' kube-router running "$pid" "$KUBE_ROUTER_HEALTH_PORT"
  else
    case "$(cat "$NODE/enforce-policies" 2>/dev/null)" in
      off) printf '%-24s %-8s %-8s %s\n' kube-router off - "(up ran with INSYNC_E2E_ENFORCE_POLICIES=0)" ;;
      on) printf '%-24s %-8s %-8s %s\n' kube-router stopped - "$KUBE_ROUTER_HEALTH_PORT"; rc=1 ;;
      *) printf '%-24s %-8s %-8s %s\n' kube-router absent - "(node started by an older e2e/cluster: run up --real-node)" ;;
    esac
  fi
  local enforcer="NOT enforced"
  pid_of kube-router >/dev/null && enforcer="enforced by kube-router $KUBE_ROUTER_VERSION"
  echo "real node $NODE_NAME: bridge $BRIDGE $NODE_GW, pods $NODE_SUBNET, shims: $(our_shims | wc -l), NetworkPolicies $enforcer"
  return $rc
}
