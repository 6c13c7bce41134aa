"""Tests on real zCore builds, which stay outside the repository (paths from EMU_ZCORE_*)."""
from __future__ import annotations

import os
import warnings

import pytest


def local_build(*variables: str, reason: str) -> tuple[list[str | None], pytest.MarkDecorator]:
    """The paths a module's tests take from the EMU_ZCORE_* `variables`, and the mark that skips
    them, saying `reason`, unless all are set (also warned once, so a run says which zCore tests
    it left out)."""
    paths = [os.environ.get(v) for v in variables]
    missing = not all(paths)
    if missing:
        warnings.warn(reason)
    return paths, pytest.mark.skipif(missing, reason=reason)
