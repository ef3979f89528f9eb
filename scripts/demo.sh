#!/usr/bin/env bash
# Sets up a fresh machine (idempotent), builds tracer, and shows it working here.
# Until `tracer lab` lands (issue #3) the best available demo is `tracer doctor`:
# it loads and attaches every kernel program tracer uses, in a throwaway namespace, and
# says what `follow` will and will not see on this kernel. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --bin tracer
echo
./target/release/tracer doctor
