#!/usr/bin/env bash
# Installs everything emu, its guests and its tests need on a fresh Debian 12 machine
# (as root, or with sudo available): Debian's cross toolchains and U-Boot, then emu itself.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  make binutils-riscv64-unknown-elf gcc-riscv64-unknown-elf   # tests/cpu guests, the reference guest
  u-boot-qemu                                                 # Debian's U-Boot as a guest
  gdb-multiarch                                               # tests/debug drive the real GDB
  libslirp0                                                   # --net user (QEMU's user-mode network)
  iproute2                                                    # the TAP test makes its own network namespace
  linux-source-6.1 gcc-riscv64-linux-gnu libc6-dev-riscv64-cross bc flex bison cpio  # images/linux
)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python3 -m pip install -q -e '.[test]'
