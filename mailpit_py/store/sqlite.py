"""SQLite storage: schema and migrations, one writer thread with group commit, and queries.

Only `mailbox` calls this module, so a second backend (PostgreSQL is planned) is an addition
behind the same narrow interface rather than a rewrite. Nothing here knows about the web or SMTP.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from mailpit_py.store.search import Term
from mailpit_py.store.search_sql import SCANNING_KINDS, build_where, ids_and_read_only

log = logging.getLogger(__name__)
T = TypeVar("T")

MEMORY = ":memory:"

# Each entry moves the schema one version on; PRAGMA user_version records how far a file got.
# The SMTP session log keeps at most this many bytes of transcripts (besides its row count).
SESSION_LOG_BYTES = 2 * 1024 * 1024

# The search index (FTS rows and header rows) of new messages is written in a transaction of its
# own after theirs: once the writer has had nothing to do for INDEX_DELAY seconds, or this many
# messages or bytes of text are waiting (see Store._run_index). Every search first has it written
# (index_barrier), so a message whose commit was confirmed is always found.
INDEX_DELAY = 0.05
# After a failed index write (a full disk, a lock held elsewhere), the next try waits twice as
# long as the last, up to this many seconds: retrying every INDEX_DELAY logged 15 warnings a
# second and kept a core 10% busy while the disk stayed full.
INDEX_BACKOFF_MAX = 5.0

# Readiness (health) writes this many bytes through the writer and rolls them back: a write that
# needs new pages, as a message does, fails where the database cannot grow (SQLite's page limit,
# an I/O error, a read-only file), and the probe waits in the same queue as deliveries. A file
# database is also not ready while its disk has less than HEALTH_MIN_FREE bytes free.
HEALTH_PROBE_BYTES = 256 * 1024
HEALTH_MIN_FREE = 1 << 20
INDEX_BATCH = 256
INDEX_BATCH_BYTES = 8 << 20

# Group commit under concurrent load: when the queue runs dry before a batch has as many jobs as
# the last one had, the writer waits up to this long (seconds, once per batch) for the rest. The
# sessions whose messages are on their way would otherwise each cost a commit of their own;
# with 8 sessions, batches of ~3.7 became ~5.2 and the server's CPU per message fell 605 -> 488
# us. A lone client never waits: its batches have one job, and one job is as many as the last.
GROUP_LINGER = 0.0005

# Read connections kept open between reads (file databases). A read takes an idle one or opens
# one, and gives it back after; beyond this many idle ones it is closed. A connection per thread
# was never closed: each HTTP request runs in a new thread, so every request left ~2 descriptors
# and ~140 KB behind until the process ran out of descriptors.
READ_POOL = 8

# Values larger than this are written and read in pieces of this size (zeroblob + blobopen).
BLOB_CHUNK = 1 << 20

# The counters table follows messages through these; delete_all drops and recreates them so
# that emptying the mailbox keeps SQLite's truncate fast path (triggers would force per-row).
COUNTER_TRIGGERS: tuple[str, ...] = (
    """CREATE TRIGGER messages_count_insert AFTER INSERT ON messages BEGIN
        UPDATE counters SET value = value + 1 WHERE name = 'total';
        UPDATE counters SET value = value + 1 WHERE name = 'unread' AND new.read = 0;
    END""",
    """CREATE TRIGGER messages_count_delete AFTER DELETE ON messages BEGIN
        UPDATE counters SET value = value - 1 WHERE name = 'total';
        UPDATE counters SET value = value - 1 WHERE name = 'unread' AND old.read = 0;
    END""",
    """CREATE TRIGGER messages_count_read AFTER UPDATE OF read ON messages
        WHEN (old.read = 0) != (new.read = 0) BEGIN
        UPDATE counters SET value = value + (CASE WHEN new.read = 0 THEN 1 ELSE -1 END)
            WHERE name = 'unread';
    END""",
)
COUNTER_TRIGGER_NAMES = ("messages_count_insert", "messages_count_delete", "messages_count_read")
FTS_SCHEMA = """CREATE VIRTUAL TABLE messages_fts USING fts5 (
        subject, addresses, body, attachments, headers,
        tokenize = 'unicode61 remove_diacritics 2'
    )"""

MIGRATIONS: list[str] = [
    """
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a stable order and future UIDs
        uid TEXT NOT NULL UNIQUE,              -- the API's ID
        mailbox TEXT NOT NULL DEFAULT 'default',
        created REAL NOT NULL,
        read INTEGER NOT NULL DEFAULT 0,
        size INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        from_json TEXT NOT NULL,
        to_json TEXT NOT NULL,
        cc_json TEXT NOT NULL,
        bcc_json TEXT NOT NULL,
        reply_to_json TEXT NOT NULL,
        username TEXT NOT NULL DEFAULT '',
        snippet TEXT NOT NULL,
        attachments INTEGER NOT NULL,
        session_uid TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX messages_mailbox_id ON messages (mailbox, id);
    CREATE INDEX messages_created ON messages (created);
    CREATE INDEX messages_unread ON messages (mailbox, read);
    -- Large columns live apart so that listing never pages through raw bytes.
    CREATE TABLE message_data (
        id INTEGER PRIMARY KEY,
        raw BLOB NOT NULL,
        detail TEXT NOT NULL,      -- JSON: everything parsed at ingest that the views show
        transcript TEXT NOT NULL   -- JSON: the SMTP exchange that delivered this message
    );
    CREATE TABLE parts (
        message INTEGER NOT NULL,
        part_id TEXT NOT NULL,
        content_type TEXT NOT NULL,
        data BLOB NOT NULL
    );
    CREATE UNIQUE INDEX parts_message_part ON parts (message, part_id);
    CREATE TABLE tags (
        message INTEGER NOT NULL,
        tag TEXT NOT NULL,
        PRIMARY KEY (message, tag)
    ) WITHOUT ROWID;
    CREATE INDEX tags_tag ON tags (tag);
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        uid TEXT NOT NULL UNIQUE,
        started REAL NOT NULL,
        ended REAL NOT NULL,
        peer TEXT NOT NULL,
        local TEXT NOT NULL,
        helo TEXT NOT NULL,
        tls INTEGER NOT NULL,
        username TEXT NOT NULL,
        outcome TEXT NOT NULL,
        messages TEXT NOT NULL,    -- JSON list of message uids delivered in the session
        transcript TEXT NOT NULL
    );
    CREATE VIRTUAL TABLE messages_fts USING fts5 (
        subject, addresses, body, attachments, headers,
        tokenize = 'unicode61 remove_diacritics 2'
    );
    """,
    # 2: inline-part counts for has:inline, and header values for header:Name:value search.
    """
    ALTER TABLE messages ADD COLUMN inline_count INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE headers (
        message INTEGER NOT NULL,
        name TEXT NOT NULL COLLATE NOCASE,
        value TEXT NOT NULL
    );
    CREATE INDEX headers_name ON headers (name, message);
    CREATE INDEX headers_message ON headers (message);
    """,
    # 3: total and unread kept by triggers (counting 100k rows took 10 ms per list call), and
    # header values in the name index so header: searches read the index alone.
    """
    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO counters SELECT 'total', count(*) FROM messages;
    INSERT INTO counters SELECT 'unread', count(*) FROM messages WHERE read = 0;
    """
    + "\n".join(f"{trigger};" for trigger in COUNTER_TRIGGERS)
    + """
    DROP INDEX headers_name;
    CREATE INDEX headers_name_value ON headers (name, message, value);
    -- The ids alone: OFFSET steps over this slim index, not over the table's fat rows.
    CREATE INDEX messages_ids ON messages (id);
    -- raw moves to the end of its row: SQLite writes a zeroblob lazily only in the last
    -- column, and a big message is written into one in pieces (a 50 MB message cost 106 MB
    -- of memory to insert in the middle of the row, 2 MB at its end).
    CREATE TABLE message_data_v3 (
        id INTEGER PRIMARY KEY,
        detail TEXT NOT NULL,      -- JSON: everything parsed at ingest that the views show
        transcript TEXT NOT NULL,  -- JSON: the SMTP exchange that delivered this message
        raw BLOB NOT NULL
    );
    INSERT INTO message_data_v3 (id, detail, transcript, raw)
        SELECT id, detail, transcript, raw FROM message_data;
    DROP TABLE message_data;
    ALTER TABLE message_data_v3 RENAME TO message_data;
    """,
    # 4 (issue 6): the relay outbox, kept across restarts, and every relay attempt's outcome.
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_uid TEXT NOT NULL,
        kind TEXT NOT NULL,          -- release, relay or forward
        mail_from TEXT NOT NULL,     -- the envelope sender to use
        recipients TEXT NOT NULL,    -- JSON list still to deliver to
        raw BLOB NOT NULL,           -- what to send: a copy, so pruning cannot lose it
        created REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending'  -- pending, sent or failed
    );
    CREATE INDEX outbox_due ON outbox (state, next_attempt);
    CREATE INDEX outbox_message ON outbox (message_uid);
    CREATE TABLE relay_attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_uid TEXT NOT NULL,
        outbox_id INTEGER NOT NULL,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        recipients TEXT NOT NULL,    -- JSON list
        server TEXT NOT NULL,
        reply TEXT NOT NULL,         -- the upstream's reply or the connection error
        outcome TEXT NOT NULL        -- sent, partial, retry or failed
    );
    CREATE INDEX relay_attempts_message ON relay_attempts (message_uid);
    """,
    # 5: message checks (issue 9): DKIM/SPF/DMARC, blocklists, headers, spam score, as JSON.
    """
    CREATE TABLE message_checks (
        message INTEGER PRIMARY KEY,
        checked REAL NOT NULL,
        result TEXT NOT NULL
    );
    """,
    # 6 (issue 10): facts about the database itself. IMAP's UIDVALIDITY is drawn once, when the
    # database is made, so a file keeps it across restarts (the UIDs are messages.id, which
    # AUTOINCREMENT never reuses) and a new database gets a new one.
    """
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    INSERT INTO meta (name, value) VALUES ('imap_uidvalidity', abs(random() % 2147483646) + 1);
    """,
    # 7: each session's size, so the session log is bounded in bytes too, without reading
    # every transcript to add them up.
    """
    ALTER TABLE sessions ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
    """,
    # 8: the session log's row count and size kept by triggers, and a slim index to walk its
    # oldest rows, so bounding it costs a few rows per new session, not a scan of the log
    # (it was 15% of the server's time with a new connection per message); `ended` is in it
    # for the retention rule (insert_session).
    """
    CREATE INDEX sessions_size ON sessions (id, bytes, ended);
    INSERT INTO counters SELECT 'sessions', count(*) FROM sessions;
    INSERT INTO counters SELECT 'session_bytes', coalesce(sum(bytes), 0) FROM sessions;
    CREATE TRIGGER sessions_count_insert AFTER INSERT ON sessions BEGIN
        UPDATE counters SET value = value + 1 WHERE name = 'sessions';
        UPDATE counters SET value = value + new.bytes WHERE name = 'session_bytes';
    END;
    CREATE TRIGGER sessions_count_delete AFTER DELETE ON sessions BEGIN
        UPDATE counters SET value = value - 1 WHERE name = 'sessions';
        UPDATE counters SET value = value - old.bytes WHERE name = 'session_bytes';
    END;
    """,
    # 9: the slim ids index carries each message's read flag too, so a search that picks its
    # messages by id (header:, words, tags) counts its unread matches from the index alone, not
    # from 10,000 table rows (header: search at 100k: 59 -> 41 ms); deep paging uses it as before.
    """
    CREATE INDEX messages_id_read ON messages (id, read);
    DROP INDEX messages_ids;
    """,
    # 10 (issue 10): IMAP flags other than \Seen (which is messages.read), so a client's
    # \Flagged or \Answered survives a restart; they go with their message.
    """
    CREATE TABLE imap_flags (
        message INTEGER NOT NULL,
        flag TEXT NOT NULL,
        PRIMARY KEY (message, flag)
    ) WITHOUT ROWID;
    """,
    # 11: two indexes no query uses (nothing filters on the one mailbox there is; unread counts
    # are kept by triggers, and is:unread reads messages_id_read), yet every message was
    # inserted into both: the writer's work -13% per message, WAL frames 6.00 -> 5.41.
    """
    DROP INDEX IF EXISTS messages_mailbox_id;
    DROP INDEX IF EXISTS messages_unread;
    """,
    # 12: message_data.detail of new rows is a pickle of plain data (detailcodec.py), no longer
    # JSON text; older rows keep their JSON, which is read as before. No table changes: the
    # version tells an older mailpit_py that it cannot read this file, instead of failing on
    # the first new message.
    """
    -- detail: pickled plain data from here on
    """,
]


class StoreError(RuntimeError):
    """The store could not do what was asked (disk full, locked past the deadline, closed)."""


_TICKETS = threading.Lock()  # (one for all tickets: each is taken twice at most, briefly)


class Ticket:
    """A queued write that its submitter may give up on until the writer starts it.

    SMTP answers 451 when a message is not committed by its deadline; a job still waiting then
    must never commit afterwards, or the client's retry stores the message twice. Whichever
    comes first wins: cancel() (the job is skipped) or the writer's start (cancel() then returns
    False, and the submitter waits for the commit that is under way).
    """

    __slots__ = ("_state",)

    def __init__(self) -> None:
        self._state = 0  # 0 waiting, 1 started, 2 cancelled

    def cancel(self) -> bool:
        """True when the job will not run (cancelled now or before); False once it started."""
        with _TICKETS:
            if self._state == 0:
                self._state = 2
            return self._state == 2

    def start(self) -> bool:
        """The writer's side: True when the job may run (it can no longer be cancelled)."""
        with _TICKETS:
            if self._state == 0:
                self._state = 1
            return self._state == 1


class Completion:
    """The side of a Future the writer uses (start, result, error), as one callback.

    concurrent.futures.Future builds a Condition and takes its lock at every step; each message
    delivered over SMTP needs only a call back, once, from the writer thread.
    """

    __slots__ = ("_then", "_ticket")

    def __init__(
        self, then: Callable[[Any, BaseException | None], None], ticket: Ticket | None = None
    ) -> None:
        self._then = then
        self._ticket = ticket

    def set_running_or_notify_cancel(self) -> bool:
        # A cancelled job's submitter has given its answer already: it is told nothing more.
        return self._ticket is None or self._ticket.start()

    def set_result(self, value: Any) -> None:
        self._call(value, None)

    def set_exception(self, exc: BaseException) -> None:
        self._call(None, exc)

    def _call(self, value: Any, exc: BaseException | None) -> None:
        try:
            self._then(value, exc)
        except Exception:  # as a Future does with its callbacks: the writer carries on
            log.exception("a store completion callback failed")


class MessageRecord(NamedTuple):
    """One message as the store keeps it; built by mailbox from the parsed message (a
    NamedTuple for the same reason as models.ParsedMessage: one per message, built fast)."""

    uid: str
    mailbox: str
    created: float
    size: int
    message_id: str
    subject: str
    from_json: str
    to_json: str
    cc_json: str
    bcc_json: str
    reply_to_json: str
    username: str
    snippet: str
    attachments: int
    inline_count: int
    session_uid: str
    raw: bytes
    detail: bytes | str  # detailcodec.encode: a pickle, or JSON text for non-plain data
    transcript: str
    parts: Sequence[tuple[str, str, bytes]]  # (part_id, content_type, data)
    tags: Sequence[str]
    headers: Sequence[tuple[str, str]]
    fts: tuple[str, str, str, str, str]  # subject, addresses, body, attachments, headers


@dataclass(frozen=True)
class SessionRecord:
    uid: str
    started: float
    ended: float
    peer: str
    local: str
    helo: str
    tls: bool
    username: str
    outcome: str
    messages: Sequence[str]
    transcript: str


SUMMARY_COLUMNS = (
    "m.id, m.uid, m.created, m.read, m.size, m.message_id, m.subject, m.from_json, m.to_json, "
    "m.cc_json, m.bcc_json, m.reply_to_json, m.username, m.snippet, m.attachments, "
    "m.inline_count, m.session_uid, "
    "(SELECT json_group_array(tag) FROM (SELECT tag FROM tags t WHERE t.message = m.id "
    "ORDER BY tag)) AS tags_json"
)


# A write job and what to tell when its batch has committed.
_Job = tuple[Callable[["Store"], Any], Future[Any] | Completion]


class Store:
    """A SQLite database: one writer thread (group commit), reads on a small connection pool."""

    def __init__(
        self,
        path: str,
        *,
        busy_timeout: float = 5.0,
        batch_max: int = 256,
        linger: float = GROUP_LINGER,
    ) -> None:
        self.path = path
        self.memory = path == MEMORY
        self._busy_timeout = busy_timeout
        self._batch_max = batch_max
        self._linger = linger
        self._idle: list[sqlite3.Connection] = []  # read connections not in use (READ_POOL)
        self._all_conns: set[sqlite3.Connection] = set()  # every open one, closed by close()
        self._conns_lock = threading.Lock()
        # In memory there is one connection, so reads and the writer's batches take turns.
        self._mem_lock = threading.RLock()
        # SimpleQueue: put and get in C. queue.Queue's are Python with a Condition, and run for
        # every message on the SMTP loop and again in the writer, both holding the GIL.
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self.last_batch_size = 0
        self.on_batch: Callable[[int], None] | None = None  # told each committed batch's size
        # Why the last transaction failed (busy, disk full, read-only), until one commits again;
        # readiness reports it (issue 8).
        self.write_error = ""
        # (rowid, header rows, FTS columns) of committed messages not yet in the search index;
        # writer thread only (other threads only test whether it is empty).
        self._pending_index: list[tuple[int, Sequence[tuple[str, str]], Sequence[str]]] = []
        self._pending_bytes = 0  # (roughly: the FTS text waiting)
        self._index_retry_at = 0.0  # after a failed index write: not before this (monotonic)
        self._index_backoff = 0.0  # the wait before that try; 0 while index writes succeed
        # Arrival time of the newest message retention has pruned (writer thread): sessions that
        # ended before it are older than anything kept, and go too (insert_session).
        self._retired_until = 0.0
        self._wconn = self._connect()
        self._migrate()
        self._writer = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)
        self._writer.start()

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,  # explicit BEGIN/COMMIT: the writer batches transactions
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {self.path!r}: {exc}") from exc
        try:
            if not self.memory:
                conn.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode is durable against process crashes, which is what a
                # catcher needs; FULL would fsync every commit.
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA temp_store=MEMORY")
            # Debian's SQLite is built with secure_delete on: every freed page is zeroed and
            # written again, which made emptying 100k messages take 2.2 s instead of 0.2 s.
            # Overwriting caught test mail buys nothing.
            conn.execute("PRAGMA secure_delete=0")
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot use database {self.path!r}: {exc}") from exc
        with self._conns_lock:
            self._all_conns.add(conn)
        return conn

    def _migrate(self) -> None:
        conn = self._wconn
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"database {self.path!r} has schema version {version}, newer than this "
                    f"mailpit_py knows ({len(MIGRATIONS)}): upgrade mailpit_py or use another file"
                )
            for number in range(version, len(MIGRATIONS)):
                conn.execute("BEGIN IMMEDIATE")
                for statement in _statements(MIGRATIONS[number]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number + 1}")
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot prepare database {self.path!r}: {exc}") from exc

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A connection for queries, the calling thread's until the block ends."""
        if self._closed:
            raise StoreError("the store is closed")
        if self.memory:
            with self._mem_lock:
                yield self._wconn
            return
        with self._conns_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        reusable = True
        try:
            yield conn
        except sqlite3.Error:
            reusable = False  # a connection whose query failed is not worth a doubt
            raise
        finally:
            with self._conns_lock:
                keep = (
                    reusable
                    and not self._closed
                    and len(self._idle) < READ_POOL
                    and not conn.in_transaction
                )
                if keep:
                    self._idle.append(conn)
            if not keep:
                self._discard(conn)

    def _discard(self, conn: sqlite3.Connection) -> None:
        with self._conns_lock:
            self._all_conns.discard(conn)
        try:
            conn.close()
        except sqlite3.Error:
            pass

    def read_connections(self) -> int:
        """Read connections open (idle in the pool or in use): what reads hold of descriptors."""
        with self._conns_lock:
            return len(self._all_conns) - 1  # (the writer's is the other one)

    # -- the writer ---------------------------------------------------------------------------

    def submit(self, job: Callable[[Store], T]) -> Future[T]:
        """Run `job(store)` in the writer thread; the future resolves after its batch commits."""
        fut: Future[T] = Future()
        self._enqueue(job, fut)
        return fut

    def submit_then(
        self,
        job: Callable[[Store], T],
        then: Callable[[T | None, BaseException | None], None],
        ticket: Ticket | None = None,
    ) -> None:
        """Like submit, for the per-message path: `then(result, None)` or `then(None, error)`
        is called in the writer thread once the batch commits (a Future costs ~3 us more).
        A job whose ticket is cancelled before the writer starts it is skipped, untold."""
        self._enqueue(job, Completion(then, ticket))

    def _enqueue(self, job: Callable[[Store], Any], waiter: Future[Any] | Completion) -> None:
        if self._closed:
            waiter.set_exception(StoreError("the store is closed"))
        else:
            self._jobs.put((job, waiter))

    def write(self, job: Callable[[Store], T], timeout: float | None = 30.0) -> T:
        return self.submit(job).result(timeout)

    def _write_loop(self) -> None:
        while True:
            wait = None
            if self._pending_index:
                wait = max(INDEX_DELAY, self._index_retry_at - time.monotonic())
            try:
                item = self._jobs.get(timeout=wait)
            except queue.Empty:
                if time.monotonic() >= self._index_retry_at:
                    self._run_index()  # a quiet moment
                continue
            if item is None:
                self._run_index()  # nothing may be left unsearchable on a clean stop
                return
            batch: list[_Job] = []
            barriers: list[Future[Any] | Completion] = []  # searches waiting for the index
            probes: list[Future[Any] | Completion] = []  # readiness probes (health)
            # Group commit: whatever queued up while the last batch committed goes in one
            # transaction, so N concurrent deliveries cost one commit, not N.
            deadline = 0.0
            while True:
                if item[0] is _INDEX_NOW:
                    barriers.append(item[1])
                elif item[0] is _PROBE:
                    probes.append(item[1])
                else:
                    batch.append(item)
                if len(batch) >= self._batch_max:
                    break
                try:
                    item = self._jobs.get_nowait()
                except queue.Empty:
                    # (a search's barrier alone never waits: it is not a write)
                    if not batch or len(batch) >= self.last_batch_size or self._linger <= 0:
                        break
                    deadline = deadline or time.monotonic() + self._linger
                    try:
                        item = self._jobs.get(timeout=max(deadline - time.monotonic(), 0.0))
                    except queue.Empty:
                        break
                if item is None:
                    self._jobs.put(None)
                    break
            if batch:
                self._run_batch(batch)
            if barriers or (
                (
                    len(self._pending_index) >= INDEX_BATCH
                    or self._pending_bytes >= INDEX_BATCH_BYTES
                )
                and time.monotonic() >= self._index_retry_at
            ):
                self._run_index()
            for fut in barriers:
                fut.set_result(None)
            if probes:
                live = [fut for fut in probes if fut.set_running_or_notify_cancel()]
                problem = self._probe() if live else ""
                for fut in live:
                    fut.set_result(problem)

    def _probe(self) -> str:
        """Write HEALTH_PROBE_BYTES in a transaction of its own and roll it back: what failed,
        or ''. Apart from deliveries: a failure here must not take a batch down with it (on
        SQLITE_FULL, SQLite may roll back the whole transaction)."""
        conn = self._wconn
        with self._mem_lock if self.memory else nullcontext():
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                return f"database busy: {exc}"
            try:
                conn.execute(
                    "INSERT OR REPLACE INTO meta (name, value) VALUES ('health probe', "
                    "zeroblob(?))",
                    (HEALTH_PROBE_BYTES,),
                )
                return ""
            except sqlite3.Error as exc:
                return str(exc)
            finally:
                _rollback(conn)

    def _run_index(self) -> None:
        """Write the waiting search index rows in a transaction of their own.

        They are off the commit that answers the client's DATA (FTS5 writes a new segment per
        transaction: ~300 us per message one at a time), and while a burst lasts they go in by
        the hundred. A failure leaves them waiting for the next try.
        """
        pending = self._pending_index
        if not pending:
            return
        taken = len(pending)
        conn = self._wconn
        with self._mem_lock if self.memory else nullcontext():
            try:
                conn.execute("BEGIN IMMEDIATE")
                self._insert_index(pending[:taken])
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                if not self._index_backoff:  # logged when it starts failing, not at every try
                    log.warning(
                        "search index not written yet (%d messages wait; retrying with "
                        "backoff up to %g s): %s",
                        len(pending),
                        INDEX_BACKOFF_MAX,
                        exc,
                    )
                self._index_backoff = min(
                    max(self._index_backoff * 2, INDEX_DELAY * 2), INDEX_BACKOFF_MAX
                )
                self._index_retry_at = time.monotonic() + self._index_backoff
                return
        if self._index_backoff:
            log.warning("search index written again (%d messages)", taken)
            self._index_backoff = 0.0
            self._index_retry_at = 0.0
        del pending[:taken]
        self._pending_bytes = sum(len(text) for _, _, fts in pending for text in fts)

    def _insert_index(
        self, pending: list[tuple[int, Sequence[tuple[str, str]], Sequence[str]]]
    ) -> None:
        """Insert the index rows of those messages that still exist (some may be deleted)."""
        conn = self._wconn
        live: set[int] = set()
        for chunk in _chunks([p[0] for p in pending], 500):
            marks = ",".join("?" * len(chunk))
            live.update(
                r[0] for r in conn.execute(f"SELECT id FROM messages WHERE id IN ({marks})", chunk)
            )
        rows = [p for p in pending if p[0] in live]
        conn.executemany(
            "INSERT INTO headers (message, name, value) VALUES (?,?,?)",
            [(rowid, n, v) for rowid, headers, _ in rows for n, v in headers],
        )
        conn.executemany(
            "INSERT INTO messages_fts (rowid, subject, addresses, body, attachments, headers) "
            "VALUES (?,?,?,?,?,?)",
            [(rowid, *fts) for rowid, _, fts in rows],
        )

    def _drop_index_from(self, mark: int) -> None:
        """Forget the index rows queued by jobs that were rolled back."""
        if len(self._pending_index) > mark:
            del self._pending_index[mark:]
            self._pending_bytes = sum(len(t) for _, _, fts in self._pending_index for t in fts)

    def index_barrier(self, timeout: float | None = 30.0) -> None:
        """Return once every message committed so far is in the search index (not from the
        writer thread: a writer job sees only what was indexed before it)."""
        if self._pending_index and not self._closed:
            fut: Future[None] = Future()
            self._jobs.put((_INDEX_NOW, fut))
            fut.result(timeout)

    def unindexed(self) -> list[int]:
        """Rowids of messages missing from the search index: those whose index rows were
        still waiting when the process stopped without closing the store."""
        with self.reading() as conn:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM messages WHERE id > "
                    "(SELECT coalesce(max(rowid), 0) FROM messages_fts) ORDER BY id"
                )
            ]

    def queue_index(
        self, rowid: int, headers: Sequence[tuple[str, str]], fts: Sequence[str]
    ) -> None:
        """Add a message's index rows to the next index write (writer thread)."""
        self._pending_index.append((rowid, headers, fts))
        self._pending_bytes += sum(len(text) for text in fts)

    def _run_batch(self, batch: list[_Job]) -> None:
        with self._mem_lock if self.memory else nullcontext():
            # Jobs start once the transaction has begun: while BEGIN waits for a lock held
            # elsewhere, a job's submitter may still give up on it (Ticket), and then it is
            # never committed.
            if not self._begin(batch):
                return
            live = [(job, fut) for job, fut in batch if fut.set_running_or_notify_cancel()]
            # Optimistic first: one transaction, no per-job savepoints (two statements fewer per
            # message). If a job fails, the batch is rolled back and run again with a savepoint
            # around each job, so one bad job cannot sink the others.
            try:
                results = self._transaction(live, isolate=False)
            except _JobFailed:
                results = (
                    self._transaction(live, isolate=True)
                    if self._begin(live, started=True)
                    else None
                )
        if results is None:
            return
        self.last_batch_size = len(batch)
        self.write_error = ""
        if self.on_batch is not None:
            self.on_batch(len(live))
        for fut, ok, value in results:
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(
                    value if isinstance(value, StoreError) else StoreError(str(value))
                )

    def _begin(self, batch: list[_Job], *, started: bool = False) -> bool:
        """Begin the batch's transaction; when that fails, every job of it fails."""
        try:
            self._wconn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self.write_error = f"database busy: {exc}"
            for _, fut in batch:
                # (a job cancelled meanwhile is not told: its submitter has answered already)
                if started or fut.set_running_or_notify_cancel():
                    fut.set_exception(StoreError(f"database busy: {exc}"))
            return False
        return True

    def _transaction(
        self, batch: list[_Job], *, isolate: bool
    ) -> list[tuple[Future[Any] | Completion, bool, Any]] | None:
        """Run the jobs in the transaction begun; None when the transaction itself failed (then
        every future has its exception). Without isolation a failing job raises _JobFailed."""
        conn = self._wconn
        results: list[tuple[Future[Any] | Completion, bool, Any]] = []
        # Index rows queued by a job that is rolled back go too (the retry queues its own, and
        # its rowids may be the same numbers).
        mark = len(self._pending_index)
        for job, fut in batch:
            job_mark = len(self._pending_index)
            try:
                if isolate:
                    conn.execute("SAVEPOINT job")
                value = job(self)
                if isolate:
                    conn.execute("RELEASE job")
                results.append((fut, True, value))
            except Exception as exc:
                if not isolate:
                    _rollback(conn)
                    self._drop_index_from(mark)
                    raise _JobFailed from exc
                log.exception("store job failed")
                if not conn.in_transaction:
                    # SQLite rolled back the whole transaction (it may on SQLITE_FULL or an I/O
                    # error): the jobs before are undone, and the ones after must not run
                    # outside a transaction, committed one by one yet reported failed.
                    self._drop_index_from(mark)
                    self.write_error = f"transaction rolled back: {exc}"
                    for _, done in batch:
                        done.set_exception(StoreError(f"transaction rolled back: {exc}"))
                    return None
                self._drop_index_from(job_mark)
                try:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                except sqlite3.Error:
                    pass
                results.append((fut, False, exc))
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(conn)
            self._drop_index_from(mark)
            self.write_error = f"commit failed: {exc}"
            for fut, _, _ in results:
                fut.set_exception(StoreError(f"commit failed: {exc}"))
            return None
        return results

    def health(self, timeout: float = 2.0) -> str:
        """Empty when reads and writes work; else what does not (for /readyz).

        A real write goes through the writer each time (HEALTH_PROBE_BYTES, rolled back), so
        readiness fails while deliveries would, and recovers by itself once they would not."""
        if self._closed:
            return "the store is closed"
        if not self._writer.is_alive():
            return "the database writer has stopped"
        try:
            with self.reading() as conn:
                conn.execute("SELECT 1 FROM messages LIMIT 1").fetchall()
        except (sqlite3.Error, StoreError) as exc:
            return f"the database cannot be read: {exc}"
        if not self.memory:
            try:
                disk = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
            except OSError:
                pass
            else:
                free = disk.f_bavail * disk.f_frsize
                if free < HEALTH_MIN_FREE:
                    return f"the disk holding the database is full ({free} bytes free)"
        probe: Future[str] = Future()
        self._enqueue(_PROBE, probe)
        try:
            problem = probe.result(timeout)
        except TimeoutError:
            probe.cancel()  # (probes must not pile up in the queue while the writer is stuck)
            return f"the database cannot be written: the writer did not answer in {timeout:g} s"
        except Exception as exc:
            return f"the database cannot be written: {exc or 'no answer'}"
        return f"the database cannot be written: {problem}" if problem else ""

    def close(self) -> None:
        """Finish queued writes, then close every connection."""
        if self._closed:
            return
        self._jobs.put(None)
        self._writer.join(timeout=30)
        self._closed = True
        with self._conns_lock:
            for conn in self._all_conns:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all_conns.clear()
            self._idle.clear()

    # -- writes (writer thread only, inside a batch) -------------------------------------------

    def insert_message(self, rec: MessageRecord) -> int:
        conn = self._wconn
        cur = conn.execute(
            "INSERT INTO messages (uid, mailbox, created, size, message_id, subject, from_json, "
            "to_json, cc_json, bcc_json, reply_to_json, username, snippet, attachments, "
            "inline_count, session_uid) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                rec.uid,
                rec.mailbox,
                rec.created,
                rec.size,
                rec.message_id,
                rec.subject,
                rec.from_json,
                rec.to_json,
                rec.cc_json,
                rec.bcc_json,
                rec.reply_to_json,
                rec.username,
                rec.snippet,
                rec.attachments,
                rec.inline_count,
                rec.session_uid,
            ),
        )
        rowid = int(cur.lastrowid or 0)
        if len(rec.raw) <= BLOB_CHUNK:
            conn.execute(
                "INSERT INTO message_data (id, raw, detail, transcript) VALUES (?,?,?,?)",
                (rowid, rec.raw, rec.detail, rec.transcript),
            )
        else:
            conn.execute(
                "INSERT INTO message_data (id, detail, transcript, raw) VALUES (?,?,?,zeroblob(?))",
                (rowid, rec.detail, rec.transcript, len(rec.raw)),
            )
            _write_blob(conn, "message_data", "raw", rowid, rec.raw)
        small = [
            (rowid, pid, ctype, data) for pid, ctype, data in rec.parts if len(data) <= BLOB_CHUNK
        ]
        if small:
            conn.executemany(
                "INSERT INTO parts (message, part_id, content_type, data) VALUES (?,?,?,?)", small
            )
        for pid, ctype, data in rec.parts:
            if len(data) > BLOB_CHUNK:
                part_row = conn.execute(
                    "INSERT INTO parts (message, part_id, content_type, data) "
                    "VALUES (?,?,?,zeroblob(?))",
                    (rowid, pid, ctype, len(data)),
                ).lastrowid
                _write_blob(conn, "parts", "data", int(part_row or 0), data)
        if rec.tags:
            conn.executemany(
                "INSERT OR IGNORE INTO tags (message, tag) VALUES (?,?)",
                [(rowid, t) for t in rec.tags],
            )
        self.queue_index(rowid, rec.headers, rec.fts)
        return int(rowid or 0)

    def _forget_relays(self, uids: Sequence[str] | None) -> None:
        """A deleted message's relay history goes with it (these, or every message when None);
        an outbox item still pending stays, with its attempts: it carries its own copy of the
        message and is delivered all the same."""
        conn = self._wconn
        not_pending = "outbox_id NOT IN (SELECT id FROM outbox WHERE state = 'pending')"
        if uids is None:
            conn.execute(f"DELETE FROM relay_attempts WHERE {not_pending}")
            conn.execute("DELETE FROM outbox WHERE state != 'pending'")
            return
        for chunk in _chunks(list(uids), 500):
            marks = ",".join("?" * len(chunk))
            conn.execute(
                f"DELETE FROM relay_attempts WHERE message_uid IN ({marks}) AND {not_pending}",
                chunk,
            )
            conn.execute(
                f"DELETE FROM outbox WHERE message_uid IN ({marks}) AND state != 'pending'", chunk
            )

    def _delete_rowids(self, rowids: Sequence[int]) -> None:
        conn = self._wconn
        for chunk in _chunks(rowids, 500):
            marks = ",".join("?" * len(chunk))
            for table, col in (
                ("messages", "id"),
                ("message_data", "id"),
                ("parts", "message"),
                ("tags", "message"),
                ("headers", "message"),
                ("messages_fts", "rowid"),
                ("message_checks", "message"),
                ("imap_flags", "message"),
            ):
                conn.execute(f"DELETE FROM {table} WHERE {col} IN ({marks})", chunk)

    def delete_messages(self, uids: Sequence[str]) -> list[str]:
        """Delete these messages; returns the uids that existed."""
        found: list[tuple[int, str]] = []
        for chunk in _chunks(list(uids), 500):
            marks = ",".join("?" * len(chunk))
            found += self._wconn.execute(
                f"SELECT id, uid FROM messages WHERE uid IN ({marks})", chunk
            ).fetchall()
        self._delete_rowids([r[0] for r in found])
        self._forget_relays([r[1] for r in found])
        return [r[1] for r in found]

    def delete_all(self) -> int:
        conn = self._wconn
        n = int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
        # Unqualified DELETEs take SQLite's fast truncate path (no per-row work) only on tables
        # without triggers, so the counter triggers step aside inside this transaction.
        for name in COUNTER_TRIGGER_NAMES:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        for table in (
            "messages",
            "message_data",
            "parts",
            "tags",
            "headers",
            "message_checks",
            "imap_flags",
        ):
            conn.execute(f"DELETE FROM {table}")
        # An FTS5 table deletes row by row (1.2 s at 100k messages); recreating it is instant.
        conn.execute("DROP TABLE messages_fts")
        conn.execute(FTS_SCHEMA)
        conn.execute("UPDATE counters SET value = 0 WHERE name IN ('total', 'unread')")
        for trigger in COUNTER_TRIGGERS:
            conn.execute(trigger)
        self._forget_relays(None)
        return n

    def set_read(self, uids: Sequence[str] | None, read: bool) -> list[str]:
        """Mark these (or all, when None) read/unread; returns the uids that changed."""
        conn = self._wconn
        flag = 1 if read else 0
        if uids is None:
            rows = conn.execute("SELECT uid FROM messages WHERE read != ?", (flag,)).fetchall()
            conn.execute("UPDATE messages SET read = ? WHERE read != ?", (flag, flag))
            return [r[0] for r in rows]
        changed: list[str] = []
        for chunk in _chunks(list(uids), 500):
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT uid FROM messages WHERE read != ? AND uid IN ({marks})", (flag, *chunk)
            ).fetchall()
            conn.execute(
                f"UPDATE messages SET read = ? WHERE read != ? AND uid IN ({marks})",
                (flag, flag, *chunk),
            )
            changed += [r[0] for r in rows]
        return changed

    def prune(self, max_messages: int, older_than: float | None) -> list[str]:
        """Delete beyond the newest `max_messages` (0: no limit) and older than a time."""
        conn = self._wconn
        rows: list[tuple[int, str, float]] = []
        if max_messages > 0:
            rows += conn.execute(
                "SELECT id, uid, created FROM messages ORDER BY id DESC LIMIT -1 OFFSET ?",
                (max_messages,),
            ).fetchall()
        if older_than is not None:
            rows += conn.execute(
                "SELECT id, uid, created FROM messages WHERE created < ?", (older_than,)
            ).fetchall()
        if not rows:
            return []
        self._retired_until = max(self._retired_until, *(r[2] for r in rows))
        unique = {r[0]: r[1] for r in rows}
        self._delete_rowids(list(unique))
        self._forget_relays(list(unique.values()))
        return list(unique.values())

    def set_tags(self, uids: Sequence[str], tags: Sequence[str]) -> list[tuple[str, list[str]]]:
        """Give these messages exactly these tags; returns (uid, tags) of those that exist."""
        conn = self._wconn
        out: list[tuple[str, list[str]]] = []
        wanted = sorted(set(tags))
        for uid in uids:
            row = conn.execute("SELECT id FROM messages WHERE uid = ?", (uid,)).fetchone()
            if row is None:
                continue
            conn.execute("DELETE FROM tags WHERE message = ?", (row[0],))
            conn.executemany(
                "INSERT OR IGNORE INTO tags (message, tag) VALUES (?,?)",
                [(row[0], t) for t in wanted],
            )
            out.append((uid, wanted))
        return out

    def rename_tag(self, old: str, new: str) -> list[tuple[str, list[str]]]:
        """Rename a tag everywhere (merging into `new` where both exist)."""
        conn = self._wconn
        ids = [r[0] for r in conn.execute("SELECT message FROM tags WHERE tag = ?", (old,))]
        for mid in ids:
            conn.execute("DELETE FROM tags WHERE message = ? AND tag = ?", (mid, old))
            if new:
                conn.execute("INSERT OR IGNORE INTO tags (message, tag) VALUES (?,?)", (mid, new))
        return self._tags_of_ids(ids)

    def _tags_of_ids(self, ids: Sequence[int]) -> list[tuple[str, list[str]]]:
        out = []
        for mid in ids:
            uid = self._wconn.execute("SELECT uid FROM messages WHERE id = ?", (mid,)).fetchone()
            tags = self._wconn.execute(
                "SELECT tag FROM tags WHERE message = ? ORDER BY tag", (mid,)
            ).fetchall()
            out.append((uid[0], [t[0] for t in tags]))
        return out

    def insert_session(self, rec: SessionRecord, keep: int) -> None:
        conn = self._wconn
        newest = conn.execute(
            "INSERT OR REPLACE INTO sessions (uid, started, ended, peer, local, helo, tls, "
            "username, outcome, messages, transcript, bytes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                rec.uid,
                rec.started,
                rec.ended,
                rec.peer,
                rec.local,
                rec.helo,
                int(rec.tls),
                rec.username,
                rec.outcome,
                json.dumps(list(rec.messages)),
                rec.transcript,
                len(rec.transcript),
            ),
        ).lastrowid
        # At most `keep` sessions and SESSION_LOG_BYTES of transcripts, so sessions that each
        # carried many messages cannot make the log (and the database file) grow large; and
        # with message retention (--max, --max-age) no session older than every kept message,
        # so the log turns over with the mailbox instead of filling up to its bounds. The
        # counters (migration 8) say whether to prune by size; then the oldest rows go, a few at
        # a time through the slim index, and the newest always stays.
        counters = dict(
            conn.execute(
                "SELECT name, value FROM counters WHERE name IN ('sessions', 'session_bytes')"
            ).fetchall()
        )
        count, size = counters["sessions"], counters["session_bytes"]
        retired = self._retired_until
        if count <= keep and size <= SESSION_LOG_BYTES and not retired:
            return
        cut = None
        for rowid, nbytes, ended in conn.execute(
            "SELECT id, bytes, ended FROM sessions ORDER BY id"
        ):
            if rowid == newest or (
                count <= keep and size <= SESSION_LOG_BYTES and ended >= retired
            ):
                break
            count -= 1
            size -= nbytes
            cut = rowid
        if cut is not None:
            conn.execute("DELETE FROM sessions WHERE id <= ?", (cut,))

    def save_checks(self, uid: str, checked: float, result: str) -> bool:
        """Keep a message's check results (issue 9); False when the message is gone."""
        cur = self._wconn.execute(
            "INSERT OR REPLACE INTO message_checks (message, checked, result) "
            "SELECT id, ?, ? FROM messages WHERE uid = ?",
            (checked, result, uid),
        )
        return cur.rowcount > 0

    # -- reads ---------------------------------------------------------------------------------

    def checks(self, uid: str) -> str | None:
        """A message's stored check results (JSON), or None when not checked yet."""
        with self.reading() as conn:
            row = conn.execute(
                "SELECT c.result FROM messages m JOIN message_checks c ON c.message = m.id "
                "WHERE m.uid = ?",
                (uid,),
            ).fetchone()
        return row[0] if row else None

    def counts(self) -> tuple[int, int]:
        """(total, unread), kept by triggers, so constant time at any size."""
        with self.reading() as conn:
            values = dict(conn.execute("SELECT name, value FROM counters").fetchall())
        return int(values.get("total", 0)), int(values.get("unread", 0))

    def list_summaries(self, start: int = 0, limit: int = 50) -> list[sqlite3.Row]:
        with self.reading() as conn:
            cursor = _dict_cursor(conn)
            if start <= 0:
                return cursor.execute(
                    f"SELECT {SUMMARY_COLUMNS} FROM messages m ORDER BY m.id DESC LIMIT ?",
                    (limit,),
                ).fetchall()
            # OFFSET steps over rows; stepping over the slim ids index instead of the table finds
            # a deep page's first id 5x faster, then the page is a range read.
            return cursor.execute(
                f"SELECT {SUMMARY_COLUMNS} FROM messages m WHERE m.id <= ("
                "SELECT id FROM messages INDEXED BY messages_id_read "
                "ORDER BY id DESC LIMIT 1 OFFSET ?) ORDER BY m.id DESC LIMIT ?",
                (start, limit),
            ).fetchall()

    def search(self, terms: Sequence[Term], start: int = 0, limit: int = 50) -> list[sqlite3.Row]:
        """Summaries matching the search terms, newest first, paged in SQL."""
        self.index_barrier()
        where, params = build_where(terms)
        with self.reading() as conn:
            return (
                _dict_cursor(conn)
                .execute(
                    f"SELECT {SUMMARY_COLUMNS} FROM messages m WHERE {where} "
                    "ORDER BY m.id DESC LIMIT ? OFFSET ?",
                    (*params, limit, start),
                )
                .fetchall()
            )

    def search_page(
        self, terms: Sequence[Term], start: int = 0, limit: int = 50
    ) -> tuple[list[sqlite3.Row], int, int]:
        """(page of summaries, matches, unread matches) for a search.

        Terms that scan (header values, addresses, subjects) are evaluated once: every match's
        (id, read) is read in one pass and the page is cut from it, instead of one scan for the
        page and another for the counts.
        """
        if not any(t.kind in SCANNING_KINDS for t in terms):
            return self.search(terms, start, limit), *self.count_matches(terms)
        self.index_barrier()
        where, params = build_where(terms)
        with self.reading() as conn:
            found = conn.execute(
                f"SELECT m.id, m.read FROM messages m{_by_id(terms)} WHERE {where} "
                "ORDER BY m.id DESC",
                tuple(params),
            ).fetchall()
            page = [row[0] for row in found[max(start, 0) : max(start, 0) + limit]]
            rows: list[sqlite3.Row] = []
            if page:
                marks = ",".join("?" * len(page))
                rows = (
                    _dict_cursor(conn)
                    .execute(
                        f"SELECT {SUMMARY_COLUMNS} FROM messages m WHERE m.id IN ({marks}) "
                        "ORDER BY m.id DESC",
                        page,
                    )
                    .fetchall()
                )
        return rows, len(found), sum(1 for row in found if not row[1])

    def count_matches(self, terms: Sequence[Term]) -> tuple[int, int]:
        """(matches, unread matches)."""
        self.index_barrier()
        where, params = build_where(terms)
        with self.reading() as conn:
            row = conn.execute(
                f"SELECT count(*), coalesce(sum(m.read = 0), 0) FROM messages m{_by_id(terms)} "
                f"WHERE {where}",
                tuple(params),
            ).fetchone()
        return int(row[0]), int(row[1])

    def uids_matching(self, terms: Sequence[Term]) -> list[str]:
        """Every uid matching (for delete or mark by search); writer thread only. The caller
        runs `index_barrier()` first, so messages committed before the request are found."""
        where, params = build_where(terms)
        rows = self._wconn.execute(
            f"SELECT m.uid FROM messages m WHERE {where} ORDER BY m.id DESC", tuple(params)
        ).fetchall()
        return [r[0] for r in rows]

    def summary(self, uid: str) -> sqlite3.Row | None:
        with self.reading() as conn:
            return (
                _dict_cursor(conn)
                .execute(f"SELECT {SUMMARY_COLUMNS} FROM messages m WHERE m.uid = ?", (uid,))
                .fetchone()
            )

    def tag_counts(self) -> dict[str, int]:
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT tag, count(*) FROM tags GROUP BY tag ORDER BY tag COLLATE NOCASE"
            ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def index(self, tag: str | None = None) -> list[tuple[int, str, int, int, float]]:
        """(id, uid, size, read, created) of every message, or those with a tag, oldest first."""
        with self.reading() as conn:
            if tag is None:
                rows = conn.execute(
                    "SELECT id, uid, size, read, created FROM messages ORDER BY id"
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT m.id, m.uid, m.size, m.read, m.created FROM tags t "
                    "JOIN messages m ON m.id = t.message WHERE t.tag = ? ORDER BY m.id",
                    (tag,),
                ).fetchall()
        return [(int(r[0]), r[1], int(r[2]), int(r[3]), float(r[4])) for r in rows]

    def next_id(self) -> int:
        """The id the next message will get (AUTOINCREMENT never hands out one twice)."""
        with self.reading() as conn:
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
        return (int(row[0]) if row else 0) + 1

    def imap_flags(self) -> dict[int, set[str]]:
        """IMAP flags other than \\Seen, by message id (the IMAP UID)."""
        flags: dict[int, set[str]] = {}
        with self.reading() as conn:
            for message, flag in conn.execute("SELECT message, flag FROM imap_flags"):
                flags.setdefault(int(message), set()).add(str(flag))
        return flags

    def set_imap_flags(self, changes: dict[int, set[str]]) -> None:
        """Replace the flags of these messages (writer thread); gone messages are skipped."""
        conn = self._wconn
        for message, flags in changes.items():
            conn.execute("DELETE FROM imap_flags WHERE message = ?", (message,))
            conn.executemany(
                "INSERT INTO imap_flags (message, flag) SELECT id, ? FROM messages WHERE id = ?",
                [(flag, message) for flag in sorted(flags)],
            )

    def meta(self, name: str) -> str | None:
        with self.reading() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def latest_uid(self) -> str | None:
        with self.reading() as conn:
            row = conn.execute("SELECT uid FROM messages ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def message_data(self, uid: str) -> tuple[sqlite3.Row, bytes | str, str] | None:
        """(summary row, stored detail (detailcodec.py), transcript JSON) for one message."""
        with self.reading() as conn:
            row = (
                _dict_cursor(conn)
                .execute(
                    f"SELECT {SUMMARY_COLUMNS}, d.detail, d.transcript FROM messages m "
                    "JOIN message_data d ON d.id = m.id WHERE m.uid = ?",
                    (uid,),
                )
                .fetchone()
            )
        if row is None:
            return None
        return row, row["detail"], row["transcript"]

    def raw_for_index(self, rowid: int) -> tuple[str, bytes, bytes | str] | None:
        """(uid, raw, stored detail) of a message by rowid, to rebuild its search index rows."""
        with self.reading() as conn:
            row = conn.execute(
                "SELECT m.uid, d.raw, d.detail FROM messages m JOIN message_data d ON d.id = m.id "
                "WHERE m.id = ?",
                (rowid,),
            ).fetchone()
        return (row[0], bytes(row[1]), row[2]) if row else None

    def raw(self, uid: str) -> bytes | None:
        with self.reading() as conn:
            row = conn.execute(
                "SELECT d.raw FROM messages m JOIN message_data d ON d.id = m.id WHERE m.uid = ?",
                (uid,),
            ).fetchone()
        return bytes(row[0]) if row else None

    def raw_stream(self, uid: str) -> tuple[int, Iterator[bytes]] | None:
        """(size, chunks) of a raw message, read from the database as the chunks are taken."""
        with self.reading() as conn:
            row = conn.execute(
                "SELECT d.id, length(d.raw) FROM messages m JOIN message_data d ON d.id = m.id "
                "WHERE m.uid = ?",
                (uid,),
            ).fetchone()
        if row is None:
            return None
        return int(row[1]), self._blob_chunks("message_data", "raw", int(row[0]), int(row[1]))

    def part_stream(self, uid: str, part_id: str) -> tuple[str, int, Iterator[bytes]] | None:
        """(content type, size, chunks) of a decoded part, streamed like raw_stream."""
        with self.reading() as conn:
            row = conn.execute(
                "SELECT p.rowid, p.content_type, length(p.data) FROM messages m "
                "JOIN parts p ON p.message = m.id WHERE m.uid = ? AND p.part_id = ?",
                (uid, part_id),
            ).fetchone()
        if row is None:
            return None
        return row[1], int(row[2]), self._blob_chunks("parts", "data", int(row[0]), int(row[2]))

    def _blob_chunks(self, table: str, column: str, rowid: int, size: int) -> Iterator[bytes]:
        # Up to BLOB_CHUNK bytes per step, so a 40 MB attachment never sits whole in memory.
        # In memory, reads hold the one connection's lock, which a slow client must not keep.
        if self.memory or size <= BLOB_CHUNK:
            with self.reading() as conn:
                row = conn.execute(
                    f"SELECT {column} FROM {table} WHERE rowid = ?", (rowid,)
                ).fetchone()
            if row is not None:
                yield bytes(row[0])
            return
        with self.reading() as conn, conn.blobopen(table, column, rowid, readonly=True) as blob:
            while chunk := blob.read(BLOB_CHUNK):
                yield chunk

    def part(self, uid: str, part_id: str) -> tuple[str, bytes] | None:
        with self.reading() as conn:
            row = conn.execute(
                "SELECT p.content_type, p.data FROM messages m JOIN parts p ON p.message = m.id "
                "WHERE m.uid = ? AND p.part_id = ?",
                (uid, part_id),
            ).fetchone()
        return (row[0], bytes(row[1])) if row else None

    def session(self, uid: str) -> sqlite3.Row | None:
        with self.reading() as conn:
            return (
                _dict_cursor(conn)
                .execute("SELECT * FROM sessions WHERE uid = ?", (uid,))
                .fetchone()
            )

    def session_count(self) -> int:
        with self.reading() as conn:
            row = conn.execute("SELECT value FROM counters WHERE name = 'sessions'").fetchone()
        return int(row[0])

    def sessions(self, start: int = 0, limit: int = 50) -> list[sqlite3.Row]:
        with self.reading() as conn:
            return (
                _dict_cursor(conn)
                .execute("SELECT * FROM sessions ORDER BY id DESC LIMIT ? OFFSET ?", (limit, start))
                .fetchall()
            )

    # -- relay outbox (issue 6) -----------------------------------------------------------------

    def outbox_add(
        self, uid: str, kind: str, mail_from: str, rcpts: Sequence[str], raw: bytes, now: float
    ) -> int:
        """Queue a delivery (writer thread only); returns its outbox id."""
        cur = self._wconn.execute(
            "INSERT INTO outbox (message_uid, kind, mail_from, recipients, raw, created, "
            "next_attempt) VALUES (?,?,?,?,?,?,?)",
            (uid, kind, mail_from, json.dumps(list(rcpts)), raw, now, now),
        )
        return int(cur.lastrowid or 0)

    def outbox_due(self, now: float, limit: int = 20) -> list[sqlite3.Row]:
        with self.reading() as conn:
            return (
                _dict_cursor(conn)
                .execute(
                    "SELECT * FROM outbox WHERE state = 'pending' AND next_attempt <= ? "
                    "ORDER BY next_attempt, id LIMIT ?",
                    (now, limit),
                )
                .fetchall()
            )

    def outbox_next_time(self) -> float | None:
        with self.reading() as conn:
            row = conn.execute(
                "SELECT min(next_attempt) FROM outbox WHERE state = 'pending'"
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def outbox_record(
        self,
        item_id: int,
        attempt: dict[str, Any],
        *,
        state: str,
        recipients: Sequence[str],
        next_attempt: float,
    ) -> None:
        """Log one attempt and move the item on (writer thread only); a done item drops its copy."""
        conn = self._wconn
        conn.execute(
            "INSERT INTO relay_attempts (message_uid, outbox_id, at, kind, recipients, server, "
            "reply, outcome) VALUES (?,?,?,?,?,?,?,?)",
            (
                attempt["message_uid"],
                item_id,
                attempt["at"],
                attempt["kind"],
                json.dumps(list(attempt["recipients"])),
                attempt["server"],
                attempt["reply"],
                attempt["outcome"],
            ),
        )
        conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, state = ?, recipients = ?, "
            "next_attempt = ?, raw = CASE WHEN ? = 'pending' THEN raw ELSE x'' END WHERE id = ?",
            (state, json.dumps(list(recipients)), next_attempt, state, item_id),
        )

    def relay_history(self, uid: str) -> tuple[list[sqlite3.Row], list[sqlite3.Row]]:
        """(outbox items, attempts) of one message, oldest first."""
        with self.reading() as conn:
            cur = _dict_cursor(conn)
            items = cur.execute(
                "SELECT id, kind, mail_from, recipients, created, attempts, next_attempt, state "
                "FROM outbox WHERE message_uid = ? ORDER BY id",
                (uid,),
            ).fetchall()
            attempts = cur.execute(
                "SELECT * FROM relay_attempts WHERE message_uid = ? ORDER BY id", (uid,)
            ).fetchall()
        return items, attempts

    def outbox_item(self, item_id: int) -> sqlite3.Row | None:
        with self.reading() as conn:
            return (
                _dict_cursor(conn)
                .execute("SELECT * FROM outbox WHERE id = ?", (item_id,))
                .fetchone()
            )

    # -- statistics (issue 8: the statistics view) --------------------------------------------

    def size_histogram(self, bounds: Sequence[int]) -> list[int]:
        """Messages per size class: counts of size <= each bound, then of larger ones."""
        edges = [-1, *(int(b) for b in bounds)]
        cases = [f"sum(size > {lo} AND size <= {hi})" for lo, hi in itertools.pairwise(edges)]
        cases.append(f"sum(size > {edges[-1]})")
        with self.reading() as conn:
            row = conn.execute(f"SELECT {', '.join(cases)} FROM messages").fetchone()
        return [int(v or 0) for v in row]

    def top_senders(self, limit: int = 10) -> list[tuple[str, int]]:
        """The From addresses of the most messages."""
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT lower(json_extract(from_json, '$[0].Address')) AS a, count(*) AS n "
                "FROM messages WHERE a IS NOT NULL AND a != '' GROUP BY a "
                "ORDER BY n DESC, a LIMIT ?",
                (limit,),
            ).fetchall()
        return [(r[0], int(r[1])) for r in rows]

    def top_recipient_domains(self, limit: int = 10) -> list[tuple[str, int]]:
        """Domains of To, Cc and Bcc addresses, by how many messages name them."""
        with self.reading() as conn:
            rows = conn.execute(
                "WITH r AS (SELECT DISTINCT m.id, lower(substr(json_extract(j.value, '$.Address'), "
                "instr(json_extract(j.value, '$.Address'), '@') + 1)) AS d FROM messages m, "
                "json_each(json_array(json(m.to_json), json(m.cc_json), json(m.bcc_json))) l, "
                "json_each(l.value) j) "
                "SELECT d, count(*) AS n FROM r WHERE d != '' GROUP BY d "
                "ORDER BY n DESC, d LIMIT ?",
                (limit,),
            ).fetchall()
        return [(r[0], int(r[1])) for r in rows]

    def size_bytes(self) -> int:
        if self.memory:
            with self.reading() as conn:
                pages = conn.execute("PRAGMA page_count").fetchone()[0]
                size = conn.execute("PRAGMA page_size").fetchone()[0]
            return int(pages * size)
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(self.path + suffix)
            except OSError:
                pass
        return total


def _write_blob(conn: sqlite3.Connection, table: str, column: str, rowid: int, data: bytes) -> None:
    """Fill a zeroblob in place: binding a big value makes SQLite copy it whole first."""
    view = memoryview(data)
    with conn.blobopen(table, column, rowid) as blob:
        for offset in range(0, len(view), BLOB_CHUNK):
            blob.write(view[offset : offset + BLOB_CHUNK])


def _statements(script: str) -> list[str]:
    """Split a migration into statements (sqlite3.complete_statement keeps triggers whole)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip() and not buf.strip().startswith("--"):
        out.append(buf.strip())
    return out


def _chunks(seq: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def _PROBE(store: Store) -> None:  # noqa: N802 - a sentinel job: "probe a write" (readiness)
    raise AssertionError("never run")


def _INDEX_NOW(store: Store) -> None:  # noqa: N802 - a sentinel job: "index now" (a search)
    raise AssertionError("never run")


class _JobFailed(Exception):
    """A job failed in an optimistic batch, which was rolled back."""


def _by_id(terms: Sequence[Term]) -> str:
    """Read a search's (id, read) pairs from the slim index when its terms need nothing else
    of the message row: SQLite would otherwise look each match up in the table."""
    return " INDEXED BY messages_id_read" if ids_and_read_only(terms) else ""


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def _dict_cursor(conn: sqlite3.Connection) -> sqlite3.Cursor:
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row
    return cur
