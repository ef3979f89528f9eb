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

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "unit tests (no privileges needed)"
cargo test --lib --bins

step "privileged end-to-end tests, one at a time"
cargo test --test '*' -- --test-threads=1
