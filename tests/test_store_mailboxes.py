"""The SQLite store's mailboxes: a database made before them gets them at open (every message
and session in 'default', the counts taken once), and reads in one mailbox walk its index."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import sqlite_steps
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.store import boxscan, search_sql
from mailpit_py.store.records import SessionRecord
from mailpit_py.store.schema import MIGRATIONS
from mailpit_py.store.search import parse_query
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


# Texts whose folding the trigram tokenizer does its own way: µ (micro) is μ to it, ſ is s, K
# (Kelvin) is k, final ς is σ, İ stays İ; text after a NUL is not indexed (nor after a \x01
# that follows it: columns are joined by one); CJK is spaced.
TEXTS = [
    "Hello from example.com",
    "HELLO FROM EXAMPLE.COM",
    "µικρό μέρος",
    "ΜΙΚΡΌ ΜΈΡΟΣ",
    "Meſſage of the day",
    "KELVIN 273 K scale",
    "ΣΊΣΥΦΟΣ ς στο βουνό",
    "İstanbul and istanbul",
    "Straße Müller",
    "東京の会議 report",
    "plain ascii body with AMPLE room",
    "hidden\x00 after a \x01 vwxyz",
    "seen: vwxyz",
]
# Terms found by substring, by word (a diacritic folded, a phrase across punctuation) or both.
TERMS = [
    "example.com",
    "ample",
    "μικρό",
    "message of",
    "kelvin 273",
    "σίσυφοσ",
    "σίσυφος",
    "istanbul",
    "İstanbul",
    "strasse",
    "müller",
    "muller",
    "東京",
    "hello from",
    "from example",
    "fter zeb",
    "wxyz",
    "zebra",
    "nothing like it",
]


@pytest.fixture(scope="module")
def boxed() -> Iterator[Mailbox]:
    """160 messages in 'big', and small mailboxes of 1, 11 and 33 (at most a quarter of all)."""
    mb = Mailbox(Config(database=":memory:", max_messages=0, disable_checks=True))
    try:
        env = Envelope("ann@example.com", ("bob@example.org",))
        sizes = {"big": 160, "one": 1, "eleven": 11, "some": 33}
        for n in range(max(sizes.values())):
            for box, size in sizes.items():
                if n < size:
                    text = TEXTS[(n + len(box)) % len(TEXTS)]
                    body = f"{text}\r\nline {n}" + ("\x00 after zebra" if n % 5 == 0 else " zebra")
                    raw = f"From: ann@example.com\r\nSubject: {box} {n}\r\n\r\n{body}\r\n"
                    mb.deliver(env, raw.encode(), boxes={box: ["bob@example.org"]}).result(10)
        for box in sizes:
            ids = [m["ID"] for m in mb.list_messages(0, 1000, box=box)]
            mb.mark_read(ids[::3], box=box)
        yield mb
    finally:
        mb.close()


def box_search(mb: Mailbox, box: str, term: str, start: int) -> tuple[list[str], int, int]:
    rows, matched, unread = mb.search(f'"{term}"', start, 4, box=box)
    return [r["ID"] for r in rows], matched, unread


@pytest.mark.parametrize("term", TERMS)
def test_a_small_mailbox_read_for_a_common_term_finds_what_the_indexes_find(
    boxed: Mailbox, term: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mailbox's own text searched (boxscan.py) gives the pages and counts that streaming
    the store's index matches past the mailbox gives, in mailboxes of several sizes."""
    for box in ("one", "eleven", "some"):
        for start in (0, 3, 10):
            monkeypatch.setattr(boxscan, "SCAN_RATIO", 0)  # every term read in the text
            scanned = box_search(boxed, box, term, start)
            monkeypatch.setattr(boxscan, "SCAN_RATIO", 10**9)  # every term's matches streamed
            assert scanned == box_search(boxed, box, term, start), (box, start)


def test_the_fold_is_the_trigram_tokenizers_in_every_script() -> None:
    """Every code point SQLite's trigram tokenizer folds is folded alike: the candidates
    boxscan asks SQLite about hold them all."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize = 'trigram')")
    conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
    points = [p for p in range(1, 0x110000) if not 0xD800 <= p < 0xE000]
    conn.execute("INSERT INTO t (rowid, x) VALUES (1, ?)", ("".join(map(chr, points)) + "  ",))
    text = "".join(map(chr, points))
    folded = list(text)
    for term, offset in conn.execute("SELECT term, offset FROM v WHERE offset < ?", (len(points),)):
        folded[offset] = term[0]
    conn.close()
    assert boxscan.fold(text) == "".join(folded)
    assert boxscan.fold("ab\x00cd") == "ab" and boxscan.fold("ΣΊΣΥΦΟΣ µ") == "σίσυφοσ μ"


def test_a_common_term_in_a_small_mailbox_reads_that_mailbox_not_every_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A substring in every message, searched in a mailbox of 20 among 400: reading the
    mailbox's text steps over its 20 messages, fewer steps than the whole store's search,
    where streaming the store's 400 matches past it took several times that search's."""
    mb = Mailbox(Config(database=":memory:", max_messages=0, disable_checks=True))
    try:
        env = Envelope("ann@example.com", ("bob@example.org",))
        for n in range(400):
            box = "small" if n % 20 == 0 else "big"
            raw = f"From: ann@example.com\r\nSubject: s{n}\r\n\r\nat www.example.com {n}\r\n"
            mb.deliver(env, raw.encode(), boxes={box: ["bob@example.org"]}).result(10)
        whole = sqlite_steps(mb.store, lambda: mb.search("ample.com", 0, 50))
        small = sqlite_steps(mb.store, lambda: mb.search("ample.com", 0, 50, box="small"))
        assert mb.search("ample.com", 0, 50, box="small")[1:] == (20, 20)
        assert small < whole, (small, whole)
        monkeypatch.setattr(boxscan, "SCAN_RATIO", 10**9)
        streamed = sqlite_steps(mb.store, lambda: mb.search("ample.com", 0, 50, box="small"))
        assert small * 5 < streamed, (small, streamed)
    finally:
        mb.close()


def test_a_mailbox_with_more_text_than_the_scan_reads_streams_the_matches(
    boxed: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past SCAN_CHARS of the mailbox's text the scan gives up (None) and the search streams
    the store's matches as before: the same pages and counts."""
    monkeypatch.setattr(boxscan, "SCAN_RATIO", 0)
    streamed = box_search(boxed, "some", "zebra", 2)
    monkeypatch.setattr(boxscan, "SCAN_CHARS", 100)
    store = boxed.store
    assert isinstance(store, Store)
    with store._in_box("some") as (conn, _, _):
        word, substring = search_sql.lone_substring(parse_query('"zebra"')) or ("", "")
        assert boxscan.box_matches(conn, word, substring, "some") is None
    assert box_search(boxed, "some", "zebra", 2) == streamed and streamed[1] == 33
