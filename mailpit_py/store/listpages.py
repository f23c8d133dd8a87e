"""Pages of the SQLite store's message list, found from the nearer end of the list."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from mailpit_py.store.base import SUMMARY_COLUMNS

# One mailbox's entries, newest first, with each one's read flag (migration 16): what a page, a
# search's candidates and its counts in one mailbox walk instead of every message's.
BOX_INDEX = " INDEXED BY messages_mailbox_id_read"


@contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction around several statements (the counters and the index they count
    agree), unless one is open already (MessageQueries._in_box's)."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def page_from_newest(
    cursor: sqlite3.Cursor, start: int, limit: int, box: str | None
) -> list[sqlite3.Row]:
    """A page `start` messages from the newest: OFFSET steps over slim index entries, not over
    the table's fat rows (a deep page's first id 5x faster), then the page is a range read."""
    if box is not None:
        return cursor.execute(
            f"SELECT {SUMMARY_COLUMNS} FROM messages m WHERE m.id IN ("
            f"SELECT id FROM messages{BOX_INDEX} WHERE mailbox = ? "
            "ORDER BY id DESC LIMIT ? OFFSET ?) ORDER BY m.id DESC",
            (box, limit, start),
        ).fetchall()
    if start == 0:
        return cursor.execute(
            f"SELECT {SUMMARY_COLUMNS} FROM messages m ORDER BY m.id DESC LIMIT ?", (limit,)
        ).fetchall()
    return cursor.execute(
        f"SELECT {SUMMARY_COLUMNS} FROM messages m WHERE m.id <= ("
        "SELECT id FROM messages INDEXED BY messages_id_read "
        "ORDER BY id DESC LIMIT 1 OFFSET ?) ORDER BY m.id DESC LIMIT ?",
        (start, limit),
    ).fetchall()


def page_from_oldest(
    cursor: sqlite3.Cursor, from_oldest: int, limit: int, box: str | None
) -> list[sqlite3.Row]:
    """A page past the middle of the list, its newest message found `from_oldest` entries from
    the oldest end: OFFSET steps over every entry it skips, so a page 999,000 deep of 1,000,000
    stepped over 999,000 index entries (22-39 ms) where this steps over 950. The count it is
    reckoned from is read in the same snapshot (snapshot), so the two ends agree."""
    if box is not None:
        return cursor.execute(
            f"SELECT {SUMMARY_COLUMNS} FROM messages m WHERE m.id IN ("
            f"SELECT id FROM messages{BOX_INDEX} WHERE mailbox = ? AND id <= ("
            f"SELECT id FROM messages{BOX_INDEX} WHERE mailbox = ? "
            "ORDER BY id ASC LIMIT 1 OFFSET ?) ORDER BY id DESC LIMIT ?) ORDER BY m.id DESC",
            (box, box, from_oldest, limit),
        ).fetchall()
    return cursor.execute(
        f"SELECT {SUMMARY_COLUMNS} FROM messages m WHERE m.id <= ("
        "SELECT id FROM messages INDEXED BY messages_id_read "
        "ORDER BY id ASC LIMIT 1 OFFSET ?) ORDER BY m.id DESC LIMIT ?",
        (from_oldest, limit),
    ).fetchall()
