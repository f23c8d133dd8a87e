"""`mailpit-py migrate` keeps mailboxes: each message and session stays in its mailbox, and every
mailbox (an empty one too) is copied with its creation time, SQLite to PostgreSQL and back."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from helpers import make_server, send_raw, wait_until
from mailpit_py.server import Server

MAILPIT = [sys.executable, "-m", "mailpit_py"]
ROUTES = ("shop=rcpt:*@shop.test", "blog=rcpt:*@blog.test")


def api(mp: Server, path: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(mp.http_url.rstrip("/") + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        payload = resp.read()
    if path.endswith("/raw") or method != "GET":
        return payload
    return json.loads(payload)


def fill(db: str) -> None:
    """Mail routed over real SMTP into default, shop and blog (one message to two mailboxes, one
    read, one tagged), and a mailbox 'empty' made through the API and left empty."""
    with make_server(database=db, max_messages=0, mailbox_routes=ROUTES) as mp:
        send_raw(mp, b"Subject: for default\r\n\r\nplain words\r\n")
        shop = send_raw(
            mp,
            b"Subject: shop order\r\nX-Tags: paid\r\n\r\norder words\r\n",
            rcpt="orders@shop.test",
        )
        send_raw(mp, b"Subject: blog post\r\n\r\nblog words\r\n", rcpt="author@blog.test")
        with smtplib.SMTP(*mp.smtp_address) as client:  # one message, two mailboxes
            client.sendmail(
                "app@example.com",
                ["a@shop.test", "b@example.org"],
                b"Subject: to both\r\n\r\nshared words\r\n",
            )
        api(mp, "/mailbox/shop/api/v1/messages", "PUT", {"IDs": [shop], "Read": True})
        api(mp, "/api/v1/mailboxes", "POST", {"Name": "empty"})
        assert mp.mailbox is not None
        store = mp.mailbox.store
        wait_until(lambda: store.session_count() == 4, what="the sessions logged")


def snapshot(db: str) -> dict[str, Any]:
    """Per mailbox, what the API of a server on `db` shows: its row in the mailbox list, its
    messages (summaries, raw bytes), a search in it and its sessions."""
    with make_server(database=db, max_messages=0) as mp:
        boxes = api(mp, "/api/v1/mailboxes")["Mailboxes"]
        out: dict[str, Any] = {"boxes": boxes}
        for box in boxes:
            prefix = f"/mailbox/{box['Name']}/api/v1"
            listing = api(mp, f"{prefix}/messages?limit=0")
            out[box["Name"]] = {
                "total": (listing["total"], listing["unread"]),
                "summaries": listing["messages"],
                "raw": {
                    m["ID"]: api(mp, f"{prefix}/message/{m['ID']}/raw") for m in listing["messages"]
                },
                "search": [m["ID"] for m in api(mp, f"{prefix}/search?query=words")["messages"]],
                "sessions": api(mp, f"{prefix}/sessions?limit=0")["sessions"],
            }
        return out


def migrate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MAILPIT, "migrate", *args], capture_output=True, text=True, timeout=300)


def test_mailboxes_survive_sqlite_to_postgresql_and_back(pg_url: str, tmp_path: Path) -> None:
    db = str(tmp_path / "source.db")
    fill(db)
    original = snapshot(db)
    names = [b["Name"] for b in original["boxes"]]
    assert names == ["blog", "default", "empty", "shop"]
    counts = {b["Name"]: (b["Total"], b["Unread"]) for b in original["boxes"]}
    assert counts == {"blog": (1, 1), "default": (2, 2), "empty": (0, 0), "shop": (2, 1)}
    assert len(original["shop"]["sessions"]) == 2 and original["empty"]["sessions"] == []

    proc = migrate("--from", db, "--to", pg_url)
    assert proc.returncode == 0, proc.stderr
    assert "copied 5 messages and 4 sessions" in proc.stderr
    on_pg = snapshot(pg_url)
    back = str(tmp_path / "back.db")
    proc = migrate("--from", pg_url, "--to", back)
    assert proc.returncode == 0, proc.stderr
    for copy in (on_pg, snapshot(back)):
        assert copy["boxes"] == original["boxes"]  # names, counts, creation times
        for name in names:
            assert copy[name] == original[name], name


def test_append_makes_the_mailboxes_the_destination_lacks(tmp_path: Path) -> None:
    db = str(tmp_path / "source.db")
    fill(db)
    original = snapshot(db)
    dest = str(tmp_path / "partial.db")
    with make_server(database=dest, max_messages=0, mailbox_routes=ROUTES) as mp:
        here = send_raw(mp, b"Subject: already here\r\n\r\nhello\r\n", rcpt="x@shop.test")
    proc = migrate("--from", db, "--to", dest, "--append")
    assert proc.returncode == 0, proc.stderr
    copy = snapshot(dest)
    assert [b["Name"] for b in copy["boxes"]] == ["blog", "default", "empty", "shop"]
    assert set(copy["shop"]["raw"]) == {here, *original["shop"]["raw"]}
    assert copy["blog"] == original["blog"] and copy["empty"] == original["empty"]
    created = {b["Name"]: b["Created"] for b in original["boxes"]}
    assert {b["Name"]: b["Created"] for b in copy["boxes"]}["empty"] == created["empty"]


def test_backdating_a_mailbox_takes_only_an_earlier_time(database: str) -> None:
    from mailpit_py.store.open import open_store

    store = open_store(database)
    try:
        made = {name: created for name, _, _, created in store.mailboxes()}["default"]
        store.write(lambda s: s.backdate_mailbox("default", made + 100), timeout=30)
        store.write(lambda s: s.backdate_mailbox("missing", 1.0), timeout=30)
        assert [(n, c) for n, _, _, c in store.mailboxes()] == [("default", made)]
        store.write(lambda s: s.backdate_mailbox("default", made - 100), timeout=30)
        assert [(n, c) for n, _, _, c in store.mailboxes()] == [("default", made - 100)]
    finally:
        store.close()
