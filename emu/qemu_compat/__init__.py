"""emu as a drop-in for `qemu-system-riscv64` (QEMU's command-line syntax).

argv.py tokenises QEMU's argv and option lists, config.py turns them into a QemuPlan
(plain data, no side effects), disks.py prepares drive images (qemu-img for non-raw
formats), cli.py runs the plan through `emu run`'s code path and writes shims.
"""
