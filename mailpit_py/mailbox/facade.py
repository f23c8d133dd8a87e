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
from mailpit_py.ids import new_id
from mailpit_py.mailbox.aggregates import Aggregates
from mailpit_py.mailbox.hooks import NO_HOOKS, DeliveryHooks, OutboxItem
from mailpit_py.mailbox.record import build_record, index_record
from mailpit_py.mailbox.shapes import (
    StoredMessage,
    record_summary,
    relay_history_to_api,
    session_to_api,
    statistics_to_api,
    stats_data,
    summary_to_api,
)
from mailpit_py.mailbox.tags import AutoTags, clean_tag, clean_tags
from mailpit_py.models import Envelope
from mailpit_py.observability.logs import log_session
from mailpit_py.observability.stats import MinuteCounter, refusals
from mailpit_py.observability.telemetry import Telemetry
from mailpit_py.parse.message import parse_message
from mailpit_py.store import detailcodec
from mailpit_py.store.interface import StoreBackend
from mailpit_py.store.open import (
    display_name,
    is_postgres,
    open_store,
    tenant_file,
    tenant_name,
)
from mailpit_py.store.records import MessageRecord, SessionRecord, StoreError, TagError, Ticket
from mailpit_py.store.search import SearchError, Term, parse_query
from mailpit_py.store.sqlite import MEMORY

# How long DELETE /api/v1/messages waits for a delete of everything (a million messages took
# 8-13 s); past it the request is answered and the delete goes on.
DELETE_ALL_WAIT = 60.0
PRUNE_OVER = 200  # Mailpit: deleting more messages than this is announced as one prune
log = logging.getLogger("mailpit_py.mailbox")


INLINE_PARSE_LIMIT = 256 * 1024  # bytes; larger messages are parsed off the caller's thread


class MessageNotFound(LookupError):
    """No message with that ID (or no message at all, for `latest`)."""

    def __init__(self, msg_id: str) -> None:
        super().__init__(
            "no messages in the mailbox" if msg_id == "latest" else f"message {msg_id!r} not found"
        )
        self.msg_id = msg_id


class SessionNotFound(LookupError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"SMTP session {session_id!r} not found")


class IndexEntry(NamedTuple):
    """One message as mail clients number it: IMAP UID (never reused), ID, size, read, time."""

    imap_uid: int
    uid: str
    size: int
    read: int
    created: float


class Mailbox:
    """The service every reader and writer goes through (SMTP, API, CLI, fixtures)."""

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
        self._stats_thread = threading.Thread(target=self._stats_loop, name="stats", daemon=True)
        self._stats_thread.start()
        self.accepted = 0
        # When the last message was handed over (monotonic): background work such as the message
        # checks waits for a quiet moment, so it never competes with a burst of SMTP for the CPU.
        self.last_delivery = 0.0
        self.accepted_size = 0
        self.deleted = 0
        self._aggregates = Aggregates(self.store)  # the statistics view's costly figures
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

    # -- delivery ------------------------------------------------------------------------------

    def deliver(
        self,
        envelope: Envelope,
        raw: bytes,
        *,
        uid: str | None = None,
        username: str = "",
        session_uid: str = "",
        transcript: Sequence[Sequence[Any]] = (),
        received_at: float | None = None,
        tags: Sequence[str] = (),
        origin: dict[str, Any] | None = None,
    ) -> Future[str]:
        """Store a message; the future gives its ID once committed (or raises StoreError)."""
        done: Future[str] = Future()

        def finish(stored: str | None, exc: BaseException | None) -> None:
            if done.done():  # a caller may have given up (cancelled); the commit stands
                return
            if exc is not None:
                done.set_exception(exc)
            else:
                done.set_result(str(stored))

        self.deliver_then(
            finish,
            envelope,
            raw,
            uid=uid,
            username=username,
            session_uid=session_uid,
            transcript=transcript,
            received_at=received_at,
            tags=tags,
            origin=origin,
        )
        return done

    def deliver_then(
        self,
        then: Callable[[str | None, BaseException | None], None],
        envelope: Envelope,
        raw: bytes,
        *,
        uid: str | None = None,
        username: str = "",
        session_uid: str = "",
        transcript: Sequence[Sequence[Any]] | str = (),
        received_at: float | None = None,
        tags: Sequence[str] = (),
        origin: dict[str, Any] | None = None,
        ticket: Ticket | None = None,
        refused: dict[str, Any] | None = None,
    ) -> None:
        """Store a message, then call `then(uid, None)` once committed, or `then(None, error)`.

        The SMTP path's form of deliver: no Future per message. `then` runs in the writer
        thread, or, for a failure before the message reached it (a closed store, a parse that
        raised), in the thread that met the failure; it must return at once. `transcript` may
        be the JSON text already (an SMTP session renders its unchanging preamble once).
        A `ticket` cancelled before the writer starts the message's job leaves it unstored,
        and `then` is not called. A `refused` message (the receiver's refusal, --receiver) is
        kept to be read, marked so, and never relayed.
        """
        uid = uid or new_id()
        hooks = self.hooks
        created = received_at if received_at is not None else time.time()
        t0 = time.monotonic()  # the caller hands the message over at the end of DATA
        self.last_delivery = t0

        # --ignore-duplicate-ids: the ID of the message already stored with this Message-ID
        duplicate: list[str] = []
        # The tags the tagging rules' searches gave it, when they added any.
        rule_tagged: list[str] = []

        def prepare() -> MessageRecord:
            parsed = parse_message(raw, envelope)
            addresses = (*parsed.to, *parsed.cc, *parsed.bcc)
            if parsed.from_addr is not None:
                addresses = (*addresses, parsed.from_addr)  # Mailpit reads the sender's too
            found = self.auto_tags.tags(parsed.headers, addresses, username, raw)
            parsed = parsed._replace(tags=tuple(clean_tags([*found, *tags])))
            when = created
            if self.config.use_message_dates and parsed.date is not None:
                when = parsed.date.timestamp()  # --use-message-dates: the Date header's time
            return build_record(
                uid,
                parsed,
                raw,
                created=when,
                username=username,
                session_uid=session_uid,
                transcript=transcript,
                envelope=envelope,
                origin=origin,
                refused=refused,
            )

        def parsed_elsewhere(prepared: Future[MessageRecord]) -> None:
            try:
                rec = prepared.result()
            except Exception as exc:  # parse never raises; this is a bug, still answer
                log.exception("preparing message %s failed", uid)
                then(None, exc)
                return
            store_it(rec)

        def store_it(rec: MessageRecord) -> None:
            cfg = self.config

            # A refused message was not accepted: nothing of it goes on.
            plan = [] if refused else self._plan_outbox(hooks, envelope, origin or {})

            def job(store: StoreBackend) -> list[str]:
                if cfg.ignore_duplicate_ids:
                    stored = store.stored_message_id(rec.message_id)
                    if stored is not None:
                        duplicate.append(stored)
                        return []
                rowid = store.insert_message(rec)
                rules = self.auto_tags.rules
                if rules:
                    matched = store.message_matches(rowid, [r.terms for r in rules])
                    hits = zip(rules, matched, strict=True)
                    extra = [t for rule, hit in hits if hit for t in rule.tags]
                    wanted = clean_tags([*rec.tags, *extra])
                    if len(wanted) > len(rec.tags):
                        store.set_tags([uid], wanted)
                        rule_tagged[:] = wanted
                for kind, mail_from, rcpts in plan:  # the relay's copies, queued with it
                    store.outbox_add(uid, kind, mail_from, rcpts, raw, created)
                older = time.time() - cfg.max_age if cfg.max_age else None
                return store.prune(cfg.max_messages, older)

            self.store.submit_then(
                job, lambda pruned, exc: committed(pruned, exc, rec, bool(plan)), ticket
            )

        def committed(
            pruned: list[str] | None, exc: BaseException | None, rec: MessageRecord, queued: bool
        ) -> None:
            if exc is not None:
                then(None, exc)
                return
            if duplicate:
                # Accepted (250) and dropped, as Mailpit does: the sender did nothing wrong.
                log.info(
                    "message from <%s> ignored: Message-ID <%s> is already stored as %s",
                    envelope.mail_from,
                    rec.message_id,
                    duplicate[0],
                    extra={"event": "duplicate", "id": duplicate[0]},
                )
                then(duplicate[0], None)
                return
            if rule_tagged:
                rec = rec._replace(tags=list(rule_tagged))
            self.accepted += 1
            self.accepted_size += rec.size
            self.telemetry.observe_commit(time.monotonic() - t0)
            self.arrivals.add()
            # Published after the commit (DESIGN.md convention 4), in commit order.
            if self.bus.subscriber_count:  # building the summary costs; skip it for nobody
                self.bus.publish(events.NewMessage(record_summary(rec)))
            if pruned:
                self.deleted += len(pruned)
                self.bus.publish(events.Prune({"IDs": pruned}))
            if not self._stats_dirty.is_set():  # set() takes a Condition even when it is set
                self._stats_dirty.set()
            if queued and hooks.outbox_ready is not None:
                hooks.outbox_ready()
            for hook in hooks.after_commit:
                try:
                    hook(uid)
                except Exception:
                    log.exception("after-commit hook failed for %s", uid)
            # Its fields cost a little per message: skipped under --quiet.
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "message %s from <%s> to %s subject %r size %d%s",
                    uid,
                    envelope.mail_from,
                    ", ".join(f"<{r}>" for r in envelope.rcpt_to),
                    rec.subject,
                    rec.size,
                    " (kept, refused by the receiver profile)" if rec.refused else "",
                    extra={
                        "event": "message",
                        "id": uid,
                        "mail_from": envelope.mail_from,
                        "rcpt_to": list(envelope.rcpt_to),
                        "subject": rec.subject,
                        "size": rec.size,
                        "session": session_uid,
                    },
                )
            then(uid, None)

        if len(raw) <= INLINE_PARSE_LIMIT:
            # Small messages are parsed right here: a hop to another thread costs more than
            # the parse (GIL hand-offs), and it is a fraction of a millisecond.
            try:
                rec = prepare()
            except Exception as exc:  # parse never raises; this is a bug, still answer
                log.exception("preparing message %s failed", uid)
                then(None, exc)
                return
            store_it(rec)
        else:
            self._parsers.submit(prepare).add_done_callback(parsed_elsewhere)

    def record_session(self, rec: SessionRecord) -> None:
        """Keep an SMTP session's log (bounded); fire and forget, it acknowledges nothing."""
        log_session(rec)  # one info line per session outcome, its conversation at debug
        keep = self.config.session_history
        if keep > 0:
            self.store.submit(lambda store: store.insert_session(rec, keep))

    # -- reads -----------------------------------------------------------------------------

    def resolve(self, msg_id: str) -> str:
        if msg_id == "latest":
            uid = self.store.latest_uid()
            if uid is None:
                raise MessageNotFound(msg_id)
            return uid
        return msg_id

    def get(self, msg_id: str, *, mark_read: bool = False) -> StoredMessage:
        uid = self.resolve(msg_id)
        found = self.store.message_data(uid)
        if found is None:
            raise MessageNotFound(msg_id)
        row, detail, transcript = found
        summary = summary_to_api(row)
        if mark_read and not summary["Read"]:
            self.mark_read([uid], True)
            summary["Read"] = True
        return StoredMessage(
            summary, detailcodec.decode(detail), json.loads(transcript), row["session_uid"]
        )

    def summary(self, msg_id: str) -> dict[str, Any]:
        row = self.store.summary(self.resolve(msg_id))
        if row is None:
            raise MessageNotFound(msg_id)
        return summary_to_api(row)

    def list_messages(
        self, start: int = 0, limit: int = 50, before: float | None = None
    ) -> list[dict[str, Any]]:
        """Summaries, newest first; with `before` (epoch seconds), only those received earlier
        (Mailpit's ?before=, which pages back from a point in time)."""
        if before is not None:
            rows, _, _ = self.store.search_page([Term("before", before)], start, limit)
            return [summary_to_api(r) for r in rows]
        return [summary_to_api(r) for r in self.store.list_summaries(start, limit)]

    def search(
        self, query: str, start: int = 0, limit: int = 50, tz: str = "", before: float | None = None
    ) -> tuple[list[dict[str, Any]], int, int]:
        """(summaries newest first, matches, unread matches); SearchError on a bad query.
        `before` (epoch seconds) keeps only messages received earlier, counts included."""
        terms = parse_query(query, tz)
        if before is not None:
            terms.append(Term("before", before))
        rows, matched, unread = self.store.search_page(terms, start, limit)
        return [summary_to_api(r) for r in rows], matched, unread

    def delete_search(self, query: str, tz: str = "") -> list[str]:
        """Delete exactly what the same query lists."""
        terms = parse_query(query, tz)
        if not terms:
            # e.g. "?" or "..." has nothing to search for and would match every message.
            raise SearchError(
                f"{query!r} has nothing to search for and would delete every message; "
                "to delete everything, use DELETE /api/v1/messages"
            )
        self.store.index_barrier()
        gone = self.store.write(lambda s: s.delete_messages(s.uids_matching(terms)))
        self._announce_deleted(gone)
        self.deleted += len(gone)
        self._stats_dirty.set()
        return gone

    def mark_search(self, query: str, read: bool = True, tz: str = "") -> list[str]:
        """Mark exactly what the same query lists."""
        terms = parse_query(query, tz)
        self.store.index_barrier()
        changed = self.store.write(lambda s: s.set_read(s.uids_matching(terms), read))
        for uid in changed:
            self.bus.publish(events.Update({"ID": uid, "Read": read}))
        if changed:
            self._stats_dirty.set()
        return changed

    def counts(self) -> tuple[int, int]:
        """(total, unread)."""
        return self.store.counts()

    def health(self) -> str:
        """Empty when the store reads and writes; else what is wrong (for /readyz)."""
        return self.store.health()

    def statistics(self, now: float | None = None) -> dict[str, Any]:
        """What the statistics view draws (GET /api/v1/stats): arrivals per minute over the
        last hour, refusals by reason, message sizes, top senders and recipient domains."""
        now = time.time() if now is None else now
        sizes, senders, domains = self._aggregates.get((self.accepted, self.deleted))
        total, unread = self.counts()
        return statistics_to_api(
            now, self.arrivals.series(now), refusals(self.telemetry), (sizes, senders, domains),
            (total, unread, self.accepted, self.accepted_size, self.deleted),
        )  # fmt: skip

    def raw(self, msg_id: str) -> bytes:
        data = self.store.raw(self.resolve(msg_id))
        if data is None:
            raise MessageNotFound(msg_id)
        return data

    def raw_stream(self, msg_id: str) -> tuple[int, Iterator[bytes]]:
        """(size, chunks) of the raw message, for sending big ones without holding them whole."""
        found = self.store.raw_stream(self.resolve(msg_id))
        if found is None:
            raise MessageNotFound(msg_id)
        return found

    def part_stream(self, msg_id: str, part_id: str) -> tuple[str, int, Iterator[bytes]]:
        """(content type, size, chunks) of a decoded part; MessageNotFound like part()."""
        uid = self.resolve(msg_id)
        found = self.store.part_stream(uid, part_id)
        if found is None:
            if self.store.summary(uid) is None:
                raise MessageNotFound(msg_id)
            raise MessageNotFound(f"{msg_id}/part/{part_id}")
        return found

    def index(self, tag: str | None = None) -> list[IndexEntry]:
        """Every message (or those with `tag`), oldest first, with its IMAP UID (POP3, IMAP)."""
        return [IndexEntry(*row) for row in self.store.index(tag)]

    def uid_validity(self) -> int:
        """IMAP UIDVALIDITY: fixed for the life of the database (RFC 3501 section 2.3.1.1)."""
        return int(self.store.meta("imap_uidvalidity") or 1)

    def imap_flags(self) -> dict[int, set[str]]:
        """IMAP flags other than \\Seen by IMAP UID, as clients last stored them."""
        return self.store.imap_flags()

    def save_imap_flags(self, changes: dict[int, set[str]]) -> None:
        self.store.write(lambda s: s.set_imap_flags(changes))

    def next_imap_uid(self) -> int:
        """IMAP UIDNEXT: the UID the next message will get."""
        return self.store.next_id()

    def part(self, msg_id: str, part_id: str) -> tuple[str, bytes]:
        uid = self.resolve(msg_id)
        found = self.store.part(uid, part_id)
        if found is None:
            if self.store.summary(uid) is None:
                raise MessageNotFound(msg_id)
            raise MessageNotFound(f"{msg_id}/part/{part_id}")
        return found

    def checks(self, msg_id: str) -> dict[str, Any] | None:
        """The stored check results of a message, None when not checked yet."""
        uid = self.resolve(msg_id)
        found = self.store.checks(uid)
        if found is None:
            if self.store.summary(uid) is None:
                raise MessageNotFound(msg_id)
            return None
        result: dict[str, Any] = json.loads(found)
        return result

    def save_checks(self, uid: str, result: dict[str, Any]) -> Future[bool]:
        """Keep a message's check results; the future says False when it was deleted meanwhile.

        Not waited for by the checks worker, so a run of checked messages shares commits."""
        text = jsontext.dumps(result)
        return self.store.submit(lambda s: s.save_checks(uid, time.time(), text))

    def session(self, session_id: str) -> dict[str, Any]:
        row = self.store.session(session_id)
        if row is None:
            raise SessionNotFound(session_id)
        return session_to_api(row)

    def session_count(self) -> int:
        return self.store.session_count()

    def sessions(self, start: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        return [session_to_api(r) for r in self.store.sessions(start, limit)]

    # -- writes ----------------------------------------------------------------------------

    def mark_read(self, uids: Sequence[str] | None, read: bool = True) -> list[str]:
        changed = self.store.write(lambda s: s.set_read(uids, read))
        for uid in changed:
            self.bus.publish(events.Update({"ID": uid, "Read": read}))
        if changed:
            self._stats_dirty.set()
        return changed

    def delete(self, uids: Sequence[str], *, prune: bool = False) -> list[str]:
        """Delete these messages. `prune` announces them as one prune event whatever their
        number, as Mailpit announces the deletions of a POP3 session."""
        gone = self.store.write(lambda s: s.delete_messages(uids))
        if prune and gone:
            self.bus.publish(events.Prune({"IDs": gone}))
        else:
            self._announce_deleted(gone)
        self.deleted += len(gone)
        self._stats_dirty.set()
        return gone

    def _announce_deleted(self, gone: list[str]) -> None:
        # Past Mailpit's threshold one prune (clients reload) replaces a delete per message: a
        # burst of thousands would also overflow every subscriber's queue and cut it off.
        if len(gone) > PRUNE_OVER:
            self.bus.publish(events.Prune({"IDs": gone}))
            return
        for uid in gone:
            self.bus.publish(events.Delete({"ID": uid}))

    def delete_all(self) -> int:
        """Delete every message; the clients hear of it once the delete has committed, also
        when that outlasts DELETE_ALL_WAIT (a million messages may), which answers StoreError
        while the delete goes on."""
        future = self.store.submit(lambda s: s.delete_all())

        def done(f: Future[int]) -> None:
            if f.exception() is None:
                self.deleted += f.result()
                self.bus.publish(events.Truncate())
                self._stats_dirty.set()

        future.add_done_callback(done)
        try:
            return future.result(timeout=DELETE_ALL_WAIT)
        except TimeoutError:
            raise StoreError(
                f"deleting every message takes longer than {DELETE_ALL_WAIT:g}s: it goes on, "
                "and the web UI and the websocket's clients are told when it is done"
            ) from None

    def tags(self) -> list[str]:
        return list(self.store.tag_counts())

    def tag_counts(self) -> dict[str, int]:
        return self.store.tag_counts()

    def set_tags(self, uids: Sequence[str], tags: Sequence[str]) -> list[str]:
        """Give these messages exactly these tags (Mailpit's PUT /api/v1/tags)."""
        clean = clean_tags(tags)
        return self._publish_tags(self.store.write(lambda s: s.set_tags(uids, clean)))

    def rename_tag(self, old: str, new: str) -> list[str]:
        """Rename a tag (Mailpit's PUT /api/v1/tags/{Tag}); raises TagError, as Mailpit
        answers, for a name that cleans to nothing, an unknown tag or one that exists."""
        new_clean = clean_tag(new)
        if not new_clean:
            raise TagError(f"invalid tag name: {new_clean}")
        if new_clean == old:
            return []

        def job(store: StoreBackend) -> list[tuple[str, list[str]]] | TagError:
            # A refusal is an answer, not a failed job (which the writer would log and retry).
            try:
                return store.rename_tag(old, new_clean)
            except TagError as exc:
                return exc

        changed = self.store.write(job)
        if isinstance(changed, TagError):
            raise changed
        return self._publish_tags(changed, prune=True)

    def delete_tag(self, tag: str) -> list[str]:
        return self._publish_tags(self.store.write(lambda s: s.rename_tag(tag, "")), prune=True)

    def _publish_tags(
        self, changed: list[tuple[str, list[str]]], *, prune: bool = False
    ) -> list[str]:
        for uid, tags in changed:
            self.bus.publish(events.Update({"ID": uid, "Tags": tags}))
        if prune:
            # Mailpit follows a tag rename or delete with a prune, on which its clients reload
            # (the tag list changed); nothing was removed.
            self.bus.publish(events.Prune({"IDs": []}))
        return [uid for uid, _ in changed]

    def prune(self) -> list[str]:
        cfg = self.config
        older = time.time() - cfg.max_age if cfg.max_age else None
        pruned = self.store.write(lambda s: s.prune(cfg.max_messages, older))
        if pruned:
            self.deleted += len(pruned)
            self.bus.publish(events.Prune({"IDs": pruned}))
            self._stats_dirty.set()
        return pruned

    # -- relay outbox ----------------------------------------------------------------------

    @staticmethod
    def _plan_outbox(
        hooks: DeliveryHooks, envelope: Envelope, origin: dict[str, Any]
    ) -> list[OutboxItem]:
        if hooks.plan_outbox is None:
            return []
        try:
            return hooks.plan_outbox(envelope, origin)
        except Exception:  # a relay bug must not cost the message its 250
            log.exception("planning the relay of a new message failed")
            return []

    def queue_relay(
        self, msg_id: str, kind: str, mail_from: str, rcpts: Sequence[str], raw: bytes
    ) -> int:
        """Queue what to send for a stored message (the relay worker sends it); its outbox id."""
        uid = self.resolve(msg_id)
        now = time.time()
        item = self.store.write(lambda s: s.outbox_add(uid, kind, mail_from, rcpts, raw, now))
        if self.hooks.outbox_ready is not None:
            self.hooks.outbox_ready()
        return item

    def outbox_due(self, now: float) -> Sequence[Any]:
        return self.store.outbox_due(now)

    def outbox_next_time(self) -> float | None:
        return self.store.outbox_next_time()

    def outbox_item(self, item_id: int) -> Any:
        return self.store.outbox_item(item_id)

    def record_relay_attempt(
        self,
        item_id: int,
        attempt: dict[str, Any],
        *,
        state: str,
        recipients: Sequence[str],
        next_attempt: float,
    ) -> None:
        self.store.write(
            lambda s: s.outbox_record(
                item_id, attempt, state=state, recipients=recipients, next_attempt=next_attempt
            )
        )
        self.telemetry.inc("relay_attempts", attempt["outcome"])

    def relay_history(self, msg_id: str) -> dict[str, Any]:
        """The message's relay queue entries and attempts, as the API shows them."""
        uid = self.resolve(msg_id)
        if self.store.summary(uid) is None:
            raise MessageNotFound(msg_id)
        items, attempts = self.store.relay_history(uid)
        return relay_history_to_api(uid, items, attempts)

    # -- lifecycle -------------------------------------------------------------------------

    def _stats_loop(self) -> None:
        # Stats are throttled: many deliveries in a burst give one event per quarter second.
        last_age_check = time.monotonic()
        while not self._closing.is_set():
            if self._stats_dirty.wait(timeout=1.0):
                self._stats_dirty.clear()
                try:
                    total, unread = self.counts()
                except Exception:
                    continue
                self.bus.publish(events.Stats(stats_data(total, unread)))
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
