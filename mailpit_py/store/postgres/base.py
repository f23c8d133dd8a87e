"""What the parts of the PostgreSQL store share: the state they rely on and small helpers."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from psycopg.rows import class_row

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")

# The summary of a message, as store/base.py's SUMMARY_COLUMNS names it for SQLite: the same
# columns and types (tags_json is JSON text, read is 0 or 1), so the layers above cannot tell.
# Tags sort by their bytes (COLLATE "C"), as SQLite's BINARY order does.
SUMMARY_COLUMNS = (
    "m.id, m.uid, m.created, m.read, m.size, m.message_id, m.subject, m.from_json, m.to_json, "
    "m.cc_json, m.bcc_json, m.reply_to_json, m.username, m.snippet, m.attachments, "
    "m.inline_count, m.session_uid, m.refused, "
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
