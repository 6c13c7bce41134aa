#!/usr/bin/env bash
# Installs everything emu, its guests and its tests need on a fresh Debian 12 machine
# (as root, or with sudo available): Debian's cross toolchains and U-Boot, then emu itself in a
# project virtual environment, .venv/ (PEP 668: Debian's own Python refuses `pip install` outside
# one, and --break-system-packages is never the answer).
#
# Whatever `python3` is first in PATH (Debian's, pyenv's, conda's) makes the venv, unless PYTHON
# names another interpreter. The venv is reused while it is up to date: a stamp holds the hash of
# everything that decides its contents (pyproject.toml, the interpreter), so a second run is a
# no-op in well under a second. Afterwards: `.venv/bin/emu ...`, or `. .venv/bin/activate`.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  make binutils-riscv64-unknown-elf gcc-riscv64-unknown-elf   # tests/cpu guests, the reference guest
  cmake patch                                                 # the patched Unicorn (patches/unicorn)
  u-boot-qemu                                                 # Debian's U-Boot as a guest
  qemu-utils                                                  # qemu-img: qcow2 drives of the QEMU front end
  gdb-multiarch                                               # tests/debug drive the real GDB
  libslirp0                                                   # --net user (QEMU's user-mode network)
  iproute2                                                    # the TAP test makes its own network namespace
  linux-source-6.1 gcc-riscv64-linux-gnu libc6-dev-riscv64-cross bc flex bison cpio  # images/linux
  dpkg-dev                                                    # images/rootfs: apt-get source musl busybox
  e2fsprogs                                                   # tests/rootfs: ext2 data disks (mke2fs -d, debugfs)
  qemu-system-misc opensbi                                    # tests/rootfs: the same list on real QEMU
)
PY=${PYTHON:-python3}
VENV=.venv

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { $SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq "$@" >/dev/null
}

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

command -v "$PY" >/dev/null || { echo "setup.sh: no '$PY' in PATH (set PYTHON=...)" >&2; exit 2; }
pyver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "setup.sh: emu needs Python >= 3.11, $PY is $pyver" >&2; exit 2; }

# Debian splits venv/ensurepip out of its Python: bring it in when the interpreter lacks it.
if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  case "$(command -v "$PY")" in
    /usr/bin/*) apt_install "python$pyver-venv" python3-venv ;;
    *) echo "setup.sh: $PY has no venv/ensurepip module; install it or set PYTHON=..." >&2; exit 2 ;;
  esac
fi

# Unicorn, patched (patches/unicorn/README.md): built from its PyPI sdist at the pinned version,
# once per patch content; the wheel is kept in build/ and reused.
UNICORN_VERSION=2.1.4
patch_id="emu-$(cat patches/unicorn/*.patch | sha256sum | cut -c1-12)"
wheel_dir="build/unicorn-$patch_id"
interp=$("$PY" -c 'import os, sys; print(os.path.realpath(sys.executable), sys.version.split()[0])')
want="$interp $(sha256sum pyproject.toml | cut -c1-16) $patch_id"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.emu-stamp" 2>/dev/null)" = "$want" ] \
   && "$VENV/bin/python" -c 'import emu, pytest' >/dev/null 2>&1; then
  exit 0                                                      # up to date
fi
# A venv made by another interpreter (or half made) is rebuilt from scratch.
if [ -d "$VENV" ] && [ "$(cut -d' ' -f1,2 "$VENV/.emu-stamp" 2>/dev/null)" != "$interp" ]; then
  rm -rf "$VENV"
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# editable_mode=compat: a plain path entry, not setuptools' import-hook finder (~9 ms per start)
"$VENV/bin/python" -m pip install -q -e '.[test]' --config-settings editable_mode=compat
if ! ls "$wheel_dir"/unicorn-*.whl >/dev/null 2>&1; then
  src=$(mktemp -d)
  trap 'rm -rf "$src"' EXIT
  "$VENV/bin/python" -m pip download -q --no-binary :all: --no-deps "unicorn==$UNICORN_VERSION" -d "$src"
  tar xzf "$src/unicorn-$UNICORN_VERSION.tar.gz" -C "$src"
  for p in patches/unicorn/*.patch; do                        # emu.patch (one file today)
    (cd "$src/unicorn-$UNICORN_VERSION" && patch -s -p2 < "$OLDPWD/$p")
  done
  sed -i "s/#define EMU_PATCH_ID \"emu-patch\"/#define EMU_PATCH_ID \"$patch_id\"/" "$src/unicorn-$UNICORN_VERSION/src/uc.c"
  echo "setup.sh: building Unicorn $UNICORN_VERSION with emu's patch ($patch_id), riscv and x86, about two minutes" >&2
  mkdir -p "$wheel_dir"
  UNICORN_ARCH="riscv;x86" THREADS="$(nproc)" "$VENV/bin/python" -m pip wheel -q --no-deps -w "$wheel_dir" "$src/unicorn-$UNICORN_VERSION"
fi
"$VENV/bin/python" -m pip install -q --no-deps --force-reinstall "$wheel_dir"/unicorn-*.whl
"$VENV/bin/python" -c "from emu.cpu.engine import require_patched; require_patched('$patch_id')"
echo "$want" > "$VENV/.emu-stamp"
echo "setup.sh: emu is installed in $VENV/ (run .venv/bin/emu, or '. .venv/bin/activate' to put emu on PATH)"
