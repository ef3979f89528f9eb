#!/usr/bin/env bash
# Sets up a fresh machine (idempotent), builds tracer, and shows it on the built-in lab:
# the seed's 3-node cluster in network namespaces. First a healthy Service request
# (veth, kube-proxy DNAT, route, delivery, reply un-DNAT), recorded to a file; then the
# seed's incident (wrong-interface: the reply dies on cpu1 for want of a route).
# Run as root. KEEP_LAB=1 leaves the lab up afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --bin tracer
tracer=./target/release/tracer
recording=${RECORDING:-/tmp/tracer-demo.trace}
# Where `tracer lab up` writes the lab's kubeconfig; tracer and kubectl are given it as they
# would be given any cluster's.
kubeconfig=/run/tracer-lab/kubeconfig

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "what this kernel lets tracer see"
$tracer doctor | tail -n 8

say "the lab: the seed's cluster (cpu1, cpu2, gpu1), healthy"
$tracer lab up --scenario healthy
$tracer lab status

say "follow nettest → svc/nginx-test while nettest fetches the page twice"
( sleep 2; for _ in 1 2; do $tracer lab exec nettest -- curl -s -o /dev/null -m 3 http://10.109.60.89/; done ) &
$tracer follow nettest svc/nginx-test --kubeconfig "$kubeconfig" --output text --proto tcp --duration 5s --record "$recording"
wait

say "the seed's incident: cpu1 has no route to the other nodes' Pod blocks"
$tracer lab up --scenario wrong-interface
( sleep 2; $tracer lab exec nettest -- ping -c 1 -W 1 10.244.184.84 >/dev/null || true ) &
$tracer follow nettest nginx-test-7d9c4b6f5-abcde --kubeconfig "$kubeconfig" --output text --duration 4s
wait

if [ "${KEEP_LAB:-0}" != 1 ]; then
  $tracer lab down
fi
say "replay the first session any time, without root: $tracer replay $recording"
