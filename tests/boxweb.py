"""Helpers of the mailbox web tests: HTTP calls with basic auth that never follow a redirect, and
an instance with three mailboxes (default, shop, blog), users limited to some, and mail in each."""

from __future__ import annotations

import base64
import json
import smtplib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import make_server, wait_until
from mailpit_py.server import Server

PASSWORDS = {"ann": "ann-pw", "bob": "bob-pw", "carl": "carl-pw", "dora": "dora-pw"}
USERS = " ".join(f"{u}:{p}" for u, p in PASSWORDS.items())
# ann sees shop alone, carl shop and blog (not default), dora default and shop; bob is not
# listed, so he sees every mailbox.
MAILBOX_CONFIG = """\
mailboxes:
  - name: shop
    max: 20
    routes:
      - rcpt: "*@shop.test"
  - name: blog
    routes:
      - rcpt: "*@blog.test"
access:
  ann: [shop]
  carl: [shop, blog]
  dora: [default, shop]
"""
# What only another mailbox's mail holds: no answer to a user of another mailbox may hold it.
SECRET = "blog-secret-7f3a"
DEFAULT_SECRET = "default-secret-91c2"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 302 itself is the answer under test


OPENER = urllib.request.build_opener(NoRedirect)


def basic(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()


def call(
    url: str,
    user: str | None = None,
    *,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request; a JSON body is sent as JSON."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if user is not None:
        req.add_header("Authorization", basic(user))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with OPENER.open(req, timeout=20) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def get_json(url: str, user: str | None = None) -> Any:
    status, _, body = call(url, user)
    assert status == 200, (url, status, body)
    return json.loads(body)


def mail(subject: str, to: str, body: str, extra: str = "") -> bytes:
    return (
        f"From: Sender <sender@example.com>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@example.com>\r\n{extra}"
        f"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n"
        f"--BB\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>{body}</p>\r\n"
        f'--BB\r\nContent-Type: application/pdf; name="{subject}.pdf"\r\n'
        f'Content-Disposition: attachment; filename="{subject}.pdf"\r\n\r\n'
        f"%PDF-1.4 {body}\r\n--BB--\r\n"
    ).encode()


def send(mp: Server, subject: str, to: str, body: str, extra: str = "") -> None:
    """One message in an SMTP session of its own (so each session belongs to one mailbox)."""
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.sendmail("sender@example.com", [to], mail(subject, to, body, extra))


@dataclass
class Boxes:
    """A running instance with mail in default, shop and blog, and what the tests need of it."""

    mp: Server
    url: str  # the un-prefixed base URL, ending in /
    uids: dict[str, str] = field(default_factory=dict)  # mailbox -> its message's ID
    sessions: dict[str, str] = field(default_factory=dict)  # mailbox -> its session's ID
    parts: dict[str, str] = field(default_factory=dict)  # mailbox -> its attachment's PartID

    def at(self, box: str | None) -> str:
        """The base URL of a mailbox's prefix (None: un-prefixed)."""
        return self.url if box is None else f"{self.url}mailbox/{box}/"


def start(tmp_path: Path, **overrides: Any) -> Boxes:
    """The instance: ui auth for the four users, the mailbox config above, one message each."""
    config = tmp_path / "mailboxes.yml"
    config.write_text(MAILBOX_CONFIG)
    mp = make_server(ui_auth=USERS, mailbox_config=str(config), **overrides).start()
    boxes = Boxes(mp, mp.http_url)
    send(mp, "shop-hello", "orders@shop.test", "shop-body", "X-Tags: Shoptag\r\n")
    send(mp, SECRET, "writer@blog.test", SECRET, "X-Tags: Blogtag\r\n")
    send(mp, DEFAULT_SECRET, "someone@example.org", DEFAULT_SECRET)
    for box in ("shop", "blog", "default"):
        listed = wait_until(
            lambda b=box: get_json(boxes.at(b) + "api/v1/messages", "bob")["messages"],
            what=f"the message of {box}",
        )
        uid = listed[0]["ID"]
        boxes.uids[box] = uid
        msg = get_json(f"{boxes.at(box)}api/v1/message/{uid}", "bob")
        boxes.parts[box] = msg["Attachments"][0]["PartID"]
        sessions = wait_until(
            lambda b=box: get_json(boxes.at(b) + "api/v1/sessions", "bob")["sessions"],
            what=f"the SMTP session of {box}",
        )
        boxes.sessions[box] = sessions[0]["ID"]
    return boxes
