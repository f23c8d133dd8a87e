"""The PostgreSQL store's SMTP session log (bounded in rows and bytes) and its statistics."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from mailpit_py.store.postgres.base import PgParts, PgRow, in_box, rows, text
from mailpit_py.store.records import SessionRecord
from mailpit_py.store.sessions import SESSION_LOG_BYTES, sessions_to_cut


class PgSessions(PgParts):
    """The session log: one row per SMTP session, the oldest dropped past its bounds."""

    def insert_session(self, rec: SessionRecord, keep: int) -> None:
        # The session log alone: the messages the transaction queued need not be written first
        # (pending.py), so a batch of deliveries and their sessions stays one write.
        conn = self._conn_in_job()
        row = conn.execute(
            "WITH s AS (INSERT INTO sessions (uid, started, ended, peer, local, helo, tls, "
            "username, outcome, messages, transcript, bytes, mailbox) "
            "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
            "ON CONFLICT (uid) DO UPDATE SET started = excluded.started, ended = excluded.ended, "
            "peer = excluded.peer, local = excluded.local, helo = excluded.helo, "
            "tls = excluded.tls, username = excluded.username, outcome = excluded.outcome, "
            "messages = excluded.messages, transcript = excluded.transcript, "
            "bytes = excluded.bytes, mailbox = excluded.mailbox "
            # (xmax is 0 on a row this statement inserted, not on one it replaced)
            "RETURNING id, xmax = 0 AS added) "
            # The log's counts as they were before this statement, whose trigger adds to them
            # after it: read in the same round trip.
            "SELECT s.id, s.added, (SELECT value FROM counters WHERE name = 'sessions'), "
            "(SELECT value FROM counters WHERE name = 'session_bytes') FROM s",
            (
                text(rec.uid),
                rec.started,
                rec.ended,
                text(rec.peer),
                text(rec.local),
                text(rec.helo),
                int(rec.tls),
                text(rec.username),
                text(rec.outcome),
                text(json.dumps(list(rec.messages))),
                text(rec.transcript),
                len(rec.transcript),
                text(rec.mailbox),
            ),
        ).fetchone()
        assert row is not None
        newest, added = int(row[0]), bool(row[1])
        # The same bounds as SQLite's log (store/sessions.py): `keep` sessions, SESSION_LOG_BYTES
        # of transcripts, and none older than every kept message under retention.
        count = int(row[2]) + (1 if added else 0)
        size = int(row[3]) + (len(rec.transcript) if added else 0)
        retired = self._retired_until
        if count <= keep and size <= SESSION_LOG_BYTES and not retired:
            return
        cut = sessions_to_cut(
            self._oldest_sessions(conn, max(count - keep, 0) + 8),
            newest,
            count,
            size,
            keep,
            retired,
        )
        if cut is not None:
            conn.execute("DELETE FROM sessions WHERE id <= %s", (cut,))

    @staticmethod
    def _oldest_sessions(
        conn: psycopg.Connection[Any], first: int
    ) -> Iterator[tuple[int, int, float]]:
        """(id, bytes, ended) of the log's sessions oldest first, read a page at a time as they
        are taken: once the log is full, each new session cuts one or two, where reading the
        whole log (1,000 rows) for them cost more than the rest of the write."""
        after, size = 0, first
        while True:
            page = conn.execute(
                "SELECT id, bytes, ended FROM sessions WHERE id > %s ORDER BY id LIMIT %s",
                (after, size),
            ).fetchall()
            yield from page
            if len(page) < size:
                return
            after, size = int(page[-1][0]), 256

    def session(self, uid: str) -> PgRow | None:
        with self.reading() as conn:
            found = rows(conn, "SELECT * FROM sessions WHERE uid = %s", (text(uid),))
        return found[0] if found else None

    def session_count(self, box: str | None = None) -> int:
        with self.reading() as conn:
            if box is None:
                row = conn.execute("SELECT value FROM counters WHERE name = 'sessions'").fetchone()
            else:
                # (the log is bounded in rows: counted from sessions_mailbox_id alone)
                row = conn.execute(
                    "SELECT count(*) FROM sessions WHERE mailbox = %s", (text(box),)
                ).fetchone()
        return int(row[0]) if row else 0

    def sessions(self, start: int = 0, limit: int = 50, box: str | None = None) -> list[PgRow]:
        scope, params = in_box(box, "mailbox")
        with self.reading() as conn:
            return rows(
                conn,
                f"SELECT * FROM sessions WHERE {scope} ORDER BY id DESC LIMIT %s OFFSET %s",
                (*params, limit, max(start, 0)),
            )


class PgStatistics(PgParts):
    """Figures for the statistics view and the metrics (reads)."""

    def size_histogram(self, bounds: Sequence[int], box: str | None = None) -> list[int]:
        edges = [-1, *(int(b) for b in bounds)]
        cases = [
            f"count(*) FILTER (WHERE size > {lo} AND size <= {hi})"
            for lo, hi in itertools.pairwise(edges)
        ]
        cases.append(f"count(*) FILTER (WHERE size > {edges[-1]})")
        scope, params = in_box(box, "mailbox")
        with self.reading() as conn:
            row = conn.execute(
                f"SELECT {', '.join(cases)} FROM messages WHERE {scope}", params
            ).fetchone()
        assert row is not None
        return [int(v or 0) for v in row]

    def top_senders(self, limit: int = 10, box: str | None = None) -> list[tuple[str, int]]:
        scope, params = in_box(box, "mailbox")
        with self.reading() as conn:
            found = conn.execute(
                "SELECT a, count(*) AS n FROM (SELECT lower(from_json::jsonb->0->>'Address') AS a "
                f"FROM messages WHERE {scope}) s WHERE a IS NOT NULL AND a <> '' GROUP BY a "
                'ORDER BY n DESC, a COLLATE "C" LIMIT %s',
                (*params, limit),
            ).fetchall()
        return [(r[0], int(r[1])) for r in found]

    def top_recipient_domains(
        self, limit: int = 10, box: str | None = None
    ) -> list[tuple[str, int]]:
        scope, params = in_box(box)
        with self.reading() as conn:
            found = conn.execute(
                "WITH r AS (SELECT DISTINCT m.id, lower(substr(j->>'Address', "
                "strpos(j->>'Address', '@') + 1)) AS d FROM messages m, "
                "jsonb_array_elements(m.to_json::jsonb || m.cc_json::jsonb || m.bcc_json::jsonb) "
                f"j WHERE {scope}) "
                "SELECT d, count(*) AS n FROM r WHERE d <> '' GROUP BY d "
                'ORDER BY n DESC, d COLLATE "C" LIMIT %s',
                (*params, limit),
            ).fetchall()
        return [(r[0], int(r[1])) for r in found]

    def size_bytes(self) -> int:
        with self.reading() as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0
