from emu.cli import entry

entry()
