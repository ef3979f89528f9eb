#!/usr/bin/env bash
# Installs everything a fresh machine lacks to build and test tracer. Idempotent:
# each step checks first and prints one line, so a second run takes seconds.
set -euo pipefail

BPF_LINKER_VERSION=0.13.0
LLVM_MAJOR=22
APT_PACKAGES=(
  "llvm-${LLVM_MAJOR}-dev" "libpolly-${LLVM_MAJOR}-dev" libzstd-dev zlib1g-dev   # bpf-linker
  iptables iputils-ping curl iperf3 tcpdump tshark bpftool                        # lab and tests
  qemu-system-x86 busybox-static kmod                                             # kernel VMs (cargo xtask vm)
  nftables ipvsadm ipset                                                          # kube-proxy nftables/IPVS modes
)
VIRTME_NG_VERSION=1.42
# The kernels the project tests in VMs: Debian bookworm's 6.1 (what Debian 12 nodes run, no
# TCX) and its 6.12, by the meta-packages that name the current build of each.
KERNEL_META_PACKAGES=(linux-image-amd64 linux-image-6.12-amd64)
KERNELS_DIR="${TRACER_KERNELS_DIR:-/opt/tracer/kernels}"

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

# udev: virtme-ng's guest init finds its I/O ports through udev. Installed without starting
# it on this machine (a policy-rc.d that refuses service starts, only if none exists), so
# the host's devices and the lab's interfaces are left alone.
if dpkg-query -W -f='${Status}' udev 2>/dev/null | grep -q "install ok installed"; then
  step "udev (for VM guests): present"
else
  step "udev (for VM guests): installing, not started"
  created_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# tracer setup: install udev without starting it\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod 0755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends udev >/dev/null
  if [ -n "$created_policy" ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
fi

if command -v vng >/dev/null 2>&1 && vng --version 2>/dev/null | grep -q "$VIRTME_NG_VERSION"; then
  step "virtme-ng $VIRTME_NG_VERSION: present"
else
  step "virtme-ng $VIRTME_NG_VERSION: installing from PyPI"
  python3 -m pip install -q --root-user-action=ignore "virtme-ng==$VIRTME_NG_VERSION"
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi

# Kernel packages for VMs: downloaded and unpacked into $KERNELS_DIR, never installed (the
# host's /boot and bootloader are not touched); depmod indexes their modules there.
for meta in "${KERNEL_META_PACKAGES[@]}"; do
  if ! apt-cache show "$meta" >/dev/null 2>&1; then as_root apt-get update -qq; fi
  package=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$package" ]; then
    step "kernel for $meta: Debian offers none here, skipped"
    continue
  fi
  dir="$KERNELS_DIR/$package"
  if ls "$dir"/boot/vmlinuz-* >/dev/null 2>&1 && ls "$dir"/lib/modules/*/modules.dep >/dev/null 2>&1; then
    step "kernel $package: present"
    continue
  fi
  step "kernel $package: downloading and unpacking into $dir"
  as_root mkdir -p "$KERNELS_DIR/debs"
  (cd "$KERNELS_DIR/debs" && as_root apt-get download -qq "$package" 2>/dev/null)
  as_root rm -rf "$dir.partial" && as_root mkdir -p "$dir.partial"
  as_root dpkg-deb -x "$KERNELS_DIR"/debs/"${package}"_*.deb "$dir.partial"
  release=$(ls "$dir.partial/lib/modules")
  as_root depmod -b "$dir.partial" "$release"
  as_root rm -rf "$dir" && as_root mv "$dir.partial" "$dir"
  as_root rm -f "$KERNELS_DIR"/debs/"${package}"_*.deb
done

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
