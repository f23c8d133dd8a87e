"""A real mailpit_py Server on each store backend (SQLite and PostgreSQL), driven by real
clients: SMTP in; the API's list, search, tags, read state, deletes, retention and sessions;
a 20 MB raw download; IMAP fetch. What works on one backend must work on the other."""

from __future__ import annotations

import base64
import imaplib
import json
import smtplib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import make_server, wait_until
from mailpit_py.server import Server

MAX = 5  # --max: retention keeps the newest five


@pytest.fixture
def catcher(database: str) -> Iterator[Server]:
    with make_server(
        database=database, max_messages=MAX, imap_addr="127.0.0.1:0", imap_auth="ann:secret"
    ) as mp:
        yield mp


def api(mp: Server, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(mp.http_url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as resp:
        raw = resp.read()
    ctype = resp.headers.get("Content-Type", "")
    return json.loads(raw) if "json" in ctype else raw


def send(mp: Server, raw: bytes, sender: str = "ann@example.com") -> str:
    with smtplib.SMTP(*mp.smtp_address, timeout=120) as client:
        client.ehlo()
        client.mail(sender, ["BODY=8BITMIME"])
        client.rcpt("bob@example.org")
        code, reply = client.data(raw)
    assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[1]


def message(
    subject: str, body: str, sender: str = "Ann <ann@example.com>", extra: str = ""
) -> bytes:
    return (
        f"From: {sender}\r\nTo: Bob <bob@example.org>\r\nSubject: {subject}\r\n{extra}"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def search(mp: Server, query: str) -> set[str]:
    found = api(mp, "GET", "api/v1/search?query=" + urllib.request.quote(query))
    assert found["messages_count"] == len(found["messages"])
    return {m["Subject"] for m in found["messages"]}


def test_a_server_on_each_backend_does_it_all(catcher: Server) -> None:
    mp = catcher
    invoice = send(mp, message("Invoice 2026-117", "Please pay the example total."))
    send(
        mp,
        message(
            "Newsletter",
            "Weekly news.",
            "News <news@lists.example.net>",
            "X-Campaign: autumn-sale\r\n",
        ),
    )
    hello = send(mp, message("Hello Zoë", "Just saying hi."))
    listed = api(mp, "GET", "api/v1/messages")
    assert listed["total"] == 3 and listed["unread"] == 3
    assert [m["Subject"] for m in listed["messages"]] == [
        "Hello Zoë",
        "Newsletter",
        "Invoice 2026-117",
    ]

    assert search(mp, "invoice") == {"Invoice 2026-117"}  # a word
    assert search(mp, "otal") == {"Invoice 2026-117"}  # a substring
    assert search(mp, "zoe") == {"Hello Zoë"}  # diacritics folded
    assert search(mp, "header:X-Campaign:autumn") == {"Newsletter"}
    assert search(mp, "from:lists.example") == {"Newsletter"}

    api(mp, "PUT", "api/v1/tags", {"IDs": [invoice, hello], "Tags": ["Billing"]})
    assert search(mp, "tag:billing") == {"Invoice 2026-117", "Hello Zoë"}
    assert api(mp, "GET", "api/v1/tags") == ["Billing"]
    api(mp, "PUT", "api/v1/messages", {"IDs": [invoice], "Read": True})
    assert search(mp, "is:unread") == {"Newsletter", "Hello Zoë"}
    assert api(mp, "GET", f"api/v1/message/{invoice}")["Tags"] == ["Billing"]

    api(mp, "DELETE", "api/v1/messages", {"IDs": [hello]})
    assert api(mp, "GET", "api/v1/messages")["total"] == 2

    # Retention: past --max the oldest go.
    for n in range(MAX + 2):
        send(mp, message(f"Filler {n}", "filler"))
    wait_until(lambda: api(mp, "GET", "api/v1/messages")["total"] == MAX, what="retention")
    subjects = {m["Subject"] for m in api(mp, "GET", "api/v1/messages")["messages"]}
    assert subjects == {f"Filler {n}" for n in range(2, MAX + 2)}

    sessions = api(mp, "GET", "api/v1/sessions")
    assert sessions["sessions"] and sessions["sessions"][0]["Outcome"]

    # A 20 MB message, downloaded raw byte for byte.
    blob = base64.encodebytes(bytes(range(256)) * (15 * 1024 * 1024 // 256)).replace(b"\n", b"\r\n")
    big_raw = message("Big one", "see attachment") + blob
    assert len(big_raw) > 20_000_000
    big = send(mp, big_raw)
    with urllib.request.urlopen(mp.http_url + f"api/v1/message/{big}/raw", timeout=120) as resp:
        downloaded = resp.read()
    assert downloaded == big_raw

    # IMAP sees the same messages, and fetches the big one whole.
    client = imaplib.IMAP4(*mp.imap_address, timeout=60)
    try:
        client.login("ann", "secret")
        typ, data = client.select()
        assert typ == "OK" and int(data[0]) == MAX
        typ, data = client.uid("SEARCH", "ALL")
        newest = data[0].split()[-1]
        typ, fetched = client.uid("FETCH", newest, "(RFC822)")
        assert typ == "OK"
        assert [d for d in fetched if isinstance(d, tuple)][0][1] == big_raw
    finally:
        client.logout()


def test_the_relay_outbox_delivers_once_on_each_backend(database: str, tmp_path: Path) -> None:
    from test_relay import relay_yaml
    from upstream import UpstreamServer

    with (
        UpstreamServer() as up,
        make_server(
            database=database,
            smtp_relay_config=relay_yaml(tmp_path, up.port),
            smtp_relay_all=True,
        ) as mp,
    ):
        uid = send(mp, message("Relay me", "onwards"))
        wait_until(lambda: len(up.received) == 1, timeout=30, what="the relayed copy")
        # (the outcome is recorded just after the upstream's answer)
        wait_until(
            lambda: (
                [i["State"] for i in api(mp, "GET", f"api/v1/message/{uid}/relay")["Queue"]]
                == ["sent"]
            ),
            what="the item recorded as sent",
        )
        assert b"Subject: Relay me" in up.received[0].data
        assert mp.mailbox is not None and mp.mailbox.store.outbox_pending() == []
    assert len(up.received) == 1
