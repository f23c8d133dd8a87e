"""Mailboxes in the facade: events name their mailbox, a BoxView sees its mailbox alone (on
SQLite and PostgreSQL), delivery stores a copy per routed mailbox in one job, retention keeps
each mailbox's newest, and mailboxes are created, renamed, emptied and deleted with events."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import wait_until
from mailpit_py import events
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.boxes import DEFAULT_BOX, BoxExists, BoxNotFound, BoxRefused
from mailpit_py.mailbox.facade import Mailbox, MessageNotFound, SessionNotFound
from mailpit_py.mailbox.shared import SharedEvents
from mailpit_py.models import Envelope
from mailpit_py.store.records import SessionRecord, TagError, Ticket


def test_every_event_names_its_mailbox_and_counts_concern_every_mailbox() -> None:
    assert events.DEFAULT_BOX == DEFAULT_BOX
    for cls in (
        events.NewMessage,
        events.Update,
        events.Delete,
        events.Truncate,
        events.Prune,
        events.Stats,
        events.SmtpError,
    ):
        assert cls({}).box == DEFAULT_BOX
        event = cls({}, box="proj")
        assert event.concerns("proj") and not event.concerns(DEFAULT_BOX)
    counts = events.MailboxCounts([{"Name": "default", "Total": 1, "Unread": 0}])
    assert counts.box == events.EVERY_BOX
    assert counts.concerns("proj") and counts.concerns(DEFAULT_BOX)
    # The frame stays Mailpit's: the mailbox is for the subscribers' filter, not the client.
    assert counts.to_api() == {
        "Type": "mailboxes",
        "Data": [{"Name": "default", "Total": 1, "Unread": 0}],
    }
    assert events.Truncate(box="proj").to_api() == {"Type": "truncate", "Data": None}


# -- a mailbox's view sees that mailbox alone ------------------------------------------------

ATTACHED = (
    b"From: Dan <dan@example.net>\r\nTo: eve@example.org\r\nSubject: {subject}\r\n"
    b"Message-ID: <{subject}@example.net>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
    b"Content-Type: text/plain\r\n\r\nshared words here\r\n--b\r\n"
    b'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="f.pdf"'
    b"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n"
)


def message(subject: str) -> bytes:
    return ATTACHED.replace(b"{subject}", subject.encode())


def put(mb: Mailbox, box: str, subject: str, **kw: Any) -> str:
    """Deliver a message routed to mailbox `box` alone; its ID."""
    env = Envelope("dan@example.net", ("eve@example.org",))
    return mb.deliver(env, message(subject), boxes={box: list(env.rcpt_to)}, **kw).result(30)


@pytest.fixture
def two(database: str) -> Iterator[tuple[Mailbox, dict[str, str]]]:
    """A mailbox with messages in mailboxes 'a' and 'b': their IDs by name."""
    mb = Mailbox(Config(database=database, max_messages=0))
    try:
        ids = {
            "a1": put(mb, "a", "a1"),
            "a2": put(mb, "a", "a2"),
            "b1": put(mb, "b", "b1"),
        }
        yield mb, ids
    finally:
        mb.close()


def subjects(rows: list[dict[str, Any]]) -> list[str]:
    return [r["Subject"] for r in rows]


def test_a_view_lists_searches_and_counts_its_mailbox_alone(
    two: tuple[Mailbox, dict[str, str]],
) -> None:
    mb, ids = two
    a, b = mb.view("a"), mb.view("b")
    assert subjects(a.list_messages()) == ["a2", "a1"]
    assert subjects(b.list_messages()) == ["b1"]
    assert subjects(a.list_messages(before=time.time() + 60)) == ["a2", "a1"]
    found, matched, unread = a.search("shared")
    assert (subjects(found), matched, unread) == (["a2", "a1"], 2, 2)
    assert subjects(b.search("shared")[0]) == ["b1"]
    assert a.counts() == (2, 2) and b.counts() == (1, 1) and mb.counts() == (3, 3)
    assert mb.view("nowhere").counts() == (0, 0)
    assert mb.view("nowhere").list_messages() == []
    assert [e.uid for e in a.index()] == [ids["a1"], ids["a2"]]
    assert [e.uid for e in b.index()] == [ids["b1"]]
    assert a.resolve("latest") == ids["a2"] and b.resolve("latest") == ids["b1"]
    stats = a.statistics()
    assert stats["Totals"]["Messages"] == 2 and stats["Totals"]["Accepted"] == 2
    assert sum(s["Messages"] for s in stats["Sizes"]) == 2
    assert [s["Messages"] for s in b.statistics()["TopSenders"]] == [1]
    assert sum(m["Messages"] for m in b.statistics()["PerMinute"]) == 1
    assert mb.statistics()["Totals"]["Messages"] == 3
    assert a.totals()[0] == 2 and b.totals()[0] == 1


def test_another_mailboxs_message_is_exactly_a_missing_one(
    two: tuple[Mailbox, dict[str, str]],
) -> None:
    mb, ids = two
    a, other = mb.view("a"), ids["b1"]
    reads: list[Callable[[], object]] = [
        lambda: a.get(other),
        lambda: a.summary(other),
        lambda: a.raw(other),
        lambda: a.raw_stream(other),
        lambda: a.part(other, "2"),
        lambda: a.part_stream(other, "2"),
        lambda: a.checks(other),
        lambda: a.relay_history(other),
        lambda: a.resolve(other),
        lambda: a.queue_relay(other, "release", "x@example.com", ["y@example.com"], b"x"),
    ]
    for read in reads:
        with pytest.raises(MessageNotFound) as exc:
            read()
        assert str(exc.value) == f"message {other!r} not found"
    with pytest.raises(MessageNotFound):
        mb.view("empty").resolve("latest")
    # Its own messages read as before, and with no mailbox named, every message does.
    assert a.get(ids["a1"]).summary["Subject"] == "a1"
    assert a.part(ids["a1"], "2")[1] == b"%PDF-1.4\n"
    assert a.raw(ids["a1"]).startswith(b"From: Dan")
    assert mb.get(other).summary["Subject"] == "b1"
    # Changes by ID skip another mailbox's messages.
    assert a.mark_read([other]) == []
    assert a.set_tags([other], ["x"]) == []
    assert a.delete([other]) == []
    assert mb.view("b").summary(other)["Read"] is False
    assert mb.view("b").summary(other)["Tags"] == []


def test_a_views_changes_stay_in_its_mailbox(two: tuple[Mailbox, dict[str, str]]) -> None:
    mb, ids = two
    a, b = mb.view("a"), mb.view("b")
    assert a.get(ids["a1"], mark_read=True).summary["Read"] is True
    assert b.counts() == (1, 1)
    assert sorted(a.mark_read(None)) == [ids["a2"]]
    assert b.counts() == (1, 1)
    assert a.mark_search("shared", read=False) and b.counts() == (1, 1)
    assert sorted(a.set_tags([ids["a1"], ids["a2"]], ["work"])) == sorted([ids["a1"], ids["a2"]])
    assert b.set_tags([ids["b1"]], ["work"]) == [ids["b1"]]
    assert a.tags() == ["work"] and a.tag_counts() == {"work": 2} and b.tag_counts() == {"work": 1}
    assert sorted(a.rename_tag("work", "job")) == sorted([ids["a1"], ids["a2"]])
    assert b.tags() == ["work"] and a.tags() == ["job"]
    with pytest.raises(TagError):
        b.rename_tag("job", "other")  # b has no such tag, whatever a has
    assert a.delete_tag("job") and b.tags() == ["work"]
    assert sorted(a.delete_search("shared")) == sorted([ids["a1"], ids["a2"]])
    assert b.counts() == (1, 1)
    put(mb, "a", "a3")
    assert a.delete_all() == 1
    assert a.counts() == (0, 0) and b.counts() == (1, 1)
    assert b.delete([ids["b1"]]) == [ids["b1"]]


def test_a_view_reads_its_own_smtp_sessions_and_imap_flags(
    two: tuple[Mailbox, dict[str, str]],
) -> None:
    mb, ids = two

    def session(uid: str, box: str) -> SessionRecord:
        now = time.time()
        return SessionRecord(
            uid, now, now, "peer", "local", "helo", False, "", "250", [], "[]", box
        )

    mb.record_session(session("sa", "a"))
    mb.record_session(session("sb", "b"))
    a = mb.view("a")
    wait_until(lambda: mb.session_count() == 2, what="both sessions logged")
    assert a.session_count() == 1 and [s["ID"] for s in a.sessions()] == ["sa"]
    assert a.session("sa")["ID"] == "sa"
    with pytest.raises(SessionNotFound):
        a.session("sb")
    b_uid = mb.view("b").index()[0].imap_uid
    a_uid = a.index()[0].imap_uid
    a.save_imap_flags({a_uid: {"$Label"}, b_uid: {"$Stolen"}})
    assert a.imap_flags() == {a_uid: {"$Label"}}
    assert mb.view("b").imap_flags() == {}
    # One UIDVALIDITY for every mailbox (UIDs are the database's ids); UIDNEXT is a mailbox's
    # own, moving only with its mail (a login polling STATUS learns nothing of another's).
    assert a.uid_validity() == mb.uid_validity()
    for name in ("a", "b"):
        view = mb.view(name)
        assert view.next_imap_uid() == max(e.imap_uid for e in view.index()) + 1


# -- delivery to the routed mailboxes ---------------------------------------------------------

ROUTED = (
    b"From: app@example.com\r\nTo: dev@a.test\r\nSubject: routed\r\n"
    b"Message-ID: <routed@example.com>\r\n\r\nHello.\r\n"
)
ENV = Envelope("app@example.com", ("dev@a.test", "qa@b.test", "ops@b.test"))
ROUTES = {"a": ["dev@a.test"], "b": ["qa@b.test", "ops@b.test"]}


def test_a_message_for_two_mailboxes_is_stored_once_in_each_with_its_recipients(
    database: str, caplog: pytest.LogCaptureFixture
) -> None:
    mb = Mailbox(Config(database=database, max_messages=0))
    try:
        stored: dict[str, str] = {}
        with mb.bus.subscribe() as sub, caplog.at_level(logging.INFO, "mailpit_py.mailbox"):
            first = mb.deliver(ENV, ROUTED, boxes=ROUTES, stored=stored).result(30)
            news = [e for e in drain(sub, 2) if isinstance(e, events.NewMessage)]
        # A log line per copy, with its own recipients and mailbox.
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("message ")]
        assert sorted(lines) == sorted(
            [
                f"message {stored['a']} from <app@example.com> to <dev@a.test> subject 'routed'"
                f" size {len(ROUTED)} in mailbox a",
                f"message {stored['b']} from <app@example.com> to <qa@b.test>, <ops@b.test>"
                f" subject 'routed' size {len(ROUTED)} in mailbox b",
            ]
        )
        assert first == stored["a"] and stored["b"] != first
        assert {e.box: e.data["ID"] for e in news} == stored
        a = mb.view("a").get(stored["a"])
        b = mb.view("b").get(stored["b"])
        assert a.detail["Envelope"]["To"] == ["dev@a.test"]
        assert b.detail["Envelope"]["To"] == ["qa@b.test", "ops@b.test"]
        # Each copy's Bcc (the envelope recipients no header names) shows its own alone.
        assert a.summary["Bcc"] == []
        assert [x["Address"] for x in b.summary["Bcc"]] == ["qa@b.test", "ops@b.test"]
        assert mb.counts("default") == (0, 0)
        # No routing: the default mailbox, every recipient.
        plain = mb.deliver(ENV, ROUTED).result(30)
        assert mb.view(DEFAULT_BOX).get(plain).detail["Envelope"]["To"] == list(ENV.rcpt_to)
    finally:
        mb.close()


def test_the_copies_of_a_message_are_one_job_cancelled_or_committed_together(
    tmp_path: Path,
) -> None:
    mb = Mailbox(Config(database=str(tmp_path / "m.db"), max_messages=0))
    try:
        release = threading.Event()
        blocker = mb.store.submit(lambda s: release.wait(10))  # holds the writer
        ticket = Ticket()
        outcomes: list[tuple[str | None, BaseException | None]] = []
        mb.deliver_then(
            lambda u, e: outcomes.append((u, e)), ENV, ROUTED, boxes=ROUTES, ticket=ticket
        )
        assert ticket.cancel()  # the SMTP deadline passed before the writer got to it
        release.set()
        blocker.result(10)
        mb.store.write(lambda s: None)  # every job before this one is done
        assert outcomes == [] and mb.counts() == (0, 0)
        stored: dict[str, str] = {}
        done = threading.Event()
        seen: list[tuple[int, int]] = []

        def then(uid: str | None, exc: BaseException | None) -> None:
            # Called once, after the commit of both copies.
            seen.append((mb.counts("a")[0], mb.counts("b")[0]))
            done.set()

        mb.deliver_then(then, ENV, ROUTED, boxes=ROUTES, stored=stored)
        assert done.wait(10) and seen == [(1, 1)] and set(stored) == {"a", "b"}
    finally:
        mb.close()


def test_routing_must_name_a_clean_mailbox() -> None:
    mb = Mailbox(Config(database=":memory:"))
    try:
        for boxes in ({}, {"Not Clean": ["x@example.com"]}):
            with pytest.raises(ValueError, match="mailbox"):
                mb.deliver(ENV, ROUTED, boxes=boxes).result(10)
        assert mb.counts() == (0, 0)
    finally:
        mb.close()


def test_duplicate_message_ids_are_found_per_mailbox() -> None:
    mb = Mailbox(Config(database=":memory:", ignore_duplicate_ids=True))
    try:
        first = put(mb, "a", "same")
        assert put(mb, "a", "same") == first  # dropped: already in a
        other = put(mb, "b", "same")  # b has none: stored
        assert other != first
        assert mb.counts("a") == (1, 1) and mb.counts("b") == (1, 1)
    finally:
        mb.close()


def test_retention_keeps_each_mailboxs_newest(database: str) -> None:
    mb = Mailbox(Config(database=database, max_messages=2))
    try:
        with mb.bus.subscribe() as sub:
            kept_b = put(mb, "b", "b0")
            a_ids = [put(mb, "a", f"a{i}") for i in range(4)]
            prunes = [e for e in drain(sub, 2, events.Prune) if isinstance(e, events.Prune)]
        # The messages of a beyond its newest two went; b's lone message, older, stayed.
        assert [e.uid for e in mb.view("a").index()] == a_ids[2:]
        assert [e.uid for e in mb.view("b").index()] == [kept_b]
        assert {e.box for e in prunes} == {"a"}
        assert sorted(i for e in prunes for i in e.data["IDs"]) == sorted(a_ids[:2])
    finally:
        mb.close()


def test_a_mailboxs_own_maximum_from_the_mailbox_config_applies_to_it(tmp_path: Path) -> None:
    config = tmp_path / "mailboxes.yml"
    config.write_text("mailboxes:\n  - name: small\n    max: 1\n")
    mb = Mailbox(Config(database=":memory:", max_messages=0, mailbox_config=str(config)))
    try:
        small = [put(mb, "small", f"s{i}") for i in range(3)]
        big = [put(mb, "big", f"b{i}") for i in range(3)]
        assert [e.uid for e in mb.view("small").index()] == small[-1:]
        assert [e.uid for e in mb.view("big").index()] == big
    finally:
        mb.close()


def test_pruning_by_age_after_a_delivery_is_its_mailboxs_and_the_periodic_one_every_mailboxs(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "m.db")
    env = Envelope("dan@example.net", ("eve@example.org",))
    old = time.time() - 7200
    mb = Mailbox(Config(database=path, max_messages=0))
    try:
        for box in ("a", "b"):
            mb.deliver(env, message(f"old {box}"), boxes={box: ["eve@example.org"]},
                       received_at=old).result(10)  # fmt: skip
    finally:
        mb.close()
    mb = Mailbox(Config(database=path, max_messages=0, max_age=3600))
    try:
        fresh = put(mb, "a", "fresh")
        assert [e.uid for e in mb.view("a").index()] == [fresh]
        assert mb.counts("b") == (1, 1)  # another mailbox's delivery did not prune it
        with mb.bus.subscribe() as sub:
            assert len(mb.prune()) == 1
            prunes = drain(sub, 1, kind=events.Prune)
        assert mb.counts() == (1, 1)
        assert [e.box for e in prunes if isinstance(e, events.Prune)] == ["b"]
    finally:
        mb.close()


# -- events -----------------------------------------------------------------------------------


def drain(
    sub: events.Subscription, count: int, kind: type[events.Event] = events.NewMessage
) -> list[events.Event]:
    """The events received until `count` of `kind` came (at most 10 s)."""
    got: list[events.Event] = []
    deadline = time.monotonic() + 10
    while sum(isinstance(e, kind) for e in got) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for {count} {kind.type} events: {got}"
        event = sub.get(timeout=left)
        if event is not None:
            got.append(event)
    return got


def boxes_of(got: list[events.Event], kind: type[events.Event]) -> list[str]:
    return [e.box for e in got if isinstance(e, kind)]


def test_every_change_is_told_to_its_own_mailbox(two: tuple[Mailbox, dict[str, str]]) -> None:
    mb, ids = two
    a = mb.view("a")
    heard: list[events.Event] = []
    with mb.bus.subscribe() as sub:

        def told(count: int, kind: type[events.Event]) -> dict[str, str]:
            """The mailbox each `kind` event of the next `count` was told to, by ID."""
            got = drain(sub, count, kind)
            heard.extend(got)
            return {(e.data or {}).get("ID", ""): e.box for e in got if isinstance(e, kind)}

        b2 = put(mb, "b", "b2")
        assert told(1, events.NewMessage) == {b2: "b"}
        a.mark_read([ids["a1"]])
        assert told(1, events.Update) == {ids["a1"]: "a"}
        a.set_tags([ids["a1"]], ["t"])
        assert told(1, events.Update) == {ids["a1"]: "a"}
        a.rename_tag("t", "u")
        assert told(1, events.Prune) == {"": "a"}
        assert [e.box for e in heard if isinstance(e, events.Update)][-1] == "a"
        a.delete([ids["a1"]])
        assert told(1, events.Delete) == {ids["a1"]: "a"}
        a.delete([ids["a2"]], prune=True)
        assert told(1, events.Prune) == {"": "a"}
        mb.view("b").delete_all()
        assert told(1, events.Truncate) == {"": "b"}
        # Asked of every mailbox (internal services), each message is told to its own.
        x, y = put(mb, "a", "x"), put(mb, "b", "y")
        mb.mark_read([x, y])
        assert told(2, events.Update) == {x: "a", y: "b"}
        mb.set_tags([x, y], ["t"])
        assert told(2, events.Update) == {x: "a", y: "b"}
        mb.delete([x, y])
        assert told(2, events.Delete) == {x: "a", y: "b"}
        mb.delete_all()
        assert told(1, events.Truncate) == {"": events.EVERY_BOX}
    # Nothing of a message was told to every mailbox (the counts are for every mailbox).
    assert [e for e in heard if e.box == events.EVERY_BOX and e.data] == [
        e for e in heard if isinstance(e, events.MailboxCounts)
    ]


def test_counts_are_told_per_mailbox_and_all_together(tmp_path: Path) -> None:
    mb = Mailbox(Config(database=str(tmp_path / "m.db"), max_messages=0))
    try:
        with mb.bus.subscribe() as sub:
            put(mb, "a", "first")
            first = drain(sub, 1, events.MailboxCounts)  # (tells every mailbox's counts)
            told = [(e.box, e.data["Total"]) for e in first if isinstance(e, events.Stats)]
            assert ("a", 1) in told
            put(mb, "b", "second")
            got = drain(sub, 1, events.MailboxCounts)
            stats = [e for e in got if isinstance(e, events.Stats)]
            assert [(e.box, e.data["Total"]) for e in stats] == [("b", 1)]
            counts = [e for e in got if isinstance(e, events.MailboxCounts)][-1]
            assert counts.data == [
                {"Name": "a", "Total": 1, "Unread": 1},
                {"Name": "b", "Total": 1, "Unread": 1},
                {"Name": "default", "Total": 0, "Unread": 0},
            ]
    finally:
        mb.close()


# -- managing mailboxes ------------------------------------------------------------------------


def test_create_rename_empty_and_delete_a_mailbox(database: str) -> None:
    mb = Mailbox(Config(database=database, max_messages=0))
    try:
        assert [b.name for b in mb.boxes()] == ["default"]
        assert mb.create_box("  Project-A ") == "project-a"
        with pytest.raises(BoxExists, match="mailbox already exists: project-a"):
            mb.create_box("project-a")
        with pytest.raises(ValueError, match="mailbox name is empty"):
            mb.create_box("   ")
        info = mb.box_info("project-a")
        assert (info.total, info.unread) == (0, 0) and info.created > 0
        uid = put(mb, "project-a", "one")
        with mb.bus.subscribe() as sub:
            assert mb.rename_box("project-a", "Project-B") == "project-b"
            got = drain(sub, 1, events.MailboxCounts)
        assert boxes_of(got, events.Truncate) == ["project-a"]
        assert boxes_of(got, events.Prune) == ["project-b"]
        assert mb.view("project-b").summary(uid)["Subject"] == "one"  # the same ID
        with pytest.raises(MessageNotFound):
            mb.view("project-a").summary(uid)
        assert [b.name for b in mb.boxes()] == ["default", "project-b"]
        with pytest.raises(BoxNotFound, match="mailbox not found: project-a"):
            mb.rename_box("project-a", "c")
        with pytest.raises(BoxRefused, match="default mailbox cannot be renamed"):
            mb.rename_box("default", "c")
        mb.create_box("c")
        with pytest.raises(BoxExists):
            mb.rename_box("project-b", "c")
        with pytest.raises(BoxExists):
            mb.rename_box("project-b", "default")
        put(mb, "default", "kept")
        assert mb.empty_box("project-b") == 1
        assert mb.box_info("project-b").total == 0 and mb.counts() == (1, 1)
        with pytest.raises(BoxNotFound):
            mb.empty_box("nowhere")
        put(mb, "project-b", "two")
        with mb.bus.subscribe() as sub:
            assert len(mb.delete_box("project-b")) == 1
            got = drain(sub, 1, events.Truncate)
        assert boxes_of(got, events.Truncate) == ["project-b"]
        assert [b.name for b in mb.boxes()] == ["c", "default"]
        with pytest.raises(BoxNotFound):
            mb.delete_box("project-b")
        with pytest.raises(BoxRefused, match="default mailbox cannot be deleted"):
            mb.delete_box("default")
        assert mb.counts() == (1, 1)
    finally:
        mb.close()


def test_another_instances_changes_are_told_to_their_own_mailbox(pg_url: str) -> None:
    here = Mailbox(Config(database=pg_url, max_messages=0))
    there = Mailbox(Config(database=pg_url, max_messages=0))
    bridges = [SharedEvents(here).start(), SharedEvents(there).start()]
    try:
        with there.bus.subscribe() as sub:

            def heard() -> bool:
                # LISTEN starts on a thread of its own: until then nothing is heard.
                put(here, "warmup", "w")
                return any(e.remote for e in iter(lambda: sub.get(timeout=0.2), None))

            wait_until(heard, timeout=20, what="the other instance listening")
            uid = put(here, "a", "across")

            def about(kind: type[events.Event]) -> events.Event:
                # (the warm-up's last events may come first)
                while True:
                    event = sub.get(timeout=10)
                    assert event is not None, f"no {kind.type} event for {uid}"
                    if isinstance(event, kind) and event.data.get("ID") == uid:
                        return event

            new = about(events.NewMessage)
            here.view("a").delete([uid])  # (after: a new event of a gone message is not told)
            gone = about(events.Delete)
            assert (new.box, new.remote, gone.box, gone.remote) == ("a", True, "a", True)
    finally:
        for bridge in bridges:
            bridge.stop()
        here.close()
        there.close()


def test_a_view_delivers_into_its_mailbox_and_hears_its_own_events() -> None:
    mb = Mailbox(Config(database=":memory:"))
    try:
        view = mb.view("appended")
        assert not view.exists()
        with pytest.raises(BoxNotFound):
            view.info()
        env = Envelope("dan@example.net", ("eve@example.org",))
        with mb.bus.subscribe() as sub:
            uid = view.deliver(env, message("appended")).result(10)
            (new,) = [e for e in drain(sub, 1) if isinstance(e, events.NewMessage)]
        assert view.exists() and view.info().total == 1
        assert view.summary(uid)["Subject"] == "appended"
        assert view.concerns(new) and not mb.view(DEFAULT_BOX).concerns(new)
        assert mb.view(DEFAULT_BOX).concerns(events.MailboxCounts([]))
        assert mb.counts(DEFAULT_BOX) == (0, 0)
    finally:
        mb.close()
