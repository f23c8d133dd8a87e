"""The mailbox service and its SQLite store: persistence, retention, events, FTS, batching."""

from __future__ import annotations

import smtplib
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import make_server, wait_until
from mailpit_py import events
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox, MessageNotFound
from mailpit_py.models import Envelope
from mailpit_py.store.records import StoreError
from mailpit_py.store.schema import MIGRATIONS
from mailpit_py.store.sqlite import Store

ENV = Envelope("a@example.com", ("b@example.com",))


def raw_message(subject: str, body: str = "Hello.") -> bytes:
    return (
        f"From: Ann <a@example.com>\r\nTo: Bob <b@example.com>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@example.com>\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n"
        f"\r\n{body}\r\n"
    ).encode()


def deliver(mb: Mailbox, subject: str, body: str = "Hello.", **kw) -> str:
    return mb.deliver(ENV, raw_message(subject, body), **kw).result(timeout=10)


@pytest.fixture
def mailbox():
    mb = Mailbox(Config(database=":memory:"))
    yield mb
    mb.close()


def test_messages_read_state_and_sessions_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "keep.db"
    with make_server(database=str(db)) as mp:
        with smtplib.SMTP(*mp.smtp_address) as client:
            client.sendmail("a@example.com", ["b@example.com"], raw_message("first"))
            client.sendmail("a@example.com", ["b@example.com"], raw_message("second"))
        first = mp.mailbox.list_messages()[1]["ID"]
        mp.mailbox.get(first, mark_read=True)
    assert db.exists()  # a named database is kept at exit
    with make_server(database=str(db)) as mp:
        listed = mp.mailbox.list_messages()
        assert [m["Subject"] for m in listed] == ["second", "first"]
        assert [m["Read"] for m in listed] == [False, True]
        assert mp.mailbox.counts() == (2, 1)
        assert mp.mailbox.raw(first) == raw_message("first")
        assert mp.mailbox.sessions()[0]["Outcome"] == "delivered"


def test_temporary_default_database_is_removed_at_exit() -> None:
    mp = make_server(database=None).start()
    path = Path(mp.mailbox.database_path)
    deliver(mp.mailbox, "temp")
    assert path.exists()
    mp.stop()
    assert not path.exists()
    assert not Path(str(path) + "-wal").exists()


def test_memory_database_behaves_like_a_file(mailbox: Mailbox) -> None:
    uid = deliver(mailbox, "in memory")
    assert mailbox.get(uid).summary["Subject"] == "in memory"
    assert mailbox.counts() == (1, 1)
    mailbox.delete([uid])
    assert mailbox.counts() == (0, 0)


def test_file_database_uses_wal_and_current_schema_version(tmp_path: Path) -> None:
    db = tmp_path / "wal.db"
    mb = Mailbox(Config(database=str(db)))
    with mb.store.reading() as reader:  # no zeroing of freed pages (Debian builds it on)
        assert reader.execute("PRAGMA secure_delete").fetchone()[0] == 0
    mb.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()


def test_a_database_from_a_newer_version_is_refused_clearly(tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this mailpit_py knows"):
        Store(str(db))


def test_unopenable_database_path_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open database"):
        Store(str(tmp_path / "missing-dir" / "x.db"))


def test_list_messages_is_newest_first_with_paging_and_latest(mailbox: Mailbox) -> None:
    for i in range(7):
        deliver(mailbox, f"m{i}")
    assert [m["Subject"] for m in mailbox.list_messages(0, 3)] == ["m6", "m5", "m4"]
    assert [m["Subject"] for m in mailbox.list_messages(3, 3)] == ["m3", "m2", "m1"]
    assert [m["Subject"] for m in mailbox.list_messages(6, 3)] == ["m0"]
    assert mailbox.get("latest").summary["Subject"] == "m6"
    # Named list_messages: a method called `list` shadows the builtin in the class body, so
    # every `list[...]` annotation after it named the method (mypy rejected them).
    assert not hasattr(Mailbox, "list")


def test_get_of_a_missing_message_raises_not_found_naming_it(mailbox: Mailbox) -> None:
    with pytest.raises(MessageNotFound, match="nope"):
        mailbox.get("nope")
    with pytest.raises(MessageNotFound, match="no messages"):
        mailbox.get("latest")


def test_summary_has_mailpit_fields_and_rfc3339_created(mailbox: Mailbox) -> None:
    uid = deliver(mailbox, "fields")
    s = mailbox.get(uid).summary
    assert set(s) >= {
        "ID", "MessageID", "Read", "From", "To", "Cc", "Bcc", "ReplyTo", "Subject",
        "Created", "Username", "Tags", "Size", "Attachments", "Snippet",
    }  # fmt: skip
    assert s["From"] == {"Name": "Ann", "Address": "a@example.com"}
    assert s["To"] == [{"Name": "Bob", "Address": "b@example.com"}]
    assert s["Cc"] == [] and s["Tags"] == []
    assert s["MessageID"] == "fields@example.com"
    assert s["Created"].endswith("Z") and "." in s["Created"]


def test_get_with_mark_read_marks_it_and_publishes_update(mailbox: Mailbox) -> None:
    uid = deliver(mailbox, "unread")
    with mailbox.bus.subscribe() as sub:
        assert mailbox.get(uid, mark_read=True).summary["Read"] is True
        event = sub.get(timeout=5)
        while isinstance(event, (events.Stats, events.MailboxCounts)):
            event = sub.get(timeout=5)
    assert isinstance(event, events.Update)
    assert event.data == {"ID": uid, "Read": True}
    assert mailbox.counts() == (1, 0)
    mailbox.mark_read([uid], False)
    assert mailbox.counts() == (1, 1)
    assert mailbox.mark_read(None, True) == [uid]
    assert mailbox.counts() == (1, 0)


def test_new_message_event_is_published_after_the_commit(mailbox: Mailbox) -> None:
    seen: list[bool] = []
    with mailbox.bus.subscribe() as sub:
        uid = deliver(mailbox, "evented")
        event = sub.get(timeout=5)
        # The subscriber can read what the event announces: it was committed first.
        seen.append(mailbox.get(event.data["ID"]).summary["Subject"] == "evented")
    assert isinstance(event, events.NewMessage)
    assert event.data["ID"] == uid
    assert event.to_api()["Type"] == "new"
    assert seen == [True]


def test_delete_some_and_all_publish_delete_and_truncate(mailbox: Mailbox) -> None:
    a, b, c = (deliver(mailbox, s) for s in ("a", "b", "c"))
    with mailbox.bus.subscribe() as sub:
        assert mailbox.delete([a, "unknown"]) == [a]
        # (the stats thread may publish the new counts first: it reads them once the delete
        # has committed, while the deleting thread is still on its way to publish the delete)
        first = sub.get(timeout=5)
        while isinstance(first, events.Stats):
            first = sub.get(timeout=5)
        assert isinstance(first, events.Delete) and first.data == {"ID": a}
        assert mailbox.delete_all() == 2
        kinds = set()
        while (e := sub.get(timeout=0.5)) is not None:
            kinds.add(type(e))
    assert events.Truncate in kinds
    assert mailbox.counts() == (0, 0)
    with pytest.raises(MessageNotFound):
        mailbox.raw(b)


def test_max_messages_prunes_the_oldest_and_publishes_prune() -> None:
    mb = Mailbox(Config(database=":memory:", max_messages=3))
    try:
        with mb.bus.subscribe() as sub:
            uids = [deliver(mb, f"m{i}") for i in range(5)]
            pruned: list[str] = []
            while (e := sub.get(timeout=0.5)) is not None:
                if isinstance(e, events.Prune):
                    pruned += e.data["IDs"]
        assert [m["Subject"] for m in mb.list_messages()] == ["m4", "m3", "m2"]
        assert sorted(pruned) == sorted(uids[:2])
    finally:
        mb.close()


def test_max_age_prunes_older_messages() -> None:
    mb = Mailbox(Config(database=":memory:", max_age=3600))
    try:
        deliver(mb, "ancient", received_at=time.time() - 7200)
        deliver(mb, "fresh")
        assert [m["Subject"] for m in mb.list_messages()] == ["fresh"]
    finally:
        mb.close()


def test_zero_max_messages_means_unlimited() -> None:
    mb = Mailbox(Config(database=":memory:", max_messages=0))
    try:
        for i in range(30):
            deliver(mb, f"m{i}")
        assert mb.counts()[0] == 30
    finally:
        mb.close()


def test_full_text_index_follows_inserts_and_deletes(mailbox: Mailbox) -> None:
    uid = deliver(mailbox, "invoice", body="The zanzibar quarterly report.")
    deliver(mailbox, "other", body="Nothing here.")

    def fts(term: str) -> list[int]:
        mailbox.store.index_barrier()  # index rows are written just after the commit
        with mailbox.store.reading() as conn:
            rows = conn.execute(
                "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?", (term,)
            ).fetchall()
        return [r[0] for r in rows]

    assert len(fts("zanzibar")) == 1
    assert len(fts("subject:invoice")) == 1
    assert len(fts("addresses:bob")) == 2
    mailbox.delete([uid])
    assert fts("zanzibar") == []
    mailbox.delete_all()
    assert fts("addresses:bob") == []


def test_header_values_are_searched_through_the_headers_table_not_the_word_index(
    mailbox: Mailbox,
) -> None:
    raw = raw_message("plain subject").replace(
        b"Subject:", b"X-Build: quokkaheader-77\r\nSubject:", 1
    )
    uid = mailbox.deliver(ENV, raw).result(timeout=10)
    assert [m["ID"] for m in mailbox.search("header:X-Build:quokkaheader")[0]] == [uid]
    assert mailbox.search("quokkaheader")[0] == []  # free text: what Mailpit's searches
    mailbox.store.index_barrier()
    with mailbox.store.reading() as conn:
        # Nothing reads the FTS headers column, so nothing is written to it (it cost ~10% of
        # the index's work per message, and its delete again on retention).
        (filled,) = conn.execute("SELECT count(*) FROM messages_fts WHERE headers != ''").fetchone()
    assert filled == 0


def test_messages_carry_only_the_indexes_queries_use(tmp_path: Path) -> None:
    # Every message is inserted into each index: one no query reads is pure cost (two such,
    # on the mailbox column, were dropped by migration 11). The list pages by rowid; these are
    # the uid lookups, retention by age, and the id/read index for deep pages and counts.
    store = Store(str(tmp_path / "indexes.db"))
    try:
        with store.reading() as conn:
            names = {
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'"
                )
            }
            plan = conn.execute(
                "EXPLAIN QUERY PLAN SELECT count(*) FROM messages WHERE read = 0"
            ).fetchall()
            refused = conn.execute(
                "EXPLAIN QUERY PLAN SELECT count(*) FROM messages m WHERE m.refused != ''"
            ).fetchall()
    finally:
        store.close()
    # messages_refused is partial: only a message a receiver profile refused is in it, so
    # accepted mail costs it nothing, and is:refused reads it alone. messages_message_id is
    # --ignore-duplicate-ids' lookup (migration 14), once per message. messages_mailbox_id_read
    # is what a page, a search and its counts in one mailbox walk (migration 16).
    assert names == {
        "sqlite_autoindex_messages_1",
        "messages_created",
        "messages_id_read",
        "messages_mailbox_id_read",
        "messages_refused",
        "messages_message_id",
    }
    assert "messages_id_read" in plan[0][3]
    assert "messages_refused" in refused[0][3]


def test_concurrent_writes_are_committed_in_one_batch(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "batch.db"))
    gate = threading.Event()
    try:
        # Hold the writer in a first job so the next ones queue up, then release it.
        entered = threading.Event()
        blocker = store.submit(lambda s: (entered.set(), gate.wait(10)))
        assert entered.wait(10)
        futures = [
            store.submit(lambda s, i=i: s._wconn.execute("SELECT ?", (i,)).fetchone()[0])
            for i in range(50)
        ]
        gate.set()
        blocker.result(10)
        assert [f.result(10) for f in futures] == list(range(50))
        assert store.last_batch_size == 50
    finally:
        store.close()


def _batch_of(store: Store, size: int, job: Callable[[Store], Any] = lambda s: None) -> None:
    """Make the store's last batch `size` jobs: hold the writer, queue them, release it."""
    gate, entered = threading.Event(), threading.Event()
    blocker = store.submit(lambda s: (entered.set(), gate.wait(10)))
    assert entered.wait(10)
    jobs = [store.submit(job) for _ in range(size)]
    gate.set()
    blocker.result(10)
    for queued in jobs:
        queued.result(10)
    assert store.last_batch_size == size


def test_under_concurrent_load_the_writer_waits_for_a_full_batch(tmp_path: Path) -> None:
    # After a batch of 3, a job that finds the queue empty waits (up to the linger, here long
    # enough never to run out) for as many as last time: A, B and C share one commit although B
    # and C were submitted only once A had been taken from the queue.
    store = Store(str(tmp_path / "linger.db"), linger=30.0)
    batches: list[int] = []
    try:
        _batch_of(store, 3)
        store.on_batch = batches.append
        first = store.submit(lambda s: "A")
        wait_until(store._jobs.empty, what="the writer to take A")
        rest = [store.submit(lambda s, x=x: x) for x in "BC"]
        assert [f.result(10) for f in (first, *rest)] == ["A", "B", "C"]
        assert batches == [3]
    finally:
        store.close()


def test_a_lone_writer_or_a_search_never_waits_for_company(tmp_path: Path) -> None:
    # With a linger of 30 s, waiting would miss these 10 s deadlines.
    store = Store(str(tmp_path / "alone.db"), linger=30.0)
    try:
        _batch_of(store, 1)  # one job at a time, as from a lone client
        assert store.submit(lambda s: "alone").result(10) == "alone"
        # A batch of 4 that leaves rows for the search index; then a search's barrier comes
        # alone: it is not a write, and it does not wait for 3 more jobs.
        _batch_of(store, 4, lambda s: s.queue_index(1, [("Subject", "x")], ("x", "", "", "", "")))
        assert store._pending_index
        store.index_barrier(timeout=10)
        assert not store._pending_index
    finally:
        store.close()


def test_a_failing_job_does_not_sink_its_batch(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "jobs.db"))
    gate = threading.Event()
    try:
        entered = threading.Event()
        store.submit(lambda s: (entered.set(), gate.wait(10)))
        assert entered.wait(10)

        def bad(s: Store) -> None:
            s._wconn.execute("INSERT INTO tags (message, tag) VALUES (1, 'x')")
            raise ValueError("boom")

        good = store.submit(lambda s: s._wconn.execute("INSERT INTO tags VALUES (2, 'y')"))
        failed = store.submit(bad)
        gate.set()
        good.result(10)
        with pytest.raises(StoreError, match="boom"):
            failed.result(10)
        with store.reading() as conn:
            assert conn.execute("SELECT message, tag FROM tags").fetchall() == [(2, "y")]
    finally:
        store.close()


def test_submit_then_reports_each_outcome_once_and_a_failing_callback_spares_the_writer(
    tmp_path: Path,
) -> None:
    store = Store(str(tmp_path / "then.db"))
    outcomes: list[tuple[Any, str]] = []
    done = threading.Event()

    def note(value: Any, exc: BaseException | None) -> None:
        outcomes.append((value, type(exc).__name__ if exc else ""))

    def explode(value: Any, exc: BaseException | None) -> None:
        raise RuntimeError("a broken callback")

    def boom(s: Store) -> None:
        raise ValueError("boom")

    try:
        store.submit_then(lambda s: "ok", note)
        store.submit_then(boom, note)
        store.submit_then(lambda s: "ignored", explode)
        store.submit_then(lambda s: "after", lambda v, e: (note(v, e), done.set()))
        assert done.wait(10)
        assert outcomes == [("ok", ""), (None, "StoreError"), ("after", "")]
        assert store.write(lambda s: "still writing", timeout=10) == "still writing"
    finally:
        store.close()
    store.submit_then(lambda s: "late", note)  # closed: told at once, never run
    assert outcomes[-1] == (None, "StoreError")


def test_deliver_then_calls_back_with_the_id_once_committed(mailbox: Mailbox) -> None:
    got: list[tuple[str | None, BaseException | None]] = []
    done = threading.Event()
    mailbox.deliver_then(
        lambda uid, exc: (got.append((uid, exc)), done.set()),
        ENV,
        raw_message("called back"),
        transcript='[[0.0, "S", "220 ready"]]',
    )
    assert done.wait(10)
    ((uid, exc),) = got
    assert exc is None and uid
    stored = mailbox.get(uid)
    assert stored.summary["Subject"] == "called back"
    assert stored.transcript == [[0.0, "S", "220 ready"]]


def test_a_slow_subscriber_is_dropped_without_blocking_delivery() -> None:
    bus = events.Bus(queue_size=3)
    slow = bus.subscribe()
    fast = bus.subscribe()
    for i in range(10):
        bus.publish(events.Delete({"ID": str(i)}))
        fast.get(timeout=1)
    assert slow.dropped.is_set()
    assert bus.subscriber_count == 1
    assert not fast.dropped.is_set()


def test_sessions_are_bounded_to_the_history_size() -> None:
    with make_server(session_history=3) as mp:
        for _ in range(6):
            with smtplib.SMTP(*mp.smtp_address) as client:
                client.noop()
        wait_until(lambda: mp.smtp.sessions_total == 6, what="6 sessions")
        # Session records are written after each connection closes; wait for the sixth.
        wait_until(
            lambda: (
                len(mp.mailbox.store.sessions(0, 100)) == 3
                and mp.mailbox.store.write(lambda s: True)
            ),
            what="3 kept sessions",
        )
        assert all(s["Outcome"] == "no mail" for s in mp.mailbox.sessions())


def test_the_session_log_is_bounded_in_bytes_and_keeps_the_newest(monkeypatch) -> None:
    from mailpit_py.store import sessions as store_module
    from mailpit_py.store.records import SessionRecord

    mb = Mailbox(Config(database=":memory:"))
    try:

        def record(n: int, size: int) -> SessionRecord:
            return SessionRecord(
                f"s{n}", 0.0, 1.0, "p", "l", "h", False, "", "no mail", (), "x" * size
            )

        monkeypatch.setattr(store_module, "SESSION_LOG_BYTES", 1000)
        for n in range(10):
            mb.store.write(lambda s, n=n: s.insert_session(record(n, 300), keep=100))
        assert [r["uid"] for r in mb.store.sessions(0, 100)] == ["s9", "s8", "s7"]  # 900 bytes
        mb.store.write(lambda s: s.insert_session(record(10, 5000), keep=100))
        assert [r["uid"] for r in mb.store.sessions(0, 100)] == ["s10"]  # too big, yet newest
    finally:
        mb.close()


def test_the_session_log_counts_follow_pruning_and_emptying_the_mailbox(tmp_path: Path) -> None:
    from mailpit_py.store.records import SessionRecord

    def truth(mb: Mailbox) -> tuple[int, int]:
        with mb.store.reading() as conn:
            row = conn.execute("SELECT count(*), coalesce(sum(bytes), 0) FROM sessions").fetchone()
        return int(row[0]), int(row[1])

    def kept(mb: Mailbox) -> tuple[int, int]:
        with mb.store.reading() as conn:
            values = dict(conn.execute("SELECT name, value FROM counters").fetchall())
        return int(values["sessions"]), int(values["session_bytes"])

    path = str(tmp_path / "s.db")
    mb = Mailbox(Config(database=path))
    try:
        for n in range(12):
            rec = SessionRecord(f"s{n}", 0.0, 1.0, "p", "l", "h", False, "", "ok", (), "y" * n)
            mb.store.write(lambda s, rec=rec: s.insert_session(rec, keep=5))
        assert truth(mb) == kept(mb) == (5, 7 + 8 + 9 + 10 + 11)
        assert mb.session_count() == 5
        deliver(mb, "m")
        mb.delete_all()  # empties messages, not the session log
        assert truth(mb) == kept(mb) == (5, 45)
    finally:
        mb.close()
    mb = Mailbox(Config(database=path))
    try:
        assert truth(mb) == kept(mb) == (5, 45)
    finally:
        mb.close()


def _true_counts(mb: Mailbox) -> tuple[int, int]:
    with mb.store.reading() as conn:
        row = conn.execute("SELECT count(*), coalesce(sum(read = 0), 0) FROM messages").fetchone()
    return int(row[0]), int(row[1])


def test_kept_counts_follow_every_kind_of_write(tmp_path: Path) -> None:
    mb = Mailbox(Config(database=str(tmp_path / "c.db"), max_messages=6))
    try:
        ids = [deliver(mb, f"m{i}") for i in range(8)]  # two pruned on the way
        assert mb.counts() == _true_counts(mb) == (6, 6)
        mb.mark_read(ids[-3:])
        mb.mark_read(ids[-1:])  # already read: no double count
        assert mb.counts() == _true_counts(mb) == (6, 3)
        mb.mark_read(ids[-2:], read=False)
        assert mb.counts() == _true_counts(mb) == (6, 5)
        mb.delete([ids[-1], ids[-4]])
        assert mb.counts() == _true_counts(mb) == (4, 3)
        mb.delete_all()
        assert mb.counts() == _true_counts(mb) == (0, 0)
        deliver(mb, "after")  # the triggers are back after delete_all
        assert mb.counts() == _true_counts(mb) == (1, 1)
        assert [m["Subject"] for m in mb.search("after")[0]] == ["after"]  # FTS recreated
    finally:
        mb.close()


def test_upgrading_a_version_2_database_counts_what_it_holds(tmp_path: Path) -> None:
    db = str(tmp_path / "old.db")
    mb = Mailbox(Config(database=db, max_messages=0))
    ids = [deliver(mb, f"m{i}") for i in range(5)]
    mb.mark_read(ids[:2])
    mb.close()
    # Back to the version 2 schema: drop whatever a fresh version 2 database does not have.
    v2 = sqlite3.connect(":memory:")
    for script in MIGRATIONS[:2]:
        v2.executescript(script)
    v2_names = {r[0] for r in v2.execute("SELECT name FROM sqlite_master")}
    conn = sqlite3.connect(db)
    extra = conn.execute(
        "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'index', 'trigger') "
        "AND name NOT LIKE 'sqlite_%' ORDER BY type = 'table'"
    ).fetchall()
    for kind, name in extra:
        if name not in v2_names and not name.startswith("messages_fts_"):
            conn.execute(f"DROP {kind.upper()} IF EXISTS {name}")
    for table in ("sessions", "messages", "message_data"):  # columns added since
        v2_columns = {r[1] for r in v2.execute(f"PRAGMA table_info({table})")}
        for column in [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]:
            if column not in v2_columns:
                conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    conn.executescript(
        "CREATE INDEX IF NOT EXISTS headers_name ON headers (name, message); "
        "PRAGMA user_version = 2;"
    )
    conn.close()
    mb = Mailbox(Config(database=db, max_messages=0))
    try:
        assert mb.counts() == (5, 3)
        assert mb.search("header:Subject:m3")[1:] == (1, 1)
    finally:
        mb.close()


def test_deep_pages_and_scanning_searches_page_like_offset(mailbox: Mailbox) -> None:
    ids = [deliver(mailbox, f"n{i}") for i in range(30)]
    newest_first = ids[::-1]
    for start in (0, 1, 7, 29, 30, 45):
        assert [m["ID"] for m in mailbox.list_messages(start, 5)] == newest_first[start : start + 5]
    mailbox.mark_read(ids[:10])
    page, matched, unread = mailbox.search("header:Subject:n1", 2, 4)  # n1, n10..n19
    expected = [i for i, n in zip(ids, range(30), strict=True) if str(n).startswith("1")][::-1]
    assert (matched, unread) == (11, 10)
    assert [m["ID"] for m in page] == expected[2:6]
    page, matched, unread = mailbox.search("from:a@example.com subject:n2", 0, 3)
    assert matched == 11 and unread == 10 and len(page) == 3


# -- the search index, written just after each message's commit (store/writer.py _run_index) -----


def _index_rows(mb: Mailbox) -> tuple[int, int, int]:
    with mb.store.reading() as conn:
        return (
            conn.execute("SELECT count(*) FROM messages").fetchone()[0],
            conn.execute("SELECT count(*) FROM messages_fts").fetchone()[0],
            conn.execute("SELECT count(DISTINCT message) FROM headers").fetchone()[0],
        )


def test_every_committed_message_is_found_by_the_next_search(tmp_path: Path) -> None:
    mb = Mailbox(Config(database=str(tmp_path / "s.db")))
    try:
        # Concurrent deliveries, each searched for the moment its commit is confirmed: by
        # words (FTS) and by a header value (the headers table).
        futures = [
            mb.deliver(ENV, raw_message(f"needle{i}z subject", f"body w{i}z")) for i in range(40)
        ]
        for i, fut in enumerate(futures):
            uid = fut.result(timeout=10)
            assert [m["ID"] for m in mb.search(f"w{i}z")[0]] == [uid]
            assert [m["ID"] for m in mb.search(f'header:Subject:"needle{i}z "')[0]] == [uid]
        assert mb.mark_search("needle3z") == [futures[3].result()]
        assert mb.delete_search("needle5z") == [futures[5].result()]
        assert _index_rows(mb) == (39, 39, 39)
    finally:
        mb.close()


def test_index_rows_lost_in_a_crash_are_rebuilt_at_start(tmp_path: Path, monkeypatch) -> None:
    path = str(tmp_path / "crash.db")
    mb = Mailbox(Config(database=path))
    kept = deliver(mb, "indexed before", body="early words")
    mb.store.index_barrier()
    # From here the index rows never get written, as when the process is killed right after
    # the commits; a message deleted meanwhile must not come back into the index either.
    monkeypatch.setattr(Store, "_run_index", lambda self: None)
    lost = [deliver(mb, f"lost {i}", body=f"unindexed{i} words") for i in range(3)]
    mb.delete([lost[1]])
    mb.close()
    monkeypatch.undo()

    mb = Mailbox(Config(database=path))
    try:
        assert [m["ID"] for m in mb.search("unindexed0")[0]] == [lost[0]]
        assert [m["ID"] for m in mb.search("unindexed2")[0]] == [lost[2]]
        assert mb.search("unindexed1")[0] == []
        assert [m["ID"] for m in mb.search("early")[0]] == [kept]
        assert [m["ID"] for m in mb.search('header:Subject:"lost 2"')[0]] == [lost[2]]
        assert _index_rows(mb) == (3, 3, 3)
    finally:
        mb.close()


def test_a_message_deleted_before_its_index_is_written_leaves_no_index_rows(
    tmp_path: Path, monkeypatch
) -> None:
    mb = Mailbox(Config(database=str(tmp_path / "d.db")))
    try:
        with monkeypatch.context() as held:
            held.setattr(Store, "_run_index", lambda self: None)  # the index write waits
            uid = deliver(mb, "short lived", body="gone soon")
            mb.delete([uid])
        mb.store.index_barrier()
        assert _index_rows(mb) == (0, 0, 0)
        assert mb.search("gone")[0] == []
    finally:
        mb.close()


def test_index_rows_of_a_rolled_back_job_are_dropped(tmp_path: Path) -> None:
    mb = Mailbox(Config(database=str(tmp_path / "r.db")))
    gate = threading.Event()
    try:
        entered = threading.Event()
        mb.store.submit(lambda s: (entered.set(), gate.wait(10)))
        assert entered.wait(10)
        good = mb.deliver(ENV, raw_message("good one", "kept words"))
        rec = _record_for(mb, "doomed one", "doomed words")

        def doomed(s: Store) -> None:
            s.insert_message(rec)  # queues its index rows, then the job fails
            raise ValueError("boom")

        failed = mb.store.submit(doomed)
        gate.set()
        good_uid = good.result(timeout=10)
        with pytest.raises(StoreError):
            failed.result(10)
        # The batch was rolled back and re-run without the failed job: only the good
        # message's rows are in the index, under its own rowid.
        assert [m["ID"] for m in mb.search("kept")[0]] == [good_uid]
        assert mb.search("doomed")[0] == []
        assert _index_rows(mb) == (1, 1, 1)
    finally:
        gate.set()
        mb.close()


def _record_for(mb: Mailbox, subject: str, body: str):  # type: ignore[no-untyped-def]
    from mailpit_py.mailbox.record import build_record
    from mailpit_py.parse.message import parse_message

    raw = raw_message(subject, body)
    return build_record(
        "doomed0000000000000000",
        parse_message(raw, ENV),
        raw,
        created=time.time(),
        username="",
        session_uid="",
        transcript=(),
        envelope=ENV,
    )


def test_with_retention_the_session_log_turns_over_with_the_mailbox(tmp_path: Path) -> None:
    from mailpit_py.store.records import SessionRecord

    def session(name: str, ended: float) -> SessionRecord:
        return SessionRecord(name, ended - 1, ended, "p", "l", "h", False, "", "ok", (), "[]")

    mb = Mailbox(Config(database=str(tmp_path / "t.db"), max_messages=2))
    try:
        t0 = time.time()
        mb.store.write(lambda s: s.insert_session(session("before-all", t0 - 100), keep=100))
        deliver(mb, "first", received_at=t0 - 50)
        mb.store.write(lambda s: s.insert_session(session("between", t0 - 40), keep=100))
        deliver(mb, "second", received_at=t0 - 30)
        mb.store.write(lambda s: s.insert_session(session("after", t0 - 20), keep=100))
        assert [r["uid"] for r in mb.store.sessions(0, 10)] == ["after", "between", "before-all"]
        deliver(mb, "third", received_at=t0 - 10)  # "first" is pruned
        mb.store.write(lambda s: s.insert_session(session("newest", t0), keep=100))
        # Sessions that ended before the pruned message arrived go; later ones stay.
        assert [r["uid"] for r in mb.store.sessions(0, 10)] == ["newest", "after", "between"]
    finally:
        mb.close()


def test_the_statistics_aggregates_are_reused_only_while_nothing_changed_or_they_are_costly(
    monkeypatch,
) -> None:
    mb = Mailbox(Config(database=":memory:"))
    try:
        calls: list[int] = []
        real = mb.store.top_senders
        monkeypatch.setattr(
            mb.store, "top_senders", lambda n, box=None: calls.append(n) or real(n, box=box)
        )
        deliver(mb, "one")
        assert [s["Messages"] for s in mb.statistics()["TopSenders"]] == [1]
        mb.statistics()
        assert len(calls) == 1  # nothing came or went: reused
        deliver(mb, "two")
        assert [s["Messages"] for s in mb.statistics()["TopSenders"]] == [2]  # cheap: current
        assert len(calls) == 2
        # A scan that took long (a large mailbox) is reused for ten times its cost.
        every = mb._aggregates[None]  # (the figures of every mailbox)
        version, _, _, result = every._cache
        every._cache = (version, time.monotonic(), 60.0, result)
        deliver(mb, "three")
        assert [s["Messages"] for s in mb.statistics()["TopSenders"]] == [2]
        assert len(calls) == 2
    finally:
        mb.close()
