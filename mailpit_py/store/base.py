"""What the parts of the SQLite store share: the state they rely on and small SQL helpers."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, TypeVar

T = TypeVar("T")

# Values larger than this are written and read in pieces of this size (zeroblob + blobopen).
BLOB_CHUNK = 1 << 20

SUMMARY_COLUMNS = (
    "m.id, m.uid, m.created, m.read, m.size, m.message_id, m.subject, m.from_json, m.to_json, "
    "m.cc_json, m.bcc_json, m.reply_to_json, m.username, m.snippet, m.attachments, "
    "m.inline_count, m.session_uid, m.refused, m.mailbox, "
    "(SELECT json_group_array(tag) FROM (SELECT tag FROM tags t WHERE t.message = m.id "
    "ORDER BY tag)) AS tags_json"
)


class SQLiteParts:
    """The attributes and methods the store's parts (writer, messages, queries, outbox,
    sessions, statistics) use from one another; sqlite.Store composes them and sets these up.

    Declared for the type checker only: at run time each comes from the class that defines it,
    so a call costs what it did when the store was one class.
    """

    path: str
    memory: bool
    _wconn: sqlite3.Connection  # the writer thread's connection
    compression: int  # --compression: raw messages stored compressed at this level (0: not)
    _mem_lock: threading.RLock  # in memory, reads and the writer's batches take turns
    _closed: bool
    # Arrival time of the newest message retention has pruned (writer thread): sessions that
    # ended before it are older than anything kept, and go too (insert_session).
    _retired_until: float

    # A SQLite file has one instance at a time: nobody else to tell (store/interface.py).
    def listen(self, callback: Callable[[str], None]) -> bool:
        return False

    def notify(self, messages: Sequence[str]) -> None:
        pass

    if TYPE_CHECKING:

        def reading(self) -> AbstractContextManager[sqlite3.Connection]: ...

        def index_barrier(self, timeout: float | None = 30.0) -> None: ...

        def queue_index(
            self, rowid: int, headers: Sequence[tuple[str, str]], fts: Sequence[str]
        ) -> None: ...

        def unqueue_index(self, rowids: Sequence[int]) -> None: ...

        def hold_index(self, box: str | None, kept: int) -> None: ...

        def _forget_relays(self, uids: Sequence[str] | None) -> None: ...

        def _delete_rowids(self, rowids: Sequence[int]) -> None: ...


def write_blob(conn: sqlite3.Connection, table: str, column: str, rowid: int, data: bytes) -> None:
    """Fill a zeroblob in place: binding a big value makes SQLite copy it whole first."""
    view = memoryview(data)
    with conn.blobopen(table, column, rowid) as blob:
        for offset in range(0, len(view), BLOB_CHUNK):
            blob.write(view[offset : offset + BLOB_CHUNK])


def chunks(seq: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Pieces of at most `size`: SQLite binds at most so many parameters per statement."""
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is open (an error may have ended it already)."""
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def dict_cursor(conn: sqlite3.Connection) -> sqlite3.Cursor:
    """A cursor whose rows are read by column name."""
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row
    return cur
