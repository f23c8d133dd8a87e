"""The store's promises, held by both backends: each test runs on SQLite and on a real
PostgreSQL (the `database` fixture), through the store itself or the mailbox above it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.store.interface import StoreBackend
from mailpit_py.store.open import open_store
from mailpit_py.store.records import MessageRecord, SessionRecord, StoreError, TagError, Ticket


def raw_message(
    subject: str, body: str = "Hello.", *, headers: str = "", sender: str = ""
) -> bytes:
    sender = sender or "Ann Example <ann@example.com>"
    return (
        f"From: {sender}\r\nTo: Bob <bob@example.org>\r\nCc: carol@corp.example\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{abs(hash(subject))}@example.com>\r\n{headers}"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def deliver(mb: Mailbox, raw: bytes, **kw: Any) -> str:
    return mb.deliver(Envelope("ann@example.com", ("bob@example.org",)), raw, **kw).result(30)


@pytest.fixture
def mailbox(database: str) -> Iterator[Mailbox]:
    mb = Mailbox(Config(database=database, max_messages=0))
    try:
        yield mb
    finally:
        mb.close()


ATTACHED = (
    b"From: Dan <dan@example.net>\r\nTo: eve@example.org\r\nSubject: with a file\r\n"
    b"Message-ID: <att@example.net>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
    b"Content-Type: text/plain\r\n\r\nSee the invoice.\r\n--b\r\n"
    b'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="invoice-42.pdf"'
    b"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n"
)


@pytest.fixture
def corpus(mailbox: Mailbox) -> dict[str, str]:
    """A few messages covering every kind of search term."""
    ids = {
        "plain": deliver(
            mailbox,
            raw_message(
                "Quarterly report",
                "The numbers 123456 are in.",
                headers="X-Campaign: spring-sale\r\n",
            ),
        ),
        "accents": deliver(mailbox, raw_message("Crème brûlée recipe", "Dessert tonight.")),
        "cjk": deliver(mailbox, raw_message("会議の予定", "明日の会議は十時からです。")),
        "emoji": deliver(mailbox, raw_message("Party 🎉", "See you there.")),
        "attached": deliver(mailbox, ATTACHED),
        "other": deliver(
            mailbox,
            raw_message("Password reset", "Click the link.", sender="Zed <zed@sample.org>"),
        ),
    }
    mailbox.set_tags([ids["plain"], ids["accents"]], ["Work"])
    mailbox.mark_read([ids["other"]])
    return ids


SEARCHES = [
    ("quarterly", {"plain"}),
    ("QUARTER", {"plain"}),  # a word's prefix, any case
    ("arterly", {"plain"}),  # a substring, as Mailpit's LIKE
    ("3456", {"plain"}),  # digits inside a number
    ("creme", {"accents"}),  # diacritics folded
    ("brûlée", {"accents"}),
    ('"numbers 123456"', {"plain"}),  # a phrase
    ('"123456 numbers"', set()),
    ("会議", {"cjk"}),
    ("🎉", {"emoji"}),
    ("-quarterly", {"accents", "cjk", "emoji", "attached", "other"}),
    ("from:zed", {"other"}),
    ("from:sample.org", {"other"}),
    ('from:"Ann Example"', {"plain", "accents", "cjk", "emoji"}),
    ("to:eve", {"attached"}),
    ("cc:corp.example", {"plain", "accents", "cjk", "emoji", "other"}),
    ("addressed:carol", {"plain", "accents", "cjk", "emoji", "other"}),
    ("subject:report", {"plain"}),
    ("subject:creme", {"accents"}),
    ("message-id:att@example", {"attached"}),
    ("header:X-Campaign", {"plain"}),
    ("header:x-campaign:SPRING", {"plain"}),
    ("header:X-Campaign:autumn", set()),
    ("tag:work", {"plain", "accents"}),
    ("is:tagged", {"plain", "accents"}),
    ("is:read", {"other"}),
    ("is:unread tag:Work", {"plain", "accents"}),
    ("has:attachment", {"attached"}),
    ("invoice-42", {"attached"}),  # attachment names
    ("larger:1", {"plain", "accents", "cjk", "emoji", "attached", "other"}),
    ("smaller:10", set()),
    ("after:2000-01-01 before:2999-01-01 report", {"plain"}),
    ("before:2000-01-01", set()),
    ("nothing-like-this", set()),
]


@pytest.mark.parametrize(("query", "expected"), SEARCHES, ids=[q for q, _ in SEARCHES])
def test_searches_mean_the_same_on_every_backend(
    mailbox: Mailbox, corpus: dict[str, str], query: str, expected: set[str]
) -> None:
    found, total, unread = mailbox.search(query, limit=100)
    names = {name for name, uid in corpus.items() if uid in {m["ID"] for m in found}}
    assert names == expected
    assert total == len(expected)
    assert unread == len(expected - {"other"})


def test_search_pages_are_newest_first_with_counts(mailbox: Mailbox) -> None:
    ids = [deliver(mailbox, raw_message(f"page {n}", "pager text")) for n in range(7)]
    page, total, unread = mailbox.search("pager", start=2, limit=3)
    assert [m["ID"] for m in page] == ids[::-1][2:5]
    assert (total, unread) == (7, 7)
    assert [m["ID"] for m in mailbox.list_messages(start=5, limit=10)] == ids[::-1][5:]


def test_messages_round_trip_byte_exact_with_parts_and_streams(mailbox: Mailbox) -> None:
    hostile = raw_message("nul \x00 and bytes", "body") + b"\xff\xfe raw 8-bit\r\n"
    uid = deliver(mailbox, hostile)
    assert mailbox.store.raw(uid) == hostile
    big = b"X" * (3 << 20)  # several read chunks
    uid_big = deliver(mailbox, raw_message("big one") + big + b"\r\n")
    found = mailbox.store.raw_stream(uid_big)
    assert found is not None
    size, chunks = found
    pieces = list(chunks)
    assert len(pieces) > 1 and size == sum(map(len, pieces))
    assert b"".join(pieces) == mailbox.store.raw(uid_big)
    uid_att = deliver(mailbox, ATTACHED)
    detail = mailbox.get(uid_att)
    part_id = detail.detail["Attachments"][0]["PartID"]
    streamed = mailbox.store.part_stream(uid_att, part_id)
    assert streamed is not None
    assert streamed[0] == "application/pdf"
    assert b"".join(streamed[2]) == b"%PDF-1.4\n" == mailbox.store.part(uid_att, part_id)[1]  # type: ignore[index]
    assert mailbox.store.raw("no-such-id") is None and mailbox.store.raw_stream("x") is None


def test_an_empty_message_streams_as_empty(mailbox: Mailbox) -> None:
    # DATA ended right after it began: zero octets stored, and SQLite's substr() of an empty
    # blob is NULL, not an empty blob (GET .../raw answered 500).
    uid = deliver(mailbox, b"")
    assert mailbox.store.raw(uid) == b""
    found = mailbox.store.raw_stream(uid)
    assert found is not None
    size, chunks = found
    assert (size, b"".join(chunks)) == (0, b"")


def test_counts_tags_read_state_and_deletes(mailbox: Mailbox) -> None:
    a, b, c = (deliver(mailbox, raw_message(f"count {n}")) for n in range(3))
    assert mailbox.counts() == (3, 3)
    assert mailbox.mark_read([a, b]) == [a, b] or set(mailbox.mark_read([a])) == set()
    assert mailbox.counts() == (3, 1)
    mailbox.set_tags([a, c], ["beta", "Alpha"])
    assert mailbox.tag_counts() == {"Alpha": 2, "beta": 2}
    assert mailbox.get(a).summary["Tags"] == ["Alpha", "beta"]
    with pytest.raises(TagError, match="already exists"):
        mailbox.rename_tag("beta", "alpha")
    assert set(mailbox.rename_tag("beta", "Gamma")) == {a, c}
    assert mailbox.tag_counts() == {"Alpha": 2, "Gamma": 2}
    mailbox.delete_tag("Alpha")
    assert mailbox.tag_counts() == {"Gamma": 2}
    mailbox.delete([b])
    assert mailbox.counts() == (2, 1)
    assert mailbox.delete_search("count") and mailbox.counts() == (0, 0)
    deliver(mailbox, raw_message("after emptying"))
    mailbox.delete_all()
    assert mailbox.counts() == (0, 0) and mailbox.tag_counts() == {}
    assert mailbox.store.next_id() > 4  # ids are never handed out twice


def test_retention_by_count_and_age_and_the_session_log(database: str) -> None:
    mb = Mailbox(Config(database=database, max_messages=5))
    try:
        ids = [deliver(mb, raw_message(f"kept {n}")) for n in range(12)]
        mb.prune()
        kept = {m["ID"] for m in mb.list_messages(limit=100)}
        assert kept == set(ids[-5:])
        assert mb.counts()[0] == 5
        pruned = mb.store.write(lambda s: s.prune(0, time.time() + 1))
        assert set(pruned) == kept and mb.counts() == (0, 0)
        for n in range(4):
            now = time.time()
            mb.store.write(
                lambda s, n=n, now=now: s.insert_session(
                    SessionRecord(
                        f"s{n}",
                        now,
                        now,
                        "127.0.0.1:1",
                        "x",
                        "helo",
                        n % 2 == 0,
                        "",
                        "ok",
                        [f"m{n}"],
                        json.dumps([[0, "<", "EHLO x"]]),
                    ),
                    3,
                )
            )
        assert mb.session_count() == 3
        assert [s["ID"] for s in mb.sessions()] == ["s3", "s2", "s1"]
        row = mb.store.session("s2")
        assert row is not None and row["tls"] and json.loads(row["messages"]) == ["m2"]
    finally:
        mb.close()


def test_group_commit_and_a_failing_job_fails_alone(database: str) -> None:
    store = open_store(database)
    gate = threading.Event()
    try:
        store.submit(lambda s: gate.wait(10))  # holds the writer while the rest queue up
        futures: list[Future[Any]] = [
            store.submit(lambda s, n=n: s.save_checks(f"nope{n}", 1.0, "{}")) for n in range(5)
        ]

        def bad(s: StoreBackend) -> None:
            s.outbox_add("u", "relay", "a@x", ["b@y"], b"raw", 1.0)
            raise ValueError("this job fails")

        failing = store.submit(bad)
        good = store.submit(lambda s: s.outbox_add("u2", "relay", "a@x", ["b@y"], b"ok", 1.0))
        sizes: list[int] = []
        store.on_batch = sizes.append
        gate.set()
        assert [f.result(10) for f in futures] == [False] * 5
        with pytest.raises(StoreError, match="this job fails"):
            failing.result(10)
        assert good.result(10) > 0
        assert max(sizes) >= 7  # the seven queued jobs shared one transaction
        assert [r["message_uid"] for r in store.outbox_pending()] == ["u2"]  # "u" undone
    finally:
        gate.set()
        store.close()


def test_a_cancelled_ticket_never_runs(database: str) -> None:
    store = open_store(database)
    gate = threading.Event()
    ran: list[str] = []
    told: list[Any] = []
    try:
        store.submit(lambda s: gate.wait(10))
        ticket = Ticket()
        store.submit_then(lambda s: ran.append("x"), lambda v, e: told.append((v, e)), ticket)
        assert ticket.cancel()
        gate.set()
        store.write(lambda s: None)
        assert ran == [] and told == []
    finally:
        gate.set()
        store.close()


def test_outbox_survives_its_message_and_records_attempts(mailbox: Mailbox) -> None:
    uid = deliver(mailbox, raw_message("relay me"))
    item = mailbox.store.write(
        lambda s: s.outbox_add(uid, "relay", "ann@example.com", ["x@y.org"], b"copy", 10.0)
    )
    assert mailbox.store.outbox_next_time() == 10.0
    assert mailbox.store.outbox_due(9.0) == []
    due = mailbox.store.outbox_due(11.0)
    assert [(r["id"], r["next_attempt"]) for r in due] == [(item, 10.0)]
    mailbox.delete([uid])
    assert mailbox.store.outbox_item(item)["raw"] == b"copy"  # type: ignore[index]
    attempt = {
        "message_uid": uid,
        "at": 12.0,
        "kind": "relay",
        "recipients": ["x@y.org"],
        "server": "mx:25",
        "reply": "451 later",
        "outcome": "retry",
    }
    mailbox.store.write(
        lambda s: s.outbox_record(
            item, attempt, state="pending", recipients=["x@y.org"], next_attempt=20.0
        )
    )
    pending = mailbox.store.outbox_pending()
    assert [(r["id"], r["attempts"], r["last_error"]) for r in pending] == [(item, 1, "451 later")]
    assert mailbox.store.outbox_backlog() == (1, 10.0)
    mailbox.store.write(
        lambda s: s.outbox_record(
            item,
            dict(attempt, reply="250 ok", outcome="sent"),
            state="sent",
            recipients=[],
            next_attempt=0.0,
        )
    )
    items, attempts = mailbox.store.relay_history(uid)
    assert [i["state"] for i in items] == ["sent"] and len(attempts) == 2
    assert mailbox.store.outbox_item(item)["raw"] == b""  # type: ignore[index]
    assert mailbox.store.outbox_next_time() is None


def test_checks_imap_flags_meta_and_statistics(mailbox: Mailbox) -> None:
    a = deliver(mailbox, raw_message("stats one"))
    b = deliver(mailbox, raw_message("stats two", sender="zed@sample.org"))
    assert mailbox.store.checks(a) is None
    assert mailbox.store.write(lambda s: s.save_checks(a, 5.0, '{"ok": 1}'))
    assert mailbox.store.write(lambda s: s.save_checks(a, 6.0, '{"ok": 2}'))
    assert mailbox.store.checks(a) == '{"ok": 2}'
    ids = {e.uid: e.imap_uid for e in mailbox.index()}
    mailbox.save_imap_flags({ids[a]: {"\\Flagged", "$Label"}, 999999: {"\\Answered"}})
    assert mailbox.imap_flags() == {ids[a]: {"\\Flagged", "$Label"}}
    mailbox.delete([a])
    assert mailbox.imap_flags() == {} and mailbox.store.checks(a) is None
    validity = mailbox.store.meta("imap_uidvalidity")
    assert validity is not None and int(validity) > 0
    assert mailbox.store.size_histogram([100, 10_000]) == [0, 1, 0]
    assert mailbox.store.top_senders() == [("zed@sample.org", 1)]
    assert mailbox.store.top_recipient_domains() == [("corp.example", 1), ("example.org", 1)]
    assert mailbox.store.latest_uid() == b
    assert mailbox.store.size_bytes() > 0
    assert mailbox.health() == ""


def test_data_and_facts_survive_reopening(database: str) -> None:
    mb = Mailbox(Config(database=database))
    uid = deliver(mb, raw_message("persistent", "kept across restarts"))
    mb.mark_read([uid])
    validity = mb.store.meta("imap_uidvalidity")
    mb.close()
    mb = Mailbox(Config(database=database))
    try:
        assert mb.counts() == (1, 0)
        assert mb.search("restarts")[1] == 1
        assert mb.store.meta("imap_uidvalidity") == validity
    finally:
        mb.close()


def test_a_closed_store_refuses_reads_and_writes(database: str) -> None:
    store = open_store(database)
    store.close()
    store.close()  # twice is harmless
    with pytest.raises(StoreError):
        store.counts()
    with pytest.raises(StoreError):
        store.submit(lambda s: None).result(5)
    assert store.health() == "the store is closed"


def test_a_refused_message_is_kept_marked_and_found_by_is_refused(mailbox: Mailbox) -> None:
    accepted = deliver(mailbox, raw_message("accepted one"))
    done: Future[str] = Future()
    mailbox.deliver_then(
        lambda uid, exc: done.set_exception(exc) if exc else done.set_result(str(uid)),
        Envelope("ann@example.com", ("bob@example.org",)),
        raw_message("refused one"),
        refused={"Reply": "550 5.7.1 refused", "Rule": "test", "Stage": "DATA"},
        origin={"Listener": "strict"},
    )
    refused = done.result(30)
    found, total, _ = mailbox.search("is:refused")
    assert [m["ID"] for m in found] == [refused] and total == 1
    assert mailbox.search("-is:refused")[0][0]["ID"] == accepted
    assert mailbox.get(refused).summary["Refused"] is True


def test_ignore_duplicate_ids_keeps_the_first_copy(database: str) -> None:
    mb = Mailbox(Config(database=database, ignore_duplicate_ids=True))
    try:
        first = deliver(mb, raw_message("twice", "one"))
        again = deliver(mb, raw_message("twice", "two"))  # the same Message-ID
        assert again == first and mb.counts() == (1, 1)
    finally:
        mb.close()


# -- mailboxes: one project's inbox each, in one store ---------------------------------------


def box_record(
    box: str, subject: str, *, sender: str = "", headers: str = "", body: str = "Hi."
) -> MessageRecord:
    """A message's record for mailbox `box`, built as delivery builds it."""
    from mailpit_py.mailbox.record import build_record
    from mailpit_py.parse.message import parse_message

    raw = raw_message(subject, body, headers=headers, sender=sender)
    envelope = Envelope("ann@example.com", ("bob@example.org",))
    rec = build_record(
        f"{box}-{abs(hash(subject))}",
        parse_message(raw, envelope),
        raw,
        created=time.time(),
        username="",
        session_uid="",
        transcript=[],
        envelope=envelope,
    )
    return rec._replace(mailbox=box)


@pytest.fixture
def store(database: str) -> Iterator[StoreBackend]:
    s = open_store(database)
    try:
        yield s
    finally:
        s.close()


def put(store: StoreBackend, box: str, subject: str, **kw: Any) -> str:
    rec = box_record(box, subject, **kw)
    store.write(lambda s: s.insert_message(rec))
    return rec.uid


def attempt(store: StoreBackend, fn: Callable[[StoreBackend], Any]) -> Any:
    """fn's result or the exception it raised, caught in the job (the writer would turn it
    into a StoreError): callers catch a refusal inside their job the same way."""

    def job(s: StoreBackend) -> Any:
        try:
            return fn(s)
        except (KeyError, ValueError) as exc:
            return exc

    return store.write(job)


def session_record(uid: str, box: str, ended: float | None = None) -> SessionRecord:
    now = time.time() if ended is None else ended
    return SessionRecord(
        uid, now, now, "127.0.0.1:1", "x", "helo", False, "", "ok", [], "[]", mailbox=box
    )


def test_each_mailbox_keeps_its_own_counts_and_default_always_exists(
    store: StoreBackend,
) -> None:
    ((name, total, unread, created),) = store.mailboxes()
    assert (name, total, unread) == ("default", 0, 0) and created > 0
    alpha = [put(store, "alpha", f"alpha {n}") for n in range(3)]
    put(store, "default", "plain one")
    put(store, "default", "plain two")
    # The first message of a mailbox made its row.
    assert [row[:3] for row in store.mailboxes()] == [("alpha", 3, 3), ("default", 2, 2)]
    assert store.counts("alpha") == (3, 3)
    assert store.counts("default") == (2, 2)
    assert store.counts() == (5, 5)
    assert store.counts("nowhere") == (0, 0)
    store.write(lambda s: s.set_read(alpha[:2], True))
    assert store.counts("alpha") == (3, 1) and store.counts("default") == (2, 2)
    assert store.counts() == (5, 3)
    store.write(lambda s: s.delete_messages(alpha[:1]))
    assert store.counts("alpha") == (2, 1) and store.counts() == (4, 3)
    assert store.write(lambda s: s.create_mailbox("beta", 1234.5)) is True
    assert store.write(lambda s: s.create_mailbox("beta", 9999.0)) is False
    assert store.mailboxes() == [
        ("alpha", 2, 1, store.mailboxes()[0][3]),
        ("beta", 0, 0, 1234.5),
        ("default", 2, 2, store.mailboxes()[2][3]),
    ]
    # Emptying everything keeps the mailboxes, emptied.
    assert store.write(lambda s: s.delete_all()) == 4
    assert [row[:3] for row in store.mailboxes()] == [
        ("alpha", 0, 0),
        ("beta", 0, 0),
        ("default", 0, 0),
    ]
    put(store, "alpha", "after the emptying")
    assert store.counts("alpha") == (1, 1) and store.counts() == (1, 1)


def test_each_read_sees_its_own_mailbox_alone(store: StoreBackend) -> None:
    from mailpit_py.store.search import parse_query

    a1 = put(store, "alpha", "Invoice 1001 for alpha", headers="X-Campaign: spring\r\n")
    a2 = put(store, "alpha", "Status of alpha", sender="Zed <zed@sample.org>")
    d1 = put(store, "default", "Invoice 1002 for default", headers="X-Campaign: spring\r\n")
    d2 = put(store, "default", "Status of default", sender="Zed <zed@sample.org>")
    store.write(lambda s: s.set_tags([a1, d1], ["Work"]))
    store.write(lambda s: s.set_read([a2], True))
    store.index_barrier()
    assert store.box_of(a1) == "alpha" and store.box_of(d1) == "default"
    assert store.box_of("no-such-uid") is None
    assert [r["uid"] for r in store.list_summaries(box="alpha")] == [a2, a1]
    assert [r["uid"] for r in store.list_summaries(1, 10, box="default")] == [d1]
    assert [r["uid"] for r in store.list_summaries()] == [d2, d1, a2, a1]
    assert [r["mailbox"] for r in store.list_summaries()] == ["default"] * 2 + ["alpha"] * 2
    summary = store.summary(a1)
    assert summary is not None and summary["mailbox"] == "alpha"

    def found(query: str, box: str | None) -> tuple[list[str], int, int]:
        rows, matched, unread = store.search_page(parse_query(query), 0, 50, box=box)
        return [r["uid"] for r in rows], matched, unread

    # Each kind of search: words, a substring, a header value, an address, a tag, a flag.
    assert found("invoice", "alpha") == ([a1], 1, 1)
    assert found("invoice", None) == ([d1, a1], 2, 2)
    assert found("nvoic", "default") == ([d1], 1, 1)
    assert found("header:X-Campaign:spring", "alpha") == ([a1], 1, 1)
    assert found("from:zed", "alpha") == ([a2], 1, 0)
    assert found("tag:Work", "default") == ([d1], 1, 1)
    assert found("is:read", "default") == ([], 0, 0)
    assert found("is:read", "alpha") == ([a2], 1, 0)
    assert found("status", "nowhere") == ([], 0, 0)
    assert found("status", "default")[0] == [d2]
    assert store.latest_uid("alpha") == a2 and store.latest_uid("default") == d2
    assert store.latest_uid() == d2 and store.latest_uid("nowhere") is None
    assert store.tag_counts("alpha") == {"Work": 1} and store.tag_counts() == {"Work": 2}
    assert store.tag_counts("nowhere") == {}
    assert [e[1] for e in store.index(box="alpha")] == [a1, a2]
    assert [e[1] for e in store.index("Work", box="default")] == [d1]
    assert [e[1] for e in store.index("Work")] == [a1, d1]
    assert sum(store.size_histogram([100_000], box="alpha")) == 2
    assert sum(store.size_histogram([100_000], box="nowhere")) == 0
    assert sum(store.size_histogram([100_000])) == 4
    assert store.top_senders(box="alpha") == [("ann@example.com", 1), ("zed@sample.org", 1)]
    assert store.top_senders(box="nowhere") == []
    assert store.top_recipient_domains(box="alpha") == [("corp.example", 2), ("example.org", 2)]
    assert store.top_recipient_domains() == [("corp.example", 4), ("example.org", 4)]
    assert store.top_recipient_domains(box="nowhere") == []


def test_each_write_named_for_a_mailbox_skips_the_others(store: StoreBackend) -> None:
    from mailpit_py.store.search import parse_query

    a1 = put(store, "alpha", "Report one")
    a2 = put(store, "alpha", "Report two")
    d1 = put(store, "default", "Report three")
    rec = box_record("default", "Report three")  # the same Message-ID as d1
    assert store.write(lambda s: s.stored_message_id(rec.message_id, box="default")) == d1
    assert store.write(lambda s: s.stored_message_id(rec.message_id, box="alpha")) is None
    assert store.write(lambda s: s.stored_message_id(rec.message_id)) == d1
    # By uid: another mailbox's uid is as a uid that does not exist.
    assert store.write(lambda s: s.set_read([a1, d1], True, box="alpha")) == [a1]
    assert store.counts("default") == (1, 1)
    assert sorted(store.write(lambda s: s.set_read(None, True, box="default"))) == [d1]
    assert store.counts("alpha") == (2, 1) and store.counts("default") == (1, 0)
    assert store.write(lambda s: s.set_read(None, False, box="alpha")) == [a1]
    assert store.write(lambda s: s.set_tags([a1, d1], ["x"], box="default")) == [(d1, ["x"])]
    store.write(lambda s: s.set_tags([a1, a2], ["x"]))
    renamed = store.write(lambda s: s.rename_tag("x", "y", box="alpha"))
    assert sorted(renamed) == sorted([(a1, ["y"]), (a2, ["y"])])
    assert store.tag_counts("default") == {"x": 1} and store.tag_counts("alpha") == {"y": 2}
    refused = attempt(store, lambda s: s.rename_tag("x", "z", box="alpha"))
    assert isinstance(refused, TagError) and "not found" in str(refused)
    removed = store.write(lambda s: s.rename_tag("y", "", box="alpha"))
    assert sorted(removed) == sorted([(a1, []), (a2, [])])
    store.index_barrier()
    report = parse_query("report")
    assert store.write(lambda s: s.uids_matching(report, box="alpha")) == [a2, a1]
    assert store.write(lambda s: s.uids_matching(report)) == [d1, a2, a1]
    assert store.write(lambda s: s.delete_messages([a1, d1], box="default")) == [d1]
    assert store.box_of(a1) == "alpha" and store.box_of(d1) is None
    d2 = put(store, "default", "Report four")
    assert store.write(lambda s: s.delete_all(box="alpha")) == 2
    assert store.counts("alpha") == (0, 0) and store.counts() == (1, 1)
    assert [r["uid"] for r in store.list_summaries()] == [d2]
    store.index_barrier()
    assert store.search_page(report, box=None)[1] == 1


def test_retention_counts_and_deletes_in_its_own_mailbox(store: StoreBackend) -> None:
    alpha = [put(store, "alpha", f"alpha kept {n}") for n in range(12)]
    others = [put(store, "default", f"default kept {n}") for n in range(3)]
    pruned = store.write(lambda s: s.prune(5, None, box="alpha"))
    assert sorted(pruned) == sorted(alpha[:-5])
    assert store.counts("alpha") == (5, 5) and store.counts("default") == (3, 3)
    # Under its own count nothing goes, whatever the others hold.
    assert store.write(lambda s: s.prune(5, None, box="default")) == []
    cutoff = time.time() + 1
    assert sorted(store.write(lambda s: s.prune(0, cutoff, box="default"))) == sorted(others)
    assert store.counts("alpha") == (5, 5) and store.counts() == (5, 5)


def test_sessions_are_logged_and_read_per_mailbox(store: StoreBackend) -> None:
    store.write(lambda s: s.insert_session(session_record("s1", "alpha"), 100))
    store.write(lambda s: s.insert_session(session_record("s2", "default"), 100))
    store.write(lambda s: s.insert_session(session_record("s3", "alpha"), 100))
    assert store.session_count() == 3
    assert store.session_count("alpha") == 2 and store.session_count("nowhere") == 0
    assert [r["uid"] for r in store.sessions(box="alpha")] == ["s3", "s1"]
    assert [r["uid"] for r in store.sessions(1, 5, box="alpha")] == ["s1"]
    assert [r["uid"] for r in store.sessions()] == ["s3", "s2", "s1"]
    row = store.session("s2")
    assert row is not None and row["mailbox"] == "default"


def test_a_mailbox_is_renamed_and_deleted_with_its_messages_and_sessions(
    store: StoreBackend,
) -> None:
    a1 = put(store, "alpha", "Moving day")
    d1 = put(store, "default", "Staying put")
    store.write(lambda s: s.set_read([a1], True))
    store.write(lambda s: s.insert_session(session_record("s1", "alpha"), 100))
    store.write(lambda s: s.insert_session(session_record("s2", "default"), 100))
    store.write(lambda s: s.rename_mailbox("alpha", "omega"))
    assert [row[:3] for row in store.mailboxes()] == [("default", 1, 1), ("omega", 1, 0)]
    assert store.box_of(a1) == "omega" and store.counts("alpha") == (0, 0)
    assert [r["uid"] for r in store.sessions(box="omega")] == ["s1"]

    def rename(old: str, new: str) -> Any:
        return attempt(store, lambda s: s.rename_mailbox(old, new))

    def delete(name: str) -> Any:
        return attempt(store, lambda s: s.delete_mailbox(name))

    assert isinstance(rename("nowhere", "x"), KeyError)
    assert isinstance(rename("omega", "default"), ValueError)
    assert isinstance(rename("default", "x"), ValueError)
    store.write(lambda s: s.create_mailbox("taken", 1.0))
    assert isinstance(rename("omega", "taken"), ValueError)
    # Still as it was after each refusal.
    assert store.box_of(a1) == "omega"
    assert delete("omega") == [a1]
    assert store.summary(a1) is None and store.box_of(d1) == "default"
    assert [r["uid"] for r in store.sessions()] == ["s2"]
    assert [row[0] for row in store.mailboxes()] == ["default", "taken"]
    assert store.counts() == (1, 1)
    assert isinstance(delete("default"), ValueError)
    assert isinstance(delete("omega"), KeyError)
    assert delete("taken") == []
    assert [row[0] for row in store.mailboxes()] == ["default"]


def test_searches_in_a_small_mailbox_and_in_one_holding_every_message(
    store: StoreBackend,
) -> None:
    from mailpit_py.store.search import parse_query

    def found(query: str, box: str | None) -> tuple[list[str], int, int]:
        rows, matched, unread = store.search_page(parse_query(query), 0, 3, box=box)
        return [r["uid"] for r in rows], matched, unread

    crowd = [
        put(store, "default", f"Crowd {n} ledger", headers=f"X-Team: t{n % 2}\r\n")
        for n in range(10)
    ]
    # Every message in one mailbox: the same answers as over every mailbox.
    for query in ("ledger", "edge", "header:X-Team:t1", "from:ann", "is:unread"):
        assert found(query, "default") == found(query, None), query
    assert found("ledger", "default") == (crowd[::-1][:3], 10, 10)
    assert found("ledger", "elsewhere") == ([], 0, 0)
    assert [r["uid"] for r in store.list_summaries(8, 5, box="default")] == crowd[1::-1]
    # A mailbox of a sixth of the messages: looked up among its own.
    few = [put(store, "few", f"Few {n} ledger", headers=f"X-Team: t{n % 2}\r\n") for n in range(2)]
    store.write(lambda s: s.set_read(few[:1], True))
    assert found("ledger", "few") == (few[::-1], 2, 1)
    assert found("edge", "few") == (few[::-1], 2, 1)
    assert found("header:X-Team:t1", "few") == ([few[1]], 1, 1)
    assert found("header:X-Team", "few") == (few[::-1], 2, 1)
    assert found("header:X-Team:t1 ledger", "few") == ([few[1]], 1, 1)
    assert found("-header:X-Team:t1", "few") == ([few[0]], 1, 0)
    assert found("from:ann is:read", "few") == ([few[0]], 1, 0)
    assert found("ledger", "default") == (crowd[::-1][:3], 10, 10)
    assert found("header:X-Team:t0", None)[1:] == (6, 5)
    assert [r["uid"] for r in store.list_summaries(1, 5, box="few")] == [few[0]]
    assert [r["uid"] for r in store.list_summaries(0, 2, box="default")] == crowd[:-3:-1]
