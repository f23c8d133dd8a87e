"""What the websocket tells of a mailbox rename: the renamed mailbox's clients hear where it
went before its truncate (so a page can follow it instead of taking it for deleted), a user who
may not see the new name hears nothing of it, and other mailboxes' clients only the new list."""

from __future__ import annotations

import json
from typing import Any

from boxweb import Boxes, basic, call
from test_mailboxes_access import frames
from test_mailboxes_api import boxes  # noqa: F401 (fixture)

from helpers import WsClient

RENAMED = "mailbox-renamed"


def listen(boxes: Boxes, user: str, box: str) -> Any:  # noqa: F811
    """A websocket of `box`'s prefix (a WsClient), past its first (stats) frame."""
    ws_url = boxes.at(box).replace("http://", "ws://")
    headers: Any = {"Authorization": basic(user)}  # (simple_websocket's stub says bytes)
    ws = WsClient.connect(ws_url + "api/events", headers=headers)
    first = ws.receive(timeout=10)
    assert first is not None and json.loads(first)["Type"] == "stats"
    return ws


def test_the_renamed_mailboxs_clients_hear_where_it_went_before_its_truncate(
    boxes: Boxes,  # noqa: F811
) -> None:
    bob_blog = listen(boxes, "bob", "blog")  # bob sees every mailbox
    carl_blog = listen(boxes, "carl", "blog")  # carl sees shop and blog, not the new name
    bob_shop = listen(boxes, "bob", "shop")
    try:
        status, _, body = call(
            boxes.url + "api/v1/mailboxes/blog", "bob", method="PUT", body={"Name": " Journal "}
        )
        assert (status, body) == (200, b"ok")
        got = frames(bob_blog, '"truncate"')
        renamed = [f for f in got if f["Type"] == RENAMED]
        assert renamed == [{"Type": RENAMED, "Data": {"From": "blog", "To": "journal"}}], got

        heard = frames(carl_blog, '"truncate"')
        assert RENAMED not in [f["Type"] for f in heard], heard
        assert "journal" not in json.dumps(heard)

        other = frames(bob_shop, '"Name": "journal"')  # the new list, with the new name
        assert [f for f in other if f["Type"] in (RENAMED, "truncate")] == [], other
    finally:
        for ws in (bob_blog, carl_blog, bob_shop):
            ws.close()
