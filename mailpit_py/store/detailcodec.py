"""A message's parsed detail as stored: a pickle of plain data that loads no class, or JSON."""

# Rows written before schema version 12 hold JSON text; so does detail that is not plain data.

from __future__ import annotations

import io
import json
import pickle
from typing import Any

from mailpit_py import jsontext

PROTOCOL = 5  # fixed, not HIGHEST_PROTOCOL: a database must stay readable by older Pythons


class _NotPlain(Exception):
    """The value holds something other than dicts, lists, tuples, strings and numbers."""


class _PlainPickler(pickle.Pickler):
    # The C pickler asks this only of objects that are not exact dicts, lists, tuples, strs,
    # ints, floats, bools or None, so plain data never reaches it.
    def reducer_override(self, obj: Any) -> Any:
        raise _NotPlain(type(obj).__name__)


class _PlainUnpickler(pickle.Unpickler):
    # Only a class reference could make loading run code; plain data has none, so any
    # reference means the row was not written here.
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"stored detail refers to {module}.{name}: not plain data")


# A text or HTML body longer than this is written into the pickle in pieces (see _big_bodies).
BIG_BODY_CHARS = 1024 * 1024
_PIECE = 1024 * 1024  # characters encoded at a time
_BINUNICODE = b"X"  # pickle opcodes (pickletools): a str with a 4-byte length, then UTF-8
_SETITEM = b"s"
_STOP = b"."


def encode(detail: dict[str, Any]) -> bytes | str:
    """The detail as stored: a pickle (JSON text cost 3x as much CPU per message at ingest,
    most of it escaping the text body), or JSON text when it holds anything but plain data
    (a str subclass from the parser, say), which decode() reads all the same."""
    big = [
        key
        for key in ("Text", "HTML")
        if type(detail.get(key)) is str and BIG_BODY_CHARS < len(detail[key]) < 2**30
    ]
    if big:
        return _big_bodies(detail, big)
    buf = io.BytesIO()
    try:
        _PlainPickler(buf, PROTOCOL).dump(detail)
    except _NotPlain:
        return jsontext.dumps(detail)
    return buf.getvalue()


def _big_bodies(detail: dict[str, Any], keys: list[str]) -> bytes | str:
    """encode() for a detail with a big text or HTML body, holding one copy of it besides the
    str instead of three.

    A Pickler gets a str's UTF-8 whole (cached on the str until it goes: 3 bytes a character
    while it is made), then copies it into a bytes object, then into the file's buffer. Here the
    rest of the detail is pickled with those bodies empty, and each body is then appended as a
    SETITEM of the dict on the stack, its UTF-8 written a megabyte at a time: the same pickle
    to any unpickler. Protocol 3 has no frames, whose lengths the appended items would break;
    every Python 3 reads it.
    """
    rest = dict(detail)
    for key in keys:
        rest[key] = ""
    buf = io.BytesIO()
    try:
        _PlainPickler(buf, 3).dump(rest)
    except _NotPlain:
        return jsontext.dumps(detail)
    buf.seek(-1, io.SEEK_END)  # over the STOP: the dict stays on the unpickler's stack
    for key in keys:
        name = key.encode()
        buf.write(_BINUNICODE + len(name).to_bytes(4, "little") + name + _BINUNICODE)
        at = buf.tell()
        buf.write(bytes(4))  # the length, known once the pieces are written
        text = detail[key]
        for i in range(0, len(text), _PIECE):
            # surrogatepass: what the Pickler does for a str with lone surrogates
            buf.write(text[i : i + _PIECE].encode("utf-8", "surrogatepass"))
        end = buf.tell()
        buf.seek(at)
        # (under 2**32: encode() sends only bodies under 2**30 characters, 4 bytes each at most)
        buf.write((end - at - 4).to_bytes(4, "little"))
        buf.seek(end)
        buf.write(_SETITEM)
    buf.write(_STOP)
    return buf.getvalue()


def decode(stored: bytes | str) -> dict[str, Any]:
    """The detail as the views use it, from either stored form (header pairs are lists, as
    they are in JSON)."""
    if isinstance(stored, str):
        return json.loads(stored)
    detail: dict[str, Any] = _PlainUnpickler(io.BytesIO(stored)).load()
    detail["Headers"] = [list(pair) for pair in detail.get("Headers", ())]
    return detail
