"""`emu` with the `image` group registered, for subprocess tests (python -m tests.image._emu).

Equivalent to `python -m emu` once emu/cli.py adds the group itself.
"""
from emu.cli import entry, main
from emu.image_cli import image

if "image" not in main.commands:
    main.add_command(image)

if __name__ == "__main__":
    entry()
