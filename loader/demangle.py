"""Demangled names for symbols: Rust legacy (`_ZN...17h<hash>E`) and C++ (Itanium).

Reports name the function a pc is in the way a debugger does: `linux_syscall::file::<impl
linux_syscall::Syscall>::sys_write`, not `_ZN13linux_syscall4file...17hb3cee95fcdf46155E`.

Rust's legacy scheme is small and is decoded here (length-prefixed path components, the
`17h` + 16 hex digit hash dropped, `$LT$`-style escapes); no package on PyPI does it
without pulling in a native build.  C++ names go to libstdc++'s own `__cxa_demangle`
(what c++filt uses) through ctypes, so they come out exactly as the GNU tools print
them; where libstdc++ is missing they stay mangled.  Rust v0 (`_R...`) names, which
rustc emits only with `-C symbol-mangling-version=v0`, stay mangled.
"""
from __future__ import annotations

import ctypes
import functools
import re

_HASH = re.compile(r"h[0-9a-f]{16}")
_ESCAPES = {"SP": "@", "BP": "*", "RF": "&", "LT": "<", "GT": ">", "LP": "(", "RP": ")", "C": ","}
_ESCAPE = re.compile(r"\$([A-Z]{1,2}|u[0-9a-f]{1,6})\$")


def _components(body: str) -> list[str] | None:
    """`3foo3bar` -> ['foo', 'bar']; None if `body` is not exactly such a list."""
    parts, i = [], 0
    while i < len(body):
        j = i
        while j < len(body) and body[j].isdigit():
            j += 1
        if j == i:
            return None
        n = int(body[i:j])
        if n == 0 or j + n > len(body):
            return None
        parts.append(body[j:j + n])
        i = j + n
    return parts


def _unescape(part: str) -> str:
    if part.startswith("_$"):
        part = part[1:]

    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        if code in _ESCAPES:
            return _ESCAPES[code]
        if code.startswith("u"):
            return chr(int(code[1:], 16))
        return m.group(0)

    return _ESCAPE.sub(one, part).replace("..", "::")


def demangle_rust_legacy(name: str) -> str | None:
    """`_ZN3foo3bar17h0123456789abcdefE` -> `foo::bar`; None if `name` is not one."""
    if not (name.startswith("_ZN") and name.endswith("E")):
        return None
    parts = _components(name[3:-1])
    if not parts:
        return None
    if _HASH.fullmatch(parts[-1]):
        parts.pop()
    return "::".join(_unescape(p) for p in parts) if parts else None


@functools.lru_cache(maxsize=1)
def _cxa_demangle() -> tuple[object, object] | None:
    """libstdc++'s `__cxa_demangle` and libc's `free`, loaded once; None when absent."""
    import ctypes.util  # only when a C++ name needs it: it pulls in subprocess (~1.5 ms of every start)
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("stdc++") or "libstdc++.so.6")
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = lib.__cxa_demangle
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_void_p
    fn.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
    libc.free.argtypes = [ctypes.c_void_p]
    return fn, libc.free


def demangle_cxx(name: str) -> str | None:
    """An Itanium C++ name as c++filt prints it; None if it is not one (or no libstdc++)."""
    found = _cxa_demangle()
    if found is None or not name.startswith("_Z"):
        return None
    fn, free = found
    status = ctypes.c_int(0)
    ptr = fn(name.encode(), None, None, ctypes.byref(status))  # type: ignore[operator]
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr).decode("utf-8", "replace") if status.value == 0 else None
    finally:
        free(ptr)  # type: ignore[operator]


def demangle(name: str) -> str:
    """The readable form of a symbol name (Rust legacy, then C++); others unchanged.

    A Rust legacy name carries its hash; one without (`_ZN3foo3barE`) is also valid C++
    and reads the same either way.
    """
    if not name.startswith("_Z"):
        return name
    rust = demangle_rust_legacy(name)
    if rust is not None and _HASH.search(name[-19:-1] or ""):
        return rust
    return demangle_cxx(name) or rust or name
