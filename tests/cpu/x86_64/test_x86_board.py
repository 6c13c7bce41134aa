"""The x86_64 PC board: COM1's interrupt through the I/O APIC, the ACPI tables a kernel
finds (RSDP in the BIOS area, XSDT, FADT with the DSDT and power-off port, MADT with
every CPU and the I/O APIC), the ACPI PM timer on the virtual clock."""
from __future__ import annotations

import struct

from emu.cpu.x86_64 import acpi
from emu.devices.ioapic import LEVEL, IoApic
from tests.cpu.x86_64.x86guest import build, needs_x86, run


def _sum_ok(data: bytes) -> bool:
    return sum(data) & 0xFF == 0


def test_acpi_tables_are_well_formed():
    layout, blob = acpi.build(4, 0, 0xFEE0_0000, 0xFEC0_0000)

    def at(addr: int, n: int) -> bytes:
        return blob[addr - acpi.ACPI_BASE:addr - acpi.ACPI_BASE + n]

    rsdp = at(layout.rsdp, 36)
    assert rsdp[:8] == b"RSD PTR " and rsdp[15] == 2
    assert _sum_ok(rsdp[:20]) and _sum_ok(rsdp)
    xsdt_addr = struct.unpack_from("<Q", rsdp, 24)[0]
    length = struct.unpack_from("<I", at(xsdt_addr, 8), 4)[0]
    xsdt = at(xsdt_addr, length)
    assert xsdt[:4] == b"XSDT" and _sum_ok(xsdt)
    tables = {}
    for (addr,) in struct.iter_unpack("<Q", xsdt[36:]):
        n = struct.unpack_from("<I", at(addr, 8), 4)[0]
        table = at(addr, n)
        assert _sum_ok(table), table[:4]
        tables[table[:4]] = table
    fadt, madt = tables[b"FACP"], tables[b"APIC"]
    dsdt_addr = struct.unpack_from("<Q", fadt, 140)[0]
    assert at(dsdt_addr, 4) == b"DSDT" and acpi.S5_AML in at(dsdt_addr, 48)
    assert b"PCI0" not in blob  # no PCI devices: no root bridge
    assert struct.unpack_from("<I", fadt, 64)[0] == 0x604  # PM1a_CNT: zCore's and Linux's power-off
    entries, off = [], 44
    while off < len(madt):
        kind, size = madt[off], madt[off + 1]
        entries.append((kind, madt[off:off + size]))
        off += size
    lapics = [e for k, e in entries if k == 0]
    assert [(e[2], e[3], e[4] & 1) for e in lapics] == [(i, i, 1) for i in range(4)]
    [ioapic] = [e for k, e in entries if k == 1]
    assert struct.unpack_from("<BII", ioapic, 2 + 0)[0] == 0 and struct.unpack_from("<I", ioapic, 4)[0] == 0xFEC0_0000


def test_ioapic_level_inputs_wait_for_eoi():
    sent = []
    io = IoApic(0, lambda dest, vector, logical: sent.append((dest, vector)))
    io.write(0, 4, 0x10 + 2 * 5)
    io.write(0x10, 4, 0x35 | LEVEL)
    io.set_level(5, True)
    io.set_level(5, True)
    assert sent == [(0, 0x35)]  # remote IRR holds it
    io.eoi(0x35)
    assert sent == [(0, 0x35), (0, 0x35)]  # still high: sent again
    io.set_level(5, False)
    io.eoi(0x35)
    assert len(sent) == 2


def test_ioapic_edge_while_masked_is_sent_on_unmask():
    """QEMU's IRR: zCore programs COM1, then unmasks IRQ 4; typed-ahead input in between
    raised the line once and must not be lost."""
    sent = []
    io = IoApic(0, lambda dest, vector, logical: sent.append((dest, vector)))
    io.write(0, 4, 0x10 + 2 * 4)
    io.set_level(4, True)  # the entry is still masked (reset state)
    assert sent == []
    io.write(0x10, 4, 0x24 | (1 << 16))  # programmed, still masked
    assert sent == []
    io.write(0x10, 4, 0x24)  # unmasked: the latched edge goes out, once
    io.write(0x10, 4, 0x24)
    assert sent == [(0, 0x24)]
    io.set_level(4, False)
    io.set_level(4, True)
    assert sent == [(0, 0x24), (0, 0x24)]


@needs_x86
def test_com1_interrupt_through_the_ioapic_wakes_hlt(tmp_path):
    elf = build("""
main:
    mov rbx, 0xFEC00000
    mov dword ptr [rbx], 0x10 + 2 * 4         # redirection entry 4 (COM1): vector 0x24
    mov dword ptr [rbx + 0x10], 0x24
    mov dword ptr [rbx], 0x10 + 2 * 4 + 1
    mov dword ptr [rbx + 0x10], 0               # to APIC 0
    mov dword ptr [rbx], 1
    mov eax, [rbx + 0x10]
    mov [rip + ioapic_ver], rax
    sti
    mov dx, 0x3F9
    mov al, 2                                   # IER: transmitter empty
    out dx, al
    .globl f_hlt
f_hlt:
    hlt
    cmp qword ptr [rip + irq_count + 0x24 * 8], 0
    je f_hlt
    mov dx, 0x608
    in eax, dx                                  # the ACPI PM timer
    mov [rip + pm_timer], rax
    POWER_OFF
    .data
    .globl ioapic_ver, pm_timer
ioapic_ver: .quad 0
pm_timer: .quad 0
""", tmp_path)
    r = run(elf)
    assert r.result.exit_code == 0, r.result.reason
    assert r.word("ioapic_ver") == 0x0017_0020  # 24 inputs, version 0x20
    [irq] = r.records()
    assert (irq["vector"], irq["rip"]) == (0x24, r.sym("f_hlt") + 1)
    assert 0 < r.word("pm_timer") < 3_579_545 // 100  # a few microseconds of virtual time


@needs_x86
def test_guest_finds_the_rsdp_in_the_bios_area(tmp_path):
    elf = build("""
main:
    mov rsi, 0xE0000
1:  mov rax, [rsi]
    mov rbx, 0x2052545020445352                 # "RSD PTR "
    cmp rax, rbx
    je 2f
    add rsi, 16
    cmp rsi, 0x100000
    jb 1b
    xor esi, esi
2:  mov [rip + rsdp_at], rsi
    POWER_OFF
    .data
    .globl rsdp_at
rsdp_at: .quad 0
""", tmp_path)
    r = run(elf)
    assert r.result.exit_code == 0, r.result.reason
    assert r.word("rsdp_at") == acpi.ACPI_BASE


@needs_x86
def test_pci_configuration_space_is_empty(tmp_path):
    elf = build("""
main:
    mov dx, 0xCF8
    mov eax, 0x80000000                         # bus 0, device 0, function 0, register 0
    out dx, eax
    in eax, dx
    mov [rip + address], rax
    mov dx, 0xCFC
    in eax, dx
    mov [rip + vendor], rax
    POWER_OFF
    .data
    .globl address, vendor
address: .quad 0
vendor: .quad 0
""", tmp_path)
    r = run(elf)
    assert r.result.exit_code == 0, r.result.reason
    assert r.word("address") == 0x8000_0000
    assert r.word("vendor") == 0xFFFF_FFFF  # no device


@needs_x86
def test_a_drive_is_a_virtio_blk_pci_function_the_guest_reaches(tmp_path):
    """--drive on the PC: 00:03.0 answers at the ports, its BAR0 is placed in the PCI window
    and the guest reads the common configuration and the disk's capacity through it."""
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(64 * 512))
    elf = build("""
main:
    mov dx, 0xCF8
    mov eax, 0x80001800                         # bus 0, device 3, function 0, register 0
    out dx, eax
    mov dx, 0xCFC
    in eax, dx
    mov [rip + ids], rax
    mov dx, 0xCF8
    mov eax, 0x80001810                         # BAR0
    out dx, eax
    mov dx, 0xCFC
    in eax, dx
    mov [rip + bar], rax
    and eax, 0xFFFFFFF0
    movzx ebx, word ptr [rax + 0x12]            # common cfg: num_queues
    mov [rip + queues], rbx
    mov rbx, [rax + 0x2000]                     # device cfg: capacity
    mov [rip + capacity], rbx
    POWER_OFF
    .data
    .globl ids, bar, queues, capacity
ids: .quad 0
bar: .quad 0
queues: .quad 0
capacity: .quad 0
""", tmp_path)
    r = run(elf, drives=(f"file={disk}",))
    assert r.result.exit_code == 0, r.result.reason
    assert r.word("ids") == 0x1042_1AF4
    assert r.word("bar") == 0xC000_0000
    assert (r.word("queues"), r.word("capacity")) == (1, 64)


@needs_x86
def test_pit_channel_0_ticks_through_the_ioapic_and_channel_2_counts(tmp_path):
    elf = build("""
main:
    mov rbx, 0xFEC00000
    mov dword ptr [rbx], 0x10 + 2 * 2           # GSI 2 (ISA IRQ 0): vector 0x30
    mov dword ptr [rbx + 0x10], 0x30
    mov dword ptr [rbx], 0x10 + 2 * 2 + 1
    mov dword ptr [rbx + 0x10], 0
    mov al, 0x34                                # channel 0, lo/hi, mode 2
    out 0x43, al
    mov al, 0xA9                                # 1193 clocks: 1 ms
    out 0x40, al
    mov al, 0x04
    out 0x40, al
    sti
1:  hlt
    cmp qword ptr [rip + irq_count + 0x30 * 8], 5
    jb 1b
    cli
    mov al, 0x30                                # channel 0 to mode 0, no count: no more ticks
    out 0x43, al
    in al, 0x61                                 # channel 2: gate on, mode 0, 0x2000 clocks
    and al, 0xFC
    or al, 1
    out 0x61, al
    mov al, 0xB0
    out 0x43, al
    mov al, 0
    out 0x42, al
    mov al, 0x20
    out 0x42, al
    xor ecx, ecx
2:  inc rcx
    in al, 0x61
    test al, 0x20                               # OUT2: terminal count reached
    jz 2b
    mov [rip + polls], rcx
    POWER_OFF
    .data
    .globl polls
polls: .quad 0
""", tmp_path)
    r = run(elf)
    assert r.result.exit_code == 0, r.result.reason
    ticks = [x for x in r.records() if x["vector"] == 0x30]
    assert len(ticks) == 5
    assert r.result.stats["vtime_s"] >= 0.005  # five 1 ms ticks of virtual time
    assert r.word("polls") > 1


@needs_x86
def test_cmos_clock_reads_a_fixed_date_on_the_virtual_clock(tmp_path):
    elf = build("""
main:
    mov al, 0x0A
    out 0x70, al
    in al, 0x71
    mov [rip + status_a], al                    # UIP clear
    xor ebx, ebx
    lea rdi, [rip + date]
1:  lea rdx, [rip + regs]
    mov al, [rdx + rbx]
    out 0x70, al
    in al, 0x71
    mov [rdi + rbx], al
    inc ebx
    cmp ebx, 4
    jb 1b
    POWER_OFF
    .data
regs: .byte 0x09, 0x08, 0x07, 0x32                 # year, month, day, century
    .globl status_a, date
status_a: .byte 0
date: .byte 0, 0, 0, 0
""", tmp_path)
    r = run(elf)
    assert r.result.exit_code == 0, r.result.reason
    assert r.machine.cpu.read_phys(r.sym("status_a"), 1)[0] & 0x80 == 0
    assert r.machine.cpu.read_phys(r.sym("date"), 4) == bytes([0x24, 0x01, 0x01, 0x20])  # 2024-01-01, BCD


def test_aml_encodings():
    from emu.cpu.x86_64 import aml

    assert aml.eisa_id("PNP0A03") == aml.integer(0x030AD041)  # as iasl encodes EisaId("PNP0A03")
    assert aml.pkg_length(0x3E) == b"\x3f" and aml.pkg_length(0x3F) == b"\x41\x04"  # 1 byte up to 63
    assert aml.pkg_length(0x1000) == b"\x83\x00\x01"  # 0x1003 in 3 bytes
    assert aml.name_string("\\_SB_.PCI0") == b"\\._SB_PCI0"
    assert [aml.integer(v) for v in (0, 1, 2, 0x100, 0x1_0000)] == [b"\0", b"\1", b"\x0a\x02", b"\x0b\0\1",
                                                                     b"\x0c\0\0\1\0"]


def test_dsdt_describes_the_pci_root_bridge_when_there_are_devices(tmp_path):
    """\\\\_SB.PCI0: PNP0A03, _CRS with the BAR window, a _PRT entry per slot and pin; iasl (Debian's
    acpica-tools, if installed) disassembles it without complaint."""
    import shutil
    import subprocess

    pci = acpi.PciRoot((0xC000_0000, 0xD000_0000), 16)
    layout, blob = acpi.build(2, 0, 0xFEE0_0000, 0xFEC0_0000, pci=pci)
    dsdt = blob[layout.dsdt - acpi.ACPI_BASE:]
    dsdt = dsdt[:struct.unpack_from("<I", dsdt, 4)[0]]
    assert _sum_ok(dsdt) and b"PCI0" in dsdt and b"_PRT" in dsdt
    assert struct.pack("<II", 0xC000_0000, 0xCFFF_FFFF) in dsdt  # DWordMemory min, max
    if shutil.which("iasl") is None:
        return
    (tmp_path / "dsdt.dat").write_bytes(dsdt)
    res = subprocess.run(["iasl", "-d", "dsdt.dat"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    asl = (tmp_path / "dsdt.dsl").read_text()
    assert 'EisaId ("PNP0A03")' in asl and "Device (PCI0)" in asl and "Name (_PRT, Package (0x80)" in asl
    assert "0xC0000000,         // Range Minimum" in asl and "0xCFFFFFFF,         // Range Maximum" in asl
    # slot 3, INTA: the swizzle's GSI 16 + 3 = 19
    assert "0x0003FFFF, \n                    Zero, \n                    Zero, \n                    0x13" in asl
