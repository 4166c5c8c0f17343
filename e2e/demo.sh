#!/usr/bin/env bash
# make demo: the operator running a whole inSync Cloud, from nothing.
#
#   1. a Kubernetes control plane: $KUBECONFIG if set, else the local one. Where this machine can
#      run containers (root, containerd, runc), the local one gets a real node
#      (`e2e/cluster up --real-node`) and images built here (e2e/images/build); elsewhere kwok
#      plays the kubelet and the demo says so.
#   2. a Route53 API (moto) with the hosted zone drtst.org
#   3. the operator installed with its Helm chart: on the real node it runs as a pod from its
#      image; with kwok the binary runs here with the chart's arguments as its ServiceAccount
#   4. kubectl apply -f examples/fcloud.yaml (on the real node: placed there, on its volumes),
#      kubectl wait until Ready, what was created, and (real node) CloudMaster's /health
#      through HAProxy's NodePort on this machine
#
# Usage: e2e/demo.sh [up|down]     (up is the default; down stops the operator and moto)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=e2e/lib.sh
source e2e/lib.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/insync-operator/target}"
DEMO="${INSYNC_DEMO_STATE:-$HOME/.cache/insync-e2e/demo}"
RELEASE=insync-operator
RELEASE_NS=insync-system
MOTO_PORT="${INSYNC_DEMO_MOTO_PORT:-15053}"
METRICS_PORT="${INSYNC_DEMO_METRICS_PORT:-18080}"
mkdir -p "$DEMO"

stop() {
  for name in operator moto; do
    if [[ -f "$DEMO/$name.pid" ]]; then
      kill "$(cat "$DEMO/$name.pid")" 2>/dev/null || true
      rm -f "$DEMO/$name.pid"
    fi
  done
}

if [[ "${1:-up}" == down ]]; then
  stop
  echo "stopped the demo operator and moto (the cluster stays up: e2e/cluster down)"
  exit 0
fi

say "Kubernetes"
REAL=false
if [[ -z "${KUBECONFIG:-}" ]]; then
  if [[ "${INSYNC_DEMO_KWOK:-}" != 1 && $(id -u) == 0 ]] && command -v containerd >/dev/null \
      && command -v runc >/dev/null && e2e/cluster up --real-node; then
    REAL=true
  else
    echo ">>> This machine cannot run containers here (or INSYNC_DEMO_KWOK=1): falling back to kwok,"
    echo ">>> which marks pods Running without running them. The cloud will be Ready, but nothing answers."
    e2e/cluster up
  fi
  eval "$(e2e/cluster env)"
else
  e2e/cluster install-tools >/dev/null
  export PATH="$HOME/.cache/insync-e2e/bin/path:$PATH"
fi
kubectl get nodes
if $REAL; then
  exec "$ROOT/e2e/demo-real.sh"
fi

say "Building the operator"
cargo build -q -p insync-operator
BIN="$CARGO_TARGET_DIR/debug/insync-operator"

stop
say "Route53 API on 127.0.0.1:$MOTO_PORT (moto) with the zone drtst.org"
command -v moto_server >/dev/null || python3 -m pip install -q "moto[server]==$MOTO_VERSION"
moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$DEMO/moto.log" 2>&1 &
echo $! >"$DEMO/moto.pid"
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$MOTO_PORT/" && break; sleep 0.2; done
python3 - "$MOTO_PORT" <<'EOF'
import sys, boto3
r53 = boto3.client("route53", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1")
if not any(z["Name"] == "drtst.org." for z in r53.list_hosted_zones()["HostedZones"]):
    r53.create_hosted_zone(Name="drtst.org", CallerReference="insync-demo")
EOF

say "helm install $RELEASE (namespace $RELEASE_NS)"
helm upgrade --install "$RELEASE" charts/insync-operator -n "$RELEASE_NS" --create-namespace \
  --set replicas=0 --set dns.endpoint="http://127.0.0.1:$MOTO_PORT" --set dns.ownerId=demo \
  --set 'dns.allowedDomains={drtst.org}' --wait --timeout 2m
kubectl get deploy,sa -n "$RELEASE_NS"

say "Running the operator with the chart's arguments, as its ServiceAccount"
SA_KUBECONFIG="$DEMO/operator.kubeconfig"
TOKEN="$(kubectl create token "$RELEASE" -n "$RELEASE_NS" --duration 24h)"
SERVER="$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.server}')"
CA="$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')"
cat >"$SA_KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: demo, cluster: {server: "$SERVER", certificate-authority-data: "$CA"}}]
users: [{name: operator, user: {token: "$TOKEN"}}]
contexts: [{name: demo, context: {cluster: demo, user: operator}}]
current-context: demo
EOF
mapfile -t ARGS < <(helm get manifest "$RELEASE" -n "$RELEASE_NS" | python3 -c '
import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if d and d.get("kind") == "Deployment":
        for a in d["spec"]["template"]["spec"]["containers"][0]["args"]:
            if not a.startswith("--metrics-addr") and not a.startswith("--log-format"):
                print(a)')
KUBECONFIG="$SA_KUBECONFIG" POD_NAMESPACE="$RELEASE_NS" AWS_ENDPOINT_URL_ROUTE_53="http://127.0.0.1:$MOTO_PORT" \
  "$BIN" "${ARGS[@]}" --metrics-addr "127.0.0.1:$METRICS_PORT" >"$DEMO/operator.log" 2>&1 &
echo $! >"$DEMO/operator.pid"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null && break; sleep 0.2; done
echo "operator pid $(cat "$DEMO/operator.pid"), log $DEMO/operator.log, metrics http://127.0.0.1:$METRICS_PORT/metrics"

say "kubectl apply -f examples/fcloud.yaml"
kubectl create namespace fcloud --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f examples/fcloud.yaml
kubectl wait --for=condition=Ready insynccloud/fcloud -n fcloud --timeout=5m

say "kubectl get insyncclouds -A"
kubectl get insyncclouds -A
say "What the operator created in namespace fcloud"
kubectl get deployments,statefulsets,services,pvc,configmaps,secrets,pdb,networkpolicies -n fcloud
say "kubectl get isc fcloud -n fcloud -o jsonpath='{.status.conditions}'"
kubectl get isc fcloud -n fcloud -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}){"\n"}{end}'
say "Route53 records in drtst.org (moto)"
python3 - "$MOTO_PORT" <<'EOF'
import sys, boto3
r53 = boto3.client("route53", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1")
zone = next(z["Id"] for z in r53.list_hosted_zones()["HostedZones"] if z["Name"] == "drtst.org.")
for r in r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]:
    if r["Type"] not in ("NS", "SOA"):
        print(f'{r["Name"]:45} {r["Type"]:5} {" ".join(v["Value"] for v in r.get("ResourceRecords", []))}')
EOF

cat <<EOF

The cloud is Ready. Try:
  kubectl patch isc fcloud -n fcloud --type merge -p '{"spec":{"version":"5.9.2-r4200"}}'
  kubectl get isc fcloud -n fcloud -w          # watch the ordered rolling upgrade
  kubectl delete deploy fcloud-haproxy -n fcloud   # the operator puts it back
Stop the operator and moto with: e2e/demo.sh down   (the cluster: e2e/cluster down)
EOF
