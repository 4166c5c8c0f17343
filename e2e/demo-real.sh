#!/usr/bin/env bash
# The real-node half of `make demo` (e2e/demo.sh runs it once `e2e/cluster up --real-node` is
# up): the operator as a pod from its image, fcloud on real pods, /health through HAProxy.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=e2e/lib.sh
source e2e/lib.sh
eval "$(e2e/cluster env)"
DEMO="${INSYNC_DEMO_STATE:-$HOME/.cache/insync-e2e/demo}"
RELEASE=insync-operator
RELEASE_NS=insync-system
MOTO_PORT="${INSYNC_DEMO_MOTO_PORT:-15053}"
NODE_LABEL=insync.dev/real-node          # label and taint of the real node (e2e/node.sh)
STORAGE_CLASS=insync-local               # its local volumes
MASTER_NODE_PORT=30443                   # examples/fcloud.yaml
mkdir -p "$DEMO"

# The node's own address: the operator's pod reaches moto there (route lookup only; sends nothing).
NODE_IP="$(ip -4 route get 1 | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1)"

say "Route53 API on $NODE_IP:$MOTO_PORT (moto) with the zone drtst.org"
# A running demo moto is kept, with the records the operator published there (a new one starts
# empty, with a new zone id that the operator finds on its next sync).
if ! { [[ -f "$DEMO/moto.pid" ]] && kill -0 "$(cat "$DEMO/moto.pid")" 2>/dev/null \
       && curl -s -o /dev/null "http://$NODE_IP:$MOTO_PORT/"; }; then
  moto_server -H "$NODE_IP" -p "$MOTO_PORT" >"$DEMO/moto.log" 2>&1 &
  echo $! >"$DEMO/moto.pid"
fi
for _ in $(seq 100); do curl -s -o /dev/null "http://$NODE_IP:$MOTO_PORT/" && break; sleep 0.2; done
python3 - "$NODE_IP" "$MOTO_PORT" <<'EOF'
import sys, boto3
r53 = boto3.client("route53", endpoint_url=f"http://{sys.argv[1]}:{sys.argv[2]}", region_name="us-east-1",
                   aws_access_key_id="demo", aws_secret_access_key="demo")
if not any(z["Name"] == "drtst.org." for z in r53.list_hosted_zones()["HostedZones"]):
    r53.create_hosted_zone(Name="drtst.org", CallerReference="insync-demo")
EOF

say "helm install $RELEASE (namespace $RELEASE_NS): the operator as a pod on the real node"
kubectl create namespace "$RELEASE_NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$RELEASE_NS" create secret generic route53 --from-literal=AWS_ACCESS_KEY_ID=demo \
  --from-literal=AWS_SECRET_ACCESS_KEY=demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
helm upgrade --install "$RELEASE" charts/insync-operator -n "$RELEASE_NS" \
  --set image.tag=dev --set image.pullPolicy=Never --set logFormat=text \
  --set-string "nodeSelector.${NODE_LABEL//./\\.}=true" \
  --set "tolerations[0].key=$NODE_LABEL" --set tolerations[0].operator=Exists \
  --set tolerations[0].effect=NoSchedule \
  --set dns.endpoint="http://$NODE_IP:$MOTO_PORT" --set dns.ownerId=demo \
  --set 'dns.allowedDomains={drtst.org}' \
  --set aws.region=us-east-1 --set aws.existingSecret=route53 \
  --wait --timeout 5m
kubectl get pods -n "$RELEASE_NS" -o wide

say "kubectl apply -f examples/fcloud.yaml, placed on the real node and its volumes"
kubectl create namespace fcloud --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl label namespace fcloud pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
volume="{\"storageClassName\":\"$STORAGE_CLASS\"}"
# Only where it runs changes: examples/fcloud.yaml's requests fit a 2-core machine as written
# (operator/tests/render_examples.rs checks them against a 2-core, 8 GiB kind node).
kubectl patch --local -f examples/fcloud.yaml --type merge -o yaml -p "{\"spec\":{
  \"placement\":{\"nodeSelector\":{\"$NODE_LABEL\":\"true\"},
                 \"tolerations\":[{\"key\":\"$NODE_LABEL\",\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}]},
  \"nodes\":{\"storage\":$volume},
  \"database\":{\"managed\":{\"storage\":$volume}},
  \"metadataStore\":{\"managed\":{\"storage\":{\"size\":\"10Gi\",\"storageClassName\":\"$STORAGE_CLASS\"}}},
  \"objectStore\":{\"minio\":{\"storage\":$volume}}}}" | kubectl apply -f -
started=$SECONDS
kubectl wait --for=condition=Ready insynccloud/fcloud -n fcloud --timeout=10m
echo "Ready in $((SECONDS - started))s"

say "kubectl get insyncclouds -A"
kubectl get insyncclouds -A
say "The cloud's pods (real containers on $(kubectl get nodes -l "$NODE_LABEL=true" -o name))"
kubectl get pods -n fcloud -o wide
say "curl http://127.0.0.1:$MASTER_NODE_PORT/health   (this machine -> NodePort -> HAProxy -> CloudMaster)"
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$MASTER_NODE_PORT/health" >/dev/null && break; sleep 1; done
curl -sS "http://127.0.0.1:$MASTER_NODE_PORT/health"; echo

cat <<EOF

fcloud runs on real pods and answers on this machine. Try:
  curl http://127.0.0.1:$MASTER_NODE_PORT/health
  curl -X PUT --data hello http://127.0.0.1:$MASTER_NODE_PORT/markers/demo    # MySQL, Bynamo and MinIO
  curl http://127.0.0.1:$MASTER_NODE_PORT/markers/demo
  kubectl patch isc fcloud -n fcloud --type merge -p '{"spec":{"version":"5.9.2-r4190"}}'
  kubectl get isc fcloud -n fcloud -w          # the ordered rolling upgrade, on real pods
Stop moto with: e2e/demo.sh down   (the cluster and its real node: e2e/cluster down)
EOF
