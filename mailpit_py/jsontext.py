"""JSON text as json.dumps(value, ensure_ascii=False) writes it, without its set-up per call."""

from __future__ import annotations

import json
from collections.abc import Callable
from json import encoder as _encoder
from typing import Any


def _one_shot() -> Callable[[Any], str]:
    # json.dumps builds a JSONEncoder and a C encoder object on every call: about 5 us, more
    # than encoding a small list of addresses; each message stores seven JSON values.
    make = getattr(_encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (not CPython): the plain route
        return lambda value: json.dumps(value, ensure_ascii=False)
    encode = make(
        None,  # no circular-reference check: the values are built here, trees by construction
        json.JSONEncoder().default,
        _encoder.encode_basestring,  # the C function, as with ensure_ascii=False
        None,  # indent
        ": ",
        ", ",
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan
    )
    return lambda value: "".join(encode(value, 0))


dumps: Callable[[Any], str] = _one_shot()
