"""The e1000 / e1000e management side: which part it is, its EEPROM (through EERD) and its
PHY (through MDIC).

Why a file of its own: drivers read the MAC and the link from here before they touch a
ring, and this is where the two parts differ (device ID, PHY ID, EERD layout, MSI).
"""
from __future__ import annotations

from dataclasses import dataclass

MDIC_READY, MDIC_ERROR = 1 << 28, 1 << 30
MDIC_OP_WRITE, MDIC_OP_READ = 1, 2
PHY_ADDR = 1
# MII registers of an M88-class PHY with the link up at 1000/full
PHY_DEFAULT = {0: 0x1140, 1: 0x796D, 2: 0x0141, 4: 0x0DE1, 5: 0x45E1, 6: 0x000F, 9: 0x0E00, 10: 0x3C00,
               15: 0x3000, 17: 0xAC00}
PHY_LINK_BITS = {1: 1 << 2, 17: 1 << 10}
EEPROM_WORDS = 64
EEPROM_SUM = 0xBABA  # words 0..63 add up to this


@dataclass(frozen=True)
class NicModel:
    """What differs between the two parts (the datasheets' register maps agree otherwise)."""

    name: str
    device_id: int
    phy_id2: int
    eerd_addr_shift: int  # EERD address field
    eerd_done: int
    msi: bool


MODELS = {
    "e1000": NicModel("e1000", 0x100E, 0x0C20, 8, 1 << 4, False),
    "e1000e": NicModel("e1000e", 0x10D3, 0x0CB1, 2, 1 << 1, True),
}


def eeprom_image(mac: bytes) -> list[int]:
    """The MAC in words 0..2 and the checksum word drivers verify (Linux's e1000 refuses a bad one)."""
    words = [0] * EEPROM_WORDS
    for i in range(3):
        words[i] = mac[2 * i] | mac[2 * i + 1] << 8
    words[EEPROM_WORDS - 1] = (EEPROM_SUM - sum(words[:-1])) & 0xFFFF
    return words


class Management:
    """EEPROM words and PHY registers of one NIC."""

    def __init__(self, model: NicModel, mac: bytes, link: bool) -> None:
        self.model = model
        self.eeprom = eeprom_image(mac)
        self.link = link
        self.phy: dict[int, int] = {}
        self.reset()

    def reset(self) -> None:
        self.phy = {**PHY_DEFAULT, 3: self.model.phy_id2}
        if not self.link:
            for reg, bit in PHY_LINK_BITS.items():
                self.phy[reg] &= ~bit

    def eerd(self, value: int) -> int:
        if not value & 1:  # START
            return value
        addr = (value >> self.model.eerd_addr_shift) & 0xFF
        data = self.eeprom[addr] if addr < EEPROM_WORDS else 0xFFFF
        return (value & 0xFFFF) | self.model.eerd_done | data << 16

    def mdic(self, value: int) -> int:
        op, phy, reg = (value >> 26) & 3, (value >> 21) & 31, (value >> 16) & 31
        if phy != PHY_ADDR:
            return value | MDIC_READY | MDIC_ERROR
        if op == MDIC_OP_WRITE:
            if reg == 0 and value & 0x8000:  # PHY reset: self-clearing
                value &= ~0x8000
            self.phy[reg] = value & 0xFFFF
            return value | MDIC_READY
        if op == MDIC_OP_READ:
            return (value & ~0xFFFF) | self.phy.get(reg, 0) | MDIC_READY
        return value | MDIC_READY | MDIC_ERROR
