#!/bin/sh
# /init of the busybox rootfs on Linux (PID 1, run by busybox's ash through the kernel's
# BINFMT_SCRIPT). Mounts /proc, /sys, /dev (devtmpfs) and /tmp, then offers busybox's shell on
# the console with the prompt zcore-tests expect ("/ # "), again whenever it exits; rootfs.cmd=...
# on the kernel command line is run instead of the shell and the machine then powers off.
export PATH=/bin:/tests HOME=/root PS1='/ # '
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp 2>/dev/null
cd /
echo "rootfs: busybox $(busybox | head -1 | cut -d' ' -f2) on $(uname -sr), $(grep -c ^processor /proc/cpuinfo) cpus"
for word in $(cat /proc/cmdline); do
  case "$word" in
    rootfs.cmd=*) cmd="${word#rootfs.cmd=}" ;;
  esac
done
if [ -n "$cmd" ]; then
  sh -c "$(echo "$cmd" | tr '?' ' ')"
  echo "rootfs: exit status $?"
  poweroff -f
fi
while :; do
  setsid cttyhack sh
done
