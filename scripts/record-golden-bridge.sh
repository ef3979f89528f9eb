#!/usr/bin/env bash
# The bridge-CNI golden recording: the flannel-style cluster of the bridge end-to-end test
# (tracer-tests/scripts/bridge-cluster.sh), named from its cluster file; a ping across nodes
# and a connection to the Service. Usage: record-golden-bridge.sh TRACER OUT.trace (root).
set -euo pipefail
cd "$(dirname "$0")/.."
tracer=$1 out=$2 p=tgbr-
namespaces="pod-client pod-web-a pod-web-b node-a node-b lan"
cleanup() { for ns in $namespaces; do ip netns del "$p$ns" 2>/dev/null || true; done; }
trap cleanup EXIT
cleanup
sh tracer-tests/scripts/bridge-cluster.sh "$p"
rm -f "$out"
log=$(mktemp)
$tracer follow client svc/web --cluster-file tests/fixtures/cluster-bridge.json \
  --netns-prefix "$p" --output summary --record "$out" --no-route-hook 2>"$log" &
pid=$!
until grep -q watching "$log"; do sleep 0.05; done
ip netns exec "${p}pod-client" ping -c 2 -i 0.2 -q 10.42.1.7 >/dev/null
ip netns exec "${p}pod-client" bash -c 'echo > /dev/tcp/10.43.0.20/8080' 2>/dev/null || true
sleep 1
kill -INT "$pid"
wait "$pid" || true
rm -f "$log"
echo "bridge-cni: $(stat -c %s "$out") bytes"
