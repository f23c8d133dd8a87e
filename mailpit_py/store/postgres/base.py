"""What the parts of the PostgreSQL store share: the state they rely on and small helpers."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from psycopg.rows import class_row

if TYPE_CHECKING:
    from concurrent.futures import Future

    import psycopg

T = TypeVar("T")

# The summary of a message, as store/base.py's SUMMARY_COLUMNS names it for SQLite: the same
# columns and types (tags_json is JSON text, read is 0 or 1), so the layers above cannot tell.
# Tags sort by their bytes (COLLATE "C"), as SQLite's BINARY order does.
SUMMARY_COLUMNS = (
    "m.id, m.uid, m.created, m.read, m.size, m.message_id, m.subject, m.from_json, m.to_json, "
    "m.cc_json, m.bcc_json, m.reply_to_json, m.username, m.snippet, m.attachments, "
    "m.inline_count, m.session_uid, m.refused, m.mailbox, "
    "(SELECT coalesce(json_agg(t.tag ORDER BY t.tag COLLATE \"C\"), '[]')::text FROM tags t "
    "WHERE t.message = m.id) AS tags_json"
)

# Big values are read back in pieces of this size (substring() of an uncompressed bytea reads
# only the TOAST chunks it needs), so a 50 MB message never sits whole in memory.
READ_CHUNK = 1 << 20


class PgParts:
    """The attributes and methods the store's parts use from one another; backend.PgStore
    composes them and sets these up (declared for the type checker only)."""

    display: str  # the URL without its password, for messages and /api/v1/info
    compression: int  # --compression: raw messages stored compressed at this level (0: not)
    _closed: bool
    # Arrival time of the newest message retention has pruned (writer thread): sessions that
    # ended before it are older than anything kept, and go too (insert_session).
    _retired_until: float

    if TYPE_CHECKING:

        @property
        def _wconn(self) -> psycopg.Connection[Any]: ...

        def reading(self) -> AbstractContextManager[psycopg.Connection[Any]]: ...

        def queue_index(
            self, rowid: int, headers: Sequence[tuple[str, str]], fts: Sequence[str]
        ) -> None: ...

        def _forget_relays(self, uids: Sequence[str] | None) -> None: ...

        # (store/postgres/pending.py: the messages a transaction queues)
        _pending: list[Any]
        _known: dict[str | None, int]

        def _init_pending(self) -> None: ...

        def _forget_pending(self) -> None: ...

        def _flush_pending(self, conn: psycopg.Connection[Any]) -> None: ...

        def _count_kept(self, box: str | None) -> int: ...

        def _conn_in_job(self) -> psycopg.Connection[Any]: ...

        # (store/postgres/writer.py: notifications sent with the next COMMIT)
        _notes: list[str]
        _channel: str

        def submit_notes(self, messages: Sequence[str]) -> Future[None]: ...


def in_box(box: str | None, column: str = "m.mailbox") -> tuple[str, list[Any]]:
    """A WHERE condition limiting rows to one mailbox (`box`), or to none (None: every
    mailbox), with its parameters; always something to AND with."""
    if box is None:
        return "TRUE", []
    return f"{column} = %s", [text(box)]


# A mailbox of at most this many messages is searched one message at a time (search_sql's
# build_where `each`): its rows walked through messages_mailbox_id, each one tested, instead of
# every mailbox's matches read from the indexes and then limited to it.
EACH_MAX = 10_000
# The plan that walks the rows: no hash or merge join, no bitmap and no scan of a whole
# table, which read every match (the planner, pricing a row's LIKE by its slim heap row and
# not its text in TOAST, would rather scan messages_fts: 42 ms against 5).
EACH_PLAN = (
    "SELECT set_config('enable_hashjoin', 'off', true), "
    "set_config('enable_mergejoin', 'off', true), set_config('enable_bitmapscan', 'off', true), "
    "set_config('enable_seqscan', 'off', true)"
)

# (back to the defaults: the writer's transaction goes on with other jobs)
ALL_PLANS = EACH_PLAN.replace("'off'", "'on'")


def one_at_a_time(
    conn: psycopg.Connection[Any], box: str | None, whole: bool = False
) -> tuple[str | None, bool]:
    """How a search in `box` goes: (the mailbox to limit it to, whether one message at a time
    (EACH_MAX)); if so, this transaction's plans are set for it (EACH_PLAN). With `whole`, a
    mailbox that holds every message is searched as every mailbox (None), as fast as before
    there were mailboxes (the web's un-prefixed routes name the default mailbox): only for a
    transaction whose reads share one snapshot (REPEATABLE READ), or a message another
    instance stores meanwhile in another mailbox would be found."""
    if box is None:
        return None, False
    row = conn.execute(
        "SELECT b.messages, c.value FROM counters c LEFT JOIN mailboxes b ON b.name = %s "
        "WHERE c.name = 'total'",
        (text(box),),
    ).fetchone()
    held = int(row[0]) if row and row[0] is not None else 0
    if whole and row is not None and held == int(row[1]) and held > EACH_MAX:
        return None, False
    if held > EACH_MAX:
        return box, False
    conn.execute(EACH_PLAN)
    return box, True


def chunks(seq: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Pieces of at most `size` (one array parameter each)."""
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def text(value: str) -> str:
    """`value` as PostgreSQL's text takes it: a NUL character or a lone surrogate (mail is
    hostile, and SQLite keeps both) becomes U+FFFD, instead of failing the whole message."""
    if value.isascii() and "\x00" not in value:
        return value
    return _BAD_TEXT.sub("\ufffd", value)


class PgRow(dict[str, Any]):
    """A row read by column name: a store.records.Row, as sqlite3.Row is for SQLite."""

    def keys(self) -> list[str]:  # type: ignore[override]
        return list(super().keys())


def rows(conn: psycopg.Connection[Any], sql: str, params: Sequence[Any] = ()) -> list[PgRow]:
    """The rows of a query, read by column name."""
    with conn.cursor(row_factory=class_row(PgRow)) as cur:
        return cur.execute(sql, params).fetchall()
