#!/usr/bin/env bash
# Records the small real sessions the golden tests replay (tests/data/recordings/*.trace;
# see tests/data/README.md), on a lab of its own (prefix tgold-), with the release binary.
# Run as root, then regenerate the golden outputs and review them:
#   UPDATE_GOLDEN=1 cargo test --lib golden && git diff tests/data/golden
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin tracer
tracer=$PWD/target/release/tracer
out=$PWD/tests/data/recordings
mkdir -p "$out"
export TRACER_LAB_PREFIX=tgold-
kubeconfig=/run/tgold-state/kubeconfig
trap '$tracer lab down >/dev/null 2>&1 || true' EXIT
in_pod() { ip netns exec "tgold-pod-$1" "${@:2}"; }

# The golden sessions are TC-mode sessions (routes inferred from each node's table, as on
# kernels without the fib_table_lookup tracepoint), except those recorded after
# `route_flag=` below.
route_flag=--no-route-hook
# Set for the sampled sessions at the end (`follow --sample N`).
sample_flag=

# record NAME FROM TO SCENARIO [PREFIX] -- traffic command (run once the follow is attached)
record() {
  local name=$1 from=$2 to=$3 scenario=$4 prefix=tgold-
  shift 4
  if [ "$1" != -- ]; then prefix=$1; shift; fi
  shift
  $tracer lab up --scenario "$scenario" >/dev/null
  rm -f "$out/$name.trace"
  local log
  log=$(mktemp)
  $tracer follow "$from" "$to" --kubeconfig "$kubeconfig" --netns-prefix "$prefix" \
    --output summary --record "$out/$name.trace" $route_flag $sample_flag 2>"$log" &
  local pid=$!
  until grep -q watching "$log"; do sleep 0.05; done
  "$@" || true
  sleep 1
  kill -INT "$pid"
  wait "$pid" || true
  echo "$name: $(stat -c %s "$out/$name.trace") bytes"
  rm -f "$log"
}

healthy_traffic() {
  for _ in 1 2; do in_pod nettest curl -s -o /dev/null -m 2 http://10.109.60.89/; done
  # The same-node endpoint (cpu2) too.
  in_pod nettest ping -c 2 -i 0.2 -q 10.244.102.138 >/dev/null
}
record healthy-service nettest svc/nginx-test healthy -- healthy_traffic

vxlan_traffic() {
  in_pod nettest ping -c 2 -i 0.2 -q 10.244.184.84 >/dev/null
  in_pod nettest curl -s -o /dev/null -m 2 http://10.244.5.203/
}
record vxlan nettest svc/nginx-test vxlan -- vxlan_traffic

record wrong-interface nettest nginx-test-7d9c4b6f5-abcde wrong-interface -- \
  in_pod nettest ping -c 2 -i 0.2 -W 1 -q 10.244.184.84

record mtu-blackhole nettest nginx-test-7d9c4b6f5-abcde mtu-blackhole -- \
  in_pod nettest curl -s -o /dev/null -m 2 http://10.244.184.84/bytes/20000

record no-endpoints nettest svc/nginx-test no-endpoints -- \
  in_pod nettest curl -s -o /dev/null -m 2 http://10.109.60.89/

concurrent_pings() {
  local pids=()
  for _ in 1 2 3; do
    in_pod nettest ping -c 2 -i 0.2 -q 10.244.184.84 >/dev/null &
    pids+=($!)
  done
  wait "${pids[@]}"
}
record concurrent-pings nettest nginx-test-7d9c4b6f5-abcde healthy -- concurrent_pings

# Traced on cpu1 and cpu2 only (as if tracer ran on two of the three nodes): packets to
# gpu1 leave what is traced, and hops inside Pods are not observed.
partial_traffic() {
  for _ in 1 2 3 4; do in_pod nettest curl -s -o /dev/null -m 2 http://10.109.60.89/; done
}
record partial-nodes nettest svc/nginx-test healthy tgold-cpu -- partial_traffic

# Routing decisions observed by the fib_table_lookup tracepoint (route hops ●).
route_flag=
route_traffic() {
  in_pod nettest curl -s -o /dev/null -m 2 http://10.109.60.89/
}
record routes-observed nettest svc/nginx-test healthy -- route_traffic
record routes-observed-wrong-interface nettest nginx-test-7d9c4b6f5-abcde wrong-interface -- \
  in_pod nettest ping -c 1 -W 1 -q 10.244.184.84

# A UDP stream of 64-byte datagrams (~2,000 a second for a second) sampled one in 16: the
# traced datagrams' journeys, and the counts of all of them per hop.
sample_flag="--sample 16"
udp_stream() {
  in_pod nginx-test-7d9c4b6f5-abcde iperf3 -s -1 -D
  sleep 0.3
  in_pod nettest iperf3 -c 10.244.184.84 -u -b 1M -l 64 -t 1 >/dev/null
}
record sampled-udp nettest nginx-test-7d9c4b6f5-abcde healthy -- udp_stream
sample_flag=

$tracer lab down >/dev/null
bash scripts/record-golden-bridge.sh "$tracer" "$out/bridge-cni.trace"
