"""Mailboxes on PostgreSQL: counts the database keeps per mailbox through every kind of change,
an older database upgraded with its counts, instances sharing one database seeing the same
mailboxes, and the reads in one mailbox walking that mailbox's rows alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from mailpit_py.mailbox.record import build_record
from mailpit_py.models import Envelope
from mailpit_py.parse.message import parse_message
from mailpit_py.store.postgres.backend import PgStore
from mailpit_py.store.postgres.schema import MIGRATIONS, schema_version
from mailpit_py.store.records import MessageRecord, SessionRecord, StoreError
from mailpit_py.store.search import parse_query

ENV = Envelope("ann@example.com", ("bob@example.org",))


def record(box: str, subject: str, body: str = "Hello.") -> MessageRecord:
    raw = f"From: ann@example.com\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()
    rec = build_record(
        f"{box}-{subject}", parse_message(raw, ENV), raw, created=time.time(), username="",
        session_uid="", transcript=(), envelope=ENV,
    )  # fmt: skip
    return rec._replace(mailbox=box)


def put(store: PgStore, *recs: MessageRecord) -> None:
    """Insert these messages in one job (one transaction)."""
    store.write(lambda s: [s.insert_message(r) for r in recs])


def truth(url: str) -> dict[str, tuple[int, int]]:
    """Each mailbox's messages and unread messages, counted row by row."""
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT mailbox, count(*), count(*) FILTER (WHERE read = 0) FROM messages "
            "GROUP BY mailbox"
        ).fetchall()
    return {r[0]: (int(r[1]), int(r[2])) for r in found}


def refusal(method: Any, *args: Any) -> Exception | None:
    """What a mailbox change raised (a job's own exception reaches write() as StoreError)."""
    try:
        method(*args)
    except (KeyError, ValueError) as exc:
        return exc
    return None


def kept(store: PgStore) -> dict[str, tuple[int, int]]:
    """Each mailbox's kept counts, leaving out the empty ones (truth() cannot see them)."""
    return {name: (n, unread) for name, n, unread, _ in store.mailboxes() if n or unread}


@pytest.fixture
def store(pg_url: str) -> Iterator[PgStore]:
    s = PgStore(pg_url)
    try:
        yield s
    finally:
        s.close()


def test_each_mailboxs_counts_follow_every_kind_of_change(store: PgStore, pg_url: str) -> None:
    put(store, *(record("alpha", f"a{n}") for n in range(5)), record("beta", "b0"))
    put(store, record("beta", "b1"))
    put(store, record("default", "d0"))
    assert kept(store) == truth(pg_url) == {"alpha": (5, 5), "beta": (2, 2), "default": (1, 1)}
    assert store.counts("alpha") == (5, 5) and store.counts() == (8, 8)
    steps: list[Any] = [
        lambda s: s.set_read(None, True, "alpha"),
        lambda s: s.set_read(["alpha-a1", "beta-b0"], False),
        lambda s: s.set_read(["beta-b1"], True, "alpha"),  # another mailbox's: skipped
        lambda s: s.delete_messages(["alpha-a0", "beta-b0", "default-d0"]),
        lambda s: s.prune(1, None, "alpha"),  # (within the slack: nothing yet)
        lambda s: [s.insert_message(record("alpha", f"x{n}")) for n in range(20)],
        lambda s: s.prune(2, None, "alpha"),
        lambda s: s.delete_all("beta"),
    ]
    for step in steps:
        store.write(step)
        assert kept(store) == truth(pg_url)
    assert store.counts("alpha") == (2, 2) and store.counts("beta") == (0, 0)
    assert store.counts() == (2, 2)
    store.write(lambda s: s.rename_mailbox("alpha", "gamma"))
    assert kept(store) == truth(pg_url) == {"gamma": (2, 2)}
    assert [name for name, *_ in store.mailboxes()] == ["beta", "default", "gamma"]
    store.write(lambda s: s.delete_all())
    assert kept(store) == {} and store.counts("gamma") == (0, 0)
    assert [name for name, *_ in store.mailboxes()] == ["beta", "default", "gamma"]


def test_renaming_keeps_the_creation_time_and_moves_the_sessions(store: PgStore) -> None:
    assert store.write(lambda s: s.create_mailbox("alpha", 1000.0)) is True
    put(store, record("alpha", "a0"))
    session = SessionRecord(
        "s1", 1.0, 2.0, "peer", "local", "helo", False, "", "ok", ["alpha-a0"], "[]", "alpha"
    )
    store.write(lambda s: s.insert_session(session, 100))
    store.write(lambda s: s.rename_mailbox("alpha", "omega"))
    assert ("omega", 1, 1, 1000.0) in store.mailboxes()
    assert store.session_count("omega") == 1 and store.session_count("alpha") == 0
    assert store.box_of("alpha-a0") == "omega"
    assert store.write(lambda s: s.delete_mailbox("omega")) == ["alpha-a0"]
    assert store.session_count() == 0 and store.counts() == (0, 0)


def test_a_version_4_database_gets_its_mailbox_rows_with_counts(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for script in MIGRATIONS[:4]:
            conn.execute(script.encode())
        conn.execute("CREATE TABLE mailpit_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO mailpit_schema VALUES (4)")
        for n, read in enumerate((0, 1, 1)):
            conn.execute(
                "INSERT INTO messages (uid, created, read, size, message_id, subject, from_json, "
                "to_json, cc_json, bcc_json, reply_to_json, snippet, attachments) VALUES "
                "(%s, %s, %s, 10, 'm@x', 'old', '[]', '[]', '[]', '[]', '[]', '', 0)",
                (f"old{n}", 100.0 + n, read),
            )
        conn.execute(
            "INSERT INTO sessions (uid, started, ended, peer, local, helo, tls, username, "
            "outcome, messages, transcript) VALUES ('s0', 1, 2, '', '', '', 0, '', '', '[]', '')"
        )
    store = PgStore(pg_url)
    try:
        assert store.mailboxes() == [("default", 3, 1, 100.0)]
        assert store.sessions(box="default")[0]["mailbox"] == "default"
        put(store, record("default", "new"))
        assert store.counts("default") == (4, 2) == store.counts()
    finally:
        store.close()
    with psycopg.connect(pg_url) as conn:
        assert schema_version(conn) == len(MIGRATIONS) >= 5


def test_instances_on_one_database_see_each_others_mailboxes(pg_url: str) -> None:
    first, other = PgStore(pg_url), PgStore(pg_url)
    try:
        first.write(lambda s: s.create_mailbox("shared", 5.0))
        assert [n for n, *_ in other.mailboxes()] == ["default", "shared"]
        put(first, record("shared", "one"), record("shared", "two"))
        assert other.counts("shared") == (2, 2)
        other.write(lambda s: s.rename_mailbox("shared", "renamed"))
        assert [n for n, *_ in first.mailboxes()] == ["default", "renamed"]
        assert first.counts("renamed") == (2, 2) and first.counts("shared") == (0, 0)
        with pytest.raises(StoreError, match="exists already"):  # (a job's error, wrapped)
            first.write(lambda s: s.create_mailbox("x", 1.0) and s.rename_mailbox("x", "renamed"))
        assert "x" not in [n for n, *_ in other.mailboxes()]  # (that job was undone)
        assert sorted(first.write(lambda s: s.delete_mailbox("renamed"))) == [
            "shared-one",
            "shared-two",
        ]
        assert [n for n, *_ in other.mailboxes()] == ["default"]
        assert isinstance(other.write(lambda s: refusal(s.delete_mailbox, "renamed")), KeyError)
        assert isinstance(other.write(lambda s: refusal(s.delete_mailbox, "default")), ValueError)
        assert isinstance(
            other.write(lambda s: refusal(s.rename_mailbox, "default", "y")), ValueError
        )
    finally:
        other.close()
        first.close()


def test_instances_writing_one_mailbox_at_once_keep_its_counts(pg_url: str) -> None:
    """Two writers on one database, one delivering into a mailbox while the other renames it
    back and forth and marks it read: no count is lost and neither waits on the other for
    good (every writer takes the totals' row before any mailbox row)."""
    first, other = PgStore(pg_url), PgStore(pg_url)
    try:
        first.write(lambda s: s.create_mailbox("p", 1.0))
        done = threading.Event()

        def deliver() -> None:
            for n in range(40):
                box = "p" if n % 2 else "q"
                first.submit(lambda s, n=n, box=box: s.insert_message(record(box, f"m{n}")))
            first.write(lambda s: None)
            done.set()

        thread = threading.Thread(target=deliver)
        thread.start()
        names = ("p", "q")
        turn = 0
        while not done.is_set():
            old, new = names[turn % 2], names[(turn + 1) % 2]

            def swap(s: Any, old: str = old, new: str = new) -> None:
                if old in [n for n, *_ in s.mailboxes()] and new not in [
                    n for n, *_ in s.mailboxes()
                ]:
                    s.rename_mailbox(old, new)
                s.set_read(None, True, new)

            other.write(swap)
            turn += 1
        thread.join(30)
        assert sum(n for _, n, _, _ in first.mailboxes()) == 40
        assert kept(first) == truth(pg_url)
    finally:
        other.close()
        first.close()


def test_a_frequent_word_in_one_mailbox_is_paged_and_counted_there(store: PgStore) -> None:
    """A term in most of the newest messages is paged newest first with an early stop: in one
    mailbox, only that mailbox's rows are walked and counted."""
    put(store, *(record("alpha", f"a{n:02}", "sample text") for n in range(30)))
    put(store, *(record("beta", f"b{n:02}", "sample text") for n in range(40)))
    store.write(lambda s: s.set_read(["alpha-a00", "alpha-a01", "beta-b05"], True))
    terms = parse_query("sample")
    page, total, unread = store.search_page(terms, 0, 10, "alpha")
    assert (total, unread) == (30, 28)
    assert [r["uid"] for r in page] == [f"alpha-a{n:02}" for n in range(29, 19, -1)]
    page, total, unread = store.search_page(terms, 25, 10, "alpha")
    assert [r["uid"] for r in page] == [f"alpha-a{n:02}" for n in range(4, -1, -1)]
    page, total, unread = store.search_page(terms, 0, 100, "beta")
    assert (len(page), total, unread) == (40, 40, 39)
    assert {r["mailbox"] for r in page} == {"beta"}
    assert store.search_page(terms, 0, 10)[1:] == (70, 67)
    assert store.search_page(terms, 0, 10, "nobody")[1:] == (0, 0)


def explain(url: str, query: str, *params: Any) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")  # (small tables: the plan, not its cost)
        return "\n".join(r[0] for r in conn.execute(f"EXPLAIN {query}", params).fetchall())


def test_reads_in_one_mailbox_go_through_its_indexes(store: PgStore, pg_url: str) -> None:
    assert "messages_mailbox_id" in explain(
        pg_url, "SELECT id FROM messages WHERE mailbox = 'a' ORDER BY id DESC LIMIT 50"
    )
    assert "sessions_mailbox_id" in explain(
        pg_url, "SELECT id FROM sessions WHERE mailbox = 'a' ORDER BY id DESC LIMIT 50"
    )


def test_retention_in_one_mailbox_drops_that_mailboxs_older_sessions_alone(
    store: PgStore,
) -> None:
    for uid, box in (("s1", "alpha"), ("s2", "beta"), ("s3", "alpha")):
        rec = SessionRecord(uid, 1.0, 1.0, "p", "l", "h", False, "", "ok", [], "[]", box)
        store.write(lambda s, rec=rec: s.insert_session(rec, 100))
    put(store, *(record("alpha", f"a{n:02}") for n in range(30)))
    put(store, record("beta", "b0"))
    pruned = store.write(lambda s: s.prune(2, None, "alpha"))
    assert len(pruned) == 28 and all(uid.startswith("alpha-") for uid in pruned)
    assert [r["uid"] for r in store.sessions()] == ["s3", "s2"]  # (the newest always stays)
    assert store.counts("beta") == (1, 1) and store.counts("alpha") == (2, 2)


# Every kind of term, negated too: in a small mailbox each is a test of one message at a time
# (search_sql.build_where's `each`), over every mailbox a read of the indexes' matches.
QUERIES = (
    "invoice", "quarterly", "padding", "photo", "png", "invo", "quart", "INVOICE", "creme",
    "CRÈME", "jose", "invoice overdue", "meeting padding", "invoice-3.pdf", "ann@example.com",
    "-invoice", "padding -invoice", "ample", "привет", "ПРИВЕТ", "王伟", "界世", "🎉", "-🎉",
    "header:X-Campaign:spring", "header:X-Campaign", "-header:X-Campaign:spring",
    "from:ann", "from:SMITH", "from:иван", "from:ван", "to:dev", "cc:grace", "bcc:audit",
    "reply-to:support@help.test", "addressed:example.ru", "addressed:support",
    "-addressed:example.ru", "subject:report", "subject:eport", "subject:привет",
    "subject:世界", "subject:creme", "subject:brûlée", "-subject:report",
    "message-id:msg-17@mail.example.com", "tag:urgent", "tag:BILLING", "-tag:alpha",
    "is:tagged", "-is:tagged", "is:read", "is:unread", "has:attachment", "has:inline",
    "larger:1000", "smaller:1000",
)  # fmt: skip


def test_a_search_in_a_small_mailbox_finds_what_the_indexes_find_there(pg_url: str) -> None:
    from test_search import fill

    from mailpit_py.config.settings import Config
    from mailpit_py.mailbox.facade import Mailbox

    mb = Mailbox(Config(database=pg_url, max_messages=0))
    try:
        fill(mb, 120)
        store = mb.store
        store.write(lambda s: s.create_mailbox("alpha", 1.0))
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE messages SET mailbox = 'alpha' WHERE id % 3 = 0")
        in_alpha = {r["uid"] for r in store.list_summaries(0, 1000, "alpha")}
        assert len(in_alpha) == 40
        found_any = 0
        for query in QUERIES:
            terms = parse_query(query)
            everywhere = store.search_page(terms, 0, 1000)[0]
            expected = [r["uid"] for r in everywhere if r["uid"] in in_alpha]
            unread = sum(1 for r in everywhere if r["uid"] in in_alpha and not r["read"])
            page, total, unread_found = store.search_page(terms, 0, 1000, "alpha")
            assert [r["uid"] for r in page] == expected, query
            assert (total, unread_found) == (len(expected), unread), query
            uids = store.write(lambda s, terms=terms: s.uids_matching(terms, "alpha"))
            assert uids == expected, query
            found_any += bool(expected)
        assert found_any > len(QUERIES) * 3 // 4
        # The writer's plans are the defaults again after a search in a small mailbox (the
        # batch's transaction goes on with other jobs).
        after = store.write(
            lambda s: (
                s.uids_matching(parse_query("invoice"), "alpha"),
                s._wconn.execute("SHOW enable_hashjoin").fetchone()[0],
            )[1]
        )
        assert after == "on"
    finally:
        mb.close()


def test_a_search_in_a_mailbox_is_limited_to_it_whichever_way_it_goes(
    store: PgStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One message at a time (a small mailbox), the indexes' matches limited to the mailbox (a
    large one), or every message (a mailbox that holds them all): the same answers."""
    from mailpit_py.store.postgres import base

    monkeypatch.setattr(base, "EACH_MAX", 5)
    put(store, *(record("default", f"d{n}", "sample text") for n in range(8)))
    terms = parse_query("sample")
    subject = parse_query("subject:d")
    expected = [f"default-d{n}" for n in range(7, -1, -1)]
    for query in (terms, subject):
        # the default mailbox holds every message: searched as every mailbox
        assert [r["uid"] for r in store.search_page(query, 0, 50, "default")[0]] == expected
    put(store, *(record("beta", f"b{n}", "sample text") for n in range(3)))
    for query in (terms, subject):
        # past EACH_MAX and not every message: the indexes' matches, limited to the mailbox
        page, total, unread = store.search_page(query, 0, 50, "default")
        assert [r["uid"] for r in page] == expected and (total, unread) == (8, 8)
        # a small mailbox: one message at a time
        page, total, unread = store.search_page(query, 0, 50, "beta")
        assert {r["uid"] for r in page} == {"beta-b0", "beta-b1", "beta-b2"} or query is subject
    assert store.search_page(subject, 0, 50, "beta")[1] == 0
