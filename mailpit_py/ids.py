"""Message and session identifiers: 22-character base62 strings, as Mailpit's IDs look."""

from __future__ import annotations

import uuid

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_id() -> str:
    """A random ID, URL-safe and case-sensitive, from 128 random bits."""
    n = uuid.uuid4().int
    out = []
    for _ in range(22):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(out)
