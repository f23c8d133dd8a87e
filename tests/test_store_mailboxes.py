"""The SQLite store's mailboxes: a database made before them gets them at open (every message
and session in 'default', the counts taken once), and reads in one mailbox walk its index."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.store.records import SessionRecord
from mailpit_py.store.schema import MIGRATIONS
from mailpit_py.store.sqlite import Store

MAILBOXES_MIGRATION = next(i for i, m in enumerate(MIGRATIONS) if "CREATE TABLE mailboxes" in m)


def raw(subject: str) -> bytes:
    return (
        f"From: ann@example.com\r\nTo: bob@example.org\r\nSubject: {subject}\r\n"
        f"X-Team: red\r\n\r\nBody of {subject}.\r\n"
    ).encode()


def undo_mailboxes(db: str) -> None:
    """The database as the release before mailboxes left it."""
    conn = sqlite3.connect(db)
    conn.executescript(
        "DROP TRIGGER mailboxes_count_insert; DROP TRIGGER mailboxes_count_delete;"
        "DROP TRIGGER mailboxes_count_read; DROP TABLE mailboxes;"
        "DROP INDEX messages_mailbox_id_read; DROP INDEX sessions_mailbox;"
        "ALTER TABLE sessions DROP COLUMN mailbox;"
        f"PRAGMA user_version = {MAILBOXES_MIGRATION};"
    )
    conn.close()


def test_an_older_database_gets_its_mailbox_counts_and_sessions_at_open(tmp_path: Path) -> None:
    db = str(tmp_path / "old.db")
    mb = Mailbox(Config(database=db, max_messages=0))
    uids = [
        mb.deliver(Envelope("ann@example.com", ("bob@example.org",)), raw(f"m{n}")).result(10)
        for n in range(3)
    ]
    mb.mark_read(uids[:1])
    now = time.time()
    session = SessionRecord("s1", now, now, "127.0.0.1:1", "x", "helo", False, "", "ok", [], "[]")
    mb.store.write(lambda s: s.insert_session(session, 10))
    mb.close()
    undo_mailboxes(db)
    before = time.time()
    store = Store(db)
    try:
        ((name, total, unread, created),) = store.mailboxes()
        assert (name, total, unread) == ("default", 3, 2)
        assert created <= before  # (the oldest message's arrival)
        assert store.counts("default") == (3, 2)
        row = store.session("s1")
        assert row is not None and row["mailbox"] == "default"
        assert [r["uid"] for r in store.list_summaries(box="default")] == uids[::-1]
        # And the counts follow new messages from there on.
        store.write(lambda s: s.set_read(None, True))
        assert store.counts("default") == (3, 0)
    finally:
        store.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()
    # A new database has 'default' from the start, made now.
    store = Store(str(tmp_path / "new.db"))
    try:
        ((name, total, unread, created),) = store.mailboxes()
        assert (name, total, unread) == ("default", 0, 0) and created >= before
    finally:
        store.close()


def test_reads_in_one_mailbox_walk_that_mailboxs_index_entries(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "plans.db"))
    try:
        with store.reading() as conn:
            plans = {
                sql: " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))
                for sql, args in (
                    (
                        "SELECT id FROM messages INDEXED BY messages_mailbox_id_read "
                        "WHERE mailbox = ? ORDER BY id DESC LIMIT 50 OFFSET 1000",
                        ("p",),
                    ),
                    ("SELECT count(*) FROM sessions WHERE mailbox = ?", ("p",)),
                    ("SELECT messages, unread FROM mailboxes WHERE name = ?", ("p",)),
                )
            }
        for sql, plan in plans.items():
            assert "SCAN" not in plan and "USING" in plan, (sql, plan)
    finally:
        store.close()


def put(store: Store, box: str, subject: str) -> str:
    from mailpit_py.mailbox.record import build_record
    from mailpit_py.parse.message import parse_message

    env = Envelope("ann@example.com", ("bob@example.org",))
    rec = build_record(
        f"{box}-{subject}",
        parse_message(raw(subject), env),
        raw(subject),
        created=time.time(),
        username="",
        session_uid="",
        transcript=[],
        envelope=env,
    )._replace(mailbox=box)
    store.write(lambda s: s.insert_message(rec))
    return rec.uid


def test_a_search_in_a_small_mailbox_looks_its_messages_up_one_by_one(tmp_path: Path) -> None:
    """A mailbox holding every message is read as the whole store (its plans and counters); one
    of at most a quarter of the messages has header values looked up per message (EXISTS on
    the header index) rather than every message's values of that header read into a set."""
    from mailpit_py.store.search import parse_query
    from mailpit_py.store.search_sql import build_where

    where, _ = build_where(parse_query("header:X-Team:red"), probe=True)
    assert where.startswith("EXISTS") and "h.message = m.id" in where
    where, _ = build_where(parse_query("header:X-Team:red"))
    assert where.startswith("m.id IN")
    store = Store(str(tmp_path / "probe.db"))
    try:
        for n in range(7):
            put(store, "default", f"d{n}")
        with store._in_box("default") as (_, box, probe):
            assert (box, probe) == (None, False)
        small = put(store, "small", "s0")
        with store._in_box("default") as (conn, box, probe):
            assert (box, probe) == ("default", False)
            assert conn.in_transaction  # the decision and the reads see one snapshot
        with store._in_box("small") as (_, box, probe):
            assert (box, probe) == ("small", True)
        with store._in_box("nowhere") as (_, box, probe):
            assert (box, probe) == ("nowhere", True)
        store.index_barrier()
        rows, matched, unread = store.search_page(parse_query("header:X-Team:red"), box="small")
        assert [r["uid"] for r in rows] == [small] and (matched, unread) == (1, 1)
        # Each message's lookup seeks its own header rows: through an index that leads with
        # the header's name it would walk every message's rows of that header, once per
        # message of the mailbox (20-55 s for 2,000 of 100,000 messages).
        where, args = build_where(parse_query("header:X-Team:red"), probe=True)
        with store.reading() as conn:
            plan = " | ".join(
                row[3]
                for row in conn.execute(
                    f"EXPLAIN QUERY PLAN SELECT m.id FROM messages m WHERE mailbox = ? AND {where}",
                    ["small", *args],
                )
            )
        assert "headers_message" in plan, plan
    finally:
        store.close()
