#!/usr/bin/env bash
# Sets up a fresh machine (idempotent) and runs every test: formatting, lints, unit tests,
# then the privileged end-to-end tests (real eBPF programs in real network namespaces),
# serially. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: the end-to-end tests load eBPF programs and create network namespaces; run as root (sudo -E scripts/test.sh)" >&2
  exit 3
fi

bash scripts/setup.sh

step() { printf '\n[test] %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

# Every host crate, the end-to-end tests (tracer-tests, not a default member) included.
step "cargo clippy --workspace --exclude tracer-ebpf --all-targets -- -D warnings"
cargo clippy --workspace --exclude tracer-ebpf --all-targets -- -D warnings

step "unit tests (no privileges needed)"
cargo test --lib --bins

# The host's own network state must come out of the whole suite exactly as it went in.
host_state() {
  # Each reader may print nothing (no iptables rules on the host at all): never fail here.
  ip -o addr 2>/dev/null || true
  ip route show table all 2>/dev/null || true
  ip -o link 2>/dev/null | sed 's/ state [A-Z]*//' || true
  iptables-save 2>/dev/null | sed -e '/^#/d' -e 's/\[[0-9:]*\]//' || true
  nft list ruleset 2>/dev/null | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/' || true
  tc qdisc show 2>/dev/null || true
  ip netns list 2>/dev/null | sed 's/ (id: [0-9]*)//' || true
}
before=$(mktemp); after=$(mktemp)
trap 'rm -f "$before" "$after"' EXIT
host_state > "$before"

# The end-to-end tests drive the tracer binary, which cargo builds only for its own
# package's tests: build it first (tracer-tests/src/lib.rs says how they find it).
step "privileged end-to-end tests (tracer-tests), one at a time"
cargo build -p tracer --bin tracer
# The tests that measure time and memory run the release build, what users run.
cargo build --release -p tracer --bin tracer
cargo test -p tracer-tests --test '*' -- --test-threads=1

# Debian 12's kernel (6.1, no TCX: clsact qdiscs and netlink filters) in a VM sharing this
# filesystem: follow on the healthy Service path and the seed's incident, netlink leftovers
# after SIGKILL, doctor against follow. The full matrix (every kernel, more suites) is
# `cargo xtask kernels --docs`; see docs/kernels.md.
step "kernel smoke: the privileged follow tests inside a Debian 6.1 VM"
cargo xtask kernels --kernel 6.1 --smoke

step "the host namespace is as it was"
host_state > "$after"
if ! diff -u "$before" "$after"; then
  echo "[test] FAILED: the test suite changed the host's network state (diff above)" >&2
  exit 1
fi
echo "host network state unchanged"
