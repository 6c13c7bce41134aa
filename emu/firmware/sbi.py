"""The emulator as M-mode firmware: SBI calls answered in Python.

An S-mode `ecall` reaches `Sbi.call`.  Implemented: the legacy extensions (set_timer,
console putchar/getchar, clear_ipi, send_ipi, remote fences, shutdown) and v0.2+ BASE,
TIME, IPI, RFENCE, HSM, SRST and DBCN.  Anything else returns SBI_ERR_NOT_SUPPORTED.
Legacy calls that take a hart-mask pointer read it through a software page walk of the
caller's satp.
"""
from __future__ import annotations

from typing import Protocol

from emu.smp.hart import Hart, HsmState

SBI_SUCCESS = 0
SBI_ERR_FAILED = -1
SBI_ERR_NOT_SUPPORTED = -2
SBI_ERR_INVALID_PARAM = -3
SBI_ERR_DENIED = -4
SBI_ERR_INVALID_ADDRESS = -5
SBI_ERR_ALREADY_AVAILABLE = -6
SBI_ERR_ALREADY_STARTED = -7
SBI_ERR_ALREADY_STOPPED = -8

SPEC_VERSION = (2 << 24) | 0  # SBI v2.0
IMPL_ID = 0x656D75  # "emu": not an assigned implementation ID
IMPL_VERSION = 1

EXT_BASE = 0x10
EXT_TIME = 0x54494D45
EXT_IPI = 0x735049
EXT_RFENCE = 0x52464E43
EXT_HSM = 0x48534D
EXT_SRST = 0x53525354
EXT_DBCN = 0x4442434E
LEGACY = range(0, 9)
EXTENSIONS = {EXT_BASE: "BASE", EXT_TIME: "TIME", EXT_IPI: "IPI", EXT_RFENCE: "RFENCE",
              EXT_HSM: "HSM", EXT_SRST: "SRST", EXT_DBCN: "DBCN"}

SUSPEND_NON_RETENTIVE = 0x8000_0000


class Firmware(Protocol):
    """The machine services the SBI needs (implemented by `emu.machine.Machine`)."""

    harts: list[Hart]

    def sbi_regs(self) -> list[int]: ...

    def sbi_return(self, error: int, value: int | None = None) -> None: ...

    def read_caller_virt(self, vaddr: int, size: int) -> bytes | None: ...

    def read_phys(self, paddr: int, size: int) -> bytes | None: ...

    def write_phys(self, paddr: int, data: bytes) -> bool: ...

    def set_timer(self, hart: Hart, deadline: int) -> None: ...

    def send_ipi(self, source: Hart, targets: list[Hart]) -> None: ...

    def clear_ipi(self, hart: Hart) -> None: ...

    def remote_fence(self, source: Hart, targets: list[Hart], kind: str,
                     start: int = 0, size: int = -1) -> None: ...

    def hart_start(self, hart: Hart, start_addr: int, opaque: int) -> None: ...

    def hart_stop(self, hart: Hart) -> None: ...

    def hart_suspend(self, hart: Hart, non_retentive: bool, resume_addr: int, opaque: int) -> None: ...

    def console_write(self, data: bytes) -> None: ...

    def console_read(self, size: int) -> bytes: ...

    def system_reset(self, reset_type: int, reason: int) -> None: ...


class Sbi:
    def __init__(self, fw: Firmware) -> None:
        self.fw = fw
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def call(self, hart: Hart) -> None:
        a = self.fw.sbi_regs()
        eid, fid = a[7], a[6]
        if eid in LEGACY:
            self._count("legacy")
            ret = self._legacy(hart, eid, a)
            if ret is not None:
                self.fw.sbi_return(ret)
            return
        name = EXTENSIONS.get(eid)
        self._count(name or "unknown")
        if name is None:
            self.fw.sbi_return(SBI_ERR_NOT_SUPPORTED, 0)
            return
        handler = getattr(self, f"_{name.lower()}")
        result = handler(hart, fid, a)
        if result is not None:
            error, value = result
            self.fw.sbi_return(error, value)

    # -- hart masks -----------------------------------------------------------
    def _mask_harts(self, mask: int, base: int) -> list[Hart] | None:
        harts = self.fw.harts
        if base == (1 << 64) - 1:  # -1: all harts
            return list(harts)
        targets = []
        mask &= (1 << 64) - 1
        while mask:  # set bits only: Linux sends one RFENCE per remote TLB shoot-down
            low = mask & -mask
            hid = base + low.bit_length() - 1
            if hid >= len(harts):
                return None
            targets.append(harts[hid])
            mask ^= low
        return targets

    def _legacy_mask(self, pointer: int) -> list[Hart] | None:
        if pointer == 0:
            return list(self.fw.harts)
        data = self.fw.read_caller_virt(pointer, 8)
        if data is None:
            return None
        return self._mask_harts(int.from_bytes(data, "little"), 0)

    # -- legacy (v0.1) --------------------------------------------------------
    def _legacy(self, hart: Hart, eid: int, a: list[int]) -> int | None:
        if eid == 0:
            self.fw.set_timer(hart, a[0])
            return 0
        if eid == 1:
            self.fw.console_write(bytes([a[0] & 0xFF]))
            return 0
        if eid == 2:
            data = self.fw.console_read(1)
            return data[0] if data else -1
        if eid == 3:
            self.fw.clear_ipi(hart)
            return 0
        if eid in (4, 5, 6, 7):
            targets = self._legacy_mask(a[0])
            if targets is None:
                return SBI_ERR_INVALID_ADDRESS
            if eid == 4:
                self.fw.send_ipi(hart, targets)
            else:
                if eid == 5:
                    self.fw.remote_fence(hart, targets, "fence.i")
                else:
                    self.fw.remote_fence(hart, targets, "sfence.vma", a[1], a[2])
            return 0
        self.fw.system_reset(0, 0)  # eid 8: shutdown
        return None

    # -- v0.2+ extensions -----------------------------------------------------
    def _base(self, hart: Hart, fid: int, a: list[int]) -> tuple[int, int]:
        if fid == 0:
            return SBI_SUCCESS, SPEC_VERSION
        if fid == 1:
            return SBI_SUCCESS, IMPL_ID
        if fid == 2:
            return SBI_SUCCESS, IMPL_VERSION
        if fid == 3:
            probed = a[0]
            return SBI_SUCCESS, 1 if probed in EXTENSIONS or probed in LEGACY else 0
        if fid in (4, 5, 6):  # mvendorid, marchid, mimpid
            return SBI_SUCCESS, 0
        return SBI_ERR_NOT_SUPPORTED, 0

    def _time(self, hart: Hart, fid: int, a: list[int]) -> tuple[int, int]:
        if fid != 0:
            return SBI_ERR_NOT_SUPPORTED, 0
        self.fw.set_timer(hart, a[0])
        return SBI_SUCCESS, 0

    def _ipi(self, hart: Hart, fid: int, a: list[int]) -> tuple[int, int]:
        if fid != 0:
            return SBI_ERR_NOT_SUPPORTED, 0
        targets = self._mask_harts(a[0], a[1])
        if targets is None:
            return SBI_ERR_INVALID_PARAM, 0
        self.fw.send_ipi(hart, targets)
        return SBI_SUCCESS, 0

    def _rfence(self, hart: Hart, fid: int, a: list[int]) -> tuple[int, int]:
        if fid > 6:
            return SBI_ERR_NOT_SUPPORTED, 0
        targets = self._mask_harts(a[0], a[1])
        if targets is None:
            return SBI_ERR_INVALID_PARAM, 0
        # start_addr, size: (0, 0) and size -1 mean the whole address space (SBI spec)
        self.fw.remote_fence(hart, targets, "fence.i" if fid == 0 else "sfence.vma", a[2], a[3])
        return SBI_SUCCESS, 0

    def _hsm(self, hart: Hart, fid: int, a: list[int]) -> tuple[int, int] | None:
        harts = self.fw.harts
        if fid == 0:  # hart_start(hartid, start_addr, opaque)
            if a[0] >= len(harts):
                return SBI_ERR_INVALID_PARAM, 0
            target = harts[a[0]]
            if target.state != HsmState.STOPPED:
                return SBI_ERR_ALREADY_AVAILABLE, 0
            if self.fw.read_phys(a[1], 2) is None:
                return SBI_ERR_INVALID_ADDRESS, 0
            self.fw.hart_start(target, a[1], a[2])
            return SBI_SUCCESS, 0
        if fid == 1:  # hart_stop: does not return
            self.fw.sbi_return(SBI_SUCCESS, 0)
            self.fw.hart_stop(hart)
            return None
        if fid == 2:
            if a[0] >= len(harts):
                return SBI_ERR_INVALID_PARAM, 0
            return SBI_SUCCESS, int(harts[a[0]].state)
        if fid == 3:  # hart_suspend(type, resume_addr, opaque)
            kind = a[0] & 0xFFFF_FFFF
            if kind not in (0, SUSPEND_NON_RETENTIVE):
                return SBI_ERR_INVALID_PARAM, 0
            self.fw.sbi_return(SBI_SUCCESS, 0)
            self.fw.hart_suspend(hart, kind == SUSPEND_NON_RETENTIVE, a[1], a[2])
            return None
        return SBI_ERR_NOT_SUPPORTED, 0

    def _srst(self, hart: Hart, fid: int, a: list[int]) -> tuple[int, int] | None:
        if fid != 0:
            return SBI_ERR_NOT_SUPPORTED, 0
        reset_type, reason = a[0] & 0xFFFF_FFFF, a[1] & 0xFFFF_FFFF
        if reset_type > 2 or reason > 1:
            return SBI_ERR_INVALID_PARAM, 0
        self.fw.system_reset(reset_type, reason)
        return None

    def _dbcn(self, hart: Hart, fid: int, a: list[int]) -> tuple[int, int]:
        if fid == 2:  # console_write_byte
            self.fw.console_write(bytes([a[0] & 0xFF]))
            return SBI_SUCCESS, 0
        if fid not in (0, 1):
            return SBI_ERR_NOT_SUPPORTED, 0
        size, addr = a[0], a[1] | (a[2] << 64)
        if fid == 0:
            data = self.fw.read_phys(addr, size)
            if data is None:
                return SBI_ERR_INVALID_PARAM, 0
            self.fw.console_write(data)
            return SBI_SUCCESS, size
        data = self.fw.console_read(size)
        if not self.fw.write_phys(addr, data):
            return SBI_ERR_INVALID_PARAM, 0
        return SBI_SUCCESS, len(data)
