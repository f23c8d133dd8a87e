"""Mailboxes on the web: every route under /mailbox/NAME/, the mailboxes API, and a real Mailpit
API client (pytest-mailpit's) pointed at a mailbox's prefixed address."""

from __future__ import annotations

import json
import re
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from boxweb import SECRET, Boxes, call, get_json, send, start
from pytest_mailpit import MailpitAPIError, MailpitClient

from helpers import make_server, wait_until


@pytest.fixture
def boxes(tmp_path: Path) -> Iterator[Boxes]:
    found = start(tmp_path)
    try:
        yield found
    finally:
        found.mp.stop()


def names(boxes: Boxes, user: str = "bob") -> dict[str, tuple[int, int]]:
    listed = get_json(boxes.url + "api/v1/mailboxes", user)["Mailboxes"]
    return {b["Name"]: (b["Total"], b["Unread"]) for b in listed}


# -- every route under the prefix --------------------------------------------------------------


def test_a_prefix_serves_its_mailbox_alone(boxes: Boxes) -> None:
    shop = boxes.at("shop")
    listing = get_json(shop + "api/v1/messages", "bob")
    assert [m["ID"] for m in listing["messages"]] == [boxes.uids["shop"]]
    assert (listing["total"], listing["tags"]) == (1, ["Shoptag"])
    assert get_json(shop + "api/v1/tags", "bob") == ["Shoptag"]
    info = get_json(shop + "api/v1/info", "bob")
    assert (info["Messages"], info["Tags"]) == (1, {"Shoptag": 1})
    stats = get_json(shop + "api/v1/stats", "bob")
    assert json.dumps(stats).count(boxes.uids["blog"]) == 0
    found = get_json(shop + f"api/v1/search?query=subject:{SECRET}", "bob")
    assert found["messages_count"] == 0
    assert (
        get_json(boxes.at("blog") + f"api/v1/search?query=subject:{SECRET}", "bob")[
            "messages_count"
        ]
        == 1
    )
    # The un-prefixed routes are the default mailbox's, as before mailboxes existed.
    plain = get_json(boxes.url + "api/v1/messages", "bob")
    assert [m["ID"] for m in plain["messages"]] == [boxes.uids["default"]]
    # The raw message and a part are there under their mailbox's prefix only.
    uid, part = boxes.uids["shop"], boxes.parts["shop"]
    assert call(f"{shop}api/v1/message/{uid}/raw", "bob")[0] == 200
    assert call(f"{shop}api/v1/message/{uid}/part/{part}", "bob")[0] == 200
    assert call(f"{boxes.url}api/v1/message/{uid}/raw", "bob")[0] == 404


def test_addresses_built_by_the_server_keep_the_prefix(boxes: Boxes) -> None:
    shop, uid = boxes.at("shop"), boxes.uids["shop"]
    base = shop[len(boxes.url) - 1 :]  # the path: /mailbox/shop/
    status, headers, _ = call(shop.rstrip("/"), "bob")
    assert (status, headers["Location"]) == (302, base)
    status, headers, page = call(shop, "bob")
    assert status == 200 and f'<base href="{base}">'.encode() in page
    status, headers, _ = call(shop + "view/latest", "bob")
    assert (status, headers["Location"]) == (302, f"{base}view/{uid}")
    status, headers, _ = call(f"{shop}view/{uid}", "bob")
    assert (status, headers["Location"]) == (302, f"{base}?m={uid}")
    # The HTML view's links to the message's parts (cid: images) stay in the mailbox.
    with smtplib.SMTP(*boxes.mp.smtp_address) as client:
        client.sendmail("a@example.com", ["a@shop.test"], INLINE_IMAGE)
    wait_until(lambda: get_json(shop + "api/v1/messages", "bob")["total"] == 2)
    latest = get_json(shop + "api/v1/message/latest", "bob")
    html = call(f"{shop}view/{latest['ID']}.html", "bob")[2].decode()
    assert f'src="{base}api/v1/message/{latest["ID"]}/part/' in html, html


INLINE_IMAGE = (
    b"From: a@example.com\r\nTo: a@shop.test\r\nSubject: inline\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/related; boundary="YY"\r\n\r\n'
    b'--YY\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p><img src="cid:logo@x"></p>\r\n'
    b"--YY\r\nContent-Type: image/gif\r\nContent-ID: <logo@x>\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nR0lGODlhAQABAAAAACw=\r\n--YY--\r\n"
)


def test_the_prefix_follows_the_webroot(tmp_path: Path) -> None:
    found = start(tmp_path, webroot="/mail/")
    try:
        assert found.url.endswith("/mail/")
        listing = get_json(found.at("shop") + "api/v1/messages", "bob")
        assert [m["ID"] for m in listing["messages"]] == [found.uids["shop"]]
        status, headers, _ = call(found.at("shop") + "view/latest", "bob")
        assert status == 302 and headers["Location"].startswith("/mail/mailbox/shop/view/")
        # Outside the webroot, the prefix alone is not served.
        root = found.url[: -len("mail/")]
        assert call(root + "mailbox/shop/api/v1/messages", "bob")[0] == 404
    finally:
        found.mp.stop()


def test_the_send_api_under_a_prefix_delivers_to_that_mailbox(boxes: Boxes) -> None:
    body = {"From": {"Email": "app@example.com"}, "To": [{"Email": "u@example.com"}]}
    status, _, answer = call(
        boxes.at("blog") + "api/v1/send", "bob", method="POST", body={**body, "Subject": "via"}
    )
    assert status == 200
    uid = json.loads(answer)["ID"]
    assert get_json(boxes.at("blog") + "api/v1/message/latest", "bob")["ID"] == uid
    assert call(f"{boxes.at('shop')}api/v1/message/{uid}", "bob")[0] == 404


def test_instance_figures_and_per_mailbox_ones(tmp_path: Path) -> None:
    # Metrics are the instance's, with a series per mailbox; the UI's settings tell each
    # mailbox's own retention.
    found = start(tmp_path, enable_prometheus="true", max_messages=500)
    try:
        metrics = call(found.url + "metrics", "bob")[2].decode()
        for box in ("blog", "default", "shop"):
            assert f'mailpit_mailbox_messages{{mailbox="{box}"}} 1.0' in metrics
            assert f'mailpit_mailbox_messages_unread{{mailbox="{box}"}} 0.0' in metrics
        assert "\nmailpit_messages 3.0" in metrics
        assert get_json(found.at("shop") + "api/v1/webui", "bob")["Retention"]["MaxMessages"] == 20
        assert get_json(found.url + "api/v1/webui", "bob")["Retention"]["MaxMessages"] == 500
        # /readyz and /livez are the instance's: the same answer under every prefix.
        assert call(found.at("shop") + "readyz")[:3:2] == (200, b"ok")
    finally:
        found.mp.stop()


# -- the mailboxes API -------------------------------------------------------------------------


def test_list_shows_each_users_mailboxes_with_counts(boxes: Boxes) -> None:
    assert names(boxes) == {"blog": (1, 0), "default": (1, 0), "shop": (1, 0)}
    assert names(boxes, "ann") == {"shop": (1, 0)}
    listed = get_json(boxes.url + "api/v1/mailboxes", "bob")["Mailboxes"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d.*", listed[0]["Created"])


def test_create_then_use_a_mailbox(boxes: Boxes) -> None:
    status, _, body = call(
        boxes.url + "api/v1/mailboxes", "bob", method="POST", body={"Name": " Team-A "}
    )
    assert status == 201
    created = json.loads(body)
    assert (created["Name"], created["Total"], created["Unread"]) == ("team-a", 0, 0)
    assert get_json(boxes.at("team-a") + "api/v1/messages", "bob")["total"] == 0
    status, _, body = call(boxes.url + "api/v1/mailboxes", "bob", method="POST", body=created)
    assert (status, body) == (409, b"mailbox already exists: team-a\n")
    for bad, why in (({"Name": ""}, b"empty"), ({"Name": "x" * 65}, b"at most 64"), ({}, b"Name")):
        status, _, body = call(boxes.url + "api/v1/mailboxes", "bob", method="POST", body=bad)
        assert status == 400 and why in body, (bad, body)


def test_rename_moves_the_mail(boxes: Boxes) -> None:
    status, _, body = call(
        boxes.url + "api/v1/mailboxes/blog", "bob", method="PUT", body={"Name": "journal"}
    )
    assert (status, body) == (200, b"ok")
    listed = get_json(boxes.at("journal") + "api/v1/messages", "bob")["messages"]
    assert [m["ID"] for m in listed] == [boxes.uids["blog"]]
    assert call(boxes.at("blog") + "api/v1/messages", "bob")[0] == 404
    for name, new, status_wanted in (
        ("journal", "shop", 409),  # taken
        ("default", "other", 400),  # the default mailbox keeps its name
        ("journal", "default", 409),  # the default mailbox exists
        ("nothing", "other", 404),
    ):
        status, _, body = call(
            f"{boxes.url}api/v1/mailboxes/{name}", "bob", method="PUT", body={"Name": new}
        )
        assert status == status_wanted, (name, new, body)
        assert body.strip(), "the answer says what is wrong"


def test_empty_and_delete(boxes: Boxes) -> None:
    status, _, _ = call(boxes.url + "api/v1/mailboxes/shop/messages", "bob", method="DELETE")
    assert status == 200
    assert names(boxes)["shop"] == (0, 0)
    assert names(boxes)["blog"] == (1, 0)  # the others keep theirs
    status, _, _ = call(boxes.url + "api/v1/mailboxes/blog", "bob", method="DELETE")
    assert status == 200
    assert "blog" not in names(boxes)
    assert call(f"{boxes.url}api/v1/message/{boxes.uids['blog']}", "bob")[0] == 404
    status, _, body = call(boxes.url + "api/v1/mailboxes/default", "bob", method="DELETE")
    assert status == 400 and b"default" in body
    assert call(boxes.url + "api/v1/mailboxes/blog", "bob", method="DELETE")[0] == 404


def test_changes_need_an_unrestricted_user_and_a_page_of_this_server(boxes: Boxes) -> None:
    # ann may see shop: she may empty it, but not create, rename or delete mailboxes.
    for method, path, body in (
        ("POST", "api/v1/mailboxes", {"Name": "mine"}),
        ("PUT", "api/v1/mailboxes/shop", {"Name": "mine"}),
        ("DELETE", "api/v1/mailboxes/shop", None),
    ):
        status, _, answer = call(boxes.url + path, "ann", method=method, body=body)
        assert status == 403 and b"every mailbox" in answer, (method, path, answer)
    assert names(boxes)["shop"] == (1, 0)
    assert call(boxes.url + "api/v1/mailboxes/shop/messages", "ann", method="DELETE")[0] == 200
    assert names(boxes)["shop"] == (0, 0)
    # A page of another site may not change mailboxes (the Origin check of every change).
    evil = {"Origin": "http://evil.example"}
    for method, path, body in (
        ("POST", "api/v1/mailboxes", {"Name": "evil"}),
        ("PUT", "api/v1/mailboxes/blog", {"Name": "evil"}),
        ("DELETE", "api/v1/mailboxes/blog/messages", None),
        ("DELETE", "api/v1/mailboxes/blog", None),
    ):
        status, _, answer = call(boxes.url + path, "bob", method=method, body=body, headers=evil)
        assert status == 403 and b"--api-cors" in answer
    assert names(boxes) == {"blog": (1, 0), "default": (1, 0), "shop": (0, 0)}
    # A create must be JSON, as every POST is.
    status, _, _ = call(
        boxes.url + "api/v1/mailboxes",
        "bob",
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    assert status == 415


# -- a real Mailpit client ---------------------------------------------------------------------


def test_a_mailpit_client_at_a_prefix_sees_that_mailbox_alone(boxes: Boxes) -> None:
    send(boxes.mp, "shop-second", "more@shop.test", "second")
    with MailpitClient(
        boxes.at("shop"), username="bob", password="bob-pw", poll_interval=0.05
    ) as client:
        msgs = wait_until(lambda: len(client.messages().messages) == 2 and client.messages())
        assert {m.subject for m in msgs.messages} == {"shop-hello", "shop-second"}
        assert msgs.total == 2
        assert client.search(f"subject:{SECRET}").messages_count == 0
        assert [m.subject for m in client.search("subject:shop-second").messages] == ["shop-second"]
        assert client.get_message("latest").subject == "shop-second"
        with pytest.raises(MailpitAPIError):
            client.get_message(boxes.uids["blog"])
        client.set_tags([m.id for m in msgs.messages] + [boxes.uids["blog"]], ["Seen"])
        assert all(m.tags == ("Seen",) for m in client.messages().messages)
        client.delete_messages([boxes.uids["blog"]])
        client.delete_all()
        assert client.messages().total == 0
        assert client.info().messages == 0
    # What the client did at shop touched nothing of blog's or default's.
    blog = get_json(boxes.at("blog") + "api/v1/messages", "bob")["messages"]
    assert [(m["ID"], m["Tags"]) for m in blog] == [(boxes.uids["blog"], ["Blogtag"])]
    assert get_json(boxes.url + "api/v1/messages", "bob")["total"] == 1


def test_without_mailbox_settings_nothing_changes(tmp_path: Path) -> None:
    # One mailbox, no config: the default mailbox under its prefix is the un-prefixed one.
    with make_server() as mp:
        send(mp, "hello", "a@example.com", "hi")
        plain = wait_until(lambda: get_json(mp.http_url + "api/v1/messages")["messages"])
        prefixed = get_json(mp.http_url + "mailbox/default/api/v1/messages")["messages"]
        assert [m["ID"] for m in prefixed] == [m["ID"] for m in plain]
        mailboxes = get_json(mp.http_url + "api/v1/mailboxes")["Mailboxes"]
        assert [(b["Name"], b["Total"]) for b in mailboxes] == [("default", 1)]
