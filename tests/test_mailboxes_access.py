"""Mailbox access on the web: a user limited to some mailboxes reaches nothing of another one.

Every route of the OpenAPI description (swagger.json, walked here so that a new route is tried
too) is called by a user who may see only `shop`: under another mailbox's prefix, and with the
IDs, parts, sessions, tags and names of another mailbox's mail, un-prefixed and under the user's
own prefix. Each answer must be a refusal (404, or 403 for what is every mailbox's) or hold none
of the other mailbox's data, and nothing of the other mailbox may have changed afterwards. The
websocket of each prefix carries only its mailbox's events.
"""

from __future__ import annotations

import json
import re
import smtplib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from boxweb import (
    DEFAULT_SECRET,
    MAILBOX_CONFIG,
    SECRET,
    USERS,
    Boxes,
    basic,
    call,
    get_json,
    send,
    start,
)
from simple_websocket import ConnectionError as WebSocketError

from helpers import WsClient, make_server

SPEC: dict[str, Any] = json.loads(
    resources.files("mailpit_py.webapp").joinpath("swagger.json").read_text("utf-8")
)
METHODS = ("get", "put", "post", "delete", "patch")
# Path parameters that name one message, part, session or mailbox: with another mailbox's
# value, the answer must be "not found" (a thumbnail's is Mailpit's 400).
NAMING = {"ID", "PartID", "SessionID", "Name"}
# Every body a route may read, each field aimed at the other mailbox's mail: a route that
# applied it to that mail would show in the check of what changed.
BODY = {
    "IDs": ["<foreign>"],
    "Read": False,
    "Tags": ["leaked"],
    "Name": "leaked",
    "To": ["someone@example.com"],
    "Search": f"subject:{SECRET}",
    "From": {"Email": "app@example.com"},
    "Subject": "sent by ann",
}
# What is every mailbox's, not one's: only for users the access list leaves open.
INSTANCE_WIDE = {
    ("get", "/metrics"),
    ("get", "/api/v1/relay/queue"),
    ("put", "/api/v1/chaos"),
    ("post", "/api/v1/mailboxes"),
}


def operations() -> Iterator[tuple[str, str]]:
    for path, item in SPEC["paths"].items():
        for method in item:
            if method in METHODS:
                yield method, path


@pytest.fixture(scope="module")
def boxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Boxes]:
    found = start(tmp_path_factory.mktemp("boxes"), enable_prometheus="true")
    try:
        yield found
    finally:
        found.mp.stop()


def fill(path: str, boxes: Boxes, foreign: str) -> str:
    """The path with the values of mailbox `foreign`'s mail, and a query for every route that
    reads one (?query= of the searches: a search for that mailbox's mail)."""
    values = {
        "ID": boxes.uids[foreign],
        "PartID": boxes.parts[foreign],
        "SessionID": boxes.sessions[foreign],
        "Tag": "Blogtag" if foreign == "blog" else "Shoptag",
        "Name": foreign,
    }
    filled = re.sub(r"\{(\w+)\}", lambda m: values[m[1]], path.lstrip("/"))
    return f"{filled}?query=subject:{SECRET}"


def leaks(status: int, body: bytes, boxes: Boxes) -> list[str]:
    """What of another mailbox's mail an answer holds. A refusal may repeat the ID or tag it
    was asked for (`message not found: ID`); an answer with data may hold neither."""
    text = body.decode("utf-8", "replace")
    found = [s for s in (SECRET, DEFAULT_SECRET, "writer@blog.test") if s in text]
    if status < 400:
        found += [uid for box, uid in boxes.uids.items() if box != "shop" and uid in text]
        found += ["Blogtag"] if "Blogtag" in text else []
    return found


@pytest.mark.parametrize("method,path", sorted(operations()))
@pytest.mark.parametrize("other", ["blog", "default", "no-such-box"])
def test_another_mailboxs_prefix_is_not_found(
    boxes: Boxes, method: str, path: str, other: str
) -> None:
    # ann may see shop alone: under blog's prefix, default's or one that does not exist, every
    # route answers the same 404, so she cannot even learn which mailboxes exist.
    foreign = other if other in boxes.uids else "blog"
    url = boxes.at(other) + fill(path, boxes, foreign)
    status, _, body = call(url, "ann", method=method.upper(), body=BODY)
    if path in ("/livez", "/readyz"):
        # Open to all, without credentials, and the same under every prefix: a client given a
        # mailbox's address checks it is up there, and learns nothing of which mailboxes exist.
        assert (status, body) == (200, b"ok"), (method, url)
        return
    assert (status, body) == (404, f"mailbox not found: {other}\n".encode()), (method, url)


def test_the_ui_under_another_mailboxs_prefix_is_not_found(boxes: Boxes) -> None:
    # The routes the spec does not list (the UI page, its files, a prefix without its slash)
    # are refused the same way.
    page = call(boxes.at("shop"), "ann")[2].decode()
    asset = re.search(r'src="(ui/[0-9a-f]+/app\.js)"', page)
    assert asset, page[:500]
    assert call(boxes.at("shop") + asset[1], "ann")[0] == 200
    for other in ("blog", "default", "no-such-box"):
        for path in ("", asset[1], "?m=" + boxes.uids["blog"]):
            status, _, body = call(boxes.at(other) + path, "ann")
            assert (status, body) == (404, f"mailbox not found: {other}\n".encode()), path
        status, _, body = call(boxes.at(other).rstrip("/"), "ann")
        assert status == 302  # to NAME/, which then answers 404: the slash tells nothing


def foreign_body(boxes: Boxes) -> dict[str, Any]:
    body = dict(BODY)
    body["IDs"] = [boxes.uids["blog"], boxes.uids["default"]]
    return body


def snapshot(boxes: Boxes) -> dict[str, Any]:
    """What bob (who sees every mailbox) sees of blog's and default's mail."""
    seen: dict[str, Any] = {}
    for box in ("blog", "default"):
        at = boxes.at(box)
        listing = get_json(at + "api/v1/messages", "bob")
        seen[box] = {
            "messages": [(m["ID"], m["Read"], m["Tags"]) for m in listing["messages"]],
            "tags": get_json(at + "api/v1/tags", "bob"),
            "sessions": [s["ID"] for s in get_json(at + "api/v1/sessions", "bob")["sessions"]],
        }
    listed = get_json(boxes.url + "api/v1/mailboxes", "bob")["Mailboxes"]
    seen["mailboxes"] = [b for b in listed if b["Name"] != "shop"]  # ann may change her own
    return seen


def test_no_route_reaches_another_mailboxs_mail(boxes: Boxes) -> None:
    # ann, under her own prefix and un-prefixed (her one mailbox), calls every route with the
    # IDs, part, session, tag and name of blog's and default's mail.
    before = snapshot(boxes)
    problems = []
    for prefix in (None, "shop"):
        for foreign in ("blog", "default"):
            for method, path in operations():
                url = boxes.at(prefix) + fill(path, boxes, foreign)
                status, _, body = call(url, "ann", method=method.upper(), body=foreign_body(boxes))
                named = set(re.findall(r"\{(\w+)\}", path)) & NAMING
                if (method, path) in INSTANCE_WIDE:
                    if status != 403:
                        problems.append(f"{method} {url}: {status}, wanted 403")
                elif named and path != "/view/{ID}":  # that one: a redirect to the UI, ?m=ID
                    wanted = {400} if path.endswith("/thumb") else {404}  # thumb: Mailpit's
                    if status not in wanted:
                        problems.append(f"{method} {url}: {status} {body[:200]!r}")
                if leaks(status, body, boxes):
                    problems.append(f"{method} {url}: {status} holds {leaks(status, body, boxes)}")
    assert not problems, "\n".join(problems)
    assert snapshot(boxes) == before  # nothing of blog's or default's changed


def test_a_user_of_several_mailboxes_names_one(boxes: Boxes) -> None:
    # carl sees shop and blog, not default: un-prefixed, nothing says which mailbox he means.
    status, _, body = call(boxes.url + "api/v1/messages", "carl")
    assert status == 403
    assert b"/mailbox/NAME/" in body and b"blog, shop" in body
    # His UI page goes to one of his mailboxes, the mailbox list shows both, prefixes work.
    status, headers, _ = call(boxes.url, "carl")
    assert status == 302 and headers["Location"].endswith("/mailbox/blog/")
    names = [b["Name"] for b in get_json(boxes.url + "api/v1/mailboxes", "carl")["Mailboxes"]]
    assert names == ["blog", "shop"]
    assert (
        get_json(boxes.at("blog") + "api/v1/messages", "carl")["messages"][0]["ID"]
        == (boxes.uids["blog"])
    )
    # dora sees default and shop: un-prefixed is the default mailbox, as for everyone else.
    listed = get_json(boxes.url + "api/v1/messages", "dora")["messages"]
    assert [m["ID"] for m in listed] == [boxes.uids["default"]]
    # ann's only mailbox is shop: un-prefixed is shop, and her UI page moves to its address.
    assert boxes.uids["blog"] not in json.dumps(get_json(boxes.url + "api/v1/messages", "ann"))
    status, headers, _ = call(boxes.url, "ann")
    assert status == 302 and headers["Location"].endswith("/mailbox/shop/")
    status, headers, _ = call(boxes.url + f"?m={boxes.uids['shop']}", "ann")  # a deep link
    assert headers["Location"].endswith(f"/mailbox/shop/?m={boxes.uids['shop']}")


# Routes that are the instance's, not a mailbox's: they answer without one.
UNBOXED = {
    ("get", "/api/v1/webui"),
    ("get", "/api/v1/swagger.json"),
    ("get", "/api/v1/chaos"),
    ("get", "/livez"),
    ("get", "/readyz"),
    ("get", "/api/v1/mailboxes"),
    ("delete", "/api/v1/mailboxes/{Name}/messages"),  # names its mailbox in the path
    ("get", "/view/{ID}"),  # a redirect to the UI page, ?m=ID: no mail read
}


def test_without_a_prefix_a_user_of_several_mailboxes_reaches_none(boxes: Boxes) -> None:
    # carl may see shop and blog, not default: every route of a mailbox, without a prefix,
    # must refuse rather than fall back on the default mailbox: 403 naming the prefix, or a
    # 400 or 404 for a body or a name refused before any mailbox is read.
    problems = []
    for method, path in operations():
        url = boxes.url + fill(path, boxes, "default")
        status, _, body = call(url, "carl", method=method.upper(), body=foreign_body(boxes))
        if (method, path) in UNBOXED:
            continue
        if status < 400:
            problems.append(f"{method} {url}: {status} {body[:120]!r}")
        if DEFAULT_SECRET.encode() in body or boxes.uids["default"].encode() in body:
            problems.append(f"{method} {url}: holds the default mailbox's mail")
    assert not problems, "\n".join(problems)
    assert get_json(boxes.at("blog") + "api/v1/messages", "bob")["total"] >= 1


def frames(ws: WsClient, until: str) -> list[dict[str, Any]]:
    """Frames as they come, up to and including the first whose text holds `until`."""
    got: list[dict[str, Any]] = []
    while True:
        raw = ws.receive(timeout=10)
        assert raw is not None, f"no frame holding {until!r} within 10 s; got {got}"
        got.append(json.loads(raw))
        if until in raw:
            return got


def test_each_prefixs_websocket_hears_only_its_mailbox(boxes: Boxes) -> None:
    ws_url = boxes.url.replace("http://", "ws://")
    ann = WsClient.connect(ws_url + "api/events", headers={"Authorization": basic("ann")})
    bob = WsClient.connect(
        ws_url + "mailbox/blog/api/events", headers={"Authorization": basic("bob")}
    )
    try:
        for ws, box in ((ann, "shop"), (bob, "blog")):
            first = json.loads(ws.receive(timeout=10))  # the counts of the socket's mailbox
            total = get_json(boxes.at(box) + "api/v1/messages", "bob")["total"]
            assert first["Type"] == "stats" and first["Data"]["Total"] == total
        send(boxes.mp, "blog-news-" + SECRET, "news@blog.test", SECRET)
        send(boxes.mp, "shop-news", "news@shop.test", "for ann")
        got = frames(ann, "shop-news")
        assert not [f for f in got if SECRET in json.dumps(f)], got
        heard = frames(bob, "blog-news-")
        assert not [f for f in heard if "shop-news" in json.dumps(f)], heard
        # The mailbox counts (throttled, as the stats) reach ann narrowed to her mailboxes.
        got += frames(ann, '"Type": "mailboxes"') if '"mailboxes"' not in json.dumps(got) else []
        counted = [f["Data"] for f in got if f["Type"] == "mailboxes"]
        assert counted and all([d["Name"] for d in data] == ["shop"] for data in counted), got
    finally:
        ann.close()
        bob.close()
    # An SMTP refusal is no mailbox's: a user who sees all hears it under any prefix, a limited
    # user under none (its peer and reply may be another project's).
    ann = WsClient.connect(ws_url + "api/events", headers={"Authorization": basic("ann")})
    bob = WsClient.connect(
        ws_url + "mailbox/shop/api/events", headers={"Authorization": basic("bob")}
    )
    try:
        for ws in (ann, bob):
            assert json.loads(ws.receive(timeout=10))["Type"] == "stats"
        with smtplib.SMTP(*boxes.mp.smtp_address) as client:
            client.docmd("BOGUS")
        send(boxes.mp, "after-bogus", "after@shop.test", "after")
        assert any(f["Type"] == "error" for f in frames(bob, '"error"'))
        assert not [f for f in frames(ann, "after-bogus") if f["Type"] == "error"]
    finally:
        ann.close()
        bob.close()
    # Another mailbox's websocket is refused before the upgrade, as its API is.
    with pytest.raises(WebSocketError) as refused:
        WsClient.connect(
            ws_url + "mailbox/blog/api/events", headers={"Authorization": basic("ann")}
        )
    assert refused.value.status_code == 404
    with pytest.raises(WebSocketError) as refused:
        WsClient.connect(ws_url + "api/events", headers={"Authorization": basic("carl")})
    assert refused.value.status_code == 403


def test_without_login_the_access_list_limits_no_one(tmp_path: Path) -> None:
    # Without --ui-auth-file there is no user to limit: every mailbox is open to every request.
    config = tmp_path / "mailboxes.yml"
    config.write_text(MAILBOX_CONFIG)
    with make_server(mailbox_config=str(config)) as mp:
        names = [b["Name"] for b in get_json(mp.http_url + "api/v1/mailboxes")["Mailboxes"]]
        assert names == ["blog", "default", "shop"]
        assert call(mp.http_url + "mailbox/blog/api/v1/messages")[0] == 200
        status, _, body = call(mp.http_url + "mailbox/nothing/api/v1/messages")
        assert (status, body) == (404, b"mailbox not found: nothing\n")


def test_a_browser_asking_for_an_unknown_mailbox_page_gets_a_way_back(tmp_path: Path) -> None:
    # A mistyped or deleted mailbox's page was a bare line of text: a browser now gets a page
    # saying so with a link to the inbox (still 404, the same for a mailbox the user may not
    # see); API clients and scripts keep Mailpit's plain-text answer.
    config = tmp_path / "mailboxes.yml"
    config.write_text(MAILBOX_CONFIG)
    page = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    with make_server(mailbox_config=str(config), ui_auth=USERS) as mp:
        for user, name in (("bob", "nothing"), ("ann", "blog"), ("ann", "nothing")):
            status, headers, body = call(mp.http_url + f"mailbox/{name}/", user, headers=page)
            assert status == 404 and headers["Content-Type"].startswith("text/html"), name
            assert f"No mailbox named \u201c{name}\u201d".encode() in body
            assert b'<a href="/">Go to the inbox</a>' in body
            assert b"<script" not in body
        status, _, body = call(mp.http_url + "mailbox/nothing/", "bob")  # (no Accept)
        assert (status, body) == (404, b"mailbox not found: nothing\n")
        status, _, body = call(mp.http_url + "mailbox/nothing/api/v1/messages", "bob", headers=page)
        assert (status, body) == (404, b"mailbox not found: nothing\n")
