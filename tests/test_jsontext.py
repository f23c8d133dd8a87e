"""jsontext.dumps writes exactly what json.dumps(value, ensure_ascii=False) writes."""

from __future__ import annotations

import json

import pytest

from mailpit_py import jsontext


@pytest.mark.parametrize(
    "value",
    [
        [],
        {},
        "plain",
        [{"Name": "Иван Петров", "Address": "ivan@example.ru"}],
        {"Text": 'quote " backslash \\ tab \t newline \n line-sep \u2028 emoji 😀 nul \x00'},
        {"n": float("nan"), "inf": float("inf"), "list": [1, 2.5, None, True, False]},
        [[0.0, "C", "MAIL FROM:<a@b>"], [0.4, "S", "250 2.1.0 OK"]],
        {"nested": {"deeper": [{"k": ["v"]}]}},
    ],
)
def test_same_text_as_json_dumps(value: object) -> None:
    assert jsontext.dumps(value) == json.dumps(value, ensure_ascii=False)


def test_values_json_cannot_write_still_raise() -> None:
    with pytest.raises(TypeError):
        jsontext.dumps({"when": object()})
