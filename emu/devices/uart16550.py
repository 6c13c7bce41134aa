"""ns16550a UART following QEMU's hw/char/serial.c interrupt rules.

Transmit is instantaneous (bytes go to the `tx` callback; while DLAB is clear and the
THR-empty interrupt is off, LSR reads and THR writes are served by a native front, see
emu/cpu/native/uart_fast.c).  Receive holds host input in
a FIFO.  Interrupt priority: received data before transmitter empty; "transmitter
empty" is raised by a THR write or by enabling it in IER while THR is empty, and is
cleared by an IIR read that reports it.  LSR is always 0x60 | data-ready.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable

from emu.devices.irq import IrqLine

RBR_THR, IER, IIR_FCR, LCR, MCR, LSR, MSR, SCR = range(8)
IER_RDI, IER_THRI = 0x01, 0x02
IIR_NO_INT, IIR_THRI, IIR_RDI = 0x01, 0x02, 0x04
LSR_DR, LSR_THRE, LSR_TEMT = 0x01, 0x20, 0x40
LCR_DLAB = 0x80


class Uart16550:
    def __init__(self, tx: Callable[[bytes], None], irq: IrqLine | None = None) -> None:
        self.tx = tx
        self.irq = irq
        self.rx: deque[int] = deque()
        self.ier = 0
        self.lcr = 0
        self.mcr = 0
        self.scr = 0
        self.fcr = 0
        self.dll = 0
        self.dlm = 0
        self.thr_ipending = False
        self.configured = False  # the guest has programmed the UART (IER, FCR or LCR)
        self.fast: Any = None  # native LSR/THR state (emu/cpu/native/uart_fast.c), if mapped so

    def attach_fast(self, fast: Any) -> None:
        """Let a native front (uart_fast.c) serve LSR reads and THR writes while they have
        no side effect but the byte: DLAB clear and the THR-empty interrupt off."""
        self.fast = fast
        self.sync_fast()

    def sync_fast(self) -> None:
        """Tell the native front what it may answer (after any change of LCR, IER or rx)."""
        fast = self.fast
        if fast is not None:
            fast.fast = 0 if (self.lcr & LCR_DLAB or self.ier & IER_THRI) else 1
            fast.rx_ready = 1 if self.rx else 0

    # -- host side ---------------------------------------------------------
    def push_input(self, data: bytes) -> None:
        self.rx.extend(data)
        self._update()
        self.sync_fast()

    def can_accept(self) -> bool:
        """Take more host input only once the guest drives the UART and has drained the
        FIFO: typed-ahead input is neither lost in a FIFO reset at driver init nor does
        its arrival depend on host timing when it was all there from the start."""
        return self.configured and not self.rx

    # -- guest side --------------------------------------------------------
    def _iir(self) -> int:
        if self.ier & IER_RDI and self.rx:
            iir = IIR_RDI
        elif self.ier & IER_THRI and self.thr_ipending:
            iir = IIR_THRI
        else:
            iir = IIR_NO_INT
        if self.fcr & 1:
            iir |= 0xC0
        return iir

    def _update(self) -> None:
        if self.irq is not None:
            self.irq.set(not (self._iir() & IIR_NO_INT))

    def read(self, offset: int, size: int) -> int:
        if offset == RBR_THR:
            if self.lcr & LCR_DLAB:
                return self.dll
            val = self.rx.popleft() if self.rx else 0
            self._update()
            self.sync_fast()
            return val
        if offset == IER:
            return self.dlm if self.lcr & LCR_DLAB else self.ier
        if offset == IIR_FCR:
            iir = self._iir()
            if iir & 0x0F == IIR_THRI:
                self.thr_ipending = False
                self._update()
            return iir
        if offset == LCR:
            return self.lcr
        if offset == MCR:
            return self.mcr
        if offset == LSR:
            return LSR_THRE | LSR_TEMT | (LSR_DR if self.rx else 0)
        if offset == MSR:
            return 0xB0  # DCD | DSR | CTS, as QEMU
        if offset == SCR:
            return self.scr
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        self._write(offset, value & 0xFF)
        if offset in (IER, IIR_FCR, LCR):
            self.sync_fast()

    def _write(self, offset: int, value: int) -> None:
        if offset == RBR_THR:
            if self.lcr & LCR_DLAB:
                self.dll = value
                return
            self.tx(bytes((value,)))
            self.thr_ipending = True
            self._update()
        elif offset == IER:
            if self.lcr & LCR_DLAB:
                self.dlm = value
                return
            self.configured = True
            changed = (self.ier ^ value) & IER_THRI
            self.ier = value & 0x0F
            if changed and value & IER_THRI:
                self.thr_ipending = True  # THR is always empty here
            self._update()
        elif offset == IIR_FCR:
            self.configured = True
            self.fcr = value
            if value & 0x02:
                self.rx.clear()
            self._update()
        elif offset == LCR:
            self.configured = True
            self.lcr = value
        elif offset == MCR:
            self.mcr = value
        elif offset == SCR:
            self.scr = value
