"""`python -m emu.testrunner ...` = `emu test ...`, with emu's one-line errors (exit 2)."""
import sys

import click

from emu.errors import EXIT_BAD_INPUT, EmuError
from emu.testrunner.cli import test


def entry() -> None:
    try:
        test.main(prog_name="emu test", standalone_mode=False)
    except (EmuError, click.ClickException) as err:
        msg = err.format_message() if isinstance(err, click.ClickException) else str(err)
        print(f"emu: error: {msg}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except click.exceptions.Abort:
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)


entry()
