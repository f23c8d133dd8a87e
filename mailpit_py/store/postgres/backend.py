"""The PostgreSQL Store: connection pools (reads, and the writer's own), start-up checks with
errors that say what to fix, readiness, and the parts composed into one StoreBackend."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict

from mailpit_py.store.open import redact
from mailpit_py.store.postgres.base import PgParts
from mailpit_py.store.postgres.boxes import PgMailboxes
from mailpit_py.store.postgres.messages import PgMessageWrites
from mailpit_py.store.postgres.notify import CHANNEL, PgNotify
from mailpit_py.store.postgres.outbox import PgOutbox
from mailpit_py.store.postgres.pending import PgPendingInserts
from mailpit_py.store.postgres.queries import PgMessageQueries
from mailpit_py.store.postgres.schema import migrate, prepare_schema
from mailpit_py.store.postgres.sessions import PgSessions, PgStatistics
from mailpit_py.store.postgres.writer import CONNECT_WAIT, PROBE, PgWriter, unavailable
from mailpit_py.store.records import StoreError
from mailpit_py.store.writer import GROUP_LINGER

if TYPE_CHECKING:
    from mailpit_py.store.interface import StoreBackend

# Read connections kept open (more are not opened: a read waits for one, CONNECT_WAIT at most).
READ_POOL = 8
# Every connection: a bounded connect, a name in pg_stat_activity, and TCP keepalives so that a
# server that vanished without closing its sockets is noticed within ~20 s.
CONNECTION = {
    "autocommit": True,
    "connect_timeout": 5,
    "application_name": "mailpit_py",
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 2,
}
RECONNECT_GIVE_UP = 2.0
_EXAMPLE = "postgresql://user:password@host:5432/database"


def start_error(url: str, exc: psycopg.Error) -> StoreError:
    """What a failed first connection means, and what to fix."""
    message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        params = {}
    user = params.get("user", "(the default user)")
    where = f"{params.get('host', 'localhost')}:{params.get('port', 5432)}"
    dbname = params.get("dbname", user)
    state = getattr(exc, "sqlstate", None)
    lowered = str(exc).lower()
    if state == "3D000" or ("database" in lowered and "does not exist" in lowered):
        return StoreError(
            f"PostgreSQL at {where} has no database {dbname!r}: create it (createdb {dbname}) "
            "or fix its name in --database (MP_DATABASE)"
        )
    if state in ("28P01", "28000") or "authentication" in lowered or "password" in lowered:
        return StoreError(
            f"PostgreSQL at {where} refused the login of user {user!r} ({message}): check the "
            "user name and password in --database (MP_DATABASE)"
        )
    return StoreError(
        f"cannot reach PostgreSQL at {where} ({message}): check that the server runs and "
        "accepts connections, and the host and port in --database (MP_DATABASE)"
    )


# When each read connection was last given back (monotonic), and how long one may rest
# before it is checked again as it is taken (_check_if_idle).
_RETURNED: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = weakref.WeakKeyDictionary()
CHECK_AFTER = 2.0


def _check_if_idle(conn: psycopg.Connection[Any]) -> None:
    if time.monotonic() - _RETURNED.get(conn, 0.0) > CHECK_AFTER:
        psycopg_pool.ConnectionPool.check_connection(conn)


class PgStore(
    PgWriter,
    PgPendingInserts,
    PgMessageWrites,
    PgMessageQueries,
    PgOutbox,
    PgSessions,
    PgStatistics,
    PgMailboxes,
    PgNotify,
    PgParts,
):
    """A PostgreSQL database: one writer thread (group commit), reads on a connection pool."""

    def __init__(
        self,
        url: str,
        *,
        batch_max: int = 256,
        linger: float = GROUP_LINGER,
        compression: int = 0,
        schema: str = "",
    ) -> None:
        self.display = redact(url)
        self.compression = compression
        try:
            params = conninfo_to_dict(url)
            port = str(params.get("port", "5432"))
            if not all(p.isdigit() for p in port.split(",")):
                raise psycopg.ProgrammingError(f"the port {port!r} is not a number")
        except psycopg.Error as exc:
            raise StoreError(
                f"--database {self.display} is not a PostgreSQL URL psycopg can read "
                f"({str(exc).strip()}): write it as {_EXAMPLE}"
            ) from None
        self._closed = False
        self._retired_until = 0.0
        self._url = url
        self._stopping = threading.Event()
        self._listener = None
        # A tenant (--tenant-id) is a schema of its own, first on every connection's search
        # path (public after it, where pg_trgm's operators are), and a channel of its own.
        self._connection: dict[str, Any] = dict(CONNECTION)
        self._channel = CHANNEL
        if schema:
            self._connection["options"] = f'-c search_path="{schema}",public'
            self._channel = f"{CHANNEL}_{schema}"[:63]  # NAMEDATALEN
        self._init_writer(batch_max, linger)
        try:
            if schema:
                with psycopg.connect(url, **CONNECTION) as conn:  # type: ignore[arg-type]
                    prepare_schema(conn, schema, self.display)
            with psycopg.connect(url, **self._connection) as conn:
                migrate(conn, self.display)
        except psycopg.Error as exc:
            raise start_error(url, exc) from None
        self._rpool = self._pool(url, READ_POOL, "mailpit-read", self._connection)
        self._wpool = self._pool(url, 1, "mailpit-write", self._connection)
        self._start_writer()

    @staticmethod
    def _pool(
        url: str, size: int, name: str, connection: dict[str, Any]
    ) -> psycopg_pool.ConnectionPool[Any]:
        pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=size,
            kwargs=dict(connection),
            # A pooled connection idle for a while is checked as it is taken: after the server
            # restarted, the first use of each would fail otherwise. One given back moments
            # ago is not: the check is a round trip, as much as a page of the list costs.
            check=_check_if_idle,
            timeout=CONNECT_WAIT,
            # A failed reconnection is given up after RECONNECT_GIVE_UP instead of retried with a
            # backoff that doubles without bound (after a minute away, the next try came 30 s
            # after the server was back): the next read or write that finds no connection
            # starts a new attempt at once, so the store recovers as soon as the server does.
            reconnect_timeout=RECONNECT_GIVE_UP,
            name=name,
            open=False,
        )
        pool.open(wait=False)
        return pool

    @contextmanager
    def reading(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection for queries (autocommit: each sees what is committed)."""
        if self._closed:
            raise StoreError("the store is closed")
        try:
            with self._rpool.connection(timeout=CONNECT_WAIT) as conn:
                try:
                    yield conn
                finally:
                    # (noted here: the pool's reset hook would hand every return to a worker
                    # thread, which cost more than the check it saves)
                    _RETURNED[conn] = time.monotonic()
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise unavailable(exc) from exc

    def health(self, timeout: float = 2.0) -> str:
        if self._closed:
            return "the store is closed"
        if not self._writer.is_alive():
            return "the database writer has stopped"
        try:
            with self.reading() as conn:
                conn.execute("SELECT 1 FROM messages LIMIT 1").fetchall()
        except StoreError as exc:
            return f"the database cannot be read: {exc}"
        probe: Future[str] = Future()
        self._enqueue(PROBE, probe)
        try:
            problem = probe.result(timeout)
        except TimeoutError:
            probe.cancel()
            return f"the database cannot be written: the writer did not answer in {timeout:g} s"
        except Exception as exc:
            return f"the database cannot be written: {exc or 'no answer'}"
        return f"the database cannot be written: {problem}" if problem else ""

    def close(self) -> None:
        if self._closed:
            return
        self._stop_listening()
        self._jobs.put(None)
        self._writer.join(timeout=30)
        self._closed = True
        for pool in (self._rpool, self._wpool):
            pool.close(timeout=5)


if TYPE_CHECKING:

    def _implements(store: PgStore) -> StoreBackend:
        return store  # the type checker proves that PgStore implements the interface
