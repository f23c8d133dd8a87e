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


def encode(detail: dict[str, Any]) -> bytes | str:
    """The detail as stored: a pickle (JSON text cost 3x as much CPU per message at ingest,
    most of it escaping the text body), or JSON text when it holds anything but plain data
    (a str subclass from the parser, say), which decode() reads all the same."""
    buf = io.BytesIO()
    try:
        _PlainPickler(buf, PROTOCOL).dump(detail)
    except _NotPlain:
        return jsontext.dumps(detail)
    return buf.getvalue()


def decode(stored: bytes | str) -> dict[str, Any]:
    """The detail as the views use it, from either stored form (header pairs are lists, as
    they are in JSON)."""
    if isinstance(stored, str):
        return json.loads(stored)  # type: ignore[no-any-return]
    detail: dict[str, Any] = _PlainUnpickler(io.BytesIO(stored)).load()
    detail["Headers"] = [list(pair) for pair in detail.get("Headers", ())]
    return detail
