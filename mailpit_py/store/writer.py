"""The SQLite store's writer thread: queued jobs, group commit, tickets, the index writer."""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

from mailpit_py.store.base import chunks, rollback
from mailpit_py.store.drain import Drain
from mailpit_py.store.records import StoreError, Ticket
from mailpit_py.store.search import Term
from mailpit_py.store.search_sql import build_where

if TYPE_CHECKING:
    from mailpit_py.store.sqlite import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

# The search index (FTS rows and header rows) of new messages is written in a transaction of its
# own after theirs: once the writer has had nothing to do for INDEX_DELAY seconds, or this many
# messages or bytes of text are waiting (see _run_index). Every search first has it written
# (index_barrier), so a message whose commit was confirmed is always found.
INDEX_DELAY = 0.05
# After a failed index write (a full disk, a lock held elsewhere), the next try waits twice as
# long as the last, up to this many seconds: retrying every INDEX_DELAY logged 15 warnings a
# second and kept a core 10% busy while the disk stayed full.
INDEX_BACKOFF_MAX = 5.0

INDEX_BATCH = 256
INDEX_BATCH_BYTES = 8 << 20
# While someone searches during a burst (a barrier in the last SEARCHED_RECENTLY seconds), the
# index is written every INDEX_BATCH_SEARCHED messages instead, so that a search waits for a few
# messages' index rows, not for up to INDEX_BATCH (bench/readload.py, default settings, three
# paired runs: a search's median 26-29 -> 17-18 ms during full-speed ingest, which ran ~5% slower
# in two of the three while the searches went on).
INDEX_BATCH_SEARCHED = 16
SEARCHED_RECENTLY = 2.0

# With retention (--max N), the index of the newest N messages plus retention's slack waits on
# top of INDEX_BATCH until a quiet moment or a search: older ones are pruned before anyone
# searches them, and an index row written only to be deleted again cost the writer ~210 us a
# message (its FTS5 and trigram insert, then delete), the largest part of its work under steady
# ingest at the default --max 500. A search still finds every committed message (index_barrier);
# INDEX_BATCH_BYTES bounds the text held, and INDEX_HOLD_MAX the messages (their rows and
# tuples, and what a restart after a kill indexes again before it serves).
INDEX_HOLD_MAX = 4096

# Group commit under concurrent load: when the queue runs dry before a batch has as many jobs as
# the last one had, the writer waits up to this long (seconds, once per batch) for the rest. The
# sessions whose messages are on their way would otherwise each cost a commit of their own;
# with 8 sessions, batches of ~3.7 became ~5.2 and the server's CPU per message fell 605 -> 488
# us. A lone client never waits: its batches have one job, and one job is as many as the last.
GROUP_LINGER = 0.0005

# Readiness (health) writes this many bytes through the writer and rolls them back: a write that
# needs new pages, as a message does, fails where the database cannot grow (SQLite's page limit,
# an I/O error, a read-only file), and the probe waits in the same queue as deliveries.
HEALTH_PROBE_BYTES = 256 * 1024


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


# A committed message's search index rows waiting to be written: (rowid, header rows, FTS columns).
_Pending = tuple[int, Sequence[tuple[str, str]], Sequence[str]]

# A write job and what to tell when its batch has committed.
# (The job is handed the composed Store, which this part of it cannot name.)
_Job = tuple[Callable[[Any], Any], Future[Any] | Completion]


class GroupCommitWriter(Drain):
    """The writer: one thread owns the write connection and commits queued jobs in batches."""

    def _init_writer(self, batch_max: int, linger: float) -> None:
        """The writer's state; the thread starts with _start_writer once the schema is ready."""
        self._batch_max = batch_max
        self._linger = linger
        # SimpleQueue: put and get in C. queue.Queue's are Python with a Condition, and run for
        # every message on the SMTP loop and again in the writer, both holding the GIL.
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.last_batch_size = 0
        self.on_batch: Callable[[int], None] | None = None  # told each committed batch's size
        # Why the last transaction failed (busy, disk full, read-only), until one commits again;
        # readiness reports it.
        self.write_error = ""
        # (rowid, header rows, FTS columns) of committed messages not yet in the search index;
        # writer thread only (other threads only test whether it is empty).
        self._pending_index: list[_Pending] = []
        self._pending_bytes = 0  # (roughly: the FTS text waiting)
        self._index_retry_at = 0.0  # after a failed index write: not before this (monotonic)
        self._index_backoff = 0.0  # the wait before that try; 0 while index writes succeed
        self._searched_at = -SEARCHED_RECENTLY  # (monotonic) when a search last waited
        # Per mailbox (None: the whole store), what retention keeps of it at most: its --max
        # and slack (prune tells; writer thread). Their sum is how many more messages' index
        # rows may wait while nobody searches.
        self._index_hold: dict[str | None, int] = {}

    def _start_writer(self) -> None:
        self._writer = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)
        self._writer.start()

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
            else:
                wait = self.drain_wait()  # a delete all's tables to free (drain.py)
            drain_due = not self._pending_index and wait is not None
            try:
                item = self._jobs.get(timeout=wait)
            except queue.Empty:
                if time.monotonic() >= self._index_retry_at:
                    self._run_index()  # a quiet moment
                if drain_due:
                    self.drain_step()
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
                if item[0] is INDEX_NOW:
                    barriers.append(item[1])
                elif item[0] is PROBE:
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
                self.drain_overdue()  # (drain.py: under steady mail, a step now and then)
            now = time.monotonic()
            if barriers:
                self._searched_at = now
            if now - self._searched_at < SEARCHED_RECENTLY:
                due = INDEX_BATCH_SEARCHED
            else:
                due = INDEX_BATCH + min(sum(self._index_hold.values()), INDEX_HOLD_MAX)
            if barriers or (
                (len(self._pending_index) >= due or self._pending_bytes >= INDEX_BATCH_BYTES)
                and now >= self._index_retry_at
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
                rollback(conn)

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
                rollback(conn)
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

    def _insert_index(self, pending: list[_Pending]) -> None:
        """Insert the index rows of those messages that still exist (some may be deleted)."""
        conn = self._wconn
        live: set[int] = set()
        for chunk in chunks([p[0] for p in pending], 500):
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
        # The trigram index reads the same text (its content table is messages_fts); the
        # headers column is left out, as free text does not search it.
        conn.executemany(
            "INSERT INTO messages_tri (rowid, subject, addresses, body, attachments) "
            "VALUES (?,?,?,?,?)",
            [(rowid, *fts[:4]) for rowid, _, fts in rows],
        )

    def _drop_index_from(self, mark: list[_Pending]) -> None:
        """Put the waiting index rows back as they were before jobs that were rolled back: the
        rows those jobs queued go, and those they wrote or forgot (their deletes are undone)
        wait again."""
        self._set_pending(list(mark))

    def index_barrier(self, timeout: float | None = 30.0) -> None:
        """Return once every message committed so far is in the search index (not from the
        writer thread: a writer job sees only what was indexed before it)."""
        if self._pending_index and not self._closed:
            fut: Future[None] = Future()
            self._jobs.put((INDEX_NOW, fut))
            fut.result(timeout)

    def message_matches(self, rowid: int, queries: Sequence[Sequence[Term]]) -> list[bool]:
        """Whether message `rowid` matches each search. Its index rows are written first, in
        this transaction, so that free text finds it (tagging rules, at delivery)."""
        # Every waiting message up to this one goes in, not this one alone: the index stays a
        # prefix of the messages by rowid, which is how a restart finds what it lacks
        # (unindexed), so none older is lost from search by a crash before the next index write.
        mine = [p for p in self._pending_index if p[0] <= rowid]
        if mine:
            self._insert_index(mine)
            self._set_pending([p for p in self._pending_index if p[0] > rowid])
        out: list[bool] = []
        for terms in queries:
            where, params = build_where(terms)
            row = self._wconn.execute(
                f"SELECT 1 FROM messages m WHERE m.id = ? AND {where}", (rowid, *params)
            ).fetchone()
            out.append(row is not None)
        return out

    def queue_index(
        self, rowid: int, headers: Sequence[tuple[str, str]], fts: Sequence[str]
    ) -> None:
        """Add a message's index rows to the next index write (writer thread)."""
        self._pending_index.append((rowid, headers, fts))
        self._pending_bytes += sum(len(text) for text in fts)

    def unqueue_index(self, rowids: Sequence[int]) -> None:
        """Forget the waiting index rows of messages being deleted (writer thread): what is
        never searched is never indexed."""
        if self._pending_index and rowids:
            gone = set(rowids)
            self._set_pending([p for p in self._pending_index if p[0] not in gone])

    def hold_index(self, box: str | None, kept: int) -> None:
        """Retention keeps at most `kept` messages of `box` (0: no limit): that many more
        messages' index rows may wait for a quiet moment or a search (writer thread)."""
        if kept > 0:
            self._index_hold[box] = kept
        else:
            self._index_hold.pop(box, None)

    def _set_pending(self, pending: list[_Pending]) -> None:
        self._pending_index = pending
        self._pending_bytes = sum(len(t) for _, _, fts in pending for t in fts)

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
        mark = list(self._pending_index)  # (a copy: jobs also take rows out of it)
        for job, fut in batch:
            job_mark = list(self._pending_index) if isolate else mark
            try:
                if isolate:
                    conn.execute("SAVEPOINT job")
                value = job(self)
                if isolate:
                    conn.execute("RELEASE job")
                results.append((fut, True, value))
            except Exception as exc:
                if not isolate:
                    rollback(conn)
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
            rollback(conn)
            self._drop_index_from(mark)
            self.write_error = f"commit failed: {exc}"
            for fut, _, _ in results:
                fut.set_exception(StoreError(f"commit failed: {exc}"))
            return None
        return results


def PROBE(store: Store) -> None:  # noqa: N802 - a sentinel job: "probe a write" (readiness)
    raise AssertionError("never run")


def INDEX_NOW(store: Store) -> None:  # noqa: N802 - a sentinel job: "index now" (a search)
    raise AssertionError("never run")


class _JobFailed(Exception):
    """A job failed in an optimistic batch, which was rolled back."""
