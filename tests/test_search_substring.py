"""Free-text search finds substrings, as Mailpit's does, through a trigram index."""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import send_raw
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.server import Server
from mailpit_py.store.records import StoreError
from mailpit_py.store.schema import MIGRATIONS

ENV = Envelope("ann@example.com", ("bob@shop.test",))


def raw_message(subject: str, body: str, sender: str = "ann@example.com") -> bytes:
    return (
        f"From: Ann <{sender}>\r\nTo: bob@shop.test\r\nSubject: {subject}\r\n"
        f"Message-ID: <{abs(hash(subject))}@x>\r\n\r\n{body}\r\n"
    ).encode()


def deliver(mb: Mailbox, subject: str, body: str, sender: str = "ann@example.com") -> str:
    return mb.deliver(
        Envelope(sender, ("bob@shop.test",)), raw_message(subject, body, sender)
    ).result(10)


def found(mb: Mailbox, query: str) -> set[str]:
    summaries, matched, _ = mb.search(query, 0, 1000)
    assert matched == len(summaries)
    return {m["ID"] for m in summaries}


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    mb = Mailbox(Config(database=":memory:", max_messages=0))
    try:
        yield mb
    finally:
        mb.close()


def test_substrings_inside_words_addresses_and_numbers(mailbox: Mailbox) -> None:
    order = deliver(mailbox, "Order 4711 shipped", "Tracking code XK-99812.")
    other = deliver(mailbox, "Lunch", "Soup today.", sender="cook@kitchen.test")
    assert found(mailbox, "ample.com") == {order}  # inside the sender's address
    assert found(mailbox, "xample") == {order}
    assert found(mailbox, "471") == {order}  # digits inside a number
    assert found(mailbox, "998") == {order}
    assert found(mailbox, "hipped") == {order}  # inside a subject word
    assert found(mailbox, "itchen") == {other}
    assert found(mailbox, "-ample.com") == {other}
    # Case folds as before, and the word index still folds diacritics.
    assert found(mailbox, "HIPP") == {order}
    # What the word index found it still finds.
    creme = deliver(mailbox, "Crème brûlée", "Dessert.")
    split = deliver(mailbox, "foo bar", "Words apart.")
    assert found(mailbox, "creme") == {creme}  # diacritics: the word index
    assert found(mailbox, "foo-bar") == {split}  # a phrase of its parts
    assert found(mailbox, "dess") == {creme}


def test_short_terms_match_word_prefixes_only(mailbox: Mailbox) -> None:
    starts = deliver(mailbox, "ab initio", "x")
    inside = deliver(mailbox, "crab cakes", "y")
    assert found(mailbox, "ab") == {starts}
    assert found(mailbox, "rab") == {inside}
    assert found(mailbox, "ab cakes") == set()


def test_deleted_messages_leave_the_substring_index(mailbox: Mailbox) -> None:
    gone = deliver(mailbox, "Invoice 123456", "due")
    kept = deliver(mailbox, "Invoice 923456", "due")
    assert found(mailbox, "23456") == {gone, kept}
    mailbox.delete([gone])
    assert found(mailbox, "23456") == {kept}
    with mailbox.store.reading() as conn:
        conn.execute("INSERT INTO messages_tri (messages_tri) VALUES ('integrity-check')")
    mailbox.delete_all()
    assert found(mailbox, "23456") == set()
    again = deliver(mailbox, "Invoice 523456", "due")
    assert found(mailbox, "23456") == {again}


def test_an_older_database_gets_the_substring_index_filled(tmp_path: Path) -> None:
    db = str(tmp_path / "old.db")
    mb = Mailbox(Config(database=db, max_messages=0))
    uid = deliver(mb, "Receipt 80443", "thanks")
    mb.close()
    # Back to the schema before the trigram index.
    conn = sqlite3.connect(db)
    # The migrations after it are undone too, so they run again on top of the old schema.
    trigram = next(i for i, m in enumerate(MIGRATIONS) if "CREATE VIRTUAL TABLE messages_tri" in m)
    conn.executescript(
        "DROP TABLE messages_tri; DROP INDEX IF EXISTS messages_message_id;"
        "DROP INDEX IF EXISTS messages_refused;"
        "ALTER TABLE messages DROP COLUMN refused; ALTER TABLE messages DROP COLUMN listener;"
        "DROP TRIGGER mailboxes_count_insert; DROP TRIGGER mailboxes_count_delete;"
        "DROP TRIGGER mailboxes_count_read; DROP TABLE mailboxes;"
        "DROP INDEX messages_mailbox_id_read; DROP INDEX sessions_mailbox;"
        "ALTER TABLE sessions DROP COLUMN mailbox;"
        f"PRAGMA user_version = {trigram};"
    )
    conn.close()
    mb = Mailbox(Config(database=db, max_messages=0))
    try:
        assert found(mb, "044") == {uid}
        assert found(mb, "eceip") == {uid}
    finally:
        mb.close()
    # And a database newer than this code is refused as before.
    db = str(tmp_path / "new.db")
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this mailpit_py knows"):
        Mailbox(Config(database=db, max_messages=0))


def test_substring_search_over_smtp_and_the_api(server: Server) -> None:
    uid = send_raw(server, raw_message("Build 20261207 failed", "see logs"))
    send_raw(server, raw_message("Build 1 passed", "fine"))
    host, port = server.http_address
    query = urllib.parse.urlencode({"query": "0261"})
    with urllib.request.urlopen(f"http://{host}:{port}/api/v1/search?{query}", timeout=10) as r:
        body = json.load(r)
    assert [m["ID"] for m in body["messages"]] == [uid]
    assert body["messages_count"] == 1
