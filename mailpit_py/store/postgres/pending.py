"""The PostgreSQL store's message inserts, gathered per transaction: its first message goes in
at once (with the lock that orders ids), the later ones take the next ids and are queued, and the
writer writes every queued message with its data, parts, tags and index rows in one statement
(one multi-row INSERT per table), before the commit or before any other statement of the
transaction.

One statement per message cost a round trip, an executor start-up and a run of the count
triggers each; a batch of eight messages now costs two of each, and a lone message what it
did (see bench/NOTES.md)."""

from __future__ import annotations

from typing import Any

import psycopg

from mailpit_py.store.postgres.base import PgParts, text
from mailpit_py.store.postgres.words import substring_text, tsvector_literal
from mailpit_py.store.rawcodec import pack
from mailpit_py.store.records import MessageRecord, StoreError

# A transaction's first message goes in at once, in one statement that takes the count's row
# first: an instance sharing the database that inserts meanwhile waits here, without an id,
# until this transaction commits, so ids (IMAP UIDs) become visible in the order they grow. Every
# writer of messages takes that lock first, so while it is held nobody else takes an id: the
# transaction's later messages are numbered on from this one's and queued, and the sequence is
# moved on when they are written (setval: an id is never handed out twice, none is skipped).
# Returns the id and the counts before it (of every mailbox, and of the message's own).
#
# The counts (every mailbox's, the message's own mailbox's) are added here, in the statement
# that inserts (schema 6 dropped the insert trigger that added them: its run cost ~130 us of
# the server's CPU per statement), under that lock: other writers take it before the counts too.
_FIRST = (
    "WITH l AS (SELECT value FROM counters WHERE name = 'total' FOR UPDATE), "
    "m AS (INSERT INTO messages (uid, mailbox, created, size, message_id, subject, "
    "from_json, to_json, cc_json, bcc_json, reply_to_json, username, snippet, "
    "attachments, inline_count, session_uid, refused, listener) "
    "SELECT %s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s FROM l RETURNING id), "
    "d AS (INSERT INTO message_data (id, detail, detail_is_text, transcript, raw) "
    "SELECT id, %b, %s, %s, %b FROM m), "
    "p AS (INSERT INTO parts (message, part_id, content_type, data) "
    "SELECT m.id, p.part_id, p.content_type, p.data FROM m, "
    "unnest(%b::text[], %b::text[], %b::bytea[]) AS p(part_id, content_type, data) "
    "ON CONFLICT DO NOTHING), "
    "t AS (INSERT INTO tags (message, tag) SELECT DISTINCT m.id, t.tag FROM m, "
    "unnest(%b::text[]) AS t(tag)), "
    "h AS (INSERT INTO headers (message, name, value) SELECT m.id, h.name, h.value "
    "FROM m, unnest(%b::text[], %b::text[]) AS h(name, value)), "
    "f AS (INSERT INTO messages_fts (id, words, text) SELECT id, %s::tsvector, %s FROM m), "
    "c AS (UPDATE counters SET value = value + 1 WHERE name IN ('total', 'unread')), "
    "b AS (INSERT INTO mailboxes AS b (name, created, messages, unread) SELECT %s, %s, 1, 1 "
    "ON CONFLICT (name) DO UPDATE SET messages = b.messages + 1, unread = b.unread + 1) "
    "SELECT m.id, l.value, (SELECT b.messages FROM mailboxes b WHERE b.name = %s) FROM m, l"
)
_MESSAGE_COLUMNS = (
    "id, uid, mailbox, created, size, message_id, subject, from_json, to_json, cc_json, "
    "bcc_json, reply_to_json, username, snippet, attachments, inline_count, session_uid, "
    "refused, listener"
)
_MESSAGE_TYPES = (
    "bigint[], text[], text[], float8[], bigint[], text[], text[], text[], text[], text[], "
    "text[], text[], text[], text[], int[], int[], text[], text[], text[]"
)


def _arrays(types: str) -> str:
    return ", ".join(f"%b::{t.strip()}" for t in types.split(","))


# (every value sent in binary: no quoting of bodies and index text)
_FLUSH = (
    f"WITH m AS (INSERT INTO messages ({_MESSAGE_COLUMNS}) "
    f"SELECT * FROM unnest({_arrays(_MESSAGE_TYPES)})), "
    "d AS (INSERT INTO message_data (id, detail, detail_is_text, transcript, raw) "
    f"SELECT * FROM unnest({_arrays('bigint[], bytea[], bool[], text[], bytea[]')})), "
    "p AS (INSERT INTO parts (message, part_id, content_type, data) "
    f"SELECT * FROM unnest({_arrays('bigint[], text[], text[], bytea[]')}) "
    "ON CONFLICT DO NOTHING), "
    "t AS (INSERT INTO tags (message, tag) "
    f"SELECT DISTINCT * FROM unnest({_arrays('bigint[], text[]')})), "
    "h AS (INSERT INTO headers (message, name, value) "
    f"SELECT * FROM unnest({_arrays('bigint[], text[], text[]')})), "
    "f AS (INSERT INTO messages_fts (id, words, text) SELECT i, w::tsvector, x "
    f"FROM unnest({_arrays('bigint[], text[], text[]')}) AS u(i, w, x)), "
    # (the counts, as _FIRST adds them: every mailbox's, then each mailbox's in name order)
    "c AS (UPDATE counters SET value = value + %s WHERE name IN ('total', 'unread')), "
    "b AS (INSERT INTO mailboxes AS b (name, created, messages, unread) SELECT u.*, u.n "
    f"FROM unnest({_arrays('text[], float8[], bigint[]')}) AS u(name, created, n) "
    "ORDER BY u.name ON CONFLICT (name) DO UPDATE SET messages = b.messages + excluded.messages, "
    "unread = b.unread + excluded.unread) "
    "SELECT setval('messages_id_seq', %s)"
)


class PgPendingInserts(PgParts):
    """insert_message and what it queues (writer thread only)."""

    _pending: list[tuple[int, MessageRecord]]  # queued, not written yet
    _last_id: int | None  # the last id taken under the count's lock (None: not taken yet)
    # Message counts of every mailbox (None) and of some, as this transaction sees them with
    # its queued messages: what retention compares with its bound, without a query.
    _known: dict[str | None, int]

    def _init_pending(self) -> None:
        self._pending = []
        self._last_id = None
        self._known = {}

    def _forget_pending(self) -> None:
        """The transaction (or the savepoint the ids were taken in) was rolled back: nothing
        queued is written, and the lock the ids were taken under may be gone with it."""
        self._pending.clear()
        self._last_id = None
        self._known.clear()

    def insert_message(self, rec: MessageRecord) -> int:
        conn = self._conn_in_job()
        box = text(rec.mailbox)
        if self._last_id is None:
            # (nothing is queued before the first: the lock is taken with it)
            row = conn.execute(_FIRST, self._first_params(rec)).fetchone()
            assert row is not None
            self._last_id = int(row[0])
            self._known[None] = int(row[1]) + 1
            self._known[box] = int(row[2] or 0) + 1
            return self._last_id
        self._last_id += 1
        rowid = self._last_id
        self._pending.append((rowid, rec))
        for key in (None, box):  # (a count not known is read when retention asks for it)
            if key in self._known:
                self._known[key] += 1
        return rowid

    def _first_params(self, rec: MessageRecord) -> tuple[Any, ...]:
        detail = rec.detail
        is_text = isinstance(detail, str)
        if isinstance(detail, str):
            detail = detail.encode("utf-8", "surrogatepass")
        columns = [text(c) for c in rec.fts[:4]]
        return (
            text(rec.uid), text(rec.mailbox), rec.created, rec.size, text(rec.message_id),
            text(rec.subject), text(rec.from_json), text(rec.to_json), text(rec.cc_json),
            text(rec.bcc_json), text(rec.reply_to_json), text(rec.username),
            text(rec.snippet), rec.attachments, rec.inline_count, text(rec.session_uid),
            text(rec.refused), text(rec.listener),
            detail, is_text, text(rec.transcript), pack(rec.raw, self.compression),
            [text(pid) for pid, _, _ in rec.parts], [text(ctype) for _, ctype, _ in rec.parts],
            [data for _, _, data in rec.parts], [text(t) for t in rec.tags],
            [text(n) for n, _ in rec.headers], [text(v) for _, v in rec.headers],
            tsvector_literal(columns), substring_text(columns),
            text(rec.mailbox), rec.created, text(rec.mailbox),
        )  # fmt: skip

    def _box_count(self, conn: psycopg.Connection[Any], box: str) -> int:
        row = conn.execute("SELECT messages FROM mailboxes WHERE name = %s", (box,)).fetchone()
        return (int(row[0]) if row else 0) + sum(1 for _, r in self._pending if r.mailbox == box)

    def _count_kept(self, box: str | None) -> int:
        """The message count (of `box`, or of every mailbox) this transaction sees, queued
        messages included: kept by the triggers, read once per transaction at most."""
        key = None if box is None else text(box)
        known = self._known.get(key)
        if known is not None:
            return known
        conn = self._wconn  # (writes what is queued first)
        if key is None:
            row = conn.execute("SELECT value FROM counters WHERE name = 'total'").fetchone()
            count = int(row[0]) if row else 0
        else:
            count = self._box_count(conn, key)
        self._known[key] = count
        return count

    def _flush_pending(self, conn: psycopg.Connection[Any]) -> None:
        """Write every queued message in one statement."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        messages: list[list[Any]] = [[] for _ in range(19)]
        data: list[list[Any]] = [[] for _ in range(5)]
        parts: list[list[Any]] = [[], [], [], []]
        tags: list[list[Any]] = [[], []]
        headers: list[list[Any]] = [[], [], []]
        index: list[list[Any]] = [[], [], []]
        boxes: dict[str, tuple[float, int]] = {}  # mailbox -> its first message's time, count
        for rowid, rec in pending:
            values = (
                rowid, text(rec.uid), text(rec.mailbox), rec.created, rec.size,
                text(rec.message_id), text(rec.subject), text(rec.from_json),
                text(rec.to_json), text(rec.cc_json), text(rec.bcc_json),
                text(rec.reply_to_json), text(rec.username), text(rec.snippet),
                rec.attachments, rec.inline_count, text(rec.session_uid), text(rec.refused),
                text(rec.listener),
            )  # fmt: skip
            for column, value in zip(messages, values, strict=True):
                column.append(value)
            detail = rec.detail
            is_text = isinstance(detail, str)
            if isinstance(detail, str):
                detail = detail.encode("utf-8", "surrogatepass")
            for column, value in zip(
                data,
                (rowid, detail, is_text, text(rec.transcript), pack(rec.raw, self.compression)),
                strict=True,
            ):
                column.append(value)
            for part_id, content_type, blob in rec.parts:
                parts[0].append(rowid)
                parts[1].append(text(part_id))
                parts[2].append(text(content_type))
                parts[3].append(blob)
            for tag in rec.tags:
                tags[0].append(rowid)
                tags[1].append(text(tag))
            for name, value in rec.headers:
                headers[0].append(rowid)
                headers[1].append(text(name))
                headers[2].append(text(value))
            columns = [text(c) for c in rec.fts[:4]]
            index[0].append(rowid)
            index[1].append(tsvector_literal(columns))
            index[2].append(substring_text(columns))
            box = text(rec.mailbox)
            created, count = boxes.get(box, (rec.created, 0))
            boxes[box] = (min(created, rec.created), count + 1)
        counts = [list(boxes), [c for c, _ in boxes.values()], [n for _, n in boxes.values()]]
        conn.execute(
            _FLUSH,
            (*messages, *data, *parts, *tags, *headers, *index, len(pending), *counts,
             max(messages[0])),
        )  # fmt: skip

    def _conn_in_job(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self, "_conn", None)
        if conn is None:
            raise StoreError("a store write ran outside the writer")
        return conn
