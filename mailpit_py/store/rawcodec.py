"""Raw messages as stored: as they came, or compressed (--compression 1-3, as Mailpit's flag)."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

# A compressed raw message starts with this mark, then a zlib stream. Mail may begin with any
# bytes (NUL included, from a hostile client), so one that begins with the mark itself is
# always stored compressed: whatever starts with the mark is a compressed message.
MARK = b"\x00mpz\x01"
# Mailpit's levels 1-3 (zstd fastest, default, better) as zlib levels: Python 3.11 has no zstd.
ZLIB_LEVELS = {1: 1, 2: 6, 3: 9}


def pack(raw: bytes, level: int) -> bytes:
    """The bytes to store for `raw` at compression `level` (0: as they are)."""
    if level <= 0 and not raw.startswith(MARK):
        return raw
    return MARK + zlib.compress(raw, ZLIB_LEVELS.get(level, 6))


def packed(stored: bytes) -> bool:
    return stored.startswith(MARK)


def unpack(stored: bytes) -> bytes:
    """The raw message from what is stored."""
    if not stored.startswith(MARK):
        return stored
    return zlib.decompress(memoryview(stored)[len(MARK) :])


def unpack_stream(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The raw message, piece by piece, from the stored bytes read piece by piece (a 50 MB
    message is never whole in memory on the way out)."""
    pieces = iter(chunks)
    head = b""
    for piece in pieces:  # enough of the start to see the mark
        head += piece
        if len(head) >= len(MARK):
            break
    if not head.startswith(MARK):
        if head:
            yield head
        yield from pieces
        return
    inflate = zlib.decompressobj()
    out = inflate.decompress(head[len(MARK) :])
    if out:
        yield out
    for piece in pieces:
        out = inflate.decompress(piece)
        if out:
            yield out
    out = inflate.flush()
    if out:
        yield out
