#!/usr/bin/env bash
# Installs everything a fresh machine lacks to build and test tracer. Idempotent:
# each step checks first and prints one line, so a second run takes seconds.
set -euo pipefail

BPF_LINKER_VERSION=0.13.0
LLVM_MAJOR=22
APT_PACKAGES=(
  "llvm-${LLVM_MAJOR}-dev" "libpolly-${LLVM_MAJOR}-dev" libzstd-dev zlib1g-dev   # bpf-linker
  iptables iputils-ping curl iperf3 tcpdump tshark bpftool                        # lab and tests
  nftables ipvsadm ipset                                                          # kube-proxy nftables/IPVS modes
)

step() { printf '[setup] %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing_apt=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing_apt+=("$pkg")
done
if [ ${#missing_apt[@]} -eq 0 ]; then
  step "apt packages: all present"
else
  step "apt packages: installing ${missing_apt[*]}"
  as_root apt-get update -qq
  # tshark asks whether non-root users may capture; answer non-interactively.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | as_root debconf-set-selections
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_apt[@]}" >/dev/null
fi

if rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
  step "rust-src for nightly: present"
else
  step "rust-src for nightly: installing"
  rustup component add rust-src --toolchain nightly
fi

if command -v bpf-linker >/dev/null 2>&1 && bpf-linker --version 2>/dev/null | grep -q "$BPF_LINKER_VERSION"; then
  step "bpf-linker $BPF_LINKER_VERSION: present"
else
  step "bpf-linker $BPF_LINKER_VERSION: building against LLVM $LLVM_MAJOR (several minutes)"
  LLVM_PREFIX="/usr/lib/llvm-${LLVM_MAJOR}" cargo install bpf-linker --locked \
    --version "$BPF_LINKER_VERSION" --no-default-features --features "llvm-${LLVM_MAJOR}"
fi

step "done"
