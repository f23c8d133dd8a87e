"""The mailbox service: the only writer. Delivers, reads, lists, deletes, marks and prunes
messages, and publishes an event after every commit."""

from __future__ import annotations

import html as htmllib
import json
import logging
import os
import re
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

from mailpit_py import __version__, events, jsontext
from mailpit_py.config.settings import Config
from mailpit_py.ids import new_id
from mailpit_py.mailbox.hooks import NO_HOOKS, DeliveryHooks, OutboxItem
from mailpit_py.models import Address, Envelope, ParsedMessage, Part
from mailpit_py.observability.logs import log_session
from mailpit_py.observability.stats import MinuteCounter, refusals
from mailpit_py.observability.telemetry import Telemetry
from mailpit_py.parse.message import parse_message
from mailpit_py.store import detailcodec
from mailpit_py.store.interface import StoreBackend
from mailpit_py.store.records import MessageRecord, SessionRecord, Ticket
from mailpit_py.store.search import SearchError, index_text, parse_query
from mailpit_py.store.sqlite import MEMORY, Store
from mailpit_py.timefmt import rfc3339

log = logging.getLogger("mailpit_py.mailbox")


INLINE_PARSE_LIMIT = 256 * 1024  # bytes; larger messages are parsed off the caller's thread
SIZE_CLASSES = (1024, 10 * 1024, 100 * 1024, 1024**2, 10 * 1024**2)  # bytes, statistics view
STATS_TOP = 10  # senders and recipient domains listed by the statistics view
STATS_COSTLY = 0.1  # seconds: aggregates slower than this may be shown a little stale


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


# Address lists -> their JSON: an app sends from the same few addresses to the same few, so
# most messages find theirs here (bounded: emptied when full).
_ADDR_JSON: dict[tuple[Address, ...], str] = {}
ADDR_JSON_CACHE = 4096


def _addr_json(addrs: Sequence[Address]) -> str:
    if not addrs:
        return "[]"  # most messages have no Cc, Bcc or Reply-To: skip the encoder
    key = tuple(addrs)
    text = _ADDR_JSON.get(key)
    if text is None:
        if len(_ADDR_JSON) >= ADDR_JSON_CACHE:
            _ADDR_JSON.clear()
        text = _ADDR_JSON[key] = jsontext.dumps([a.to_api() for a in addrs])
    return text


def summary_to_api(row: Any) -> dict[str, Any]:
    """A store summary row -> Mailpit's MessageSummary JSON object."""
    from_list = json.loads(row["from_json"])
    return {
        "ID": row["uid"],
        "MessageID": row["message_id"],
        "Read": bool(row["read"]),
        "From": from_list[0] if from_list else {"Name": "", "Address": ""},
        "To": json.loads(row["to_json"]),
        "Cc": json.loads(row["cc_json"]),
        "Bcc": json.loads(row["bcc_json"]),
        "ReplyTo": json.loads(row["reply_to_json"]),
        "Subject": row["subject"],
        "Created": rfc3339(row["created"]),
        "Username": row["username"],
        "Tags": json.loads(row["tags_json"]),
        "Size": row["size"],
        "Attachments": row["attachments"],
        "Snippet": row["snippet"],
    }


def record_summary(rec: MessageRecord) -> dict[str, Any]:
    """The MessageSummary of a just-stored record, without reading it back."""
    return summary_to_api(
        {
            "uid": rec.uid,
            "message_id": rec.message_id,
            "read": 0,
            "from_json": rec.from_json,
            "to_json": rec.to_json,
            "cc_json": rec.cc_json,
            "bcc_json": rec.bcc_json,
            "reply_to_json": rec.reply_to_json,
            "subject": rec.subject,
            "created": rec.created,
            "username": rec.username,
            "tags_json": json.dumps(sorted(set(rec.tags))),
            "size": rec.size,
            "attachments": rec.attachments,
            "snippet": rec.snippet,
        }
    )


@dataclass(frozen=True)
class StoredMessage:
    """A message as read back: summary fields, what was parsed at ingest, and its SMTP exchange."""

    summary: dict[str, Any]
    detail: dict[str, Any]
    transcript: list[list[Any]]
    session_id: str

    @property
    def id(self) -> str:
        return str(self.summary["ID"])

    def to_api(self) -> dict[str, Any]:
        """Mailpit's Message object, plus our own Warnings, Envelope and SessionID."""
        d = self.detail
        s = self.summary
        return {
            "ID": s["ID"],
            "MessageID": s["MessageID"],
            "Read": s["Read"],
            "From": s["From"],
            "To": s["To"],
            "Cc": s["Cc"],
            "Bcc": s["Bcc"],
            "ReplyTo": s["ReplyTo"],
            "ReturnPath": d["ReturnPath"],
            "Subject": s["Subject"],
            "ListUnsubscribe": d["ListUnsubscribe"],
            "Date": d["Date"] or s["Created"],
            "Created": s["Created"],
            "Tags": s["Tags"],
            "Username": s["Username"],
            "Text": d["Text"],
            "HTML": d["HTML"],
            "Size": s["Size"],
            "Inline": d["Inline"],
            "Attachments": d["Attachments"],
            "Warnings": d["Warnings"],
            "Envelope": d["Envelope"],
            "SessionID": self.session_id,
        }

    def headers(self) -> dict[str, list[str]]:
        """Mailpit's headers object: each name with its values in order."""
        out: dict[str, list[str]] = {}
        for name, value in self.detail["Headers"]:
            out.setdefault(name, []).append(value)
        return out

    def part_filename(self, part_id: str) -> str:
        for part in (*self.detail["Inline"], *self.detail["Attachments"]):
            if part["PartID"] == part_id:
                return str(part["FileName"])
        return ""

    def html_with_parts(self, part_url: str) -> str:
        """The HTML body with `cid:` references pointed at the part URLs (RFC 2392)."""
        html = str(self.detail["HTML"])
        if "cid:" not in html:
            return html
        by_cid = {
            p["ContentID"]: p["PartID"]
            for p in (*self.detail["Inline"], *self.detail["Attachments"])
            if p["ContentID"]
        }

        def swap(m: re.Match[str]) -> str:
            pid = by_cid.get(urllib.parse.unquote(m.group(2)))
            return f"{m.group(1)}{part_url}{pid}" if pid else m.group(0)

        return _CID_REF.sub(swap, html)

    def transcript_to_api(self) -> list[dict[str, Any]]:
        return [{"Time": t, "Dir": d, "Line": line} for t, d, line in self.transcript]


class IndexEntry(NamedTuple):
    """One message as mail clients number it: IMAP UID (never reused), ID, size, read, time."""

    imap_uid: int
    uid: str
    size: int
    read: int
    created: float


_CID_REF = re.compile(r"""(["'(=\s])cid:([^"')\s>]+)""", re.I)
_TAG_RE = re.compile(r"<(script|style|head)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)


def _html_text(html: str) -> str:
    return htmllib.unescape(_TAG_RE.sub(" ", html))


def build_record(
    uid: str,
    parsed: ParsedMessage,
    raw: bytes,
    *,
    created: float,
    username: str,
    session_uid: str,
    transcript: Sequence[Sequence[Any]] | str,
    envelope: Envelope,
    origin: dict[str, Any] | None = None,
) -> MessageRecord:
    """Turn a parsed message into what the store keeps (pure; runs off the writer thread)."""
    parts = [*parsed.inline, *parsed.attachments]
    return MessageRecord(
        uid=uid,
        mailbox="default",
        created=created,
        size=len(raw),
        message_id=parsed.message_id,
        subject=parsed.subject,
        from_json=_addr_json([parsed.from_addr] if parsed.from_addr else []),
        to_json=_addr_json(parsed.to),
        cc_json=_addr_json(parsed.cc),
        bcc_json=_addr_json(parsed.bcc),
        reply_to_json=_addr_json(parsed.reply_to),
        username=username,
        snippet=parsed.snippet,
        attachments=len(parsed.attachments),
        inline_count=len(parsed.inline),
        session_uid=session_uid,
        raw=raw,
        detail=detailcodec.encode(message_detail(parsed, envelope, origin)),
        transcript=transcript if isinstance(transcript, str) else jsontext.dumps(list(transcript)),
        parts=[(p.part_id, p.content_type, p.data) for p in parts],
        tags=list(parsed.tags),
        headers=list(parsed.headers),
        fts=_index_columns(parsed, parts),
    )


def message_detail(
    parsed: ParsedMessage, envelope: Envelope, origin: dict[str, Any] | None
) -> dict[str, Any]:
    """What the message view shows beyond the summary, as the store keeps it."""
    return {
        "ReturnPath": parsed.return_path,
        "ListUnsubscribe": parsed.list_unsubscribe.to_api(),
        "Date": rfc3339(parsed.date) if parsed.date else "",
        "Text": parsed.text,
        "HTML": parsed.html,
        "Inline": [p.to_api() for p in parsed.inline],
        "Attachments": [p.to_api() for p in parsed.attachments],
        "Headers": parsed.headers,  # (name, value) tuples, read back as lists (detailcodec)
        "Warnings": list(parsed.warnings),
        # The envelope and where it came from (HELO name, peer, TLS, AUTH user): ours, additive.
        "Envelope": {
            "From": envelope.mail_from,
            "To": list(envelope.rcpt_to),
            **(origin or {}),
        },
        "MessageIDGenerated": parsed.message_id_generated,
    }


# Search sees this much of a body: a bounded prefix, so that a 50 MB body costs the index (and
# the memory of its ingest) no more than a 1 MB one; the whole body stays in the message.
SEARCH_BODY_CHARS = 1024 * 1024
# HTML read to find that much visible text (markup is mostly tags and attributes).
SEARCH_HTML_CHARS = 4 * SEARCH_BODY_CHARS


def _search_body(parsed: ParsedMessage) -> str:
    """The start of the text body (else of the HTML body's visible text) that search indexes."""
    if parsed.text:
        return parsed.text[:SEARCH_BODY_CHARS]
    if parsed.html:
        return _html_text(parsed.html[:SEARCH_HTML_CHARS])[:SEARCH_BODY_CHARS]
    return ""


def _index_columns(parsed: ParsedMessage, parts: Sequence[Part]) -> tuple[str, ...]:
    """The search index's columns: subject, addresses, body, attachment names, headers."""
    every = [
        *([parsed.from_addr] if parsed.from_addr else []),
        *parsed.to,
        *parsed.cc,
        *parsed.bcc,
        *parsed.reply_to,
    ]
    return (
        index_text(parsed.subject),
        index_text(" ".join(f"{a.name} {a.address}" for a in every)),
        index_text(_search_body(parsed)),
        index_text(" ".join(p.filename for p in parts)),
        # The headers column stays empty: no query reads it (free text searches what Mailpit's
        # does, and header:Name:value has the headers table). Filling it cost ~10% of the index.
        "",
    )


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
        self.store: StoreBackend = Store(path, busy_timeout=busy_timeout)
        self.store.on_batch = self.telemetry.observe_batch
        self.arrivals = MinuteCounter()  # messages stored per minute, for the statistics view
        self.database_path = path if path != MEMORY else MEMORY
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
        # (version, when, seconds it took, result) of the statistics view's costly aggregates.
        self._aggregates_cache: tuple[tuple[int, int], float, float, Any] | None = None
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
            uid, raw, detail = found
            env = detailcodec.decode(detail).get("Envelope") or {}
            envelope = Envelope(str(env.get("From", "")), tuple(env.get("To") or ()))
            rec = build_record(
                uid,
                parse_message(raw, envelope),
                raw,
                created=0.0,
                username="",
                session_uid="",
                transcript=(),
                envelope=envelope,
            )
            rebuilt.append((rowid, rec))
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
    ) -> None:
        """Store a message, then call `then(uid, None)` once committed, or `then(None, error)`.

        The SMTP path's form of deliver: no Future per message. `then` runs in the writer
        thread, or, for a failure before the message reached it (a closed store, a parse that
        raised), in the thread that met the failure; it must return at once. `transcript` may
        be the JSON text already (an SMTP session renders its unchanging preamble once).
        A `ticket` cancelled before the writer starts the message's job leaves it unstored,
        and `then` is not called.
        """
        uid = uid or new_id()
        hooks = self.hooks
        created = received_at if received_at is not None else time.time()
        t0 = time.monotonic()  # the caller hands the message over at the end of DATA
        self.last_delivery = t0

        def prepare() -> MessageRecord:
            parsed = parse_message(raw, envelope)
            if tags:
                parsed = parsed._replace(tags=tuple(clean_tags([*parsed.tags, *tags])))
            return build_record(
                uid,
                parsed,
                raw,
                created=created,
                username=username,
                session_uid=session_uid,
                transcript=transcript,
                envelope=envelope,
                origin=origin,
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

            plan = self._plan_outbox(hooks, envelope, origin or {})

            def job(store: StoreBackend) -> list[str]:
                store.insert_message(rec)
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
                    "message %s from <%s> to %s subject %r size %d",
                    uid,
                    envelope.mail_from,
                    ", ".join(f"<{r}>" for r in envelope.rcpt_to),
                    rec.subject,
                    rec.size,
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

    def list_messages(self, start: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        """Summaries, newest first."""
        return [summary_to_api(r) for r in self.store.list_summaries(start, limit)]

    def search(
        self, query: str, start: int = 0, limit: int = 50, tz: str = ""
    ) -> tuple[list[dict[str, Any]], int, int]:
        """(summaries newest first, matches, unread matches); SearchError on a bad query."""
        terms = parse_query(query, tz)
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
        for uid in gone:
            self.bus.publish(events.Delete({"ID": uid}))
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

    def _aggregates(self) -> tuple[list[int], list[tuple[str, int]], list[tuple[str, int]]]:
        """Sizes, top senders and top recipient domains: each reads every message (2 s at
        100,000), so a result is reused while no message came or went, and otherwise for ten
        times as long as it took when that was over STATS_COSTLY: a small mailbox is always
        current, a large one is not rescanned at every reload of the view (every 10 s)."""
        version = (self.accepted, self.deleted)
        cached = self._aggregates_cache
        now = time.monotonic()
        if cached is not None and (
            cached[0] == version or (cached[2] >= STATS_COSTLY and now - cached[1] < 10 * cached[2])
        ):
            return cached[3]
        result = (
            self.store.size_histogram(SIZE_CLASSES),
            self.store.top_senders(STATS_TOP),
            self.store.top_recipient_domains(STATS_TOP),
        )
        self._aggregates_cache = (version, now, time.monotonic() - now, result)
        return result

    def statistics(self, now: float | None = None) -> dict[str, Any]:
        """What the statistics view draws (GET /api/v1/stats): arrivals per minute over the
        last hour, refusals by reason, message sizes, top senders and recipient domains."""
        now = time.time() if now is None else now
        sizes, senders, domains = self._aggregates()
        total, unread = self.counts()
        return {
            "Generated": rfc3339(now),
            "PerMinute": [
                {"Minute": rfc3339(start), "Messages": n} for start, n in self.arrivals.series(now)
            ],
            "Refusals": refusals(self.telemetry),
            "Sizes": [
                {"UpTo": bound, "Messages": n}
                for bound, n in zip([*SIZE_CLASSES, None], sizes, strict=True)
            ],
            "TopSenders": [{"Address": a, "Messages": n} for a, n in senders],
            "TopRecipientDomains": [{"Domain": d, "Messages": n} for d, n in domains],
            "Totals": {
                "Messages": total,
                "Unread": unread,
                "Accepted": self.accepted,
                "AcceptedSize": self.accepted_size,
                "Deleted": self.deleted,
            },
        }

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
        """The stored check results of a message (issue 9), None when not checked yet."""
        uid = self.resolve(msg_id)
        found = self.store.checks(uid)
        if found is None:
            if self.store.summary(uid) is None:
                raise MessageNotFound(msg_id)
            return None
        return json.loads(found)  # type: ignore[no-any-return]

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

    def delete(self, uids: Sequence[str]) -> list[str]:
        gone = self.store.write(lambda s: s.delete_messages(uids))
        for uid in gone:
            self.bus.publish(events.Delete({"ID": uid}))
        self.deleted += len(gone)
        self._stats_dirty.set()
        return gone

    def delete_all(self) -> int:
        n = self.store.write(lambda s: s.delete_all())
        self.deleted += n
        self.bus.publish(events.Truncate())
        self._stats_dirty.set()
        return n

    def tags(self) -> list[str]:
        return list(self.store.tag_counts())

    def tag_counts(self) -> dict[str, int]:
        return self.store.tag_counts()

    def set_tags(self, uids: Sequence[str], tags: Sequence[str]) -> list[str]:
        """Give these messages exactly these tags (Mailpit's PUT /api/v1/tags)."""
        clean = clean_tags(tags)
        return self._publish_tags(self.store.write(lambda s: s.set_tags(uids, clean)))

    def rename_tag(self, old: str, new: str) -> list[str]:
        (new_clean,) = clean_tags([new]) or [""]
        return self._publish_tags(self.store.write(lambda s: s.rename_tag(old, new_clean)))

    def delete_tag(self, tag: str) -> list[str]:
        return self._publish_tags(self.store.write(lambda s: s.rename_tag(tag, "")))

    def _publish_tags(self, changed: list[tuple[str, list[str]]]) -> list[str]:
        for uid, tags in changed:
            self.bus.publish(events.Update({"ID": uid, "Tags": tags}))
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
        return {
            "ID": uid,
            "Queue": [
                {
                    "ID": r["id"],
                    "Kind": r["kind"],
                    "From": r["mail_from"],
                    "To": json.loads(r["recipients"]),
                    "Created": rfc3339(r["created"]),
                    "Attempts": r["attempts"],
                    "NextAttempt": rfc3339(r["next_attempt"]) if r["state"] == "pending" else "",
                    "State": r["state"],
                }
                for r in items
            ],
            "Attempts": [
                {
                    "Time": rfc3339(a["at"]),
                    "Kind": a["kind"],
                    "To": json.loads(a["recipients"]),
                    "Server": a["server"],
                    "Reply": a["reply"],
                    "Outcome": a["outcome"],
                }
                for a in attempts
            ],
        }

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


def stats_data(total: int, unread: int) -> dict[str, Any]:
    """The Data of a `stats` event, as Mailpit sends it."""
    return {"Total": total, "Unread": unread, "Version": __version__}


_TAG_SPACE = re.compile(r"\s+")


def clean_tags(tags: Sequence[str]) -> list[str]:
    """Trim, collapse inner whitespace, drop empties and duplicates, keep order."""
    out: list[str] = []
    for tag in tags:
        t = _TAG_SPACE.sub(" ", str(tag)).strip()[:100]
        if t and t not in out:
            out.append(t)
    return out


def session_to_api(row: Any) -> dict[str, Any]:
    return {
        "ID": row["uid"],
        "Started": rfc3339(row["started"]),
        "Ended": rfc3339(row["ended"]),
        "Peer": row["peer"],
        "Local": row["local"],
        "Helo": row["helo"],
        "TLS": bool(row["tls"]),
        "Username": row["username"],
        "Outcome": row["outcome"],
        "Messages": json.loads(row["messages"]),
        "Transcript": [
            {"Time": t, "Dir": d, "Line": line} for t, d, line in json.loads(row["transcript"])
        ],
    }
