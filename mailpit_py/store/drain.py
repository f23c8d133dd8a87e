"""Delete all's freeing, deferred (SQLite): its big tables are set aside, and the writer empties
them a step at a time while it is idle, resuming after a restart."""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Sequence
from contextlib import nullcontext

from mailpit_py.store.base import SQLiteParts, rollback

log = logging.getLogger(__name__)

# A table named so holds deleted messages' data alone: `drain_N_TABLE`, N counting the deletes
# whose tables wait. No query names it, so dump and migrate, which read through the store,
# leave it behind, and the migrations never touch it.
ASIDE_PREFIX = "drain_"
ASIDE_NAME = re.compile(r"drain_(\d+)_(\w+)\Z")

# Freeing a row frees its pages, and SQLite reads every overflow page of a blob to free it:
# at 1,000,000 messages (8.6 GB) that was 14 s of one transaction in delete all, with every
# delivery waiting behind it. A step is a transaction of its own that frees rows in runs of at
# most STEP_ROWS divided by one more than the table's indexes (each row deleted is an entry to
# find and a page to write in each), until it has spent STEP_SECONDS or freed about STEP_BYTES
# of blobs (at least one row): at 1,000,000 messages, steps of a fixed 2,000 rows (285 of
# messages, with 6 indexes) took up to 0.73 s, and deliveries waited 23 ms in the median. The
# commit writes every page the step dirtied (and, past 1,000 of them in the log, checkpoints),
# so the budget is kept small: at 100,000 messages 20 ms made steps of 62 ms in the median
# (messages), 5 ms 11 ms, and the longest 165 -> 75 ms.
STEP_ROWS = 256
STEP_SECONDS = 0.005
STEP_BYTES = 4 << 20
# The writer takes a first step once it has had no job for this long (seconds), then the next
# ones back to back while no job comes: steps go between bursts of mail, and a delivery that
# comes during one waits for that step alone.
IDLE = 0.05
# Under steady mail the writer may never be idle that long (a message every 50 ms keeps it
# busy): after a batch, a step is then taken once this long (seconds) has passed since the
# last, so the freeing ends all the same, at the cost of one step's wait for some deliveries.
EVERY = 0.5
# After a step failed (a full disk, a lock held by another process), the next waits this long.
RETRY = 5.0

# FTS5 keeps these rows of its _data table to open the table, which its DROP does: the
# averages (1) and the structure (10). Segment pages are numbered far above.
FTS5_KEPT_DATA = 10
FTS5_SHADOWS = ("data", "idx", "content", "docsize", "config")


def is_aside(name: str) -> bool:
    """Whether a table (or a shadow table of one) was set aside by delete all."""
    return ASIDE_NAME.match(name) is not None


def set_aside(conn: sqlite3.Connection, tables: Sequence[str]) -> None:
    """Rename these tables aside and create them again, empty, with their indexes, in the
    caller's transaction (whose triggers on them it has dropped): renaming rewrites the schema
    alone, not one page of the data, where freeing a table reads every page of it (at
    1,000,000 messages, from a cold cache: 8 s for messages, 13 s for the raw messages)."""
    numbers = [int(m.group(1)) for m in map(ASIDE_NAME.match, schema_names(conn)) if m]
    number = max(numbers, default=0) + 1
    for table in tables:
        rows = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL",
            (table,),
        ).fetchall()
        created = [sql for kind, _, sql in rows if kind == "table"]
        if len(created) != 1 or any(kind == "trigger" for kind, _, _ in rows):
            raise sqlite3.OperationalError(f"table {table} cannot be set aside")
        indexes = [(name, sql) for kind, name, sql in rows if kind == "index"]
        aside = f"{ASIDE_PREFIX}{number}_{table}"
        conn.execute(f'ALTER TABLE "{table}" RENAME TO "{aside}"')
        if indexes:
            rename_indexes(conn, [name for name, _ in indexes], f"{ASIDE_PREFIX}{number}_")
        conn.execute(created[0])
        for _, sql in indexes:
            conn.execute(sql)
        if "AUTOINCREMENT" in created[0].upper():
            # The rename took the table's last id along; ids are never reused (IMAP's UIDs).
            conn.execute(
                "INSERT INTO sqlite_sequence (name, seq) SELECT ?, seq FROM sqlite_sequence "
                "WHERE name = ?",
                (table, aside),
            )


INDEX_HEAD = re.compile(r'(CREATE (?:UNIQUE )?INDEX (?:IF NOT EXISTS )?)"?(\w+)"?', re.IGNORECASE)


def rename_indexes(conn: sqlite3.Connection, names: Sequence[str], prefix: str) -> None:
    """Give these indexes (of a table renamed aside) the prefix, so that the table made again
    gets its indexes under their names. SQLite has no statement for it and dropping one reads
    every page of it, so their schema rows are rewritten, as SQLite's ALTER TABLE documents for
    changes that leave the stored pages alone (writable_schema, then a new schema_version so
    that every connection reads the schema again)."""
    version = int(conn.execute("PRAGMA schema_version").fetchone()[0])
    conn.execute("PRAGMA writable_schema = ON")
    try:
        for name in names:
            sql = str(
                conn.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
                ).fetchone()[0]
            )
            head = INDEX_HEAD.match(sql)
            if head is None or head.group(2) != name:
                raise sqlite3.OperationalError(f"index {name} cannot be renamed: {sql}")
            renamed = f'{head.group(1)}"{prefix}{name}"{sql[head.end() :]}'
            conn.execute(
                "UPDATE sqlite_master SET name = ?, sql = ? WHERE type = 'index' AND name = ?",
                (prefix + name, renamed, name),
            )
        conn.execute(f"PRAGMA schema_version = {version + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = RESET")  # (also reads the schema again)


def schema_names(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


class Drain(SQLiteParts):
    """The writer's part that empties the tables set aside (writer thread only)."""

    # Tables set aside still to empty, oldest first; None until the schema is read (at the
    # writer's first idle moment, so a restart resumes a drain a crash cut short).
    _aside: list[str] | None = None
    _drain_after = 0.0  # (monotonic) no step before this, after a failure
    _drain_streak = False  # a step was the writer's last work: the next follows at once
    _drain_last = 0.0  # (monotonic) when the last step ended
    drain_steps = 0  # steps committed by this store (the tests count them)

    def drain_waiting(self) -> bool:
        """Whether a table set aside waits to be emptied."""
        if self._aside is None:
            self._aside = self._find_aside()
        return bool(self._aside)

    def drain_wait(self) -> float | None:
        """How long the writer waits for a job before it takes a step; None: no step waits."""
        if not self.drain_waiting():
            return None
        streak, self._drain_streak = self._drain_streak, False
        return max(0.0 if streak else IDLE, self._drain_after - time.monotonic())

    def drain_overdue(self) -> None:
        """After a batch: a step, if none was taken for EVERY seconds."""
        if time.monotonic() - self._drain_last >= EVERY and self.drain_waiting():
            self.drain_step()

    def forget_aside(self) -> None:
        """Tables were set aside (or the transaction that did so rolled back): read the schema
        again before the next step, the first of them overdue EVERY seconds from now."""
        self._aside = None
        self._drain_last = time.monotonic()

    def _find_aside(self) -> list[str]:
        with self._mem_lock if self.memory else nullcontext():
            names = schema_names(self._wconn)
        found = [n for n in names if is_aside(n) and not self._is_shadow(n, names)]
        return sorted(found, key=lambda n: int(ASIDE_NAME.match(n).group(1)))  # type: ignore[union-attr]

    @staticmethod
    def _is_shadow(name: str, names: list[str]) -> bool:
        head, _, tail = name.rpartition("_")
        return tail in FTS5_SHADOWS and head in names

    def drain_step(self) -> None:
        """Free one step's worth of the oldest table set aside, in a transaction of its own;
        drop the table once it is empty."""
        if not self.drain_waiting() or time.monotonic() < self._drain_after:
            return
        assert self._aside is not None
        table = self._aside[0]
        conn = self._wconn
        with self._mem_lock if self.memory else nullcontext():
            try:
                conn.execute("BEGIN IMMEDIATE")
                emptied = self._free_some(table)
                if emptied:
                    conn.execute(f'DROP TABLE IF EXISTS "{table}"')
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                rollback(conn)
                log.warning("freeing deleted messages' space paused for %g s: %s", RETRY, exc)
                self._drain_after = time.monotonic() + RETRY
                self._aside = None
                return
        self.drain_steps += 1
        self._drain_streak = True
        self._drain_last = time.monotonic()
        if emptied:
            del self._aside[0]

    def _free_some(self, table: str) -> bool:
        """Delete a step's rows of `table` (of a virtual table set aside, of its shadow
        tables); whether nothing is left to delete but the table itself."""
        conn = self._wconn
        sql = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        if sql is None:
            return True
        if not str(sql[0]).upper().startswith("CREATE VIRTUAL TABLE"):
            return self._free_rows(table, 0)
        # FTS5: its shadow tables hold the pages; its DROP then opens it, which needs the
        # rows below FTS5_KEPT_DATA, and frees the little left.
        names = schema_names(conn)
        for shadow in ("data", "content", "docsize"):
            name = f"{table}_{shadow}"
            if name in names and not self._free_rows(
                name, FTS5_KEPT_DATA if shadow == "data" else 0
            ):
                return False
        return True

    def _free_rows(self, table: str, keep_below: int) -> bool:
        """Delete a step's rows of a rowid table, the lowest rowids above `keep_below` first;
        whether none was left."""
        conn = self._wconn
        blobs = [
            r[1] for r in conn.execute(f'PRAGMA table_info("{table}")') if r[2].upper() == "BLOB"
        ]
        # length() of a blob reads its header alone, not its pages.
        size = " + ".join(f'coalesce(length("{c}"), 0)' for c in blobs) or "0"
        indexes = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (table,)
        ).fetchone()[0]
        run = max(1, STEP_ROWS // (1 + indexes))
        deadline = time.perf_counter() + STEP_SECONDS
        freed = 0
        first = True
        while True:
            rows = conn.execute(
                f'SELECT rowid, {size} FROM "{table}" WHERE rowid > ? ORDER BY rowid LIMIT ?',
                (keep_below, run),
            ).fetchall()
            if not rows:
                return first
            first = False
            last = rows[0][0]
            freed += rows[0][1]
            full = False
            for rowid, length in rows[1:]:
                full = freed + length > STEP_BYTES
                if full:
                    break
                last, freed = rowid, freed + length
            conn.execute(
                f'DELETE FROM "{table}" WHERE rowid > ? AND rowid <= ?', (keep_below, last)
            )
            if full or freed >= STEP_BYTES or time.perf_counter() >= deadline:
                return False
