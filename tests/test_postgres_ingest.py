"""The PostgreSQL store's write path as deliveries use it: a batch's messages written together
(its first at once, the rest in one statement before the commit), a failing message failing its
own job alone, ids in order, retention counting the queued messages, and the session log's
bounds read a page at a time."""

from __future__ import annotations

import re
import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import psycopg
import pytest

from helpers import make_server, wait_until
from mailpit_py.mailbox.record import build_record
from mailpit_py.models import Envelope
from mailpit_py.parse.message import parse_message
from mailpit_py.store.postgres import sessions as pg_sessions
from mailpit_py.store.postgres.backend import PgStore
from mailpit_py.store.records import MessageRecord, SessionRecord, StoreError
from mailpit_py.store.search import parse_query
from pgserver import PgServer

ENV = Envelope("ann@example.com", ("bob@example.org",))


def record(uid: str, box: str = "default", body: str = "Hello there.") -> MessageRecord:
    raw = (
        f"From: Ann <ann@example.com>\r\nTo: bob@example.org\r\nSubject: {uid}\r\n"
        f"X-Tag: {uid}\r\nContent-Type: text/plain\r\n\r\n{body}\r\n"
    ).encode()
    rec = build_record(
        uid, parse_message(raw, ENV), raw, created=time.time(), username="", session_uid="",
        transcript=(), envelope=ENV,
    )  # fmt: skip
    return rec._replace(mailbox=box, tags=["t1", "t1", "t2"])


@pytest.fixture
def store(pg_url: str) -> Iterator[PgStore]:
    # A long linger: jobs submitted together land in one batch.
    s = PgStore(pg_url, linger=0.5)
    try:
        yield s
    finally:
        s.close()


def held(store: PgStore, submit: Callable[[], None]) -> None:
    """Run what `submit()` submits (without waiting for it) as one batch: the writer is held
    meanwhile."""
    gate, started = threading.Event(), threading.Event()

    def hold(s: Any) -> None:
        started.set()
        gate.wait(30)

    first = store.submit(hold)
    assert started.wait(30)
    try:
        submit()
    finally:
        gate.set()
    first.result(30)


def held_batch(store: PgStore, jobs: list[Any]) -> list[Future[Any]]:
    """Submit these jobs while the writer is held, so that they run as one batch."""
    futures: list[Future[Any]] = []
    held(store, lambda: futures.extend(store.submit(job) for job in jobs))
    return futures


def test_a_batch_of_messages_is_stored_whole_and_found(store: PgStore, pg_url: str) -> None:
    session = SessionRecord("s", 0.0, 1.0, "p", "l", "h", False, "", "ok", [], "[]")
    jobs: list[Any] = [
        lambda s, n=n: s.insert_message(record(f"m{n}", f"box{n % 2}")) for n in range(6)
    ]
    jobs.insert(3, lambda s: s.insert_session(session, 100))  # (the log: no write of the rest)
    futures = held_batch(store, jobs)
    ids = [f.result(30) for f in futures[:3] + futures[4:]]
    assert ids == list(range(1, 7))  # in order, none skipped
    assert store.last_batch_size == 7 and store.next_id() == 7
    assert store.counts() == (6, 6) and store.counts("box0") == (3, 3)
    summary = store.summary("m4")
    assert summary is not None and summary["tags_json"] == '["t1", "t2"]'
    assert store.raw("m4") is not None and store.raw("m4").startswith(b"From: Ann")  # type: ignore[union-attr]
    assert [r["uid"] for r in store.search_page(parse_query("header:X-Tag:m3"))[0]] == ["m3"]
    assert [r["uid"] for r in store.search_page(parse_query("m5"))[0]] == ["m5"]
    with psycopg.connect(pg_url) as conn:
        # every row of each: the message, its data, one row per tag, its index rows
        found = conn.execute(
            "SELECT (SELECT count(*) FROM message_data), (SELECT count(*) FROM tags), "
            "(SELECT count(*) FROM messages_fts), (SELECT count(DISTINCT message) FROM headers)"
        ).fetchone()
    assert found == (6, 12, 6, 6)


def test_a_message_that_cannot_be_written_fails_its_own_job_alone(store: PgStore) -> None:
    store.write(lambda s: s.insert_message(record("taken")))
    futures = held_batch(
        store,
        [
            lambda s: s.insert_message(record("before")),
            lambda s: s.insert_message(record("taken")),  # (the uid is unique)
            lambda s: s.insert_message(record("after")),
        ],
    )
    assert futures[0].result(30) > 0 and futures[2].result(30) > 0
    with pytest.raises(StoreError, match="duplicate key"):
        futures[1].result(30)
    assert {r["uid"] for r in store.list_summaries(0, 10)} == {"taken", "before", "after"}
    assert store.counts() == (3, 3)


def test_the_statements_that_insert_add_the_counts_without_a_trigger(
    store: PgStore, pg_url: str
) -> None:
    """The insert trigger's run cost ~130 us of the server's CPU per statement: schema 6 drops
    it, and the inserting statements add every count (each mailbox's, a new one's row made)."""
    with psycopg.connect(pg_url) as conn:
        triggers = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'messages_count_insert'"
        ).fetchone()
    assert triggers == (0,)
    before = {name: count for name, count, _, _ in store.mailboxes()}
    futures = held_batch(
        store,
        [lambda s, n=n: s.insert_message(record(f"c{n}", f"box{n % 3}")) for n in range(7)]
        + [lambda s: s.insert_message(record("lone", "zeta"))],
    )
    assert all(f.result(30) for f in futures)
    store.write(lambda s: s.insert_message(record("alone", "box1")))  # (a batch of one)
    with psycopg.connect(pg_url) as conn:
        truth = dict(conn.execute("SELECT mailbox, count(*) FROM messages GROUP BY 1").fetchall())
    boxes = {name: (count, unread) for name, count, unread, _ in store.mailboxes()}
    assert truth == {"box0": 3, "box1": 3, "box2": 2, "zeta": 1}
    assert {n: c for n, (c, _) in boxes.items() if c or n not in before} == truth
    assert all(unread == count for count, unread in boxes.values())
    assert store.counts() == (9, 9)
    store.write(lambda s: s.delete_messages(["c0", "c1"]))  # (the delete trigger stays)
    assert store.counts() == (7, 7) and store.counts("box0") == (2, 2)


ROWS_OF_A_MESSAGE = (
    ("message_data", "id"),
    ("parts", "message"),
    ("tags", "message"),
    ("headers", "message"),
    ("messages_fts", "id"),
)
ROWS_OF_A_MESSAGE_NAMES = [table for table, _ in ROWS_OF_A_MESSAGE]


def test_a_messages_rows_go_with_it_without_foreign_keys(store: PgStore, pg_url: str) -> None:
    """Each row written with a message had its foreign key checked by a query of its own (~95 us
    of the server's CPU a message): schema 6 drops those keys, and a statement-level trigger
    deletes what their cascades did, for every message a statement deletes."""
    with psycopg.connect(pg_url) as conn:
        keys = conn.execute(
            "SELECT conrelid::regclass::text FROM pg_constraint WHERE contype = 'f' ORDER BY 1"
        ).fetchall()
    assert [k for (k,) in keys] == ["imap_flags", "message_checks"]
    raw = (
        b"From: a@example.com\r\nTo: b@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain'
        b"\r\n\r\nHi\r\n--b\r\nContent-Type: application/pdf\r\nContent-Disposition: "
        b'attachment; filename="a.pdf"\r\n\r\n%PDF\r\n--b--\r\n'
    )
    with_part = build_record(
        "p0", parse_message(raw, ENV), raw, created=time.time(), username="", session_uid="",
        transcript=(), envelope=ENV,
    )._replace(tags=["t"])  # fmt: skip
    assert with_part.parts
    futures = held_batch(
        store,
        [lambda s: s.insert_message(with_part)]
        + [lambda s, n=n: s.insert_message(record(f"d{n}")) for n in range(5)],
    )
    assert all(f.result(30) for f in futures)

    def rows() -> dict[str, int]:
        with psycopg.connect(pg_url) as conn:
            return {
                table: int(conn.execute(f"SELECT count(DISTINCT {key}) FROM {table}").fetchone()[0])
                for table, key in ROWS_OF_A_MESSAGE
            }

    assert rows() == {"message_data": 6, "parts": 1, "tags": 6, "headers": 6, "messages_fts": 6}
    store.write(lambda s: s.delete_messages(["p0", "d0", "d1"]))
    assert rows() == {"message_data": 3, "parts": 0, "tags": 3, "headers": 3, "messages_fts": 3}
    with psycopg.connect(pg_url) as conn:
        left = sorted(conn.execute("SELECT id FROM messages").fetchall())
        for table, key in ROWS_OF_A_MESSAGE[:1] + ROWS_OF_A_MESSAGE[3:]:
            assert sorted(conn.execute(f"SELECT DISTINCT {key} FROM {table}").fetchall()) == left
    assert len(store.write(lambda s: s.prune(0, time.time() + 60))) == 3  # (retention's delete)
    assert rows() == dict.fromkeys(ROWS_OF_A_MESSAGE_NAMES, 0)


def test_retention_counts_the_messages_queued_in_its_batch(store: PgStore) -> None:
    # max 2: the slack lets a few more in before a delete (retention.retention_slack)
    futures = held_batch(
        store,
        [
            lambda s, n=n: (s.insert_message(record(f"m{n:02}")), s.prune(2, None, "default"))[1]
            for n in range(30)
        ],
    )
    pruned = [uid for f in futures for uid in f.result(30)]
    kept = [r["uid"] for r in store.list_summaries(0, 50)]
    assert len(pruned) + len(kept) == 30 and not set(pruned) & set(kept)
    assert kept[:2] == ["m29", "m28"] and len(kept) < 30
    assert store.counts() == (len(kept), len(kept))


def test_the_session_log_keeps_its_bounds_reading_its_oldest_a_page_at_a_time(
    store: PgStore, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailpit_py.store import sessions as log_rules

    monkeypatch.setattr(pg_sessions, "SESSION_LOG_BYTES", 3000)
    monkeypatch.setattr(log_rules, "SESSION_LOG_BYTES", 3000)  # (sessions_to_cut's)

    def session(uid: str, size: int) -> SessionRecord:
        return SessionRecord(uid, 0.0, 1.0, "p", "l", "h", False, "", "ok", [], "x" * size)

    for n in range(400):
        store.write(lambda s, n=n: s.insert_session(session(f"s{n:03}", 10), 1000))
    assert store.session_count() == 300  # 3,000 bytes of 10
    store.write(lambda s: s.insert_session(session("s399", 10), 1000))  # replaced, not added
    store.write(lambda s: s.insert_session(session("big", 2500), 1000))  # 250 older ones go
    assert [r["uid"] for r in store.sessions(0, 100)][:2] == ["big", "s399"]
    with psycopg.connect(pg_url) as conn:
        truth = conn.execute("SELECT count(*), sum(bytes)::bigint FROM sessions").fetchone()
        kept = dict(
            conn.execute(
                "SELECT name, value FROM counters WHERE name IN ('sessions', 'session_bytes')"
            ).fetchall()
        )
    assert truth == (51, 3000) and (kept["sessions"], kept["session_bytes"]) == truth
    for n in range(3):
        store.write(lambda s, n=n: s.insert_session(session(f"k{n}", 1), 2))
    assert [r["uid"] for r in store.sessions(0, 10)] == ["k2", "k1"]


def test_a_batch_of_deliveries_is_written_in_one_statement(
    pg_server: PgServer, pg_url: str
) -> None:
    """Each message's own statement cost a round trip, an executor start-up and a run of the
    count triggers: a batch's messages now go in two, its first (with the lock that orders ids)
    and the rest together (the server's statement log shows it)."""
    name = pg_url.rsplit("/", 1)[1]
    pg_server.sql(f"ALTER DATABASE \"{name}\" SET log_statement = 'all'")  # (new sessions)
    store = PgStore(pg_url, linger=0.5)
    try:
        futures = held_batch(
            store, [lambda s, n=n: s.insert_message(record(f"one{n}")) for n in range(6)]
        )
        assert all(f.result(30) for f in futures) and store.counts() == (6, 6)
    finally:
        store.close()
    lines = pg_server.log.read_text(errors="replace").splitlines()
    inserts = [line for line in lines if f" {name} " in line and "INSERT INTO messages " in line]
    assert len(inserts) == 2, inserts


# A statement as the server's log shows it: simple queries and the extended protocol's.
STATEMENT = re.compile(r"LOG:  (?:statement|execute [^:]*): (.*)")


def test_a_burst_of_messages_checks_is_saved_in_few_transactions(
    pg_server: PgServer, pg_url: str, tmp_path: Path
) -> None:
    """Each message's check results were a write job of their own (BEGIN, INSERT, COMMIT: three
    round trips) after a read of the results and a read of its summary: a burst's checks now
    save together, a worker's run in one transaction, read no summary, and read the results
    stored already once per run."""
    n = 30
    name = pg_url.rsplit("/", 1)[1]
    pg_server.sql(f"ALTER DATABASE \"{name}\" SET log_statement = 'all'")  # (new sessions)
    zone = tmp_path / "zone.txt"
    zone.write_text("example.org TXT v=spf1 -all\n")
    with make_server(database=pg_url, dns_offline=True, dns_override=str(zone)) as mp:
        assert mp.mailbox is not None
        with smtplib.SMTP(*mp.smtp_address, timeout=30) as client:  # faster than the quiet
            for i in range(n):
                client.sendmail("ann@example.com", ["bob@example.org"], f"Subject: {i}\r\n\r\nx")
        uids = [m["ID"] for m in mp.mailbox.list_messages(0, n)]
        assert len(uids) == n

        def checked() -> bool:
            with psycopg.connect(pg_url) as conn:
                row = conn.execute("SELECT count(*) FROM message_checks").fetchone()
            return row == (n,)

        wait_until(checked, timeout=60, what="every message's checks saved")
        before_reads = pg_server.log.read_text(errors="replace").splitlines()
        for uid in uids:  # each message has its own results
            found = mp.mailbox.checks(uid)
            assert found is not None and found["Headers"] is not None
    lines = pg_server.log.read_text(errors="replace").splitlines()
    ours = [line for line in lines if f" {name} " in line and STATEMENT.search(line)]
    # Per connection (the prefix's [pid]), the transactions that wrote check results.
    open_with: dict[str, bool] = {}
    writes = 0
    for line in ours:
        pid = re.search(r"\[(\d+)\]", line)
        assert pid is not None
        key = pid.group(1)
        said = STATEMENT.search(line)
        assert said is not None
        statement = said.group(1)
        if "INSERT INTO message_checks" in statement:
            open_with[key] = True
        elif statement.strip().upper() == "COMMIT" and open_with.pop(key, False):
            writes += 1
    assert 1 <= writes <= 4, writes  # a run per worker (more if ingest paused past the quiet)
    summaries = [line for line in ours if "FROM messages m WHERE m.uid = " in line]
    assert summaries == []
    # The stored results are read once per run (a read per message before).
    result_reads = [
        line for line in before_reads if f" {name} " in line and "JOIN message_checks c" in line
    ]
    assert 1 <= len(result_reads) <= 4, result_reads


def test_ascii_words_split_fast_are_the_words_the_tokenizer_finds() -> None:
    import random
    import string

    from mailpit_py.store.postgres.words import (
        _WORD,
        MAX_POSITION,
        _column_words,
        fold,
        tsvector_literal,
    )

    rnd = random.Random(7)
    alphabet = string.printable + "\x00\x1c\x1f\x7f"
    for _ in range(500):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 300)))
        assert _column_words(text) == _WORD.findall(fold(text))
    assert _column_words("Crème BRÛLÉE ß") == ["creme", "brulee", "ß"]  # (the regex path)
    # each word's positions: the first 64 of a column, past 16,383 all at 16,383
    vector = tsvector_literal(["", "", "w " * 20_000 + "last", ""])
    first, last = vector.split(" ")
    assert first.startswith("'w':6C,7C,") and first.count(",") == 63
    assert last == f"'last':{MAX_POSITION}C"
