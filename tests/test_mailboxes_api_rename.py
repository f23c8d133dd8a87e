"""What the websocket tells of a mailbox rename: the renamed mailbox's clients hear where it
went before its truncate (so a page can follow it instead of taking it for deleted), a user who
may not see the new name hears nothing of it, and other mailboxes' clients only the new list."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from boxweb import Boxes, basic, call, start

from helpers import WsClient

RENAMED = "mailbox-renamed"


@pytest.fixture
def boxes(tmp_path: Path) -> Iterator[Boxes]:
    found = start(tmp_path)
    try:
        yield found
    finally:
        found.mp.stop()


def listen(boxes: Boxes, user: str, box: str) -> Any:
    """A websocket of `box`'s prefix (a WsClient), past its first (stats) frame."""
    ws_url = boxes.at(box).replace("http://", "ws://")
    headers: Any = {"Authorization": basic(user)}  # (simple_websocket's stub says bytes)
    ws = WsClient.connect(ws_url + "api/events", headers=headers)
    first = ws.receive(timeout=10)
    assert first is not None and json.loads(first)["Type"] == "stats"
    return ws


def frames_until(ws: Any, done: Any) -> list[dict[str, Any]]:
    """Frames as they come, up to and including the first for which `done(frame)` holds."""
    got: list[dict[str, Any]] = []
    while True:
        raw = ws.receive(timeout=10)
        assert raw is not None, f"no awaited frame within 10 s; got {got}"
        got.append(json.loads(raw))
        if done(got[-1]):
            return got


def lists(name: str) -> Any:
    return lambda f: f["Type"] == "mailboxes" and name in [d["Name"] for d in f["Data"]]


def test_the_renamed_mailboxs_clients_hear_where_it_went_before_its_truncate(
    boxes: Boxes,
) -> None:
    bob_blog = listen(boxes, "bob", "blog")  # bob sees every mailbox
    carl_blog = listen(boxes, "carl", "blog")  # carl sees shop and blog, not the new name
    bob_shop = listen(boxes, "bob", "shop")
    try:
        status, _, body = call(
            boxes.url + "api/v1/mailboxes/blog", "bob", method="PUT", body={"Name": " Journal "}
        )
        assert (status, body) == (200, b"ok")
        got = frames_until(bob_blog, lists("journal"))
        types = [f["Type"] for f in got]
        assert RENAMED in types and "truncate" in types, got
        assert types.index(RENAMED) < types.index("truncate"), got
        assert got[types.index(RENAMED)]["Data"] == {"From": "blog", "To": "journal"}

        heard = frames_until(carl_blog, lambda f: f["Type"] == "truncate")
        assert RENAMED not in [f["Type"] for f in heard], heard
        assert "journal" not in json.dumps(heard)

        other = frames_until(bob_shop, lists("journal"))
        assert [f for f in other if f["Type"] in (RENAMED, "truncate")] == [], other
    finally:
        for ws in (bob_blog, carl_blog, bob_shop):
            ws.close()
