"""SQLite storage: the Store, composed of the writer, the read pool and the queries.

Only `mailbox` calls this module, typed against store.interface.StoreBackend, so a second
backend (PostgreSQL is planned) is an addition behind the same interface rather than a rewrite.
Nothing here knows about the web or SMTP.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import TYPE_CHECKING

from mailpit_py.store.base import SQLiteParts
from mailpit_py.store.mailboxes import Mailboxes
from mailpit_py.store.messages import MessageWrites
from mailpit_py.store.outbox import Outbox
from mailpit_py.store.queries import MessageQueries
from mailpit_py.store.records import StoreError
from mailpit_py.store.schema import migrate, refuse_foreign_file
from mailpit_py.store.sessions import Sessions, Statistics
from mailpit_py.store.writer import GROUP_LINGER, PROBE, GroupCommitWriter

if TYPE_CHECKING:
    from mailpit_py.store.interface import StoreBackend

MEMORY = ":memory:"

# Readiness (health) probes a real write through the writer (writer.HEALTH_PROBE_BYTES); a file
# database is also not ready while its disk has less than this many bytes free.
HEALTH_MIN_FREE = 1 << 20

# Read connections kept open between reads (file databases). A read takes an idle one or opens
# one, and gives it back after; beyond this many idle ones it is closed. A connection per thread
# was never closed: each HTTP request runs in a new thread, so every request left ~2 descriptors
# and ~140 KB behind until the process ran out of descriptors.
READ_POOL = 8


class Store(
    GroupCommitWriter,
    MessageWrites,
    MessageQueries,
    Mailboxes,
    Outbox,
    Sessions,
    Statistics,
    SQLiteParts,
):
    """A SQLite database: one writer thread (group commit), reads on a small connection pool."""

    def __init__(
        self,
        path: str,
        *,
        busy_timeout: float = 5.0,
        batch_max: int = 256,
        linger: float = GROUP_LINGER,
        wal: bool = True,
        compression: int = 0,
    ) -> None:
        self.path = path
        self.compression = compression
        self.wal = wal  # --disable-wal: a rollback journal, for databases on NFS
        self.memory = path == MEMORY
        self._busy_timeout = busy_timeout
        self._idle: list[sqlite3.Connection] = []  # read connections not in use (READ_POOL)
        self._all_conns: set[sqlite3.Connection] = set()  # every open one, closed by close()
        self._conns_lock = threading.Lock()
        # In memory there is one connection, so reads and the writer's batches take turns.
        self._mem_lock = threading.RLock()
        self._init_writer(batch_max, linger)
        self._closed = False
        # Arrival time of the newest message retention has pruned (writer thread): sessions that
        # ended before it are older than anything kept, and go too (insert_session).
        self._retired_until = 0.0
        if not self.memory:
            refuse_foreign_file(path)
        self._wconn = self._connect()
        migrate(self._wconn, self.path)
        self._start_writer()

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
            if not self.memory and not self.wal:
                # SQLite's default rollback journal, with its default FULL synchronous.
                conn.execute("PRAGMA journal_mode=DELETE")
            elif not self.memory:
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
        self._enqueue(PROBE, probe)
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


if TYPE_CHECKING:

    def _implements(store: Store) -> StoreBackend:
        return store  # the type checker proves that Store implements the interface
