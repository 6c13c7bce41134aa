"""Test lists in zcore-tests' format (`testcases/*/*.txt`).

One case per line: `PATH   STATUS`, separated by blanks; STATUS is OK, FAILED, TIMEOUT,
PARTIAL or SKIPPED.  `#` starts a comment (a whole line, or after the status); blank
lines are ignored.  A path may hold `?` between argv words, as zCore's ROOTPROC does
(`/bin/busybox?sh?-c?ls`): typed on a shell it becomes `/bin/busybox sh -c ls`.

zcore-tests' own loader skips lines it cannot read; here such a line is an error that
names FILE:LINE (EmuError, so the CLI prints one line and exits 2), as is a path listed
twice.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path

from emu.errors import EmuError


class Status(str, enum.Enum):
    OK = "OK"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    PARTIAL = "PARTIAL"
    SKIPPED = "SKIPPED"
    # Verdicts only emu gives (never in a list): one of emu's detectors stopped the guest
    # during the case.  On QEMU the guest would spin on, and zcore-tests records TIMEOUT.
    PANIC = "PANIC"  # the console showed a kernel panic
    FAULT_LOOP = "FAULT-LOOP"  # the same trap again and again, no progress
    HANG = "HANG"  # every hart waits with no timer armed and no input to come

    def __str__(self) -> str:
        return self.value

    @property
    def detected(self) -> bool:
        """Stopped by a detector of emu's (PANIC, FAULT-LOOP, HANG)."""
        return self in DETECTED


DETECTED = frozenset({Status.PANIC, Status.FAULT_LOOP, Status.HANG})
LIST_STATUSES = tuple(s for s in Status if s not in DETECTED)  # what zcore-tests' lists hold
STATUS_NAMES = ", ".join(s.value for s in LIST_STATUSES)


@dataclass(frozen=True)
class Case:
    path: str  # as written in the list, `?` kept
    expected: Status | None  # None: given with --case and not in the list
    line: int = 0  # 1-based line in the list (0: not from a list)

    @property
    def argv(self) -> list[str]:
        return [w for w in self.path.split("?") if w]

    @property
    def command(self) -> str:
        """What is typed on the guest's shell: argv joined by spaces."""
        return " ".join(self.argv)


# PATH, blanks, STATUS, then optionally blanks and a `#` comment
_LINE = re.compile(r"^(?P<lead>\s*)(?P<path>\S+)(?P<gap>\s+)(?P<status>\S+)(?P<tail>\s*(?:#.*)?)$")


def parse_list_text(text: str, name: str) -> list[Case]:
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(raw.rstrip("\r\n"))
        if m is None:
            words = line.split("#", 1)[0].split()
            what = "a path without a status" if len(words) == 1 else f"{len(words)} fields"
            raise EmuError(f"{name}:{lineno}: expected `PATH STATUS`, found {what}: {line!r}")
        status = m.group("status")
        try:
            expected = Status(status)
            if expected.detected:
                raise ValueError(status)
        except ValueError:
            hint = " (emu's own verdict; a list records TIMEOUT for it)" if status in {d.value for d in DETECTED} else ""
            raise EmuError(f"{name}:{lineno}: unknown status {status!r}{hint} (use {STATUS_NAMES})") from None
        path = m.group("path")
        if not [w for w in path.split("?") if w]:
            raise EmuError(f"{name}:{lineno}: empty case path {path!r}")
        if path in seen:
            raise EmuError(f"{name}:{lineno}: case {path!r} listed twice (first at line {seen[path]})")
        seen[path] = lineno
        cases.append(Case(path, expected, lineno))
    return cases


def parse_list(path: str | Path) -> list[Case]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EmuError(f"test list not found: {p}") from None
    except UnicodeDecodeError as err:
        raise EmuError(f"{p}: not a text file ({err.reason})") from None
    except OSError as err:
        raise EmuError(f"cannot read test list {p}: {err.strerror}") from None
    return parse_list_text(text, str(path))


def rewrite_list_text(text: str, new_status: dict[str, Status]) -> str:
    """The list with the status of each case in `new_status` replaced, layout kept.

    The status keeps its column; a comment after it stays where it was when the new
    status is not longer than the space allows.
    """
    out = []
    for raw in text.splitlines(keepends=True):
        body = raw.rstrip("\r\n")
        eol = raw[len(body):]
        m = _LINE.match(body)
        stripped = body.strip()
        if m is None or not stripped or stripped.startswith("#") or m.group("path") not in new_status:
            out.append(raw)
            continue
        old, new = m.group("status"), new_status[m.group("path")].value
        tail = m.group("tail")
        if tail and len(new) != len(old):
            pad = len(tail) - len(tail.lstrip())
            rest = tail.lstrip()
            pad = max(1, pad + len(old) - len(new))
            tail = " " * pad + rest
        out.append(f"{m.group('lead')}{m.group('path')}{m.group('gap')}{new}{tail}{eol}")
    return "".join(out)


def update_list(path: str | Path, new_status: dict[str, Status]) -> int:
    """Rewrite the statuses in the list file; returns how many lines changed."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    new_text = rewrite_list_text(text, new_status)
    changed = sum(a != b for a, b in zip(text.splitlines(), new_text.splitlines()))
    if new_text != text:
        p.write_text(new_text, encoding="utf-8")
    return changed
