"""Attacks on the mailboxes by a user limited to one of them: what of another mailbox's mail (its
recipients, its arrivals, its IDs) the routes outside the per-message checks still told, each
tried against a real server with real clients.

ann may see shop alone, bob every mailbox (tests/boxweb.py). The swagger-wide walk of every
route is tests/test_mailboxes_access.py; these are the side ways it does not cover: instance
figures that move with another mailbox's mail, the websocket's mailbox list, and the SMTP log
of a message that was routed to two mailboxes.
"""

from __future__ import annotations

import base64
import imaplib
import json
import re
import smtplib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from boxweb import PASSWORDS, SECRET, Boxes, basic, call, get_json, mail, send, start

from helpers import WsClient, wait_until


@pytest.fixture(scope="module")
def boxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Boxes]:
    logins = " ".join(f"{user}:{PASSWORDS[user]}" for user in ("ann", "bob"))
    found = start(
        tmp_path_factory.mktemp("attacks"),
        pop3_addr="127.0.0.1:0",
        pop3_auth=logins,
        imap_addr="127.0.0.1:0",
    )
    try:
        yield found
    finally:
        found.mp.stop()


def total(boxes: Boxes, box: str) -> int:
    return int(get_json(boxes.at(box) + "api/v1/messages", "bob")["total"])


def arrive(boxes: Boxes, box: str, subject: str, to: str, body: str = "news") -> None:
    """Send one message and wait until it is listed in `box`."""
    before = total(boxes, box)
    send(boxes.mp, subject, to, body)
    wait_until(lambda: total(boxes, box) > before, what=f"{subject} in {box}")


def test_info_tells_a_limited_user_nothing_of_another_mailboxs_mail(boxes: Boxes) -> None:
    # The runtime figures of /api/v1/info were the instance's: ann, polling them, saw
    # SMTPAccepted and the database grow whenever blog got mail, and MessagesDeleted move when
    # blog's mail went. A limited user's figures are its mailbox's.
    url = boxes.url + "api/v1/info"
    first = get_json(url, "ann")
    everyone = get_json(url, "bob")["RuntimeStats"]
    arrive(boxes, "blog", "blog-arrival", "news@blog.test", "x" * 20_000)
    uid = get_json(boxes.at("blog") + "api/v1/messages", "bob")["messages"][0]["ID"]
    assert call(boxes.at("blog") + "api/v1/messages", "bob", method="DELETE", body={"IDs": [uid]})[
        0
    ] == (200)
    with smtplib.SMTP(*boxes.mp.smtp_address) as client:
        client.docmd("BOGUS")  # a refusal: before any routing, so no mailbox's
    then = get_json(url, "ann")
    moving = ("SMTPAccepted", "SMTPAcceptedSize", "MessagesDeleted", "SMTPRejected")
    assert {k: then["RuntimeStats"][k] for k in moving} == {
        k: first["RuntimeStats"][k] for k in moving
    }
    assert then["DatabaseSize"] == first["DatabaseSize"]
    assert (then["Messages"], then["Unread"]) == (first["Messages"], first["Unread"])
    # ann's figures are shop's own: its mail moves them.
    arrive(boxes, "shop", "shop-arrival", "news@shop.test")
    mine = get_json(url, "ann")["RuntimeStats"]
    assert mine["SMTPAccepted"] == first["RuntimeStats"]["SMTPAccepted"] + 1
    # bob, who sees every mailbox, still gets the instance's figures, as Mailpit gives them.
    now = get_json(url, "bob")["RuntimeStats"]
    assert now["SMTPAccepted"] == everyone["SMTPAccepted"] + 2
    assert now["MessagesDeleted"] == everyone["MessagesDeleted"] + 1
    assert now["SMTPRejected"] >= 1


def test_statistics_show_a_limited_user_no_smtp_refusals(boxes: Boxes) -> None:
    # The refusals come before routing, so they are no mailbox's: the websocket keeps their
    # events from limited users, and the statistics' counts of them went to every user.
    with smtplib.SMTP(*boxes.mp.smtp_address) as client:
        client.docmd("BOGUS")
    assert get_json(boxes.url + "api/v1/stats", "bob")["Refusals"]
    assert get_json(boxes.url + "api/v1/stats", "ann")["Refusals"] == []
    assert get_json(boxes.at("shop") + "api/v1/stats", "ann")["Refusals"] == []


class Frames:
    """Every frame a websocket receives, read by a thread of its own."""

    def __init__(self, url: str, user: str) -> None:
        self.ws = WsClient.connect(url, headers={"Authorization": basic(user)})
        self.got: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                raw = self.ws.receive(timeout=30)
            except Exception:
                return
            if raw is None:
                return
            with self.lock:
                self.got.append(json.loads(raw))

    def of(self, kind: str) -> list[Any]:
        with self.lock:
            return [f["Data"] for f in self.got if f["Type"] == kind]

    def close(self) -> None:
        self.ws.close()
        self.thread.join(timeout=10)


def test_the_websocket_does_not_tell_a_limited_user_when_another_mailbox_changes(
    boxes: Boxes,
) -> None:
    # The `mailboxes` event goes out whenever any mailbox's counts change; narrowed to shop,
    # it still reached ann, unchanged, each time blog got mail: a bell for another project's.
    ws_url = boxes.url.replace("http://", "ws://")
    ann = Frames(ws_url + "api/events", "ann")
    watcher = Frames(ws_url + "mailbox/blog/api/events", "bob")
    try:
        wait_until(lambda: ann.of("stats") and watcher.of("stats"), what="the first frames")
        shop_before = total(boxes, "shop")
        blog_before = total(boxes, "blog")
        send(boxes.mp, "blog-bell", "bell@blog.test", "ring")
        # bob hears blog's new counts in the mailbox list: the round that would tell ann.
        wait_until(
            lambda: any(
                d["Name"] == "blog" and d["Total"] > blog_before
                for data in watcher.of("mailboxes")
                for d in data
            ),
            what="blog's new count in bob's mailbox list",
        )
        send(boxes.mp, "shop-bell", "bell@shop.test", "ring")
        wait_until(
            lambda: any(d[0]["Total"] > shop_before for d in ann.of("mailboxes")),
            what="shop's new count in ann's mailbox list",
        )
        told = ann.of("mailboxes")
        assert all(
            data == [{"Name": "shop", "Total": shop_before + 1, "Unread": data[0]["Unread"]}]
            for data in told
        ), told
        assert not [f for f in ann.got if "blog" in json.dumps(f)], ann.got
    finally:
        ann.close()
        watcher.close()


def transcript_answers(boxes: Boxes, user: str, box: str | None, uid: str) -> list[str]:
    """Every answer of `box` that holds an SMTP log, read by `user`: the message's log, the
    session list, and its session."""
    at = boxes.at(box)
    smtp = get_json(f"{at}api/v1/message/{uid}/smtp", user)
    sessions = get_json(at + "api/v1/sessions?limit=0", user)
    answers = [json.dumps(smtp), json.dumps(sessions)]
    for entry in sessions["sessions"]:
        answers.append(json.dumps(get_json(f"{at}api/v1/session/{entry['ID']}", user)))
    return answers


@pytest.mark.parametrize("order", ["shop first", "blog first"])
def test_a_message_for_two_mailboxes_shows_neither_the_others_recipients(
    boxes: Boxes, order: str
) -> None:
    # One message for a shop recipient and a blind copy to a blog one is stored once in each
    # mailbox, each copy's envelope naming its own recipients; but the SMTP log of the copy
    # (and of its session) still held `RCPT TO:<bcc@blog.test>`, the line routing it to blog
    # and the blog copy's ID: ann learnt who at blog got it, and that blog exists.
    subject = f"two-{order[:4]}-{SECRET}"
    rcpts = ["buyer@shop.test", "bcc@blog.test"]
    if order == "blog first":
        rcpts.reverse()
    shop_before, blog_before = total(boxes, "shop"), total(boxes, "blog")
    with smtplib.SMTP(*boxes.mp.smtp_address) as client:
        client.sendmail("sender@example.com", rcpts, mail(subject, "buyer@shop.test", "hi"))
    wait_until(
        lambda: total(boxes, "shop") > shop_before and total(boxes, "blog") > blog_before,
        what="both copies",
    )
    shop_uid = get_json(boxes.at("shop") + "api/v1/messages", "ann")["messages"][0]["ID"]
    blog_uid = get_json(boxes.at("blog") + "api/v1/messages", "bob")["messages"][0]["ID"]
    # The session is written when the client has gone: wait until one of shop's lists it.
    wait_until(
        lambda: any(
            shop_uid in s["Messages"] or blog_uid in s["Messages"]
            for box in ("shop", "blog")
            for s in get_json(boxes.at(box) + "api/v1/sessions?limit=0", "bob")["sessions"]
        ),
        what="the session",
    )
    for prefix in (None, "shop"):
        for answer in transcript_answers(boxes, "ann", prefix, shop_uid):
            for leak in ("bcc@blog.test", "mailbox blog", blog_uid):
                assert leak not in answer, (prefix, leak, answer)
    smtp = get_json(f"{boxes.at('shop')}api/v1/message/{shop_uid}/smtp", "ann")
    lines = [t["Line"] for t in smtp["Transcript"]]
    assert "rcpt TO:<buyer@shop.test>" in lines  # ann's own recipient stays
    assert any(line.startswith("mailbox shop for buyer@shop.test") for line in lines), lines
    assert smtp["Envelope"]["To"] == ["buyer@shop.test"]
    # The other way round: blog's copy, read under blog's address, names no shop recipient.
    for answer in transcript_answers(boxes, "bob", "blog", blog_uid):
        for leak in ("buyer@shop.test", "mailbox shop", shop_uid):
            assert leak not in answer, (leak, answer)


def uidnext(client: imaplib.IMAP4) -> int:
    status, data = client.status("INBOX", "(UIDNEXT)")
    assert status == "OK", data
    found = re.search(rb"UIDNEXT (\d+)", data[0] or b"")
    assert found, data
    return int(found[1])


def test_imap_uidnext_does_not_move_with_another_mailboxs_mail(boxes: Boxes) -> None:
    # UIDs are unique across mailboxes, and UIDNEXT was the database's next one: ann, polling
    # STATUS, saw it move each time any mailbox got mail (RFC 3501 2.3.1.1 also says it must
    # not change unless new messages are added to the mailbox).
    client = imaplib.IMAP4(*boxes.mp.imap_address[:2], timeout=10)
    try:
        client.login("ann", PASSWORDS["ann"])
        before = uidnext(client)
        status, data = client.select("INBOX")
        assert status == "OK", data
        arrive(boxes, "blog", "blog-uidnext", "uid@blog.test")
        assert uidnext(client) == before
        status, data = client.select("INBOX")
        assert status == "OK", data
        assert client.response("UIDNEXT") == ("UIDNEXT", [str(before).encode()])
        # shop's own mail moves it, and its UID is never below the UIDNEXT told before.
        arrive(boxes, "shop", "shop-uidnext", "uid@shop.test")
        after = uidnext(client)
        assert after > before
        client.select("INBOX")
        status, data = client.uid("SEARCH", "ALL")
        uids = [int(u) for u in data[0].split()]
        assert max(uids) >= before and after == max(uids) + 1
    finally:
        client.logout()


def test_the_send_api_keeps_a_limited_login_to_its_mailboxes(tmp_path: Path) -> None:
    # With --send-api-auth-file the send API asks for its own logins, and `access` was applied
    # to the UI's alone: ann, limited to shop, signing in to the send API stored mail in blog
    # under blog's address (and learnt which mailboxes exist from 404 or 200). A send API
    # login is limited by `access` as every other login of that name is.
    boxes = start(tmp_path, send_api_auth="ann:ann-pw zed:zed-pw")
    try:
        body = {"From": {"Email": "app@example.com"}, "To": [{"Email": "x@example.com"}]}
        before = total(boxes, "blog")
        for box in ("blog", "default", "no-such-box"):
            status, _, answer = call(
                boxes.at(box) + "api/v1/send", "ann", method="POST", body={**body, "Subject": box}
            )
            assert (status, answer) == (404, f"mailbox not found: {box}\n".encode()), box
        assert total(boxes, "blog") == before
        # Her own mailbox, by its address or (her only one) without it, takes her mail.
        for url in (boxes.at("shop"), boxes.url):
            status, _, answer = call(url + "api/v1/send", "ann", method="POST", body=body)
            assert status == 200, answer
            uid = json.loads(answer)["ID"]
            assert call(f"{boxes.at('shop')}api/v1/message/{uid}", "bob")[0] == 200
        # A login `access` does not list may use every mailbox, as in the UI.
        zed = {"Authorization": "Basic " + base64.b64encode(b"zed:zed-pw").decode()}
        status, _, answer = call(
            boxes.at("blog") + "api/v1/send", method="POST", body=body, headers=zed
        )
        assert status == 200, answer
        assert total(boxes, "blog") == before + 1
    finally:
        boxes.mp.stop()


def test_webui_without_a_prefix_gives_a_limited_users_own_retention(boxes: Boxes) -> None:
    # Without a prefix a limited user's requests are its only mailbox's; /api/v1/webui still
    # gave the default mailbox's retention (another mailbox's setting) there.
    own = get_json(boxes.at("shop") + "api/v1/webui", "ann")["Retention"]["MaxMessages"]
    assert own == 20  # shop's `max` in the mailbox config
    assert get_json(boxes.url + "api/v1/webui", "ann")["Retention"]["MaxMessages"] == own
    assert get_json(boxes.url + "api/v1/webui", "bob")["Retention"]["MaxMessages"] != own
    # carl, who must name one of his mailboxes, gets the instance's settings without one.
    assert call(boxes.url + "api/v1/webui", "carl")[0] == 200
