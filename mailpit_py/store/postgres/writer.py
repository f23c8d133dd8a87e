"""The PostgreSQL store's writer thread: queued jobs, group commit with a savepoint per job when
one fails, tickets, the readiness probe; its connection comes from a pool of one that reconnects
by itself after the server went away."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
import psycopg_pool
from psycopg import sql

from mailpit_py.store.postgres.base import PgParts
from mailpit_py.store.records import StoreError, Ticket
from mailpit_py.store.writer import GROUP_LINGER, HEALTH_PROBE_BYTES, Completion

if TYPE_CHECKING:
    from mailpit_py.store.postgres.backend import PgStore

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long the writer waits for a connection before failing the batch (the server is down or
# unreachable): its jobs fail with StoreError (SMTP 451) instead of waiting for the deadline.
CONNECT_WAIT = 5.0

_Job = tuple[Callable[[Any], Any], Future[Any] | Completion]


def PROBE(store: PgStore) -> None:  # noqa: N802 - a sentinel job: "probe a write" (readiness)
    raise AssertionError("never run")


# How long notifications to the other instances wait for other jobs to ride with: a sequential
# sender's next delivery comes within milliseconds, and its transaction's COMMIT sends them at no
# cost of their own (a NOTIFY alone cost a round trip, a transaction id and a commit record).
RIDE_WAIT = 0.010


class _Notes:
    """A job that queues notifications to the other instances for its transaction's COMMIT."""

    def __init__(self, messages: list[str]) -> None:
        self.messages = messages

    def __call__(self, store: PgStore) -> None:
        store._notes.extend(self.messages)


def _size(batch: list[_Job]) -> int:
    """The jobs of a batch that group commit counts (notifications only ride along)."""
    return sum(not isinstance(job, _Notes) for job, _ in batch)


class _JobFailed(Exception):
    """A job failed in an optimistic batch, which was rolled back."""


class _NotesFailed(Exception):
    """The server refused the notifications with the COMMIT: nothing committed."""


class _Lost(Exception):
    """The connection failed under the transaction: nothing of it committed."""


def unavailable(exc: BaseException) -> StoreError:
    """The StoreError for a database that cannot be reached or failed a statement."""
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return StoreError(f"PostgreSQL cannot be reached (no connection in {CONNECT_WAIT:g} s)")
    return StoreError(f"PostgreSQL: {str(exc).strip() or type(exc).__name__}")


class PgWriter(PgParts):
    """One thread runs the jobs, committing those that wait together in one transaction."""

    _wpool: psycopg_pool.ConnectionPool[Any]

    def _init_writer(self, batch_max: int, linger: float = GROUP_LINGER) -> None:
        self._batch_max = batch_max
        self._linger = linger
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.last_batch_size = 0
        self.on_batch: Callable[[int], None] | None = None
        self.write_error = ""  # why the last batch failed, until one commits again
        self._conn: psycopg.Connection[Any] | None = None  # the writer's, while a batch runs
        self._held: psycopg.Connection[Any] | None = None  # kept between batches (_begin)
        self._notes: list[str] = []  # notifications to the other instances, sent with the COMMIT
        self._init_pending()

    @property
    def _wconn(self) -> psycopg.Connection[Any]:
        """The transaction's connection, for any statement but insert_message's: the messages
        queued so far are written first (the statement may read or change them), and the counts
        known since are forgotten (it may change them)."""
        conn = self._conn
        if conn is None:
            raise StoreError("a store write ran outside the writer")
        if self._pending:
            self._flush_pending(conn)
        self._known.clear()
        return conn

    def _start_writer(self) -> None:
        self._writer = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)
        self._writer.start()

    def submit(self, job: Callable[[PgStore], T]) -> Future[T]:
        fut: Future[T] = Future()
        self._enqueue(job, fut)
        return fut

    def submit_then(
        self,
        job: Callable[[PgStore], T],
        then: Callable[[T | None, BaseException | None], None],
        ticket: Ticket | None = None,
    ) -> None:
        self._enqueue(job, Completion(then, ticket))

    def _enqueue(self, job: Callable[[PgStore], Any], waiter: Future[Any] | Completion) -> None:
        if self._closed:
            waiter.set_exception(StoreError("the store is closed"))
        else:
            self._jobs.put((job, waiter))

    def submit_notes(self, messages: Sequence[str]) -> Future[None]:
        """Have these notifications sent, in order, with the COMMIT of the writer's next
        transaction, which waits RIDE_WAIT at most for other jobs when it would hold nothing
        else: they reach the other instances as it commits, after every earlier commit."""
        return self.submit(_Notes(list(messages)))

    def write(self, job: Callable[[PgStore], T], timeout: float | None = 30.0) -> T:
        return self.submit(job).result(timeout)

    def index_barrier(self, timeout: float | None = 30.0) -> None:
        """Nothing to wait for: a message's index rows commit in its own transaction."""

    def _write_loop(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                self._release()
                return
            batch: list[_Job] = []
            probes: list[Future[Any] | Completion] = []
            deadline = ride = 0.0  # (the group linger's end, the notifications' wait's)
            while True:
                if item[0] is PROBE:
                    probes.append(item[1])
                else:
                    batch.append(item)
                if len(batch) >= self._batch_max:
                    break
                try:
                    item = self._jobs.get_nowait()
                except queue.Empty:
                    size = _size(batch)
                    if batch and not size:
                        until = ride = ride or time.monotonic() + RIDE_WAIT
                    elif not batch or size >= self.last_batch_size or self._linger <= 0:
                        break
                    else:  # (from the first job the notifications waited for: theirs ends)
                        until = deadline = deadline or time.monotonic() + self._linger
                    try:
                        item = self._jobs.get(timeout=max(until - time.monotonic(), 0.0))
                    except queue.Empty:
                        break
                if item is None:
                    self._jobs.put(None)
                    break
            if batch:
                self._run_batch(batch)
            if probes:
                live = [fut for fut in probes if fut.set_running_or_notify_cancel()]
                problem = self._probe() if live else ""
                for fut in live:
                    fut.set_result(problem)

    def _begin(self) -> psycopg.Connection[Any]:
        """BEGIN on the writer's connection, kept between batches (one from the pool is checked
        with a round trip each time it is taken). A kept connection that went stale (the server
        restarted) is dropped and a fresh one tried once, so no batch fails for it."""
        for fresh in (self._held is None, True):
            conn = self._held
            if conn is None:
                conn = self._held = self._wpool.getconn(timeout=CONNECT_WAIT)
            try:
                conn.execute("BEGIN")
                return conn
            except psycopg.OperationalError:
                self._release()
                if fresh:
                    raise
        raise AssertionError("unreachable")

    def _release(self) -> None:
        """Give the writer's connection back to the pool (which drops a broken one)."""
        conn, self._held = self._held, None
        if conn is not None:
            try:
                self._wpool.putconn(conn)
            except psycopg.Error:
                pass

    def _probe(self) -> str:
        """Write HEALTH_PROBE_BYTES in a transaction of its own and roll it back: what failed,
        or ''."""
        try:
            conn = self._begin()
            try:
                conn.execute(
                    "INSERT INTO meta (name, value) VALUES ('health probe', repeat('x', %s))",
                    (HEALTH_PROBE_BYTES,),
                )
            finally:
                conn.execute("ROLLBACK")
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            self._release()
            return str(unavailable(exc))
        return ""

    def _run_batch(self, batch: list[_Job]) -> None:
        live: list[_Job] = []  # the jobs started (not cancelled), once the transaction began
        try:
            conn = self._begin()
            self._conn = conn
            try:
                results = self._batch_on(conn, batch, live)
            finally:
                self._conn = None
        except (psycopg.Error, psycopg_pool.PoolTimeout, _Lost) as exc:
            self._release()
            cause = exc.__cause__ if isinstance(exc, _Lost) and exc.__cause__ else exc
            error = unavailable(cause)
            self.write_error = str(error)
            log.warning("store batch of %d jobs failed: %s", len(batch), error)
            waiters = [fut for _, fut in live]
            if not live:
                # Failed before the jobs started: those not cancelled meanwhile are told (the
                # submitter of a cancelled one has answered already).
                waiters = [fut for _, fut in batch if fut.set_running_or_notify_cancel()]
            for fut in waiters:
                fut.set_exception(error)
            return
        self.last_batch_size = _size(batch)
        self.write_error = ""
        if self.on_batch is not None:
            self.on_batch(len(results))
        for fut, ok, value in results:
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(
                    value if isinstance(value, StoreError) else StoreError(str(value))
                )

    def _batch_on(
        self, conn: psycopg.Connection[Any], batch: list[_Job], live: list[_Job]
    ) -> list[tuple[Future[Any] | Completion, bool, Any]]:
        # Jobs start once the transaction has begun (_begin): until then a submitter may give
        # up on its job (Ticket), and then it is never committed.
        live += [(job, fut) for job, fut in batch if fut.set_running_or_notify_cancel()]
        jobs, isolate = live, False
        refused: list[tuple[Future[Any] | Completion, bool, Any]] = []
        while True:
            try:
                return refused + self._transaction(conn, jobs, isolate=isolate)
            except _JobFailed:
                isolate = True
            except _NotesFailed as exc:
                # The others' work must not fail for a notification (the server's queue of
                # them full): they run again without, and notify hears why.
                error = unavailable(exc.__cause__ or exc)
                refused += [(fut, False, error) for job, fut in jobs if isinstance(job, _Notes)]
                jobs = [(job, fut) for job, fut in jobs if not isinstance(job, _Notes)]
            conn.execute("BEGIN")

    def _transaction(
        self, conn: psycopg.Connection[Any], batch: list[_Job], *, isolate: bool
    ) -> list[tuple[Future[Any] | Completion, bool, Any]]:
        """Run the jobs in the transaction begun and commit it. Without isolation a failing job
        rolls everything back and raises _JobFailed; with it, a savepoint undoes that job
        alone. A connection lost on the way raises _Lost (nothing committed).

        The messages the jobs insert are written together (pending.py): before the commit, or,
        with isolation, at the end of each job, so that a message that cannot be written fails
        its own job alone. The notifications they queue go in the COMMIT's round trip."""
        results: list[tuple[Future[Any] | Completion, bool, Any]] = []
        self._forget_pending()
        self._notes.clear()  # (a batch run again queues its notifications again)
        for job, fut in batch:
            try:
                if isolate:
                    conn.execute("SAVEPOINT job")
                value = job(self)
                if isolate:
                    self._flush_pending(conn)
                    conn.execute("RELEASE SAVEPOINT job")
                results.append((fut, True, value))
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                raise _Lost from exc  # the server went away: the whole batch fails
            except Exception as exc:
                if conn.closed or conn.broken:
                    raise _Lost from exc
                self._forget_pending()
                if not isolate:
                    conn.execute("ROLLBACK")
                    raise _JobFailed from exc
                log.exception("store job failed")
                conn.execute("ROLLBACK TO SAVEPOINT job")
                conn.execute("RELEASE SAVEPOINT job")
                results.append((fut, False, exc))
        try:
            self._flush_pending(conn)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise _Lost from exc
        except Exception as exc:
            if conn.closed or conn.broken:
                raise _Lost from exc
            # (which job's message could not be written: the jobs run again, each alone)
            self._forget_pending()
            conn.execute("ROLLBACK")
            raise _JobFailed from exc
        notes = bool(self._notes)
        try:
            conn.execute(self._commit_statement())
        except psycopg.Error as exc:
            if notes and not (conn.closed or conn.broken):
                self._rollback(conn)  # (the server answered: nothing committed)
                raise _NotesFailed from exc
            raise _Lost from exc
        return results

    @staticmethod
    def _rollback(conn: psycopg.Connection[Any]) -> None:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")

    def _commit_statement(self) -> sql.Composed:
        """COMMIT, after the queued notifications: with no parameters, psycopg sends the
        statements as one simple query, in one round trip."""
        notes, self._notes = self._notes, []
        notify = [
            sql.SQL("SELECT pg_notify({}, {});").format(sql.Literal(self._channel), sql.Literal(n))
            for n in notes
        ]
        return sql.SQL(" ").join([*notify, sql.SQL("COMMIT")])
