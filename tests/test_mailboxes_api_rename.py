"""A mailbox rename on the web: the renamed mailbox's websocket clients hear where it went
before its truncate (so a page can follow it instead of taking it for deleted), a user who may
not see the new name hears nothing of it, other mailboxes' clients only the new list, and
another instance on the same PostgreSQL database tells its own clients; and the UI page at the
old address (a step back in a tab's history) is sent on to the new one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from boxweb import Boxes, basic, call, start
from test_mailboxes_access import frames
from test_mailboxes_api import boxes  # noqa: F401 (fixture)

from helpers import WsClient, make_server

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


def test_the_old_address_of_the_page_goes_to_the_new_one(boxes: Boxes) -> None:  # noqa: F811
    uid = boxes.uids["blog"]
    assert (
        call(boxes.url + "api/v1/mailboxes/blog", "bob", method="PUT", body={"Name": "news"})[0]
        == 200
    )
    # A tab's history still holds the page at the old address: it is sent on, with its query.
    status, headers, _ = call(f"{boxes.at('blog')}?m={uid}&tab=html", "bob")
    assert (status, headers["Location"]) == (302, f"/mailbox/news/?m={uid}&tab=html")
    assert call(boxes.at("news"), "bob")[0] == 200
    # The API under the old name stays 404: a client of it must learn the mailbox is gone.
    assert call(boxes.at("blog") + "api/v1/messages", "bob")[0] == 404
    assert call(boxes.at("blog") + "api/v1/messages", "bob", method="DELETE")[0] == 404
    # carl may see blog but not news: to him the mailbox is gone, and its new name unsaid.
    status, headers, body = call(boxes.at("blog"), "carl")
    assert status == 404 and "Location" not in headers and b"news" not in body
    # Renamed again, the oldest address follows; a mailbox made under an old name is itself.
    assert (
        call(boxes.url + "api/v1/mailboxes/news", "bob", method="PUT", body={"Name": "press"})[0]
        == 200
    )
    assert call(boxes.at("blog"), "bob")[1]["Location"] == "/mailbox/press/"
    assert call(boxes.at("news"), "bob")[1]["Location"] == "/mailbox/press/"
    assert (
        call(boxes.url + "api/v1/mailboxes", "bob", method="POST", body={"Name": "news"})[0] == 201
    )
    assert call(boxes.at("news"), "bob")[0] == 200
    # Renamed back to a name it had, its other old names follow it there.
    assert (
        call(boxes.url + "api/v1/mailboxes/press", "bob", method="PUT", body={"Name": "blog"})[0]
        == 200
    )
    assert call(boxes.at("blog"), "bob")[0] == 200
    assert call(boxes.at("press"), "bob")[1]["Location"] == "/mailbox/blog/"
    assert call(boxes.at("news"), "bob")[0] == 200  # the new mailbox of that name
    # Deleted, the mailbox's addresses are gone, not moved.
    assert call(boxes.url + "api/v1/mailboxes/blog", "bob", method="DELETE")[0] == 200
    assert call(boxes.at("blog"), "bob")[0] == 404
    assert call(boxes.at("press"), "bob")[0] == 404


def test_the_old_address_goes_to_the_new_one_under_a_webroot(tmp_path: Path) -> None:
    found = start(tmp_path, webroot="/mail/")
    try:
        assert found.url.endswith("/mail/")
        status, _, _ = call(
            found.url + "api/v1/mailboxes/shop", "bob", method="PUT", body={"Name": "store"}
        )
        assert status == 200
        status, headers, _ = call(found.at("shop"), "bob")
        assert (status, headers["Location"]) == (302, "/mail/mailbox/store/")
    finally:
        found.mp.stop()


def test_another_instance_on_the_database_tells_its_clients_of_the_rename(pg_url: str) -> None:
    with make_server(database=pg_url) as a, make_server(database=pg_url) as b:
        assert a.mailbox is not None
        a.mailbox.create_box("project")
        ws_url = b.http_url.replace("http://", "ws://") + "mailbox/project/api/events"
        ws: Any = WsClient.connect(ws_url)
        try:
            assert json.loads(ws.receive(timeout=10))["Type"] == "stats"
            a.mailbox.rename_box("project", "renamed")
            got = frames(ws, '"truncate"')
            renamed = [f for f in got if f["Type"] == RENAMED]
            assert renamed == [{"Type": RENAMED, "Data": {"From": "project", "To": "renamed"}}]
        finally:
            ws.close()
