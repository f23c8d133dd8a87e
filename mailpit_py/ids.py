"""Message and session identifiers: 22-character base62 strings, as Mailpit's IDs look."""

from __future__ import annotations

import os

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Two base62 digits at a time: half the big-integer divisions (an ID is made for every message).
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]


def new_id() -> str:
    """A random ID, URL-safe and case-sensitive, from 128 random bits."""
    n = int.from_bytes(os.urandom(16))
    out = []
    for _ in range(11):
        n, r = divmod(n, 3844)
        out.append(_PAIRS[r])
    return "".join(out)
