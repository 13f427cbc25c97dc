#!/usr/bin/env bash
# `make demo`: three sites in three jurisdictions, the operator, example
# workloads, and where each one runs and why the others wait.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
CACHE="${GPUFLEET_CACHE:-$HOME/.cache/gpufleet}"
STATE="$CACHE/demo"; mkdir -p "$STATE"
HUB="$CACHE/fleets/dev/onprem-fra.kubeconfig"
say() { printf '\n\033[1;36m==> %s\033[0m\n' "$*"; }

say "1/5 bringing up the dev fleet (3 real control planes, KWOK GPU nodes, a Prometheus scraping the operator)"
$BIN/gpufleet dev up --reuse

say "2/5 installing the CRDs, member kubeconfig Secrets, Sites and GpuPools on the hub"
$BIN/gpufleet dev register

say "3/5 starting the operator (log: $STATE/operator.log)"
if [ -f "$STATE/operator.pid" ] && kill -0 "$(cat "$STATE/operator.pid")" 2>/dev/null; then
  kill "$(cat "$STATE/operator.pid")"; sleep 2
fi
nohup $BIN/gpufleet run --kubeconfig "$HUB" --metrics-port 8080 >"$STATE/operator.log" 2>&1 &
echo $! >"$STATE/operator.pid"
for _ in $(seq 1 60); do
  curl -sf http://127.0.0.1:8080/readyz >/dev/null 2>&1 && break
  kill -0 "$(cat "$STATE/operator.pid")" || { tail -20 "$STATE/operator.log"; exit 1; }
  sleep 1
done
echo "operator ready; metrics on http://127.0.0.1:8080/metrics"

say "4/5 applying the example queues and workloads"
$BIN/kubectl --kubeconfig "$HUB" apply -f examples/namespaces.yaml -f examples/queues.yaml -f examples/workloads.yaml -f examples/demo-waiting.yaml

say "5/5 waiting for every workload to be placed or explained"
for _ in $(seq 1 60); do
  undecided=$($BIN/kubectl --kubeconfig "$HUB" get workloads -A -o json | $BIN/python -c '
import json, sys
items = json.load(sys.stdin)["items"]
print(sum(1 for w in items if (w.get("status") or {}).get("phase") not in ("Running", "Succeeded", "Failed")
          and not (w.get("status") or {}).get("verdicts")))')
  [ "$undecided" = 0 ] && break
  sleep 1
done
$BIN/gpufleet status --kubeconfig "$HUB"
say "why the waiting ones wait"
for w in team-nlp/health-records-finetune team-vision/eu-h200-sweep; do
  $BIN/gpufleet explain "$w" --kubeconfig "$HUB"
done
PROM=$($BIN/python -c 'import json, sys; print(json.load(open(sys.argv[1]))["url"])' "$CACHE/fleets/dev/prometheus/prometheus.json" 2>/dev/null || echo "(not running: make tools builds it)")
cat <<MSG

The fleet, the operator and Prometheus ($PROM, with the chart's alert rules) keep running. Try:
  kubectl --kubeconfig $HUB get gpufleet
  .venv/bin/gpufleet explain team-vision/vit-pretrain --kubeconfig $HUB
  curl -s http://127.0.0.1:8080/metrics | grep ^gpufleet_
  curl -s '$PROM/api/v1/query?query=gpufleet_queue_allocated_accelerators'
  .venv/bin/gpufleet forecast --prometheus $PROM --days-back 30   # once whole days are recorded
Stop everything with: make cluster-down
MSG
