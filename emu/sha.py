"""SHA-256 without hashlib's start-up cost.

`import hashlib` loads OpenSSL's `_hashlib` (2-5 ms), paid by every `emu run` only to key the
native helper's cache and to check the engine's patch id.  CPython's own builtin SHA-256
module gives the same digests; hashlib stays the fallback where it is absent.
"""
from __future__ import annotations

try:
    from _sha2 import sha256  # CPython 3.12+
except ImportError:
    try:
        from _sha256 import sha256  # CPython 3.11
    except ImportError:
        from hashlib import sha256

__all__ = ["sha256"]
