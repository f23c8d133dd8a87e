"""Password checks for every htpasswd hash Mailpit's auth files accept: bcrypt, MD5-crypt, SHA."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import bcrypt

# The hash formats Mailpit's htpasswd reader takes, by their prefix. `htpasswd` writes $apr1$
# by default, -B bcrypt, -s {SHA}, -2/-5 $5$/$6$; openssl passwd -1 writes $1$. Any other value
# is a clear-text password, as there ({PLAIN}x included).
_BCRYPT = ("$2a$", "$2b$", "$2y$", "$2x$")
_MD5 = ("$apr1$", "$1$")
_SHA_CRYPT = ("$5$", "$6$")
_PREFIXES = (*_BCRYPT, *_MD5, *_SHA_CRYPT, "{SHA}", "{SSHA}")

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def is_hashed(stored: str) -> bool:
    """True for a hash (no clear text to give CRAM-MD5), False for a clear-text password."""
    return stored.startswith(_PREFIXES)


def is_bcrypt(stored: str) -> bool:
    return stored.startswith(_BCRYPT)


def matches(password: str, stored: str) -> bool:
    """Whether the password matches the stored entry; a malformed hash matches nothing."""
    pw = password.encode()
    if stored.startswith(_BCRYPT):
        # $2x$ is bcrypt's old spelling for the same sums on ASCII passwords.
        hashed = ("$2a$" + stored[4:]) if stored.startswith("$2x$") else stored
        try:
            return bcrypt.checkpw(pw, hashed.encode())
        except ValueError:
            return False
    for prefix in _MD5:
        if stored.startswith(prefix):
            salt, sep, _ = stored[len(prefix) :].partition("$")
            return bool(sep) and _same(prefix + salt + "$" + _md5_crypt(pw, salt, prefix), stored)
    if stored.startswith(_SHA_CRYPT):
        hashed = _sha_crypt(pw, stored)
        return bool(hashed) and _same(hashed, stored.rsplit("$", 1)[1])
    if stored.startswith("{SHA}"):
        return _same("{SHA}" + base64.b64encode(hashlib.sha1(pw).digest()).decode(), stored)
    if stored.startswith("{SSHA}"):
        try:
            raw = base64.b64decode(stored[6:], validate=True)
        except (binascii.Error, ValueError):
            return False
        digest, extra = raw[:20], raw[20:]
        return len(digest) == 20 and hmac.compare_digest(hashlib.sha1(pw + extra).digest(), digest)
    return _same(password, stored) or _same("{PLAIN}" + password, stored)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _to64(value: int, count: int) -> str:
    out = ""
    for _ in range(count):
        out += _ITOA64[value & 0x3F]
        value >>= 6
    return out


def _md5_crypt(pw: bytes, salt_text: str, magic: str) -> str:
    """The hash part of MD5-crypt ($1$) and Apache's variant of it ($apr1$)."""
    salt = salt_text.encode()[:8]
    alt = hashlib.md5(pw + salt + pw).digest()
    ctx = pw + magic.encode() + salt
    for left in range(len(pw), 0, -16):
        ctx += alt[: min(16, left)]
    i = len(pw)
    while i:
        ctx += b"\0" if i & 1 else pw[:1]
        i >>= 1
    final = hashlib.md5(ctx).digest()
    for i in range(1000):
        step = (pw if i & 1 else final) + (salt if i % 3 else b"") + (pw if i % 7 else b"")
        final = hashlib.md5(step + (final if i & 1 else pw)).digest()
    out = ""
    for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)):
        out += _to64((final[a] << 16) | (final[b] << 8) | final[c], 4)
    return out + _to64(final[11], 2)


_SHA256_ORDER = (
    (0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14),
    (15, 25, 5), (6, 16, 26), (27, 7, 17), (18, 28, 8), (9, 19, 29),
)  # fmt: skip
_SHA512_ORDER = (
    (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
    (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54),
    (34, 55, 13), (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60),
    (40, 61, 19), (62, 20, 41),
)  # fmt: skip


def _sha_crypt(pw: bytes, stored: str) -> str:
    """The hash part of SHA-256-crypt ($5$) or SHA-512-crypt ($6$) of pw with the salt and
    rounds of stored; "" when stored is malformed."""
    prefix = stored[:3]
    parts = stored[3:].split("$")
    rounds = 5000
    if parts[0].startswith("rounds="):
        try:
            rounds = max(int(parts[0][7:]), 1000)
        except ValueError:
            return ""
        parts = parts[1:]
    if len(parts) != 2 or rounds > 10_000_000:  # a hostile file cannot stall a login for long
        return ""
    salt = parts[0].encode()[:16]
    new: Callable[[bytes], Any] = hashlib.sha256 if prefix == "$5$" else hashlib.sha512
    size = 32 if prefix == "$5$" else 64
    alt = new(pw + salt + pw).digest()
    a = new(pw + salt)
    for left in range(len(pw), 0, -size):
        a.update(alt[: min(size, left)])
    i = len(pw)
    while i:
        a.update(alt if i & 1 else pw)
        i >>= 1
    final = a.digest()
    p = (new(pw * len(pw)).digest() * (len(pw) // size + 1))[: len(pw)]
    s = (new(salt * (16 + final[0])).digest() * (len(salt) // size + 1))[: len(salt)]
    for r in range(rounds):
        step = (p if r & 1 else final) + (s if r % 3 else b"") + (p if r % 7 else b"")
        final = new(step + (final if r & 1 else p)).digest()
    out = ""
    for x, y, z in _SHA256_ORDER if size == 32 else _SHA512_ORDER:
        out += _to64((final[x] << 16) | (final[y] << 8) | final[z], 4)
    out += _to64((final[31] << 8) | final[30], 3) if size == 32 else _to64(final[63], 2)
    return out
