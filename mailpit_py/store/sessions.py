"""The SQLite store's SMTP session log (bounded in rows and bytes) and its statistics."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
from collections.abc import Iterable, Sequence

from mailpit_py.store.base import SQLiteParts, dict_cursor
from mailpit_py.store.messages import in_box
from mailpit_py.store.records import SessionRecord

# The SMTP session log keeps at most this many bytes of transcripts (besides its row count).
SESSION_LOG_BYTES = 2 * 1024 * 1024


def sessions_to_cut(
    oldest_first: Iterable[tuple[int, int, float]],
    newest: int | None,
    count: int,
    size: int,
    keep: int,
    retired: float,
) -> int | None:
    """The id up to which the log's oldest sessions go, or None: read (id, bytes, ended)
    oldest first until the log is within `keep` sessions and SESSION_LOG_BYTES and what is
    left ended after `retired` (the newest, `newest`, always stays). Every backend's rule."""
    cut = None
    for rowid, nbytes, ended in oldest_first:
        if rowid == newest or (count <= keep and size <= SESSION_LOG_BYTES and ended >= retired):
            break
        count -= 1
        size -= nbytes
        cut = rowid
    return cut


class Sessions(SQLiteParts):
    """The session log: one row per SMTP session, the oldest dropped past its bounds."""

    def insert_session(self, rec: SessionRecord, keep: int) -> None:
        conn = self._wconn
        newest = conn.execute(
            "INSERT OR REPLACE INTO sessions (uid, started, ended, peer, local, helo, tls, "
            "username, outcome, messages, transcript, bytes, mailbox) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
                rec.mailbox,
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
        oldest_first = conn.execute("SELECT id, bytes, ended FROM sessions ORDER BY id")
        cut = sessions_to_cut(oldest_first, newest, count, size, keep, retired)
        if cut is not None:
            conn.execute("DELETE FROM sessions WHERE id <= ?", (cut,))

    def session(self, uid: str) -> sqlite3.Row | None:
        with self.reading() as conn:
            return (
                dict_cursor(conn).execute("SELECT * FROM sessions WHERE uid = ?", (uid,)).fetchone()
            )

    def session_count(self, box: str | None = None) -> int:
        with self.reading() as conn:
            if box is not None:
                # The log is bounded (insert_session): counting one mailbox's index entries of
                # it stays cheap without a counter per mailbox.
                row = conn.execute(
                    "SELECT count(*) FROM sessions WHERE mailbox = ?", (box,)
                ).fetchone()
            else:
                row = conn.execute("SELECT value FROM counters WHERE name = 'sessions'").fetchone()
        return int(row[0])

    def sessions(
        self, start: int = 0, limit: int = 50, box: str | None = None
    ) -> list[sqlite3.Row]:
        limit_box, box_params = in_box(box)
        with self.reading() as conn:
            return (
                dict_cursor(conn)
                .execute(
                    f"SELECT * FROM sessions WHERE 1{limit_box} ORDER BY id DESC LIMIT ? OFFSET ?",
                    (*box_params, limit, start),
                )
                .fetchall()
            )


class Statistics(SQLiteParts):
    """Figures for the statistics view and the metrics (reads)."""

    def size_histogram(self, bounds: Sequence[int], box: str | None = None) -> list[int]:
        """Messages per size class: counts of size <= each bound, then of larger ones."""
        edges = [-1, *(int(b) for b in bounds)]
        cases = [f"sum(size > {lo} AND size <= {hi})" for lo, hi in itertools.pairwise(edges)]
        cases.append(f"sum(size > {edges[-1]})")
        limit_box, box_params = in_box(box)
        with self.reading() as conn:
            row = conn.execute(
                f"SELECT {', '.join(cases)} FROM messages WHERE 1{limit_box}", box_params
            ).fetchone()
        return [int(v or 0) for v in row]

    def top_senders(self, limit: int = 10, box: str | None = None) -> list[tuple[str, int]]:
        """The From addresses of the most messages."""
        limit_box, box_params = in_box(box)
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT lower(json_extract(from_json, '$[0].Address')) AS a, count(*) AS n "
                f"FROM messages WHERE a IS NOT NULL AND a != ''{limit_box} GROUP BY a "
                "ORDER BY n DESC, a LIMIT ?",
                (*box_params, limit),
            ).fetchall()
        return [(r[0], int(r[1])) for r in rows]

    def top_recipient_domains(
        self, limit: int = 10, box: str | None = None
    ) -> list[tuple[str, int]]:
        """Domains of To, Cc and Bcc addresses, by how many messages name them."""
        limit_box, box_params = in_box(box, "m.mailbox")
        with self.reading() as conn:
            rows = conn.execute(
                "WITH r AS (SELECT DISTINCT m.id, lower(substr(json_extract(j.value, '$.Address'), "
                "instr(json_extract(j.value, '$.Address'), '@') + 1)) AS d FROM messages m, "
                "json_each(json_array(json(m.to_json), json(m.cc_json), json(m.bcc_json))) l, "
                f"json_each(l.value) j WHERE 1{limit_box}) "
                "SELECT d, count(*) AS n FROM r WHERE d != '' GROUP BY d "
                "ORDER BY n DESC, d LIMIT ?",
                (*box_params, limit),
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
