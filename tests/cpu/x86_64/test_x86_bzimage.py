"""The Linux x86 64-bit boot protocol: a synthetic bzImage (a real setup header, a
64-bit entry at +0x200 that reports what it was given) booted with `emu run --arch
x86_64`: the command line, the initrd, the e820 map, the loader type and the RSDP reach
it through boot_params in rsi."""
from __future__ import annotations

import struct
import subprocess

from tests.conftest import emu_cmd
from tests.cpu.x86_64.x86guest import AS, needs_x86

pytestmark = needs_x86

PAYLOAD = r"""
    .intel_syntax noprefix
    .code64
    .text
    .fill 0x200, 1, 0xf4             # the 32-bit entry: not used by a 64-bit boot
start64:
    mov rbx, rsi                     # boot_params
    mov eax, [rbx + 0x228]           # cmd_line_ptr
    mov ecx, [rbx + 0xC8]            # ext_cmd_line_ptr
    shl rcx, 32
    or rax, rcx
    mov rsi, rax
    mov dx, 0x3F8
1:  lodsb
    test al, al
    jz 2f
    out dx, al
    jmp 1b
2:  mov al, '|'
    out dx, al
    movzx eax, byte ptr [rbx + 0x1E8]  # e820 entries
    add al, '0'
    out dx, al
    mov al, '|'
    out dx, al
    cmp byte ptr [rbx + 0x210], 0xFF   # type_of_loader
    jne 3f
    mov al, 'L'
    out dx, al
3:  mov rax, [rbx + 0x70]            # acpi_rsdp_addr
    mov rax, [rax]
    mov rcx, 0x2052545020445352      # "RSD PTR "
    cmp rax, rcx
    jne 4f
    mov al, 'A'
    out dx, al
4:  mov al, '|'
    out dx, al
    mov esi, [rbx + 0x218]           # ramdisk_image
    mov ecx, [rbx + 0x21C]           # ramdisk_size
5:  lodsb
    out dx, al
    loop 5b
    lea rax, [rip + start64]
    cmp rax, 0x1000200               # entered at pref_address + 0x200
    jne 6f
    mov al, '!'
    out dx, al
6:  mov dx, 0x604
    mov ax, 0x2000
    out dx, ax
7:  hlt
    jmp 7b
"""


def make_bzimage(tmp_path):
    src = tmp_path / "payload.S"
    src.write_text(PAYLOAD)
    obj = tmp_path / "payload.o"
    binary = tmp_path / "payload.bin"
    subprocess.run([str(AS), "--64", "-o", str(obj), str(src)], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(obj), str(binary)], check=True)
    setup = bytearray(1024)  # boot sector + 1 setup sector
    setup[0x1F1] = 1  # setup_sects
    setup[0x1FE:0x200] = b"\x55\xaa"
    setup[0x200:0x202] = b"\xeb\x6a"  # jmp over the header: it ends at 0x26C
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, 0x020F)
    setup[0x211] = 1  # LOADED_HIGH
    struct.pack_into("<I", setup, 0x22C, 0x7FFF_FFFF)  # initrd_addr_max
    struct.pack_into("<I", setup, 0x230, 0x20_0000)  # kernel_alignment
    setup[0x234] = 1  # relocatable
    struct.pack_into("<H", setup, 0x236, 3)  # XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
    struct.pack_into("<I", setup, 0x238, 2047)  # cmdline_size
    struct.pack_into("<Q", setup, 0x258, 0x100_0000)  # pref_address
    struct.pack_into("<I", setup, 0x260, 0x40_0000)  # init_size
    image = tmp_path / "bzImage"
    image.write_bytes(bytes(setup) + binary.read_bytes())
    return image


def test_bzimage_64_bit_boot_protocol(tmp_path):
    image = make_bzimage(tmp_path)
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"INITRD")
    res = subprocess.run(emu_cmd("run", "--arch", "x86_64", "--kernel", str(image), "--initrd", str(initrd),
                                 "--append", "console=ttyS0 quiet", "--timeout", "30"),
                         capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr.decode()
    assert res.stdout == b"console=ttyS0 quiet|4|LA|INITRD!"


def test_a_32_bit_only_bzimage_is_refused(tmp_path):
    image = make_bzimage(tmp_path)
    data = bytearray(image.read_bytes())
    struct.pack_into("<H", data, 0x236, 0)
    image.write_bytes(bytes(data))
    res = subprocess.run(emu_cmd("run", "--arch", "x86_64", "--kernel", str(image), "--timeout", "30"),
                         capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert res.returncode == 2
    assert res.stderr.decode().strip().endswith("a 32-bit kernel (no XLF_KERNEL_64)")
