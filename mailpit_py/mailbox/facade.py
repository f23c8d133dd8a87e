"""The Mailbox facade: the only writer. Delivers, reads, lists, deletes, marks and prunes
messages, and publishes an event after every commit."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple

from mailpit_py import events, jsontext
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.aggregates import Aggregates
from mailpit_py.mailbox.base import BoxTally, MessageNotFound, SessionNotFound
from mailpit_py.mailbox.boxview import BoxView
from mailpit_py.mailbox.delivery import Delivering
from mailpit_py.mailbox.hooks import NO_HOOKS, DeliveryHooks
from mailpit_py.mailbox.manage import BoxAdmin
from mailpit_py.mailbox.outbox import RelayOutbox
from mailpit_py.mailbox.record import index_record
from mailpit_py.mailbox.shapes import (
    StoredMessage,
    session_to_api,
    statistics_to_api,
    summary_to_api,
)
from mailpit_py.mailbox.tags import AutoTags, clean_tag, clean_tags
from mailpit_py.models import Envelope
from mailpit_py.observability import relayqueue
from mailpit_py.observability.stats import MinuteCounter, refusals
from mailpit_py.observability.telemetry import Telemetry
from mailpit_py.store import detailcodec
from mailpit_py.store.interface import StoreBackend
from mailpit_py.store.open import (
    display_name,
    is_postgres,
    open_store,
    tenant_file,
    tenant_name,
)
from mailpit_py.store.records import MessageRecord, StoreError, TagError
from mailpit_py.store.search import SearchError, Term, parse_query
from mailpit_py.store.sqlite import MEMORY

# How long DELETE /api/v1/messages waits for a delete of everything (a million messages took
# 8-13 s); past it the request is answered and the delete goes on.
DELETE_ALL_WAIT = 60.0
PRUNE_OVER = 200  # Mailpit: deleting more messages than this is announced as one prune
log = logging.getLogger("mailpit_py.mailbox")


class IndexEntry(NamedTuple):
    """One message as mail clients number it: IMAP UID (never reused), ID, size, read, time."""

    imap_uid: int
    uid: str
    size: int
    read: int
    created: float


class Mailbox(Delivering, BoxAdmin, RelayOutbox):
    """The service every reader and writer goes through (SMTP, API, CLI, fixtures).

    Its methods that read or change messages, tags, sessions or statistics take `box`: None
    means every mailbox (internal services: the checks, the relay, retention by age, import),
    a name limits them to that mailbox, where another mailbox's message behaves exactly as one
    that does not exist (MessageNotFound, or skipped by a change). `view(box)` gives a BoxView
    bound to one mailbox, which the web, IMAP and POP3 hold instead of passing `box`.
    Delivery is in mailbox/delivery.py, mailbox management in mailbox/manage.py, the relay's
    outbox in mailbox/outbox.py.
    """

    def __init__(
        self,
        config: Config,
        bus: events.Bus | None = None,
        *,
        busy_timeout: float = 5.0,
        hooks: DeliveryHooks = NO_HOOKS,
    ) -> None:
        self.config = config
        # X-Tags, plus-address, user name and rule tags (raises ConfigError for a bad rule).
        self.auto_tags = AutoTags.from_config(config)
        # What relay and checks add to a delivery (mailbox/hooks.py), fixed from the start.
        self.hooks = hooks
        self.bus = bus or events.Bus()
        # Counters every layer bumps (SMTP, store, websocket, relay, webhook); metrics read them.
        self.telemetry = Telemetry()
        self._temp_path: str | None = None
        path = config.database
        if path is None:
            # Mailpit's default: a temporary database that disappears with the process.
            fd, path = tempfile.mkstemp(prefix="mailpit-py-", suffix=".db")
            os.close(fd)
            os.unlink(path)
            self._temp_path = path
        # A temporary database is one process's alone: a tenant has nothing to keep apart.
        tenant = tenant_name(config.tenant_id) if config.database else ""
        self.store: StoreBackend = open_store(
            path,
            busy_timeout=busy_timeout,
            wal=not config.disable_wal,
            compression=config.compression or 0,  # --compression, Mailpit's; off by default
            tenant=tenant,
        )
        self.store.on_batch = self.telemetry.observe_batch
        self.arrivals = MinuteCounter()  # messages stored per minute, for the statistics view
        if tenant and path != MEMORY and not is_postgres(path):
            path = tenant_file(path, tenant)
        self.database_path = display_name(path) if path != MEMORY else MEMORY
        # Parsing happens here, off the SMTP event loop and off the writer, so a 20 MB message
        # delays neither other sessions nor other commits.
        self._parsers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="parse")
        self._stats_dirty = threading.Event()
        self._closing = threading.Event()
        self._tallies: dict[str, BoxTally] = {}
        self._published: dict[str, tuple[int, int]] = {}
        self._stats_thread = threading.Thread(target=self._stats_loop, name="stats", daemon=True)
        self._stats_thread.start()
        self.accepted = 0
        # When the last message was handed over (monotonic): background work such as the message
        # checks waits for a quiet moment, so it never competes with a burst of SMTP for the CPU.
        self.last_delivery = 0.0
        self.accepted_size = 0
        self.deleted = 0
        # The statistics view's costly figures, per mailbox (None: of every mailbox).
        self._aggregates: dict[str | None, Aggregates] = {}
        self._index_missing()

    @property
    def relay_inline(self) -> Callable[[str, Envelope, bytes], str] | None:
        """The relay's in-session hook (forward-smtp-errors), which the SMTP session calls after
        the commit and before its reply; None when the relay has none."""
        return self.hooks.relay_inline

    def _index_missing(self) -> None:
        """Index the messages whose search index rows were lost when the process stopped
        without closing the store (they are written just after the message's commit)."""
        rebuilt: list[tuple[int, MessageRecord]] = []
        for rowid in self.store.unindexed():
            found = self.store.raw_for_index(rowid)
            if found is None:
                continue
            rebuilt.append((rowid, index_record(*found)))
        if rebuilt:
            log.info("indexing %d messages for search that were not indexed", len(rebuilt))

            def requeue(store: StoreBackend) -> None:
                for rowid, rec in rebuilt:
                    store.queue_index(rowid, rec.headers, rec.fts)

            self.store.write(requeue)
            self.store.index_barrier()

    # -- reads -----------------------------------------------------------------------------

    def view(self, box: str) -> BoxView:
        """The facade bound to mailbox `box` (whether or not it exists yet)."""
        return BoxView(self, box)

    def get(self, msg_id: str, *, mark_read: bool = False, box: str | None = None) -> StoredMessage:
        uid = self._latest(msg_id, box)
        found = self.store.message_data(uid)
        if found is None or (box is not None and found[0]["mailbox"] != box):
            raise MessageNotFound(msg_id)
        row, detail, transcript = found
        summary = summary_to_api(row)
        if mark_read and not summary["Read"]:
            self.mark_read([uid], True, box=row["mailbox"])
            summary["Read"] = True
        return StoredMessage(
            summary, detailcodec.decode(detail), json.loads(transcript), row["session_uid"]
        )

    def box_of(self, msg_id: str) -> str:
        """The mailbox a message is in (for services that act on a message by its ID, such as
        the relay's bounce); MessageNotFound when there is no such message."""
        box = self.store.box_of(msg_id)
        if box is None:
            raise MessageNotFound(msg_id)
        return box

    def row_number(self, msg_id: str) -> int:
        """A message's row number in the store (IMAP's UID); MessageNotFound when gone."""
        row = self.store.summary(msg_id)
        if row is None:
            raise MessageNotFound(msg_id)
        return int(row["id"])

    def summary(self, msg_id: str, box: str | None = None) -> dict[str, Any]:
        row = self.store.summary(self._latest(msg_id, box))
        if row is None or (box is not None and row["mailbox"] != box):
            raise MessageNotFound(msg_id)
        return summary_to_api(row)

    def list_messages(
        self, start: int = 0, limit: int = 50, before: float | None = None, box: str | None = None
    ) -> list[dict[str, Any]]:
        """Summaries, newest first; with `before` (epoch seconds), only those received earlier
        (Mailpit's ?before=, which pages back from a point in time)."""
        if before is not None:
            rows, _, _ = self.store.search_page([Term("before", before)], start, limit, box=box)
            return [summary_to_api(r) for r in rows]
        return [summary_to_api(r) for r in self.store.list_summaries(start, limit, box=box)]

    def search(
        self,
        query: str,
        start: int = 0,
        limit: int = 50,
        tz: str = "",
        before: float | None = None,
        box: str | None = None,
    ) -> tuple[list[dict[str, Any]], int, int]:
        """(summaries newest first, matches, unread matches); SearchError on a bad query.
        `before` (epoch seconds) keeps only messages received earlier, counts included."""
        terms = parse_query(query, tz)
        if before is not None:
            terms.append(Term("before", before))
        rows, matched, unread = self.store.search_page(terms, start, limit, box=box)
        return [summary_to_api(r) for r in rows], matched, unread

    def delete_search(self, query: str, tz: str = "", box: str | None = None) -> list[str]:
        """Delete exactly what the same query lists."""
        terms = parse_query(query, tz)
        if not terms:
            # e.g. "?" or "..." has nothing to search for and would match every message.
            raise SearchError(
                f"{query!r} has nothing to search for and would delete every message; "
                "to delete everything, use DELETE /api/v1/messages"
            )
        self.store.index_barrier()
        matched: list[str] = []
        each = self._each_box(box, lambda s, name: s.delete_messages(matched, box=name))

        def job(s: StoreBackend) -> list[tuple[str, list[str]]]:
            matched[:] = s.uids_matching(terms, box=box)
            return each(s)

        return self._deleted(self.store.write(job))

    def mark_search(
        self, query: str, read: bool = True, tz: str = "", box: str | None = None
    ) -> list[str]:
        """Mark exactly what the same query lists."""
        terms = parse_query(query, tz)
        self.store.index_barrier()
        matched: list[str] = []
        each = self._each_box(box, lambda s, name: s.set_read(matched, read, box=name))

        def job(s: StoreBackend) -> list[tuple[str, list[str]]]:
            matched[:] = s.uids_matching(terms, box=box)
            return each(s)

        return self._marked(self.store.write(job), read)

    def counts(self, box: str | None = None) -> tuple[int, int]:
        """(total, unread), of every mailbox or of `box`."""
        return self.store.counts(box=box)

    def health(self) -> str:
        """Empty when the store reads and writes; else what is wrong (for /readyz)."""
        return self.store.health()

    def statistics(self, now: float | None = None, box: str | None = None) -> dict[str, Any]:
        """What the statistics view draws (GET /api/v1/stats): arrivals per minute over the
        last hour, refusals by reason, message sizes, top senders and recipient domains; with
        `box`, that mailbox's (the SMTP refusals come before any routing: the instance's)."""
        now = time.time() if now is None else now
        aggregates = self._aggregates.get(box)
        if aggregates is None:
            aggregates = self._aggregates.setdefault(box, Aggregates(self.store, box))
        figures = aggregates.get((self.accepted, self.deleted))
        total, unread = self.counts(box)
        if box is None:
            arrivals, totals = self.arrivals, (self.accepted, self.accepted_size, self.deleted)
        else:
            tally = self.tally(box)
            arrivals, totals = tally.arrivals, (tally.accepted, tally.accepted_size, tally.deleted)
        return statistics_to_api(
            now, arrivals.series(now), refusals(self.telemetry), figures, (total, unread, *totals)
        )

    def raw(self, msg_id: str, box: str | None = None) -> bytes:
        data = self.store.raw(self.resolve(msg_id, box))
        if data is None:
            raise MessageNotFound(msg_id)
        return data

    def raw_stream(self, msg_id: str, box: str | None = None) -> tuple[int, Iterator[bytes]]:
        """(size, chunks) of the raw message, for sending big ones without holding them whole."""
        found = self.store.raw_stream(self.resolve(msg_id, box))
        if found is None:
            raise MessageNotFound(msg_id)
        return found

    def part_stream(
        self, msg_id: str, part_id: str, box: str | None = None
    ) -> tuple[str, int, Iterator[bytes]]:
        """(content type, size, chunks) of a decoded part; MessageNotFound like part()."""
        uid = self.resolve(msg_id, box)
        found = self.store.part_stream(uid, part_id)
        if found is None:
            if self.store.summary(uid) is None:
                raise MessageNotFound(msg_id)
            raise MessageNotFound(f"{msg_id}/part/{part_id}")
        return found

    def index(self, tag: str | None = None, box: str | None = None) -> list[IndexEntry]:
        """Every message (or those with `tag`), oldest first, with its IMAP UID (POP3, IMAP)."""
        return [IndexEntry(*row) for row in self.store.index(tag, box=box)]

    def uid_validity(self) -> int:
        """IMAP UIDVALIDITY: fixed for the life of the database (RFC 3501 section 2.3.1.1);
        every mailbox's, as its IMAP UIDs (message ids) are unique across mailboxes."""
        return int(self.store.meta("imap_uidvalidity") or 1)

    def imap_flags(self) -> dict[int, set[str]]:
        """IMAP flags other than \\Seen by IMAP UID, as clients last stored them."""
        return self.store.imap_flags()

    def save_imap_flags(self, changes: dict[int, set[str]]) -> None:
        self.store.write(lambda s: s.set_imap_flags(changes))

    def next_imap_uid(self) -> int:
        """IMAP UIDNEXT: the UID the next message will get (in whichever mailbox)."""
        return self.store.next_id()

    def part(self, msg_id: str, part_id: str, box: str | None = None) -> tuple[str, bytes]:
        uid = self.resolve(msg_id, box)
        found = self.store.part(uid, part_id)
        if found is None:
            if self.store.summary(uid) is None:
                raise MessageNotFound(msg_id)
            raise MessageNotFound(f"{msg_id}/part/{part_id}")
        return found

    def checks(self, msg_id: str, box: str | None = None) -> dict[str, Any] | None:
        """The stored check results of a message, None when not checked yet."""
        uid = self.resolve(msg_id, box)
        found = self.store.checks(uid)
        if found is None:
            if self.store.summary(uid) is None:
                raise MessageNotFound(msg_id)
            return None
        result: dict[str, Any] = json.loads(found)
        return result

    def checks_many(self, uids: Sequence[str]) -> dict[str, str]:
        """The stored check results (JSON text) of those of these messages that have them, in
        one read: the background checks' run asks once, not once a message (on PostgreSQL a
        read is a round trip)."""
        return self.store.checks_many(uids)

    def save_checks(self, uid: str, result: dict[str, Any]) -> Future[bool]:
        """Keep a message's check results; the future says False when it was deleted meanwhile.

        Not waited for by the checks worker, so a run of checked messages shares commits."""
        text = jsontext.dumps(result)
        return self.store.submit(lambda s: s.save_checks(uid, time.time(), text))

    def save_checks_many(self, results: list[tuple[str, dict[str, Any]]]) -> Future[list[bool]]:
        """Keep several messages' check results in one write job (one transaction: on
        PostgreSQL a job's BEGIN and COMMIT are round trips of their own); the future's list
        says, in order, False for a message deleted meanwhile."""
        texts = [(uid, jsontext.dumps(result)) for uid, result in results]
        return self.store.submit(
            lambda s: [s.save_checks(uid, time.time(), text) for uid, text in texts]
        )

    def size_bytes(self) -> int:
        """What the store occupies on disk (a SQLite file with its write-ahead log)."""
        return self.store.size_bytes()

    def outbox_backlog(self) -> tuple[int, float | None]:
        """The relay outbox's pending copies and the oldest one's creation time (or None),
        read from the store each time: another process's writes show."""
        return self.store.outbox_backlog()

    def relay_queue(self, now: float, limit: int = relayqueue.LIMIT) -> dict[str, Any]:
        """The relay outbox as the API and `mailpit-py queue` list it."""
        return relayqueue.relay_queue(self.store, now, limit)

    def session(self, session_id: str, box: str | None = None) -> dict[str, Any]:
        row = self.store.session(session_id)
        if row is None or (box is not None and row["mailbox"] != box):
            raise SessionNotFound(session_id)
        return session_to_api(row)

    def session_count(self, box: str | None = None) -> int:
        return self.store.session_count(box=box)

    def sessions(
        self, start: int = 0, limit: int = 50, box: str | None = None
    ) -> list[dict[str, Any]]:
        return [session_to_api(r) for r in self.store.sessions(start, limit, box=box)]

    # -- writes ----------------------------------------------------------------------------

    def mark_read(
        self, uids: Sequence[str] | None, read: bool = True, box: str | None = None
    ) -> list[str]:
        """Mark these messages (every one of `box` when None) read or unread; the IDs whose
        flag changed (another mailbox's are skipped)."""
        job = self._each_box(box, lambda s, name: s.set_read(uids, read, box=name))
        return self._marked(self.store.write(job), read)

    def _marked(self, changed: list[tuple[str, list[str]]], read: bool) -> list[str]:
        for name, uids in changed:
            for uid in uids:
                self.bus.publish(events.Update({"ID": uid, "Read": read}, box=name))
        if changed:
            self._changed()
        return [uid for _, uids in changed for uid in uids]

    def delete(
        self, uids: Sequence[str], *, prune: bool = False, box: str | None = None
    ) -> list[str]:
        """Delete these messages (another mailbox's are skipped). `prune` announces them as
        one prune event whatever their number, as Mailpit announces the deletions of a POP3
        session."""
        job = self._each_box(box, lambda s, name: s.delete_messages(uids, box=name))
        return self._deleted(self.store.write(job), prune=prune)

    def _deleted(self, by_box: list[tuple[str, list[str]]], *, prune: bool = False) -> list[str]:
        """Announce what a delete removed, to each mailbox's subscribers; every ID removed."""
        for name, gone in by_box:
            # Past Mailpit's threshold one prune (clients reload) replaces a delete per message:
            # a burst of thousands would also overflow every subscriber's queue and cut it off.
            if prune or len(gone) > PRUNE_OVER:
                self.bus.publish(events.Prune({"IDs": gone}, box=name))
            else:
                for uid in gone:
                    self.bus.publish(events.Delete({"ID": uid}, box=name))
        self._count_deleted(by_box)
        self._changed()
        return [uid for _, gone in by_box for uid in gone]

    def delete_all(self, box: str | None = None) -> int:
        """Delete every message (of `box`); the clients hear of it once the delete has
        committed, also when that outlasts DELETE_ALL_WAIT (a million messages may), which
        answers StoreError while the delete goes on. The mailboxes stay, emptied."""
        future = self.store.submit(lambda s: s.delete_all(box=box))

        def done(f: Future[int]) -> None:
            if f.exception() is None:
                self.deleted += f.result()
                if box is not None:
                    self.tally(box).deleted += f.result()
                self.bus.publish(events.Truncate(box=events.EVERY_BOX if box is None else box))
                self._changed()

        future.add_done_callback(done)
        try:
            return future.result(timeout=DELETE_ALL_WAIT)
        except TimeoutError:
            raise StoreError(
                f"deleting every message takes longer than {DELETE_ALL_WAIT:g}s: it goes on, "
                "and the web UI and the websocket's clients are told when it is done"
            ) from None

    def empty_box(self, name: str) -> int:
        """Delete every message of a mailbox, keeping it; how many there were. BoxNotFound."""
        self.box_info(name)  # (BoxNotFound when there is none)
        return self.delete_all(box=name)

    def tags(self, box: str | None = None) -> list[str]:
        return list(self.store.tag_counts(box=box))

    def tag_counts(self, box: str | None = None) -> dict[str, int]:
        return self.store.tag_counts(box=box)

    def set_tags(
        self, uids: Sequence[str], tags: Sequence[str], box: str | None = None
    ) -> list[str]:
        """Give these messages exactly these tags (Mailpit's PUT /api/v1/tags); another
        mailbox's are skipped."""
        clean = clean_tags(tags)
        job = self._each_box(box, lambda s, name: s.set_tags(uids, clean, box=name))
        return self._publish_tags(self.store.write(job))

    def rename_tag(self, old: str, new: str, box: str | None = None) -> list[str]:
        """Rename a tag (Mailpit's PUT /api/v1/tags/{Tag}), on the messages of `box` alone
        when given; raises TagError, as Mailpit answers, for a name that cleans to nothing, an
        unknown tag or one that exists."""
        new_clean = clean_tag(new)
        if not new_clean:
            raise TagError(f"invalid tag name: {new_clean}")
        if new_clean == old:
            return []

        def job(store: StoreBackend) -> list[tuple[str, list[str]]] | TagError:
            # A refusal is an answer, not a failed job (which the writer would log and retry).
            try:
                return store.rename_tag(old, new_clean, box=box)
            except TagError as exc:
                return exc

        changed = self.store.write(job)
        if isinstance(changed, TagError):
            raise changed
        return self._publish_tags(self._by_box(changed, box), prune=box or events.EVERY_BOX)

    def delete_tag(self, tag: str, box: str | None = None) -> list[str]:
        changed = self.store.write(lambda s: s.rename_tag(tag, "", box=box))
        return self._publish_tags(self._by_box(changed, box), prune=box or events.EVERY_BOX)

    def _by_box(
        self, changed: list[tuple[str, list[str]]], box: str | None
    ) -> list[tuple[str, list[tuple[str, list[str]]]]]:
        """(mailbox, its part of `changed`): a change to every mailbox (None) is told to each
        message's own mailbox (asked after the commit: the messages are still there)."""
        if box is not None:
            return [(box, changed)] if changed else []
        grouped: dict[str, list[tuple[str, list[str]]]] = {}
        for item in changed:
            found = self.store.box_of(item[0])
            if found is not None:  # (deleted since: there is no one to tell)
                grouped.setdefault(found, []).append(item)
        return list(grouped.items())

    def _publish_tags(
        self, changed: list[tuple[str, list[tuple[str, list[str]]]]], *, prune: str = ""
    ) -> list[str]:
        for name, tagged in changed:
            for uid, tags in tagged:
                self.bus.publish(events.Update({"ID": uid, "Tags": tags}, box=name))
        if prune:
            # Mailpit follows a tag rename or delete with a prune, on which its clients reload
            # (the tag list changed); nothing was removed.
            self.bus.publish(events.Prune({"IDs": []}, box=prune))
        return [uid for _, tagged in changed for uid, _ in tagged]

    def prune(self) -> list[str]:
        """Retention now: each mailbox keeps its newest (box_max), and with --max-age none
        older than that; every ID deleted."""
        older = time.time() - self.config.max_age if self.config.max_age else None
        names = self._box_names(None)
        keep = {name: self.box_max(name) for name in names}

        def job(s: StoreBackend) -> list[tuple[str, list[str]]]:
            pruned = [(name, s.prune(keep[name], older, box=name)) for name in names]
            return [(name, gone) for name, gone in pruned if gone]

        pruned = self.store.write(job)
        for name, gone in pruned:
            self.bus.publish(events.Prune({"IDs": gone}, box=name))
        if pruned:
            self._count_deleted(pruned)
            self._changed()
        return [uid for _, gone in pruned for uid in gone]

    # -- lifecycle -------------------------------------------------------------------------

    def _stats_loop(self) -> None:
        # Counts are throttled: many deliveries in a burst give one round per quarter second.
        last_age_check = time.monotonic()
        while not self._closing.is_set():
            if self._stats_dirty.wait(timeout=1.0):
                self._stats_dirty.clear()
                try:
                    self._publish_counts()
                except Exception:
                    continue
                self._closing.wait(0.25)
            if self.config.max_age and time.monotonic() - last_age_check > 60:
                last_age_check = time.monotonic()
                try:
                    self.prune()
                except Exception:
                    log.exception("pruning by age failed")

    def changed_elsewhere(self) -> None:
        """Another instance on the shared database changed the mailbox (mailbox/shared.py):
        the counts are published again, throttled as after a change made here."""
        self._stats_dirty.set()

    def close(self) -> None:
        """Finish in-flight deliveries, close the database, remove a temporary one."""
        self._closing.set()
        self._parsers.shutdown(wait=True)
        # The stats thread may be mid-query: it ends before the connections close (closing a
        # connection another thread is using crashed the process).
        self._stats_dirty.set()
        self._stats_thread.join(timeout=5)
        self.store.close()
        if self._temp_path:
            for suffix in ("", "-wal", "-shm", "-journal"):
                try:
                    os.unlink(self._temp_path + suffix)
                except FileNotFoundError:
                    pass
